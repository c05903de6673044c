//! The lifecycle commands from the command line: `gc --dry-run/--json`, `compact --json`,
//! `--max-size`, `stats` lifecycle fields, `rebuild-index`, and clear errors for bad TTLs and
//! bad config values.

use pipecache_test_support::{assert_success, pipecache_bin, random_bytes, run_cli, stdout_json};

#[test]
fn gc_compact_budget_and_rebuild_from_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    for i in 0..20u64 {
        let f = tmp.path().join(format!("f{i}"));
        std::fs::write(&f, random_bytes(i, 100_000)).unwrap();
        let out = run_cli(
            pipecache_bin!(),
            &store,
            &["put", &format!("k{i:02}"), f.to_str().unwrap()],
            None,
        );
        assert_success(&out);
    }
    for i in 0..10u64 {
        assert!(
            run_cli(pipecache_bin!(), &store, &["rm", &format!("k{i:02}")], None)
                .status
                .success()
        );
    }
    let dry = stdout_json(&run_cli(
        pipecache_bin!(),
        &store,
        &["gc", "--dry-run", "--json"],
        None,
    ));
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["dead_blobs_dropped"], 10);
    assert_eq!(dry["expired"], 0);
    assert!(
        dry.get("expired_keys").is_none(),
        "keys only with --keys: {dry}"
    );
    let before = stdout_json(&run_cli(
        pipecache_bin!(),
        &store,
        &["stats", "--json"],
        None,
    ));
    assert_eq!(before["artifacts"], 10, "dry run removed nothing");
    assert!(before["dead_bytes"].as_u64().unwrap() >= 1_000_000);

    // A budget of ~500 kB: gc evicts down to it and gives the space back.
    let out = run_cli(
        pipecache_bin!(),
        &store,
        &["--max-size", "500kB", "gc", "--json", "--keys"],
        None,
    );
    assert_success(&out);
    // Not a terminal: no progress bar, nothing on stderr.
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = stdout_json(&out);
    let evicted = r["evicted_keys"].as_array().unwrap();
    assert!(!evicted.is_empty());
    assert_eq!(r["evicted"].as_u64().unwrap(), evicted.len() as u64);
    assert!(evicted.iter().all(|k| k.as_str().unwrap().starts_with('k')));
    assert!(r["disk_bytes_after"].as_u64().unwrap() <= 500_000 + 64 * 1024 * 1024);
    let after = stdout_json(&run_cli(
        pipecache_bin!(),
        &store,
        &["--max-size", "500kB", "stats", "--json"],
        None,
    ));
    assert!(after["disk_bytes"].as_u64().unwrap() <= 500_000, "{after}");
    assert_eq!(after["max_size"], 500_000);
    assert!(after["evicted"].as_u64().unwrap() >= 6);
    let out = run_cli(pipecache_bin!(), &store, &["compact", "--json"], None);
    assert_success(&out);
    assert!(stdout_json(&out)["chunks_compacted"].is_array());

    // The index is lost: reads fail clearly, rebuild-index restores the survivors.
    let survivors: Vec<String> =
        stdout_json(&run_cli(pipecache_bin!(), &store, &["ls", "--json"], None))
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["key"].as_str().unwrap().to_owned())
            .collect();
    assert!(!survivors.is_empty());
    std::fs::remove_dir_all(store.join("index")).unwrap();
    let out = run_cli(pipecache_bin!(), &store, &["get", &survivors[0]], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("rebuild-index"));
    let out = run_cli(pipecache_bin!(), &store, &["rebuild-index", "--json"], None);
    assert_success(&out);
    assert_eq!(stdout_json(&out)["artifacts_restored"], survivors.len());
    for key in &survivors {
        let i: u64 = key[1..].parse().unwrap();
        let out = run_cli(pipecache_bin!(), &store, &["get", key], None);
        assert_eq!(out.stdout, random_bytes(i, 100_000), "{key}");
    }
    assert!(
        run_cli(pipecache_bin!(), &store, &["verify"], None)
            .status
            .success()
    );
}

#[test]
fn bad_lifecycle_inputs_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let check = |args: &[&str], needle: &str| {
        let out = run_cli(pipecache_bin!(), &store, args, Some(b"xxxx"));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: {stderr:?} lacks {needle:?}"
        );
    };
    check(&["put", "--ttl", "0", "k", "-"], "positive");
    check(&["put", "--ttl", "-5m", "k", "-"], "invalid duration `-5m`");
    check(&["put", "--ttl", "3fortnights", "k", "-"], "unknown unit");
    check(&["--max-size", "lots", "stats"], "invalid size `lots`");
    let cfg = tmp.path().join("pipecache.toml");
    std::fs::write(&cfg, "max_size = \"lots\"\n").unwrap();
    check(
        &["--config", cfg.to_str().unwrap(), "put", "k", "-"],
        "(at `max_size = \"lots\"`)",
    );
    std::fs::write(&cfg, "compact_batch_size = \"0\"\n").unwrap();
    check(
        &["--config", cfg.to_str().unwrap(), "put", "k", "-"],
        "(at `compact_batch_size = \"0\"`)",
    );
    std::fs::write(&cfg, "max_sise = \"5GB\"\n").unwrap();
    check(
        &["--config", cfg.to_str().unwrap(), "put", "k", "-"],
        "unknown field `max_sise`",
    );
    // An artifact larger than the whole budget is refused, not an eviction storm.
    check(
        &["--max-size", "2", "put", "big", "-"],
        "larger than the store's max_size",
    );
    assert!(
        !store
            .join("chunks")
            .read_dir()
            .map(|mut d| d.next().is_some())
            .unwrap_or(false)
    );
}
