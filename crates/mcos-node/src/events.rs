//! KV events: a node's stream of BlockStored / BlockRemoved, for a router that wants to know
//! which blocks each node holds (Dynamo's KV router consumes the same two events from vLLM and
//! its block manager; LMCache's controller gets admit/evict messages from each worker).
//!
//! The node records an event where the block's visibility changes, under the shard lock: a
//! `Stored` at the commit of a put (the block becomes readable), a `Removed` when the fast path
//! drops it (eviction out of the last tier it may live in, a corrupt block dropped, a block
//! lost to a failing device). Moves between the node's own tiers are not events: the block
//! stays on the node; a snapshot gives each block's current tier. A `Stored` carries the parent
//! key its put named (`Node::put_batch_with_parents`; the block it extends, as in a token
//! prefix), kept beside the key for the snapshot; a removal names none.
//!
//! Publishing never waits for a reader. Events go into one bounded ring with a sequence number
//! each (1, 2, ...); a reader keeps a cursor and copies what it has not seen. A reader that
//! falls more than the ring's depth behind loses the oldest events: it is told how many, its
//! next event's sequence number jumps, and it resyncs from a snapshot (`Node::kv_snapshot`),
//! whose sequence number says which events it already covers. A shard whose removal log
//! overflowed (more removals in one lock hold than it holds) skips a sequence number the same
//! way, so no reader mistakes an incomplete stream for a complete one.

use mcos_core::{BlockKey, TierId};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

/// Events the ring holds: a reader this far behind loses the oldest.
pub const KV_EVENT_RING_DEPTH: usize = 1 << 16;
/// Removals one shard logs between two drains (one lock hold); more are a sequence gap.
pub const REMOVAL_LOG_DEPTH: usize = 1024;

/// What happened to a block.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum KvEventKind {
    /// The block became readable on this node (a put's commit).
    Stored,
    /// The block left this node (evicted from its last tier, dropped as corrupt or lost to
    /// the device).
    Removed,
}

/// One event, as a reader gets it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct KvEvent {
    /// Sequence number: 1 for the node's first event, one more for each after it.
    pub seq: u64,
    /// Stored or removed.
    pub kind: KvEventKind,
    /// The block's key as the node stores it.
    pub key: BlockKey,
    /// `Stored`: the tier it was stored in; `Removed`: the tier it left from.
    pub tier: TierId,
    /// `Stored`: the parent key its put named (`BlockKey::NONE`: none); `Removed`: none.
    pub parent: BlockKey,
}

/// An event before it has a sequence number: (kind, key, parent, tier); `None`: a lost
/// removal, published as a gap.
pub(crate) type Pending = Option<(KvEventKind, BlockKey, BlockKey, TierId)>;

struct Ring {
    /// `buf[seq % depth]` holds event `seq` for the last `depth` sequence numbers (`None`: a
    /// gap left by lost removals).
    buf: Vec<Pending>,
    /// Sequence number of the next event.
    next_seq: u64,
}

/// The node's event ring.
pub struct KvEventLog {
    ring: Mutex<Ring>,
    ready: Condvar,
    /// Events readers lost by falling behind (written by readers, read by stats).
    dropped: AtomicU64,
    /// Sequence numbers skipped for removals a shard log could not hold (written by
    /// publishers, read by stats).
    lost_removals: AtomicU64,
}

impl KvEventLog {
    pub(crate) fn new(depth: usize) -> KvEventLog {
        KvEventLog {
            ring: Mutex::new(Ring {
                buf: vec![None; depth.max(1)],
                next_seq: 1,
            }),
            ready: Condvar::new(),
            dropped: AtomicU64::new(0),
            lost_removals: AtomicU64::new(0),
        }
    }

    fn ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.ring.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes a batch in order (each `None` skips one sequence number) and wakes readers.
    pub(crate) fn publish(&self, batch: &mut Vec<Pending>) {
        if batch.is_empty() {
            return;
        }
        let lost = batch.iter().filter(|e| e.is_none()).count() as u64;
        if lost > 0 {
            self.lost_removals.fetch_add(lost, Ordering::Relaxed);
        }
        let mut r = self.ring();
        let depth = r.buf.len() as u64;
        for e in batch.drain(..) {
            let i = (r.next_seq % depth) as usize;
            r.buf[i] = e;
            r.next_seq += 1;
        }
        drop(r);
        self.ready.notify_all();
    }

    /// Sequence number the next event will get: a new reader's cursor.
    pub fn next_seq(&self) -> u64 {
        self.ring().next_seq
    }

    /// Copies at most `max` events from `*cursor` on into `out` (appended) and advances the
    /// cursor, waiting up to `wait` when there is none yet. Returns how many events this reader
    /// lost (fell more than the ring's depth behind, or removals lost at the source): the
    /// sequence numbers of `out` then jump, and the reader should resync from a snapshot.
    pub fn read(
        &self,
        cursor: &mut u64,
        out: &mut Vec<KvEvent>,
        max: usize,
        wait: Duration,
    ) -> u64 {
        let mut r = self.ring();
        if *cursor >= r.next_seq && !wait.is_zero() {
            r = self
                .ready
                .wait_timeout(r, wait)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let depth = r.buf.len() as u64;
        let oldest = r.next_seq.saturating_sub(depth).max(1);
        let mut lost = 0;
        if *cursor < oldest {
            lost = oldest - *cursor;
            self.dropped.fetch_add(lost, Ordering::Relaxed);
            *cursor = oldest;
        }
        let end = r.next_seq.min(cursor.saturating_add(max as u64));
        while *cursor < end {
            let seq = *cursor;
            match r.buf[(seq % depth) as usize] {
                Some((kind, key, parent, tier)) => out.push(KvEvent {
                    seq,
                    kind,
                    key,
                    tier,
                    parent,
                }),
                None => lost += 1,
            }
            *cursor += 1;
        }
        lost
    }

    /// Events readers lost by falling behind the ring.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Removals not published because a shard's log was full (each a sequence gap).
    pub fn lost_removals(&self) -> u64 {
        self.lost_removals.load(Ordering::Relaxed)
    }
}

/// What a resident block is known by for events: its full key (the fast path knows blocks by
/// directory tag only), its parent key as its put named it, and the tier it was stored in.
#[derive(Copy, Clone, Debug)]
pub(crate) struct Resident {
    pub key: BlockKey,
    pub parent: BlockKey,
    pub stored_in: TierId,
}

/// What a shard keeps for events: each resident block by its directory tag, and the events of
/// the current lock hold.
pub(crate) struct ShardEvents {
    pub log: std::sync::Arc<KvEventLog>,
    pub keys: std::collections::HashMap<u64, Resident>,
    pub pending: Vec<Pending>,
}

/// A consistent view of a node's blocks for a reader that (re)starts: every block resident
/// after the events up to `seq` (inclusive) and before any later one.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvSnapshot {
    /// The last event the snapshot reflects (0: none yet); apply events after it.
    pub seq: u64,
    /// Every resident block with its tier now.
    pub blocks: Vec<(BlockKey, TierId)>,
    /// `parents[i]`: `blocks[i]`'s parent key as its put named it (`BlockKey::NONE`: none, or
    /// a block restored at a warm restart, whose parent is not persisted).
    pub parents: Vec<BlockKey>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stored(k: u128) -> Pending {
        Some((KvEventKind::Stored, BlockKey(k), BlockKey(k - 1), TierId(0)))
    }

    #[test]
    fn a_reader_sees_every_event_in_order() {
        let log = KvEventLog::new(8);
        let mut cursor = log.next_seq();
        log.publish(&mut vec![stored(1), stored(2)]);
        let mut out = Vec::new();
        assert_eq!(log.read(&mut cursor, &mut out, 100, Duration::ZERO), 0);
        assert_eq!(out.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2]);
        assert_eq!((out[1].key, out[1].parent), (BlockKey(2), BlockKey(1)));
        out.clear();
        assert_eq!(log.read(&mut cursor, &mut out, 100, Duration::ZERO), 0);
        assert!(out.is_empty());
    }

    #[test]
    fn a_lagging_reader_loses_the_oldest_and_is_told() {
        let log = KvEventLog::new(4);
        let mut cursor = log.next_seq();
        let mut batch: Vec<Pending> = (1..=10).map(stored).collect();
        log.publish(&mut batch);
        let mut out = Vec::new();
        // Events 1..=10 published, the ring holds 7..=10.
        assert_eq!(log.read(&mut cursor, &mut out, 100, Duration::ZERO), 6);
        assert_eq!(out.iter().map(|e| e.seq).collect::<Vec<_>>(), [7, 8, 9, 10]);
        assert_eq!(log.dropped(), 6);
        // Reading in small steps keeps the order.
        log.publish(&mut vec![stored(11), stored(12)]);
        out.clear();
        assert_eq!(log.read(&mut cursor, &mut out, 1, Duration::ZERO), 0);
        assert_eq!(log.read(&mut cursor, &mut out, 1, Duration::ZERO), 0);
        assert_eq!(out.iter().map(|e| e.seq).collect::<Vec<_>>(), [11, 12]);
    }

    #[test]
    fn a_lost_removal_is_a_sequence_gap() {
        let log = KvEventLog::new(8);
        let mut cursor = log.next_seq();
        log.publish(&mut vec![stored(1), None, stored(3)]);
        let mut out = Vec::new();
        assert_eq!(log.read(&mut cursor, &mut out, 100, Duration::ZERO), 1);
        assert_eq!(out.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 3]);
        assert_eq!(log.lost_removals(), 1);
    }

    #[test]
    fn a_waiting_reader_wakes_on_publish() {
        let log = std::sync::Arc::new(KvEventLog::new(8));
        let l2 = log.clone();
        let t = std::thread::spawn(move || {
            let mut cursor = 1;
            let mut out = Vec::new();
            l2.read(&mut cursor, &mut out, 10, Duration::from_secs(10));
            out
        });
        std::thread::sleep(Duration::from_millis(20));
        log.publish(&mut vec![stored(5)]);
        let out = t.join().expect("reader");
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].key, BlockKey(5));
    }
}
