//! gc, compact and verify run as jobs in the server: they report progress and end with the
//! same report the CLI prints.

use pipecache::Artifact;
use pipecache_client::protocol::{JobRequest, JobState};
use pipecache_server::ServeOptions;
use pipecache_test_support::served::RunningServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintenance_runs_as_jobs_with_reports() {
    let tmp = tempfile::tempdir().unwrap();
    let server = RunningServer::start(tmp.path(), ServeOptions::default()).await;
    let client = server.client();
    for i in 0..20 {
        client
            .put(
                &format!("k{i}"),
                Artifact::single(vec![i as u8; 1000]),
                Default::default(),
            )
            .await
            .unwrap();
    }
    for i in 0..10 {
        client.delete(&format!("k{i}")).await.unwrap();
    }

    let mut phases = Vec::new();
    let verify = client
        .run_job(&JobRequest::Verify, |phase, _, _| {
            phases.push(phase.to_owned())
        })
        .await
        .unwrap();
    assert_eq!(verify.state, JobState::Done);
    let report = verify.report.unwrap();
    assert_eq!(report["clean"], true, "{report}");
    assert!(!phases.is_empty());

    let gc = client
        .run_job(
            &JobRequest::Gc {
                dry_run: false,
                keys: true,
            },
            |_, _, _| {},
        )
        .await
        .unwrap();
    assert_eq!(gc.state, JobState::Done, "{gc:?}");
    let report = gc.report.unwrap();
    assert!(
        report["expired"].is_u64() && report["expired_keys"].is_array(),
        "{report}"
    );

    let compact = client
        .run_job(&JobRequest::Compact { dry_run: true }, |_, _, _| {})
        .await
        .unwrap();
    assert_eq!(compact.state, JobState::Done);

    // Jobs are remembered by id; an unknown id is absent, not an error.
    assert_eq!(
        client.job(gc.id).await.unwrap().unwrap().state,
        JobState::Done
    );
    assert_eq!(client.job(9_999).await.unwrap(), None);
    for i in 10..20 {
        assert!(client.get(&format!("k{i}")).await.unwrap().is_some());
    }
    server.stop().await;
}
