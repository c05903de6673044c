//! Through the CLI, a store with one damaged artifact: `verify` exits 1 and names the damaged
//! key (text and `--json`), `get` of that key fails without writing a byte to stdout while the
//! other keys still read back intact, and `verify --repair` drops the key (reported), after
//! which `verify` is clean, the key is a miss and the others remain.

use pipecache::BlobHash;
use pipecache_format::{ChunkScanner, FRAME_HEADER_LEN};
use pipecache_test_support::{
    assert_success, chunk_files, flip_byte, pipecache_bin, random_bytes, run_cli, stdout_json,
};

const DAMAGED: &str = "video:b:keyframes";

#[test]
fn verify_names_and_repair_drops_a_damaged_artifact() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let artifacts = [
        ("video:a:keyframes", random_bytes(11, 20_000)),
        (DAMAGED, random_bytes(12, 20_000)),
        ("video:c:keyframes", random_bytes(13, 20_000)),
    ];
    for (i, (key, data)) in artifacts.iter().enumerate() {
        let input = tmp.path().join(format!("in{i}.bin"));
        std::fs::write(&input, data).unwrap();
        assert_success(&run_cli(
            pipecache_bin!(),
            &store,
            &["put", key, input.to_str().unwrap()],
            None,
        ));
    }

    // Flip a byte in the middle of the damaged key's blob payload (located by its hash, so it
    // does not matter whether the CLI stored it compressed).
    let victim = &artifacts[1].1;
    let victim_hash = BlobHash::of(victim);
    let mut flipped = 0;
    for chunk in chunk_files(&store) {
        let mut scanner = ChunkScanner::open(&chunk).unwrap();
        let mut target = None;
        while let Some(frame) = scanner.next_frame().unwrap() {
            if frame.header.hash == victim_hash {
                target = Some(frame.offset + FRAME_HEADER_LEN as u64 + frame.header.stored_len / 2);
            }
        }
        if let Some(offset) = target {
            flip_byte(&chunk, offset, 0x20);
            flipped += 1;
        }
    }
    assert_eq!(
        flipped, 1,
        "the damaged key's blob must be in exactly one frame"
    );

    // verify: exit 1, the damaged key named in text...
    let out = run_cli(pipecache_bin!(), &store, &["verify"], None);
    assert_eq!(
        out.status.code(),
        Some(1),
        "verify of a damaged store: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let damaged_lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("damaged key "))
        .collect();
    assert_eq!(
        damaged_lines,
        [format!("damaged key {DAMAGED}")],
        "verify output: {text}"
    );
    assert!(
        text.contains(&format!("damaged blob {victim_hash}")),
        "verify output: {text}"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("verify found damage"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // ...and in JSON.
    let out = run_cli(pipecache_bin!(), &store, &["verify", "--json"], None);
    assert_eq!(out.status.code(), Some(1));
    let report = stdout_json(&out);
    assert_eq!(report["damaged_keys"], serde_json::json!([DAMAGED]));
    let blobs = report["damaged_blobs"].as_array().expect("damaged_blobs");
    assert_eq!(blobs.len(), 1, "{report}");
    assert_eq!(blobs[0]["hash"], victim_hash.to_hex());

    // get of the damaged key fails without one byte on stdout: an error (exit 2) naming the
    // key as corrupt, never a quiet miss (no other tier can answer for it).
    let out = run_cli(pipecache_bin!(), &store, &["get", DAMAGED], None);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.code() == Some(2),
        "get of the damaged key is an error (exit 2), not a miss: {:?}, stderr: {stderr}",
        out.status
    );
    assert!(
        out.stdout.is_empty(),
        "{} bytes on stdout",
        out.stdout.len()
    );
    assert!(
        stderr.contains("corrupt") && stderr.contains(DAMAGED),
        "stderr: {stderr}"
    );

    // The others still read back byte for byte.
    let check_intact = || {
        for (key, data) in artifacts.iter().filter(|(k, _)| *k != DAMAGED) {
            let out = run_cli(pipecache_bin!(), &store, &["get", key], None);
            assert_success(&out);
            assert!(out.stdout == *data, "{key} read back different bytes");
        }
    };
    check_intact();

    // repair: reports the dropped key and ends clean.
    let out = run_cli(pipecache_bin!(), &store, &["verify", "--repair"], None);
    assert_success(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("dropped key {DAMAGED} ")),
        "repair output: {text}"
    );
    assert!(text.contains("now clean"), "repair output: {text}");

    // A following verify is clean, in text and JSON.
    let out = run_cli(pipecache_bin!(), &store, &["verify"], None);
    assert_success(&out);
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("clean: "),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = run_cli(pipecache_bin!(), &store, &["verify", "--json"], None);
    assert_success(&out);
    let report = stdout_json(&out);
    assert_eq!(report["damaged_keys"], serde_json::json!([]));
    assert_eq!(report["damaged_blobs"], serde_json::json!([]));

    // The damaged key is a miss now (exit 1, nothing on stdout); the others remain.
    let out = run_cli(pipecache_bin!(), &store, &["get", DAMAGED], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(String::from_utf8_lossy(&out.stderr).contains("miss"));
    check_intact();
    let out = run_cli(pipecache_bin!(), &store, &["ls"], None);
    assert_success(&out);
    let keys: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').next().unwrap_or("").to_owned())
        .collect();
    assert_eq!(keys, ["video:a:keyframes", "video:c:keyframes"]);
}
