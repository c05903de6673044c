//! An artifact on the wire between `pipecache serve` and its clients (the body of a get's
//! response and of a put's request; `docs/format.md`, "Wire").
//!
//! The body is the Redis inline value's layout (see [`crate::remote::encode_inline_value`]):
//! a record frame carrying a [`RemoteRecord`] (key, kind, metadata, times, part names, hashes
//! and lengths), then one blob frame per part, in order. Parts travel raw: a Unix socket
//! gains nothing from zstd. Every frame carries its blake3, so a body damaged or cut short
//! anywhere between the store and the caller is refused, never returned.
//!
//! [`WireDecoder`] takes the body as it arrives, in pieces of any size, so a large part is
//! copied once, from the socket's buffers into the part's own `Vec`, and never held twice.

use crate::frame::{FRAME_HEADER_LEN, FrameHeader, FrameKind};
use crate::record::Record;
use crate::remote::RemoteRecord;
use crate::{BlobHash, Codec, FormatError};

/// The media type of a wire body.
pub const CONTENT_TYPE: &str = "application/vnd.pipecache.artifact";

/// Largest record frame a decoder accepts: metadata, names and hashes of at most
/// 100,000 parts fit well within it.
pub const MAX_RECORD_LEN: u64 = 64 << 20;

/// The record frame that opens a body: header and CBOR payload.
pub fn encode_head(record: &RemoteRecord) -> Vec<u8> {
    let rec = record.encode();
    let header = FrameHeader::raw(FrameKind::ArtifactRecord, &rec);
    let mut out = Vec::with_capacity(FRAME_HEADER_LEN + rec.len());
    out.extend_from_slice(&header.encode());
    out.extend_from_slice(&rec);
    out
}

/// The header of a raw part frame: `hash` is the blake3 of the part's `len` bytes, which
/// follow it on the wire.
pub fn part_header(hash: BlobHash, len: u64) -> [u8; FRAME_HEADER_LEN] {
    FrameHeader {
        kind: FrameKind::Blob,
        codec: Codec::Raw,
        hash,
        raw_len: len,
        stored_len: len,
    }
    .encode()
}

/// Bytes of a whole body: head, then every part frame (for tests, fuzzing and small bodies;
/// servers and clients send the pieces without joining them).
pub fn encode_body(record: &RemoteRecord, parts: &[&[u8]]) -> Vec<u8> {
    let mut out = encode_head(record);
    for (p, data) in record.parts.iter().zip(parts) {
        out.extend_from_slice(&part_header(p.hash, data.len() as u64));
        out.extend_from_slice(data);
    }
    out
}

/// Where the decoder is in the body.
#[derive(Debug)]
enum Step {
    /// Reading a frame header: the record's (`part == None`) or part `part`'s.
    Header { part: Option<usize> },
    /// Reading the payload announced by `header`.
    Payload {
        part: Option<usize>,
        header: FrameHeader,
    },
    /// Every part read.
    Done,
}

/// Decodes a body fed in pieces; see the module documentation.
#[derive(Debug)]
pub struct WireDecoder {
    max_body: u64,
    seen: u64,
    step: Step,
    header: Vec<u8>,
    payload: Vec<u8>,
    record: Option<RemoteRecord>,
    parts: Vec<Vec<u8>>,
}

impl WireDecoder {
    /// A decoder refusing bodies longer than `max_body` bytes.
    pub fn new(max_body: u64) -> Self {
        Self {
            max_body,
            seen: 0,
            step: Step::Header { part: None },
            header: Vec::with_capacity(FRAME_HEADER_LEN),
            payload: Vec::new(),
            record: None,
            parts: Vec::new(),
        }
    }

    /// The record, once its frame has been read (so a server can check the key before the
    /// parts arrive).
    pub fn record(&self) -> Option<&RemoteRecord> {
        self.record.as_ref()
    }

    /// Feeds the next bytes of the body.
    pub fn push(&mut self, mut bytes: &[u8]) -> Result<(), FormatError> {
        self.seen = self.seen.saturating_add(bytes.len() as u64);
        if self.seen > self.max_body {
            return Err(FormatError::corrupt(
                "wire body",
                format!("longer than the limit of {} bytes", self.max_body),
            ));
        }
        while !bytes.is_empty() {
            match self.step {
                Step::Done => {
                    return Err(FormatError::corrupt(
                        "wire body",
                        "bytes after the last part",
                    ));
                }
                Step::Header { part } => {
                    let take = (FRAME_HEADER_LEN - self.header.len()).min(bytes.len());
                    self.header.extend_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                    if self.header.len() == FRAME_HEADER_LEN {
                        let header = FrameHeader::decode(&self.header)?;
                        self.header.clear();
                        self.begin_payload(part, header)?;
                    }
                }
                Step::Payload { part, header } => {
                    let want = header.stored_len as usize - self.payload.len();
                    let take = want.min(bytes.len());
                    self.payload.extend_from_slice(&bytes[..take]);
                    bytes = &bytes[take..];
                    if self.payload.len() as u64 == header.stored_len {
                        self.end_payload(part, header)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Checks a frame header against what the body must hold next and reserves its payload.
    fn begin_payload(
        &mut self,
        part: Option<usize>,
        header: FrameHeader,
    ) -> Result<(), FormatError> {
        match part {
            None => {
                if header.kind != FrameKind::ArtifactRecord {
                    return Err(FormatError::corrupt(
                        "wire body",
                        "does not start with a record frame",
                    ));
                }
                if header.stored_len > MAX_RECORD_LEN {
                    return Err(FormatError::corrupt(
                        "wire body",
                        format!("a record frame of {} bytes", header.stored_len),
                    ));
                }
            }
            Some(i) => {
                let p = &self
                    .record
                    .as_ref()
                    .expect("record read before parts")
                    .parts[i];
                if header.kind != FrameKind::Blob
                    || header.hash != p.hash
                    || header.raw_len != p.len
                {
                    return Err(FormatError::corrupt(
                        "wire body",
                        format!("part {:?} does not match its frame", p.name),
                    ));
                }
            }
        }
        // Parts travel raw: a compressed frame could claim a raw length far beyond the
        // body it came in (and its limit).
        if header.codec != Codec::Raw {
            return Err(FormatError::corrupt("wire body", "a frame that is not raw"));
        }
        // A declared length is trusted only up to the body's limit (a server passes the
        // request's Content-Length), so a lying header cannot reserve more than that.
        if header.stored_len > self.max_body {
            return Err(FormatError::corrupt(
                "wire body",
                format!(
                    "a frame of {} bytes exceeds the body limit",
                    header.stored_len
                ),
            ));
        }
        self.payload = Vec::with_capacity(header.stored_len as usize);
        if header.stored_len == 0 {
            return self.end_payload(part, header);
        }
        self.step = Step::Payload { part, header };
        Ok(())
    }

    /// Checks a complete payload (blake3) and moves to the next frame.
    fn end_payload(&mut self, part: Option<usize>, header: FrameHeader) -> Result<(), FormatError> {
        let raw = header.decode_payload(std::mem::take(&mut self.payload))?;
        let next = match part {
            None => {
                let record = RemoteRecord::decode(&raw)?;
                if record.parts.iter().any(|p| p.at.is_some()) {
                    return Err(FormatError::corrupt("wire body", "part points into a pack"));
                }
                let n = record.parts.len();
                self.parts = Vec::with_capacity(n.min(1024));
                self.record = Some(record);
                0
            }
            Some(i) => {
                self.parts.push(raw);
                i + 1
            }
        };
        let total = self.record.as_ref().map_or(0, |r| r.parts.len());
        self.step = if next < total {
            Step::Header { part: Some(next) }
        } else {
            Step::Done
        };
        Ok(())
    }

    /// The record and each part's bytes; an error when the body ended early.
    pub fn finish(self) -> Result<(RemoteRecord, Vec<Vec<u8>>), FormatError> {
        match (self.step, self.record) {
            (Step::Done, Some(record)) => Ok((record, self.parts)),
            _ => Err(FormatError::Truncated {
                what: "wire body",
                needed: self.seen.saturating_add(1),
                available: self.seen,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::record::RECORD_VERSION;
    use crate::remote::RemotePart;

    fn sample(parts: &[&[u8]]) -> RemoteRecord {
        RemoteRecord {
            v: RECORD_VERSION,
            key: "video/abc/transcript".into(),
            kind: "transcript".into(),
            parts: parts
                .iter()
                .enumerate()
                .map(|(i, d)| RemotePart {
                    name: format!("p{i}"),
                    hash: BlobHash::of(d),
                    len: d.len() as u64,
                    at: None,
                })
                .collect(),
            created_ms: 1,
            expires_ms: Some(2),
            meta: BTreeMap::from([("model".into(), "base".into())]),
            digest: BlobHash([7; 32]),
        }
    }

    /// A body fed one byte at a time, or whole, decodes to what was encoded.
    #[test]
    fn pieces_of_any_size_decode_the_same() {
        let parts: [&[u8]; 3] = [b"hello", b"", &[9u8; 5000]];
        let record = sample(&parts);
        let body = encode_body(&record, &parts);
        for step in [1, 7, 64, 100, body.len()] {
            let mut d = WireDecoder::new(1 << 20);
            for piece in body.chunks(step) {
                d.push(piece).unwrap();
            }
            let (r, p) = d.finish().unwrap();
            assert_eq!(r, record);
            assert_eq!(p, parts.iter().map(|x| x.to_vec()).collect::<Vec<_>>());
        }
    }

    /// A flipped byte, a cut body, trailing bytes and an over-long body are refused.
    #[test]
    fn damaged_bodies_are_refused() {
        let parts: [&[u8]; 1] = [&[1u8; 300]];
        let body = encode_body(&sample(&parts), &parts);
        let mut flipped = body.clone();
        *flipped.last_mut().unwrap() ^= 1;
        let decode = |b: &[u8], max: u64| {
            let mut d = WireDecoder::new(max);
            d.push(b).and_then(|()| d.finish())
        };
        assert!(decode(&flipped, 1 << 20).is_err());
        assert!(decode(&body[..body.len() - 1], 1 << 20).is_err());
        let mut longer = body.clone();
        longer.push(0);
        assert!(decode(&longer, 1 << 20).is_err());
        assert!(decode(&body, body.len() as u64 - 1).is_err());
        assert!(decode(&body, body.len() as u64).is_ok());
        // A valid zstd part frame (the inline decoder takes it): refused on the wire.
        let stored = zstd::bulk::compress(parts[0], 3).unwrap();
        let mut zstd = encode_head(&sample(&parts));
        let header = FrameHeader::blob(BlobHash::of(parts[0]), Codec::Zstd, 300, &stored);
        zstd.extend_from_slice(&header.encode());
        zstd.extend_from_slice(&stored);
        assert!(crate::remote::decode_inline_value(&zstd).is_ok());
        assert!(decode(&zstd, 1 << 20).is_err());
    }
}
