//! Placement: which members own a block.
//!
//! Rendezvous (highest random weight) hashing, Thaler and Ravishankar, "Using name-based
//! mappings to increase hit rates", IEEE/ACM ToN 1998: each member scores each key with a hash
//! of (key, member), and the `r` highest scores own the key. A member that leaves moves only
//! its own keys (to the next score in each key's list, which for a replicated key is already
//! its other owner), and one that joins takes about 1/n of the keys from the others. No table
//! is stored: every client and daemon computes the same owners from the same membership.
//!
//! The replication factor is a property of the block's priority class in the policy table:
//! pinned classes and `PRECIOUS` get [`PROTECTED_REPLICAS`], every other class one copy.

use crate::member::MemberRecord;
use mcos_core::{BlockKey, PolicyTable, PriorityClass};
use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

/// Copies of a protected block (pinned class or `PRECIOUS`).
pub const PROTECTED_REPLICAS: usize = 2;
/// Most copies of any block: the length of an owner list.
pub const MAX_REPLICAS: usize = PROTECTED_REPLICAS;

/// Replicas per priority class, read from a policy table.
#[derive(Clone, Debug)]
pub struct Replication {
    per_class: [u8; 256],
}

impl Replication {
    /// The factor each class of `table` asks for.
    pub fn from_table(table: &PolicyTable) -> Replication {
        let mut per_class = [1u8; 256];
        for (c, r) in per_class.iter_mut().enumerate() {
            let protected = table.class(c as u8).pinned || c as u8 == PriorityClass::PRECIOUS.0;
            if protected {
                *r = PROTECTED_REPLICAS as u8;
            }
        }
        Replication { per_class }
    }

    /// Copies a block of `class` should have.
    pub fn factor(&self, class: u8) -> usize {
        usize::from(self.per_class[usize::from(class)])
    }
}

impl Default for Replication {
    /// The built-in table's factors (nothing pinned: `PRECIOUS` alone is protected).
    fn default() -> Replication {
        Replication::from_table(&PolicyTable::builtin(1))
    }
}

/// A member's placement seed: the hash of its node id (not its address or incarnation, so a
/// restarted node owns the same keys).
pub fn member_seed(node_id: &str) -> u64 {
    xxh3_64(node_id.as_bytes())
}

/// The rendezvous score of `key` on the member with seed `seed`.
pub fn score(key: BlockKey, seed: u64) -> u64 {
    xxh3_64_with_seed(&key.0.to_le_bytes(), seed)
}

/// Indices into `members` of the `r` owners of `key`, best first (fewer when there are fewer
/// members). Ties (astronomically rare) break on the node id, so every caller agrees.
pub fn owners(key: BlockKey, members: &[MemberRecord], r: usize) -> Vec<usize> {
    let seeds: Vec<u64> = members.iter().map(|m| member_seed(&m.node_id)).collect();
    owners_seeded(key, members, &seeds, r)
}

/// One round of a replica-round call: `candidates` (indices into `owners`) grouped by their
/// `round`-th owner, one list per member (empty where a member has none); a key with fewer
/// owners than `round + 1` is in no list.
pub(crate) fn round_batches(
    members: usize,
    owners: &[Vec<usize>],
    round: usize,
    candidates: impl IntoIterator<Item = usize>,
) -> Vec<Vec<usize>> {
    let mut per_member = vec![Vec::new(); members];
    for i in candidates {
        if let Some(&o) = owners[i].get(round) {
            per_member[o].push(i);
        }
    }
    per_member
}

/// [`owners`] with each member's seed computed once (`seeds[i]` = `member_seed` of member i):
/// one hash per member per key instead of two.
pub fn owners_seeded(
    key: BlockKey,
    members: &[MemberRecord],
    seeds: &[u64],
    r: usize,
) -> Vec<usize> {
    debug_assert_eq!(members.len(), seeds.len());
    let mut best: Vec<(u64, usize)> = Vec::with_capacity(r.min(members.len()) + 1);
    for (i, (m, &seed)) in members.iter().zip(seeds).enumerate() {
        let s = score(key, seed);
        let pos = best
            .iter()
            .position(|&(bs, bi)| s > bs || (s == bs && m.node_id < members[bi].node_id))
            .unwrap_or(best.len());
        if pos < r {
            best.insert(pos, (s, i));
            best.truncate(r);
        }
    }
    best.into_iter().map(|(_, i)| i).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(id: &str) -> MemberRecord {
        MemberRecord {
            node_id: id.into(),
            addr: format!("{id}:1"),
            protocol_version: 1,
            incarnation: 1,
            block_bytes: 4096,
            tiers: vec![],
            started_unix_ms: 0,
        }
    }

    #[test]
    fn owners_are_distinct_ordered_and_agree_with_a_full_sort() {
        let ms: Vec<_> = (0..7).map(|i| member(&format!("n{i}"))).collect();
        for k in 1..2000u128 {
            let key = BlockKey(k * 0x9e37_79b9_7f4a_7c15);
            let o = owners(key, &ms, 3);
            let mut all: Vec<(u64, usize)> = (0..ms.len())
                .map(|i| (score(key, member_seed(&ms[i].node_id)), i))
                .collect();
            all.sort_by_key(|a| std::cmp::Reverse(a.0));
            let want: Vec<usize> = all.iter().take(3).map(|x| x.1).collect();
            assert_eq!(o, want);
        }
    }

    #[test]
    fn a_leaving_member_moves_only_its_own_keys_and_the_second_owner_takes_over() {
        let ms: Vec<_> = (0..3).map(|i| member(&format!("n{i}"))).collect();
        let survivors: Vec<_> = vec![ms[0].clone(), ms[2].clone()];
        let mut moved = 0;
        let n = 30_000u128;
        for k in 1..=n {
            let key = BlockKey(k);
            let before: Vec<&str> = owners(key, &ms, 2)
                .into_iter()
                .map(|i| ms[i].node_id.as_str())
                .collect();
            let after: Vec<&str> = owners(key, &survivors, 2)
                .into_iter()
                .map(|i| survivors[i].node_id.as_str())
                .collect();
            if before[0] != "n1" {
                assert_eq!(
                    before[0], after[0],
                    "a key not owned by the leaver kept its owner"
                );
            } else {
                moved += 1;
                assert_eq!(
                    before[1], after[0],
                    "the second owner serves a replicated key"
                );
            }
        }
        // About a third of the keys belonged to the leaver.
        let share = moved as f64 / n as f64;
        assert!((0.30..0.37).contains(&share), "share moved {share}");
    }

    #[test]
    fn load_is_balanced_and_a_join_takes_about_its_share() {
        let ms: Vec<_> = (0..4).map(|i| member(&format!("n{i}"))).collect();
        let mut grown = ms.clone();
        grown.push(member("n4"));
        let mut per = [0usize; 4];
        let mut moved = 0usize;
        let n = 40_000u128;
        for k in 1..=n {
            let key = BlockKey(k.wrapping_mul(0x2545_f491_4f6c_dd1d));
            let a = owners(key, &ms, 1)[0];
            per[a] += 1;
            let b = owners(key, &grown, 1)[0];
            if grown[b].node_id != ms[a].node_id {
                assert_eq!(
                    grown[b].node_id, "n4",
                    "a join only moves keys to the new node"
                );
                moved += 1;
            }
        }
        for p in per {
            let share = p as f64 / n as f64;
            assert!((0.23..0.27).contains(&share), "share {share}");
        }
        let share = moved as f64 / n as f64;
        assert!((0.18..0.22).contains(&share), "moved {share}");
    }

    #[test]
    fn precious_and_pinned_classes_get_two_copies() {
        let r = Replication::default();
        assert_eq!(r.factor(0), 1);
        assert_eq!(r.factor(PriorityClass::PRECIOUS.0), 2);
        let mut t = PolicyTable::builtin(2);
        t.classes[9].pinned = true;
        let r = Replication::from_table(&t);
        assert_eq!(r.factor(9), 2);
        assert_eq!(r.factor(8), 1);
        assert_eq!(owners(BlockKey(5), &[member("a")], 2).len(), 1);
        assert!(owners(BlockKey(5), &[], 2).is_empty());
    }
}
