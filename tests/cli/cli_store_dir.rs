//! Which store directory the CLI uses, and how the config's tier structure is checked: one
//! directory for every command (`--dir` or `$PIPECACHE_DIR`, else the config's filesystem
//! `path`, else the user cache dir's `pipecache`, e.g. `$XDG_CACHE_HOME/pipecache`);
//! `config --check` contacts the remote tiers without opening the local store; a misshapen
//! local tier is an error, not ignored.

use pipecache_test_support::{
    assert_success, chunk_files, pipecache_bin, random_bytes, run_cli, run_cli_args, stdout_json,
};

fn write(path: &std::path::Path, text: &str) -> String {
    std::fs::write(path, text).unwrap();
    path.display().to_string()
}

#[test]
fn every_command_uses_one_store_directory() {
    let work = tempfile::tempdir().unwrap();
    let configured = work.path().join("configured");
    let flagged = work.path().join("flagged");
    let cfg = write(
        &work.path().join("c.toml"),
        &format!(
            "[[backends]]\ntype = \"filesystem\"\npriority = 0\npath = {:?}\n",
            configured.display().to_string()
        ),
    );
    let input = work.path().join("input.txt");
    std::fs::write(&input, b"hello").unwrap();
    let input = input.display().to_string();

    // No --dir: the config's path, for the put and for stats alike.
    let out = run_cli_args(
        pipecache_bin!(),
        &["--config", &cfg, "put", "k1", &input],
        None,
    );
    assert_success(&out);
    let out = run_cli_args(
        pipecache_bin!(),
        &["--config", &cfg, "stats", "--json"],
        None,
    );
    assert_success(&out);
    assert_eq!(stdout_json(&out)["artifacts"], 1);
    assert!(configured.join("index").is_dir());

    // --dir wins over the config's path, for every command.
    let out = run_cli(
        pipecache_bin!(),
        &flagged,
        &["--config", &cfg, "put", "k2", &input],
        None,
    );
    assert_success(&out);
    let out = run_cli(
        pipecache_bin!(),
        &flagged,
        &["--config", &cfg, "stats", "--json"],
        None,
    );
    assert_eq!(stdout_json(&out)["artifacts"], 1);
    let first_column = |out: std::process::Output| -> Vec<String> {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split('\t').next().unwrap_or("").to_owned())
            .collect()
    };
    let out = run_cli(pipecache_bin!(), &flagged, &["--config", &cfg, "ls"], None);
    assert_eq!(first_column(out), ["k2"]);
    let out = run_cli_args(pipecache_bin!(), &["--config", &cfg, "ls"], None);
    assert_eq!(first_column(out), ["k1"]);

    // $PIPECACHE_DIR stands for --dir: it wins over the config's path too.
    let from_env = work.path().join("from-env");
    let with_env = |args: &[&str]| {
        std::process::Command::new(pipecache_bin!())
            .args(["--config", &cfg])
            .args(args)
            .env("PIPECACHE_DIR", &from_env)
            .output()
            .unwrap()
    };
    assert_success(&with_env(&["put", "k3", &input]));
    assert!(from_env.join("index").is_dir());
    assert_eq!(first_column(with_env(&["ls"])), ["k3"]);
    let out = run_cli_args(pipecache_bin!(), &["--config", &cfg, "ls"], None);
    assert_eq!(first_column(out), ["k1"]);
}

#[test]
fn without_dir_env_or_config_the_store_is_in_the_user_cache_dir() {
    let work = tempfile::tempdir().unwrap();
    let home = work.path().join("home");
    let xdg = work.path().join("xdg-cache");
    std::fs::create_dir(&home).unwrap();
    let input = work.path().join("input.bin");
    let data = random_bytes(5, 10_000);
    std::fs::write(&input, &data).unwrap();
    // No --dir, no --config, and neither variable that stands for them.
    let run = |args: &[&str]| {
        std::process::Command::new(pipecache_bin!())
            .args(args)
            .env_remove("PIPECACHE_DIR")
            .env_remove("PIPECACHE_CONFIG")
            .env("HOME", &home)
            .env("XDG_CACHE_HOME", &xdg)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    assert_success(&run(&["put", "k", input.to_str().unwrap()]));
    let dir = xdg.join("pipecache");
    assert!(dir.join("index").is_dir(), "no store in {}", dir.display());
    assert!(
        !chunk_files(&dir).is_empty(),
        "no chunk files in {}",
        dir.display()
    );
    assert!(
        !home.join(".cache").exists(),
        "$HOME/.cache used although $XDG_CACHE_HOME is set"
    );
    let out = run(&["get", "k"]);
    assert_success(&out);
    assert!(out.stdout == data, "get k read back different bytes");
    let out = run(&["stats", "--json"]);
    assert_success(&out);
    assert_eq!(stdout_json(&out)["artifacts"], 1);
}

#[test]
fn config_check_never_opens_the_local_store() {
    let work = tempfile::tempdir().unwrap();
    let share = work.path().join("share");
    std::fs::create_dir(&share).unwrap();
    let cfg = write(
        &work.path().join("c.toml"),
        &format!(
            "[[backends]]\ntype = \"fs-remote\"\npriority = 1\npath = {:?}\n",
            share.display().to_string()
        ),
    );
    // A fresh machine: no store yet, and checking does not create one.
    let fresh = work.path().join("never-created");
    let out = run_cli(
        pipecache_bin!(),
        &fresh,
        &["--config", &cfg, "config", "--check"],
        None,
    );
    assert_success(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("every tier answered"));
    assert!(!fresh.exists(), "config --check created the store");
}

#[test]
fn a_misshapen_local_tier_is_an_error() {
    let work = tempfile::tempdir().unwrap();
    let store = work.path().join("store");
    for (toml, needle) in [
        (
            "type = \"filesystem\"\npriority = 1\npath = \"/nonexistent/pc\"\n",
            "priority 0",
        ),
        (
            "type = \"filesystem\"\npriority = 0\nname = \"fast\"\n",
            "always named",
        ),
    ] {
        let cfg = write(
            &work.path().join("c.toml"),
            &format!("[[backends]]\n{toml}"),
        );
        for args in [
            vec!["--config", cfg.as_str(), "stats"],
            vec!["--config", cfg.as_str(), "config", "--check"],
        ] {
            let out = run_cli(pipecache_bin!(), &store, &args, None);
            assert_eq!(out.status.code(), Some(2), "{args:?} {toml}");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains(needle), "{args:?}: {stderr}");
        }
        // Also where no manager is opened, and without --dir (the store dir comes from the
        // config then).
        let out = run_cli_args(
            pipecache_bin!(),
            &["--config", cfg.as_str(), "rebuild-index"],
            None,
        );
        assert_eq!(out.status.code(), Some(2), "rebuild-index {toml}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "rebuild-index: {stderr}");
    }
}
