//! Re-replication: after a member is lost, bring protected blocks back to their replication
//! factor on the current owners.
//!
//! [`PoolClient::repair`] checks each block's owners in the current view with one `exists`
//! call per member, reads each under-replicated block from one holder (batched per holder,
//! verified by the holder) and writes it to the owners that lack it (batched per owner, in the
//! block's class). [`Repairer`] runs that in the background for the protected blocks a writer
//! stored, whenever the membership changes, until the factor holds again. The set of tracked
//! keys is bounded ([`MAX_TRACKED`]); the daemons hold only tenant-salted keys, so the repair
//! needs a party that knows the keys: the writer (here) or a router fed by the KV events.

use crate::error::ClusterError;
use crate::membership::MembershipConfig;
use crate::placement::owners_seeded;
use crate::pool::{PoolClient, PoolOptions};
use mcos_core::BlockKey;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// Most protected keys one repairer tracks (16 bytes + class each: about 32 MiB of map at the
/// limit). Beyond it new keys are not tracked, and counted.
pub const MAX_TRACKED: usize = 1 << 20;
/// Blocks repaired per batch (bounds the memory of one round's reads).
const REPAIR_BATCH: usize = 256;
/// How often the background repairer looks at the membership.
const REPAIR_POLL: Duration = Duration::from_millis(50);
/// Wait before retrying a round that could not reach every owner.
const REPAIR_RETRY: Duration = Duration::from_secs(1);

/// What a repair found and did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RepairReport {
    /// Blocks checked.
    pub checked: u64,
    /// Copies written to owners that lacked them.
    pub copied: u64,
    /// Blocks no owner holds (lost with the members that held them).
    pub lost: u64,
    /// Copies that could not be written (owner unreachable or refused): retry later.
    pub failed: u64,
}

impl PoolClient {
    /// Brings each `(key, class)` to its class's factor on its current owners.
    pub fn repair(&mut self, blocks: &[(BlockKey, u8)]) -> Result<RepairReport, ClusterError> {
        let mut total = RepairReport::default();
        for chunk in blocks.chunks(REPAIR_BATCH) {
            let r = self.repair_batch(chunk)?;
            total.checked += r.checked;
            total.copied += r.copied;
            total.lost += r.lost;
            total.failed += r.failed;
        }
        Ok(total)
    }

    fn repair_batch(&mut self, blocks: &[(BlockKey, u8)]) -> Result<RepairReport, ClusterError> {
        let v = self.live_view_for_repair()?;
        let n = v.members.len();
        let lists: Vec<Vec<usize>> = blocks
            .iter()
            .map(|&(k, c)| owners_seeded(k, &v.members, &v.seeds, self.replication().factor(c)))
            .collect();
        // have[i][j]: owner j of block i holds it (None: unknown, unreachable).
        let mut have: Vec<Vec<Option<bool>>> = lists.iter().map(|l| vec![None; l.len()]).collect();
        let mut ask: Vec<Vec<(usize, usize)>> = vec![Vec::new(); n];
        for (i, l) in lists.iter().enumerate() {
            for (j, &m) in l.iter().enumerate() {
                ask[m].push((i, j));
            }
        }
        for (m, q) in ask.iter().enumerate() {
            if q.is_empty() {
                continue;
            }
            let keys: Vec<BlockKey> = q.iter().map(|&(i, _)| blocks[i].0).collect();
            if let Some(res) = self.exists_on(&v.members[m], &keys) {
                for (&(i, j), t) in q.iter().zip(res) {
                    have[i][j] = Some(t.is_some());
                }
            }
        }
        let mut report = RepairReport {
            checked: blocks.len() as u64,
            ..RepairReport::default()
        };
        // Read each under-replicated block from its first holder, batched per holder.
        let mut reads: Vec<Vec<usize>> = vec![Vec::new(); n];
        for (i, h) in have.iter().enumerate() {
            if h.contains(&Some(false)) {
                match h.iter().position(|x| *x == Some(true)) {
                    Some(j) => reads[lists[i][j]].push(i),
                    None if h.iter().all(|x| x.is_some()) => report.lost += 1,
                    None => report.failed += 1,
                }
            } else if h.iter().any(|x| x.is_none()) {
                report.failed += 1;
            }
        }
        let mut writes: Vec<Vec<(usize, Vec<u8>)>> = vec![Vec::new(); n];
        for (m, idx) in reads.iter().enumerate() {
            if idx.is_empty() {
                continue;
            }
            let keys: Vec<BlockKey> = idx.iter().map(|&i| blocks[i].0).collect();
            let Some(got) = self.get_from(&v.members[m], &keys) else {
                report.failed += idx.len() as u64;
                continue;
            };
            for (&i, g) in idx.iter().zip(got) {
                let Some(bytes) = g else {
                    // Evicted between the check and the read.
                    report.failed += 1;
                    continue;
                };
                let missing: Vec<usize> = have[i]
                    .iter()
                    .enumerate()
                    .filter(|(_, x)| **x == Some(false))
                    .map(|(j, _)| lists[i][j])
                    .collect();
                for t in missing {
                    writes[t].push((i, bytes.clone()));
                }
            }
        }
        for (m, w) in writes.iter().enumerate() {
            // One batch per (owner, class).
            let mut by_class: HashMap<u8, Vec<(BlockKey, &[u8])>> = HashMap::new();
            for (i, b) in w {
                by_class
                    .entry(blocks[*i].1)
                    .or_default()
                    .push((blocks[*i].0, b.as_slice()));
            }
            for (class, batch) in by_class {
                match self.put_on(&v.members[m], class, &batch) {
                    Some(stored) => {
                        report.copied += stored;
                        report.failed += batch.len() as u64 - stored;
                    }
                    None => report.failed += batch.len() as u64,
                }
            }
        }
        Ok(report)
    }
}

struct Tracked {
    keys: HashMap<BlockKey, u8>,
    refused: u64,
}

/// Totals of a background repairer.
#[derive(Clone, Copy, Debug, Default)]
pub struct RepairTotals {
    /// Repair rounds run (one per membership change, plus retries).
    pub rounds: u64,
    /// Membership generation the last complete round repaired for.
    pub generation: u64,
    /// Copies written.
    pub copied: u64,
    /// Blocks found lost.
    pub lost: u64,
    /// Keys not tracked because the set was full.
    pub untracked: u64,
}

struct RepairShared {
    tracked: Mutex<Tracked>,
    totals: Mutex<RepairTotals>,
    stop: AtomicBool,
}

/// Keeps tracked protected blocks at their factor in the background.
pub struct Repairer {
    shared: Arc<RepairShared>,
    thread: Option<JoinHandle<()>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

impl Repairer {
    /// Starts a repairer with its own membership watch and connections.
    pub fn start(cfg: MembershipConfig, opts: PoolOptions) -> Result<Repairer, ClusterError> {
        let mut pool = PoolClient::connect(cfg, opts)?;
        let shared = Arc::new(RepairShared {
            tracked: Mutex::new(Tracked {
                keys: HashMap::new(),
                refused: 0,
            }),
            totals: Mutex::new(RepairTotals::default()),
            stop: AtomicBool::new(false),
        });
        let sh = shared.clone();
        let thread = std::thread::Builder::new()
            .name("mcos-repair".into())
            .spawn(move || {
                let mut done_gen = pool.membership().view().generation;
                let mut retry_at: Option<Instant> = None;
                while !sh.stop.load(Ordering::Acquire) {
                    std::thread::sleep(REPAIR_POLL);
                    let g = pool.membership().view().generation;
                    let due = g != done_gen || retry_at.is_some_and(|t| Instant::now() >= t);
                    if !due {
                        continue;
                    }
                    let blocks: Vec<(BlockKey, u8)> = lock(&sh.tracked)
                        .keys
                        .iter()
                        .map(|(k, c)| (*k, *c))
                        .collect();
                    match pool.repair(&blocks) {
                        Ok(r) => {
                            let mut t = lock(&sh.totals);
                            t.rounds += 1;
                            t.copied += r.copied;
                            t.lost = r.lost;
                            if r.failed == 0 {
                                t.generation = g;
                                retry_at = None;
                            } else {
                                retry_at = Some(Instant::now() + REPAIR_RETRY);
                            }
                            if r.copied > 0 || r.lost > 0 {
                                info!(
                                    copied = r.copied,
                                    lost = r.lost,
                                    failed = r.failed,
                                    "re-replication round"
                                );
                            }
                        }
                        Err(e) => {
                            warn!(error = %e, "re-replication round failed");
                            retry_at = Some(Instant::now() + REPAIR_RETRY);
                        }
                    }
                    done_gen = g;
                }
            })
            .map_err(|e| ClusterError::Thread(e.to_string()))?;
        Ok(Repairer {
            shared,
            thread: Some(thread),
        })
    }

    /// Tracks blocks of `class` (call after they were stored).
    pub fn track(&self, keys: &[BlockKey], class: u8) {
        let mut t = lock(&self.shared.tracked);
        for k in keys {
            if t.keys.len() < MAX_TRACKED || t.keys.contains_key(k) {
                t.keys.insert(*k, class);
            } else {
                t.refused += 1;
            }
        }
        let refused = t.refused;
        drop(t);
        lock(&self.shared.totals).untracked = refused;
    }

    /// The totals so far.
    pub fn totals(&self) -> RepairTotals {
        *lock(&self.shared.totals)
    }
}

impl Drop for Repairer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
