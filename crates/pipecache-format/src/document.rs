//! Documents: JSON-like values (null, booleans, integers, floats, text, bytes, lists, maps)
//! stored as CBOR, the form transcripts, descriptions and keyframe metadata take in parts.
//!
//! Read as a stream of values handed to a [`DocumentBuilder`], so a binding builds its own
//! values directly (Python objects, say) with no intermediate tree; written through a
//! [`DocumentWriter`]. Any CBOR encoder's output reads (ciborium's f16 floats, indefinite
//! lengths; tags are read through to their content). Untrusted bytes: nesting is bounded by
//! [`MAX_DEPTH`], declared lengths never size an allocation, and trailing bytes are refused.

use minicbor::data::{Int, Type};
use minicbor::{Decoder, Encoder};

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
    /// A byte string.
    fn bytes(&mut self, v: &[u8]) -> Result<Self::Value, Self::Error>;
    /// A list of values already built.
    fn list(&mut self, items: Vec<Self::Value>) -> Result<Self::Value, Self::Error>;
    /// A map of keys and values already built, in document order.
    fn map(&mut self, entries: Vec<(Self::Value, Self::Value)>)
    -> Result<Self::Value, Self::Error>;
}

/// Reads the one document `bytes` hold into `builder`'s values.
pub fn read_document<B: DocumentBuilder>(
    bytes: &[u8],
    builder: &mut B,
) -> Result<B::Value, B::Error> {
    let mut d = Decoder::new(bytes);
    let value = read_value(&mut d, builder, 0)?;
    if d.position() != bytes.len() {
        return Err(corrupt(format!(
            "{} bytes after the document's end",
            bytes.len() - d.position()
        ))
        .into());
    }
    Ok(value)
}

fn read_value<B: DocumentBuilder>(
    d: &mut Decoder<'_>,
    b: &mut B,
    depth: usize,
) -> Result<B::Value, B::Error> {
    if depth > MAX_DEPTH {
        return Err(corrupt(format!("nested deeper than {MAX_DEPTH}")).into());
    }
    let e = |e: minicbor::decode::Error| B::Error::from(corrupt(e));
    match d.datatype().map_err(e)? {
        Type::Null => {
            d.null().map_err(e)?;
            b.null()
        }
        Type::Undefined => {
            d.undefined().map_err(e)?;
            b.null()
        }
        Type::Bool => b.bool(d.bool().map_err(e)?),
        Type::U8 | Type::U16 | Type::U32 | Type::U64 => b.int(i128::from(d.u64().map_err(e)?)),
        Type::I8 | Type::I16 | Type::I32 | Type::I64 | Type::Int => {
            b.int(i128::from(d.int().map_err(e)?))
        }
        Type::F16 | Type::F32 | Type::F64 => b.float(d.f64().map_err(e)?),
        Type::String => b.text(d.str().map_err(e)?),
        Type::StringIndef => {
            let mut s = String::new();
            for piece in d.str_iter().map_err(e)? {
                s.push_str(piece.map_err(e)?);
            }
            b.text(&s)
        }
        Type::Bytes => b.bytes(d.bytes().map_err(e)?),
        Type::BytesIndef => {
            let mut v = Vec::new();
            for piece in d.bytes_iter().map_err(e)? {
                v.extend_from_slice(piece.map_err(e)?);
            }
            b.bytes(&v)
        }
        Type::Array | Type::ArrayIndef => {
            let len = d.array().map_err(e)?;
            let mut items = Vec::new();
            while more(d, len, items.len()).map_err(e)? {
                items.push(read_value(d, b, depth + 1)?);
            }
            b.list(items)
        }
        Type::Map | Type::MapIndef => {
            let len = d.map().map_err(e)?;
            let mut entries = Vec::new();
            while more(d, len, entries.len()).map_err(e)? {
                let k = read_value(d, b, depth + 1)?;
                let v = read_value(d, b, depth + 1)?;
                entries.push((k, v));
            }
            b.map(entries)
        }
        Type::Tag => {
            d.tag().map_err(e)?;
            read_value(d, b, depth + 1)
        }
        other => Err(corrupt(format!("unsupported CBOR item: {other}")).into()),
    }
}

/// Whether a list or map of `len` items (`None`: until a break) has another after `read`.
/// A declared length is only counted against, never allocated: each item consumes input.
fn more(
    d: &mut Decoder<'_>,
    len: Option<u64>,
    read: usize,
) -> Result<bool, minicbor::decode::Error> {
    match len {
        Some(n) => Ok((read as u64) < n),
        None => {
            if d.datatype()? == Type::Break {
                d.skip()?;
                Ok(false)
            } else {
                Ok(true)
            }
        }
    }
}

/// Writes one document, value by value in document order: a list or map announces its
/// length, then its items (a map's as key, value, key, value...).
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

    fn enc(&mut self) -> Encoder<&mut Vec<u8>> {
        Encoder::new(&mut self.out)
    }

    /// `null`.
    pub fn null(&mut self) {
        self.enc().null().expect("a Vec takes every write");
    }

    /// A boolean.
    pub fn bool(&mut self, v: bool) {
        self.enc().bool(v).expect("a Vec takes every write");
    }

    /// An integer; outside CBOR's range (-2^64 ..= 2^64-1) it is an error.
    pub fn int(&mut self, v: i128) -> Result<(), FormatError> {
        let int = Int::try_from(v)
            .map_err(|_| encode_err(format!("integer {v} is outside CBOR's 64-bit range")))?;
        self.enc().int(int).expect("a Vec takes every write");
        Ok(())
    }

    /// A float, as 8 bytes (bit-exact: NaN payloads and -0.0 kept).
    pub fn float(&mut self, v: f64) {
        self.enc().f64(v).expect("a Vec takes every write");
    }

    /// A text string.
    pub fn text(&mut self, v: &str) {
        self.enc().str(v).expect("a Vec takes every write");
    }

    /// A byte string.
    pub fn bytes(&mut self, v: &[u8]) {
        self.enc().bytes(v).expect("a Vec takes every write");
    }

    /// The start of a list of `len` items.
    pub fn list(&mut self, len: u64) {
        self.enc().array(len).expect("a Vec takes every write");
    }

    /// The start of a map of `len` entries.
    pub fn map(&mut self, len: u64) {
        self.enc().map(len).expect("a Vec takes every write");
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
        fn list(&mut self, items: Vec<ciborium::Value>) -> Result<ciborium::Value, FormatError> {
            Ok(ciborium::Value::Array(items))
        }
        fn map(
            &mut self,
            entries: Vec<(ciborium::Value, ciborium::Value)>,
        ) -> Result<ciborium::Value, FormatError> {
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
