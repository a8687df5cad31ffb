//! The brain's aged shadow (`mcos_brain::aged::AgedShadow`, written from the documented rules
//! of `Replacement::Aged`) against the real fast path under the aged order
//! (`FastPathPolicy::aged`, the software `Shard` that `mcos-hw`'s model and RTL are checked
//! against), hit for hit: the shadow the brain scores the aged order with is the order the
//! fast path executes.
#![allow(clippy::unwrap_used)]

use mcos_brain::Knobs;
use mcos_brain::aged::AgedShadow;
use mcos_core::{PolicyTable, Replacement};
use mcos_workload::policy::{CachePolicy, FastPathPolicy};

fn stream(n: usize, universe: u64, seed: u64) -> Vec<u64> {
    let mut x = seed;
    let mut r = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % universe
    };
    (0..n).map(|_| r().min(r())).collect()
}

fn first_difference(cap: u32, ids: &[u64]) -> Option<(usize, bool, bool)> {
    first_difference_with(Knobs::LRU, cap, ids)
}

/// The first access where the shadow under `knobs` and the fast path under the same knobs
/// compiled onto the built-in table with the aged order disagree: (index, shadow, fast path).
fn first_difference_with(knobs: Knobs, cap: u32, ids: &[u64]) -> Option<(usize, bool, bool)> {
    let mut shadow = AgedShadow::new(knobs, cap);
    let mut table = knobs.compile(&PolicyTable::builtin(1), u64::from(cap));
    table.replacement = Replacement::Aged;
    let mut fast = FastPathPolicy::new("aged", &[cap], table);
    ids.iter().enumerate().find_map(|(i, &id)| {
        let s = shadow.access(id);
        let f = fast.access(id, i as u64);
        (s != f).then_some((i, s, f))
    })
}

#[test]
fn the_aged_shadow_equals_the_fast_path_hit_for_hit() {
    for (cap, universe) in [(1u32, 4u64), (16, 64), (37, 150), (600, 2400), (2000, 8000)] {
        let ids = stream(60_000, universe, 0x5eed ^ u64::from(cap));
        assert_eq!(first_difference(cap, &ids), None, "capacity {cap}");
    }
    // Recency pairs just inside the cache's reach, where the order differs most from LRU.
    let mut ids = Vec::new();
    for i in 0..30_000u64 {
        ids.push(1 << 40 | i);
        if i >= 290 {
            ids.push(1 << 40 | (i - 290));
        }
    }
    assert_eq!(first_difference(600, &ids), None, "pairs");
    // With the "seen before" admission of the knob grid (the history filter).
    for h in [4u8, 16] {
        let knobs = Knobs {
            history_quarters: h,
            history_admit: true,
            ..Knobs::LRU
        };
        let ids = stream(60_000, 2400, 77);
        assert_eq!(
            first_difference_with(knobs, 600, &ids),
            None,
            "{}",
            knobs.label()
        );
    }
}
