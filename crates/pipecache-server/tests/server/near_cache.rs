//! A served client's near cache answers a repeated get in its own process, and never
//! returns a value a later acknowledged write replaced: a put, a delete or an expiry by
//! any other client, or a process opening the store itself once the server stopped. Its
//! hits reach the server's figures.

use std::time::Duration;

use pipecache::{Artifact, Cache, PutOptions, Store, StoreOptions};
use pipecache_server::ServeOptions;
use pipecache_test_support::served::{RunningServer, open_cache};

async fn open(dir: &std::path::Path) -> Cache {
    open_cache(dir).await.unwrap()
}

fn value(cache: &Cache, key: &str) -> Option<Vec<u8>> {
    cache
        .get_from_memory(key)
        .map(|hit| hit.artifact.parts[0].data.clone())
}

async fn read(cache: &Cache, key: &str) -> Option<Vec<u8>> {
    cache
        .get(key)
        .await
        .unwrap()
        .map(|a| a.parts[0].data.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_copies_follow_every_write_of_other_clients() {
    let tmp = tempfile::tempdir().unwrap();
    let server = RunningServer::start(tmp.path(), ServeOptions::default()).await;
    let reader = open(tmp.path()).await;
    let writer = open(tmp.path()).await;
    assert!(reader.server().unwrap().has_near_cache());

    writer
        .put("k", Artifact::single(b"one".to_vec()))
        .await
        .unwrap();
    assert_eq!(value(&reader, "k"), None, "nothing kept before a read");
    assert_eq!(read(&reader, "k").await.unwrap(), b"one");
    assert_eq!(value(&reader, "k").unwrap(), b"one", "kept by the read");

    // Another client's put, acknowledged: the copy is gone before the next lookup.
    writer
        .put("k", Artifact::single(b"two".to_vec()))
        .await
        .unwrap();
    assert_eq!(value(&reader, "k"), None);
    assert_eq!(read(&reader, "k").await.unwrap(), b"two");
    assert_eq!(value(&reader, "k").unwrap(), b"two");

    // A delete.
    assert!(writer.delete("k").await.unwrap());
    assert_eq!(value(&reader, "k"), None);
    assert_eq!(read(&reader, "k").await, None);

    // An expiry: checked on every near hit, with no write to tell of it.
    let short = PutOptions {
        ttl: Some(Duration::from_millis(300)),
        ..PutOptions::default()
    };
    writer
        .put_with("t", Artifact::single(b"brief".to_vec()), short)
        .await
        .unwrap();
    assert_eq!(read(&reader, "t").await.unwrap(), b"brief");
    assert_eq!(value(&reader, "t").unwrap(), b"brief");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(value(&reader, "t"), None);

    // A key the reader wrote itself reads back its own write at once, too.
    reader
        .put("k", Artifact::single(b"three".to_vec()))
        .await
        .unwrap();
    assert_eq!(read(&reader, "k").await.unwrap(), b"three");

    reader.close().await.unwrap();
    writer.close().await.unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_hits_are_counted_by_the_server() {
    let tmp = tempfile::tempdir().unwrap();
    let server = RunningServer::start(tmp.path(), ServeOptions::default()).await;
    let client = open(tmp.path()).await;
    client
        .put("k", Artifact::single(vec![7; 1000]))
        .await
        .unwrap();
    assert!(read(&client, "k").await.is_some());
    let before = client.stats().await.unwrap().tiers[0].clone();
    assert_eq!(before.kind, pipecache::tier::BackendKind::Memory);
    for _ in 0..5 {
        assert!(value(&client, "k").is_some());
    }
    // `stats` reports this client's hits first: the server counts them as memory hits.
    let report = client.stats().await.unwrap();
    let after = report.tiers[0].clone();
    assert_eq!(after.hits, before.hits + 5);
    // The client's own view: 5 near hits, 1 get passed on (the first read).
    let near = report.near_cache.unwrap();
    assert_eq!((near.hits, near.misses), (5, 1));
    assert!(near.bytes >= 1000 && near.bytes <= near.budget);
    assert_eq!(after.misses, before.misses);
    assert_eq!(after.near_hits, before.near_hits + 5);
    // Reported once: asking again counts nothing twice.
    assert_eq!(client.stats().await.unwrap().tiers[0].hits, after.hits);
    client.close().await.unwrap();
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_the_store_in_process_drops_every_near_copy() {
    let tmp = tempfile::tempdir().unwrap();
    let server = RunningServer::start(tmp.path(), ServeOptions::default()).await;
    let reader = open(tmp.path()).await;
    reader
        .put("k", Artifact::single(b"served".to_vec()))
        .await
        .unwrap();
    assert_eq!(read(&reader, "k").await.unwrap(), b"served");
    assert!(value(&reader, "k").is_some());
    server.stop().await;

    // No server: a process owning the store may write it, and its writes are not announced
    // key by key to a reader it does not know of. Opening the store drops every copy.
    let store = Store::open(tmp.path(), StoreOptions::default())
        .await
        .unwrap();
    assert_eq!(value(&reader, "k"), None);
    store
        .put("k", Artifact::single(b"owned".to_vec()))
        .await
        .unwrap();
    assert_eq!(value(&reader, "k"), None);
    store.close().await.unwrap();
}

/// Writers put increasing versions of a few keys while readers with near caches read them:
/// a read that began after a version's put was acknowledged never returns an older one,
/// whatever the interleaving of fills, hits and invalidations.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_readers_never_go_back_past_an_acknowledged_put() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    const KEYS: usize = 3;
    const VERSIONS: u64 = 300;
    let tmp = tempfile::tempdir().unwrap();
    let server = RunningServer::start(tmp.path(), ServeOptions::default()).await;
    let acked: Arc<Vec<AtomicU64>> = Arc::new((0..KEYS).map(|_| AtomicU64::new(0)).collect());
    let done = Arc::new(AtomicBool::new(false));
    let writer = open(tmp.path()).await;
    for k in 0..KEYS {
        writer
            .put(
                &format!("k{k}"),
                Artifact::single(0u64.to_le_bytes().to_vec()),
            )
            .await
            .unwrap();
    }
    let writing = {
        let (writer, acked, done) = (writer.clone(), acked.clone(), done.clone());
        tokio::spawn(async move {
            for v in 1..=VERSIONS {
                let k = (v as usize) % KEYS;
                writer
                    .put(&format!("k{k}"), Artifact::single(v.to_le_bytes().to_vec()))
                    .await
                    .unwrap();
                acked[k].fetch_max(v, Ordering::SeqCst);
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let mut readers = Vec::new();
    for r in 0..3 {
        let reader = open(tmp.path()).await;
        assert!(reader.server().unwrap().has_near_cache());
        let (acked, done) = (acked.clone(), done.clone());
        readers.push(tokio::spawn(async move {
            let mut reads = 0u64;
            let mut near = 0u64;
            let mut i = r;
            while !done.load(Ordering::SeqCst) || reads < 100 {
                let k = i % KEYS;
                i += 1;
                let floor = acked[k].load(Ordering::SeqCst);
                // Half the reads take the no-wait path (Python's), half the async one.
                let got = match (i % 2 == 0).then(|| value(&reader, &format!("k{k}"))) {
                    Some(Some(v)) => {
                        near += 1;
                        v
                    }
                    _ => read(&reader, &format!("k{k}")).await.unwrap(),
                };
                let v = u64::from_le_bytes(got.try_into().unwrap());
                assert!(
                    v >= floor,
                    "key k{k}: read version {v} after {floor} was acknowledged"
                );
                reads += 1;
            }
            reader.close().await.unwrap();
            (reads, near)
        }));
    }
    writing.await.unwrap();
    let mut near_hits = 0;
    for r in readers {
        near_hits += r.await.unwrap().1;
    }
    // The near caches answered some reads: the race was exercised, not bypassed.
    assert!(near_hits > 0);
    writer.close().await.unwrap();
    server.stop().await;
}

/// A hit report is counted in constant time whatever counts it claims, and a malformed one
/// is refused with 400, leaving the server up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hit_reports_cost_the_same_whatever_they_claim() {
    use pipecache_test_support::served::raw_request;

    let tmp = tempfile::tempdir().unwrap();
    let server = RunningServer::start(tmp.path(), ServeOptions::default()).await;
    let post = |body: &str| {
        format!(
            "POST /v1/hits HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    };
    let wait = Duration::from_secs(10);
    let huge = r#"{"hits":[{"key":"k","count":1000000000000000,"bytes":5,"seconds":1.5}]}"#;
    let (status, body) = raw_request(&server.socket, &post(huge), wait).await;
    assert_eq!(status, Some(200), "{body}");
    assert!(body.contains("1000000000000000"), "{body}");
    for bad in [
        r#"{"hits":[{"key":"k","count":1,"bytes":5,"seconds":-1.0}]}"#,
        r#"{"hits":[{"key":"","count":1,"bytes":5,"seconds":0.0}]}"#,
        r#"{"hits":"#,
    ] {
        let (status, body) = raw_request(&server.socket, &post(bad), wait).await;
        assert_eq!(status, Some(400), "{bad}: {body}");
    }
    let client = open(tmp.path()).await;
    let memory = client.stats().await.unwrap().tiers[0].clone();
    assert_eq!(memory.near_hits, 1_000_000_000_000_000);
    assert_eq!(memory.hits, 1_000_000_000_000_000);
    server.stop().await;
}

/// Near hits reach the server within a second or two with no `stats` call, also from a
/// client whose near cache outlived the handle that made it (`with_deadline` copies).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn near_hits_are_reported_periodically() {
    use pipecache::ServerClient;

    let tmp = tempfile::tempdir().unwrap();
    let server = RunningServer::start(tmp.path(), ServeOptions::default()).await;
    let client = ServerClient::unix(&server.socket)
        .with_near_cache(tmp.path(), 1 << 20)
        .with_deadline(Duration::from_secs(5));
    client
        .put("k", Artifact::single(vec![1; 100]), PutOptions::default())
        .await
        .unwrap();
    assert!(client.get("k").await.unwrap().is_some());
    assert!(client.get_from_near("k").is_some());
    // Another client, without a near cache, sees the server's figures only.
    let observer = ServerClient::unix(&server.socket);
    let mut near_hits = 0;
    for _ in 0..50 {
        near_hits = observer.stats().await.unwrap().tiers[0].near_hits;
        if near_hits == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(near_hits, 1, "the periodic report never came");
    server.stop().await;
}
