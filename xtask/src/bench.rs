//! `cargo xtask bench`: every bench in one run, then the generated section of
//! docs/performance.md rewritten with their tables, the machine, the date and the commit.
//!
//! Each bench writes its table to `<target dir>/pipecache-bench/<name>.md` (and prints it);
//! this runs them in turn (nothing else should run meanwhile: the figures are ratios against
//! baselines of the same run, which a busy machine still skews), then replaces what lies
//! between [`BEGIN`] and [`END`] in docs/performance.md. The rest of that file (history,
//! readings) is kept.
//!
//! `--quick`: the store bench's 50 KB workloads only, a 1,000-video scale run and a 64 MB
//! remote corpus: minutes instead of most of an hour, for checking the pipeline, not for
//! figures to publish.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{TestServers, cargo, ensure_build_deps, ensure_test_servers, root, run};

/// Marks the start of the generated section of docs/performance.md.
const BEGIN: &str = "<!-- cargo xtask bench: begin (generated; edit xtask/src/bench.rs) -->";
/// Marks its end.
const END: &str = "<!-- cargo xtask bench: end -->";

/// The Rust benches, in the order they run and appear, with what each table shows.
const BENCHES: &[(&str, &str)] = &[
    (
        "store",
        "Store puts and gets against plain files with fsync, cacache, foyer's hybrid cache and the disk's sequential write",
    ),
    (
        "memory",
        "The memory tier: warm hits, and a Zipf trace against LRU",
    ),
    ("pipeline", "A pipeline getter from Rust"),
    ("gc", "GC and compaction over many small blobs"),
    (
        "remote",
        "Remote tiers: push and pull against moto and s3s-fs, read-through, write policies",
    ),
    (
        "scale",
        "The scale run: a store of 10,000 synthetic videos against a 1,000-video one",
    ),
    (
        "server",
        "`pipecache serve` from Rust: the socket against the in-process call, 1 to 16 client processes",
    ),
];

pub(crate) fn bench(rest: &[String]) -> Result<()> {
    let quick = rest.iter().any(|a| a == "--quick");
    if let Some(other) = rest.iter().find(|a| *a != "--quick") {
        bail!("cargo xtask bench: unknown argument {other:?} (only --quick)");
    }
    ensure_build_deps()?;
    let servers = ensure_test_servers()?;
    let out = target_dir().join("pipecache-bench");
    std::fs::create_dir_all(&out).with_context(|| format!("create {}", out.display()))?;
    for (name, _) in BENCHES {
        // A table left by an earlier run must not pass for this one's.
        let _ = std::fs::remove_file(out.join(format!("{name}.md")));
        let mut cmd = cargo();
        cmd.args(["bench", "--bench", name])
            .env("PIPECACHE_MOTO_SERVER", &servers.moto)
            .env("PIPECACHE_S3S_SERVER", &servers.s3s)
            .env("PIPECACHE_REDIS_SERVER", &servers.redis);
        if quick {
            cmd.env("PIPECACHE_BENCH_QUICK", "1")
                .env("PIPECACHE_SCALE_VIDEOS", "1000")
                .env("PIPECACHE_SCALE_SMALL_VIDEOS", "100")
                .env("PIPECACHE_BENCH_REMOTE_MB", "64");
        }
        eprintln!("xtask: cargo bench --bench {name}");
        run(&mut cmd)?;
    }
    for (script, table, _) in PYTHON_BENCHES {
        let _ = std::fs::remove_file(out.join(format!("{table}.md")));
        python_bench(&servers, script, &out.join(format!("{table}.md")), quick)?;
    }
    let section = generated_section(&out, quick)?;
    let doc = root().join("docs/performance.md");
    let text = std::fs::read_to_string(&doc).with_context(|| format!("read {}", doc.display()))?;
    std::fs::write(&doc, replace_section(&text, &section)?)
        .with_context(|| format!("write {}", doc.display()))?;
    eprintln!("xtask: rewrote the generated section of {}", doc.display());
    Ok(())
}

/// The Python benches (script in `crates/pipecache-python/benches/`, table name, title).
const PYTHON_BENCHES: &[(&str, &str, &str)] = &[
    (
        "python_vs_diskcache.py",
        "python",
        "The Python package against diskcache 5.6 (same values, same run)",
    ),
    (
        "server_vs_diskcache.py",
        "python-server",
        "The Python package through `pipecache serve` against diskcache from as many processes",
    ),
];

/// A Python bench against diskcache, through the package built into the test venv.
fn python_bench(servers: &TestServers, script: &str, out: &Path, quick: bool) -> Result<()> {
    let (venv, path) = crate::build_python_package()?;
    let mut cmd = Command::new(venv.join("bin/python"));
    cmd.current_dir(root())
        .env("VIRTUAL_ENV", &venv)
        .env("PATH", &path)
        .env("PIPECACHE_REDIS_SERVER", &servers.redis)
        .env("PIPECACHE_BIN", target_dir().join("release/pipecache"))
        .arg(Path::new("crates/pipecache-python/benches").join(script))
        .arg("--out")
        .arg(out);
    if quick {
        cmd.arg("--quick");
    }
    eprintln!("xtask: python {script}");
    run(&mut cmd)
}

pub(crate) fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"))
}

/// Output of `program args`, trimmed; `"unknown"` when it cannot run.
fn output_of(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .current_dir(root())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown".into())
}

/// The machine the run measured, in one line.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_gib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0.0, |kib| kib as f64 / (1 << 20) as f64);
    format!(
        "{cores} cores, {mem_gib:.0} GiB, Linux {}, {}",
        output_of("uname", &["-r"]),
        output_of("rustc", &["-V"])
    )
}

fn generated_section(out: &Path, quick: bool) -> Result<String> {
    let commit = output_of("git", &["rev-parse", "--short", "HEAD"]);
    let dirty = !output_of("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty();
    let mut s = format!(
        "{BEGIN}\n\n## Latest run: `cargo xtask bench`{}\n\nMachine: {}. Date: {}. Commit: \
         {commit}{}. Every ratio is against a baseline measured in the same run.\n",
        if quick {
            " --quick (not for publishing)"
        } else {
            ""
        },
        machine(),
        output_of("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
        if dirty {
            " (with uncommitted changes)"
        } else {
            ""
        },
    );
    let tables = BENCHES.iter().copied().chain(
        PYTHON_BENCHES
            .iter()
            .map(|(_, name, title)| (*name, *title)),
    );
    for (name, title) in tables {
        let file = out.join(format!("{name}.md"));
        let table = std::fs::read_to_string(&file)
            .with_context(|| format!("bench {name} left no table at {}", file.display()))?;
        s.push_str(&format!("\n### {title} (`{name}`)\n\n{}\n", table.trim()));
    }
    s.push('\n');
    s.push_str(END);
    Ok(s)
}

/// `text` with the generated section replaced by `section` (added after the first heading
/// when the file has none yet).
fn replace_section(text: &str, section: &str) -> Result<String> {
    match (text.find(BEGIN), text.find(END)) {
        (Some(b), Some(e)) if b < e => {
            Ok(format!("{}{section}{}", &text[..b], &text[e + END.len()..]))
        }
        (None, None) => {
            let after_title = text.find("\n\n").map_or(text.len(), |i| i + 2);
            Ok(format!(
                "{}{section}\n\n{}",
                &text[..after_title],
                &text[after_title..]
            ))
        }
        _ => bail!("docs/performance.md has a damaged generated section (markers out of order)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_generated_section_is_replaced_and_the_rest_kept() {
        let first = replace_section("# Performance\n\nintro\n\n## History\n", "GEN1").unwrap();
        assert_eq!(first, "# Performance\n\nGEN1\n\nintro\n\n## History\n");
        let section = format!("{BEGIN}\nnew\n{END}");
        let doc = format!("# P\n\n{BEGIN}\nold\n{END}\n\n## History\nkept\n");
        assert_eq!(
            replace_section(&doc, &section).unwrap(),
            format!("# P\n\n{section}\n\n## History\nkept\n")
        );
        let damaged = format!("{END}\n{BEGIN}");
        assert!(replace_section(&damaged, &section).is_err());
    }
}
