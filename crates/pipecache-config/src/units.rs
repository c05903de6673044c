//! Sizes and durations as the configuration writes them (`50GB`, `64MiB`, `90s`, `7d`):
//! newtypes parsed while the TOML is read, so a bad value is an error naming its line, and
//! written back in the same form.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A byte count of at least 1: `50GB` (decimal), `500MiB` (binary), `1.5GiB`, or a plain
/// number (a string or a TOML integer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ByteSize(pub u64);

/// A positive duration: `90s`, `15m`, `12h`, `7d`, or plain seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeSpan(pub Duration);

/// A size that may be `0`: a free-space floor (`0`: none), a memory tier's budget (`0`:
/// no memory tier).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FreeSpace(pub u64);

impl ByteSize {
    /// The byte count.
    pub fn bytes(self) -> u64 {
        self.0
    }
}

impl TimeSpan {
    /// The duration.
    pub fn duration(self) -> Duration {
        self.0
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_size(self.0))
    }
}

impl fmt::Display for TimeSpan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

impl fmt::Display for FreeSpace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_size(self.0))
    }
}

impl std::str::FromStr for ByteSize {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_size(s).map(Self)
    }
}

impl std::str::FromStr for TimeSpan {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_duration(s).map(Self)
    }
}

impl std::str::FromStr for FreeSpace {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_free_space(s).map(Self)
    }
}

/// Reads a value written as a string, or as a TOML integer (its decimal form).
struct TextOrInteger<T>(std::marker::PhantomData<T>, &'static str);

impl<T: std::str::FromStr<Err = String>> Visitor<'_> for TextOrInteger<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.1)
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<T, E> {
        v.parse().map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        v.to_string().parse().map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        v.to_string().parse().map_err(E::custom)
    }
}

macro_rules! text_serde {
    ($t:ty, $expecting:literal) => {
        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any(TextOrInteger(std::marker::PhantomData, $expecting))
            }
        }

        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
    };
}

text_serde!(ByteSize, "a size such as \"50GB\" or \"64MiB\"");
text_serde!(TimeSpan, "a duration such as \"90s\" or \"7d\"");
text_serde!(FreeSpace, "a size such as \"2GiB\", or \"0\"");

/// Parses `90s`, `15m`, `12h`, `7d` (or plain seconds); must be positive.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() {
        return Err(format!(
            "invalid duration `{s}`: expected a positive number with a unit s, m, h or d (e.g. 90s, 12h, 7d)"
        ));
    }
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration `{s}`: number out of range"))?;
    let secs = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => {
            return Err(format!(
                "invalid duration `{s}`: unknown unit {other:?} (use s, m, h or d)"
            ));
        }
    };
    if n == 0 {
        return Err(format!("invalid duration `{s}`: must be positive"));
    }
    n.checked_mul(secs)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("invalid duration `{s}`: too large"))
}

/// Parses a free-space floor: a size as [`parse_size`] takes it, or `0` (no floor).
pub fn parse_free_space(s: &str) -> Result<u64, String> {
    if s.trim() == "0" {
        Ok(0)
    } else {
        parse_size(s)
    }
}

/// Parses `50GB` (decimal), `500MiB` (binary), `1.5GiB` or a plain byte count; must be positive.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let unit = unit.trim();
    let bad = || {
        format!(
            "invalid size `{s}`: expected a byte count or a number with B, KB, MB, GB, TB, KiB, MiB, GiB or TiB (e.g. 50GB, 500MiB)"
        )
    };
    if num.is_empty() {
        return Err(bad());
    }
    let value: f64 = num.parse().map_err(|_| bad())?;
    let mult: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "tb" | "t" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0f64.powi(4),
        _ => return Err(bad()),
    };
    let bytes = value * mult;
    if !bytes.is_finite() || bytes < 1.0 || bytes > u64::MAX as f64 {
        return Err(format!("invalid size `{s}`: must be at least 1 byte"));
    }
    Ok(bytes as u64)
}

/// `d` in the largest unit that states it exactly (`7d`, `90s`), as [`parse_duration`] reads.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    [(86_400, "d"), (3600, "h"), (60, "m")]
        .into_iter()
        .find(|(unit, _)| secs > 0 && secs.is_multiple_of(*unit))
        .map_or_else(
            || format!("{secs}s"),
            |(unit, u)| format!("{}{u}", secs / unit),
        )
}

/// `bytes` in the largest binary unit that states it exactly (`64MiB`), as [`parse_size`]
/// reads.
pub fn format_size(bytes: u64) -> String {
    [
        (1u64 << 40, "TiB"),
        (1 << 30, "GiB"),
        (1 << 20, "MiB"),
        (1 << 10, "KiB"),
    ]
    .into_iter()
    .find(|(unit, _)| bytes > 0 && bytes.is_multiple_of(*unit))
    .map_or_else(
        || bytes.to_string(),
        |(unit, u)| format!("{}{u}", bytes / unit),
    )
}
