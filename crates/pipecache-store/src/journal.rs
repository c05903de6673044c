//! The change journal: how the process writing a store tells every other process holding
//! copies of its artifacts (a `pipecache serve` client's near cache) which keys changed,
//! with no message and no round trip. Layout in `pipecache_format::journal` and
//! docs/format.md ("Change journal").
//!
//! The file `changes` in the store directory is mapped shared by the writer (read-write) and
//! by readers (read-only). The writer thread, after each index commit and before any put or
//! delete of that commit is acknowledged, writes the hashes of the keys the commit changed
//! into a ring and moves the published sequence; a reader that finds the published sequence
//! ahead of the last one it saw drops those keys. A commit of more keys than half the ring,
//! and every opening of the store for writing, moves the generation instead: readers drop
//! everything. A reader that fell more than a ring behind, or whose slots were overwritten
//! while it read them (the claimed sequence says so), drops everything too. So a reader
//! never keeps a value a later acknowledged write replaced; at worst it drops more than
//! needed.
//!
//! Written by hand: it is 64 bytes of atomics and a ring over a shared mapping, which no
//! maintained crate offers across processes (shared-memory crates give the mapping, which
//! `rustix::mm` gives here, not the protocol).

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering, fence};

use pipecache_format::journal::{
    CLAIMED_AT, DEFAULT_SLOTS, GENERATION_AT, JOURNAL_HEADER_LEN, JournalHeader, PUBLISHED_AT,
    RETIRED,
};
use pipecache_format::key_hash;

use crate::{Error, Result};

/// The journal's file name in the store directory.
pub const JOURNAL_FILE: &str = "changes";

/// A shared mapping of a journal file, seen as 64-bit atomic words.
struct Mapping {
    ptr: NonNull<AtomicU64>,
    words: usize,
}

// SAFETY: the mapping is only ever accessed through atomics, from any thread.
#[allow(unsafe_code)]
unsafe impl Send for Mapping {}
// SAFETY: as above.
#[allow(unsafe_code)]
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Maps `len` bytes of `file` shared, writable or not.
    #[allow(unsafe_code)]
    fn map(file: &File, len: u64, writable: bool) -> std::io::Result<Self> {
        use rustix::mm::{MapFlags, ProtFlags, mmap};
        let prot = if writable {
            ProtFlags::READ | ProtFlags::WRITE
        } else {
            ProtFlags::READ
        };
        let len = usize::try_from(len).map_err(std::io::Error::other)?;
        // SAFETY: a new mapping at an address the kernel picks, of a file whose length was
        // checked to be `len`; the file is never truncated while mapped (the writer only
        // creates it at its full length, and replaces it by rename, never by truncation).
        let ptr = unsafe { mmap(std::ptr::null_mut(), len, prot, MapFlags::SHARED, file, 0) }?;
        Ok(Self {
            ptr: NonNull::new(ptr.cast()).ok_or_else(|| std::io::Error::other("null mapping"))?,
            words: len / 8,
        })
    }

    /// The word at byte offset `at` (a multiple of 8 within the mapping).
    #[allow(unsafe_code)]
    fn word(&self, at: usize) -> &AtomicU64 {
        let i = at / 8;
        assert!(
            at.is_multiple_of(8) && i < self.words,
            "journal word {at} out of range"
        );
        // SAFETY: in bounds (checked), page-aligned base so 8-aligned, and only ever used
        // as an atomic by every process that maps the file.
        unsafe { &*self.ptr.as_ptr().add(i) }
    }
}

impl Drop for Mapping {
    #[allow(unsafe_code)]
    fn drop(&mut self) {
        // SAFETY: the mapping this value made; no reference into it outlives `self`.
        let _ = unsafe { rustix::mm::munmap(self.ptr.as_ptr().cast(), self.words * 8) };
    }
}

/// A journal's mapping and the ring size its header names.
struct Journal {
    map: Mapping,
    slots: u64,
}

impl Journal {
    fn generation(&self) -> &AtomicU64 {
        self.map.word(GENERATION_AT)
    }
    fn claimed(&self) -> &AtomicU64 {
        self.map.word(CLAIMED_AT)
    }
    fn published(&self) -> &AtomicU64 {
        self.map.word(PUBLISHED_AT)
    }
    fn slot(&self, seq: u64) -> &AtomicU64 {
        self.map
            .word(JOURNAL_HEADER_LEN + (seq % self.slots) as usize * 8)
    }
}

fn io(what: &str, path: &Path, e: std::io::Error) -> Error {
    Error::io(format!("{what} {}", path.display()), e)
}

/// The length of the journal file `file` (at `path`) and its header, or why the header is
/// not one this build uses (unreadable, too short, damaged, another layout).
fn read_header(file: &File, path: &Path) -> Result<(u64, Result<JournalHeader, String>)> {
    let len = file.metadata().map_err(|e| io("stat", path, e))?.len();
    let mut head = [0u8; JOURNAL_HEADER_LEN];
    let header = match file.read_exact_at(&mut head, 0) {
        Ok(()) => JournalHeader::decode(&head, len).map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    Ok((len, header))
}

/// The writer's side: publishes the keys each commit changed.
pub(crate) struct JournalWriter {
    journal: Journal,
}

impl std::fmt::Debug for JournalWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalWriter")
            .field("slots", &self.journal.slots)
            .finish_non_exhaustive()
    }
}

impl JournalWriter {
    /// Opens store `dir`'s journal for writing, creating it (or replacing one this build
    /// cannot use, after retiring it so its readers stop trusting it), then moves the
    /// generation: whatever readers hold was read before this opening, and a writer that
    /// died may have committed changes it never published.
    pub(crate) fn open(dir: &Path) -> Result<Self> {
        let path = dir.join(JOURNAL_FILE);
        let existing = OpenOptions::new().read(true).write(true).open(&path);
        let usable = match existing {
            Ok(file) => match read_header(&file, &path)? {
                (_, Ok(h)) => Some((file, h)),
                (len, Err(_)) => {
                    retire(&file, len);
                    None
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io("open", &path, e)),
        };
        let (file, header) = match usable {
            Some(found) => found,
            None => create(dir, &path, DEFAULT_SLOTS)?,
        };
        let map = Mapping::map(&file, header.file_len(), true).map_err(|e| io("map", &path, e))?;
        let journal = Journal {
            map,
            slots: header.slots,
        };
        journal.generation().fetch_add(1, Ordering::SeqCst);
        Ok(Self { journal })
    }

    /// [`JournalWriter::open`], or `None` when there is no journal and no room to create
    /// one (a store opened on a full disk): without a file no reader keeps copies, so
    /// nothing needs publishing.
    pub(crate) fn open_or_skip(dir: &Path) -> Result<Option<Self>> {
        match Self::open(dir) {
            Ok(j) => Ok(Some(j)),
            Err(e) if e.is_no_space() && !dir.join(JOURNAL_FILE).exists() => {
                tracing::warn!(error = %e, "no room for the change journal; clients of a server will keep no near cache");
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Tells readers that `keys` changed (they were just committed). Called by the writer
    /// thread only, before the commit's requests are answered.
    pub(crate) fn publish<'k>(&self, keys: impl ExactSizeIterator<Item = &'k str>) {
        let j = &self.journal;
        let n = keys.len() as u64;
        if n == 0 {
            return;
        }
        if n > j.slots / 2 {
            self.publish_everything();
            return;
        }
        let start = j.published().load(Ordering::Relaxed);
        let end = start + n;
        // Claim first: a reader that read a slot this overwrites sees the claim after it
        // (the fences pair with the reader's), and drops everything instead.
        j.claimed().store(end, Ordering::Relaxed);
        fence(Ordering::Release);
        for (i, key) in keys.enumerate() {
            j.slot(start + 1 + i as u64)
                .store(key_hash(key), Ordering::Relaxed);
        }
        j.published().store(end, Ordering::Release);
    }

    /// Tells readers that anything may have changed: they drop everything.
    pub(crate) fn publish_everything(&self) {
        self.journal.generation().fetch_add(1, Ordering::SeqCst);
    }
}

/// Marks a journal file this build does not use as retired, so readers that mapped it
/// stop trusting it once it is replaced. Best effort: a file too short for the word has no
/// reader (readers map only files whose header checks).
fn retire(file: &File, len: u64) {
    if len >= JOURNAL_HEADER_LEN as u64 {
        let _ = file.write_all_at(&RETIRED.to_ne_bytes(), GENERATION_AT as u64);
    }
}

/// Writes a new journal of `slots` beside `path` and renames it in place: a reader never
/// maps a half-written file.
fn create(dir: &Path, path: &Path, slots: u64) -> Result<(File, JournalHeader)> {
    let header = JournalHeader { slots };
    let tmp = dir.join(format!("{JOURNAL_FILE}.tmp"));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| io("create", &tmp, e))?;
    file.set_len(header.file_len())
        .and_then(|()| file.write_all_at(&header.encode(), 0))
        .map_err(|e| io("write", &tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| io("rename", path, e))?;
    Ok((file, header))
}

/// A reader's generation before its first catch-up: one no writer reaches (it is moved
/// once per opening of the store) and not [`RETIRED`].
const NOTHING_SEEN: u64 = u64::MAX - 1;

/// What a reader must drop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// The key with this [`key_hash`] changed.
    Key(u64),
    /// Anything may have changed.
    All,
}

/// A reader's side of store `dir`'s journal (see the module docs).
pub struct JournalReader {
    journal: Journal,
    /// Generation and published sequence up to which changes were handed out; the lock
    /// makes catching up one thread's job, the atomics let others see there is none.
    seen: Mutex<(u64, u64)>,
    seen_generation: AtomicU64,
    seen_published: AtomicU64,
}

impl std::fmt::Debug for JournalReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JournalReader")
            .field("slots", &self.journal.slots)
            .field("seen_published", &self.seen_published)
            .finish_non_exhaustive()
    }
}

impl JournalReader {
    /// Maps store `dir`'s journal read-only. `Ok(None)` when there is none, or this process
    /// may not read it, or it is not one this build reads (then the caller keeps no copies).
    pub fn open(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(JOURNAL_FILE);
        let file = match File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "no readable change journal");
                return Ok(None);
            }
        };
        let header = match read_header(&file, &path)?.1 {
            Ok(h) => h,
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "change journal not usable");
                return Ok(None);
            }
        };
        let map = Mapping::map(&file, header.file_len(), false).map_err(|e| io("map", &path, e))?;
        let journal = Journal {
            map,
            slots: header.slots,
        };
        // Nothing seen yet: the first catch-up hands out `All` (the caller holds nothing).
        Ok(Some(Self {
            journal,
            seen: Mutex::new((NOTHING_SEEN, 0)),
            seen_generation: AtomicU64::new(NOTHING_SEEN),
            seen_published: AtomicU64::new(0),
        }))
    }

    /// Whether the journal was retired (replaced by a writer of another layout): its
    /// reader must keep nothing.
    pub fn retired(&self) -> bool {
        self.journal.generation().load(Ordering::Acquire) == RETIRED
    }

    /// Hands `drop` every change published since the last call (or `All` when they cannot
    /// be told apart), and returns when `drop` has seen them all, so a lookup made after
    /// this returns sees no copy a write published before it began replaced.
    pub fn catch_up(&self, mut drop: impl FnMut(Change)) {
        let j = &self.journal;
        if j.generation().load(Ordering::Acquire) == self.seen_generation.load(Ordering::Acquire)
            && j.published().load(Ordering::Acquire) == self.seen_published.load(Ordering::Acquire)
        {
            return;
        }
        let mut seen = self.seen.lock().expect("journal reader poisoned");
        let generation = j.generation().load(Ordering::Acquire);
        let published = j.published().load(Ordering::Acquire);
        if generation != seen.0 {
            // Includes retirement, once: a retired journal's reader keeps nothing after.
            drop(Change::All);
        } else if published != seen.1 {
            let from = seen.1;
            if published < from || published - from > j.slots {
                drop(Change::All);
            } else {
                let hashes: Vec<u64> = (from + 1..=published)
                    .map(|s| j.slot(s).load(Ordering::Relaxed))
                    .collect();
                fence(Ordering::Acquire);
                if j.claimed().load(Ordering::Relaxed) > from + j.slots {
                    // Slots read above may hold later keys than the ones published.
                    drop(Change::All);
                } else {
                    hashes.into_iter().for_each(|h| drop(Change::Key(h)));
                }
            }
        }
        *seen = (generation, published);
        self.seen_published.store(published, Ordering::Release);
        self.seen_generation.store(generation, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;

    /// A writer on a journal of `slots` (a small ring, so tests reach its edges), and a
    /// reader of it that has caught up once.
    fn pair(dir: &Path, slots: u64) -> (JournalWriter, JournalReader) {
        create(dir, &dir.join(JOURNAL_FILE), slots).unwrap();
        let writer = JournalWriter::open(dir).unwrap();
        let reader = JournalReader::open(dir).unwrap().unwrap();
        assert_eq!(
            changes(&reader),
            vec![Change::All],
            "a new reader drops everything"
        );
        (writer, reader)
    }

    fn changes(reader: &JournalReader) -> Vec<Change> {
        let mut out = Vec::new();
        reader.catch_up(|c| out.push(c));
        out
    }

    #[test]
    fn changed_keys_reach_a_reader_one_by_one() {
        let tmp = tempfile::tempdir().unwrap();
        let (writer, reader) = pair(tmp.path(), 8);
        writer.publish(["a", "b"].into_iter());
        assert_eq!(
            changes(&reader),
            vec![Change::Key(key_hash("a")), Change::Key(key_hash("b"))]
        );
        assert_eq!(changes(&reader), vec![], "each change once");
        writer.publish(std::iter::empty());
        assert_eq!(changes(&reader), vec![]);
    }

    #[test]
    fn a_reader_a_ring_behind_drops_everything() {
        let tmp = tempfile::tempdir().unwrap();
        let (writer, reader) = pair(tmp.path(), 8);
        for i in 0..9 {
            writer.publish([format!("k{i}").as_str()].into_iter());
        }
        assert_eq!(changes(&reader), vec![Change::All]);
        writer.publish(["after"].into_iter());
        assert_eq!(changes(&reader), vec![Change::Key(key_hash("after"))]);
    }

    #[test]
    fn a_commit_of_more_than_half_the_ring_drops_everything() {
        let tmp = tempfile::tempdir().unwrap();
        let (writer, reader) = pair(tmp.path(), 8);
        writer.publish(["a", "b", "c", "d", "e"].into_iter());
        assert_eq!(changes(&reader), vec![Change::All]);
    }

    #[test]
    fn opening_the_store_again_drops_everything() {
        let tmp = tempfile::tempdir().unwrap();
        let (writer, reader) = pair(tmp.path(), 8);
        drop(writer);
        let _again = JournalWriter::open(tmp.path()).unwrap();
        assert_eq!(changes(&reader), vec![Change::All]);
    }

    #[test]
    fn a_replaced_journal_retires_its_readers() {
        let tmp = tempfile::tempdir().unwrap();
        let (writer, reader) = pair(tmp.path(), 8);
        drop(writer);
        // A journal this build cannot use (a newer layout): the writer retires it and
        // writes its own, which the old reader never sees.
        let path = tmp.path().join(JOURNAL_FILE);
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(&9u32.to_le_bytes(), 8).unwrap();
        let writer = JournalWriter::open(tmp.path()).unwrap();
        assert!(reader.retired());
        assert_eq!(changes(&reader), vec![Change::All]);
        assert_eq!(
            changes(&reader),
            vec![],
            "dropped once; its caller keeps nothing"
        );
        let fresh = JournalReader::open(tmp.path()).unwrap().unwrap();
        assert!(!fresh.retired());
        assert_eq!(fresh.journal.slots, DEFAULT_SLOTS);
        writer.publish(["x"].into_iter());
        assert_eq!(changes(&fresh), vec![Change::All]);
        assert_eq!(changes(&fresh), vec![]);
    }

    #[derive(Clone, Debug)]
    enum Op {
        /// The writer commits changes of these keys.
        Publish(Vec<u8>),
        /// The reader catches up, then keeps a copy of this key (as a near cache does
        /// around a read).
        Keep(u8),
        /// The reader catches up.
        CatchUp,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            proptest::collection::vec(0u8..12, 0..7).prop_map(Op::Publish),
            (0u8..12).prop_map(Op::Keep),
            Just(Op::CatchUp),
        ]
    }

    proptest! {
        /// Against a model of what the reader holds: after any catch-up, the reader holds no
        /// key changed since it kept it, whatever the interleaving of commits (small and
        /// large), keeps and catch-ups on an 8-slot ring.
        #[test]
        fn a_reader_never_keeps_a_changed_key(ops in proptest::collection::vec(op(), 1..80)) {
            let tmp = tempfile::tempdir().unwrap();
            let (writer, reader) = pair(tmp.path(), 8);
            let name = |k: u8| format!("key-{k}");
            let mut held: HashSet<u8> = HashSet::new();
            let mut stale: HashSet<u8> = HashSet::new();
            let catch_up = |held: &mut HashSet<u8>, stale: &mut HashSet<u8>| {
                for change in changes(&reader) {
                    match change {
                        Change::All => held.clear(),
                        Change::Key(h) => held.retain(|k| key_hash(&name(*k)) != h),
                    }
                }
                stale.retain(|k| held.contains(k));
                prop_assert!(stale.is_empty(), "still held after a change: {stale:?}");
                Ok(())
            };
            for op in ops {
                match op {
                    Op::Publish(keys) => {
                        let names: Vec<String> = keys.iter().map(|k| name(*k)).collect();
                        writer.publish(names.iter().map(String::as_str));
                        stale.extend(keys.iter().filter(|k| held.contains(k)));
                    }
                    Op::Keep(k) => {
                        catch_up(&mut held, &mut stale)?;
                        held.insert(k);
                    }
                    Op::CatchUp => catch_up(&mut held, &mut stale)?,
                }
            }
        }
    }
}
