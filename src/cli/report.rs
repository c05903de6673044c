//! One way to print a command's result: as JSON (`--json`, for machines) or as text.

use std::io::Write;

use anyhow::Result;
use serde::Serialize;

/// A command's result, printable both ways.
pub trait Report: Serialize {
    /// The text form, written to `out` (stdout).
    fn write_text(&self, out: &mut dyn Write) -> std::io::Result<()>;
}

/// Prints `report` to stdout, as pretty JSON when `json`, else as text.
pub fn print(report: &impl Report, json: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, report)?;
        writeln!(out)?;
    } else {
        report.write_text(&mut out)?;
    }
    out.flush()?;
    Ok(())
}

/// The report of a job that can run as a dry run (`--dry-run`): the text's verbs differ
/// ("would remove"), the JSON is the report alone.
#[derive(Serialize)]
#[serde(transparent)]
pub struct JobReport<R> {
    pub report: R,
    #[serde(skip)]
    pub dry_run: bool,
}

impl<R> JobReport<R> {
    /// `would` for a dry run, else `did`.
    pub fn verb(&self, would: &'static str, did: &'static str) -> &'static str {
        if self.dry_run { would } else { did }
    }
}
