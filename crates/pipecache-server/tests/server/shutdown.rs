//! A stopped server finishes the request in flight, closes the store, and leaves no server
//! file or socket behind; its clients then get a clear "server went away" error, never a
//! hang.

use std::time::{Duration, Instant};

use pipecache::client::protocol::SERVER_FILE;
use pipecache::{Artifact, RemoteError, TierError};
use pipecache_server::ServeOptions;
use pipecache_test_support::random_bytes;
use pipecache_test_support::served::RunningServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_drains_then_clients_see_the_server_gone() {
    let tmp = tempfile::tempdir().unwrap();
    let server = RunningServer::start(tmp.path(), ServeOptions::default()).await;
    let client = server.client();
    let socket = server.socket.clone();

    // A large put in flight when the stop comes is finished, not cut.
    let data = random_bytes(7, 64 << 20);
    let put = {
        let client = client.clone();
        let data = data.clone();
        tokio::spawn(async move {
            client
                .put("big", Artifact::single(data), Default::default())
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    server.stop().await;
    put.await
        .unwrap()
        .expect("the in-flight put finished before the store closed");
    assert!(!tmp.path().join(SERVER_FILE).exists());
    assert!(!socket.exists());

    let started = Instant::now();
    match client.get("big").await {
        Err(TierError::Remote {
            source: RemoteError::Unavailable { detail, .. },
            ..
        }) => {
            assert!(detail.contains("went away"), "{detail}");
        }
        other => panic!("expected the server to be gone, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5));

    let store = pipecache::Store::open(tmp.path(), Default::default())
        .await
        .unwrap();
    assert_eq!(store.get("big").await.unwrap().unwrap().parts[0].data, data);
    store.close().await.unwrap();
}
