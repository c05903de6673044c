//! A stopped server finishes the request in flight, closes the store, and leaves no server
//! file or socket behind; its clients then get a clear "server went away" error, never a
//! hang. A process opening the store while the server drains waits for it, then owns the
//! store, instead of failing with `StoreInUse`.

use std::time::{Duration, Instant};

use pipecache::client::protocol::SERVER_FILE;
use pipecache::{Artifact, Cache, CacheConfig, RemoteError, StoreOptions, TierError};
use pipecache_client::wire_record;
use pipecache_format::wire;
use pipecache_server::ServeOptions;
use pipecache_test_support::random_bytes;
use pipecache_test_support::served::{RunningServer, raw_answer};
use tokio::io::AsyncWriteExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_drains_then_clients_see_the_server_gone() {
    let tmp = tempfile::tempdir().unwrap();
    let server = RunningServer::start(tmp.path(), ServeOptions::default()).await;
    let client = server.client();
    let socket = server.socket.clone();

    // A put in flight when the stop comes (half its body sent) is finished, not cut.
    let data = random_bytes(7, 4 << 20);
    let artifact = Artifact::single(data.clone());
    let body = wire::encode_body(&wire_record("big", &artifact, None), &[&data]);
    let head = format!(
        "PUT /v1/artifacts/big HTTP/1.1\r\nhost: x\r\ncontent-type: {}\r\ncontent-length: {}\r\n\r\n",
        wire::CONTENT_TYPE,
        body.len()
    );
    let mut stream = tokio::net::UnixStream::connect(&socket).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    let (first, rest) = body.split_at(body.len() / 2);
    stream.write_all(first).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let stopping = tokio::spawn(server.stop());
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        !stopping.is_finished(),
        "the server stopped with a request in flight"
    );
    // A process opening the store now (the server draining, the store still locked)
    // waits for the server to close it, then opens it itself.
    let dir = tmp.path().to_owned();
    let opening = tokio::spawn(async move {
        Cache::open(
            &CacheConfig::default(),
            &dir,
            StoreOptions::default(),
            "(test)",
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        !opening.is_finished(),
        "an open during the drain did not wait: {:?}",
        opening.await.map(|r| r.map(|c| c.server().is_some()))
    );
    stream.write_all(rest).await.unwrap();
    let (status, _) = raw_answer(&mut stream, Duration::from_secs(10)).await;
    assert_eq!(status, Some(204), "the in-flight put was cut");
    drop(stream);
    stopping.await.unwrap();
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

    let opened = tokio::time::timeout(Duration::from_secs(10), opening)
        .await
        .expect("the open still waits after the server stopped")
        .unwrap()
        .expect("the open after the drain fails");
    assert!(
        opened.manager().is_some(),
        "the store is now this process's"
    );
    assert_eq!(
        opened.get("big").await.unwrap().unwrap().parts[0].data,
        data
    );
    opened.close().await.unwrap();
}
