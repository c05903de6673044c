//! Chunk files: many frames appended to one file, read back with positioned reads.
//!
//! ```text
//! chunk file = chunk header (64 bytes) , frame* , [torn tail after a crash]
//! chunk header:
//!   0  8 magic "PIPECHNK"
//!   8  4 chunk format version, u32 LE (1)
//!  12  4 flags, u32 LE (0)
//!  16  8 chunk id, u64 LE (the number in the file name)
//!  24  8 created, unix milliseconds, u64 LE
//!  32 28 reserved (0)
//!  60  4 checksum: first 4 bytes of blake3(bytes 0..60), LE
//! ```
//! Files are named `chunk-<id as 16 hex digits>.pcc`. The writer only ever appends; committed
//! bytes are never rewritten in place (compaction copies live frames to a new chunk instead).

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::frame::{FRAME_HEADER_LEN, FrameHeader, header_checksum};
use crate::{BlobHash, Codec, FormatError};

/// Bytes in an encoded [`ChunkHeader`]; the first frame starts here.
pub const CHUNK_HEADER_LEN: u64 = 64;
/// Magic at the start of every chunk file.
pub const CHUNK_MAGIC: [u8; 8] = *b"PIPECHNK";
/// Chunk format version written by this build.
pub const CHUNK_VERSION: u32 = 1;

/// File name of chunk `id`.
pub fn chunk_file_name(id: u64) -> String {
    format!("chunk-{id:016x}.pcc")
}

/// Inverse of [`chunk_file_name`]; `None` for any other file name.
pub fn parse_chunk_file_name(name: &str) -> Option<u64> {
    let hex = name.strip_prefix("chunk-")?.strip_suffix(".pcc")?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// The decoded header of a chunk file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkHeader {
    /// Chunk id (also in the file name).
    pub id: u64,
    /// Creation time, unix milliseconds.
    pub created_ms: u64,
}

impl ChunkHeader {
    /// Encodes the 64-byte header.
    pub fn encode(&self) -> [u8; CHUNK_HEADER_LEN as usize] {
        let mut b = [0u8; CHUNK_HEADER_LEN as usize];
        b[0..8].copy_from_slice(&CHUNK_MAGIC);
        b[8..12].copy_from_slice(&CHUNK_VERSION.to_le_bytes());
        b[16..24].copy_from_slice(&self.id.to_le_bytes());
        b[24..32].copy_from_slice(&self.created_ms.to_le_bytes());
        let sum = header_checksum(&b[..60]);
        b[60..64].copy_from_slice(&sum.to_le_bytes());
        b
    }

    /// Decodes and validates a chunk header.
    pub fn decode(bytes: &[u8]) -> Result<Self, FormatError> {
        if bytes.len() < CHUNK_HEADER_LEN as usize {
            return Err(FormatError::Truncated {
                what: "chunk header",
                needed: CHUNK_HEADER_LEN,
                available: bytes.len() as u64,
            });
        }
        let b = &bytes[..CHUNK_HEADER_LEN as usize];
        if b[0..8] != CHUNK_MAGIC {
            return Err(FormatError::corrupt(
                "chunk header",
                "bad magic (not a pipecache chunk file)",
            ));
        }
        let sum = u32::from_le_bytes(b[60..64].try_into().expect("4 bytes"));
        if sum != header_checksum(&b[..60]) {
            return Err(FormatError::corrupt(
                "chunk header",
                "header checksum mismatch",
            ));
        }
        let version = u32::from_le_bytes(b[8..12].try_into().expect("4 bytes"));
        if version == 0 || version > CHUNK_VERSION {
            return Err(FormatError::UnsupportedVersion {
                what: "chunk file",
                found: version,
                supported: CHUNK_VERSION,
            });
        }
        if b[12..16] != [0; 4] || b[32..60].iter().any(|&x| x != 0) {
            return Err(FormatError::corrupt("chunk header", "reserved bits set"));
        }
        Ok(Self {
            id: u64::from_le_bytes(b[16..24].try_into().expect("8 bytes")),
            created_ms: u64::from_le_bytes(b[24..32].try_into().expect("8 bytes")),
        })
    }
}

fn read_header_at(file: &File, path: &Path) -> Result<ChunkHeader, FormatError> {
    let mut b = [0u8; CHUNK_HEADER_LEN as usize];
    file.read_exact_at(&mut b, 0).map_err(|e| {
        if e.kind() == ErrorKind::UnexpectedEof {
            FormatError::Truncated {
                what: "chunk header",
                needed: CHUNK_HEADER_LEN,
                available: file.metadata().map(|m| m.len()).unwrap_or(0),
            }
        } else {
            FormatError::io(format!("read chunk header of {}", path.display()), e)
        }
    })?;
    ChunkHeader::decode(&b)
}

/// fsyncs a directory so a file created or removed in it survives a power cut.
pub fn sync_dir(dir: &Path) -> Result<(), FormatError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| FormatError::io(format!("fsync directory {}", dir.display()), e))
}

/// Replaces `dir/name` with `bytes` atomically: written to `name.tmp`, synced, renamed over
/// it, so a reader sees the old file or the new one, never half of one. The directory is
/// not synced (callers that need the rename itself durable call [`sync_dir`]).
pub fn replace_file(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))
}

/// Appends frames to one chunk file.
///
/// Appends are buffered in memory and written with positioned writes; nothing is durable (or
/// visible to readers) until [`ChunkWriter::sync`] returns. The caller records the new length
/// in the index only after that, which is what makes a torn tail harmless.
#[derive(Debug)]
pub struct ChunkWriter {
    id: u64,
    path: PathBuf,
    file: File,
    /// Bytes on disk (written, maybe not yet synced).
    written: u64,
    /// Bytes appended but still in `buf`.
    buf: Vec<u8>,
    /// Length as of the last successful `sync`.
    synced: u64,
}

/// Buffered bytes above which appends are written out before the next sync.
const WRITE_BUF: usize = 1 << 20;

impl ChunkWriter {
    /// Creates chunk `id` in `dir` (fails if it exists), writes and syncs its header and the
    /// directory entry.
    pub fn create(dir: &Path, id: u64, created_ms: u64) -> Result<Self, FormatError> {
        let path = dir.join(chunk_file_name(id));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| FormatError::io(format!("create chunk file {}", path.display()), e))?;
        let header = ChunkHeader { id, created_ms }.encode();
        file.write_all_at(&header, 0)
            .and_then(|()| file.sync_all())
            .map_err(|e| FormatError::io(format!("write chunk header {}", path.display()), e))?;
        sync_dir(dir)?;
        Ok(Self {
            id,
            path,
            file,
            written: CHUNK_HEADER_LEN,
            buf: Vec::new(),
            synced: CHUNK_HEADER_LEN,
        })
    }

    /// Reopens chunk `id` for appending after `committed_len` bytes, discarding anything after
    /// it: bytes past the committed length were written by a put whose index batch never
    /// committed, so nothing references them.
    pub fn open_append(dir: &Path, id: u64, committed_len: u64) -> Result<Self, FormatError> {
        let path = dir.join(chunk_file_name(id));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| FormatError::io(format!("open chunk file {}", path.display()), e))?;
        let header = read_header_at(&file, &path)?;
        if header.id != id {
            return Err(FormatError::corrupt(
                "chunk header",
                format!("{} claims chunk id {}", path.display(), header.id),
            ));
        }
        let on_disk = file
            .metadata()
            .map_err(|e| FormatError::io(format!("stat {}", path.display()), e))?
            .len();
        if on_disk < committed_len {
            return Err(FormatError::Truncated {
                what: "open chunk file",
                needed: committed_len,
                available: on_disk,
            });
        }
        if on_disk > committed_len {
            tracing::info!(
                chunk = id,
                discarded = on_disk - committed_len,
                "dropping uncommitted chunk tail"
            );
            file.set_len(committed_len)
                .and_then(|()| file.sync_all())
                .map_err(|e| FormatError::io(format!("truncate {}", path.display()), e))?;
        }
        Ok(Self {
            id,
            path,
            file,
            written: committed_len,
            buf: Vec::new(),
            synced: committed_len,
        })
    }

    /// Chunk id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Path of the chunk file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Logical length including buffered appends; the offset the next frame will get.
    pub fn len(&self) -> u64 {
        self.written + self.buf.len() as u64
    }

    /// True when the chunk holds no frame.
    pub fn is_empty(&self) -> bool {
        self.len() == CHUNK_HEADER_LEN
    }

    /// Appends one frame and returns its offset (the offset of its header).
    pub fn append(&mut self, header: &FrameHeader, payload: &[u8]) -> Result<u64, FormatError> {
        debug_assert_eq!(header.stored_len, payload.len() as u64);
        let offset = self.len();
        self.buf.extend_from_slice(&header.encode());
        if payload.len() >= WRITE_BUF {
            // Large payloads go straight to the file instead of through the buffer.
            self.write_buf()?;
            self.file
                .write_all_at(payload, self.written)
                .map_err(|e| FormatError::io(format!("append to {}", self.path.display()), e))?;
            self.written += payload.len() as u64;
        } else {
            self.buf.extend_from_slice(payload);
            if self.buf.len() >= WRITE_BUF {
                self.write_buf()?;
            }
        }
        Ok(offset)
    }

    /// Convenience: appends a blob frame for `raw` stored as `stored` with `codec`.
    pub fn append_blob(
        &mut self,
        hash: BlobHash,
        codec: Codec,
        raw_len: u64,
        stored: &[u8],
    ) -> Result<u64, FormatError> {
        self.append(&FrameHeader::blob(hash, codec, raw_len, stored), stored)
    }

    fn write_buf(&mut self) -> Result<(), FormatError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.file
            .write_all_at(&self.buf, self.written)
            .map_err(|e| FormatError::io(format!("append to {}", self.path.display()), e))?;
        self.written += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Writes out buffered frames without fsync (they survive a process crash, not a power
    /// cut). Returns the written length.
    pub fn flush(&mut self) -> Result<u64, FormatError> {
        self.write_buf()?;
        Ok(self.written)
    }

    /// Writes out buffered frames and fdatasyncs the file. Returns the durable length.
    pub fn sync(&mut self) -> Result<u64, FormatError> {
        self.write_buf()?;
        if self.synced != self.written {
            self.file
                .sync_data()
                .map_err(|e| FormatError::io(format!("fsync {}", self.path.display()), e))?;
            self.synced = self.written;
        }
        Ok(self.synced)
    }
}

/// Writes a complete chunk file in one go: header, then `frames` in order, then (with
/// `sync`) one fdatasync of the file. The directory entry is not synced here: the caller
/// must [`sync_dir`] before anything relies on the file surviving a power cut (the store
/// does it once for a whole group of such files). Returns the file's length and each
/// frame's offset. Used for a put's large blobs, which the putting thread writes into a chunk
/// of their own instead of queueing them behind the writer thread's appends; the chunk is
/// sealed from birth (nothing is ever appended to it).
pub fn write_chunk_file(
    dir: &Path,
    id: u64,
    created_ms: u64,
    frames: &[(FrameHeader, &[u8])],
    sync: bool,
) -> Result<(u64, Vec<u64>), FormatError> {
    let path = dir.join(chunk_file_name(id));
    let io = |e| FormatError::io(format!("write chunk file {}", path.display()), e);
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(io)?;
    let mut offsets = Vec::with_capacity(frames.len());
    file.write_all_at(&ChunkHeader { id, created_ms }.encode(), 0)
        .map_err(io)?;
    let mut at = CHUNK_HEADER_LEN;
    for (header, payload) in frames {
        debug_assert_eq!(header.stored_len, payload.len() as u64);
        offsets.push(at);
        file.write_all_at(&header.encode(), at).map_err(io)?;
        file.write_all_at(payload, at + FRAME_HEADER_LEN as u64)
            .map_err(io)?;
        at += FRAME_HEADER_LEN as u64 + payload.len() as u64;
    }
    if sync {
        file.sync_data().map_err(io)?;
    }
    Ok((at, offsets))
}

/// Positioned reads of frames from one chunk file; shareable between threads.
#[derive(Debug)]
pub struct ChunkReader {
    id: u64,
    path: PathBuf,
    file: File,
}

impl ChunkReader {
    /// Opens chunk `id` in `dir` and validates its header.
    pub fn open(dir: &Path, id: u64) -> Result<Self, FormatError> {
        let path = dir.join(chunk_file_name(id));
        let file = File::open(&path)
            .map_err(|e| FormatError::io(format!("open chunk file {}", path.display()), e))?;
        let header = read_header_at(&file, &path)?;
        if header.id != id {
            return Err(FormatError::corrupt(
                "chunk header",
                format!("{} claims chunk id {}", path.display(), header.id),
            ));
        }
        Ok(Self { id, path, file })
    }

    /// Chunk id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Path of the chunk file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the frame at `offset` and returns its header and raw payload after checking the
    /// header checksum, the expected hash and length, and the blake3 of the decoded bytes.
    pub fn read_blob(
        &self,
        offset: u64,
        expected: BlobHash,
        expected_stored_len: u64,
    ) -> Result<Vec<u8>, FormatError> {
        let header = self.read_header(offset)?;
        if header.hash != expected {
            return Err(FormatError::corrupt(
                "frame header",
                "hash differs from the index",
            ));
        }
        if header.stored_len != expected_stored_len {
            return Err(FormatError::corrupt(
                "frame header",
                "stored length differs from the index",
            ));
        }
        self.read_payload(offset, &header)
    }

    /// Reads any frame at `offset` (blob, record or tombstone) and returns its header and raw
    /// payload after checking the header checksum and the payload's blake3.
    pub fn read_frame(&self, offset: u64) -> Result<(FrameHeader, Vec<u8>), FormatError> {
        let header = self.read_header(offset)?;
        let raw = self.read_payload(offset, &header)?;
        Ok((header, raw))
    }

    fn read_header(&self, offset: u64) -> Result<FrameHeader, FormatError> {
        let mut hb = [0u8; FRAME_HEADER_LEN];
        self.read_exact(&mut hb, offset, "frame header")?;
        FrameHeader::decode(&hb)
    }

    fn read_payload(&self, offset: u64, header: &FrameHeader) -> Result<Vec<u8>, FormatError> {
        let len = usize::try_from(header.stored_len)
            .map_err(|_| FormatError::corrupt("frame header", "stored length beyond memory"))?;
        let start = offset + FRAME_HEADER_LEN as u64;
        // Read into the vector's spare capacity: zeroing a buffer about to be overwritten
        // was a tenth of a 10 MB get.
        let mut stored = Vec::with_capacity(len);
        while stored.len() < len {
            let at = start + stored.len() as u64;
            match rustix::io::pread(&self.file, rustix::buffer::spare_capacity(&mut stored), at) {
                Ok(0) => {
                    return Err(FormatError::Truncated {
                        what: "frame payload",
                        needed: start + len as u64,
                        available: self.file.metadata().map(|m| m.len()).unwrap_or(0),
                    });
                }
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => {
                    return Err(FormatError::io(
                        format!("read {}", self.path.display()),
                        e.into(),
                    ));
                }
            }
        }
        // The capacity may exceed `len`; whatever was read past the frame is not its.
        stored.truncate(len);
        header.decode_payload(stored)
    }

    fn read_exact(
        &self,
        buf: &mut [u8],
        offset: u64,
        what: &'static str,
    ) -> Result<(), FormatError> {
        self.file.read_exact_at(buf, offset).map_err(|e| {
            if e.kind() == ErrorKind::UnexpectedEof {
                FormatError::Truncated {
                    what,
                    needed: offset + buf.len() as u64,
                    available: self.file.metadata().map(|m| m.len()).unwrap_or(0),
                }
            } else {
                FormatError::io(format!("read {}", self.path.display()), e)
            }
        })
    }
}

/// One frame found by a [`ChunkScanner`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScannedFrame {
    /// Offset of the frame header in the chunk file.
    pub offset: u64,
    /// The decoded header.
    pub header: FrameHeader,
    /// The raw (decoded, hash-checked) payload.
    pub payload: Vec<u8>,
    /// The payload as stored (compressed form), when the scanner keeps it
    /// ([`ChunkScanner::keep_stored`]); compaction copies frames verbatim from it.
    pub stored: Option<Vec<u8>>,
}

/// Walks a chunk file frame by frame without any index: the basis of `rebuild-index`, `verify`
/// cross-checks and the fuzz target. Stops at the first frame that does not decode; what
/// follows a damaged header cannot be located reliably.
#[derive(Debug)]
pub struct ChunkScanner<R> {
    reader: R,
    header: ChunkHeader,
    offset: u64,
    done: bool,
    keep_stored: bool,
}

impl ChunkScanner<std::io::BufReader<File>> {
    /// Opens a chunk file for scanning.
    pub fn open(path: &Path) -> Result<Self, FormatError> {
        let file = File::open(path)
            .map_err(|e| FormatError::io(format!("open chunk file {}", path.display()), e))?;
        Self::new(std::io::BufReader::with_capacity(1 << 20, file))
    }
}

impl<R: Read> ChunkScanner<R> {
    /// Reads and validates the chunk header from `reader`.
    pub fn new(mut reader: R) -> Result<Self, FormatError> {
        let mut b = [0u8; CHUNK_HEADER_LEN as usize];
        let n = read_full(&mut reader, &mut b)?;
        let header = ChunkHeader::decode(&b[..n])?;
        Ok(Self {
            reader,
            header,
            offset: CHUNK_HEADER_LEN,
            done: false,
            keep_stored: false,
        })
    }

    /// Also return each frame's stored (possibly compressed) bytes.
    pub fn keep_stored(mut self, keep: bool) -> Self {
        self.keep_stored = keep;
        self
    }

    /// The chunk header.
    pub fn header(&self) -> ChunkHeader {
        self.header
    }

    /// Offset just past the last frame returned: after a clean end of file this is the length of
    /// the valid prefix of the chunk.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next frame; `Ok(None)` at a clean end of file, `Err` at a torn or corrupt frame
    /// (after which the scanner yields nothing more).
    pub fn next_frame(&mut self) -> Result<Option<ScannedFrame>, FormatError> {
        if self.done {
            return Ok(None);
        }
        let result = self.next_inner();
        if !matches!(result, Ok(Some(_))) {
            self.done = true;
        }
        result
    }

    fn next_inner(&mut self) -> Result<Option<ScannedFrame>, FormatError> {
        let mut hb = [0u8; FRAME_HEADER_LEN];
        let n = read_full(&mut self.reader, &mut hb)?;
        if n == 0 {
            return Ok(None);
        }
        let header = FrameHeader::decode(&hb[..n])?;
        // Read through `take` so a corrupt length cannot force a huge allocation up front.
        let mut stored = Vec::new();
        let got = (&mut self.reader)
            .take(header.stored_len)
            .read_to_end(&mut stored)
            .map_err(|e| FormatError::io("read chunk frame", e))?;
        if (got as u64) < header.stored_len {
            return Err(FormatError::Truncated {
                what: "frame payload",
                needed: header.stored_len,
                available: got as u64,
            });
        }
        let kept = self.keep_stored.then(|| stored.clone());
        let payload = header.decode_payload(stored)?;
        let offset = self.offset;
        self.offset += header.frame_len();
        Ok(Some(ScannedFrame {
            offset,
            header,
            payload,
            stored: kept,
        }))
    }
}

/// Reads until `buf` is full or EOF; returns bytes read.
fn read_full<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<usize, FormatError> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(FormatError::io("read chunk file", e)),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(w: &mut ChunkWriter, data: &[u8]) -> (u64, BlobHash, u64) {
        let h = BlobHash::of(data);
        let off = w
            .append_blob(h, Codec::Raw, data.len() as u64, data)
            .unwrap();
        (off, h, data.len() as u64)
    }

    #[test]
    fn write_sync_read_and_scan() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = ChunkWriter::create(dir.path(), 7, 123).unwrap();
        let a = blob(&mut w, b"alpha");
        let big = vec![3u8; 2 << 20];
        let b = blob(&mut w, &big);
        let c = blob(&mut w, b"");
        w.sync().unwrap();
        let r = ChunkReader::open(dir.path(), 7).unwrap();
        assert_eq!(r.read_blob(a.0, a.1, a.2).unwrap(), b"alpha");
        assert_eq!(r.read_blob(b.0, b.1, b.2).unwrap(), big);
        assert_eq!(r.read_blob(c.0, c.1, c.2).unwrap(), b"");
        assert!(
            r.read_blob(a.0, b.1, a.2).is_err(),
            "wrong expected hash must fail"
        );

        let mut s = ChunkScanner::open(&dir.path().join(chunk_file_name(7))).unwrap();
        assert_eq!(
            s.header(),
            ChunkHeader {
                id: 7,
                created_ms: 123
            }
        );
        let offsets: Vec<u64> = std::iter::from_fn(|| s.next_frame().unwrap())
            .map(|f| f.offset)
            .collect();
        assert_eq!(offsets, vec![a.0, b.0, c.0]);
        assert_eq!(s.offset(), w.len());
    }

    /// A large payload (read into spare capacity, hashed on every core) that was cut short
    /// is `Truncated`; one with a flipped byte fails its blake3 check.
    #[test]
    fn cut_or_flipped_large_payloads_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = ChunkWriter::create(dir.path(), 2, 0).unwrap();
        let big: Vec<u8> = (0..3u32 << 20).map(|i| (i % 251) as u8).collect();
        let (off, hash, len) = blob(&mut w, &big);
        w.sync().unwrap();
        drop(w);
        let path = dir.path().join(chunk_file_name(2));
        let payload_at = off + FRAME_HEADER_LEN as u64;

        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.write_all_at(&[big[1 << 20] ^ 1], payload_at + (1 << 20))
            .unwrap();
        let r = ChunkReader::open(dir.path(), 2).unwrap();
        assert!(matches!(
            r.read_blob(off, hash, len),
            Err(FormatError::Corrupt { .. })
        ));

        file.set_len(payload_at + len / 2).unwrap();
        assert!(matches!(
            r.read_blob(off, hash, len),
            Err(FormatError::Truncated { .. })
        ));
    }

    #[test]
    fn reopen_discards_uncommitted_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = ChunkWriter::create(dir.path(), 1, 0).unwrap();
        let a = blob(&mut w, b"committed");
        let committed = w.sync().unwrap();
        blob(&mut w, b"never committed");
        w.sync().unwrap();
        drop(w);
        let w = ChunkWriter::open_append(dir.path(), 1, committed).unwrap();
        assert_eq!(w.len(), committed);
        let r = ChunkReader::open(dir.path(), 1).unwrap();
        assert_eq!(r.read_blob(a.0, a.1, a.2).unwrap(), b"committed");
        assert!(ChunkWriter::open_append(dir.path(), 1, committed + 1).is_err());
    }

    #[test]
    fn scanner_reports_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = ChunkWriter::create(dir.path(), 2, 0).unwrap();
        blob(&mut w, b"one");
        blob(&mut w, &[9u8; 1000]);
        let len = w.sync().unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(w.path())
            .unwrap()
            .set_len(len - 10)
            .unwrap();
        let mut s = ChunkScanner::open(w.path()).unwrap();
        assert!(s.next_frame().unwrap().is_some());
        assert!(matches!(s.next_frame(), Err(FormatError::Truncated { .. })));
        assert!(s.next_frame().unwrap().is_none());
    }

    #[test]
    fn file_names_round_trip() {
        assert_eq!(parse_chunk_file_name(&chunk_file_name(0xabc)), Some(0xabc));
        assert_eq!(parse_chunk_file_name("chunk-xyz.pcc"), None);
        assert_eq!(parse_chunk_file_name("other"), None);
    }

    #[test]
    fn newer_chunk_version_is_unsupported() {
        let mut b = ChunkHeader {
            id: 1,
            created_ms: 0,
        }
        .encode();
        b[8..12].copy_from_slice(&2u32.to_le_bytes());
        let sum = header_checksum(&b[..60]);
        b[60..64].copy_from_slice(&sum.to_le_bytes());
        assert!(matches!(
            ChunkHeader::decode(&b),
            Err(FormatError::UnsupportedVersion { found: 2, .. })
        ));
    }
}
