//! Belady's MIN over an exclusive tier hierarchy: the hindsight reference for `replay --tiers`.
//!
//! Tiers are exclusive (a block lives in one), as in LMCache-style LRU-over-tiers. A hit in
//! tier `k` moves the block up to tier 0 (demand promotion); a miss inserts it into tier 0. A
//! tier over capacity demotes its resident block used furthest in the future to the next tier,
//! and the last tier drops its furthest one (Belady, IBM Systems Journal 5(2), 1966). By
//! induction the block leaving tier `k` is the furthest-used of tiers `0..=k` and the newcomer,
//! so the blocks kept over the whole hierarchy are exactly those MIN with bypass keeps at the
//! total capacity: the hit count is MIN's at the total capacity, the best any policy can get,
//! and where those hits land follows the same rule tier by tier. It moves blocks only on demand
//! (no prefetch), so it is a reference for placement, not a bound on time saved; the bound is
//! MIN's hits at the total capacity all served from tier 0 ([`crate::TieredResult::hits_recompute_s`]).

use std::collections::BTreeSet;

use super::{AccessSeq, CachePolicy, IdMap, NEVER, PolicyStats, id_map};

/// MIN over exclusive tiers (offline).
#[derive(Debug)]
pub struct MinTiers {
    capacities: Vec<usize>,
    ids: Vec<u64>,
    next_use: Vec<u64>,
    cursor: usize,
    /// Resident block -> (tier, next use).
    resident: IdMap<(usize, u64)>,
    /// Per tier, `(next_use, id)` of its blocks.
    tiers: Vec<BTreeSet<(u64, u64)>>,
    last_hit_tier: usize,
    stats: PolicyStats,
}

impl MinTiers {
    /// An empty hierarchy with `capacities` blocks per tier (fastest first) that will be
    /// replayed `future` exactly, in order.
    ///
    /// # Panics
    /// If there is no tier or a tier has capacity 0.
    pub fn new(capacities: &[usize], future: &AccessSeq) -> Self {
        assert!(
            !capacities.is_empty() && capacities.iter().all(|&c| c > 0),
            "every tier needs a positive capacity"
        );
        Self {
            capacities: capacities.to_vec(),
            ids: future.ids().to_vec(),
            next_use: future.next_uses(),
            cursor: 0,
            resident: id_map(capacities.iter().sum()),
            tiers: vec![BTreeSet::new(); capacities.len()],
            last_hit_tier: 0,
            stats: PolicyStats::default(),
        }
    }

    /// Puts `id` into tier 0 and demotes furthest-used blocks down until every tier fits.
    fn place_on_top(&mut self, id: u64, next_use: u64) {
        let mut moving = (next_use, id);
        for t in 0..self.tiers.len() {
            self.tiers[t].insert(moving);
            self.resident.insert(moving.1, (t, moving.0));
            if self.tiers[t].len() <= self.capacities[t] {
                return;
            }
            let Some(out) = self.tiers[t].pop_last() else {
                return;
            };
            moving = out;
        }
        // Fell off the last tier: dropped (or, if it is the newcomer, bypassed).
        self.resident.remove(&moving.1);
        if moving.1 == id {
            self.stats.admissions_rejected += 1;
        } else {
            self.stats.evictions += 1;
        }
    }
}

impl CachePolicy for MinTiers {
    fn name(&self) -> &'static str {
        "min"
    }

    fn capacity(&self) -> usize {
        self.capacities.iter().sum()
    }

    fn len(&self) -> usize {
        self.resident.len()
    }

    fn contains(&self, id: u64) -> bool {
        self.resident.contains_key(&id)
    }

    /// # Panics
    /// If the replay leaves the access sequence it was built from (a caller bug).
    fn access(&mut self, id: u64, _now: u64) -> bool {
        let pos = self.cursor;
        assert!(
            pos < self.ids.len() && self.ids[pos] == id,
            "MIN over tiers replay diverged from its access sequence at access {pos}"
        );
        self.cursor += 1;
        let next_use = self.next_use[pos];
        let hit = match self.resident.remove(&id) {
            Some((t, nu)) => {
                self.tiers[t].remove(&(nu, id));
                self.last_hit_tier = t;
                true
            }
            None => false,
        };
        if next_use == NEVER {
            // Never read again: nothing gains from keeping it.
            if !hit {
                self.stats.admissions_rejected += 1;
            }
            return hit;
        }
        if !hit {
            self.stats.insertions += 1;
        }
        self.place_on_top(id, next_use);
        hit
    }

    fn hit_tier(&self) -> usize {
        self.last_hit_tier
    }

    fn stats(&self) -> PolicyStats {
        self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Min;

    #[test]
    fn hits_match_min_at_the_total_capacity_and_land_by_next_use() {
        // Pseudo-random ids over 40 blocks: MIN over 3 + 5 + 8 tiers hits exactly as often as
        // MIN over 16 blocks.
        let mut x = 7u64;
        let ids: Vec<u64> = (0..5000)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (x >> 33) % 40
            })
            .collect();
        let seq = AccessSeq::from_ids(ids.clone());
        let mut tiers = MinTiers::new(&[3, 5, 8], &seq);
        let mut flat = Min::new(16, &seq);
        let mut per_tier = [0u64; 3];
        for (i, &id) in ids.iter().enumerate() {
            let a = tiers.access(id, i as u64);
            assert_eq!(a, flat.access(id, i as u64), "access {i}");
            if a {
                per_tier[tiers.hit_tier()] += 1;
            }
            assert!(tiers.len() <= 16);
            for (t, set) in tiers.tiers.iter().enumerate() {
                assert!(set.len() <= tiers.capacities[t]);
            }
        }
        assert!(per_tier.iter().all(|&h| h > 0), "{per_tier:?}");
        // Tier 0 holds what is used soonest among the recent: it serves the most.
        assert!(per_tier[0] > per_tier[2], "{per_tier:?}");
    }

    #[test]
    fn a_block_needed_next_is_found_on_top() {
        // 1 2 3 1 with tiers of 1 + 2: after 3, tier 0 holds 3 (never reused: bypassed), so 1
        // and 2 sit in tier 0 and 1 ordered by next use; 1 is next.
        let seq = AccessSeq::from_ids(vec![1, 2, 3, 1, 2]);
        let mut p = MinTiers::new(&[1, 2], &seq);
        let hits: Vec<bool> = [1, 2, 3, 1, 2]
            .iter()
            .enumerate()
            .map(|(i, &id)| p.access(id, i as u64))
            .collect();
        assert_eq!(hits, [false, false, false, true, true]);
        assert_eq!(p.stats().admissions_rejected, 1);
    }
}
