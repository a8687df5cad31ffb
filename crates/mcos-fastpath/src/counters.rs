//! Event counters of one shard. Single writer (the shard); readers take a copy and sum shards.

use mcos_core::limits::MAX_TIERS;

/// Counters of one shard, or the sum over shards.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// ACCESS events.
    pub accesses: u64,
    /// Hits, by the tier the block was found in.
    pub hits: [u64; MAX_TIERS],
    /// Misses.
    pub misses: u64,
    /// Accesses merged onto a move already under way for the same block.
    pub merged_misses: u64,
    /// INSERT events.
    pub inserts: u64,
    /// Inserts that had to wait for room (a demotion in flight).
    pub insert_retries: u64,
    /// Blocks committed into a tier.
    pub admitted: u64,
    /// Inserts refused, all reasons.
    pub rejected: u64,
    /// Refused by the admission sketch.
    pub rejected_admission: u64,
    /// Refused by a class quota.
    pub rejected_quota: u64,
    /// Refused because every candidate frame was pinned or moving.
    pub rejected_no_room: u64,
    /// Refused because the directory had no room in either of the key's buckets.
    pub rejected_directory: u64,
    /// Blocks evicted for good (dropped from the slowest tier they may live in).
    pub evictions: u64,
    /// Demotions started.
    pub demotions_started: u64,
    /// Demotions completed.
    pub demotions: u64,
    /// Moves started.
    pub moves_started: u64,
    /// Moves completed successfully.
    pub moves_done: u64,
    /// Moves that failed with an I/O error or no space.
    pub move_errors: u64,
    /// Blocks found corrupt (by an engine or a reader) and dropped.
    pub corrupt_blocks: u64,
    /// Frames taken out of service because the device failed under them (a failed read or
    /// write, by an engine's move or a reader).
    pub frames_retired: u64,
    /// Bytes moved, by [source tier][destination tier].
    pub bytes_moved: [[u64; MAX_TIERS]; MAX_TIERS],
    /// Prefetch moves issued.
    pub prefetch_issued: u64,
    /// Prefetched blocks that were accessed before eviction.
    pub prefetch_useful: u64,
    /// Prefetches skipped for lack of frames, slots or ring room, or (while prefetches are
    /// inaccurate) of frames beyond the tier's free-frame watermark.
    pub prefetch_dropped: u64,
    /// Prefetched blocks evicted or demoted before any access.
    pub prefetch_unused: u64,
    /// Descriptors not pushed because the engine ring was full.
    pub ring_full: u64,
    /// Moves with no engine configured for their tier pair.
    pub no_route: u64,
    /// Victim scans that found nothing evictable.
    pub victim_scan_exhausted: u64,
    /// Completions for moves that were not in flight.
    pub stale_completions: u64,
    /// Fill commits that did not match a reserved frame.
    pub bad_commits: u64,
    /// INTENT events.
    pub intents: u64,
    /// Policy tables picked up.
    pub policy_installs: u64,
    /// Times the installed table expired and the built-in default took over.
    pub policy_fallbacks: u64,
    /// Telemetry samples dropped because the ring was full.
    pub telemetry_dropped: u64,
    /// Blocks the preferred tier's history filter refused that were placed in a slower tier.
    pub admitted_below: u64,
}

/// Applies `$m!(field, ...)` to every scalar counter: one list, so summing and differencing
/// cannot drift apart when a counter is added.
macro_rules! scalar_counters {
    ($m:ident) => {
        $m!(
            accesses,
            misses,
            merged_misses,
            inserts,
            insert_retries,
            admitted,
            rejected,
            rejected_admission,
            rejected_quota,
            rejected_no_room,
            rejected_directory,
            evictions,
            demotions_started,
            demotions,
            moves_started,
            moves_done,
            move_errors,
            corrupt_blocks,
            frames_retired,
            prefetch_issued,
            prefetch_useful,
            prefetch_dropped,
            prefetch_unused,
            ring_full,
            no_route,
            victim_scan_exhausted,
            stale_completions,
            bad_commits,
            intents,
            policy_installs,
            policy_fallbacks,
            telemetry_dropped,
            admitted_below
        )
    };
}

impl Counters {
    /// Adds `other` into `self` (summing shards).
    pub fn add(&mut self, o: &Counters) {
        macro_rules! sum {
            ($($f:ident),*) => { $( self.$f += o.$f; )* };
        }
        scalar_counters!(sum);
        for t in 0..MAX_TIERS {
            self.hits[t] += o.hits[t];
            for d in 0..MAX_TIERS {
                self.bytes_moved[t][d] += o.bytes_moved[t][d];
            }
        }
    }

    /// The counts accumulated since the snapshot `before` (counters only grow).
    pub fn since(&self, before: &Counters) -> Counters {
        let mut d = *self;
        macro_rules! sub {
            ($($f:ident),*) => { $( d.$f = d.$f.saturating_sub(before.$f); )* };
        }
        scalar_counters!(sub);
        for t in 0..MAX_TIERS {
            d.hits[t] = d.hits[t].saturating_sub(before.hits[t]);
            for u in 0..MAX_TIERS {
                d.bytes_moved[t][u] = d.bytes_moved[t][u].saturating_sub(before.bytes_moved[t][u]);
            }
        }
        d
    }

    /// Hits in every tier.
    pub fn total_hits(&self) -> u64 {
        self.hits.iter().sum()
    }
}
