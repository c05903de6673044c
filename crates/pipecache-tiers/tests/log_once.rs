//! A failing tier is logged once per episode: its first error warns, later errors of the same
//! outage are only counted, the recovery is logged once, and a second outage is a new episode
//! (one more warning). The log lines are captured from a real subscriber; the counters they
//! sit beside must still count every read: an error, or a skip once the tier is paused after
//! three failures in a row.

use std::io::Write;
use std::sync::{Arc, Mutex};

use pipecache::CacheManager;
use pipecache::tier::WritePolicy;
use pipecache_test_support::servers::{S3Server, TcpProxy};
use pipecache_test_support::tiers::open_s3_manager;
use tracing_subscriber::fmt::MakeWriter;

const FAILING: &str = "tier failing";
const RECOVERED: &str = "tier recovered";

/// Log output, shared between the subscriber and the test.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

impl Captured {
    /// Lines mentioning `message` and the S3 tier.
    fn count(&self, message: &str) -> usize {
        let text = String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned();
        text.lines()
            .filter(|l| l.contains(message) && l.contains("tier=\"s3\""))
            .count()
    }
}

/// `n` reads of keys nobody wrote: misses whether or not the S3 tier answers (a remote error
/// is counted, never returned).
async fn read_absent(m: &CacheManager, tag: &str, n: usize) {
    for i in 0..n {
        let got = m.get(&format!("video:{tag}-{i}:transcript")).await;
        assert!(got.unwrap().is_none(), "read {i} of {tag}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_tier_is_logged_once_per_episode() {
    let logs = Captured::default();
    // Global: the manager logs from tokio worker threads, not only this one.
    tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .init();

    let s3 = S3Server::start();
    let proxy = TcpProxy::start(s3.port());
    let dir = tempfile::tempdir().unwrap();
    let m = open_s3_manager(dir.path(), &s3, Some(&proxy), WritePolicy::WriteThrough).await;
    let s3_errors = |m: &CacheManager| {
        let t = m
            .tier_stats()
            .into_iter()
            .find(|t| t.name == "s3")
            .expect("an s3 tier");
        (t.errors + t.timeouts, t.skipped)
    };

    // Healthy: a miss is neither an error nor a log line.
    assert!(m.get("video:absent:transcript").await.unwrap().is_none());
    assert_eq!((s3_errors(&m), logs.count(FAILING)), ((0, 0), 0));

    // First outage: five reads, three failures counted (then the tier is paused and the
    // other two skipped), one warning.
    proxy.set_down(true);
    read_absent(&m, "outage1", 5).await;
    assert_eq!(s3_errors(&m), (3, 2), "every read is counted");
    assert_eq!(logs.count(FAILING), 1, "one warning per outage");
    assert_eq!(logs.count(RECOVERED), 0);

    // Recovery: once the pause is over a read succeeds; logged once, however many succeed.
    proxy.set_down(false);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while logs.count(RECOVERED) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no read reached S3 again"
        );
        read_absent(&m, "up", 1).await;
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    read_absent(&m, "up-again", 3).await;
    assert_eq!(logs.count(RECOVERED), 1, "one recovery line");

    // Second outage: a new episode, one more warning.
    proxy.set_down(true);
    read_absent(&m, "outage2", 3).await;
    assert_eq!(s3_errors(&m).0, 6);
    assert_eq!(logs.count(FAILING), 2, "the second outage warns again");
    assert_eq!(logs.count(RECOVERED), 1);
}
