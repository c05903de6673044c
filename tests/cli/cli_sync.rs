//! The CLI over two tiers: put with a config, `sync push`, `sync pull --prefix` on another
//! machine, `get`, per-tier `stats --json`, `config` with secrets masked, `gc --remote`.

use pipecache_test_support::servers::S3Server;
use pipecache_test_support::{assert_success, json_like, pipecache_bin, run_cli, stdout_json};

#[test]
fn push_pull_and_read_through_from_the_command_line() {
    let s3 = S3Server::start();
    let work = tempfile::tempdir().unwrap();
    let cfg = work.path().join("pipecache.toml");
    std::fs::write(
        &cfg,
        format!(
            "default_ttl = \"7d\"\n\n[[backends]]\ntype = \"filesystem\"\npriority = 0\nmax_size = \"1GB\"\n\n\
             [[backends]]\ntype = \"s3\"\npriority = 1\nbucket = \"{}\"\nprefix = \"team\"\n\
             endpoint = \"{}\"\nregion = \"us-east-1\"\naccess_key_id = \"testing\"\n\
             secret_access_key = \"s3cr3t-value\"\nwrite_policy = \"write-back\"\ntimeout = \"5s\"\ngc_grace = \"1h\"\n",
            s3.bucket(),
            s3.endpoint()
        ),
    )
    .unwrap();
    let c = cfg.to_str().unwrap();
    let (a, b) = (work.path().join("a"), work.path().join("b"));
    let input = work.path().join("t.json");
    let fp = "s1-00000000000000aa";
    for (i, kind) in ["transcript:model_size=base", "descriptions:model=Qwen2-VL"]
        .iter()
        .enumerate()
    {
        std::fs::write(&input, json_like(i as u64, 20_000)).unwrap();
        let key = format!("video:{fp}:{kind}");
        let out = run_cli(
            pipecache_bin!(),
            &a,
            &["--config", c, "put", &key, input.to_str().unwrap()],
            None,
        );
        assert_success(&out);
    }
    let out = run_cli(
        pipecache_bin!(),
        &a,
        &[
            "--config",
            c,
            "put",
            "video:s1-00000000000000bb:transcript",
            input.to_str().unwrap(),
        ],
        None,
    );
    assert_success(&out);

    let out = run_cli(
        pipecache_bin!(),
        &a,
        &["--config", c, "sync", "push", "--json"],
        None,
    );
    assert_success(&out);
    let push = stdout_json(&out);
    // The write-back workers of the earlier CLI runs may have uploaded some already, and
    // this process's own worker may be uploading one still queued (pending: not pushed
    // twice).
    let n = |field: &str| push[field].as_u64().unwrap();
    assert_eq!(
        n("pushed") + n("already_remote") + n("pending_upload"),
        3,
        "{push}"
    );
    let out = run_cli(
        pipecache_bin!(),
        &a,
        &["--config", c, "sync", "push", "--json"],
        None,
    );
    let again = stdout_json(&out);
    assert_eq!(again["pushed"], 0, "a second push re-uploaded: {again}");
    assert_eq!(
        again["already_remote"].as_u64().unwrap() + again["pending_upload"].as_u64().unwrap(),
        3,
        "{again}"
    );

    let prefix = format!("video:{fp}:");
    let out = run_cli(
        pipecache_bin!(),
        &b,
        &["--config", c, "sync", "pull", "--prefix", &prefix, "--json"],
        None,
    );
    assert_success(&out);
    assert_eq!(stdout_json(&out)["pulled"], 2);
    let out = run_cli(pipecache_bin!(), &b, &["ls", "--json"], None);
    assert_eq!(stdout_json(&out).as_array().unwrap().len(), 2);

    // Read-through of the one not pulled, then the tier figures.
    let out = run_cli(
        pipecache_bin!(),
        &b,
        &["--config", c, "get", "video:s1-00000000000000bb:transcript"],
        None,
    );
    assert_success(&out);
    assert_eq!(out.stdout, json_like(1, 20_000));
    let out = run_cli(
        pipecache_bin!(),
        &b,
        &["--config", c, "stats", "--json"],
        None,
    );
    let stats = stdout_json(&out);
    assert_eq!(stats["tiers"][1]["name"], "s3", "{stats}");
    assert_eq!(stats["tiers"][1]["write_policy"], "write-back");
    // What each tier can do is part of the report: packs read by range, and can be listed.
    let caps = &stats["tiers"][1]["capabilities"];
    assert_eq!(
        (caps["ranged_reads"].as_bool(), caps["list"].as_bool()),
        (Some(true), Some(true)),
        "{stats}"
    );
    assert_eq!(
        stats["tiers"][0]["capabilities"]["native_ttl"], true,
        "{stats}"
    );
    assert_eq!(
        stats["artifacts"], 3,
        "read-through promoted the artifact: {stats}"
    );

    let out = run_cli(pipecache_bin!(), &b, &["--config", c, "config"], None);
    let shown = String::from_utf8_lossy(&out.stdout);
    assert_success(&out);
    assert!(
        !shown.contains("s3cr3t-value") && shown.contains("***"),
        "{shown}"
    );
    assert!(shown.contains("write-back"), "{shown}");

    let out = run_cli(
        pipecache_bin!(),
        &b,
        &["--config", c, "gc", "--remote", "--grace", "1h", "--json"],
        None,
    );
    assert_success(&out);
    let gc = stdout_json(&out);
    assert_eq!(
        (gc["records"].as_u64(), gc["packs_deleted"].as_u64()),
        (Some(3), Some(0)),
        "{gc}"
    );
}
