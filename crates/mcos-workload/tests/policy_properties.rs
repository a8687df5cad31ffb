//! Properties of the baseline policies on random access sequences: MIN is optimal (checked against
//! exhaustive search), no policy beats MIN, LRU matches a naive model, and no policy ever holds more
//! than its capacity.

use std::collections::HashMap;

use mcos_workload::policy::{self, AccessSeq, CachePolicy, POLICY_NAMES};
use proptest::prelude::*;

/// Most hits any demand policy (insert on miss, evict anything, or bypass) can get from `pos` on,
/// with `resident` (a bitmask of ids) in a cache of `cap` blocks.
fn best_hits(
    seq: &[u64],
    pos: usize,
    resident: u32,
    cap: u32,
    memo: &mut HashMap<(usize, u32), u32>,
) -> u32 {
    if pos == seq.len() {
        return 0;
    }
    if let Some(&v) = memo.get(&(pos, resident)) {
        return v;
    }
    let bit = 1u32 << seq[pos];
    let best = if resident & bit != 0 {
        1 + best_hits(seq, pos + 1, resident, cap, memo)
    } else {
        let mut best = best_hits(seq, pos + 1, resident, cap, memo); // bypass
        if resident.count_ones() < cap {
            best = best.max(best_hits(seq, pos + 1, resident | bit, cap, memo));
        }
        let mut rest = resident;
        while rest != 0 {
            let victim = rest & rest.wrapping_neg();
            rest &= !victim;
            best = best.max(best_hits(
                seq,
                pos + 1,
                (resident & !victim) | bit,
                cap,
                memo,
            ));
        }
        best
    };
    memo.insert((pos, resident), best);
    best
}

/// Hits of `policy` over `seq`, cut into requests of `chunk` accesses; checks capacity throughout.
fn hits_of(policy: &mut dyn CachePolicy, seq: &[u64], chunk: usize) -> u64 {
    let mut hits = 0;
    let mut now = 0;
    for request in seq.chunks(chunk.max(1)) {
        for &id in request {
            if policy.access(id, now) {
                hits += 1;
            }
            now += 1;
            assert!(
                policy.len() <= policy.capacity(),
                "{} over capacity",
                policy.name()
            );
        }
        policy.request_done(request);
    }
    hits
}

fn min_hits(seq: &[u64], cap: usize) -> u64 {
    let future = AccessSeq::from_ids(seq.to_vec());
    let mut min = policy::by_name("min", cap, Some(&future)).expect("min builds");
    hits_of(min.as_mut(), seq, 1)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn min_equals_exhaustive_search(seq in prop::collection::vec(0u64..5, 0..=12), cap in 1u32..=3) {
        let optimum = best_hits(&seq, 0, 0, cap, &mut HashMap::new());
        prop_assert_eq!(min_hits(&seq, cap as usize), u64::from(optimum));
    }

    #[test]
    fn no_policy_beats_min(
        seq in prop::collection::vec(0u64..30, 0..300),
        cap in 1usize..=12,
        chunk in 1usize..=8,
    ) {
        let bound = min_hits(&seq, cap);
        for name in POLICY_NAMES {
            let future = AccessSeq::from_ids(seq.clone());
            let mut p = policy::by_name(name, cap, Some(&future)).expect("policy builds");
            let hits = hits_of(p.as_mut(), &seq, chunk);
            prop_assert!(hits <= bound, "{} got {} hits, MIN {}", name, hits, bound);
            let stats = p.stats();
            prop_assert_eq!(stats.insertions, stats.evictions + p.len() as u64, "{}", name);
        }
    }

    #[test]
    fn lru_matches_a_naive_model(seq in prop::collection::vec(0u64..20, 0..300), cap in 1usize..=8) {
        let mut lru = policy::by_name("lru", cap, None).expect("lru builds");
        let mut model: Vec<u64> = Vec::new(); // most recent last
        for (i, &id) in seq.iter().enumerate() {
            let expect_hit = match model.iter().position(|&x| x == id) {
                Some(at) => {
                    model.remove(at);
                    true
                }
                None => {
                    if model.len() == cap {
                        model.remove(0);
                    }
                    false
                }
            };
            model.push(id);
            prop_assert_eq!(lru.access(id, i as u64), expect_hit);
            prop_assert_eq!(lru.len(), model.len());
            for &x in &model {
                prop_assert!(lru.contains(x));
            }
        }
    }

    #[test]
    fn sieve_matches_a_naive_model(seq in prop::collection::vec(0u64..20, 0..300), cap in 1usize..=8) {
        // Model: queue (index 0 = tail/oldest), visited bits, hand index into the queue.
        let mut sieve = policy::by_name("sieve", cap, None).expect("sieve builds");
        let mut queue: Vec<(u64, bool)> = Vec::new();
        let mut hand: Option<usize> = None;
        for (i, &id) in seq.iter().enumerate() {
            let expect_hit = if let Some(e) = queue.iter_mut().find(|e| e.0 == id) {
                e.1 = true;
                true
            } else {
                if queue.len() == cap {
                    let mut at = hand.unwrap_or(0);
                    while queue[at].1 {
                        queue[at].1 = false;
                        at = if at + 1 == queue.len() { 0 } else { at + 1 };
                    }
                    queue.remove(at);
                    // The hand moves to the next newer entry, which now sits at `at`.
                    hand = (at < queue.len()).then_some(at);
                }
                queue.push((id, false));
                false
            };
            prop_assert_eq!(sieve.access(id, i as u64), expect_hit);
            prop_assert_eq!(sieve.len(), queue.len());
        }
    }
}
