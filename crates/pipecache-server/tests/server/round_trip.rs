//! What a client puts through the server comes back byte-identical, with its kind, metadata,
//! parts and expiry; deletes, misses, listing and stats answer like the store.

use std::collections::BTreeMap;
use std::time::Duration;

use pipecache::{Artifact, Part, PutOptions};
use pipecache_server::ServeOptions;
use pipecache_test_support::random_bytes;
use pipecache_test_support::served::RunningServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_round_trip_through_the_server() {
    let tmp = tempfile::tempdir().unwrap();
    let server = RunningServer::start(tmp.path(), ServeOptions::default()).await;
    let client = server.client();

    let artifact = Artifact {
        kind: "keyframes".into(),
        parts: vec![
            Part::new("meta.json", br#"{"frames":3}"#.to_vec()),
            Part::new("empty", Vec::new()),
            // Larger than a socket buffer and than the direct-write threshold.
            Part::new("frame/0.jpg", random_bytes(1, 5 << 20)),
        ],
        meta: BTreeMap::from([("model".into(), "base".into())]),
    };
    // A key with a slash, a space, a percent sign and non-ASCII: one path segment each way.
    let key = "video/ab cd%/keyframes:thr=0.999/é";
    client
        .put(
            key,
            artifact.clone(),
            PutOptions {
                ttl: Some(Duration::from_secs(3600)),
                ..PutOptions::default()
            },
        )
        .await
        .unwrap();
    let got = client.get(key).await.unwrap().expect("a hit");
    assert_eq!(got.artifact, artifact);
    let expires = got.expires_ms.expect("the TTL travelled");
    assert!(expires > got.created_ms && expires - got.created_ms <= 3_600_000);

    assert!(client.contains(key).await.unwrap());
    assert_eq!(client.get("video/other").await.unwrap(), None);
    assert!(!client.contains("video/other").await.unwrap());
    assert_eq!(
        client.list_keys("video/").await.unwrap(),
        vec![key.to_owned()]
    );
    let entries = client.list_entries("video/ab").await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].parts, 3);
    let stats = client.stats().await.unwrap();
    assert_eq!(stats.stats.artifacts, 1);

    // if-absent keeps what is there.
    client
        .put(
            key,
            Artifact::single(b"newer?".to_vec()),
            PutOptions {
                if_absent: true,
                ..PutOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(client.get(key).await.unwrap().unwrap().artifact, artifact);

    assert!(client.delete(key).await.unwrap());
    assert!(!client.delete(key).await.unwrap());
    assert_eq!(client.get(key).await.unwrap(), None);
    server.stop().await;
}
