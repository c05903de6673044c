//! Source-video fingerprints: what makes an artifact key belong to one version of one video.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, UNIX_EPOCH};

use crate::error::{PipelineError, Result};

/// How a video is fingerprinted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum FingerprintMode {
    /// Canonical path + size + modification time (the seed's default): free to compute, but a
    /// touched file gets a new fingerprint and a rewrite within the same mtime tick keeps it.
    #[default]
    Stat,
    /// blake3 of the bytes: a touched but unchanged file keeps its fingerprint, any byte change
    /// gets a new one, wherever the file lives. Costs one read of the video.
    Content,
}

impl FingerprintMode {
    /// `stat` or `content` (what [`str::parse`] takes).
    pub fn name(self) -> &'static str {
        match self {
            Self::Stat => "stat",
            Self::Content => "content",
        }
    }

    /// The letter of this mode's fingerprint tokens (`s1-...`, `c1-...`).
    pub(crate) fn letter(self) -> char {
        match self {
            Self::Stat => 's',
            Self::Content => 'c',
        }
    }
}

impl std::str::FromStr for FingerprintMode {
    type Err = PipelineError;
    fn from_str(s: &str) -> Result<Self> {
        [Self::Stat, Self::Content]
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                crate::error::invalid("fingerprint mode", format!("{s:?} (use stat or content)"))
            })
    }
}

/// A video fingerprint as it appears in keys: `s1-<32 hex>` (stat) or `c1-<32 hex>` (content).
/// The digit is the key-schema version: keys of another schema never collide with these.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(String);

/// Key-schema version carried in every fingerprint token.
pub const KEY_SCHEMA: u32 = 1;

impl Fingerprint {
    /// Parses a fingerprint token.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || {
            crate::error::invalid(
                "fingerprint",
                format!("{s:?} (expected s1-<32 hex> or c1-<32 hex>)"),
            )
        };
        let (prefix, hex) = s.split_once('-').ok_or_else(bad)?;
        let mut chars = prefix.chars();
        let letter_known = chars.next().is_some_and(|c| {
            [FingerprintMode::Stat, FingerprintMode::Content]
                .iter()
                .any(|m| m.letter() == c)
        });
        if !letter_known
            || chars.as_str().parse::<u32>().ok() != Some(KEY_SCHEMA)
            || chars.as_str().starts_with(['+', '0'])
            || hex.len() != 32
            || !hex
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        {
            return Err(bad());
        }
        Ok(Self(s.to_owned()))
    }

    /// The token.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Fingerprints a video given as a path or a URI (`file://`, `s3://bucket/key`; see
    /// [`VideoSource`](crate::VideoSource); buckets reached with [`S3Access::from_env`](crate::S3Access::from_env)). Content fingerprints of files are not
    /// remembered here: [`PipelineArtifactCache`](crate::PipelineArtifactCache) does that.
    pub async fn of_video(video: &Path, mode: FingerprintMode) -> Result<Self> {
        match crate::VideoSource::parse(video)? {
            crate::VideoSource::File(path) => {
                tokio::task::spawn_blocking(move || Self::of_file(&path, mode))
                    .await
                    .map_err(|e| crate::error::invalid("fingerprint task", e.to_string()))?
            }
            crate::VideoSource::S3 { bucket, key } => {
                let access = crate::S3Access::from_env();
                crate::VideoSource::object_fingerprint(&bucket, &key, mode, &access).await
            }
        }
    }

    /// Fingerprints the local file at `path`.
    pub fn of_file(path: &Path, mode: FingerprintMode) -> Result<Self> {
        let err = |reason: String| PipelineError::Video {
            path: path.to_owned(),
            reason,
        };
        let md = std::fs::metadata(path).map_err(|e| err(format!("cannot read it: {e}")))?;
        if md.is_dir() {
            return Err(err("is a directory, not a video file".into()));
        }
        if !md.is_file() {
            return Err(err("is not a regular file".into()));
        }
        let digest = match mode {
            FingerprintMode::Stat => {
                let canonical = std::fs::canonicalize(path)
                    .map_err(|e| err(format!("cannot resolve path: {e}")))?;
                let mtime = md
                    .modified()
                    .map_err(|e| err(format!("no modification time: {e}")))?
                    .duration_since(UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0);
                let mut h = blake3::Hasher::new();
                h.update(b"pipecache-fingerprint-stat-1\0");
                h.update(canonical.as_os_str().as_encoded_bytes());
                h.update(b"\0");
                h.update(&md.len().to_le_bytes());
                h.update(&mtime.to_le_bytes());
                h.finalize()
            }
            FingerprintMode::Content => {
                let mut file =
                    std::fs::File::open(path).map_err(|e| err(format!("cannot open it: {e}")))?;
                let mut h = blake3::Hasher::new();
                h.update(b"pipecache-fingerprint-content-1\0");
                let mut buf = vec![0u8; 1 << 20];
                loop {
                    let n = file
                        .read(&mut buf)
                        .map_err(|e| err(format!("cannot read it: {e}")))?;
                    if n == 0 {
                        break;
                    }
                    h.update(&buf[..n]);
                }
                h.finalize()
            }
        };
        Ok(Self(format!(
            "{}{KEY_SCHEMA}-{}",
            mode.letter(),
            &digest.to_hex()[..32]
        )))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Content fingerprints remembered per file, so a video is read once rather than on every
/// `get_`/`set_` call.
///
/// A remembered fingerprint is used only while the file's device, inode, size, modification
/// and change times are all unchanged (the change time moves on every write and on every
/// `utimes`, so setting the old mtime back does not hide a rewrite). Git's "racily clean"
/// problem is handled the way git does: a file whose newest timestamp is within
/// [`RACY_SLACK`] of the moment hashing began could be rewritten without any timestamp
/// moving (timestamp granularity), so its fingerprint is not remembered and it is read again
/// on the next call. "Now" is the store's clock: a file server whose clock runs more than
/// the slack behind this machine's weakens the rule (git compares with its index file's
/// mtime instead, a timestamp from the same file system).
#[derive(Debug, Default)]
pub(crate) struct FingerprintMemo {
    entries: Mutex<HashMap<PathBuf, (FileStat, Fingerprint)>>,
    hashed: AtomicU64,
}

/// Coarsest file timestamp granularity (and clock skew to a file server) trusted: 2 s, FAT's.
pub(crate) const RACY_SLACK: Duration = Duration::from_secs(2);

/// Entries kept before the memo starts over (a bound, not a policy: one entry per video).
const MEMO_MAX: usize = 16_384;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileStat {
    dev: u64,
    ino: u64,
    len: u64,
    mtime_ns: i128,
    ctime_ns: i128,
}

impl FileStat {
    #[cfg(unix)]
    fn of(md: &std::fs::Metadata) -> Option<Self> {
        use std::os::unix::fs::MetadataExt;
        let ns = |s: i64, n: i64| i128::from(s) * 1_000_000_000 + i128::from(n);
        Some(Self {
            dev: md.dev(),
            ino: md.ino(),
            len: md.len(),
            mtime_ns: ns(md.mtime(), md.mtime_nsec()),
            ctime_ns: ns(md.ctime(), md.ctime_nsec()),
        })
    }

    /// Without a change time nothing is remembered.
    #[cfg(not(unix))]
    fn of(_md: &std::fs::Metadata) -> Option<Self> {
        None
    }

    /// True when the file's timestamps are old enough, relative to `hashing_began_ms` (unix
    /// ms), that a later rewrite must move one of them.
    fn settled_before(&self, hashing_began_ms: u64) -> bool {
        let began_ns = i128::from(hashing_began_ms) * 1_000_000;
        self.mtime_ns.max(self.ctime_ns) + (RACY_SLACK.as_nanos() as i128) < began_ns
    }
}

impl FingerprintMemo {
    /// `path`'s fingerprint in `mode`; content fingerprints come from the memo when the file
    /// is provably unchanged. `now_ms` is the store's clock (unix ms).
    pub(crate) fn fingerprint(
        &self,
        path: &Path,
        mode: FingerprintMode,
        now_ms: impl Fn() -> u64,
    ) -> Result<Fingerprint> {
        if mode == FingerprintMode::Stat {
            return Fingerprint::of_file(path, mode);
        }
        // Attributes of an opened file: on NFS, open revalidates them (close-to-open), where a
        // path stat may answer from the attribute cache for up to a minute.
        let stat_of = |p: &Path| {
            std::fs::File::open(p)
                .and_then(|f| f.metadata())
                .ok()
                .and_then(|m| FileStat::of(&m))
        };
        let stat = stat_of(path);
        if let Some(stat) = stat {
            let entries = self.entries.lock().expect("fingerprint memo poisoned");
            if let Some((seen, fp)) = entries.get(path)
                && *seen == stat
            {
                return Ok(fp.clone());
            }
        }
        let began = now_ms();
        let fp = Fingerprint::of_file(path, mode)?;
        self.hashed.fetch_add(1, Ordering::Relaxed);
        // Remembered only if nothing moved while it was read, and nothing can move unseen.
        let after = stat_of(path);
        if let Some(stat) = stat
            && after == Some(stat)
            && stat.settled_before(began)
        {
            let mut entries = self.entries.lock().expect("fingerprint memo poisoned");
            if entries.len() >= MEMO_MAX {
                entries.clear();
            }
            entries.insert(path.to_owned(), (stat, fp.clone()));
        }
        Ok(fp)
    }

    /// `path`'s remembered content fingerprint, if the file is provably unchanged since it
    /// was read: a stat and a map lookup, never a read of the video.
    pub(crate) fn remembered(&self, path: &Path) -> Option<Fingerprint> {
        let stat = std::fs::File::open(path)
            .and_then(|f| f.metadata())
            .ok()
            .and_then(|m| FileStat::of(&m))?;
        let entries = self.entries.lock().expect("fingerprint memo poisoned");
        entries
            .get(path)
            .filter(|(seen, _)| *seen == stat)
            .map(|(_, fp)| fp.clone())
    }

    /// Videos read whole so far.
    pub(crate) fn hashed(&self) -> u64 {
        self.hashed.load(Ordering::Relaxed)
    }
}
