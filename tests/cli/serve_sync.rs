//! `sync push`, `sync pull` and `gc --remote` while `pipecache serve` holds the store: the
//! CLI runs them as server jobs, with the tiers of the server's configuration, instead of
//! refusing.

use std::path::Path;

use pipecache::tier::WritePolicy;
use pipecache_test_support::served::{spawn_serve_with, wait_for_server};
use pipecache_test_support::tiers::{fs_remote_backend, write_cli_config};
use pipecache_test_support::{assert_success, json_like, run_cli, stdout_json};

/// SIGTERM, then the server's clean exit.
fn stop(mut server: std::process::Child) {
    let killed = std::process::Command::new("kill")
        .arg(server.id().to_string())
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(server.wait().unwrap().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_runs_in_the_server_that_holds_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_pipecache"));
    let config = tmp.path().join("pipecache.toml");
    let remote = tmp.path().join("remote");
    write_cli_config(
        &config,
        vec![fs_remote_backend(&remote, WritePolicy::WriteBack)],
    );
    let c = config.to_str().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    let value = |i: u64| json_like(i, 10_000);

    // Machine a: three artifacts put before its server ran, so only a push uploads them.
    for i in 0..3 {
        let key = format!("video:s1-{i:016x}:transcript");
        assert_success(&run_cli(
            bin,
            &a,
            &["put", &key, "-"],
            Some(value(i).as_slice()),
        ));
    }
    let mut server = spawn_serve_with(bin, &a, &["--config", c]);
    wait_for_server(&a, &mut server).await;
    let out = run_cli(bin, &a, &["sync", "push", "--json"], None);
    assert_success(&out);
    let push = stdout_json(&out);
    assert_eq!(
        (push["artifacts"].as_u64(), push["pushed"].as_u64()),
        (Some(3), Some(3)),
        "{push}"
    );
    assert_eq!(push["tier"], "fs-remote", "{push}");
    // Again: the remote is up to date.
    let again = stdout_json(&run_cli(bin, &a, &["sync", "push", "--json"], None));
    assert_eq!(again["already_remote"], 3, "{again}");
    // Remote GC runs in the server too: three live records, nothing to delete.
    let out = run_cli(bin, &a, &["gc", "--remote", "--dry-run", "--json"], None);
    assert_success(&out);
    let gc = stdout_json(&out);
    assert_eq!(
        (gc["records"].as_u64(), gc["packs_deleted"].as_u64()),
        (Some(3), Some(0)),
        "{gc}"
    );
    stop(server);

    // Machine b pulls through its own server, then reads every value through it.
    let mut server = spawn_serve_with(bin, &b, &["--config", c]);
    wait_for_server(&b, &mut server).await;
    let out = run_cli(
        bin,
        &b,
        &["sync", "pull", "--prefix", "video:", "--json"],
        None,
    );
    assert_success(&out);
    let pull = stdout_json(&out);
    assert_eq!(pull["pulled"], 3, "{pull}");
    for i in 0..3 {
        let key = format!("video:s1-{i:016x}:transcript");
        let out = run_cli(bin, &b, &["get", &key], None);
        assert_success(&out);
        assert_eq!(out.stdout, value(i), "{key}");
    }
    // The text report, from the server's JSON.
    let out = run_cli(bin, &b, &["sync", "pull"], None);
    assert_success(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("pulled 0 artifact(s) from fs-remote (3 already local"),
        "{text}"
    );
    stop(server);
}
