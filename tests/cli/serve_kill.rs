//! `pipecache serve` SIGKILLed mid-put, 50 times over one store: every put the server
//! acknowledged is there, byte-identical, when a new server starts; the clients whose put
//! was cut get a clear error, never a hang; the store verifies clean at the end.

use std::path::Path;
use std::time::{Duration, Instant};

use pipecache::Artifact;
use pipecache_test_support::served::{spawn_serve, wait_for_server};
use pipecache_test_support::{assert_success, random_bytes, run_cli};
use rand::{Rng, SeedableRng, rngs::StdRng};

const KILLS: u64 = 50;
const WRITERS: u64 = 3;

fn value(key: &str) -> Vec<u8> {
    let seed = key
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)));
    random_bytes(seed, 1_000 + (seed % 200_000) as usize)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_the_server_loses_no_acknowledged_put() {
    let dir = tempfile::tempdir().unwrap();
    let bin = Path::new(env!("CARGO_BIN_EXE_pipecache"));
    let mut rng = StdRng::seed_from_u64(0x5E4E);
    let mut acknowledged: Vec<String> = Vec::new();
    let mut cut = 0;
    for round in 0..KILLS {
        let mut server = spawn_serve(bin, dir.path());
        let client = wait_for_server(dir.path(), &mut server).await;
        // Everything acknowledged in earlier rounds survived the kills before this start.
        for key in acknowledged.iter().rev().take(20) {
            let got = client
                .get(key)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("round {round}: {key} lost"));
            assert_eq!(
                got.artifact.parts[0].data,
                value(key),
                "round {round}: {key} changed"
            );
        }
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let client = client.clone();
                tokio::spawn(async move {
                    let mut done = Vec::new();
                    for i in 0.. {
                        let key = format!("r{round}/w{w}/{i}");
                        match client
                            .put(&key, Artifact::single(value(&key)), Default::default())
                            .await
                        {
                            Ok(()) => done.push(key),
                            Err(e) => return (done, e),
                        }
                    }
                    unreachable!("the loop ends with the server's death")
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(rng.random_range(20..200))).await;
        server.kill().unwrap();
        server.wait().unwrap();
        for w in writers {
            let started = Instant::now();
            let (done, error) = tokio::time::timeout(Duration::from_secs(30), w)
                .await
                .expect("a client hung after the server died")
                .unwrap();
            assert!(started.elapsed() < Duration::from_secs(30));
            assert!(
                error.to_string().contains("went away"),
                "round {round}: unclear error {error}"
            );
            cut += 1;
            acknowledged.extend(done);
        }
    }
    assert!(
        acknowledged.len() > 100,
        "only {} puts acknowledged",
        acknowledged.len()
    );
    assert_eq!(cut, KILLS * WRITERS);

    // A last server: every acknowledged put of every round is there.
    let mut server = spawn_serve(bin, dir.path());
    let client = wait_for_server(dir.path(), &mut server).await;
    for key in &acknowledged {
        let got = client
            .get(key)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{key} lost"));
        assert_eq!(got.artifact.parts[0].data, value(key), "{key} changed");
    }
    server.kill().unwrap();
    server.wait().unwrap();
    assert_success(&run_cli(bin, dir.path(), &["verify"], None));
}
