use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Component, Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use pipecache::tier::{parse_duration, parse_free_space, parse_size};
use pipecache::{Artifact, CacheManager, GcOptions, Part, PutOptions, Store, StoreOptions};

mod config;
mod demo;
mod pipeline;
mod progress;
mod stress;

/// Metadata entry marking an artifact that was put from a directory.
const LAYOUT_META: &str = "pipecache.layout";

#[derive(Debug, Parser)]
#[command(
    name = "pipecache",
    version,
    about = "Content-addressed artifact cache for video pipelines"
)]
struct Cli {
    /// Store directory [default: $PIPECACHE_DIR, else the config's filesystem `path`, else
    /// the user cache dir + /pipecache]. Wins over the config's `path`.
    #[arg(long, global = true, env = "PIPECACHE_DIR")]
    dir: Option<PathBuf>,
    /// Configuration file (TOML) [env: PIPECACHE_CONFIG]
    #[arg(long, global = true, env = "PIPECACHE_CONFIG")]
    config: Option<PathBuf>,
    /// Size budget of the store, e.g. 50GB, 500MiB or a byte count (overrides the config file)
    #[arg(long, global = true, value_parser = parse_size)]
    max_size: Option<u64>,
    /// Free space puts must leave on the store's filesystem, e.g. 2GiB, or 0 [default: the
    /// smaller of 1GiB and 5% of the filesystem] (overrides the config file)
    #[arg(long, global = true, value_parser = parse_free_space)]
    min_free_space: Option<u64>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Store a file, stdin (`-`) or a directory (one part per file) under KEY.
    Put {
        /// Artifact key (UTF-8, 1..=1024 bytes).
        key: String,
        /// File, `-` for stdin, or a directory.
        path: PathBuf,
        /// Artifact kind recorded with it (e.g. keyframes, transcript).
        #[arg(long, default_value = "")]
        kind: String,
        /// Time to live, e.g. 90s, 12h, 7d.
        #[arg(long, value_parser = parse_duration, allow_hyphen_values = true)]
        ttl: Option<Duration>,
        /// Metadata entry NAME=VALUE (repeatable).
        #[arg(long = "meta", value_parser = parse_meta)]
        meta: Vec<(String, String)>,
    },
    /// Write the artifact under KEY to stdout, or to PATH (a directory for directory artifacts).
    Get {
        /// Artifact key.
        key: String,
        /// Output file or directory.
        #[arg(short = 'o', long = "output")]
        output: Option<PathBuf>,
    },
    /// Remove KEY.
    Rm {
        /// Artifact key.
        key: String,
    },
    /// List artifacts.
    Ls {
        /// Only keys starting with this prefix.
        #[arg(long, default_value = "")]
        prefix: String,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Sizes and dedup figures.
    Stats {
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
    /// Read and blake3-check every chunk file and reconcile it with the index.
    Verify {
        /// JSON report.
        #[arg(long)]
        json: bool,
        /// Fix what can be fixed: drop artifacts whose bytes are lost, correct refcounts.
        #[arg(long)]
        repair: bool,
    },
    /// Remove expired artifacts, evict to the size budget, compact chunks, drop dead blobs.
    /// With --remote: mark and sweep a remote tier's unreferenced packs instead.
    Gc {
        /// Report what would be removed without removing anything.
        #[arg(long)]
        dry_run: bool,
        /// JSON report.
        #[arg(long)]
        json: bool,
        /// Collect a remote (s3 or fs-remote) tier instead of the local store.
        #[arg(long)]
        remote: bool,
        /// With --remote: never delete an object younger than this (default: the tier's
        /// gc_grace, 24h). Longer only: pushers reuse packs up to half of gc_grace old.
        #[arg(long, value_parser = parse_duration, requires = "remote")]
        grace: Option<Duration>,
        /// With --remote: which tier (default: the first s3 or fs-remote tier).
        #[arg(long, requires = "remote")]
        tier: Option<String>,
    },
    /// Push the local tier to a remote tier, or pull a remote tier into the local one.
    Sync {
        #[command(subcommand)]
        direction: SyncDirection,
    },
    /// Print the effective configuration (secrets masked).
    Config {
        /// Also contact every remote tier and report whether it answers.
        #[arg(long)]
        check: bool,
    },
    /// Copy live data out of mostly-dead chunk files and remove them.
    Compact {
        /// Report what would be compacted without changing anything.
        #[arg(long)]
        dry_run: bool,
        /// JSON report.
        #[arg(long)]
        json: bool,
    },
    /// Rebuild the index from the chunk files alone (after the index directory was lost).
    RebuildIndex {
        /// Replace an index that looks complete.
        #[arg(long)]
        force: bool,
        /// JSON report.
        #[arg(long)]
        json: bool,
    },
    /// Concurrent puts and deletes of generated artifacts until killed, printing `BEGIN key` before
    /// and `ACK key digest|deleted` after each operation (used by the crash test).
    #[command(hide = true)]
    StressPut {
        /// Seed of the generator.
        #[arg(long)]
        seed: u64,
        /// Distinct keys.
        #[arg(long, default_value_t = 64)]
        keys: usize,
        /// Concurrent writer tasks (each owns a disjoint set of keys).
        #[arg(long, default_value_t = 4)]
        concurrency: usize,
        /// Stop after this many operations (default: run until killed).
        #[arg(long)]
        ops: Option<u64>,
        /// Also run gc and compaction in a loop beside the writers.
        #[arg(long)]
        gc: bool,
    },
    /// Run a synthetic video pipeline through the cache twice (the README's first command).
    Demo {
        /// Number of synthetic videos.
        #[arg(long, default_value_t = 20)]
        videos: usize,
        /// Keyframes per video.
        #[arg(long, default_value_t = 60)]
        frames: usize,
        /// Keep the demo's artifacts in the store afterwards.
        #[arg(long)]
        keep: bool,
    },
    /// Print the canonical cache key of a video's artifact.
    Key {
        /// The source video.
        video: PathBuf,
        /// keyframes, transcript, descriptions or embeddings.
        kind: String,
        /// Parameters, name=value (e.g. threshold=0.999 max_frames=3000).
        params: Vec<String>,
        /// How the video is fingerprinted.
        #[arg(long, default_value = "stat")]
        fingerprint: String,
    },
    /// What is cached for a video (as it is now) and what is missing, per pipeline stage.
    Status {
        /// The source video.
        video: PathBuf,
        /// Stages to check, from a file of their own (TOML: [keyframes] threshold,
        /// max_frames; [transcript] model_size, language; [descriptions] model, batch_size;
        /// [embeddings] model). The same tables may instead sit in the --config file next to
        /// the cache settings (`status VIDEO --config pipeline.toml`). Default: all stages at
        /// the seed's defaults.
        #[arg(long = "pipeline")]
        pipeline: Option<PathBuf>,
        /// How the video is fingerprinted.
        #[arg(long, default_value = "stat")]
        fingerprint: String,
        /// JSON output.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum SyncDirection {
    /// Upload every local artifact the remote lacks (idempotent, resumable).
    Push {
        /// Remote tier (default: the first s3 or fs-remote tier).
        #[arg(long)]
        tier: Option<String>,
        /// Bytes of artifacts per pack uploaded, e.g. 64MiB [default: 16MiB].
        #[arg(long, value_parser = parse_size)]
        batch_size: Option<u64>,
        /// JSON report.
        #[arg(long)]
        json: bool,
    },
    /// Copy remote artifacts into the local tier (cache warming).
    Pull {
        /// Only keys starting with this prefix, e.g. video:<fingerprint>:
        #[arg(long, default_value = "")]
        prefix: String,
        /// Remote tier (default: the first s3 or fs-remote tier).
        #[arg(long)]
        tier: Option<String>,
        /// JSON report.
        #[arg(long)]
        json: bool,
    },
}

fn parse_meta(s: &str) -> Result<(String, String), String> {
    let (k, v) = s
        .split_once('=')
        .ok_or_else(|| format!("invalid --meta {s:?}: expected NAME=VALUE"))?;
    if k.is_empty() {
        return Err(format!("invalid --meta {s:?}: empty name"));
    }
    Ok((k.to_owned(), v.to_owned()))
}

fn default_dir() -> Result<PathBuf> {
    let base =
        dirs::cache_dir().context("no user cache directory; pass --dir or set PIPECACHE_DIR")?;
    Ok(base.join("pipecache"))
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help, --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // One line, like every other error; `--help` has the details.
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!("pipecache: {first} (see --help)");
            return ExitCode::from(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("PIPECACHE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pipecache: error: cannot start runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pipecache: error: {}", error_chain(&e));
            if let Some(hint) = next_step(&e) {
                eprintln!("pipecache: {hint}");
            }
            ExitCode::from(2)
        }
    }
}

const INDEX_DAMAGE_HINT: &str = "the index is damaged; run `pipecache rebuild-index --force` (it rebuilds it from the chunk files)";

/// What to do next, for the errors an operator can act on (classified by kind).
fn next_step(e: &anyhow::Error) -> Option<&'static str> {
    let store_error = e
        .chain()
        .find_map(|c| c.downcast_ref::<pipecache::Error>())?;
    if matches!(store_error, pipecache::Error::IndexMissing { .. }) {
        None // its message names the command already
    } else if store_error.is_index_damage() {
        Some(INDEX_DAMAGE_HINT)
    } else if store_error.is_no_space() {
        Some(
            "the disk is full or under min_free_space; free space with `pipecache rm KEY`, `pipecache gc` or `pipecache gc --max-size SIZE`",
        )
    } else {
        None
    }
}

/// `e` and its causes joined by ": ", leaving out a cause the message before it already
/// quotes (library errors such as "tier s3: {source}" show their source themselves).
fn error_chain(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

async fn run(cli: Cli) -> Result<ExitCode> {
    // Validate inputs before opening (and maybe creating) a store.
    let put_input = match &cli.command {
        Command::Put {
            key,
            path,
            kind,
            meta,
            ..
        } => {
            pipecache::validate_key(key)?;
            Some(read_input(path, kind, meta)?)
        }
        Command::Get { key, .. } | Command::Rm { key } => {
            pipecache::validate_key(key)?;
            None
        }
        _ => None,
    };
    let (file, origin) = match &cli.config {
        Some(path) => (config::load(path)?, path.display().to_string()),
        None => (config::ConfigFile::default(), "(defaults)".to_owned()),
    };
    let (mut config, configured_stages) = (file.cache, file.pipeline);
    // Reads create the local store only when remote tiers can fill it (read-through).
    let has_remotes = config
        .backends
        .iter()
        .any(|b| !matches!(b, pipecache::tier::BackendConfig::Filesystem { .. }));
    let create = matches!(
        cli.command,
        Command::Put { .. }
            | Command::Demo { .. }
            | Command::StressPut { .. }
            | Command::Sync { .. }
    ) || (has_remotes && matches!(cli.command, Command::Get { .. }));
    // The CLI runs GC explicitly (`gc`, or after a put that goes over budget): no background
    // thread in a short-lived process.
    let mut options = StoreOptions {
        create_if_missing: create,
        gc_interval: None,
        ..StoreOptions::default()
    };
    if let Some(max) = cli.max_size {
        config::override_max_size(&mut config, max);
    }
    if let Some(min_free) = cli.min_free_space {
        config.min_free_space = Some(min_free.to_string());
    }
    // One store directory for every command: --dir (or $PIPECACHE_DIR), else the config's
    // filesystem path, else the default.
    // The tier structure is checked here, for every command (rebuild-index and friends
    // never open a manager that would check it).
    let configured = config.local_path(&origin)?.map(Path::to_owned);
    let dir = match cli.dir {
        Some(d) => {
            config::override_dir(&mut config, &d);
            d
        }
        None => match configured {
            Some(p) => p,
            None => default_dir()?,
        },
    };
    if let Command::Config { check } = &cli.command {
        CacheManager::validate(&config, &origin)?;
        let (effective, notes) = config.effective(&dir, &origin)?;
        println!(
            "# pipecache: effective configuration of {origin}; defaults written out, secrets masked"
        );
        for note in notes {
            println!("# {note}");
        }
        print!("{}", effective.to_masked_toml());
        if *check {
            // Without opening the local store: it may not exist yet, or be in use.
            CacheManager::check_config(&config, &origin).await?;
            eprintln!("every tier answered");
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Key {
        video,
        kind,
        params,
        fingerprint,
    } = &cli.command
    {
        pipeline::key(video, kind, params, fingerprint.parse()?)?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::RebuildIndex { force, json } = cli.command {
        config.apply(&mut options, &origin)?;
        let bar = progress::Bar::new("rebuild-index");
        let report = Store::rebuild_index(&dir, options, force, move |done, total| {
            bar.set(done, total)
        })
        .await
        .with_context(|| format!("rebuild index of {}", dir.display()))?;
        if json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            println!(
                "restored {} artifacts and {} blobs from {} chunk files; {} lost, {} damaged chunk(s)",
                report.artifacts_restored,
                report.blobs_found,
                report.chunks_scanned,
                report.lost_keys.len(),
                report.chunks_damaged.len()
            );
            for k in &report.lost_keys {
                println!("lost key {k}");
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let manager = match CacheManager::open(&config, &dir, options, &origin).await {
        Ok(manager) => manager,
        // For verify, a damaged index is a finding like any other damage.
        Err(e) if e.is_index_damage() && matches!(cli.command, Command::Verify { .. }) => {
            println!("damaged index: {e}");
            eprintln!("pipecache: verify found damage: {INDEX_DAMAGE_HINT}");
            return Ok(ExitCode::from(1));
        }
        Err(e) => {
            return Err(anyhow::Error::new(e).context(format!("open store {}", dir.display())));
        }
    };
    let store = manager.local().clone();
    let code = match cli.command {
        Command::Put { key, ttl, .. } => {
            let artifact = put_input.expect("read above");
            let (parts, size) = (artifact.parts.len(), artifact.logical_size());
            manager
                .put_with(
                    &key,
                    artifact,
                    PutOptions {
                        ttl,
                        ..PutOptions::default()
                    },
                )
                .await?;
            eprintln!("stored {key} ({parts} part(s), {size} bytes)");
            if let Some(max) = store.options().max_size {
                let s = store.stats().await?;
                if s.stored_bytes > max || s.disk_bytes > max + store.options().chunk_size {
                    let r = store.gc(GcOptions::default()).await?;
                    eprintln!(
                        "over budget: evicted {} artifact(s), reclaimed {} bytes",
                        r.evicted.len(),
                        r.bytes_reclaimed
                    );
                }
            }
            ExitCode::SUCCESS
        }
        Command::Get { key, output } => match manager.get(&key).await? {
            None => {
                eprintln!("pipecache: miss: {key}");
                ExitCode::from(1)
            }
            Some(artifact) => {
                write_output(&key, &artifact, output.as_deref())?;
                ExitCode::SUCCESS
            }
        },
        Command::Rm { key } => {
            if manager.delete(&key).await? {
                ExitCode::SUCCESS
            } else {
                eprintln!("pipecache: not found: {key}");
                ExitCode::from(1)
            }
        }
        Command::Ls { prefix, json } => {
            let entries = store.list(&prefix).await?;
            let mut out = std::io::stdout().lock();
            if json {
                serde_json::to_writer_pretty(&mut out, &entries)?;
                writeln!(out)?;
            } else {
                for e in entries {
                    writeln!(out, "{}\t{}\t{}\t{}", e.key, e.size, e.parts, e.kind)?;
                }
            }
            ExitCode::SUCCESS
        }
        Command::Stats { json } => {
            let s = store.stats().await?;
            if json {
                let mut v = serde_json::to_value(&s)?;
                v["tiers"] = serde_json::to_value(manager.tier_stats())?;
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                println!("store          {}", dir.display());
                println!("artifacts      {}", s.artifacts);
                println!("blobs          {}", s.blobs);
                println!("logical_bytes  {}", s.logical_bytes);
                println!("unique_bytes   {}", s.unique_bytes);
                println!("stored_bytes   {}", s.stored_bytes);
                println!("dead_bytes     {}", s.dead_bytes);
                println!("expired        {}", s.expired);
                println!("evicted        {}", s.evicted);
                match s.max_size {
                    Some(m) => println!("max_size       {m}"),
                    None => println!("max_size       unlimited"),
                }
                println!("chunk_files    {}", s.chunk_files);
                println!("disk_bytes     {}", s.disk_bytes);
                println!("dedup_ratio    {:.2}", s.dedup_ratio);
                println!("compression    {:.2}", s.compression_ratio);
                println!("fs_free_bytes  {}", s.fs.free_bytes);
                println!("fs_total_bytes {}", s.fs.total_bytes);
                println!("min_free_space {}", s.min_free_space);
                if s.read_only {
                    println!("read_only      true (the filesystem was full at open)");
                }
            }
            ExitCode::SUCCESS
        }
        Command::Verify { json, repair: true } => {
            let r = store.repair().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                for k in &r.dropped_keys {
                    println!("dropped key {k} (its bytes are lost; it is a miss now)");
                }
                println!(
                    "repair: dropped {} key(s), {} blob record(s), {} chunk record(s); fixed {} refcount(s); now {}",
                    r.dropped_keys.len(),
                    r.dropped_blobs,
                    r.dropped_chunks.len(),
                    r.refcounts_fixed,
                    if r.after.is_clean() {
                        "clean"
                    } else {
                        "still damaged"
                    }
                );
            }
            if r.after.is_clean() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Command::Gc {
            dry_run,
            json,
            remote: true,
            grace,
            tier,
        } => {
            manager.check().await?;
            let r = manager.remote_gc(tier.as_deref(), grace, dry_run).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                let verb = if dry_run { "would delete" } else { "deleted" };
                println!(
                    "remote gc {verb} {} unreferenced pack(s) ({} bytes) and {} expired record(s); kept {} pack(s) inside the grace period; {} live record(s)",
                    r.packs_deleted,
                    r.bytes_reclaimed,
                    r.expired_records,
                    r.packs_in_grace,
                    r.records
                );
                for c in &r.corrupt_records {
                    println!("corrupt record {c}");
                }
            }
            ExitCode::SUCCESS
        }
        Command::Gc { dry_run, json, .. } => {
            let bar = progress::Bar::new("gc");
            let r = store
                .gc_with_progress(
                    GcOptions {
                        dry_run,
                        ..GcOptions::default()
                    },
                    move |phase, done, total| bar.phase(phase, done, total),
                )
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                let verb = if dry_run { "would remove" } else { "removed" };
                println!(
                    "gc {verb} {} expired and {} evicted artifact(s), {} dead blob record(s); compacted {} chunk(s); reclaimed {} bytes ({} -> {} on disk)",
                    r.expired.len(),
                    r.evicted.len(),
                    r.dead_blobs_dropped + r.compaction.dead_blobs_dropped,
                    r.compaction.chunks_compacted.len(),
                    r.bytes_reclaimed,
                    r.disk_bytes_before,
                    r.disk_bytes_after
                );
            }
            ExitCode::SUCCESS
        }
        Command::Compact { dry_run, json } => {
            let bar = progress::Bar::new("compact");
            let r = store
                .compact_with_progress(dry_run, move |phase, done, total| {
                    bar.phase(phase, done, total)
                })
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                let verb = if dry_run {
                    "would compact"
                } else {
                    "compacted"
                };
                println!(
                    "{verb} {} chunk(s): {} blobs and {} record frames copied ({} bytes), {} bytes of chunk files removed",
                    r.chunks_compacted.len(),
                    r.blobs_moved,
                    r.frames_moved,
                    r.bytes_copied,
                    r.bytes_removed
                );
                if !r.chunks_skipped.is_empty() {
                    println!(
                        "skipped damaged chunk(s) {:?}: run `pipecache verify`",
                        r.chunks_skipped
                    );
                }
            }
            ExitCode::SUCCESS
        }
        Command::Sync { direction } => {
            manager.check().await?;
            match direction {
                SyncDirection::Push {
                    tier,
                    batch_size,
                    json,
                } => {
                    let bar = progress::Bar::new("push");
                    let r = manager
                        .sync_push(tier.as_deref(), batch_size, &move |d, t| bar.set(d, t))
                        .await?;
                    if json {
                        println!("{}", serde_json::to_string_pretty(&r)?);
                    } else {
                        println!(
                            "pushed {} of {} artifact(s) to {} ({} already there, {} left to the write-back queue): {} blob(s) in {} pack(s), {} reused, {} bytes up in {} request(s)",
                            r.pushed,
                            r.artifacts,
                            r.tier,
                            r.already_remote,
                            r.pending_upload,
                            r.blobs_uploaded,
                            r.packs,
                            r.blobs_reused,
                            r.bytes_up,
                            r.put_requests
                        );
                    }
                }
                SyncDirection::Pull { prefix, tier, json } => {
                    let bar = progress::Bar::new("pull");
                    let r = manager
                        .sync_pull(tier.as_deref(), &prefix, &move |d, t| bar.set(d, t))
                        .await?;
                    if json {
                        println!("{}", serde_json::to_string_pretty(&r)?);
                    } else {
                        println!(
                            "pulled {} artifact(s) from {} ({} already local, {} gone, {} awaiting upload, {} corrupt), {} bytes down",
                            r.pulled,
                            r.tier,
                            r.already_local,
                            r.gone,
                            r.pending_upload,
                            r.corrupt.len(),
                            r.bytes_down
                        );
                    }
                    if !r.corrupt.is_empty() {
                        for k in &r.corrupt {
                            eprintln!("pipecache: corrupt remote copy not pulled: {k}");
                        }
                        return Ok(ExitCode::from(1));
                    }
                }
            }
            ExitCode::SUCCESS
        }
        Command::Config { .. } | Command::RebuildIndex { .. } | Command::Key { .. } => {
            unreachable!("handled before the store is opened")
        }
        Command::Status {
            video,
            pipeline,
            fingerprint,
            json,
        } => {
            let config = match (pipeline, configured_stages) {
                (Some(_), Some(_)) => anyhow::bail!(
                    "pipeline stages given twice: in --pipeline and in the config file {origin}"
                ),
                (Some(path), None) => pipeline::load_config(&path)?,
                (None, Some(stages)) => stages,
                (None, None) => pipecache_pipeline::PipelineConfig::full(),
            };
            if pipeline::status(&store, &video, &config, fingerprint.parse()?, json).await? {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Command::Verify {
            json,
            repair: false,
        } => {
            let bar = progress::Bar::new("verify");
            let report = store
                .verify_with_progress(move |done, total| bar.set(done, total))
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else if report.is_clean() {
                println!(
                    "clean: {} blobs ({} bytes) in {} artifacts verified",
                    report.blobs_checked, report.bytes_checked, report.artifacts_checked
                );
            } else {
                for b in &report.damaged_blobs {
                    println!(
                        "damaged blob {} (chunk {} offset {}): {}",
                        b.hash, b.chunk, b.offset, b.error
                    );
                }
                for c in &report.missing_chunk_files {
                    println!("missing or short chunk file {c}");
                }
                for m in &report.refcount_mismatches {
                    println!(
                        "refcount mismatch {}: recorded {} actual {}",
                        m.hash, m.recorded, m.actual
                    );
                }
                for m in &report.live_bytes_mismatches {
                    println!(
                        "live bytes mismatch in chunk {}: recorded {} actual {}",
                        m.chunk, m.recorded, m.actual
                    );
                }
                for k in &report.missing_record_frames {
                    println!("record frame missing for {k} (rebuild-index could not restore it)");
                }
                for c in &report.orphan_chunk_files {
                    println!("orphan chunk file {c}");
                }
                for k in &report.damaged_keys {
                    println!("damaged key {k}");
                }
                if let Some(d) = &report.index_damage {
                    println!("damaged index: {d}");
                    eprintln!("pipecache: {INDEX_DAMAGE_HINT}");
                }
            }
            if report.is_clean() {
                ExitCode::SUCCESS
            } else {
                eprintln!(
                    "pipecache: verify found damage: {} blob(s), {} key(s), {} refcount and {} live-byte mismatch(es), {} missing and {} orphan chunk file(s), {} missing record frame(s)",
                    report.damaged_blobs.len(),
                    report.damaged_keys.len(),
                    report.refcount_mismatches.len(),
                    report.live_bytes_mismatches.len(),
                    report.missing_chunk_files.len(),
                    report.orphan_chunk_files.len(),
                    report.missing_record_frames.len()
                );
                ExitCode::from(1)
            }
        }
        Command::StressPut {
            seed,
            keys,
            concurrency,
            ops,
            gc,
        } => {
            stress::run(&manager, seed, keys, concurrency, ops, gc).await?;
            ExitCode::SUCCESS
        }
        Command::Demo {
            videos,
            frames,
            keep,
        } => {
            demo::run(&store, videos, frames, keep).await?;
            ExitCode::SUCCESS
        }
    };
    drop(store);
    manager.close().await?;
    Ok(code)
}

/// Reads the `put` input into an artifact.
fn read_input(path: &Path, kind: &str, meta: &[(String, String)]) -> Result<Artifact> {
    let mut artifact = Artifact {
        kind: kind.to_owned(),
        meta: meta.iter().cloned().collect::<BTreeMap<_, _>>(),
        ..Default::default()
    };
    if path == Path::new("-") {
        let mut data = Vec::new();
        std::io::stdin()
            .read_to_end(&mut data)
            .context("read stdin")?;
        artifact.parts.push(Part::new("data", data));
        return Ok(artifact);
    }
    let md = std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if md.is_dir() {
        let mut files = Vec::new();
        collect_files(path, path, &mut files)?;
        files.sort();
        for rel in files {
            let full = path.join(&rel);
            let data =
                std::fs::read(&full).with_context(|| format!("cannot read {}", full.display()))?;
            artifact.parts.push(Part::new(rel, data));
        }
        artifact.meta.insert(LAYOUT_META.into(), "dir".into());
    } else if md.is_file() {
        let data =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("data")
            .to_owned();
        artifact.parts.push(Part::new(name, data));
    } else {
        bail!("{} is neither a file nor a directory", path.display());
    }
    Ok(artifact)
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<()> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read directory {}", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read directory {}", dir.display()))?;
        let path = entry.path();
        let ft = entry
            .file_type()
            .with_context(|| format!("cannot stat {}", path.display()))?;
        if ft.is_dir() {
            collect_files(root, &path, out)?;
        } else if ft.is_file() {
            let rel = path.strip_prefix(root).expect("under root");
            let rel = rel
                .to_str()
                .with_context(|| format!("file name {} is not UTF-8", path.display()))?;
            out.push(rel.replace(std::path::MAIN_SEPARATOR, "/"));
        } else {
            bail!(
                "{} is not a regular file (symlinks and devices are not stored)",
                path.display()
            );
        }
    }
    Ok(())
}

/// A part name as a safe relative path (names come from the store and may have been written by
/// any library user, so `..` and absolute paths are refused).
fn safe_relative(name: &str) -> Result<PathBuf> {
    let p = Path::new(name);
    if name.is_empty() || p.components().any(|c| !matches!(c, Component::Normal(_))) {
        bail!("part name {name:?} is not a safe relative path; refusing to write it");
    }
    Ok(p.to_owned())
}

fn write_output(key: &str, artifact: &Artifact, output: Option<&Path>) -> Result<()> {
    let is_dir =
        artifact.meta.get(LAYOUT_META).is_some_and(|v| v == "dir") || artifact.parts.len() != 1;
    match (is_dir, output) {
        (false, None) => {
            let mut out = std::io::stdout().lock();
            out.write_all(&artifact.parts[0].data)
                .context("write stdout")?;
            out.flush().context("write stdout")?;
        }
        (false, Some(path)) => {
            std::fs::write(path, &artifact.parts[0].data)
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        (true, None) => bail!(
            "{key} is a directory artifact with {} parts; pass -o DIR to write it",
            artifact.parts.len()
        ),
        (true, Some(dir)) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            for part in &artifact.parts {
                let target = dir.join(safe_relative(&part.name)?);
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)
                        .with_context(|| format!("cannot create {}", parent.display()))?;
                }
                std::fs::write(&target, &part.data)
                    .with_context(|| format!("cannot write {}", target.display()))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_part_names_are_refused() {
        assert!(safe_relative("a/b.jpg").is_ok());
        for bad in ["../x", "/etc/passwd", "a/../../b", ""] {
            assert!(safe_relative(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_error_chain_names_each_cause_once() {
        let remote = pipecache_remote::RemoteError::Config {
            target: "s3://b/p".into(),
            reason: "list /: PermissionDenied".into(),
        };
        let e = anyhow::Error::new(pipecache::Error::Remote {
            tier: "s3".into(),
            source: remote,
        })
        .context("sync push");
        let shown = error_chain(&e);
        assert_eq!(
            shown,
            "sync push: tier s3: remote s3://b/p: invalid configuration: list /: PermissionDenied"
        );
    }
}
