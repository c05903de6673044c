//! The CLI while `pipecache serve` holds the store: reads, writes, listing, stats, status
//! and the maintenance jobs go through the server; commands that need the store to
//! themselves refuse, naming it; store flags the server ignores are warned about.

use std::path::Path;

use pipecache_test_support::served::{spawn_serve, wait_for_server};
use pipecache_test_support::{assert_success, run_cli, stdout_json};

fn text(out: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_commands_go_through_the_server() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("store");
    let bin = Path::new(env!("CARGO_BIN_EXE_pipecache"));
    let mut server = spawn_serve(bin, &dir);
    wait_for_server(&dir, &mut server).await;
    let cli = |args: &[&str], stdin: Option<&[u8]>| run_cli(bin, &dir, args, stdin);

    assert_success(&cli(&["put", "k", "-", "--kind", "t"], Some(b"hello")));
    let out = cli(&["get", "k"], None);
    assert_success(&out);
    assert_eq!(out.stdout, b"hello");
    assert!(text(&cli(&["ls"], None)).0.starts_with("k\t5\t1\tt"));
    // The server's figures: its memory tier is the first row (a CLI process has none).
    let stats = stdout_json(&cli(&["stats", "--json"], None));
    assert_eq!(stats["artifacts"], 1);
    assert_eq!(stats["tiers"][0]["kind"], "memory");

    // status: the transcript stage cached, the others missing.
    let video = tmp.path().join("v.mp4");
    std::fs::write(&video, b"a video").unwrap();
    let v = video.to_str().unwrap();
    let key = text(&cli(
        &["key", v, "transcript", "model_size=base", "language=en"],
        None,
    ))
    .0;
    assert_success(&cli(&["put", key.trim(), "-"], Some(b"{}")));
    let out = cli(&["status", v, "--json"], None);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out).1);
    let st = stdout_json(&out);
    let transcript = st["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "transcript")
        .unwrap();
    assert_eq!(transcript["cached"], true);

    // Jobs in the server, with their reports.
    let gc = stdout_json(&cli(&["gc", "--json"], None));
    assert!(gc["expired"].is_u64(), "{gc}");
    assert_success(&cli(&["compact", "--dry-run"], None));
    let out = cli(&["verify"], None);
    assert_success(&out);
    assert_eq!(stdout_json(&out)["clean"], true);

    // Refusals and warnings name the server.
    let out = cli(&["verify", "--repair"], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out).1.contains("stop the server first"),
        "{}",
        text(&out).1
    );
    let out = cli(&["--max-size", "1GB", "ls"], None);
    assert_success(&out);
    assert!(
        text(&out).1.contains("--max-size ignored"),
        "{}",
        text(&out).1
    );

    assert_success(&cli(&["rm", "k"], None));
    assert_eq!(cli(&["rm", "k"], None).status.code(), Some(1));
    assert_eq!(cli(&["get", "k"], None).status.code(), Some(1));

    // SIGTERM: a clean stop, and the store is the CLI's own again.
    assert!(
        std::process::Command::new("kill")
            .arg(server.id().to_string())
            .status()
            .unwrap()
            .success()
    );
    assert!(server.wait().unwrap().success());
    assert!(!dir.join("server.json").exists());
    let out = cli(&["stats", "--json"], None);
    assert_eq!(stdout_json(&out)["tiers"][0]["kind"], "local");
}
