//! Jobs run by the `pipecache serve` that holds the store (gc, compact, verify): started over
//! its socket, their progress drawn like a local job's, their report printed as the JSON the
//! server sends (the same fields as the local `--json` report).

use anyhow::{Context, Result, anyhow};
use pipecache::ServerClient;
use pipecache::client::protocol::{JobRequest, JobState};

use super::progress;

/// Runs `request` in the server and returns its report.
pub async fn run_job(
    client: &ServerClient,
    request: JobRequest,
    label: &str,
) -> Result<serde_json::Value> {
    let bar = progress::Bar::new(label);
    let status = client
        .run_job(&request, |phase, done, total| bar.phase(phase, done, total))
        .await
        .with_context(|| format!("{label} in {}", client.name()))?;
    match (status.state, status.report, status.error) {
        (JobState::Done, Some(report), _) => Ok(report),
        (_, _, Some(error)) => Err(anyhow::Error::new(error.into_tier_error(client.name()))
            .context(format!("{label} in {}", client.name()))),
        (state, ..) => Err(anyhow!(
            "{label} in {} ended {state:?} without a report",
            client.name()
        )),
    }
}

/// Prints a server job's report: pretty JSON, whether or not `--json` was given (the text
/// forms are drawn from the local reports' types).
pub fn print(report: &serde_json::Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(report)?);
    Ok(())
}
