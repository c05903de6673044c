//! Remote GC from the manager: picks the pack tier, refuses a grace period shorter than the
//! configured one, counts a failure on the tier; the pass itself is `PackTier::gc`.

use std::time::Duration;

use super::shared::CacheManager;
use crate::pack::PackGcReport;
use crate::{Error, Result};

/// Report of a remote GC pass.
pub type RemoteGcReport = PackGcReport;

impl CacheManager {
    /// Mark and sweep of the pack tier `tier` (default: the first): unreferenced packs
    /// older than `grace` (default: the tier's) are deleted, nothing younger ever is.
    pub async fn remote_gc(
        &self,
        tier: Option<&str>,
        grace: Option<Duration>,
        dry_run: bool,
    ) -> Result<RemoteGcReport> {
        let (_, t, pack) = self.pack_tier(tier)?;
        // Pushers reuse blobs of packs younger than half *their* grace: a shorter one here
        // could delete a pack a record is about to name.
        if let Some(g) = grace
            && g < pack.grace()
        {
            return Err(Error::invalid(format!(
                "grace {g:?} is shorter than tier {}'s gc_grace of {:?}: pushers may still \
                     reuse packs that old; lower gc_grace in the configuration of every machine instead",
                t.backend.name(),
                pack.grace()
            )));
        }
        let grace = grace.unwrap_or(pack.grace());
        pack.gc(grace, dry_run)
            .await
            .inspect_err(|e| t.failed("gc", "", e))
    }
}
