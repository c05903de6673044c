//! The CLI round-trips a file, stdin and a directory, lists, removes, and reports stats and
//! verify as JSON; exit status is 0 on a hit and 1 on a miss.

use pipecache_test_support::{assert_success, pipecache_bin, random_bytes, run_cli, stdout_json};

#[test]
fn put_get_ls_rm_stats_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let input = tmp.path().join("frame.jpg");
    let data = random_bytes(7, 100_000);
    std::fs::write(&input, &data).unwrap();

    let out = run_cli(
        pipecache_bin!(),
        &store,
        &["put", "video:abc:keyframe", input.to_str().unwrap()],
        None,
    );
    assert_success(&out);
    let out = run_cli(
        pipecache_bin!(),
        &store,
        &["get", "video:abc:keyframe"],
        None,
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, data);

    // stdin, TTL, -o
    let out = run_cli(
        pipecache_bin!(),
        &store,
        &["put", "--ttl", "7d", "t", "-"],
        Some(b"{\"text\":\"hello\"}"),
    );
    assert_success(&out);
    let target = tmp.path().join("t.json");
    let out = run_cli(
        pipecache_bin!(),
        &store,
        &["get", "t", "-o", target.to_str().unwrap()],
        None,
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(std::fs::read(&target).unwrap(), b"{\"text\":\"hello\"}");

    // Directory artifact: nested files come back under -o, and stdout is refused.
    let src = tmp.path().join("frames");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a.jpg"), random_bytes(1, 1000)).unwrap();
    std::fs::write(src.join("sub/b.jpg"), random_bytes(2, 2000)).unwrap();
    std::fs::write(src.join("meta.json"), b"{}").unwrap();
    let out = run_cli(
        pipecache_bin!(),
        &store,
        &[
            "put",
            "--kind",
            "keyframes",
            "dirkey",
            src.to_str().unwrap(),
        ],
        None,
    );
    assert_success(&out);
    let out = run_cli(pipecache_bin!(), &store, &["get", "dirkey"], None);
    assert_eq!(
        out.status.code(),
        Some(2),
        "directory artifact to stdout must be refused"
    );
    let dst = tmp.path().join("restored");
    let out = run_cli(
        pipecache_bin!(),
        &store,
        &["get", "dirkey", "-o", dst.to_str().unwrap()],
        None,
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for f in ["a.jpg", "sub/b.jpg", "meta.json"] {
        assert_eq!(
            std::fs::read(dst.join(f)).unwrap(),
            std::fs::read(src.join(f)).unwrap(),
            "{f}"
        );
    }

    let out = run_cli(pipecache_bin!(), &store, &["ls", "--json"], None);
    let keys: Vec<String> = stdout_json(&out)
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(keys, ["dirkey", "t", "video:abc:keyframe"]);
    let out = run_cli(
        pipecache_bin!(),
        &store,
        &["ls", "--prefix", "video:"],
        None,
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("video:abc:keyframe\t100000\t1"));

    let stats = stdout_json(&run_cli(
        pipecache_bin!(),
        &store,
        &["stats", "--json"],
        None,
    ));
    assert_eq!(stats["artifacts"], 3);
    assert_eq!(stats["blobs"], 5);
    for field in [
        "logical_bytes",
        "stored_bytes",
        "chunk_files",
        "disk_bytes",
        "dedup_ratio",
    ] {
        assert!(stats.get(field).is_some(), "stats --json lacks {field}");
    }
    assert_eq!(
        stats["chunk_files"], 1,
        "every put landed in the same chunk file"
    );

    let out = run_cli(pipecache_bin!(), &store, &["verify", "--json"], None);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout_json(&out)["blobs_checked"], 5);

    let out = run_cli(pipecache_bin!(), &store, &["rm", "t"], None);
    assert_eq!(out.status.code(), Some(0));
    let out = run_cli(pipecache_bin!(), &store, &["get", "t"], None);
    assert_eq!(out.status.code(), Some(1), "miss exits 1");
    assert!(String::from_utf8_lossy(&out.stderr).contains("miss"));
    let out = run_cli(pipecache_bin!(), &store, &["rm", "t"], None);
    assert_eq!(out.status.code(), Some(1), "rm of a missing key exits 1");
}
