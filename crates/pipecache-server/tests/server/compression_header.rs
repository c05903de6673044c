//! A client's codec policy crosses the server in `pipecache-compression`: an artifact put
//! with LZ4, zstd or compression off is stored with that codec, and reads back
//! byte-identical.

use pipecache::{Algorithm, Artifact, BlobHash, CompressionPolicy, PutOptions};
use pipecache_server::ServeOptions;
use pipecache_test_support::served::RunningServer;
use pipecache_test_support::{blob_codecs, json_like};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_put_s_codec_policy_reaches_the_store() {
    let tmp = tempfile::tempdir().unwrap();
    let server = RunningServer::start(tmp.path(), ServeOptions::default()).await;
    let client = server.client();
    let policies = [
        (
            "lz4",
            CompressionPolicy {
                algorithm: Algorithm::Lz4,
                ..CompressionPolicy::DEFAULT
            },
        ),
        ("zstd", CompressionPolicy::DEFAULT),
        (
            "raw",
            CompressionPolicy {
                enabled: false,
                ..CompressionPolicy::DEFAULT
            },
        ),
    ];
    let mut expected = Vec::new();
    for (i, (codec, policy)) in policies.into_iter().enumerate() {
        let doc = json_like(i as u64, 50_000);
        let key = format!("doc/{codec}");
        let options = PutOptions {
            compression: Some(policy),
            ..PutOptions::default()
        };
        client
            .put(&key, Artifact::single(doc.clone()), options)
            .await
            .unwrap();
        let got = client.get(&key).await.unwrap().expect("a hit");
        assert_eq!(got.artifact.parts[0].data, doc, "{key}");
        expected.push((BlobHash::of(&doc), codec));
    }
    server.stop().await;
    let codecs = blob_codecs(tmp.path());
    for (hash, codec) in expected {
        assert_eq!(codecs[&hash], codec);
    }
}
