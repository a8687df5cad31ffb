//! The event streams that drive the benchmark, as a dispatcher would hand them to one shard.
//!
//! A stream is a sequence of [`Op`]s; one *decision* is a run of zero or more `Declare` ops
//! (sequence intents) followed by one `Access`, and both execution modes (fast path and
//! software round trip) take exactly the same decisions. Every key of a shard's stream belongs
//! to that shard (`BlockKey::shard`), as if a dispatcher had routed a global stream by key, so
//! each directory entry has one writer.
//!
//! - [`TraceStream`]: the block accesses of a Mooncake-format trace replay, in order (each
//!   request's `hash_ids`, one access per block, insert on a miss), looped when the run is
//!   longer than the trace.
//! - [`SyntheticStream`]: a seeded mix over a large key space: hits on recently inserted blocks,
//!   misses on blocks never seen (each one evicts once the cache is full), and sequence reads of
//!   older blocks, already demoted to the slower tier, whose access triggers prefetch of the
//!   positions declared after it.
//!
//! Streams write into a caller's buffer and allocate nothing after construction.

use mcos_core::{BlockKey, Namespace};
use mcos_workload::{TraceError, TraceReader};
use std::path::Path;

/// What an op does.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// ACCESS the key (with a sequence hint when `hint` is set); INSERT and commit on a miss.
    Access,
    /// INTENT: the key is at `hint.1` of sequence `hint.0`.
    Declare,
}

/// One event of a stream.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Op {
    /// The block.
    pub key: BlockKey,
    /// (sequence, position), or `NO_HINT`.
    pub hint: (u32, u32),
    /// Access or declare.
    pub kind: OpKind,
    /// Priority class of an inserted block.
    pub class: u8,
}

/// `Op::hint` of an access without a sequence hint.
pub const NO_HINT: (u32, u32) = (u32::MAX, u32::MAX);

impl Op {
    /// An access without a hint.
    pub fn access(key: BlockKey, class: u8) -> Op {
        Op {
            key,
            hint: NO_HINT,
            kind: OpKind::Access,
            class,
        }
    }

    /// The access's sequence hint, if any.
    pub fn hint(&self) -> Option<(u32, u32)> {
        (self.hint != NO_HINT).then_some(self.hint)
    }
}

/// Most ops one decision may take: the prefetch degree's declares plus the access.
pub const MAX_OPS_PER_DECISION: usize = mcos_core::limits::PREFETCH_DEGREE_MAX as usize + 1;

/// A source of decisions for one shard.
pub trait Stream: Send {
    /// Writes whole decisions into `out` (never a decision cut in two) and returns the number
    /// of ops written; at least one decision when `out` holds `MAX_OPS_PER_DECISION` ops.
    fn fill(&mut self, out: &mut [Op]) -> usize;
}

/// The namespace root every benchmark key hangs from.
pub fn bench_root() -> BlockKey {
    Namespace::for_model("mcos-bench").root()
}

/// The block accesses of a trace, split by shard.
pub struct TraceStream {
    keys: Vec<BlockKey>,
    next: usize,
    /// Accesses of one pass over this shard's part of the trace.
    pass: usize,
}

/// A trace's block accesses, loaded once and handed out per shard.
#[derive(Clone)]
pub struct TraceKeys {
    /// Per shard, that shard's accesses in trace order.
    pub per_shard: Vec<Vec<BlockKey>>,
    /// Distinct blocks in the trace.
    pub unique_blocks: u64,
    /// Accesses in one pass.
    pub accesses: u64,
    /// Requests read.
    pub requests: u64,
}

impl TraceKeys {
    /// Reads a Mooncake-format trace and routes its block accesses to `shards` shards.
    pub fn load(path: &Path, shards: usize) -> Result<TraceKeys, TraceError> {
        let root = bench_root();
        let mut per_shard = vec![Vec::new(); shards.max(1)];
        let mut seen = std::collections::HashSet::new();
        let (mut accesses, mut requests) = (0u64, 0u64);
        for request in TraceReader::open(path)? {
            let request = request?;
            requests += 1;
            for &id in &request.hash_ids {
                let key = BlockKey::from_trace_id_under(root, id);
                per_shard[key.shard(shards.max(1))].push(key);
                seen.insert(id);
                accesses += 1;
            }
        }
        Ok(TraceKeys {
            per_shard,
            unique_blocks: seen.len() as u64,
            accesses,
            requests,
        })
    }

    /// The stream of shard `shard`.
    pub fn stream(&self, shard: usize) -> TraceStream {
        let keys = self.per_shard.get(shard).cloned().unwrap_or_default();
        TraceStream {
            pass: keys.len(),
            keys,
            next: 0,
        }
    }
}

impl TraceStream {
    /// Accesses in one pass over this shard's part of the trace.
    pub fn pass_len(&self) -> usize {
        self.pass
    }
}

impl Stream for TraceStream {
    fn fill(&mut self, out: &mut [Op]) -> usize {
        if self.keys.is_empty() {
            return 0;
        }
        for op in out.iter_mut() {
            *op = Op::access(self.keys[self.next], 0);
            self.next += 1;
            if self.next == self.keys.len() {
                self.next = 0;
            }
        }
        out.len()
    }
}

/// Shares of each kind of decision in a synthetic stream, in percent (they need not sum to 100:
/// they are weights).
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Mix {
    /// Accesses to a block among the `hot_blocks` most recently inserted: hits.
    pub hit: u32,
    /// Accesses to a block never seen before: misses that insert and, on a full cache, evict.
    pub miss: u32,
    /// Sequence reads of an older block (in the slower tier), after declaring the positions
    /// that follow it: a lower-tier hit that promotes the block and prefetches the rest.
    pub prefetch: u32,
}

impl Mix {
    /// 70 % hits, 20 % misses, 10 % prefetching reads.
    pub const DEFAULT: Mix = Mix {
        hit: 70,
        miss: 20,
        prefetch: 10,
    };
}

/// Shape of a synthetic stream.
#[derive(Copy, Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct SyntheticSpec {
    /// Key space: fresh blocks are drawn from ids `0..distinct` in order (wrapping).
    pub distinct: u64,
    /// Hits go to one of this many most recently inserted blocks of the shard (uniformly).
    pub hot_blocks: u64,
    /// Decision mix.
    pub mix: Mix,
    /// Positions declared after a prefetching read (its prefetch degree).
    pub prefetch_degree: u8,
    /// Seed.
    pub seed: u64,
}

/// A seeded synthetic stream for one shard.
pub struct SyntheticStream {
    spec: SyntheticSpec,
    shard: usize,
    shards: usize,
    root: BlockKey,
    rng: u64,
    cursor: u64,
    /// Ids of the blocks this shard's misses inserted, newest at `inserted - 1` (a ring of
    /// `history.len()`: the shard's capacity, older ones have been evicted).
    history: Box<[u64]>,
    inserted: u64,
    /// Depth range (in inserts) where blocks sit in the slower tier.
    cold_from: u64,
    next_sequence: u32,
    /// Fresh ids handed out (distinct blocks touched, until the key space wraps).
    fresh: u64,
    /// Misses only (filling the cache before the mix starts).
    warming: bool,
}

impl SyntheticStream {
    /// The stream of `shard` of `shards`; `fast_frames` and `capacity` are that shard's tier-0
    /// frames and total frames (they say which blocks are hot and which have been demoted).
    pub fn new(
        spec: SyntheticSpec,
        shard: usize,
        shards: usize,
        fast_frames: u64,
        capacity: u64,
    ) -> SyntheticStream {
        let capacity = capacity.max(8);
        SyntheticStream {
            spec,
            shard,
            shards: shards.max(1),
            root: bench_root(),
            rng: spec.seed ^ (shard as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            cursor: 0,
            history: vec![0; capacity as usize].into_boxed_slice(),
            inserted: 0,
            cold_from: (fast_frames + fast_frames / 4).min(capacity / 2),
            next_sequence: (shard as u32) << 24,
            fresh: 0,
            warming: false,
        }
    }

    /// While warming, every decision is a miss on a fresh block (to fill the cache quickly).
    pub fn set_warming(&mut self, on: bool) {
        self.warming = on;
    }

    /// Blocks inserted by this stream's misses so far.
    pub fn inserted(&self) -> u64 {
        self.inserted
    }

    /// Distinct blocks this stream has handed out.
    pub fn distinct_touched(&self) -> u64 {
        self.fresh.min(self.spec.distinct)
    }

    fn next_u64(&mut self) -> u64 {
        // xorshift64*
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n.max(1))) >> 64) as u64
    }

    fn key(&self, id: u64) -> BlockKey {
        BlockKey::from_trace_id_under(self.root, id)
    }

    /// The next id of the key space that belongs to this shard (bounded: one shard in
    /// `shards` owns about 1/shards of the ids).
    fn fresh_id(&mut self) -> u64 {
        let distinct = self.spec.distinct.max(1);
        for _ in 0..4096 {
            let id = self.cursor;
            self.cursor = (self.cursor + 1) % distinct;
            if self.shards == 1 || self.key(id).shard(self.shards) == self.shard {
                return id;
            }
        }
        // A key space this small cannot be split this way; take the id anyway.
        self.cursor
    }

    /// The id inserted `depth` inserts ago (0: the newest).
    fn past(&self, depth: u64) -> u64 {
        let ring = self.history.len() as u64;
        self.history[((self.inserted - 1 - depth) % ring) as usize]
    }

    fn decision(&mut self, out: &mut [Op]) -> usize {
        let Mix {
            hit,
            miss,
            prefetch,
        } = self.spec.mix;
        let total = u64::from(hit + miss + prefetch).max(1);
        let roll = if self.warming {
            u64::from(hit)
        } else {
            self.below(total)
        };
        let ring = self.history.len() as u64;
        let known = self.inserted.min(ring);
        let degree = u64::from(
            self.spec
                .prefetch_degree
                .min(mcos_core::limits::PREFETCH_DEGREE_MAX),
        );
        if roll < u64::from(hit) && known > 0 {
            let depth = self.below(self.spec.hot_blocks.min(known));
            out[0] = Op::access(self.key(self.past(depth)), 0);
            return 1;
        }
        let cold_span = known.saturating_sub(self.cold_from + degree + ring / 8);
        if roll >= u64::from(hit + miss) && cold_span > 0 && !self.warming {
            // Blocks inserted one after another sit next to each other in a sequence: declare
            // the `degree` positions after the one read, then read it with its hint.
            let depth = self.cold_from + degree + self.below(cold_span);
            let sequence = self.next_sequence;
            self.next_sequence = self.next_sequence.wrapping_add(1);
            for d in 1..=degree {
                out[d as usize - 1] = Op {
                    key: self.key(self.past(depth - d)),
                    hint: (sequence, d as u32),
                    kind: OpKind::Declare,
                    class: 0,
                };
            }
            out[degree as usize] = Op {
                key: self.key(self.past(depth)),
                hint: (sequence, 0),
                kind: OpKind::Access,
                class: 0,
            };
            return degree as usize + 1;
        }
        let id = self.fresh_id();
        self.history[(self.inserted % ring) as usize] = id;
        self.inserted += 1;
        self.fresh += 1;
        out[0] = Op::access(self.key(id), 0);
        1
    }
}

impl Stream for SyntheticStream {
    fn fill(&mut self, out: &mut [Op]) -> usize {
        let mut n = 0;
        while out.len() - n >= MAX_OPS_PER_DECISION {
            n += self.decision(&mut out[n..]);
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SyntheticSpec {
        SyntheticSpec {
            distinct: 1 << 20,
            hot_blocks: 64,
            mix: Mix::DEFAULT,
            prefetch_degree: 3,
            seed: 7,
        }
    }

    #[test]
    fn decisions_are_whole_and_keys_belong_to_their_shard() {
        let mut s = SyntheticStream::new(spec(), 1, 2, 256, 1024);
        let mut buf = vec![Op::access(BlockKey(1), 0); 4096];
        let mut accesses = 0;
        let mut declares = 0;
        for _ in 0..10 {
            let n = s.fill(&mut buf);
            assert!(n > 4096 - MAX_OPS_PER_DECISION);
            assert_eq!(
                buf[n - 1].kind,
                OpKind::Access,
                "a decision ends in an access"
            );
            for op in &buf[..n] {
                assert_eq!(op.key.shard(2), 1);
                match op.kind {
                    OpKind::Access => accesses += 1,
                    OpKind::Declare => declares += 1,
                }
            }
        }
        // About 10 % of decisions prefetch, each with 3 declares.
        let share = declares as f64 / 3.0 / accesses as f64;
        assert!((0.05..0.15).contains(&share), "{share}");
        assert!(s.distinct_touched() > 5_000);
    }

    #[test]
    fn the_same_seed_gives_the_same_stream() {
        let mut a = SyntheticStream::new(spec(), 0, 1, 256, 1024);
        let mut b = SyntheticStream::new(spec(), 0, 1, 256, 1024);
        let mut x = vec![Op::access(BlockKey(1), 0); 512];
        let mut y = x.clone();
        let (n, m) = (a.fill(&mut x), b.fill(&mut y));
        assert_eq!(x[..n], y[..m]);
    }
}
