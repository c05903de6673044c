//! Crash safety: a child process doing concurrent puts and deletes is SIGKILLed at random
//! moments, 50 times over one store. After every kill the store opens, `verify` is clean, and
//! every acknowledged operation is visible (a key may also show the one operation that had
//! begun but was not acknowledged when the child died).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use pipecache::{Store, StoreOptions};
use rand::{Rng, SeedableRng, rngs::StdRng};

const KILLS: u64 = 50;

/// What a key may hold: the acknowledged state, plus the state of an operation in flight.
#[derive(Clone, Debug, Default)]
struct KeyState {
    acked: Option<String>,
    pending: Option<String>,
}

fn observed(a: &Option<pipecache::Artifact>) -> String {
    match a {
        None => "deleted".to_owned(),
        Some(a) => a.digest().to_hex(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_puts_loses_no_acknowledged_entry() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = StdRng::seed_from_u64(0x5EED);
    let mut keys: HashMap<String, KeyState> = HashMap::new();
    let mut total_acks = 0usize;
    for round in 0..KILLS {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pipecache"))
            .arg("--dir")
            .arg(dir.path())
            .args([
                "stress-put",
                "--seed",
                &round.to_string(),
                "--keys",
                "48",
                "--concurrency",
                "4",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().unwrap();
        let reader = std::thread::spawn(move || {
            BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
                .collect::<Vec<String>>()
        });
        // Random kill moments: some right after start (during open/recovery), most mid-stream.
        let wait_ms = if rng.random_range(0..5) == 0 {
            rng.random_range(0..40)
        } else {
            rng.random_range(50..400)
        };
        std::thread::sleep(Duration::from_millis(wait_ms));
        child.kill().expect("SIGKILL child");
        child.wait().unwrap();
        let lines = reader.join().unwrap();
        for line in &lines {
            let mut it = line.split(' ');
            let (Some(tag), Some(key), Some(state)) = (it.next(), it.next(), it.next()) else {
                continue; // a line torn by the kill
            };
            let st = keys.entry(key.to_owned()).or_default();
            match tag {
                "BEGIN" => st.pending = Some(state.to_owned()),
                "ACK" => {
                    assert_eq!(
                        st.pending.as_deref(),
                        Some(state),
                        "ACK without BEGIN for {key}"
                    );
                    st.acked = Some(state.to_owned());
                    st.pending = None;
                    total_acks += 1;
                }
                _ => {}
            }
        }

        let store = Store::open(dir.path(), StoreOptions::default())
            .await
            .unwrap_or_else(|e| panic!("round {round}: store does not open after SIGKILL: {e}"));
        for (key, st) in keys.iter_mut() {
            let got = observed(
                &store
                    .get(key)
                    .await
                    .unwrap_or_else(|e| panic!("round {round}: get {key}: {e}")),
            );
            let acked = st.acked.clone().unwrap_or_else(|| "deleted".to_owned());
            let ok = got == acked || st.pending.as_deref() == Some(got.as_str());
            assert!(
                ok,
                "round {round}: {key} holds {got}, acknowledged {acked}, pending {:?}",
                st.pending
            );
            // Whatever is there now is the committed state the next round starts from.
            st.acked = Some(got);
            st.pending = None;
        }
        let report = store.verify().await.unwrap();
        assert!(
            report.is_clean(),
            "round {round}: verify after SIGKILL: {report:?}"
        );
        store.close().await.unwrap();
    }
    assert!(
        total_acks > 200,
        "the child acknowledged only {total_acks} operations in {KILLS} rounds"
    );
}
