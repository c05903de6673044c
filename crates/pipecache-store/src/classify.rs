//! Sorting keys into artifact kinds for metrics. The engine knows no kinds and no videos:
//! the layer that names keys (the pipeline: `video:<fingerprint>:<kind>:...`) supplies a
//! [`KeyClassifier`] through [`crate::StoreOptions::key_classifier`], as it supplies its
//! stages' costs to cost-weighted eviction.

/// What a key belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyClass<'k> {
    /// Index of the key's kind in [`KeyClassifier::kinds`].
    pub kind: usize,
    /// What the key is about (a video's fingerprint), for the most-missed list; `None`
    /// when it names none.
    pub subject: Option<&'k str>,
}

/// Sorts keys into a fixed list of kinds. Called on every get, so it must be cheap (a scan
/// of the key's first fields, no allocation).
pub trait KeyClassifier: Send + Sync + std::fmt::Debug {
    /// Every kind, by index; keys it does not classify count as `other`.
    fn kinds(&self) -> &[&'static str];
    /// Typical seconds to recompute an artifact of kind `kind` (its index): what a hit
    /// saves, unless the configuration's `cost_hints` say otherwise.
    fn recompute_seconds(&self, kind: usize) -> f64;
    /// The kind and subject of `key`, or `None` for a key outside the scheme.
    fn classify<'k>(&self, key: &'k str) -> Option<KeyClass<'k>>;
}
