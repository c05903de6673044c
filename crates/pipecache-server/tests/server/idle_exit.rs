//! `--idle-exit`: a server with nothing to do ends by itself and lets the store go; one
//! that keeps being asked, or runs a job, does not.

use std::time::Duration;

use pipecache::Artifact;
use pipecache::client::protocol::{JobRequest, SERVER_FILE};
use pipecache_server::ServeOptions;
use pipecache_test_support::served::RunningServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_server_exits_and_a_busy_one_does_not() {
    let tmp = tempfile::tempdir().unwrap();
    let options = ServeOptions {
        idle_exit: Some(Duration::from_millis(1500)),
        ..ServeOptions::default()
    };
    let server = RunningServer::start(tmp.path(), options).await;
    let client = server.client();
    // Busy for twice the idle limit: requests every 200 ms, then a job.
    for i in 0..15 {
        client
            .put(
                &format!("k{i}"),
                Artifact::single(vec![1; 100]),
                Default::default(),
            )
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let job = client
        .run_job(&JobRequest::Verify, |_, _, _| {})
        .await
        .unwrap();
    assert!(job.report.is_some());
    assert!(
        !server.ended_within(Duration::from_millis(500)).await,
        "exited while busy"
    );
    // Then idle: it ends by itself, removing its server file, and the store opens again.
    assert!(
        server.ended_within(Duration::from_secs(15)).await,
        "an idle server kept running"
    );
    assert!(!tmp.path().join(SERVER_FILE).exists());
    server.stop().await;
    let store = pipecache::Store::open(tmp.path(), Default::default())
        .await
        .unwrap();
    assert!(store.get("k14").await.unwrap().is_some());
    store.close().await.unwrap();
}
