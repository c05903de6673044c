//! Eviction policies: what a size-budget GC pass removes first. Pure scoring; the
//! lifecycle module applies it. Options name a policy, so this sits below them.

use std::collections::BTreeMap;
use std::fmt::Debug;

/// What an eviction policy sees of an artifact.
#[derive(Clone, Copy, Debug)]
pub struct EvictionCandidate<'a> {
    /// Artifact key.
    pub key: &'a str,
    /// Artifact kind.
    pub kind: &'a str,
    /// Logical size in bytes.
    pub size: u64,
    /// Last recorded access (creation time if never read), unix ms.
    pub last_access_ms: u64,
    /// Creation time, unix ms.
    pub created_ms: u64,
    /// Now, unix ms.
    pub now_ms: u64,
}

/// Orders artifacts for eviction: the lowest score goes first.
pub trait EvictionPolicy: Send + Sync + Debug {
    /// Short name for reports and configuration.
    fn name(&self) -> &str;
    /// Score of one candidate; lower is evicted sooner.
    fn score(&self, candidate: &EvictionCandidate<'_>) -> f64;
}

/// Least recently accessed first.
#[derive(Clone, Copy, Debug, Default)]
pub struct Lru;

impl EvictionPolicy for Lru {
    fn name(&self) -> &str {
        "lru"
    }
    fn score(&self, c: &EvictionCandidate<'_>) -> f64 {
        c.last_access_ms as f64
    }
}

/// Recency weighted by what an artifact costs to recompute: score = cost / (idle seconds + 1).
/// Of two artifacts idle equally long, the cheaper one goes first (a keyframe set before a VLM
/// description); an expensive one survives until it has been idle proportionally longer.
#[derive(Clone, Debug)]
pub struct CostWeighted {
    /// Recompute cost hint per artifact kind, in seconds.
    pub costs: BTreeMap<String, f64>,
    /// Cost of kinds not listed.
    pub default_cost: f64,
}

impl Default for CostWeighted {
    /// Every kind costs the same until told otherwise: the engine knows no kinds. The
    /// pipeline layer brings its stages' costs (`pipecache_pipeline::cost_weighted_policy`).
    fn default() -> Self {
        Self {
            costs: BTreeMap::new(),
            default_cost: 1.0,
        }
    }
}

impl EvictionPolicy for CostWeighted {
    fn name(&self) -> &str {
        "cost-weighted"
    }
    fn score(&self, c: &EvictionCandidate<'_>) -> f64 {
        let cost = self.costs.get(c.kind).copied().unwrap_or(self.default_cost);
        let idle_s = c.now_ms.saturating_sub(c.last_access_ms) as f64 / 1000.0;
        cost / (idle_s + 1.0)
    }
}
