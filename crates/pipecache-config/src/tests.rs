//! Unit tests of the configuration: units, unknown fields, values checked while reading.

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
fn formatted_values_read_back() {
    for (d, shown) in [
        (90, "90s"),
        (120, "2m"),
        (5400, "90m"),
        (86_400, "1d"),
        (129_600, "36h"),
    ] {
        let d = Duration::from_secs(d);
        assert_eq!(format_duration(d), shown);
        assert_eq!(parse_duration(shown).unwrap(), d);
    }
    for (b, shown) in [
        (1, "1"),
        (1000, "1000"),
        (64 << 20, "64MiB"),
        (3 << 39, "1536GiB"),
    ] {
        assert_eq!(format_size(b), shown);
        assert_eq!(parse_size(shown).unwrap(), b);
    }
}

#[test]
fn config_rejects_unknown_fields_and_bad_values() {
    let parse = |t: &str| toml::from_str::<CacheConfig>(t);
    assert!(
        parse("max_sise = \"5GB\"").is_err(),
        "typo in a field name must be an error"
    );
    // Sizes and durations are checked while the file is read, naming the line.
    let err = CacheConfig::from_toml("max_size = \"lots\"", "c.toml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("max_size = \"lots\"") && err.contains("c.toml"),
        "{err}"
    );
    let err = CacheConfig::from_toml(
        "[[backends]]\ntype = \"redis\"\npriority = 1\nurl = \"redis://h\"\nmax_object_size = \"huge\"\n",
        "c.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("max_object_size = \"huge\""), "{err}");
    // Unknown fields are refused in every backend type, the common remote ones read once.
    let err = CacheConfig::from_toml(
        "[[backends]]\ntype = \"fs-remote\"\npriority = 1\npath = \"/x\"\ntimout = \"5s\"\n",
        "c.toml",
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("timout"), "{err}");
    let cfg = CacheConfig::from_toml(
        "chunk_size = 1048576\n[[backends]]\ntype = \"fs-remote\"\npriority = 2\npath = \"/x\"\ntimeout = \"5s\"\n",
        "c.toml",
    )
    .unwrap();
    assert_eq!(
        cfg.chunk_size,
        Some(ByteSize(1 << 20)),
        "a TOML integer is a byte count"
    );
    let remote = cfg.backends[0].remote().unwrap();
    assert_eq!(
        (remote.priority, remote.timeout),
        (2, Some(TimeSpan(Duration::from_secs(5))))
    );
    let written = toml::to_string(&cfg).unwrap();
    assert_eq!(
        CacheConfig::from_toml(&written, "again").unwrap(),
        cfg,
        "{written}"
    );
    let cfg = parse("eviction_policy = \"random\"").unwrap();
    assert!(cfg.apply(&mut StoreOptions::default(), "c.toml").is_err());
    let cfg = parse("default_ttl = \"12h\"\nmax_size = \"50GB\"\neviction_policy = \"cost-weighted\"\n[cost_hints]\ndescriptions = 300.0").unwrap();
    let mut o = StoreOptions::default();
    cfg.apply(&mut o, "c.toml").unwrap();
    assert_eq!(o.max_size, Some(50_000_000_000));
    assert_eq!(o.default_ttl, Some(Duration::from_secs(12 * 3600)));
    assert_eq!(o.eviction.name(), "cost-weighted");
}

#[test]
fn durability_is_read_applied_and_checked() {
    let mut o = StoreOptions::default();
    assert_eq!(o.durability, pipecache_store::Durability::Fsync);
    let cfg = CacheConfig::from_toml("durability = \"os-buffered\"\n", "c.toml").unwrap();
    cfg.apply(&mut o, "c.toml").unwrap();
    assert_eq!(o.durability, pipecache_store::Durability::OsBuffered);
    let (effective, _) = cfg.effective(std::path::Path::new("/s"), "c.toml").unwrap();
    assert_eq!(
        effective.durability,
        Some(pipecache_store::Durability::OsBuffered)
    );
    let err = CacheConfig::from_toml("durability = \"sometimes\"\n", "c.toml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("durability = \"sometimes\"") && err.contains("os-buffered"),
        "{err}"
    );
}

#[test]
fn compression_codec_is_read_applied_and_checked() {
    let cfg = CacheConfig::from_toml("compression_codec = \"lz4\"\n", "c.toml").unwrap();
    let mut o = StoreOptions::default();
    assert_eq!(o.compression.algorithm, pipecache_store::Algorithm::Zstd);
    cfg.apply(&mut o, "c.toml").unwrap();
    assert_eq!(o.compression.algorithm, pipecache_store::Algorithm::Lz4);
    assert!(o.compression.enabled);
    let err = CacheConfig::from_toml("compression_codec = \"gzip\"\n", "c.toml")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("compression_codec = \"gzip\"") && err.contains("lz4"),
        "{err}"
    );
}
