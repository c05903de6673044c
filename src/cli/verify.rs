//! `pipecache verify [--repair]`: exit 0 clean, 1 damage found (or left after a repair).

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use pipecache::client::protocol::JobRequest;
use pipecache::{Cache, RepairReport, VerifyReport};

use super::INDEX_DAMAGE_HINT;
use super::env::{Env, GlobalArgs};
use super::report::{self, Report};
use super::{progress, served};

/// Read and blake3-check every chunk file and reconcile it with the index.
#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    /// JSON report.
    #[arg(long)]
    json: bool,
    /// Fix what can be fixed: drop artifacts whose bytes are lost, correct refcounts.
    #[arg(long)]
    repair: bool,
}

impl Report for VerifyReport {
    fn write_text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        if self.is_clean() {
            return writeln!(
                out,
                "clean: {} blobs ({} bytes) in {} artifacts verified",
                self.blobs_checked, self.bytes_checked, self.artifacts_checked
            );
        }
        for b in &self.damaged_blobs {
            writeln!(
                out,
                "damaged blob {} (chunk {} offset {}): {}",
                b.hash, b.chunk, b.offset, b.error
            )?;
        }
        for c in &self.missing_chunk_files {
            writeln!(out, "missing or short chunk file {c}")?;
        }
        for m in &self.refcount_mismatches {
            writeln!(
                out,
                "refcount mismatch {}: recorded {} actual {}",
                m.hash, m.recorded, m.actual
            )?;
        }
        for m in &self.live_bytes_mismatches {
            writeln!(
                out,
                "live bytes mismatch in chunk {}: recorded {} actual {}",
                m.chunk, m.recorded, m.actual
            )?;
        }
        for k in &self.missing_record_frames {
            writeln!(
                out,
                "record frame missing for {k} (rebuild-index could not restore it)"
            )?;
        }
        for c in &self.orphan_chunk_files {
            writeln!(out, "orphan chunk file {c}")?;
        }
        for k in &self.damaged_keys {
            writeln!(out, "damaged key {k}")?;
        }
        if let Some(d) = &self.index_damage {
            writeln!(out, "damaged index: {d}")?;
        }
        Ok(())
    }
}

impl Report for RepairReport {
    fn write_text(&self, out: &mut dyn Write) -> std::io::Result<()> {
        for k in &self.dropped_keys {
            writeln!(
                out,
                "dropped key {k} (its bytes are lost; it is a miss now)"
            )?;
        }
        writeln!(
            out,
            "repair: dropped {} key(s), {} blob record(s), {} chunk record(s); fixed {} refcount(s); now {}",
            self.dropped_keys.len(),
            self.dropped_blobs,
            self.dropped_chunks.len(),
            self.refcounts_fixed,
            if self.after.is_clean() {
                "clean"
            } else {
                "still damaged"
            }
        )
    }
}

/// One line on stderr summing up what verify found.
fn summary(r: &VerifyReport) -> String {
    format!(
        "verify found damage: {} blob(s), {} key(s), {} refcount and {} live-byte mismatch(es), {} missing and {} orphan chunk file(s), {} missing record frame(s){}",
        r.damaged_blobs.len(),
        r.damaged_keys.len(),
        r.refcount_mismatches.len(),
        r.live_bytes_mismatches.len(),
        r.missing_chunk_files.len(),
        r.orphan_chunk_files.len(),
        r.missing_record_frames.len(),
        if r.index_damage.is_some() {
            format!("; {INDEX_DAMAGE_HINT}")
        } else {
            String::new()
        }
    )
}

impl VerifyArgs {
    pub async fn run(self, global: &GlobalArgs) -> Result<ExitCode> {
        let env = Env::load(global)?;
        let manager = match env.open_raw(false).await {
            Ok(Cache::InProcess(manager)) => manager,
            Ok(Cache::Served(client)) if !self.repair => {
                let report = served::run_job(&client, JobRequest::Verify, "verify").await?;
                served::print(&report)?;
                let clean = report.get("clean").and_then(serde_json::Value::as_bool) == Some(true);
                if !clean {
                    eprintln!("pipecache: verify found damage (see the report)");
                }
                return Ok(if clean {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                });
            }
            Ok(Cache::Served(client)) => {
                anyhow::bail!(
                    "verify --repair needs the store to itself, and {} holds {}; stop the server first",
                    client.name(),
                    env.dir.display()
                );
            }
            // A damaged index is a finding like any other damage.
            Err(e) if e.is_index_damage() => {
                println!("damaged index: {e}");
                eprintln!("pipecache: verify found damage: {INDEX_DAMAGE_HINT}");
                return Ok(ExitCode::from(1));
            }
            Err(e) => {
                return Err(
                    anyhow::Error::new(e).context(format!("open store {}", env.dir.display()))
                );
            }
        };
        let store = manager.local();
        let clean = if self.repair {
            let r = store.repair().await?;
            report::print(&r, self.json)?;
            r.after.is_clean()
        } else {
            let bar = progress::Bar::new("verify");
            let r = store
                .verify_with_progress(move |done, total| bar.set(done, total))
                .await?;
            report::print(&r, self.json)?;
            if !r.is_clean() {
                eprintln!("pipecache: {}", summary(&r));
            }
            r.is_clean()
        };
        manager.close().await?;
        Ok(if clean {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        })
    }
}
