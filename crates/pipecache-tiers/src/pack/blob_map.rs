//! The blobs a push may name instead of uploading them again: every blob of the remote's
//! index objects whose pack is young enough to reuse (module docs of `pack`), kept as a
//! [`BlobTable`] in the store directory between processes.
//!
//! Without the table, the first upload of each process read every index object: 242
//! objects and 3M blob locations for a 3M-blob remote, 8 of the 10.7 s that pushing one
//! new artifact took (eighteenth session). With it, a process reads only the index objects
//! listed since the table was written, and looks blobs up by binary search in place.
//!
//! Index objects are named by the blake3 of their bytes, so a tabled index never changes;
//! one the latest listing does not show (deleted by remote GC, or the bucket emptied) names
//! nothing. One location is kept per blob, its youngest pack's (reusable the longest); if
//! that pack's index goes, the blob is uploaded again. A lost or damaged table costs
//! reading the index objects again, never a wrong reuse.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use pipecache_format::BlobHash;
use pipecache_format::blob_table::{BlobTable, TableEntry, TableIndex};
use pipecache_format::remote::PackLocation;
use rustc_hash::FxHashMap;

/// Blobs of new index objects held apart before they are merged into the sorted table
/// (a merge moves the whole table; this bounds how often).
const PENDING_MAX: usize = 256 * 1024;
/// Index objects read or written since the table was saved that make saving it worth its
/// cost (rewriting the table, 144 MB at 3M blobs, against reading that many objects again).
pub(super) const SAVE_AFTER_INDEXES: usize = 16;

/// The table file of `remote` in a store directory.
pub(super) fn file_name(remote: &str) -> String {
    super::state_file_name("remote-blobs", remote)
}

/// See the module docs.
#[derive(Debug)]
pub(super) struct BlobMap {
    table: BlobTable,
    /// Ordinal in `table.indexes` of each index name.
    by_name: HashMap<String, u32>,
    /// Per ordinal: shown by the latest listing, or written by this process since.
    listed: Vec<bool>,
    /// Blobs of indexes added since the last merge, one (the best) per hash.
    pending: FxHashMap<BlobHash, TableEntry>,
    /// Indexes added since the table was last saved.
    pub(super) unsaved: usize,
    /// When the index objects were last listed.
    pub(super) listed_ms: Option<u64>,
    /// The table was read from the store directory (or there is none to read).
    pub(super) loaded: bool,
}

impl BlobMap {
    pub(super) fn new(remote: &str) -> Self {
        Self::from_table(BlobTable {
            remote: remote.to_owned(),
            ..BlobTable::default()
        })
    }

    fn from_table(table: BlobTable) -> Self {
        let by_name = table
            .indexes
            .iter()
            .enumerate()
            .map(|(i, idx)| (idx.name.clone(), i as u32))
            .collect();
        Self {
            listed: vec![false; table.indexes.len()],
            table,
            by_name,
            pending: FxHashMap::default(),
            unsaved: 0,
            listed_ms: None,
            loaded: false,
        }
    }

    /// The table `dir` holds for `remote`; empty (and logged) when it is missing, damaged or
    /// another remote's. Blocking: read and checked whole.
    pub(super) fn load(dir: &Path, remote: &str) -> Self {
        let path = dir.join(file_name(remote));
        let table = match std::fs::read(&path) {
            Ok(bytes) => match BlobTable::decode(&bytes) {
                Ok(t) if t.remote == remote => Some(t),
                Ok(t) => {
                    tracing::warn!(path = %path.display(), found = %t.remote, "remote blob table of another remote; ignored");
                    None
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "remote blob table damaged; reading the remote's index objects again");
                    None
                }
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "remote blob table not read; reading the remote's index objects again");
                None
            }
        };
        let mut map = table.map_or_else(|| Self::new(remote), Self::from_table);
        map.loaded = true;
        map
    }

    /// True when the index object `name` is already tabled.
    pub(super) fn knows(&self, name: &str) -> bool {
        self.by_name.contains_key(name)
    }

    /// Takes a listing of the index objects: only the indexes it shows name blobs.
    pub(super) fn mark_listed(&mut self, names: &HashSet<String>) {
        for (i, idx) in self.table.indexes.iter().enumerate() {
            self.listed[i] = names.contains(&idx.name);
        }
    }

    /// Adds the index object `name` (listed by definition: just read or written). Its blobs
    /// are tabled only when `reusable` (its pack inside the reuse window).
    pub(super) fn add_index(
        &mut self,
        name: String,
        pack: Option<BlobHash>,
        created_ms: u64,
        reusable: bool,
        blobs: impl Iterator<Item = (BlobHash, u64, u64)>,
    ) {
        if let Some(&i) = self.by_name.get(&name) {
            self.listed[i as usize] = true;
            return;
        }
        let ordinal = self.table.indexes.len() as u32;
        self.table.indexes.push(TableIndex {
            name: name.clone(),
            pack,
            created_ms,
        });
        self.by_name.insert(name, ordinal);
        self.listed.push(true);
        self.unsaved += 1;
        if pack.is_none() || !reusable {
            return;
        }
        for (hash, offset, stored_len) in blobs {
            // A blob of 4 GiB or more is not tabled: not reusing it costs one upload.
            let Ok(stored_len) = u32::try_from(stored_len) else {
                continue;
            };
            let entry = TableEntry {
                hash,
                index: ordinal,
                stored_len,
                offset,
            };
            // The new entry ranks (listed, created_ms); keep whichever ranks higher.
            let new_rank = (true, created_ms);
            let (listed, indexes) = (&self.listed, &self.table.indexes);
            self.pending
                .entry(hash)
                .and_modify(|e| {
                    let i = e.index as usize;
                    if (listed[i], indexes[i].created_ms) < new_rank {
                        *e = entry;
                    }
                })
                .or_insert(entry);
        }
        if self.pending.len() >= PENDING_MAX {
            self.merge_pending();
        }
    }

    /// Listed indexes first, then younger packs (they stay reusable longer).
    fn rank(&self, e: &TableEntry) -> (bool, u64) {
        let i = e.index as usize;
        (self.listed[i], self.table.indexes[i].created_ms)
    }

    /// Where `hash` is, with its pack's creation time, if a listed index names it and its
    /// pack is younger than `window` at `now`.
    pub(super) fn find(&self, hash: &BlobHash, now: u64, window: u64) -> Option<PackLocation> {
        [self.pending.get(hash), self.table.find(hash)]
            .into_iter()
            .flatten()
            .filter(|e| {
                let idx = &self.table.indexes[e.index as usize];
                self.listed[e.index as usize] && now.saturating_sub(idx.created_ms) < window
            })
            .max_by_key(|e| self.rank(e))
            .map(|e| PackLocation {
                pack: self.table.indexes[e.index as usize]
                    .pack
                    .expect("tabled blobs have a pack"),
                offset: e.offset,
                stored_len: u64::from(e.stored_len),
            })
    }

    /// Merges the pending blobs into the sorted table, in place, in one linear pass (a
    /// binary search per pending blob was 40% of reading a 3M-blob remote's indexes).
    fn merge_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let mut new: Vec<TableEntry> = self.pending.drain().map(|(_, e)| e).collect();
        new.sort_unstable_by(|a, b| hash_order(&a.hash, &b.hash));
        // Hashes already tabled: the better-ranked entry stays in the table.
        let (mut t, entries) = (0, &mut self.table.entries);
        let (listed, indexes) = (&self.listed, &self.table.indexes);
        let rank = |e: &TableEntry| {
            let i = e.index as usize;
            (listed[i], indexes[i].created_ms)
        };
        new.retain(|e| {
            while t < entries.len() && hash_order(&entries[t].hash, &e.hash).is_lt() {
                t += 1;
            }
            if t < entries.len() && entries[t].hash == e.hash {
                if rank(e) > rank(&entries[t]) {
                    entries[t] = *e;
                }
                return false;
            }
            true
        });
        merge_from_the_back(entries, &new);
    }

    /// The table's bytes as they should be saved at `now`: pending blobs merged, indexes
    /// the latest listing did not show dropped, blobs of packs past `window` dropped (their
    /// index stays, so it is not read again). Resets the unsaved count.
    pub(super) fn encode_for_save(&mut self, now: u64, window: u64) -> Vec<u8> {
        self.merge_pending();
        let mut ordinal = vec![None; self.table.indexes.len()];
        let mut kept = Vec::with_capacity(self.table.indexes.len());
        for (i, idx) in std::mem::take(&mut self.table.indexes)
            .into_iter()
            .enumerate()
        {
            if self.listed[i] {
                ordinal[i] = Some((
                    kept.len() as u32,
                    idx.pack.is_some() && now.saturating_sub(idx.created_ms) < window,
                ));
                kept.push(idx);
            }
        }
        self.table
            .entries
            .retain_mut(|e| match ordinal[e.index as usize] {
                Some((to, true)) => {
                    e.index = to;
                    true
                }
                _ => false,
            });
        self.table.indexes = kept;
        let loaded = self.loaded;
        let (listed_ms, table) = (self.listed_ms, std::mem::take(&mut self.table));
        *self = Self::from_table(table);
        self.listed.fill(true);
        (self.listed_ms, self.loaded) = (listed_ms, loaded);
        self.table.encode()
    }
}

/// Merges `new` (sorted, no hash of `into`) into the sorted `into` without a second copy
/// of `into`: it grows once, and entries move from the back.
fn merge_from_the_back(into: &mut Vec<TableEntry>, new: &[TableEntry]) {
    let Some(&filler) = new.first() else { return };
    let (mut i, mut j) = (into.len(), new.len());
    into.resize(i + j, filler);
    let mut k = into.len();
    while j > 0 {
        k -= 1;
        if i > 0 && hash_order(&into[i - 1].hash, &new[j - 1].hash).is_gt() {
            into[k] = into[i - 1];
            i -= 1;
        } else {
            into[k] = new[j - 1];
            j -= 1;
        }
    }
}

/// The table's order (byte order of the hashes), deciding on the first eight bytes when
/// they differ, which for blake3 digests is almost always, without a `memcmp` call.
fn hash_order(a: &BlobHash, b: &BlobHash) -> std::cmp::Ordering {
    let head = |h: &BlobHash| u64::from_be_bytes(h.0[..8].try_into().expect("8 bytes"));
    head(a).cmp(&head(b)).then_with(|| a.0.cmp(&b.0))
}

/// Saves `bytes` as `remote`'s table in `dir`, atomically; a failure is logged (the table
/// is a shortcut: without it the next process reads the index objects again).
pub(super) fn save(dir: PathBuf, remote: &str, bytes: &[u8]) {
    if let Err(e) = pipecache_format::replace_file(&dir, &file_name(remote), bytes) {
        tracing::warn!(dir = %dir.display(), error = %e, "remote blob table not saved");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blobs(seeds: std::ops::Range<u32>) -> Vec<(BlobHash, u64, u64)> {
        seeds
            .map(|s| (BlobHash::of(&s.to_le_bytes()), 64 + u64::from(s), 10))
            .collect()
    }

    fn listed(names: &[&str]) -> HashSet<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn finds_blobs_of_listed_young_indexes_only_and_prefers_the_youngest_pack() {
        let (p1, p2) = (BlobHash::of(b"p1"), BlobHash::of(b"p2"));
        let mut map = BlobMap::new("fs:/r");
        map.add_index(
            "index/1".into(),
            Some(p1),
            100,
            true,
            blobs(0..10).into_iter(),
        );
        map.add_index(
            "index/2".into(),
            Some(p2),
            200,
            true,
            blobs(5..20).into_iter(),
        );
        map.add_index(
            "index/3".into(),
            Some(p1),
            300,
            false,
            blobs(20..30).into_iter(),
        );
        let h = |s: u32| BlobHash::of(&s.to_le_bytes());
        for merged in [false, true] {
            if merged {
                map.merge_pending();
            }
            assert_eq!(map.find(&h(1), 150, 1000).map(|l| l.pack), Some(p1));
            assert_eq!(map.find(&h(7), 250, 1000).map(|l| l.pack), Some(p2));
            assert_eq!(map.find(&h(25), 300, 1000), None, "not reusable when added");
            // Past the window at `now`: nothing.
            assert_eq!(map.find(&h(1), 1100, 1000), None);
            assert_eq!(map.find(&h(7), 1150, 1000).map(|l| l.pack), Some(p2));
        }
        // A listing without index 2 (deleted remotely): its blobs are not named, not even
        // those index 1 also holds (one location is kept per hash, the youngest).
        map.mark_listed(&listed(&["index/1", "index/3"]));
        assert_eq!(map.find(&h(1), 250, 1000).map(|l| l.pack), Some(p1));
        assert_eq!(map.find(&h(7), 250, 1000), None);
        assert_eq!(map.find(&h(15), 250, 1000), None);
    }

    #[test]
    fn a_saved_table_keeps_the_listed_indexes_and_their_young_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let (p1, p2) = (BlobHash::of(b"p1"), BlobHash::of(b"p2"));
        let mut map = BlobMap::new("fs:/r");
        map.add_index(
            "index/old".into(),
            Some(p1),
            0,
            true,
            blobs(0..10).into_iter(),
        );
        map.add_index(
            "index/new".into(),
            Some(p2),
            900,
            true,
            blobs(10..20).into_iter(),
        );
        map.add_index(
            "index/gone".into(),
            Some(p2),
            900,
            true,
            blobs(20..30).into_iter(),
        );
        map.mark_listed(&listed(&["index/old", "index/new"]));
        let bytes = map.encode_for_save(1000, 500);
        save(dir.path().to_owned(), "fs:/r", &bytes);
        let back = BlobMap::load(dir.path(), "fs:/r");
        assert!(back.knows("index/old") && back.knows("index/new"));
        assert!(!back.knows("index/gone"));
        assert_eq!(back.table.entries.len(), 10, "only index/new's blobs");
        // The map saved from keeps answering as before.
        let h = |s: u32| BlobHash::of(&s.to_le_bytes());
        assert_eq!(map.find(&h(12), 1000, 500).map(|l| l.pack), Some(p2));
        assert_eq!(map.find(&h(22), 1000, 500), None);
        assert_eq!(map.unsaved, 0);
        // Another remote's table, or a damaged one, is not used.
        assert!(!BlobMap::load(dir.path(), "fs:/elsewhere").knows("index/new"));
        std::fs::write(dir.path().join(file_name("fs:/r")), b"PCBTAB01 damaged").unwrap();
        assert!(!BlobMap::load(dir.path(), "fs:/r").knows("index/new"));
    }

    #[test]
    fn merging_from_the_back_keeps_the_table_sorted() {
        let entry = |s: u32| TableEntry {
            hash: BlobHash::of(&s.to_le_bytes()),
            index: 0,
            stored_len: 1,
            offset: 64,
        };
        let mut all: Vec<TableEntry> = (0..100).map(entry).collect();
        all.sort_by_key(|e| e.hash);
        let (mut into, mut new): (Vec<_>, Vec<_>) =
            all.iter().enumerate().partition(|(i, _)| i % 3 == 0);
        let mut into: Vec<TableEntry> = into.drain(..).map(|(_, e)| *e).collect();
        let new: Vec<TableEntry> = new.drain(..).map(|(_, e)| *e).collect();
        merge_from_the_back(&mut into, &new);
        assert_eq!(into, all);
    }
}
