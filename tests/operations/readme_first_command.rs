//! The README's first command, run as written (on the warm build): it reaches the demo's
//! output, and the demo leaves the store as it found it (no artifacts, no dead bytes).

use std::path::Path;
use std::process::Command;

use pipecache_test_support::{run_cli, stdout_json};

/// The first command of the README's first `sh` block, without its comment.
fn readme_first_command(root: &Path) -> String {
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let block = readme
        .split("```sh\n")
        .nth(1)
        .expect("the README has a sh block");
    let line = block.lines().next().expect("a first command");
    line.split('#').next().unwrap().trim().to_owned()
}

#[test]
fn the_readmes_first_command_runs_the_demo_and_cleans_up() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let command = readme_first_command(root);
    assert!(
        command.starts_with("cargo "),
        "the first command is a cargo command: {command:?}"
    );
    let store = tempfile::tempdir().unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(&command)
        .current_dir(root)
        .env("PIPECACHE_DIR", store.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{command}: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("second run:"), "{stdout}");
    assert!(stdout.contains("demo artifacts removed"), "{stdout}");

    let bin = Path::new(env!("CARGO_BIN_EXE_pipecache"));
    let stats = stdout_json(&run_cli(bin, store.path(), &["stats", "--json"], None));
    assert_eq!(stats["artifacts"], 0, "{stats}");
    assert_eq!(
        stats["dead_bytes"], 0,
        "the demo gave its bytes back: {stats}"
    );
}
