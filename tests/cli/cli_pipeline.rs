//! The pipeline commands from the command line: `key` prints canonical keys and rejects bad
//! input clearly, `status` says what is cached per stage, and `demo` (the README's first
//! command) runs cold then warm with simulated costs labelled.

use pipecache_test_support::{assert_success, pipecache_bin, random_bytes, run_cli, stdout_json};

#[test]
fn key_status_and_demo() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let video = tmp.path().join("clip.mp4");
    std::fs::write(&video, random_bytes(3, 20_000)).unwrap();
    let v = video.to_str().unwrap();

    let out = run_cli(
        pipecache_bin!(),
        &store,
        &[
            "key",
            v,
            "keyframes",
            "threshold=0.9990",
            "max_frames=3000.0",
            "--fingerprint",
            "content",
        ],
        None,
    );
    assert_success(&out);
    let key = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(key.starts_with("video:c1-"), "{key}");
    assert!(
        key.ends_with(":keyframes:max_frames=3000:threshold=0.999"),
        "{key}"
    );
    // Order of parameters does not matter.
    let again = run_cli(
        pipecache_bin!(),
        &store,
        &[
            "key",
            v,
            "keyframes",
            "max_frames=3000",
            "threshold=0.999",
            "--fingerprint",
            "content",
        ],
        None,
    );
    assert_eq!(String::from_utf8(again.stdout).unwrap().trim(), key);
    assert!(!store.exists(), "`key` does not need or create a store");

    for (args, needle) in [
        (
            vec!["key", v, "keyframes", "threshold=abc"],
            "threshold must be a number",
        ),
        (vec!["key", v, "thumbnails"], "invalid artifact kind"),
        (
            vec!["key", tmp.path().to_str().unwrap(), "keyframes"],
            "is a directory",
        ),
        (
            vec!["key", v, "keyframes", "novalue"],
            "expected name=value",
        ),
        (
            vec!["key", v, "keyframes", "--fingerprint", "md5"],
            "fingerprint mode",
        ),
    ] {
        let out = run_cli(pipecache_bin!(), &store, &args, None);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(needle),
            "{args:?}: {stderr:?} lacks {needle:?}"
        );
    }

    // Put the transcript under the key `status` computes, then ask.
    let out = run_cli(
        pipecache_bin!(),
        &store,
        &["key", v, "transcript", "model_size=base", "language=en"],
        None,
    );
    let tkey = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(
        run_cli(
            pipecache_bin!(),
            &store,
            &["put", &tkey, "-"],
            Some(b"not decoded by status")
        )
        .status
        .success()
    );
    let pipeline = tmp.path().join("pipeline.toml");
    std::fs::write(&pipeline, "[keyframes]\nthreshold = 0.999\nmax_frames = 3000\n[transcript]\nmodel_size = \"base\"\nlanguage = \"en\"\n").unwrap();
    let out = run_cli(
        pipecache_bin!(),
        &store,
        // The form: the stage tables sit in the config file, next to cache settings.
        &[
            "status",
            v,
            "--config",
            pipeline.to_str().unwrap(),
            "--json",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1), "incomplete pipeline exits 1");
    let st = stdout_json(&out);
    assert_eq!(st["missing"], serde_json::json!(["keyframes"]));
    assert_eq!(st["stages"][1]["key"], tkey.as_str());
    assert_eq!(st["stages"][1]["cached"], true);
    std::fs::write(
        &pipeline,
        "[keyframes]\nthreshold = 0.999\nmax_frame = 3000\n",
    )
    .unwrap();
    // A file of its own behaves the same; a misspelt field is an error either way.
    for flag in ["--pipeline", "--config"] {
        let out = run_cli(
            pipecache_bin!(),
            &store,
            &["status", v, flag, pipeline.to_str().unwrap()],
            None,
        );
        assert_eq!(out.status.code(), Some(2), "{flag}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("unknown field"), "{flag}: {stderr}");
    }
    // Stages from two places: refused, not merged or picked silently.
    std::fs::write(
        &pipeline,
        "[keyframes]\nthreshold = 0.999\nmax_frames = 30\n",
    )
    .unwrap();
    let p = pipeline.to_str().unwrap();
    let out = run_cli(
        pipecache_bin!(),
        &store,
        &["status", v, "--pipeline", p, "--config", p],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("given twice"));

    let out = run_cli(
        pipecache_bin!(),
        &store,
        &["demo", "--videos", "3", "--frames", "20"],
        None,
    );
    assert_success(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("SIMULATED"),
        "simulated costs are labelled: {text}"
    );
    assert!(text.contains("3/3 videos complete"), "{text}");
    // Per stage: cold hits and misses, warm hits and misses, and the stage's dedup ratio.
    for stage in ["keyframes", "transcript", "descriptions", "embeddings"] {
        let row: Vec<&str> = text
            .lines()
            .find(|l| l.starts_with(stage))
            .unwrap_or_else(|| panic!("no {stage} row: {text}"))
            .split_whitespace()
            .collect();
        assert_eq!(
            (row[1], row[2], row[5], row[6]),
            ("0", "3", "3", "0"),
            "{stage}: cold hits/misses, warm hits/misses: {text}"
        );
        let dedup: f64 = row[9].trim_end_matches('x').parse().unwrap();
        // 20 frames per video, the first and last 5 shared by all three: 60 images, 40
        // distinct (plus one small metadata part each).
        if stage == "keyframes" {
            assert!(dedup > 1.3, "shared frames dedup: {text}");
        } else {
            assert_eq!(dedup, 1.0, "{stage} shares nothing: {text}");
        }
    }
    assert!(text.contains("demo artifacts: logical"), "{text}");
    // The demo cleans up after itself: only the transcript put above remains.
    let stats = stdout_json(&run_cli(
        pipecache_bin!(),
        &store,
        &["stats", "--json"],
        None,
    ));
    assert_eq!(stats["artifacts"], 1);
}
