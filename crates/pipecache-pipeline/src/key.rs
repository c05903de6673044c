//! Canonical, typed, versioned artifact keys:
//! `video:<fingerprint>:<kind>:<name>=<value>:<name>=<value>...`
//!
//! - parameters sorted by name, every one given is in the key (none is ever dropped);
//! - names are `[a-z0-9_]+`; values are canonical: integers in decimal, floats in the shortest
//!   form that reads back to the same f64 (`0.999`, `3000` for 3000.0), booleans `true`/`false`,
//!   segments `<start_ms>-<end_ms>`, strings percent-escaped (`%` `:` `=` and control
//!   characters), with the first character escaped when the text would otherwise read as a
//!   number, boolean or segment, so a string never collides with a typed value;
//! - the key-schema version is the digit in the fingerprint token (`s1-`, `c1-`).
//!
//! `ArtifactKey::parse(k).to_string() == k` for every key this module produces, and parsing
//! rejects anything non-canonical.

use std::collections::BTreeMap;
use std::fmt;

use crate::Fingerprint;
use crate::error::{Result, invalid};

/// A pipeline stage's artifact kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ArtifactKind {
    /// Keyframe images plus per-frame metadata.
    Keyframes,
    /// Whisper transcript.
    Transcript,
    /// VLM frame descriptions.
    Descriptions,
    /// Embedding vectors.
    Embeddings,
}

impl ArtifactKind {
    /// Every kind, in pipeline order.
    pub const ALL: [ArtifactKind; 4] = [
        Self::Keyframes,
        Self::Transcript,
        Self::Descriptions,
        Self::Embeddings,
    ];

    /// Typical seconds to recompute one video's artifact of this kind (the seed pipeline's
    /// measured stage costs): what cost-weighted eviction weighs a kind by unless
    /// `cost_hints` say otherwise.
    pub fn recompute_seconds(self) -> f64 {
        match self {
            Self::Keyframes => 45.0,
            Self::Transcript => 20.0,
            Self::Descriptions => 180.0,
            Self::Embeddings => 30.0,
        }
    }

    /// The kind's name in keys.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Keyframes => "keyframes",
            Self::Transcript => "transcript",
            Self::Descriptions => "descriptions",
            Self::Embeddings => "embeddings",
        }
    }

    /// The type a known parameter of this kind must have.
    fn param_type(self, name: &str) -> Option<ParamType> {
        use ParamType::*;
        match (self, name) {
            (_, "segment") => Some(Segment),
            (Self::Keyframes, "threshold") => Some(Float),
            (Self::Keyframes, "max_frames") => Some(Int),
            (Self::Transcript, "model_size" | "language" | "whisper") => Some(Str),
            (Self::Descriptions, "model" | "prompt_version") => Some(Str),
            (Self::Descriptions, "batch_size") => Some(Int),
            (Self::Embeddings, "model") => Some(Str),
            (Self::Embeddings, "dim") => Some(Int),
            _ => None,
        }
    }
}

impl fmt::Display for ArtifactKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ArtifactKind {
    type Err = crate::PipelineError;
    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                invalid(
                    "artifact kind",
                    format!("{s:?} (known: keyframes, transcript, descriptions, embeddings)"),
                )
            })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ParamType {
    Int,
    Float,
    Str,
    Segment,
}

impl ParamType {
    /// What a value must be, for error messages.
    fn expected(self) -> &'static str {
        match self {
            Self::Int => "an integer",
            Self::Float => "a number",
            Self::Str => "text",
            Self::Segment => "a segment <start_ms>-<end_ms>",
        }
    }
}

/// A typed parameter value.
#[derive(Clone, Debug)]
pub enum ParamValue {
    /// An integer.
    Int(i64),
    /// A finite float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A time range of the video, `[start_ms, end_ms)`.
    Segment(u64, u64),
    /// Free text (model names, languages).
    Str(String),
}

/// Values compare by canonical form: `Float(3000.0) == Int(3000)`, as in the key.
impl PartialEq for ParamValue {
    fn eq(&self, other: &Self) -> bool {
        self.canonical() == other.canonical()
    }
}

impl From<i64> for ParamValue {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}
impl From<u32> for ParamValue {
    fn from(v: u32) -> Self {
        Self::Int(i64::from(v))
    }
}
impl From<f64> for ParamValue {
    fn from(v: f64) -> Self {
        Self::Float(v)
    }
}
impl From<bool> for ParamValue {
    fn from(v: bool) -> Self {
        Self::Bool(v)
    }
}
impl From<&str> for ParamValue {
    fn from(v: &str) -> Self {
        Self::Str(v.to_owned())
    }
}
impl From<String> for ParamValue {
    fn from(v: String) -> Self {
        Self::Str(v)
    }
}

fn canonical_float(v: f64) -> String {
    if v == 0.0 {
        return "0".into(); // -0.0 and 0.0 are one parameter value
    }
    if v.fract() == 0.0 && v.abs() < 9.007_199_254_740_992e15 {
        return format!("{}", v as i64);
    }
    // Rust prints the shortest decimal that parses back to the same f64.
    format!("{v}")
}

/// What untyped text reads as (used for parsing keys and inferring unknown parameters).
fn infer(text: &str) -> Option<ParamValue> {
    match text {
        "true" => return Some(ParamValue::Bool(true)),
        "false" => return Some(ParamValue::Bool(false)),
        _ => {}
    }
    if let Ok(i) = text.parse::<i64>() {
        return Some(ParamValue::Int(i));
    }
    if let Some((a, b)) = text.split_once('-')
        && !a.is_empty()
        && !b.is_empty()
        && a.bytes().all(|c| c.is_ascii_digit())
        && b.bytes().all(|c| c.is_ascii_digit())
        && let (Ok(s), Ok(e)) = (a.parse::<u64>(), b.parse::<u64>())
    {
        return Some(ParamValue::Segment(s, e));
    }
    if let Ok(f) = text.parse::<f64>()
        && f.is_finite()
    {
        return Some(ParamValue::Float(f));
    }
    None
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, c) in s.chars().enumerate() {
        let must = matches!(c, '%' | ':' | '=') || c.is_control() || (i == 0 && infer(s).is_some());
        if must {
            let mut buf = [0u8; 4];
            for b in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{b:02X}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn unescape(s: &str) -> Result<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .ok_or_else(|| invalid("key", format!("truncated escape in {s:?}")))?;
            let b = u8::from_str_radix(hex, 16)
                .map_err(|_| invalid("key", format!("bad escape %{hex} in {s:?}")))?;
            if hex.bytes().any(|c| c.is_ascii_lowercase()) {
                return Err(invalid(
                    "key",
                    format!("escape %{hex} is not canonical (use upper case)"),
                ));
            }
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| invalid("key", format!("escaped value {s:?} is not UTF-8")))
}

impl ParamValue {
    /// The value's text in keys.
    pub fn canonical(&self) -> String {
        match self {
            Self::Int(i) => i.to_string(),
            Self::Float(f) => canonical_float(*f),
            Self::Bool(b) => b.to_string(),
            Self::Segment(s, e) => format!("{s}-{e}"),
            Self::Str(s) => escape(s),
        }
    }

    /// Reads a value a user typed (`threshold=0.9990`, `model=Qwen2-VL`): known parameters of
    /// `kind` are type-checked, unknown ones inferred. The result is canonicalized by
    /// [`ParamValue::canonical`].
    pub fn from_user(kind: ArtifactKind, name: &str, text: &str) -> Result<Self> {
        let value = match kind.param_type(name) {
            // Text as typed: a model named `7` is text, not a number.
            Some(ParamType::Str) => Self::Str(text.to_owned()),
            Some(want) => {
                let inferred = infer(text.trim()).ok_or_else(|| {
                    invalid(
                        "parameter",
                        format!("{name}={text:?}: {name} must be {}", want.expected()),
                    )
                })?;
                coerce(kind, name, inferred)?
            }
            None => infer(text).unwrap_or_else(|| Self::Str(text.to_owned())),
        };
        value.validate(name)?;
        Ok(value)
    }

    fn validate(&self, name: &str) -> Result<()> {
        match self {
            Self::Float(f) if !f.is_finite() => {
                Err(invalid("parameter", format!("{name}: {f} is not finite")))
            }
            Self::Segment(s, e) if s >= e => Err(invalid(
                "parameter",
                format!("{name}: segment {s}-{e} must have start < end"),
            )),
            _ => Ok(()),
        }
    }
}

/// A parsed artifact key.
#[derive(Clone, Debug, PartialEq)]
pub struct ArtifactKey {
    /// Source video fingerprint.
    pub fingerprint: Fingerprint,
    /// Artifact kind.
    pub kind: ArtifactKind,
    /// Parameters by name.
    pub params: BTreeMap<String, ParamValue>,
}

/// `value` as the type `kind` gives parameter `name` (unknown parameters keep theirs): an
/// integer is a valid float and an integral float a valid integer (`3000.0` keys as `3000`);
/// anything else of the wrong type is an error.
fn coerce(kind: ArtifactKind, name: &str, value: ParamValue) -> Result<ParamValue> {
    let Some(want) = kind.param_type(name) else {
        return Ok(value);
    };
    Ok(match (want, value) {
        (ParamType::Float, v @ ParamValue::Float(_)) => v,
        (ParamType::Float, ParamValue::Int(i)) => ParamValue::Float(i as f64),
        (ParamType::Int, v @ ParamValue::Int(_)) => v,
        (ParamType::Int, ParamValue::Float(f)) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
            ParamValue::Int(f as i64)
        }
        (ParamType::Str, v @ ParamValue::Str(_)) => v,
        (ParamType::Segment, v @ ParamValue::Segment(..)) => v,
        (want, v) => {
            return Err(invalid(
                "parameter",
                format!(
                    "{name}={}: {name} must be {}",
                    v.canonical(),
                    want.expected()
                ),
            ));
        }
    })
}

fn check_name(name: &str) -> Result<()> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        return Err(invalid(
            "parameter name",
            format!("{name:?} (use lower-case letters, digits and _)"),
        ));
    }
    Ok(())
}

impl ArtifactKey {
    /// A key with no parameters yet.
    pub fn new(fingerprint: Fingerprint, kind: ArtifactKind) -> Self {
        Self {
            fingerprint,
            kind,
            params: BTreeMap::new(),
        }
    }

    /// Adds a parameter (builder style); invalid names or values are errors, never dropped.
    /// Known parameters of the kind are type-checked (`threshold` a number, `max_frames` an
    /// integer, `model` text...), so a key always parses back to what built it.
    pub fn param(mut self, name: &str, value: impl Into<ParamValue>) -> Result<Self> {
        check_name(name)?;
        let value = coerce(self.kind, name, value.into())?;
        value.validate(name)?;
        if self.params.insert(name.to_owned(), value).is_some() {
            return Err(invalid("parameter", format!("{name} given twice")));
        }
        Ok(self)
    }

    /// The prefix every key of this video shares: `video:<fingerprint>:`.
    pub fn video_prefix(fingerprint: &Fingerprint) -> String {
        format!("video:{fingerprint}:")
    }

    /// The segment parameter, if any.
    pub fn segment(&self) -> Option<(u64, u64)> {
        match self.params.get("segment") {
            Some(ParamValue::Segment(s, e)) => Some((*s, *e)),
            _ => None,
        }
    }

    /// Parses a canonical key; rejects anything that would not print back identically.
    pub fn parse(key: &str) -> Result<Self> {
        let mut it = key.split(':');
        if it.next() != Some("video") {
            return Err(invalid(
                "key",
                format!("{key:?} does not start with video:"),
            ));
        }
        let fingerprint = Fingerprint::parse(
            it.next()
                .ok_or_else(|| invalid("key", "missing fingerprint"))?,
        )?;
        let kind: ArtifactKind = it
            .next()
            .ok_or_else(|| invalid("key", "missing kind"))?
            .parse()?;
        let mut out = Self::new(fingerprint, kind);
        let mut last: Option<&str> = None;
        for seg in it {
            let (name, text) = seg
                .split_once('=')
                .ok_or_else(|| invalid("key", format!("segment {seg:?} is not name=value")))?;
            if text.contains('=') {
                return Err(invalid("key", format!("unescaped '=' in value of {name}")));
            }
            check_name(name)?;
            if last.is_some_and(|l| l >= name) {
                return Err(invalid(
                    "key",
                    format!("parameters are not sorted or repeat at {name}"),
                ));
            }
            last = Some(name);
            let value = if text.contains('%') {
                ParamValue::Str(unescape(text)?)
            } else {
                match kind.param_type(name) {
                    Some(ParamType::Float) => ParamValue::from_user(kind, name, text)?,
                    Some(ParamType::Str) => ParamValue::Str(text.to_owned()),
                    _ => infer(text).unwrap_or_else(|| ParamValue::Str(text.to_owned())),
                }
            };
            // Known parameters are type-checked as the builder checks them: a key that parses
            // is one `ArtifactKey::param` could have built.
            let value = coerce(kind, name, value)?;
            value.validate(name)?;
            if value.canonical() != text {
                return Err(invalid(
                    "key",
                    format!(
                        "{name}={text} is not canonical (canonical: {})",
                        value.canonical()
                    ),
                ));
            }
            out.params.insert(name.to_owned(), value);
        }
        Ok(out)
    }
}

impl fmt::Display for ArtifactKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "video:{}:{}", self.fingerprint, self.kind)?;
        for (name, value) in &self.params {
            write!(f, ":{name}={}", value.canonical())?;
        }
        Ok(())
    }
}
