//! Hand-written decoders for the record forms this build writes: every get decodes an
//! artifact record and scans decode millions of blob records, and serde's generic path
//! (ciborium) costs several times more. Each returns `None` for any other form, which the
//! generic path then decodes or refuses, and accepts only bytes that path decodes to the
//! same value (a proptest and the `records` fuzz target check it).

use std::collections::BTreeMap;

use super::{ArtifactRecord, BlobRecord, FrameRef, PartRef};
use crate::BlobHash;

/// An artifact record: every get decodes one, and a keyframes record of 320 parts took
/// ciborium's serde path ~216 us (a fifth of the whole get), as did every record of a gc,
/// verify or listing scan. Accepts what `Record::encode` writes: a definite map of the nine
/// keys, each once, in any order; parts as definite maps of `n`, `h`, `l` and optionally
/// `a`; no duplicate metadata keys; nothing after it.
pub(super) fn artifact_record(bytes: &[u8]) -> Option<ArtifactRecord> {
    let mut d = minicbor::Decoder::new(bytes);
    if d.map().ok()? != Some(9) {
        return None;
    }
    let (mut v, mut kind, mut parts, mut size, mut created) = (None, None, None, None, None);
    let (mut expires, mut meta, mut seq, mut frame) = (None, None, None, None);
    for _ in 0..9 {
        let fresh = match d.str().ok()? {
            "v" => v.replace(u32::try_from(d.u64().ok()?).ok()?).is_none(),
            "k" => kind.replace(d.str().ok()?.to_owned()).is_none(),
            "p" => parts.replace(decode_parts(&mut d)?).is_none(),
            "s" => size.replace(d.u64().ok()?).is_none(),
            "c" => created.replace(d.u64().ok()?).is_none(),
            "e" => expires
                .replace(nullable(&mut d, |d| d.u64().ok())?)
                .is_none(),
            "m" => meta.replace(decode_meta(&mut d)?).is_none(),
            "q" => seq.replace(d.u64().ok()?).is_none(),
            "f" => frame.replace(nullable(&mut d, decode_frame_ref)?).is_none(),
            _ => return None,
        };
        if !fresh {
            return None;
        }
    }
    if d.position() != bytes.len() {
        return None;
    }
    Some(ArtifactRecord {
        v: v?,
        kind: kind?,
        parts: parts?,
        logical_size: size?,
        created_ms: created?,
        expires_ms: expires?,
        meta: meta?,
        seq: seq?,
        frame: frame?,
    })
}

/// A blob record: scans and GC decode millions of these (serde's path was about a tenth of
/// a 3M-blob gc pass). Accepts a definite map of the seven keys, each once, in any order,
/// each an unsigned integer that fits its field, and nothing after it.
pub(super) fn blob_record(bytes: &[u8]) -> Option<BlobRecord> {
    let mut d = minicbor::Decoder::new(bytes);
    let fields = unsigned_map(&mut d, ["v", "c", "o", "s", "r", "z", "n"])?;
    if d.position() != bytes.len() {
        return None;
    }
    let [v, chunk, offset, stored_len, raw_len, codec, refs] = fields;
    Some(BlobRecord {
        v: u32::try_from(v).ok()?,
        chunk,
        offset,
        stored_len,
        raw_len,
        codec: u8::try_from(codec).ok()?,
        refs,
    })
}

/// `null`, or what `value` decodes (`None`: neither).
fn nullable<'b, T>(
    d: &mut minicbor::Decoder<'b>,
    value: impl FnOnce(&mut minicbor::Decoder<'b>) -> Option<T>,
) -> Option<Option<T>> {
    if d.datatype().ok()? == minicbor::data::Type::Null {
        d.null().ok()?;
        return Some(None);
    }
    value(d).map(Some)
}

/// A definite map of exactly `keys`, each once, in any order, each an unsigned integer;
/// the values in the order of `keys`.
fn unsigned_map<const N: usize>(
    d: &mut minicbor::Decoder<'_>,
    keys: [&str; N],
) -> Option<[u64; N]> {
    if d.map().ok()? != Some(N as u64) {
        return None;
    }
    let mut fields = [None::<u64>; N];
    for _ in 0..N {
        let key = d.str().ok()?;
        let i = keys.iter().position(|k| *k == key)?;
        if fields[i].replace(d.u64().ok()?).is_some() {
            return None;
        }
    }
    Some(fields.map(|f| f.expect("each of the N keys was seen once")))
}

fn decode_frame_ref(d: &mut minicbor::Decoder<'_>) -> Option<FrameRef> {
    let fields = unsigned_map(d, ["c", "o", "l"])?;
    let [chunk, offset, len] = fields;
    Some(FrameRef { chunk, offset, len })
}

fn decode_parts(d: &mut minicbor::Decoder<'_>) -> Option<Vec<PartRef>> {
    let n = d.array().ok()??;
    // Each part takes at least 40 bytes, so a forged count cannot reserve much.
    let mut parts = Vec::with_capacity(usize::try_from(n).ok()?.min(d.input().len() / 40));
    for _ in 0..n {
        let fields = d.map().ok()??;
        if !(3..=4).contains(&fields) {
            return None;
        }
        let (mut name, mut hash, mut len, mut at) = (None, None, None, None);
        for _ in 0..fields {
            let fresh = match d.str().ok()? {
                "n" => name.replace(d.str().ok()?.to_owned()).is_none(),
                "h" => hash
                    .replace(BlobHash(d.bytes().ok()?.try_into().ok()?))
                    .is_none(),
                "l" => len.replace(d.u64().ok()?).is_none(),
                "a" => at.replace(decode_frame_ref(d)?).is_none(),
                _ => return None,
            };
            if !fresh {
                return None;
            }
        }
        parts.push(PartRef {
            name: name?,
            hash: hash?,
            len: len?,
            at,
        });
    }
    Some(parts)
}

fn decode_meta(d: &mut minicbor::Decoder<'_>) -> Option<BTreeMap<String, String>> {
    let n = d.map().ok()??;
    let mut meta = BTreeMap::new();
    for _ in 0..n {
        let key = d.str().ok()?.to_owned();
        // A repeated key is left to the generic path, which decides as it always has.
        if meta.insert(key, d.str().ok()?.to_owned()).is_some() {
            return None;
        }
    }
    Some(meta)
}
