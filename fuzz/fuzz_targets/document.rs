//! Documents (transcripts, descriptions, metadata as CBOR parts): reading never panics or
//! overflows the stack, and an accepted document written back through `DocumentWriter` reads
//! back the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pipecache_format::FormatError;
use pipecache_format::document::{DocumentBuilder, DocumentWriter, read_document};

/// A document as a plain tree, to compare readings.
#[derive(Debug, PartialEq)]
enum Value {
    Null,
    Bool(bool),
    Int(i128),
    /// Bits, so NaN equals itself.
    Float(u64),
    Text(String),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    Map(Vec<(Value, Value)>),
}

struct Tree;

impl DocumentBuilder for Tree {
    type Value = Value;
    type Error = FormatError;
    fn null(&mut self) -> Result<Value, FormatError> {
        Ok(Value::Null)
    }
    fn bool(&mut self, v: bool) -> Result<Value, FormatError> {
        Ok(Value::Bool(v))
    }
    fn int(&mut self, v: i128) -> Result<Value, FormatError> {
        Ok(Value::Int(v))
    }
    fn float(&mut self, v: f64) -> Result<Value, FormatError> {
        Ok(Value::Float(v.to_bits()))
    }
    fn text(&mut self, v: &str) -> Result<Value, FormatError> {
        Ok(Value::Text(v.into()))
    }
    fn bytes(&mut self, v: &[u8]) -> Result<Value, FormatError> {
        Ok(Value::Bytes(v.into()))
    }
    fn list(&mut self, items: std::vec::Drain<'_, Value>) -> Result<Value, FormatError> {
        Ok(Value::List(items.collect()))
    }
    fn map(&mut self, mut keys_and_values: std::vec::Drain<'_, Value>) -> Result<Value, FormatError> {
        let mut entries = Vec::new();
        while let (Some(k), Some(v)) = (keys_and_values.next(), keys_and_values.next()) {
            entries.push((k, v));
        }
        Ok(Value::Map(entries))
    }
}

fn write(w: &mut DocumentWriter, v: &Value) {
    match v {
        Value::Null => w.null(),
        Value::Bool(b) => w.bool(*b),
        Value::Int(i) => w.int(*i).expect("a read integer is in range"),
        Value::Float(bits) => w.float(f64::from_bits(*bits)),
        Value::Text(s) => w.text(s),
        Value::Bytes(b) => w.bytes(b),
        Value::List(items) => {
            w.list(items.len() as u64);
            items.iter().for_each(|i| write(w, i));
        }
        Value::Map(entries) => {
            w.map(entries.len() as u64);
            for (k, v) in entries {
                write(w, k);
                write(w, v);
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = read_document(data, &mut Tree) else {
        return;
    };
    let mut w = DocumentWriter::new();
    write(&mut w, &doc);
    let again = read_document(&w.finish(), &mut Tree).expect("a written document reads");
    assert_eq!(again, doc);
});
