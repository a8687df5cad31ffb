//! Baseline cache policies over unit-size blocks, behind one trait.
//!
//! Each policy lives in its own file and cites its source. The simulator drives them through
//! [`CachePolicy`]: one [`CachePolicy::access`] per block access in request order, then one
//! [`CachePolicy::request_done`] per request. Every block has the same size, so capacity is a
//! count of blocks and the hit ratio is the object hit ratio. Policies insert on a miss (demand
//! fetching); only MIN may decline to admit (bypass).
//!
//! All policies allocate their index and list storage for `capacity` entries up front, so after
//! warm-up an access allocates nothing.

mod arc;
mod fastpath;
mod list;
mod lru;
mod lru_tail_first;
mod mcos;
mod min;
mod min_tiers;
mod s3fifo;
mod sieve;
mod wtinylfu;

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use thiserror::Error;

pub use arc::ArcCache;
pub use fastpath::FastPathPolicy;
pub use lru::Lru;
pub use lru_tail_first::LruTailFirst;
pub use mcos::McosPolicy;
pub use min::{AccessSeq, Min, NEVER};
pub use min_tiers::MinTiers;
pub use s3fifo::{DEFAULT_MOVE_TO_MAIN_THRESHOLD, S3Fifo};
pub use sieve::Sieve;
pub use wtinylfu::WTinyLfu;

/// Names accepted by [`by_name`], in the order reports list them. `lru` runs the real fast path
/// under its built-in table; `lru-ref` is the plain list LRU it is checked against; `clock` runs
/// the real fast path under the built-in table switched to CLOCK replacement (the
/// hardware-friendly order `mcos-hw` executes); `aged` the same with aged replacement
/// (`Replacement::Aged`, sampled LRU by 7-bit age stamps). `mcos-hw` is `mcos` with the
/// brain's replacement order on `auto` (`[brain] replacement`): the brain installs the aged
/// order (what the hardware pipeline executes) where its shadow scores within 0.005 of the
/// list's, else the list.
pub const POLICY_NAMES: [&str; 12] = [
    "mcos", "lru", "lru-tail", "s3fifo", "sieve", "arc", "wtinylfu", "min", "lru-ref", "clock",
    "aged", "mcos-hw",
];

/// Counters every policy keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PolicyStats {
    /// Blocks admitted on a miss.
    pub insertions: u64,
    /// Resident blocks removed to make room.
    pub evictions: u64,
    /// Missed blocks the policy declined to admit (bypass).
    pub admissions_rejected: u64,
}

/// A cache replacement policy over unit-size blocks identified by `u64` ids.
pub trait CachePolicy {
    /// Short name, as accepted by [`by_name`].
    fn name(&self) -> &'static str;
    /// Most blocks the policy ever holds.
    fn capacity(&self) -> usize;
    /// Blocks resident now.
    fn len(&self) -> usize;
    /// Whether no block is resident.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Whether `id` is resident (ghost entries do not count).
    fn contains(&self, id: u64) -> bool;
    /// Called for each block access in request order; returns true on a hit. On a miss the policy
    /// inserts the block (evicting as needed) or rejects it. `now` is the 0-based index of this
    /// access in the replay (a logical clock).
    fn access(&mut self, id: u64, now: u64) -> bool;
    /// Called after all blocks of a request were accessed, with the request's ids in prompt order
    /// (vLLM frees a finished request's blocks at this point).
    fn request_done(&mut self, ids: &[u64]) {
        let _ = ids;
    }
    /// Intent (serving-engine model): a request was queued; its blocks, in prompt order, will
    /// be read when it starts. Policies that take no advice ignore it.
    fn request_queued(&mut self, ids: &[u64]) {
        let _ = ids;
    }
    /// Intent (serving-engine model): the request with these blocks starts now (it was
    /// queued earlier with [`CachePolicy::request_queued`]); its accesses follow.
    fn request_started(&mut self, ids: &[u64]) {
        let _ = ids;
    }
    /// Intent: the session that read these blocks ended; they will not be read by it again
    /// (other sessions may share some of them). Policies that take no advice ignore it.
    fn session_ended(&mut self, ids: &[u64]) {
        let _ = ids;
    }
    /// Staging for a queued request: when the block sits below tier 0, move it up (making
    /// room by the policy's own eviction) and return the tier it was in and the tier it is in
    /// now. `None`: absent, already in tier 0, not moved, or a policy that does not stage.
    fn stage(&mut self, id: u64) -> Option<(usize, usize)> {
        let _ = id;
        None
    }
    /// The tier the last access hit in (0 for single-tier policies; meaningful after a hit).
    fn hit_tier(&self) -> usize {
        0
    }
    /// Counters so far.
    fn stats(&self) -> PolicyStats;
}

/// Why [`by_name`] could not build a policy.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum PolicyError {
    /// The name is not a known policy.
    #[error("unknown policy `{name}`; valid names: {}", POLICY_NAMES.join(", "))]
    Unknown {
        /// The name given.
        name: String,
    },
    /// An offline policy was asked for without the access sequence it needs.
    #[error("policy `{name}` is an offline oracle: pass the trace's full access sequence")]
    FutureRequired {
        /// The policy.
        name: &'static str,
    },
    /// A cache of zero blocks was asked for.
    #[error("policy capacity must be at least one block")]
    ZeroCapacity,
}

/// Whether the named policy needs the future access sequence (an offline oracle).
pub fn needs_future(name: &str) -> bool {
    name == "min"
}

/// Builds the policy called `name` holding at most `capacity` blocks. `future` is the full access
/// sequence of the replay, required by `min` and ignored by the online policies.
pub fn by_name(
    name: &str,
    capacity: usize,
    future: Option<&AccessSeq>,
) -> Result<Box<dyn CachePolicy>, PolicyError> {
    if !POLICY_NAMES.contains(&name) {
        return Err(PolicyError::Unknown {
            name: name.to_owned(),
        });
    }
    if capacity == 0 {
        return Err(PolicyError::ZeroCapacity);
    }
    Ok(match name {
        "mcos" => Box::new(McosPolicy::new(capacity)),
        "mcos-hw" => Box::new(McosPolicy::with_replacement(
            capacity,
            mcos_brain::ReplacementChoice::Auto,
        )),
        "lru" => Box::new(FastPathPolicy::lru(capacity)),
        "lru-ref" => Box::new(Lru::new(capacity)),
        "clock" => Box::new(FastPathPolicy::clock(capacity)),
        "aged" => Box::new(FastPathPolicy::aged(capacity)),
        "lru-tail" => Box::new(LruTailFirst::new(capacity)),
        "s3fifo" => Box::new(S3Fifo::new(capacity)),
        "sieve" => Box::new(Sieve::new(capacity)),
        "arc" => Box::new(ArcCache::new(capacity)),
        "wtinylfu" => Box::new(WTinyLfu::new(capacity)),
        _ => {
            let future = future.ok_or(PolicyError::FutureRequired { name: "min" })?;
            Box::new(Min::new(capacity, future))
        }
    })
}

/// [`by_name`] for a replay of a spatial sample holding `rate` of a trace's blocks, standing
/// for a cache of `full_capacity` blocks over the whole trace (`capacity` is the scaled cache).
/// `mcos` also scales the counts of accesses its brain steps, decides and forgets over
/// ([`McosPolicy::sampled`]); the others are [`by_name`] at the scaled capacity. A rate of 1 is
/// [`by_name`].
pub fn by_name_sampled(
    name: &str,
    capacity: usize,
    future: Option<&AccessSeq>,
    full_capacity: usize,
    rate: f64,
) -> Result<Box<dyn CachePolicy>, PolicyError> {
    if name == "mcos" && capacity > 0 {
        return Ok(Box::new(McosPolicy::sampled(capacity, full_capacity, rate)));
    }
    if name == "mcos-hw" && capacity > 0 {
        return Ok(Box::new(McosPolicy::sampled_with(
            capacity,
            full_capacity,
            rate,
            mcos_brain::ReplacementChoice::Auto,
        )));
    }
    by_name(name, capacity, future)
}

/// Hasher for block ids: the SplitMix64 finaliser. Deterministic (no per-process seed, so replays
/// are reproducible) and a full avalanche, which the hash table's top-bit tags need.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        let mut z = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x100_0000_01B3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = self.0.rotate_left(29) ^ n;
    }
}

/// Map keyed by block id.
pub(crate) type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

pub(crate) fn id_map<V>(capacity: usize) -> IdMap<V> {
    IdMap::with_capacity_and_hasher(capacity, BuildHasherDefault::default())
}

#[cfg(test)]
pub(crate) mod testing {
    //! Helpers shared by the policy unit tests.
    use super::CachePolicy;

    /// Replays `ids` one access each and returns the hit/miss pattern; checks capacity after each.
    pub(crate) fn run(policy: &mut dyn CachePolicy, ids: &[u64]) -> Vec<bool> {
        ids.iter()
            .enumerate()
            .map(|(i, &id)| {
                let hit = policy.access(id, i as u64);
                assert!(
                    policy.len() <= policy.capacity(),
                    "{} over capacity",
                    policy.name()
                );
                assert!(policy.contains(id) || !hit, "hit block must stay resident");
                hit
            })
            .collect()
    }

    /// Hit pattern from a string of `H`/`m`.
    pub(crate) fn pattern(s: &str) -> Vec<bool> {
        s.chars()
            .filter(|c| !c.is_whitespace())
            .map(|c| c == 'H')
            .collect()
    }

    /// Smoke test shared by every online policy: fill, hit, evict, never exceed capacity.
    pub(crate) fn smoke(policy: &mut dyn CachePolicy) {
        let cap = policy.capacity() as u64;
        assert!(policy.is_empty());
        for id in 0..cap {
            assert!(!policy.access(id, id), "first touch is a miss");
        }
        assert_eq!(policy.len() as u64, cap);
        for id in 0..cap {
            assert!(
                policy.access(id, cap + id),
                "a cache that fits its working set hits"
            );
        }
        for id in cap..cap * 10 {
            policy.access(id, cap + id);
            assert!(policy.len() as u64 <= cap);
        }
        let stats = policy.stats();
        assert!(stats.evictions > 0, "{} evicted nothing", policy.name());
        assert_eq!(
            stats.insertions,
            stats.evictions + policy.len() as u64,
            "{}: every insertion is either resident or evicted",
            policy.name()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn factory_knows_every_name_and_lists_them_on_error() {
        let seq = AccessSeq::from_ids(vec![1, 2, 3]);
        for name in POLICY_NAMES {
            let p = by_name(name, 4, Some(&seq)).unwrap();
            assert_eq!(p.name(), name);
            assert_eq!(p.capacity(), 4);
        }
        let err = by_name("lfu", 4, None).err().unwrap();
        let msg = err.to_string();
        for name in POLICY_NAMES {
            assert!(msg.contains(name), "{msg}");
        }
        assert_eq!(
            by_name("min", 4, None).err(),
            Some(PolicyError::FutureRequired { name: "min" })
        );
        assert_eq!(
            by_name("lru", 0, None).err(),
            Some(PolicyError::ZeroCapacity)
        );
    }

    #[test]
    fn smoke_every_online_policy_at_several_capacities() {
        for name in POLICY_NAMES.iter().filter(|n| !needs_future(n)) {
            for cap in [1, 2, 3, 10, 64] {
                let mut p = by_name(name, cap, None).unwrap();
                testing::smoke(p.as_mut());
            }
        }
    }
}
