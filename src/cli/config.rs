//! The CLI's configuration: a TOML file (`--config FILE` or `$PIPECACHE_CONFIG`) overridden by
//! flags. Unknown fields and bad values are errors that name the file and the field; nothing is
//! silently ignored.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use pipecache::{CostWeighted, EvictionPolicy, Lru, StoreOptions};
use serde::Deserialize;

/// The configuration file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Default TTL, e.g. "7d".
    pub default_ttl: Option<String>,
    /// Size budget, e.g. "50GB".
    pub max_size: Option<String>,
    /// "lru" or "cost-weighted".
    pub eviction_policy: Option<String>,
    /// Recompute cost hints per artifact kind, seconds (cost-weighted policy).
    pub cost_hints: Option<BTreeMap<String, f64>>,
    /// Compact sealed chunks under this live fraction (0..=1).
    pub compact_threshold: Option<f64>,
    /// Chunk file size, e.g. "64MiB".
    pub chunk_size: Option<String>,
    /// Turn zstd off for every blob.
    pub enable_compression: Option<bool>,
}

/// Parses `90s`, `15m`, `12h`, `7d` (or plain seconds); must be positive.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    if num.is_empty() {
        return Err(format!(
            "invalid duration {s:?}: expected a positive number with a unit s, m, h or d (e.g. 90s, 12h, 7d)"
        ));
    }
    let n: u64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?}: number out of range"))?;
    let secs = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => {
            return Err(format!(
                "invalid duration {s:?}: unknown unit {other:?} (use s, m, h or d)"
            ));
        }
    };
    if n == 0 {
        return Err(format!("invalid duration {s:?}: must be positive"));
    }
    n.checked_mul(secs)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("invalid duration {s:?}: too large"))
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
            "invalid size {s:?}: expected a byte count or a number with B, KB, MB, GB, TB, KiB, MiB, GiB or TiB (e.g. 50GB, 500MiB)"
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
        return Err(format!("invalid size {s:?}: must be at least 1 byte"));
    }
    Ok(bytes as u64)
}

impl ConfigFile {
    /// Reads and parses a config file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read config {}", path.display()))?;
        toml::from_str(&text)
            .map_err(|e| anyhow::anyhow!("config {}: {}", path.display(), e.message()))
    }

    /// Applies the file to `options`; `origin` names the file in errors.
    pub fn apply(&self, options: &mut StoreOptions, origin: &str) -> Result<()> {
        let field = |name: &str, e: String| anyhow::anyhow!("config {origin}: {name}: {e}");
        if let Some(v) = &self.default_ttl {
            options.default_ttl = Some(parse_duration(v).map_err(|e| field("default_ttl", e))?);
        }
        if let Some(v) = &self.max_size {
            options.max_size = Some(parse_size(v).map_err(|e| field("max_size", e))?);
        }
        if let Some(v) = &self.chunk_size {
            options.chunk_size = parse_size(v).map_err(|e| field("chunk_size", e))?;
        }
        if let Some(v) = self.compact_threshold {
            if !(0.0..=1.0).contains(&v) {
                return Err(field(
                    "compact_threshold",
                    format!("{v} is not within 0..=1"),
                ));
            }
            options.compact_threshold = v;
        }
        if let Some(v) = self.enable_compression {
            options.compression.enabled = v;
        }
        let policy: Arc<dyn EvictionPolicy> = match self.eviction_policy.as_deref() {
            None | Some("lru") => {
                if self.cost_hints.is_some() && self.eviction_policy.is_some() {
                    bail!(
                        "config {origin}: cost_hints is only used by eviction_policy = \"cost-weighted\""
                    );
                }
                Arc::new(Lru)
            }
            Some("cost-weighted") => {
                let mut p = CostWeighted::default();
                for (kind, cost) in self.cost_hints.clone().unwrap_or_default() {
                    if !(cost.is_finite() && cost > 0.0) {
                        return Err(field(
                            "cost_hints",
                            format!("cost of {kind:?} must be a positive number"),
                        ));
                    }
                    p.costs.insert(kind, cost);
                }
                Arc::new(p)
            }
            Some(other) => {
                return Err(field(
                    "eviction_policy",
                    format!("unknown policy {other:?} (use \"lru\" or \"cost-weighted\")"),
                ));
            }
        };
        options.eviction = policy;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("50GB").unwrap(), 50_000_000_000);
        assert_eq!(parse_size("500MiB").unwrap(), 500 * 1024 * 1024);
        assert_eq!(parse_size("1.5GiB").unwrap(), 1_610_612_736);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("64 KiB").unwrap(), 65536);
        for bad in ["lots", "", "0", "-5MB", "5 parsecs", "GB", "0.1"] {
            assert!(parse_size(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s").unwrap(), Duration::from_secs(90));
        assert_eq!(
            parse_duration("7d").unwrap(),
            Duration::from_secs(7 * 86_400)
        );
        for bad in ["0", "0s", "-5m", "3fortnights", "", "h", "1.5h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn config_rejects_unknown_fields_and_bad_values() {
        let parse = |t: &str| toml::from_str::<ConfigFile>(t);
        assert!(
            parse("max_sise = \"5GB\"").is_err(),
            "typo in a field name must be an error"
        );
        let cfg = parse("max_size = \"lots\"").unwrap();
        let err = cfg
            .apply(&mut StoreOptions::default(), "c.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("max_size") && err.contains("lots"), "{err}");
        let cfg = parse("eviction_policy = \"random\"").unwrap();
        assert!(cfg.apply(&mut StoreOptions::default(), "c.toml").is_err());
        let cfg = parse("default_ttl = \"12h\"\nmax_size = \"50GB\"\neviction_policy = \"cost-weighted\"\n[cost_hints]\ndescriptions = 300.0").unwrap();
        let mut o = StoreOptions::default();
        cfg.apply(&mut o, "c.toml").unwrap();
        assert_eq!(o.max_size, Some(50_000_000_000));
        assert_eq!(o.default_ttl, Some(Duration::from_secs(12 * 3600)));
        assert_eq!(o.eviction.name(), "cost-weighted");
    }
}
