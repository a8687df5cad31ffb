//! The fast path allocates nothing per event after start-up: a counting global allocator
//! watches every event type (ACCESS hits and misses in both tiers, INSERT, fill commit,
//! COMPLETION of demotions and promotions, INTENT, TICK) over a long mixed run.

mod harness;

use harness::{Rig, key};
use mcos_core::{AdmitFilter, Intent, IntentAction, PolicyTable};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn run(rig: &mut Rig, rounds: u64, skew: u64) -> u64 {
    let mut hits = 0;
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    for i in 0..rounds {
        // xorshift: skewed ids over a set larger than both tiers.
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let id = (x % 4000).min(x % skew);
        if rig.touch(id) {
            hits += 1;
        }
        rig.pump();
        if i % 64 == 0 {
            rig.shard.tick();
            let _ = rig.shard.intent(Intent {
                key: key(id),
                action: IntentAction::Pin { ttl_ticks: 3 },
            });
            let _ = rig.shard.intent(Intent {
                key: key(id + 1),
                action: IntentAction::Sequence {
                    sequence: 1,
                    position: (i % 100) as u32,
                },
            });
        }
    }
    hits
}

#[test]
fn no_allocation_per_event_after_start_up() {
    let mut rig = Rig::new(&[256, 1024]);
    run(&mut rig, 20_000, 700);
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let hits = run(&mut rig, 200_000, 700);
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    let c = *rig.shard.counters();
    assert!(
        hits > 10_000 && c.hits[1] > 1_000 && c.demotions > 1_000,
        "the run exercised both tiers: {c:?}"
    );
    assert_eq!(
        after - before,
        0,
        "allocations during 200k fast-path events"
    );

    // The brain's knobs: an admission window with the frequency duel, a protected segment,
    // the history and history-only admission, sketch aging.
    let mut t = PolicyTable::builtin(2);
    t.window_share[0] = 8;
    t.protected_share[0] = 128;
    t.history_quarters = 8;
    t.sketch_window = 2_000;
    t.classes[0].admit_filter = AdmitFilter::History;
    rig.installer.try_install(&t).unwrap();
    run(&mut rig, 1_000, 4000);
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    run(&mut rig, 100_000, 4000);
    let after = ALLOCATIONS.load(Ordering::Relaxed);
    let c = *rig.shard.counters();
    assert!(
        c.admitted_below > 1_000 && c.policy_installs >= 1,
        "the history filter ran: {c:?}"
    );
    assert_eq!(after - before, 0, "allocations under the brain's knobs");
}
