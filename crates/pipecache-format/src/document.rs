//! Documents: JSON-like values (null, booleans, integers, floats, text, bytes, lists, maps)
//! stored as CBOR, the form transcripts, descriptions and keyframe metadata take in parts.
//!
//! Read as a stream of values handed to a [`DocumentBuilder`], so a binding builds its own
//! values directly (Python objects, say) with no intermediate tree; written through a
//! [`DocumentWriter`]. Any CBOR encoder's output reads (ciborium's f16 floats, indefinite
//! lengths; tags are read through to their content). Untrusted bytes: nesting is bounded by
//! [`MAX_DEPTH`], declared lengths never size an allocation, and trailing bytes are refused.

use crate::FormatError;

/// Deepest nesting of lists and maps read (recursion, so a hostile document cannot exhaust
/// the stack).
pub const MAX_DEPTH: usize = 256;

const WHAT: &str = "document";

fn corrupt(detail: impl std::fmt::Display) -> FormatError {
    FormatError::Corrupt {
        what: WHAT,
        detail: detail.to_string(),
    }
}

/// Builds a caller's values from a document's contents, innermost first.
///
/// Containers receive their items as a drain of one stack the reader shares across the
/// whole document, so reading allocates no vector per list or map (a transcript holds
/// thousands of them).
pub trait DocumentBuilder {
    /// What a document becomes.
    type Value;
    /// Errors of the builder; a [`FormatError`] reports bytes that do not decode.
    type Error: From<FormatError>;
    /// `null` (or CBOR `undefined`).
    fn null(&mut self) -> Result<Self::Value, Self::Error>;
    /// A boolean.
    fn bool(&mut self, v: bool) -> Result<Self::Value, Self::Error>;
    /// An integer, within CBOR's range (-2^64 ..= 2^64-1).
    fn int(&mut self, v: i128) -> Result<Self::Value, Self::Error>;
    /// A float (half and single precision widened).
    fn float(&mut self, v: f64) -> Result<Self::Value, Self::Error>;
    /// A text string.
    fn text(&mut self, v: &str) -> Result<Self::Value, Self::Error>;
    /// A text string as the document holds it, not yet checked as UTF-8: a builder whose
    /// strings check their own input (Python's do) overrides this to check it only once.
    fn text_utf8(&mut self, utf8: &[u8]) -> Result<Self::Value, Self::Error> {
        self.text(std::str::from_utf8(utf8).map_err(corrupt)?)
    }
    /// A byte string.
    fn bytes(&mut self, v: &[u8]) -> Result<Self::Value, Self::Error>;
    /// A list of values already built, in order.
    fn list(&mut self, items: std::vec::Drain<'_, Self::Value>)
    -> Result<Self::Value, Self::Error>;
    /// A map of keys and values already built, alternating (key, value, key, value...) in
    /// document order; always an even number.
    fn map(
        &mut self,
        keys_and_values: std::vec::Drain<'_, Self::Value>,
    ) -> Result<Self::Value, Self::Error>;
}

/// Reads the one document `bytes` hold into `builder`'s values.
pub fn read_document<B: DocumentBuilder>(
    bytes: &[u8],
    builder: &mut B,
) -> Result<B::Value, B::Error> {
    let mut reader = Reader {
        bytes,
        pos: 0,
        stack: Vec::new(),
    };
    reader.value(builder, 0)?;
    if reader.pos != bytes.len() {
        return Err(corrupt(format!(
            "{} bytes after the document's end",
            bytes.len() - reader.pos
        ))
        .into());
    }
    Ok(reader.stack.pop().expect("a read value is on the stack"))
}

/// The additional information of an indefinite-length item's head.
const INDEFINITE: u8 = 31;
/// The "break" byte that ends an indefinite-length item.
const BREAK: u8 = 0xff;

/// Reads CBOR items straight from the bytes. Written here rather than through minicbor's
/// decoder, which the writer uses: its per-item type peek and token decoding took a third
/// of the time of building a transcript's Python objects (measured with perf); a head is
/// one byte plus an argument of 0, 1, 2, 4 or 8 bytes (RFC 8949, section 3).
struct Reader<'b, V> {
    bytes: &'b [u8],
    pos: usize,
    /// Values read but not yet taken by their container.
    stack: Vec<V>,
}

fn truncated() -> FormatError {
    corrupt("unexpected end of input")
}

/// Why a head did not read.
#[derive(Clone, Copy)]
enum BadHead {
    Truncated,
    Reserved(u8),
}

impl From<BadHead> for FormatError {
    fn from(bad: BadHead) -> Self {
        match bad {
            BadHead::Truncated => truncated(),
            BadHead::Reserved(info) => corrupt(format!("reserved additional information {info}")),
        }
    }
}

impl<'b, V> Reader<'b, V> {
    fn take(&mut self, n: usize) -> Result<&'b [u8], FormatError> {
        let bytes: &'b [u8] = self.bytes;
        let end = self
            .pos
            .checked_add(n)
            .filter(|&end| end <= bytes.len())
            .ok_or_else(truncated)?;
        let taken = &bytes[self.pos..end];
        self.pos = end;
        Ok(taken)
    }

    /// The next item's major type, additional information and argument (0 for
    /// [`INDEFINITE`]). Its error is a small value, turned into a [`FormatError`] by the
    /// caller: a head is read for every item, and a large error type in its result cost
    /// instructions on the path that never fails.
    #[inline(always)]
    fn head(&mut self) -> Result<(u8, u8, u64), BadHead> {
        let bytes: &'b [u8] = self.bytes;
        let Some(&initial) = bytes.get(self.pos) else {
            return Err(BadHead::Truncated);
        };
        let (major, info) = (initial >> 5, initial & 0x1f);
        let len = match info {
            0..=23 | INDEFINITE => 0,
            24 => 1,
            25 => 2,
            26 => 4,
            27 => 8,
            reserved => return Err(BadHead::Reserved(reserved)),
        };
        let start = self.pos + 1;
        let Some(arg) = bytes.get(start..start + len) else {
            return Err(BadHead::Truncated);
        };
        self.pos = start + len;
        let arg = match info {
            0..=23 => u64::from(info),
            _ => arg.iter().fold(0u64, |a, &b| (a << 8) | u64::from(b)),
        };
        Ok((major, info, arg))
    }

    /// Whether the next byte ends an indefinite-length item (and if so, consumes it).
    fn at_break(&mut self) -> Result<bool, FormatError> {
        let next = *self.bytes.get(self.pos).ok_or_else(truncated)?;
        self.pos += usize::from(next == BREAK);
        Ok(next == BREAK)
    }

    /// A definite string's bytes; an indefinite one's pieces (each a definite string of
    /// the same major type) joined.
    fn string(
        &mut self,
        major: u8,
        info: u8,
        arg: u64,
    ) -> Result<std::borrow::Cow<'b, [u8]>, FormatError> {
        if info != INDEFINITE {
            let n = usize::try_from(arg).map_err(|_| truncated())?;
            return Ok(self.take(n)?.into());
        }
        let mut joined = Vec::new();
        while !self.at_break()? {
            match self.head()? {
                (m, i, n) if m == major && i != INDEFINITE => {
                    let n = usize::try_from(n).map_err(|_| truncated())?;
                    joined.extend_from_slice(self.take(n)?);
                }
                _ => return Err(corrupt("a piece of an indefinite string of another type")),
            }
        }
        Ok(joined.into())
    }

    /// Reads one value and pushes it.
    fn value<B: DocumentBuilder<Value = V>>(
        &mut self,
        b: &mut B,
        depth: usize,
    ) -> Result<(), B::Error> {
        if depth > MAX_DEPTH {
            return Err(corrupt(format!("nested deeper than {MAX_DEPTH}")).into());
        }
        let (major, info, arg) = self.head().map_err(FormatError::from)?;
        if info == INDEFINITE && matches!(major, 0 | 1 | 6) {
            return Err(corrupt(format!("indefinite length on major type {major}")).into());
        }
        let value = match major {
            0 => b.int(i128::from(arg))?,
            1 => b.int(-1 - i128::from(arg))?,
            2 => b.bytes(&self.string(2, info, arg)?)?,
            3 => {
                let utf8 = self.string(3, info, arg)?;
                b.text_utf8(&utf8)?
            }
            4 => {
                let start = self.stack.len();
                self.items(b, info, arg, 1, depth)?;
                b.list(self.stack.drain(start..))?
            }
            5 => {
                let start = self.stack.len();
                self.items(b, info, arg, 2, depth)?;
                b.map(self.stack.drain(start..))?
            }
            6 => {
                // A tag: read through to its content.
                return self.value(b, depth + 1);
            }
            _ => match (info, arg) {
                (20, _) => b.bool(false)?,
                (21, _) => b.bool(true)?,
                (22 | 23, _) => b.null()?,
                (25, bits) => b.float(f64::from(half::f16::from_bits(bits as u16)))?,
                (26, bits) => b.float(f64::from(f32::from_bits(bits as u32)))?,
                (27, bits) => b.float(f64::from_bits(bits))?,
                (31, _) => return Err(corrupt("a break outside an indefinite item").into()),
                (_, simple) => {
                    return Err(corrupt(format!("unsupported CBOR simple value {simple}")).into());
                }
            },
        };
        self.stack.push(value);
        Ok(())
    }

    /// Reads a container's items (`per_item` values each: 1 for a list, 2 for a map's
    /// entries): `len` of them, or until a break when `info` is [`INDEFINITE`]. A declared
    /// length is only counted against, never allocated: each item consumes input.
    fn items<B: DocumentBuilder<Value = V>>(
        &mut self,
        b: &mut B,
        info: u8,
        len: u64,
        per_item: u64,
        depth: usize,
    ) -> Result<(), B::Error> {
        if info == INDEFINITE {
            while !self.at_break()? {
                for _ in 0..per_item {
                    self.value(b, depth + 1)?;
                }
            }
        } else {
            for _ in 0..len.saturating_mul(per_item) {
                self.value(b, depth + 1)?;
            }
        }
        Ok(())
    }
}

/// Writes one document, value by value in document order: a list or map announces its
/// length, then its items (a map's as key, value, key, value...). Heads are written here
/// directly (shortest argument, as RFC 8949's preferred serialization asks); through
/// minicbor's encoder they were a tenth of the time of encoding a transcript.
#[derive(Debug, Default)]
pub struct DocumentWriter {
    out: Vec<u8>,
}

fn encode_err(e: impl std::fmt::Display) -> FormatError {
    FormatError::Encode {
        what: WHAT,
        detail: e.to_string(),
    }
}

impl DocumentWriter {
    /// An empty document.
    pub fn new() -> Self {
        Self::default()
    }

    /// An item's head: major type and argument, in the fewest bytes.
    #[inline]
    fn head(&mut self, major: u8, arg: u64) {
        let m = major << 5;
        if arg < 24 {
            self.out.push(m | arg as u8);
        } else if arg <= u64::from(u8::MAX) {
            self.out.extend_from_slice(&[m | 24, arg as u8]);
        } else if arg <= u64::from(u16::MAX) {
            self.out.push(m | 25);
            self.out.extend_from_slice(&(arg as u16).to_be_bytes());
        } else if arg <= u64::from(u32::MAX) {
            self.out.push(m | 26);
            self.out.extend_from_slice(&(arg as u32).to_be_bytes());
        } else {
            self.out.push(m | 27);
            self.out.extend_from_slice(&arg.to_be_bytes());
        }
    }

    /// `null`.
    pub fn null(&mut self) {
        self.out.push(0xf6);
    }

    /// A boolean.
    pub fn bool(&mut self, v: bool) {
        self.out.push(if v { 0xf5 } else { 0xf4 });
    }

    /// An integer in `i64`'s range.
    #[inline]
    pub fn i64(&mut self, v: i64) {
        if v >= 0 {
            self.head(0, v as u64);
        } else {
            // -1 - v, without overflow for i64::MIN.
            self.head(1, !(v as u64));
        }
    }

    /// An integer; outside CBOR's range (-2^64 ..= 2^64-1) it is an error.
    pub fn int(&mut self, v: i128) -> Result<(), FormatError> {
        let out_of_range = || encode_err(format!("integer {v} is outside CBOR's 64-bit range"));
        if v >= 0 {
            self.head(0, u64::try_from(v).map_err(|_| out_of_range())?);
        } else {
            self.head(1, u64::try_from(-1 - v).map_err(|_| out_of_range())?);
        }
        Ok(())
    }

    /// A float, as 8 bytes (bit-exact: NaN payloads and -0.0 kept).
    pub fn float(&mut self, v: f64) {
        self.out.push(0xfb);
        self.out.extend_from_slice(&v.to_bits().to_be_bytes());
    }

    /// A text string.
    pub fn text(&mut self, v: &str) {
        self.head(3, v.len() as u64);
        self.out.extend_from_slice(v.as_bytes());
    }

    /// A text string given as UTF-8 its caller vouches for (Python's own encoder, say);
    /// readers check it.
    pub fn text_utf8(&mut self, utf8: &[u8]) {
        self.head(3, utf8.len() as u64);
        self.out.extend_from_slice(utf8);
    }

    /// A byte string.
    pub fn bytes(&mut self, v: &[u8]) {
        self.head(2, v.len() as u64);
        self.out.extend_from_slice(v);
    }

    /// The start of a list of `len` items.
    pub fn list(&mut self, len: u64) {
        self.head(4, len);
    }

    /// The start of a map of `len` entries.
    pub fn map(&mut self, len: u64) {
        self.head(5, len);
    }

    /// The encoded document.
    pub fn finish(self) -> Vec<u8> {
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A builder into ciborium's own value tree, to compare readings.
    struct Tree;

    impl DocumentBuilder for Tree {
        type Value = ciborium::Value;
        type Error = FormatError;
        fn null(&mut self) -> Result<ciborium::Value, FormatError> {
            Ok(ciborium::Value::Null)
        }
        fn bool(&mut self, v: bool) -> Result<ciborium::Value, FormatError> {
            Ok(ciborium::Value::Bool(v))
        }
        fn int(&mut self, v: i128) -> Result<ciborium::Value, FormatError> {
            Ok(ciborium::Value::Integer(v.try_into().map_err(corrupt)?))
        }
        fn float(&mut self, v: f64) -> Result<ciborium::Value, FormatError> {
            Ok(ciborium::Value::Float(v))
        }
        fn text(&mut self, v: &str) -> Result<ciborium::Value, FormatError> {
            Ok(ciborium::Value::Text(v.into()))
        }
        fn bytes(&mut self, v: &[u8]) -> Result<ciborium::Value, FormatError> {
            Ok(ciborium::Value::Bytes(v.into()))
        }
        fn list(
            &mut self,
            items: std::vec::Drain<'_, ciborium::Value>,
        ) -> Result<ciborium::Value, FormatError> {
            Ok(ciborium::Value::Array(items.collect()))
        }
        fn map(
            &mut self,
            mut keys_and_values: std::vec::Drain<'_, ciborium::Value>,
        ) -> Result<ciborium::Value, FormatError> {
            let mut entries = Vec::with_capacity(keys_and_values.len() / 2);
            while let (Some(k), Some(v)) = (keys_and_values.next(), keys_and_values.next()) {
                entries.push((k, v));
            }
            Ok(ciborium::Value::Map(entries))
        }
    }

    fn ciborium_bytes(v: &impl serde::Serialize) -> Vec<u8> {
        let mut out = Vec::new();
        ciborium::into_writer(v, &mut out).unwrap();
        out
    }

    /// What ciborium writes (f16 floats, nested maps) reads back as ciborium reads it, and
    /// what the writer writes ciborium reads.
    #[test]
    fn agrees_with_ciborium_both_ways() {
        use ciborium::Value as V;
        let doc = V::Map(vec![
            (V::Text("text".into()), V::Text("héllo 🎬".into())),
            (V::Text("score".into()), V::Float(1.5)),
            (V::Text("nan".into()), V::Float(f64::NAN)),
            (
                V::Text("neg".into()),
                V::Integer((-(1i128 << 64)).try_into().unwrap()),
            ),
            (
                V::Text("segments".into()),
                V::Array(vec![V::Null, V::Bool(true), V::Bytes(vec![0, 255])]),
            ),
        ]);
        let bytes = ciborium_bytes(&doc);
        let read = read_document(&bytes, &mut Tree).unwrap();
        assert_eq!(format!("{read:?}"), format!("{doc:?}"));

        let mut w = DocumentWriter::new();
        w.map(2);
        w.text("a");
        w.list(3);
        w.int(-5).unwrap();
        w.float(-0.0);
        w.null();
        w.text("b");
        w.bytes(b"xy");
        let back: V = ciborium::from_reader(w.finish().as_slice()).unwrap();
        assert_eq!(
            format!("{back:?}"),
            format!(
                "{:?}",
                V::Map(vec![
                    (
                        V::Text("a".into()),
                        V::Array(vec![V::Integer((-5).into()), V::Float(-0.0), V::Null])
                    ),
                    (V::Text("b".into()), V::Bytes(b"xy".to_vec())),
                ])
            )
        );
        assert!(DocumentWriter::new().int(1i128 << 64).is_err());
    }

    /// Every head length the writer picks reads back through ciborium as written, in the
    /// fewest bytes.
    #[test]
    fn integer_heads_at_every_boundary() {
        let edges: [i128; 16] = [
            0,
            23,
            24,
            255,
            256,
            65_535,
            65_536,
            4_294_967_295,
            4_294_967_296,
            i64::MAX as i128,
            u64::MAX as i128,
            -1,
            -24,
            -25,
            i64::MIN as i128,
            -(1i128 << 64),
        ];
        for v in edges {
            let mut w = DocumentWriter::new();
            w.int(v).unwrap();
            let out = w.finish();
            let back: ciborium::Value = ciborium::from_reader(out.as_slice()).unwrap();
            assert_eq!(i128::from(back.as_integer().unwrap()), v);
            let expected_len = match if v < 0 { -1 - v } else { v } {
                0..24 => 1,
                24..256 => 2,
                256..65_536 => 3,
                65_536..4_294_967_296 => 5,
                _ => 9,
            };
            assert_eq!(out.len(), expected_len, "{v}");
            if let Ok(small) = i64::try_from(v) {
                let mut w = DocumentWriter::new();
                w.i64(small);
                assert_eq!(w.finish(), out, "i64 and i128 paths differ at {v}");
            }
        }
    }

    /// Indefinite lengths, tags and single-precision floats read as their content; a
    /// mismatched piece, an indefinite integer, a stray break and simple values do not.
    #[test]
    fn indefinite_items_tags_and_floats() {
        use ciborium::Value as V;
        let read = |bytes: &[u8]| read_document(bytes, &mut Tree).map(|v| format!("{v:?}"));
        let doc = [
            0x84, // [
            0x5f, 0x42, 1, 2, 0x41, 3, 0xff, // (_ h'0102', h'03')
            0x7f, 0x61, b'a', 0x61, b'b', 0xff, // (_ "a", "b")
            0xbf, 0x9f, 0xc1, 0x01, 0xff, 0xfa, 0x3f, 0xc0, 0, 0,
            0xff, // {_ [_ 1(1)]: 1.5f32}
            0x3b, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, // -(2^64)
        ];
        let expected = V::Array(vec![
            V::Bytes(vec![1, 2, 3]),
            V::Text("ab".into()),
            V::Map(vec![(V::Array(vec![V::Integer(1.into())]), V::Float(1.5))]),
            V::Integer((-(1i128 << 64)).try_into().unwrap()),
        ]);
        assert_eq!(read(&doc).unwrap(), format!("{expected:?}"));
        for bad in [
            &[0x5f, 0x61, b'a', 0xff][..], // a text piece in a byte string
            &[0x1f],                       // an indefinite integer
            &[0xff],                       // a break alone
            &[0xf8, 0x20],                 // a simple value
            &[0x1c],                       // reserved additional information
            &[0x62, 0xff, 0xfe],           // text that is not UTF-8
        ] {
            assert!(read(bad).is_err(), "{bad:x?} was accepted");
        }
    }

    /// Hostile input: deep nesting, huge declared lengths, trailing bytes, truncation are
    /// errors, not crashes or allocations.
    #[test]
    fn hostile_documents_are_refused() {
        let deep = vec![0x81u8; MAX_DEPTH + 10]; // [[[[...
        assert!(read_document(&deep, &mut Tree).is_err());
        let huge = [0x9bu8, 0x0f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]; // 2^60 items
        assert!(read_document(&huge, &mut Tree).is_err());
        assert!(
            read_document(&[0xf6, 0xf6], &mut Tree).is_err(),
            "trailing bytes"
        );
        assert!(
            read_document(&[0x62, b'a'], &mut Tree).is_err(),
            "truncated text"
        );
        assert!(read_document(&[], &mut Tree).is_err());
    }
}
