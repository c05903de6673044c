//! gc (local and remote), compact, verify and sync run as jobs: a request starts one and returns at once;
//! clients poll its progress and read its report when it is done.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use pipecache::{CacheManager, GcOptions};
use pipecache_client::protocol::{ErrorBody, JobRequest, JobState, JobStatus, gc_report_json};

/// Finished jobs remembered for their reports; older ones are forgotten.
const KEEP_FINISHED: usize = 64;

/// The server's jobs.
#[derive(Debug, Default)]
pub(crate) struct Jobs {
    next_id: AtomicU64,
    running: Arc<AtomicUsize>,
    all: Arc<Mutex<BTreeMap<u64, Arc<Mutex<JobStatus>>>>>,
    /// When the last job ended (the idle exit counts from it too).
    finished_at: Arc<Mutex<Option<Instant>>>,
}

impl Jobs {
    /// True while a job runs (a server with a running job is not idle).
    pub(crate) fn running(&self) -> bool {
        self.running.load(Ordering::Relaxed) > 0
    }

    /// When the last job ended.
    pub(crate) fn last_finished(&self) -> Option<Instant> {
        *self.finished_at.lock().expect("jobs")
    }

    /// A job's status.
    pub(crate) fn status(&self, id: u64) -> Option<JobStatus> {
        let all = self.all.lock().expect("jobs");
        all.get(&id).map(|s| s.lock().expect("job").clone())
    }

    /// Starts `request` on `cache`'s store; its first status.
    pub(crate) fn start(&self, cache: CacheManager, request: JobRequest) -> JobStatus {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let status = Arc::new(Mutex::new(JobStatus {
            id,
            request: request.clone(),
            state: JobState::Running,
            phase: "starting".into(),
            done: 0,
            total: 0,
            report: None,
            error: None,
        }));
        {
            let mut all = self.all.lock().expect("jobs");
            all.insert(id, status.clone());
            let finished: Vec<u64> = all
                .iter()
                .filter(|(_, s)| s.lock().expect("job").state != JobState::Running)
                .map(|(id, _)| *id)
                .collect();
            for old in finished
                .iter()
                .take(finished.len().saturating_sub(KEEP_FINISHED))
            {
                all.remove(old);
            }
        }
        let first = status.lock().expect("job").clone();
        self.running.fetch_add(1, Ordering::Relaxed);
        let running = self.running.clone();
        let finished_at = self.finished_at.clone();
        tokio::spawn(async move {
            let result = run(&cache, request, status.clone()).await;
            let mut s = status.lock().expect("job");
            match result {
                Ok(report) => {
                    s.state = JobState::Done;
                    s.report = Some(report);
                }
                Err(e) => {
                    s.state = JobState::Failed;
                    s.error = Some(ErrorBody::from_tier_error(&e));
                }
            }
            drop(s);
            *finished_at.lock().expect("jobs") = Some(Instant::now());
            running.fetch_sub(1, Ordering::Relaxed);
        });
        first
    }
}

async fn run(
    cache: &CacheManager,
    request: JobRequest,
    status: Arc<Mutex<JobStatus>>,
) -> pipecache::Result<serde_json::Value> {
    let progress = move |phase: &str, done: u64, total: u64| {
        let mut s = status.lock().expect("job");
        if s.phase != phase {
            s.phase = phase.to_owned();
        }
        s.done = done;
        s.total = total;
    };
    let store = cache.local();
    Ok(match request {
        JobRequest::Gc { dry_run, keys } => {
            let options = GcOptions {
                dry_run,
                ..GcOptions::default()
            };
            let report = store.gc_with_progress(options, progress).await?;
            gc_report_json(&report, keys)
        }
        JobRequest::Compact { dry_run } => {
            to_json(&store.compact_with_progress(dry_run, progress).await?)
        }
        JobRequest::Verify => {
            let report = store
                .verify_with_progress(move |d, t| progress("verify", d, t))
                .await?;
            let mut json = to_json(&report);
            json["clean"] = report.is_clean().into();
            json
        }
        JobRequest::SyncPush { tier, batch_size } => {
            cache.check().await?;
            let progress = move |d, t| progress("push", d, t);
            to_json(
                &cache
                    .sync_push(tier.as_deref(), batch_size, &progress)
                    .await?,
            )
        }
        JobRequest::SyncPull { tier, prefix } => {
            cache.check().await?;
            let progress = move |d, t| progress("pull", d, t);
            to_json(&cache.sync_pull(tier.as_deref(), &prefix, &progress).await?)
        }
        JobRequest::RemoteGc {
            tier,
            grace_seconds,
            dry_run,
        } => {
            cache.check().await?;
            let grace = grace_seconds.map(std::time::Duration::from_secs);
            to_json(&cache.remote_gc(tier.as_deref(), grace, dry_run).await?)
        }
    })
}

fn to_json<T: serde::Serialize>(report: &T) -> serde_json::Value {
    serde_json::to_value(report).expect("a store report serializes")
}
