//! A stopped server finishes the request in flight, closes the store, and leaves no server
//! file or socket behind; its clients then get a clear "server went away" error, never a
//! hang.

use std::time::{Duration, Instant};

use pipecache::client::protocol::SERVER_FILE;
use pipecache::{Artifact, RemoteError, TierError};
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

    let store = pipecache::Store::open(tmp.path(), Default::default())
        .await
        .unwrap();
    assert_eq!(store.get("big").await.unwrap().unwrap().parts[0].data, data);
    store.close().await.unwrap();
}
