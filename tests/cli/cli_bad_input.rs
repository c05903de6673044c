//! Bad input gets a one-line error and exit status 2, and never a half-made store.

use pipecache_format::chunk::CHUNK_HEADER_LEN;
use pipecache_test_support::{assert_success, chunk_files, pipecache_bin, run_cli};

fn assert_error(out: &std::process::Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(2),
        "expected exit 2, stderr: {stderr}"
    );
    assert!(
        stderr.to_lowercase().contains(&needle.to_lowercase()),
        "stderr {stderr:?} lacks {needle:?}"
    );
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "one-line message expected: {stderr:?}"
    );
}

#[test]
fn bad_inputs_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let file = tmp.path().join("f");
    std::fs::write(&file, b"x").unwrap();

    assert_error(
        &run_cli(
            pipecache_bin!(),
            &store,
            &["put", "k", "/nonexistent/file"],
            None,
        ),
        "cannot read",
    );
    assert_error(
        &run_cli(
            pipecache_bin!(),
            &store,
            &["put", "", file.to_str().unwrap()],
            None,
        ),
        "key is empty",
    );
    let long = "k".repeat(1025);
    assert_error(
        &run_cli(
            pipecache_bin!(),
            &store,
            &["put", &long, file.to_str().unwrap()],
            None,
        ),
        "at most 1024",
    );
    assert_error(
        &run_cli(
            pipecache_bin!(),
            &store,
            &["put", "--ttl", "3fortnights", "k", "-"],
            Some(b"x"),
        ),
        "unit",
    );
    assert_error(
        &run_cli(
            pipecache_bin!(),
            &store,
            &["put", "--ttl", "0", "k", "-"],
            Some(b"x"),
        ),
        "positive",
    );
    assert!(!store.exists(), "failed puts must not create the store");

    // The store dir is a file.
    assert_error(
        &run_cli(pipecache_bin!(), &file, &["put", "k", "-"], Some(b"x")),
        "is a file",
    );
    // A foreign non-empty directory is not adopted.
    let foreign = tmp.path().join("home");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), b"mine").unwrap();
    assert_error(
        &run_cli(pipecache_bin!(), &foreign, &["put", "k", "-"], Some(b"x")),
        "refusing",
    );
    let left: Vec<_> = std::fs::read_dir(&foreign)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["notes.txt"], "a refused directory is left as it was");
    // Reading a store that does not exist is an error, not a silently created store.
    assert_error(
        &run_cli(
            pipecache_bin!(),
            &tmp.path().join("nope"),
            &["get", "k"],
            None,
        ),
        "not found",
    );

    // A directory input holding something that is not a regular file (here a symlink to a
    // readable file) is refused before any store is made. (An unreadable directory cannot be
    // staged here: the tests run as root, which reads through any permission bits.)
    let linked = tmp.path().join("linked");
    std::fs::create_dir(&linked).unwrap();
    std::fs::write(linked.join("a.jpg"), b"x").unwrap();
    std::os::unix::fs::symlink(&file, linked.join("b.jpg")).unwrap();
    assert_error(
        &run_cli(
            pipecache_bin!(),
            &store,
            &["put", "k", linked.to_str().unwrap()],
            None,
        ),
        "not a regular file",
    );
    assert!(
        !store.exists(),
        "a refused directory put must not create the store"
    );
}

#[test]
fn chunk_from_a_newer_format_version_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let out = run_cli(
        pipecache_bin!(),
        &store,
        &["put", "k", "-"],
        Some(b"payload"),
    );
    assert_success(&out);
    // Rewrite the chunk header as version 2 with a valid checksum: a file from the future.
    let chunk = chunk_files(&store).pop().unwrap();
    let mut bytes = std::fs::read(&chunk).unwrap();
    bytes[8..12].copy_from_slice(&2u32.to_le_bytes());
    let sum = blake3::hash(&bytes[..60]);
    bytes[60..64].copy_from_slice(&sum.as_bytes()[..4]);
    assert!(bytes.len() as u64 > CHUNK_HEADER_LEN);
    std::fs::write(&chunk, &bytes).unwrap();
    let out = run_cli(pipecache_bin!(), &store, &["get", "k"], None);
    assert_error(&out, "version 2");
}
