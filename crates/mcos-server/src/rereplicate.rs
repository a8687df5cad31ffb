//! Re-replication by the daemons: after a member leaves, the surviving owners of protected
//! blocks copy them to the new owners until the replication factor holds again.
//!
//! A daemon tracks the protected blocks stored on it (pinned classes and `PRECIOUS`: factor 2)
//! with the tenant and client key they were stored under, since placement hashes the client
//! key and the node holds only the tenant-salted one. At every membership change, for each
//! tracked block it still holds, it computes the owners before and after; the first owner
//! of the previous list that is still a member (normally the surviving owner) is responsible,
//! so one daemon copies each block. It asks the new owners which of its blocks they lack
//! (`exists`, one call per owner and tenant per batch), reads those blocks from its own node
//! and writes them to the owners that lack them (one put per owner, tenant and class). A
//! round with failures (an owner unreachable) is retried every [`RETRY`] until it completes.
//! Copies are bounded to `rereplicate_blocks_per_s`; progress is in the stats reply
//! (`daemon.pool.rereplication`), `/metrics` (`mcos_pool_rereplicated_total`,
//! `mcos_pool_rereplication_pending`) and the log (one line per round that copied or failed).

use crate::Shared;
use mcos_cluster::{View, placement::owners_seeded};
use mcos_core::BlockKey;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// Most protected blocks one daemon tracks (about 48 bytes each in the map: 48 MiB at the
/// limit). Beyond it new blocks are not tracked, and counted.
pub(crate) const MAX_TRACKED: usize = 1 << 20;
/// Blocks checked per batch (bounds one batch's reads and calls).
const BATCH: usize = 256;
/// How often the thread looks at the membership.
const POLL: Duration = Duration::from_millis(50);
/// Wait before retrying a round that could not reach every owner.
const RETRY: Duration = Duration::from_secs(1);

/// What a tracked block was stored as.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct Entry {
    client_key: BlockKey,
    tenant: u16,
    class: u8,
}

/// Progress, for stats and metrics. Written by the re-replication thread (and `track`),
/// read by stats (relaxed: independent figures).
#[derive(Default)]
struct Progress {
    rounds: AtomicU64,
    copied: AtomicU64,
    failed: AtomicU64,
    pending: AtomicU64,
    untracked: AtomicU64,
    /// Membership generation the last complete round was for.
    generation: AtomicU64,
    last_round_ms: AtomicU64,
}

/// The protected blocks this daemon holds, by node key.
#[derive(Default)]
pub(crate) struct Tracker {
    map: Mutex<HashMap<BlockKey, Entry>>,
    progress: Progress,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Tracker {
    pub(crate) fn track(&self, node_key: BlockKey, client_key: BlockKey, tenant: u16, class: u8) {
        let mut m = lock(&self.map);
        if m.len() < MAX_TRACKED || m.contains_key(&node_key) {
            m.insert(
                node_key,
                Entry {
                    client_key,
                    tenant,
                    class,
                },
            );
        } else {
            self.progress.untracked.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn stats_json(&self) -> Value {
        let p = &self.progress;
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        json!({
            "tracked": lock(&self.map).len(),
            "untracked": n(&p.untracked),
            "rounds": n(&p.rounds),
            "copied": n(&p.copied),
            "failed": n(&p.failed),
            "pending": n(&p.pending),
            "generation": n(&p.generation),
            "last_round_ms": n(&p.last_round_ms),
        })
    }

    pub(crate) fn render_metrics(&self, o: &mut String) {
        let p = &self.progress;
        let n = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let rows: [(&str, &str, &str, u64); 5] = [
            (
                "mcos_pool_rereplicated_total",
                "counter",
                "Protected blocks this daemon copied to new owners after a member left.",
                n(&p.copied),
            ),
            (
                "mcos_pool_rereplication_failed_total",
                "counter",
                "Copies that could not be made (owner unreachable or refused); retried.",
                n(&p.failed),
            ),
            (
                "mcos_pool_rereplication_rounds_total",
                "counter",
                "Re-replication rounds run.",
                n(&p.rounds),
            ),
            (
                "mcos_pool_rereplication_pending",
                "gauge",
                "Tracked blocks left to check in the round in progress.",
                n(&p.pending),
            ),
            (
                "mcos_pool_protected_tracked",
                "gauge",
                "Protected blocks this daemon tracks for re-replication.",
                lock(&self.map).len() as u64,
            ),
        ];
        for (name, kind, help, v) in rows {
            let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}");
        }
    }
}

/// A round's outcome.
#[derive(Default)]
struct Round {
    copied: u64,
    failed: u64,
}

/// Starts the re-replication thread (the daemon is a pool member). It stops when `stop` is
/// set.
pub(crate) fn spawn(sh: Arc<Shared>, stop: Arc<AtomicBool>) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("mcosd-rereplicate".into())
        .spawn(move || run(&sh, &stop))
}

fn run(sh: &Shared, stop: &AtomicBool) {
    let Some(pool) = sh.pool.get() else { return };
    let mut prev: Arc<View> = pool.peers.view();
    let mut done_gen = prev.generation;
    let mut retry_at: Option<Instant> = None;
    let mut last_table = Instant::now();
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(POLL);
        if last_table.elapsed() >= RETRY {
            // The policy table decides which classes are protected; it may change.
            let r = mcos_cluster::Replication::from_table(&sh.node.policy_table().1);
            *pool.replication.write().unwrap_or_else(|e| e.into_inner()) = r;
            last_table = Instant::now();
        }
        let cur = pool.peers.view();
        let due = cur.generation != done_gen || retry_at.is_some_and(|t| Instant::now() >= t);
        if !due || cur.member(pool.peers.self_id()).is_none() {
            continue;
        }
        let t0 = Instant::now();
        let r = round(sh, &prev, &cur, stop);
        let p = &pool.tracker.progress;
        p.rounds.fetch_add(1, Ordering::Relaxed);
        p.copied.fetch_add(r.copied, Ordering::Relaxed);
        p.failed.fetch_add(r.failed, Ordering::Relaxed);
        p.last_round_ms
            .store(t0.elapsed().as_millis() as u64, Ordering::Relaxed);
        if r.copied > 0 || r.failed > 0 {
            info!(
                copied = r.copied,
                failed = r.failed,
                members = cur.members.len(),
                seconds = t0.elapsed().as_secs_f64(),
                "re-replication round: protected blocks copied to their new owners"
            );
        }
        if r.failed == 0 {
            // Complete: the next change is measured against this view.
            p.generation.store(cur.generation, Ordering::Relaxed);
            prev = cur.clone();
            retry_at = None;
        } else {
            // Same `prev` next time, so the same daemon stays responsible.
            retry_at = Some(Instant::now() + RETRY);
        }
        done_gen = cur.generation;
    }
}

/// One pass over the tracked blocks: copies each block this daemon is responsible for to the
/// owners in `cur` that lack it.
fn round(sh: &Shared, prev: &View, cur: &View, stop: &AtomicBool) -> Round {
    let Some(pool) = sh.pool.get() else {
        return Round::default();
    };
    let self_id = pool.peers.self_id();
    let replication = pool
        .replication
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    let entries: Vec<(BlockKey, Entry)> = lock(&pool.tracker.map)
        .iter()
        .map(|(k, e)| (*k, *e))
        .collect();
    let progress = &pool.tracker.progress;
    progress
        .pending
        .store(entries.len() as u64, Ordering::Relaxed);
    let rate = f64::from(pool.rereplicate_blocks_per_s.max(1));
    let started = Instant::now();
    let mut out = Round::default();
    let mut evicted: Vec<BlockKey> = Vec::new();
    for chunk in entries.chunks(BATCH) {
        if stop.load(Ordering::Acquire) {
            break;
        }
        // (member index, tenant) -> blocks (index into chunk) to check there.
        let mut ask: HashMap<(usize, u16), Vec<usize>> = HashMap::new();
        for (i, (nk, e)) in chunk.iter().enumerate() {
            if sh.node.locate(*nk).is_none() {
                evicted.push(*nk);
                continue;
            }
            let factor = replication.factor(e.class);
            let was = owners_seeded(
                e.client_key,
                &prev.members,
                &prev.seeds,
                factor.min(prev.members.len()),
            );
            let responsible = was
                .iter()
                .map(|&o| prev.members[o].node_id.as_str())
                .find(|id| cur.member(id).is_some())
                .is_none_or(|id| id == self_id);
            if !responsible {
                continue;
            }
            for o in owners_seeded(e.client_key, &cur.members, &cur.seeds, factor) {
                if cur.members[o].node_id != self_id {
                    ask.entry((o, e.tenant)).or_default().push(i);
                }
            }
        }
        // (member index, tenant, class) -> blocks to write there.
        let mut write: HashMap<(usize, u16, u8), Vec<usize>> = HashMap::new();
        for ((o, t), idx) in &ask {
            let m = &cur.members[*o];
            let tenant = &pool.tenant_names[usize::from(*t)];
            let keys: Vec<BlockKey> = idx.iter().map(|&i| chunk[i].1.client_key).collect();
            match pool.peers.exists_on(m, tenant, &keys) {
                Some((held, call)) => {
                    pool.record_calls(&[call]);
                    for (&i, h) in idx.iter().zip(held) {
                        if !h {
                            write.entry((*o, *t, chunk[i].1.class)).or_default().push(i);
                        }
                    }
                }
                None => {
                    pool.counters.peer_failures.fetch_add(1, Ordering::Relaxed);
                    out.failed += idx.len() as u64;
                }
            }
        }
        let bb = sh.block_bytes as usize;
        for ((o, t, class), idx) in &write {
            let m = &cur.members[*o];
            let tenant = &pool.tenant_names[usize::from(*t)];
            let mut bufs: Vec<(BlockKey, Vec<u8>)> = Vec::with_capacity(idx.len());
            for &i in idx {
                let (nk, e) = chunk[i];
                let mut b = vec![0u8; bb];
                match sh.node.get_into(nk, None, &mut b) {
                    Ok(mcos_node::Fetched::Hit { len, .. }) => {
                        b.truncate(len);
                        bufs.push((e.client_key, b));
                    }
                    Ok(mcos_node::Fetched::Miss) => evicted.push(nk),
                    Err(err) => {
                        warn!("re-replication: reading a protected block failed: {err}");
                        out.failed += 1;
                    }
                }
            }
            if bufs.is_empty() {
                continue;
            }
            let batch: Vec<(BlockKey, &[u8])> =
                bufs.iter().map(|(k, b)| (*k, b.as_slice())).collect();
            match pool.peers.put_on(m, tenant, *class, &batch) {
                Some((stored, held, call)) => {
                    // Present: another party (a client's repairer) was first; not a copy.
                    pool.record_calls(&[call]);
                    out.copied += stored;
                    out.failed += batch.len() as u64 - held;
                }
                None => {
                    pool.counters.peer_failures.fetch_add(1, Ordering::Relaxed);
                    out.failed += batch.len() as u64;
                }
            }
        }
        progress
            .pending
            .fetch_sub(chunk.len() as u64, Ordering::Relaxed);
        // Bounded rate: the copies so far may not run ahead of `rate` per second.
        let due = Duration::from_secs_f64(out.copied as f64 / rate);
        while started.elapsed() < due && !stop.load(Ordering::Acquire) {
            std::thread::sleep((due - started.elapsed()).min(POLL));
        }
    }
    progress.pending.store(0, Ordering::Relaxed);
    if !evicted.is_empty() {
        let mut m = lock(&pool.tracker.map);
        for k in evicted {
            m.remove(&k);
        }
    }
    out
}
