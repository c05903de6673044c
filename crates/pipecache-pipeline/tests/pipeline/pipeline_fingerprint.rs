//! Fingerprints: stat mode changes when a file is touched; content mode does not, and changes
//! when a byte changes (even with the same size and modification time). Missing files and
//! directories are clear errors.

use std::time::{Duration, SystemTime};

use pipecache_pipeline::{Fingerprint, FingerprintMode};
use pipecache_test_support::pipeline::set_mtime;

#[test]
fn stat_follows_mtime_content_follows_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("clip.mp4");
    std::fs::write(&video, b"frame data v1").unwrap();
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    set_mtime(&video, t0);
    let stat0 = Fingerprint::of_file(&video, FingerprintMode::Stat).unwrap();
    let content0 = Fingerprint::of_file(&video, FingerprintMode::Content).unwrap();
    assert!(stat0.as_str().starts_with("s1-") && content0.as_str().starts_with("c1-"));
    assert_eq!(
        Fingerprint::of_file(&video, FingerprintMode::Stat).unwrap(),
        stat0,
        "stable"
    );

    // Touch: same bytes, new mtime.
    set_mtime(&video, t0 + Duration::from_secs(60));
    assert_ne!(
        Fingerprint::of_file(&video, FingerprintMode::Stat).unwrap(),
        stat0
    );
    assert_eq!(
        Fingerprint::of_file(&video, FingerprintMode::Content).unwrap(),
        content0
    );

    // Same size, same mtime, one byte different.
    std::fs::write(&video, b"frame data v2").unwrap();
    set_mtime(&video, t0 + Duration::from_secs(60));
    let stat2 = Fingerprint::of_file(&video, FingerprintMode::Stat).unwrap();
    assert_ne!(
        Fingerprint::of_file(&video, FingerprintMode::Content).unwrap(),
        content0
    );
    set_mtime(&video, t0 + Duration::from_secs(60));
    assert_eq!(
        Fingerprint::of_file(&video, FingerprintMode::Stat).unwrap(),
        stat2,
        "stat cannot see the byte change"
    );

    // The same bytes elsewhere: content mode agrees, stat mode does not.
    let copy = dir.path().join("copy.mp4");
    std::fs::copy(&video, &copy).unwrap();
    assert_eq!(
        Fingerprint::of_file(&copy, FingerprintMode::Content).unwrap(),
        Fingerprint::of_file(&video, FingerprintMode::Content).unwrap()
    );
}

#[test]
fn missing_and_directory_videos_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    for mode in [FingerprintMode::Stat, FingerprintMode::Content] {
        let e = Fingerprint::of_file(&dir.path().join("nope.mp4"), mode)
            .unwrap_err()
            .to_string();
        assert!(e.contains("nope.mp4") && e.contains("cannot read"), "{e}");
        let e = Fingerprint::of_file(dir.path(), mode)
            .unwrap_err()
            .to_string();
        assert!(e.contains("directory"), "{e}");
    }
}

#[test]
fn tokens_carry_the_mode_and_the_key_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("v.mp4");
    std::fs::write(&video, b"frames").unwrap();
    for mode in [FingerprintMode::Stat, FingerprintMode::Content] {
        assert_eq!(mode.name().parse::<FingerprintMode>().unwrap(), mode);
        let fp = Fingerprint::of_file(&video, mode).unwrap();
        let letter = &mode.name()[..1];
        let prefix = format!("{letter}{}-", pipecache_pipeline::KEY_SCHEMA);
        assert!(fp.as_str().starts_with(&prefix), "{fp}");
        assert_eq!(Fingerprint::parse(fp.as_str()).unwrap(), fp);
        // Another schema version is not a fingerprint of this one.
        let other = fp.as_str().replacen(&prefix, &format!("{letter}9-"), 1);
        assert!(Fingerprint::parse(&other).is_err(), "{other}");
    }
    assert!("mtime".parse::<FingerprintMode>().is_err());
}
