//! Canonical keys: parameter order never changes a key; any change of a parameter's value or
//! name, the kind or the fingerprint changes it; keys parse back to the same parts; floats and
//! strings canonicalize; malformed keys and values are errors.

use pipecache_pipeline::{ArtifactKey, ArtifactKind, Fingerprint, ParamValue};
use proptest::prelude::*;

fn fp(n: u8) -> Fingerprint {
    Fingerprint::parse(&format!(
        "c1-{:032x}",
        u128::from(n) * 0x0123_4567_89ab_cdef
    ))
    .unwrap()
}

fn value() -> impl Strategy<Value = ParamValue> {
    prop_oneof![
        any::<i64>().prop_map(ParamValue::Int),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(ParamValue::Float),
        any::<bool>().prop_map(ParamValue::Bool),
        (0u64..1_000_000, 1u64..1_000_000).prop_map(|(s, d)| ParamValue::Segment(s, s + d)),
        ".{0,12}".prop_map(ParamValue::Str),
        // Strings that look like other types must not collide with them.
        prop_oneof![
            Just("3000"),
            Just("0.999"),
            Just("true"),
            Just("1-2"),
            Just("a:b=c%d")
        ]
        .prop_map(|s| ParamValue::Str(s.to_owned())),
    ]
}

fn params() -> impl Strategy<Value = Vec<(String, ParamValue)>> {
    // Free-form (unknown) parameter names: known ones are type-checked and tested below.
    proptest::collection::btree_map("x[a-z0-9_]{0,6}", value(), 0..6)
        .prop_map(|m| m.into_iter().collect())
}

fn build(fp: &Fingerprint, kind: ArtifactKind, params: &[(String, ParamValue)]) -> ArtifactKey {
    let mut k = ArtifactKey::new(fp.clone(), kind);
    for (n, v) in params {
        k = k.param(n, v.clone()).unwrap();
    }
    k
}

proptest! {
    #[test]
    fn order_never_matters_and_keys_round_trip(ps in params(), seed in any::<u64>()) {
        let a = build(&fp(1), ArtifactKind::Descriptions, &ps);
        let mut shuffled = ps.clone();
        let n = shuffled.len().max(1);
        shuffled.rotate_left((seed as usize) % n);
        shuffled.reverse();
        let b = build(&fp(1), ArtifactKind::Descriptions, &shuffled);
        prop_assert_eq!(a.to_string(), b.to_string());
        let parsed = ArtifactKey::parse(&a.to_string()).unwrap();
        prop_assert_eq!(parsed.to_string(), a.to_string());
        prop_assert_eq!(parsed, a);
    }

    #[test]
    fn any_change_changes_the_key(ps in params(), other in value(), pick in any::<prop::sample::Index>()) {
        let base = build(&fp(1), ArtifactKind::Embeddings, &ps);
        let key = base.to_string();
        prop_assert_ne!(build(&fp(2), ArtifactKind::Embeddings, &ps).to_string(), key.clone());
        prop_assert_ne!(build(&fp(1), ArtifactKind::Transcript, &ps).to_string(), key.clone());
        if !ps.is_empty() {
            let i = pick.index(ps.len());
            // A different value (by canonical form) changes the key.
            let mut changed = ps.clone();
            if changed[i].1 != other {
                changed[i].1 = other.clone();
                prop_assert_ne!(build(&fp(1), ArtifactKind::Embeddings, &changed).to_string(), key.clone());
            }
            // Renaming changes it; dropping changes it.
            let mut renamed = ps.clone();
            renamed[i].0 = format!("{}x", renamed[i].0);
            if !ps.iter().any(|(n, _)| *n == renamed[i].0) {
                prop_assert_ne!(build(&fp(1), ArtifactKind::Embeddings, &renamed).to_string(), key.clone());
            }
            let mut dropped = ps.clone();
            dropped.remove(i);
            prop_assert_ne!(build(&fp(1), ArtifactKind::Embeddings, &dropped).to_string(), key);
        }
    }

    #[test]
    fn floats_canonicalize_and_read_back_exactly(f in any::<f64>().prop_filter("finite", |f| f.is_finite())) {
        let text = ParamValue::Float(f).canonical();
        let back: f64 = text.parse().unwrap();
        prop_assert!(back == f || (back == 0.0 && f == 0.0), "{} -> {} -> {}", f, text, back);
        prop_assert!(!text.ends_with(".0"), "{}", text);
    }
}

#[test]
fn the_documented_shape() {
    let k = ArtifactKey::new(fp(3), ArtifactKind::Keyframes)
        .param("threshold", 0.999)
        .unwrap()
        .param("max_frames", 3000.0)
        .unwrap();
    assert_eq!(
        k.to_string(),
        format!("video:{}:keyframes:max_frames=3000:threshold=0.999", fp(3))
    );
    assert_eq!(
        ParamValue::Float(0.1 + 0.2).canonical(),
        "0.30000000000000004"
    );
    assert_eq!(ParamValue::Float(-0.0).canonical(), "0");
    assert_eq!(ParamValue::Str("Qwen2-VL".into()).canonical(), "Qwen2-VL");
    assert_eq!(ParamValue::Str("a:b".into()).canonical(), "a%3Ab");
    assert_eq!(ParamValue::Str("3000".into()).canonical(), "%33000");
}

#[test]
fn malformed_keys_and_values_are_errors() {
    let good = format!("video:{}:transcript:language=en:model_size=base", fp(4));
    assert!(ArtifactKey::parse(&good).is_ok());
    for bad in [
        format!("video:{}:transcript:language=e:n:model_size=base", fp(4)), // unescaped ':' in a value
        format!("video:{}:transcript:model_size=base:language=en", fp(4)),  // not sorted
        format!("video:{}:thumbnails:x=1", fp(4)),                          // unknown kind
        format!("video:{}:keyframes:threshold=0.9990", fp(4)),              // non-canonical float
        format!("video:{}:keyframes:threshold=abc", fp(4)),                 // not a number
        "video:nothex:keyframes".to_string(),
        format!("audio:{}:keyframes", fp(4)),
        format!("video:{}:keyframes:a=1=2", fp(4)),
        format!("video:{}:keyframes:max_frames=abc", fp(4)), // not an integer
        format!("video:{}:keyframes:max_frames=%31", fp(4)), // escaped text, not an integer
        format!("video:{}:keyframes:threshold=%31", fp(4)),  // escaped text, not a number
        format!("video:{}:transcript:segment=5-3", fp(4)),   // start after end
    ] {
        assert!(ArtifactKey::parse(&bad).is_err(), "{bad} should not parse");
    }
    assert!(ParamValue::from_user(ArtifactKind::Keyframes, "threshold", "abc").is_err());
    assert!(ParamValue::from_user(ArtifactKind::Keyframes, "max_frames", "3000.5").is_err());
    assert!(ParamValue::from_user(ArtifactKind::Keyframes, "threshold", "NaN").is_err());
    assert!("thumbnails".parse::<ArtifactKind>().is_err());
    assert!(
        ArtifactKey::new(fp(1), ArtifactKind::Keyframes)
            .param("Bad-Name", 1i64)
            .is_err()
    );
    assert!(
        ArtifactKey::new(fp(1), ArtifactKind::Keyframes)
            .param("segment", ParamValue::Segment(5, 5))
            .is_err()
    );
    assert!(
        ArtifactKey::new(fp(1), ArtifactKind::Keyframes)
            .param("t", f64::NAN)
            .is_err()
    );
    // Known parameters are typed.
    assert!(
        ArtifactKey::new(fp(1), ArtifactKind::Keyframes)
            .param("threshold", "high")
            .is_err()
    );
    assert!(
        ArtifactKey::new(fp(1), ArtifactKind::Keyframes)
            .param("max_frames", 2.5)
            .is_err()
    );
    assert!(
        ArtifactKey::new(fp(1), ArtifactKind::Descriptions)
            .param("model", 5i64)
            .is_err()
    );
    let k = ArtifactKey::new(fp(1), ArtifactKind::Descriptions)
        .param("model", "7")
        .unwrap();
    assert_eq!(ArtifactKey::parse(&k.to_string()).unwrap(), k);
}
