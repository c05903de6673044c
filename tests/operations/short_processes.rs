//! Opening and closing the store thousands of times, as a CLI or a script does, keeps the
//! index's file count bounded (RocksDB used to leave ~4 SSTs per open, none ever compacted).

use pipecache::{Artifact, Store, StoreOptions};
use pipecache_test_support::operations::index_files;

const CYCLES: u64 = 2_000;
/// Seven column families, each with at most 8 level-0 files before an open waits for their
/// compaction and 12 small files before an open merges them (measured: at most ~30); the
/// old behaviour left ~4 per open, 8,000 here.
const MAX_SST: usize = 64;
/// 16 WAL files before an open flushes them, plus the one it starts.
const MAX_WAL: usize = 18;

#[tokio::test(flavor = "multi_thread")]
async fn open_put_close_cycles_keep_the_index_small() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        gc_interval: None,
        ..StoreOptions::default()
    };
    let mut most = pipecache_test_support::operations::IndexFiles::default();
    for i in 0..CYCLES {
        let store = Store::open(dir.path(), options.clone()).await.unwrap();
        store
            .put(
                &format!("video:{i}:transcript"),
                Artifact::single(format!("transcript {i}").into_bytes()),
            )
            .await
            .unwrap();
        store.close().await.unwrap();
        let n = index_files(dir.path());
        if i % 250 == 0 {
            eprintln!("after {i} cycles: {n:?}");
        }
        most.sst = most.sst.max(n.sst);
        most.wal = most.wal.max(n.wal);
        most.total = most.total.max(n.total);
    }
    assert!(
        most.sst <= MAX_SST,
        "{} SST files after at most {CYCLES} opens (bound {MAX_SST})",
        most.sst
    );
    assert!(
        most.wal <= MAX_WAL,
        "{} WAL files (bound {MAX_WAL})",
        most.wal
    );
    // Info logs, MANIFEST and OPTIONS files are bounded too.
    assert!(
        most.total <= MAX_SST + MAX_WAL + 16,
        "{} files in the index directory",
        most.total
    );
    let store = Store::open(dir.path(), options).await.unwrap();
    for i in 0..CYCLES {
        let got = store
            .get(&format!("video:{i}:transcript"))
            .await
            .unwrap()
            .expect("every put of every cycle is kept");
        assert_eq!(got.parts[0].data, format!("transcript {i}").into_bytes());
    }
    assert!(store.verify().await.unwrap().is_clean());
    store.close().await.unwrap();
}
