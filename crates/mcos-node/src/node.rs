//! One MCOS node: fast-path shards over real tiers, fed to engine threads.
//!
//! A call lands on the shard that owns its key. The shard's fast path decides (bounded work,
//! no allocation, no system call); the node then does what the decision says with real bytes:
//! copies a block out of a DRAM frame or reads it from the disk file, writes a new block into
//! the frame the fast path reserved, or waits for an engine to finish a move. Each shard sits
//! behind its own mutex: this is the driver-hook stage (DESIGN.md stage 1), where application
//! threads enter a single-writer data plane; the fast path itself never takes a lock, and
//! engines and the housekeeping thread talk to it only through rings.
//!
//! The mutex covers decisions only, never the bytes: every decision stays single-writer per
//! shard, while copying and verifying a block run with the lock dropped, so callers of one
//! shard copy in parallel. What keeps that sound:
//!
//! - **Get.** Under the lock the fast path locates the block, resident at (tier, frame), and
//!   the caller takes the frame's read claim (memory tiers; `mcos_tiers` claims). It drops the
//!   lock, copies and verifies, and releases the claim. Meanwhile the fast path may demote,
//!   promote or evict the block and free the frame; whoever then writes that frame (an engine's
//!   move destination, a put's fill) takes the write claim, which waits out the reader (a
//!   copy's time; the reader waits on nothing, so no cycle, and no new reader can arrive at a
//!   frame that holds no visible block). So a reader sees the block whole, and a move is
//!   delayed, never failed, by a reader. Disk frames are read without a claim: the header
//!   names the key and checksums the payload, so a frame reused during the pread reads as
//!   corrupt; a corrupt read is decided again under the lock (re-read where the block is now;
//!   dropped only if it is corrupt where it still is), so no block is lost to a race. A claim
//!   on a resident frame never finds a writer: engines release their claims before they post a
//!   completion, and a put commits its fill after its write claim is gone.
//! - **Put.** Under the lock `insert` reserves a frame (filling: gets miss it, victim scans
//!   skip it); the block is written without the lock and made visible by `commit_fill` under
//!   it. A reader never sees a partial block, because none is visible before the commit.
//! - Engine waits (`wait_for`, a full tier) poll the shard with the lock dropped in between.

use crate::config::{DiskIo, NodeConfig};
use crate::error::NodeError;
use crate::events::{KvEventKind, KvEventLog, KvSnapshot, Resident, ShardEvents};
use mcos_brain::{Brain, BrainConfig, BrainThread, Cadence, CostModel, InstallFn, Placement};
use mcos_core::limits::{
    BLOCK_HEADER_BYTES, COMPLETION_RING_DEPTH, DESCRIPTOR_RING_DEPTH, MAX_TIERS,
    TELEMETRY_RING_DEPTH,
};
use mcos_core::{
    BlockKey, Consumer, Intent, IntentAction, LinkMeters, MoveCompletion, MoveStatus,
    PolicyInstaller, PolicyTable, PriorityClass, TelemetrySample, TierId, TierKind, Topology,
    policy_cell, ring,
};
use mcos_fastpath::{Access, Counters, Insert, IntentError, RejectReason, Shard, ShardConfig};
use mcos_tiers::engine::route::RouteCell;
use mcos_tiers::{
    BackendChoice, DirectRead, DiskTier, Doorbell, DramTier, EngineConfig, EngineHandle,
    EngineThread, FrameRead, ShardRings, TierError, TierSet, TierStore,
};
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The first half of a get (`Inner::start_get`).
enum Started {
    /// Decided and read.
    Done(Fetched),
    /// The block is moving up; `finish_get` waits for the move and reads it.
    Moving { move_id: u32, from: TierId },
}

/// Where a get puts the block it reads.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Dest {
    /// The caller's buffer is the payload's destination (`out[..len]`).
    Payload,
    /// The caller's buffer is a direct slot (`Node::get_batch_into_slots`): the payload lands
    /// at `out[BLOCK_HEADER_BYTES..]`, and a disk-tier block is read straight into the slot
    /// and verified there when the slot's alignment and length allow.
    Slot,
}

/// How long a caller waits for an engine before reporting a stall.
const MOVE_TIMEOUT: Duration = Duration::from_secs(30);
/// Reads of one get before it reads under the shard lock: a block that moved (and whose old
/// frame was reused) while it was read is looked up and read again, this many times at most.
const READ_ATTEMPTS: u32 = 3;
/// Housekeeping period: completions drained, TICK delivered, telemetry drained.
const TICK_PERIOD: Duration = Duration::from_millis(1);
/// How long the idle GPU engine polls its rings before parking: a kernel launch costs a few
/// microseconds, a wake-up from park 10-60, so the GPU engine stays on its rings a while.
#[cfg(feature = "cuda")]
const GPU_ENGINE_SPIN: Duration = Duration::from_micros(200);

/// What `put` did.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    /// Stored in `tier`.
    Stored(TierId),
    /// The key was already stored (blocks are immutable: same key, same bytes).
    Present,
    /// The policy did not admit it (not an error: the block is simply not cached).
    Rejected(RejectReason),
}

/// Where `get` found the block.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum GetOutcome {
    /// Found and verified; the payload is in the caller's buffer.
    Hit(TierId),
    /// Not stored (or found corrupt and dropped: see `NodeStats::counters.corrupt_blocks`).
    Miss,
}

/// Per-tier usage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TierUsage {
    /// Tier kind.
    pub kind: TierKind,
    /// Frames holding or reserved for a block.
    pub used_blocks: u64,
    /// Frames in the tier.
    pub capacity_blocks: u64,
}

/// What the engines measured on one route between adjacent tiers.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct LinkStat {
    /// Source tier of the moves.
    pub from: TierId,
    /// Destination tier.
    pub to: TierId,
    /// Bytes of completed moves (header + payload).
    pub bytes: u64,
    /// Seconds the engine spent executing the batches that carried them.
    pub seconds: f64,
    /// The configured bandwidth of the link, bytes/s (the brain's prior).
    pub configured_bytes_per_s: u64,
}

impl LinkStat {
    /// Measured bandwidth over the node's life, bytes/s (None before any move).
    pub fn bytes_per_s(&self) -> Option<f64> {
        (self.bytes > 0 && self.seconds > 0.0).then(|| self.bytes as f64 / self.seconds)
    }
}

/// What `get_into` found.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Fetched {
    /// Found and verified; its `len` payload bytes are at the start of the caller's slice.
    Hit {
        /// Tier the block was found in (where the hit is counted).
        tier: TierId,
        /// Payload bytes written to the slice.
        len: usize,
    },
    /// Not stored (or found corrupt and dropped: see `NodeStats::counters.corrupt_blocks`).
    /// The caller's slice is not written.
    Miss,
}

/// A snapshot of the node's state.
#[derive(Clone, Debug)]
pub struct NodeStats {
    /// Fast-path counters summed over shards.
    pub counters: Counters,
    /// Usage per tier, fastest first.
    pub tiers: Vec<TierUsage>,
    /// Telemetry samples delivered to the brain's side of the ring.
    pub telemetry_samples: u64,
    /// Epoch of the policy table in force (0: built-in fallback).
    pub policy_epoch: u64,
    /// Disk I/O backend in use ("io_uring" or "psync"), if the node has a disk tier.
    pub disk_backend: Option<&'static str>,
    /// Whether the disk tier uses O_DIRECT.
    pub disk_direct_io: Option<bool>,
    /// How disk -> HBM moves run ("cufile" or "bounce"), if the node has both tiers.
    pub gpu_disk_path: Option<&'static str>,
    /// Puts that had to wait for a demotion to make room (once per put).
    pub puts_waited: u64,
    /// Gets that waited for a promotion from a slower tier (once per get).
    pub gets_waited: u64,
    /// Disk-tier blocks a get read in place straight into the caller's direct slot
    /// (`Node::get_batch_into_slots`): no bounce buffer, no copy.
    pub disk_direct_reads: u64,
    /// Disk-tier blocks a get read in place through a bounce buffer, then copied to the
    /// caller (plain gets, and direct slots that did not meet the alignment).
    pub disk_bounce_reads: u64,
    /// The brain, when the node runs one: what it last published.
    pub brain: Option<mcos_brain::BrainSnapshot>,
    /// Per route between adjacent tiers, both ways (fetches `t -> t-1` first): what the
    /// engines measured.
    pub links: Vec<LinkStat>,
    /// The warm restart of the persistent tier at open, if the node has one.
    pub rebuild: Option<crate::RebuildStats>,
    /// Durable puts stored in the persistent tier.
    pub durable_puts: u64,
    /// `fdatasync` calls made by `sync_durable`.
    pub durable_syncs: u64,
    /// Reads or writes the device failed (EIO and the like): each read a counted miss, each
    /// write retried in another frame.
    pub io_errors: u64,
    /// Frames taken out of service because the device failed under them.
    pub frames_retired: u64,
    /// Durable puts refused because the device reported no space (backpressure).
    pub puts_refused_no_space: u64,
    /// Longest time a get waited for an engine to bring its block up, microseconds: a slow or
    /// stalled engine shows here (and as `NodeError::Stalled` past 30 s).
    pub move_wait_us_max: u64,
    /// KV events, when the node publishes them: (next sequence number, events readers lost
    /// by falling behind, removals lost to a full shard log).
    pub kv_events: Option<(u64, u64, u64)>,
}

impl NodeStats {
    /// The stats as JSON: the shape of the daemon's stats reply (`node`, docs/protocol.md),
    /// which the Python binding's `Node.stats()` returns too.
    pub fn to_json(&self) -> serde_json::Value {
        let s = self;
        let c = &s.counters;
        serde_json::json!({
            "accesses": c.accesses,
            "hits_per_tier": &c.hits[..s.tiers.len()],
            "misses": c.misses,
            "inserts": c.inserts,
            "admitted": c.admitted,
            "rejected": c.rejected,
            "evictions": c.evictions,
            "demotions": c.demotions,
            "corrupt_blocks": c.corrupt_blocks,
            "move_errors": c.move_errors,
            "prefetch_issued": c.prefetch_issued,
            "telemetry_dropped": c.telemetry_dropped,
            "tiers": s.tiers.iter().map(|t| serde_json::json!({
                "kind": t.kind.to_string(),
                "used_blocks": t.used_blocks,
                "capacity_blocks": t.capacity_blocks,
            })).collect::<Vec<_>>(),
            "links": s.links.iter().map(|l| serde_json::json!({
                "from": l.from.0,
                "to": l.to.0,
                "bytes": l.bytes,
                "seconds": l.seconds,
                "measured_bytes_per_s": l.bytes_per_s(),
                "configured_bytes_per_s": l.configured_bytes_per_s,
            })).collect::<Vec<_>>(),
            "policy_epoch": s.policy_epoch,
            "disk_backend": s.disk_backend,
            "disk_direct_io": s.disk_direct_io,
            "durable_puts": s.durable_puts,
            "durable_syncs": s.durable_syncs,
            "io_errors": s.io_errors,
            "disk_direct_reads": s.disk_direct_reads,
            "disk_bounce_reads": s.disk_bounce_reads,
            "frames_retired": s.frames_retired,
            "puts_refused_no_space": s.puts_refused_no_space,
            "move_wait_us_max": s.move_wait_us_max,
            "kv_events": s.kv_events.map(|(next_seq, dropped, lost)| serde_json::json!({
                "next_seq": next_seq,
                "reader_dropped": dropped,
                "lost_removals": lost,
            })),
            "rebuild": s.rebuild.as_ref().map(|r| serde_json::json!({
                "tier": r.tier.0,
                "seconds": r.seconds,
                "frames_scanned": r.frames_scanned,
                "blocks_restored": r.blocks_restored,
                "empty_frames": r.empty_frames,
                "discarded_corrupt": r.discarded_corrupt,
                "discarded_misplaced": r.discarded_misplaced,
                "duplicates": r.duplicates,
                "file_bytes": r.file_bytes,
                "bytes_per_s": r.bytes_per_s(),
                "headers_per_s": r.headers_per_s(),
            })),
            "brain": s.brain.as_ref().map(|b| serde_json::json!({
                "knobs": b.knobs,
                "decisions": b.stats.decisions,
                "switches": b.stats.switches,
                "installs": b.stats.installs,
            })),
        })
    }
}

struct ShardSlot {
    shard: Shard,
    completions: Vec<Consumer<MoveCompletion>>,
    /// The telemetry ring's reading end, unless the brain thread owns it.
    telemetry: Option<Consumer<TelemetrySample>>,
    scratch: Vec<MoveCompletion>,
    samples: Vec<TelemetrySample>,
    /// Engine moves the device failed under (`SourceFailed`, `DestinationFailed`), counted as
    /// they are drained; `stats` adds them to `io_errors`.
    device_faults: u64,
    /// KV events, when the node publishes them.
    events: Option<ShardEvents>,
}

struct Inner {
    cfg: NodeConfig,
    topology: Topology,
    shards: Vec<Mutex<ShardSlot>>,
    tiers: TierSet,
    /// One per engine thread: rung after pushing descriptors.
    doorbells: Vec<Doorbell>,
    /// Backend of the disk engine ("io_uring" or "psync"), if there is one.
    disk_backend: Option<&'static str>,
    /// The GPU engine's routes, published on every policy install (None: no GPU engine).
    gpu_routes: Option<Arc<RouteCell>>,
    /// How the GPU engine reads disk -> HBM ("cufile" or "bounce"), if it does.
    gpu_disk_path: Option<&'static str>,
    installer: Mutex<PolicyInstaller>,
    stop: AtomicBool,
    /// Written by the housekeeper and callers under a shard lock; read by `stats`.
    telemetry_samples: AtomicU64,
    /// Written by `put` (relaxed), read by `stats`.
    puts_waited: AtomicU64,
    /// Written by `get` (relaxed), read by `stats`.
    gets_waited: AtomicU64,
    /// Written by gets reading a disk frame in place (relaxed), read by `stats`.
    disk_direct_reads: AtomicU64,
    /// Written by gets reading a disk frame in place (relaxed), read by `stats`.
    disk_bounce_reads: AtomicU64,
    /// Bytes and time per route, written by the engines per batch; read by the brain thread
    /// (measured link bandwidth) and `stats`.
    links: Arc<LinkMeters>,
    /// The persistent (home) tier, if any: durable puts land there.
    persist_tier: Option<TierId>,
    /// What the warm restart found (set once at open).
    rebuild: Option<crate::RebuildStats>,
    /// Written by `put_durable` (relaxed), read by `stats`.
    durable_puts: AtomicU64,
    /// Written by `sync_durable` (relaxed), read by `stats`.
    durable_syncs: AtomicU64,
    /// Written under a shard lock on a failed read or write (relaxed), read by `stats`.
    io_errors: AtomicU64,
    /// Written by `put_into` (relaxed), read by `stats`.
    puts_refused_no_space: AtomicU64,
    /// Written by `wait_for` (relaxed max), read by `stats`.
    move_wait_us_max: AtomicU64,
    /// The KV event ring (`cfg.kv_events`).
    kv_events: Option<Arc<KvEventLog>>,
}

/// A running node. Cheap to share: clone the `Arc` you put it in, or call from many threads
/// through `&Node`.
pub struct Node {
    inner: Arc<Inner>,
    engines: Vec<EngineHandle>,
    housekeeper: Option<JoinHandle<()>>,
    brain: Mutex<Option<BrainThread>>,
}

fn lock(m: &Mutex<ShardSlot>) -> ShardGuard<'_> {
    // A panic while holding a shard lock is a bug; the shard's tables are still consistent at
    // event boundaries, so keep serving rather than poisoning every later call.
    ShardGuard(m.lock().unwrap_or_else(|e| e.into_inner()))
}

/// A locked shard. Releasing it publishes the KV events of the hold (when the node has them),
/// still under the lock, so a shard's events are in the ring in the order they happened and a
/// snapshot that holds every shard lock sees no event half published.
struct ShardGuard<'a>(MutexGuard<'a, ShardSlot>);

impl Deref for ShardGuard<'_> {
    type Target = ShardSlot;
    fn deref(&self) -> &ShardSlot {
        &self.0
    }
}

impl DerefMut for ShardGuard<'_> {
    fn deref_mut(&mut self) -> &mut ShardSlot {
        &mut self.0
    }
}

impl Drop for ShardGuard<'_> {
    fn drop(&mut self) {
        self.0.publish_events();
    }
}

impl ShardSlot {
    /// Moves the removals the fast path logged into the pending events, keys looked up by tag.
    fn collect_removals(&mut self) {
        let Some(ev) = self.events.as_mut() else {
            return;
        };
        let lost = self.shard.drain_removals(|tag, tier| {
            if let Some(r) = ev.keys.remove(&tag) {
                ev.pending
                    .push(Some((KvEventKind::Removed, r.key, BlockKey::NONE, tier)));
            }
        });
        if lost > 0 {
            // Keys whose removal was not logged: find them by looking each one up (rare: more
            // removals in one lock hold than the log holds), and leave a gap in the sequence
            // so readers resync.
            let shard = &self.shard;
            ev.keys.retain(|_, r| shard.peek(r.key).is_some());
            ev.pending.push(None);
        }
    }

    /// Publishes the events of this lock hold.
    fn publish_events(&mut self) {
        self.collect_removals();
        if let Some(ev) = self.events.as_mut()
            && !ev.pending.is_empty()
        {
            ev.log.publish(&mut ev.pending);
        }
    }

    /// `commit_fill`, recording a `Stored` event (with the parent key the put named) when the
    /// block became visible.
    fn commit(&mut self, key: BlockKey, parent: BlockKey, tier: TierId, frame: u32, ok: bool) {
        self.shard.commit_fill(key, tier, frame, ok);
        if ok && self.events.is_some() {
            // Removals first: the commit's own evictions happened before it.
            self.collect_removals();
            if self.shard.peek(key) == Some((tier, frame))
                && let Some(ev) = self.events.as_mut()
            {
                ev.keys.insert(
                    key.tag(),
                    Resident {
                        key,
                        parent,
                        stored_in: tier,
                    },
                );
                ev.pending
                    .push(Some((KvEventKind::Stored, key, parent, tier)));
            }
        }
    }

    /// Feeds every completion waiting on this shard's rings into the fast path.
    fn drain(&mut self) -> usize {
        let mut total = 0;
        for c in self.completions.iter_mut() {
            loop {
                let n = c.pop_batch(&mut self.scratch);
                for &done in &self.scratch[..n] {
                    if matches!(
                        done.status,
                        MoveStatus::SourceFailed | MoveStatus::DestinationFailed
                    ) {
                        self.device_faults += 1;
                    }
                    self.shard.complete(done);
                }
                total += n;
                if n < self.scratch.len() {
                    break;
                }
            }
        }
        total
    }

    fn drain_telemetry(&mut self) -> u64 {
        match self.telemetry.as_mut() {
            Some(t) => t.pop_batch(&mut self.samples) as u64,
            None => 0,
        }
    }
}

impl Node {
    /// Opens a node: allocates every tier (creating and preallocating disk files, or reusing
    /// tier files of the same geometry; see `DiskTier::open`), builds the
    /// fast-path shards and starts the engine and housekeeping threads.
    pub fn open(cfg: NodeConfig) -> Result<Node, NodeError> {
        cfg.validate()?;
        let topology = cfg.topology();
        #[cfg(feature = "cuda")]
        let gpu = gpu::open(&cfg)?;
        let mut stores = Vec::with_capacity(cfg.tiers.len());
        for t in &cfg.tiers {
            let store = match t.kind {
                #[cfg(feature = "cuda")]
                TierKind::Hbm => gpu::hbm_tier(gpu.as_ref(), t.capacity_blocks, cfg.block_bytes)?,
                TierKind::Disk => {
                    let path = t
                        .path
                        .as_deref()
                        .ok_or_else(|| NodeError::Config("disk tier without path".into()))?;
                    // Creates missing parent directories, removed again with the file.
                    TierStore::Disk(Arc::new(DiskTier::open(
                        path,
                        t.capacity_blocks,
                        cfg.block_bytes,
                        t.recreate,
                    )?))
                }
                _ => TierStore::Dram(Arc::new(DramTier::new(t.capacity_blocks, cfg.block_bytes)?)),
            };
            stores.push(store);
        }
        let tiers = TierSet::new(stores)?;
        let shards_n = cfg.shards;
        let (installer, readers) = policy_cell(PolicyTable::builtin(cfg.tiers.len()), shards_n);

        // One engine serves every move that touches HBM (the GPU engine), one every other move
        // that touches a disk tier, one memcpy engine moves between host memory tiers. Routes
        // tell the fast path which ring to use.
        let engine_for = |a: TierKind, b: TierKind| {
            if a == TierKind::Hbm || b == TierKind::Hbm {
                "gpu"
            } else if a == TierKind::Disk || b == TierKind::Disk {
                "disk"
            } else {
                "memcpy"
            }
        };
        let mut engine_kinds: Vec<&'static str> = Vec::new();
        for kind in ["disk", "memcpy", "gpu"] {
            let used = cfg.tiers.iter().enumerate().any(|(a, ta)| {
                cfg.tiers
                    .iter()
                    .enumerate()
                    .any(|(b, tb)| a != b && engine_for(ta.kind, tb.kind) == kind)
            });
            if used {
                engine_kinds.push(kind);
            }
        }
        let mut routes = [[0u8; MAX_TIERS]; MAX_TIERS];
        for (a, ta) in cfg.tiers.iter().enumerate() {
            for (b, tb) in cfg.tiers.iter().enumerate() {
                let name = engine_for(ta.kind, tb.kind);
                routes[a][b] = engine_kinds
                    .iter()
                    .position(|&k| k == name)
                    .unwrap_or(u8::MAX as usize) as u8;
            }
        }
        let gpu_routes = engine_kinds.contains(&"gpu").then(|| {
            Arc::new(RouteCell::new(
                PolicyTable::builtin(cfg.tiers.len()).gpu_routes,
            ))
        });
        #[cfg(feature = "cuda")]
        let mut gpu_mover = match (&gpu, &gpu_routes) {
            (Some(g), Some(r)) => Some(gpu::mover(g, &cfg, &tiers, r.clone())?),
            _ => None,
        };
        #[cfg(feature = "cuda")]
        let gpu_disk_path = gpu_mover
            .as_ref()
            .filter(|_| cfg.tiers.iter().any(|t| t.kind == TierKind::Disk))
            .map(|m| m.gds_status().path());
        #[cfg(not(feature = "cuda"))]
        let gpu_disk_path = None;

        // Rings: per (engine, shard) one descriptor ring and one completion ring.
        let mut shard_engine_tx: Vec<Vec<_>> = (0..shards_n).map(|_| Vec::new()).collect();
        let mut shard_completion_rx: Vec<Vec<_>> = (0..shards_n).map(|_| Vec::new()).collect();
        let mut engines = Vec::new();
        let links = Arc::new(LinkMeters::default());
        for (e, kind) in engine_kinds.iter().enumerate() {
            let mut rings = Vec::with_capacity(shards_n);
            for s in 0..shards_n {
                let (dtx, drx) = ring(DESCRIPTOR_RING_DEPTH);
                let (ctx, crx) = ring(COMPLETION_RING_DEPTH);
                shard_engine_tx[s].push(dtx);
                shard_completion_rx[s].push(crx);
                rings.push(ShardRings {
                    descriptors: drx,
                    completions: ctx,
                });
            }
            let backend = if cfg.disk_io == DiskIo::Psync {
                BackendChoice::Psync
            } else {
                BackendChoice::Auto
            };
            #[allow(unused_mut)]
            let mut engine_cfg = EngineConfig::new(e as u8, tiers.clone(), rings)
                .with_backend(backend)
                .with_name(format!("mcos-{kind}-engine"))
                .with_link_meters(links.clone());
            #[cfg(feature = "cuda")]
            if *kind == "gpu" {
                let mover = gpu_mover.take().ok_or_else(|| {
                    NodeError::Config("an hbm tier needs a GPU engine, and none was built".into())
                })?;
                engine_cfg = engine_cfg
                    .with_mover(Box::new(mover))
                    .with_spin_before_park(GPU_ENGINE_SPIN);
            }
            let engine = EngineThread::spawn(engine_cfg)?;
            engines.push(engine);
        }

        let mut shards = Vec::with_capacity(shards_n);
        let mut brain_rings = Vec::new();
        // With the brain on, the shards sample at the rate its shadows model (it coarsens
        // its own sampling if it falls behind); without it, at the configured rate.
        let telemetry_shift = if cfg.brain.enabled {
            BrainConfig::for_node(&topology, shards_n as u32, 0).sample_shift()
        } else {
            cfg.telemetry_shift
        };
        for (s, ((reader, engine_tx), completions)) in readers
            .into_iter()
            .zip(shard_engine_tx)
            .zip(shard_completion_rx)
            .enumerate()
        {
            let tier_slices = cfg
                .tiers
                .iter()
                .map(|t| {
                    let n = u64::from(t.capacity_blocks);
                    let lo = n * s as u64 / shards_n as u64;
                    let hi = n * (s as u64 + 1) / shards_n as u64;
                    (lo as u32, (hi - lo) as u32)
                })
                .collect::<Vec<_>>();
            let free_watermark = tier_slices
                .iter()
                .map(|&(_, n)| {
                    ((f64::from(n) * cfg.free_watermark) as u32).min(n.saturating_sub(1))
                })
                .collect();
            let (ttx, trx) = ring(TELEMETRY_RING_DEPTH);
            let shard = Shard::new(
                ShardConfig {
                    shard: s as u8,
                    tiers: tier_slices,
                    block_bytes: cfg.block_bytes,
                    routes,
                    free_watermark,
                    telemetry_shift,
                },
                reader,
                engine_tx,
                Some(ttx),
            );
            let scratch = vec![MoveCompletion::EMPTY; 64];
            let samples = vec![sample_zero(); 256];
            let telemetry = if cfg.brain.enabled {
                brain_rings.push(trx);
                None
            } else {
                Some(trx)
            };
            shards.push(Mutex::new(ShardSlot {
                shard,
                completions,
                telemetry,
                scratch,
                samples,
                device_faults: 0,
                events: None,
            }));
        }

        let kv_events = cfg
            .kv_events
            .then(|| Arc::new(KvEventLog::new(crate::events::KV_EVENT_RING_DEPTH)));
        if let Some(log) = &kv_events {
            for m in &shards {
                let mut slot = lock(m);
                slot.shard
                    .enable_removal_log(crate::events::REMOVAL_LOG_DEPTH);
                slot.events = Some(ShardEvents {
                    log: log.clone(),
                    keys: std::collections::HashMap::new(),
                    pending: Vec::with_capacity(crate::events::REMOVAL_LOG_DEPTH),
                });
            }
        }
        // Warm restart: the persistent tier's blocks back in the directory before any event.
        let persist_tier = cfg
            .tiers
            .iter()
            .position(|t| t.persist)
            .map(|i| TierId(i as u8));
        let rebuild = match persist_tier {
            Some(t) => {
                for m in &shards {
                    lock(m).shard.set_home_tier(t);
                }
                match tiers.get(t) {
                    Some(TierStore::Disk(d)) => {
                        Some(crate::rebuild::rebuild(d, t, shards_n, |s, key, frame| {
                            let mut slot = lock(&shards[s]);
                            slot.shard
                                .restore(key, t, frame, PriorityClass::DEFAULT.0)?;
                            // Restored blocks are in the first snapshot, not events.
                            // Their parents are not persisted: none.
                            if let Some(ev) = slot.events.as_mut() {
                                ev.keys.insert(
                                    key.tag(),
                                    Resident {
                                        key,
                                        parent: BlockKey::NONE,
                                        stored_in: t,
                                    },
                                );
                            }
                            Ok(())
                        })?)
                    }
                    _ => None,
                }
            }
            None => None,
        };
        let disk_backend = engine_kinds
            .iter()
            .position(|&k| k == "disk")
            .map(|i| engines[i].backend_name());
        let inner = Arc::new(Inner {
            cfg,
            topology,
            shards,
            tiers,
            doorbells: engines.iter().map(|e| e.doorbell_handle()).collect(),
            disk_backend,
            gpu_routes,
            gpu_disk_path,
            installer: Mutex::new(installer),
            stop: AtomicBool::new(false),
            telemetry_samples: AtomicU64::new(0),
            puts_waited: AtomicU64::new(0),
            gets_waited: AtomicU64::new(0),
            disk_direct_reads: AtomicU64::new(0),
            disk_bounce_reads: AtomicU64::new(0),
            links,
            persist_tier,
            rebuild,
            durable_puts: AtomicU64::new(0),
            durable_syncs: AtomicU64::new(0),
            io_errors: AtomicU64::new(0),
            puts_refused_no_space: AtomicU64::new(0),
            move_wait_us_max: AtomicU64::new(0),
            kv_events,
        });
        let hk = inner.clone();
        let housekeeper = std::thread::Builder::new()
            .name("mcos-housekeeper".into())
            .spawn(move || hk.housekeep())
            .map_err(|source| TierError::Io {
                context: "starting the housekeeping thread".into(),
                source,
            })?;
        let brain = if inner.cfg.brain.enabled {
            Some(start_brain(&inner, brain_rings)?)
        } else {
            None
        };
        Ok(Node {
            inner,
            engines,
            housekeeper: Some(housekeeper),
            brain: Mutex::new(brain),
        })
    }

    /// Stops the brain thread (if it runs) and returns its last snapshot. The shards keep the
    /// last table it installed until that table's TTL, then fall back to the built-in table.
    pub fn stop_brain(&self) -> Option<mcos_brain::BrainSnapshot> {
        let thread = self
            .brain
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()?;
        let snap = thread.snapshot();
        thread.stop();
        snap
    }

    /// Whether the brain thread runs and how long since it woke up, if the node has one (a
    /// panicked or stalled brain leaves the shards on its last table until the table's TTL,
    /// then on the built-in one).
    pub fn brain_health(&self) -> Option<mcos_brain::BrainHealth> {
        self.brain
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(BrainThread::health)
    }

    /// What the brain last published, if the node runs one.
    pub fn brain_snapshot(&self) -> Option<mcos_brain::BrainSnapshot> {
        self.brain
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .and_then(BrainThread::snapshot)
    }

    /// The table the shards use now (shard 0's view), with its epoch (0: built-in fallback).
    pub fn policy_table(&self) -> (u64, PolicyTable) {
        let slot = lock(&self.inner.shards[0]);
        (slot.shard.policy_epoch(), slot.shard.policy_table())
    }

    /// The node's configuration.
    pub fn config(&self) -> &NodeConfig {
        &self.inner.cfg
    }

    /// The node's topology.
    pub fn topology(&self) -> &Topology {
        &self.inner.topology
    }

    /// Stores `payload` under `key` in the default class.
    pub fn put(&self, key: BlockKey, payload: &[u8]) -> Result<PutOutcome, NodeError> {
        self.put_class(key, PriorityClass::DEFAULT, payload)
    }

    /// Stores `payload` under `key`, governed by `class`'s policy entry.
    pub fn put_class(
        &self,
        key: BlockKey,
        class: PriorityClass,
        payload: &[u8],
    ) -> Result<PutOutcome, NodeError> {
        self.inner.put(key, class, payload)
    }

    /// Stores `payload` under `key` in the persistent tier (a durable put): written there with
    /// one `pwrite` before this returns, and found after a restart of the node or of the
    /// process (after `sync_durable`, also after a power cut when the tier has `sync`).
    /// `Present` when the key is stored already: `persist_tier` and `locate` tell whether that
    /// copy is durable. A node without a persistent tier refuses with `NodeError::NotDurable`.
    pub fn put_durable(
        &self,
        key: BlockKey,
        class: PriorityClass,
        payload: &[u8],
    ) -> Result<PutOutcome, NodeError> {
        self.put_durable_with_parent(key, BlockKey::NONE, class, payload)
    }

    /// `put_durable`, naming the block's parent key (the block it extends, as in a token
    /// prefix), which its `Stored` KV event and the snapshots carry. `BlockKey::NONE`: none.
    pub fn put_durable_with_parent(
        &self,
        key: BlockKey,
        parent: BlockKey,
        class: PriorityClass,
        payload: &[u8],
    ) -> Result<PutOutcome, NodeError> {
        let tier = self.inner.persist_tier.ok_or(NodeError::NotDurable)?;
        let out = self.inner.put_into(key, parent, class, payload, tier)?;
        if matches!(out, PutOutcome::Stored(_)) {
            self.inner.durable_puts.fetch_add(1, Ordering::Relaxed);
        }
        Ok(out)
    }

    /// Makes every durable put that returned before this call survive a power cut:
    /// `fdatasync` of the persistent tier's file when it has `sync` (one call covers a whole
    /// batch: group commit). Without `sync`, nothing to do (the writes already survive a crash
    /// of the process).
    pub fn sync_durable(&self) -> Result<(), NodeError> {
        let Some(t) = self.inner.persist_tier else {
            return Err(NodeError::NotDurable);
        };
        if !self.inner.cfg.tiers[t.index()].sync {
            return Ok(());
        }
        if let Some(TierStore::Disk(d)) = self.inner.tiers.get(t) {
            d.sync_data()?;
            self.inner.durable_syncs.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The persistent tier, if the node has one.
    pub fn persist_tier(&self) -> Option<TierId> {
        self.inner.persist_tier
    }

    /// The node's disk tier, if it has one (for tools and tests: its path, geometry, I/O mode).
    pub fn disk_tier(&self) -> Option<Arc<DiskTier>> {
        (0..self.inner.tiers.len()).find_map(|i| match self.inner.tiers.get(TierId(i as u8)) {
            Some(TierStore::Disk(d)) => Some(d.clone()),
            _ => None,
        })
    }

    /// Reads the block at `key` into `out` (resized to the payload). A corrupt block is
    /// reported as a miss and dropped, never returned.
    pub fn get(&self, key: BlockKey, out: &mut Vec<u8>) -> Result<GetOutcome, NodeError> {
        self.get_vec(key, None, out)
    }

    /// Reads the block at `key` into the caller's slice (no allocation); a corrupt block is a
    /// miss. On a hit the payload is `out[..len]`; on a miss `out` is not written. A slice
    /// shorter than the stored payload is `NodeError::BufferTooSmall`, and the block stays
    /// stored. `hint` is (sequence, position), as for `get_hinted`.
    pub fn get_into(
        &self,
        key: BlockKey,
        hint: Option<(u32, u32)>,
        out: &mut [u8],
    ) -> Result<Fetched, NodeError> {
        self.inner.get_into(key, hint, out)
    }

    /// Stores a batch under `class`, with per-block results as `put_class` gives them. Blocks
    /// that must wait for room wait together: the demotions that make room for all of them
    /// are started in the same round and travel in shared engine batches.
    pub fn put_batch(
        &self,
        class: PriorityClass,
        blocks: &[(BlockKey, &[u8])],
    ) -> Vec<Result<PutOutcome, NodeError>> {
        self.inner.put_batch(class, blocks, &[])
    }

    /// `put_batch`, naming each block's parent key: `parents[i]` is the key of the block that
    /// `blocks[i]` extends (the previous block of a token prefix; `BlockKey::NONE`: none). The
    /// `Stored` KV event of each block and the snapshots carry it (`NodeConfig::kv_events`);
    /// nothing else depends on it. `parents` is empty (no parents) or as long as `blocks`;
    /// any other length is `NodeError::ParentCount` for every block.
    pub fn put_batch_with_parents(
        &self,
        class: PriorityClass,
        blocks: &[(BlockKey, &[u8])],
        parents: &[BlockKey],
    ) -> Vec<Result<PutOutcome, NodeError>> {
        if !parents.is_empty() && parents.len() != blocks.len() {
            return blocks
                .iter()
                .map(|_| {
                    Err(NodeError::ParentCount {
                        parents: parents.len(),
                        blocks: blocks.len(),
                    })
                })
                .collect();
        }
        self.inner.put_batch(class, blocks, parents)
    }

    /// Reads a batch: `outs[i]` receives `keys[i]`'s payload, as `get_into` would. Every
    /// decision is made first, so the moves of blocks found in slower tiers are all in the
    /// engines' rings before any is waited for: they travel in one engine batch (one io_uring
    /// submission for a disk tier) instead of one round trip each. Results are per key.
    pub fn get_batch_into(
        &self,
        keys: &[BlockKey],
        outs: &mut [&mut [u8]],
    ) -> Vec<Result<Fetched, NodeError>> {
        self.get_batch(keys, outs, Dest::Payload)
    }

    /// `get_batch_into` into direct slots: `slots[i]` receives `keys[i]`'s payload at
    /// `slots[i][BLOCK_HEADER_BYTES..]` (the hit's `len` counts payload bytes only). A block
    /// read in place from a disk tier goes straight from the file into the slot and is verified
    /// there when the slot starts at a `DISK_ALIGN`-aligned address and holds
    /// [`Node::direct_slot_bytes`] (else through a bounce buffer, as `get_batch_into`);
    /// `NodeStats::disk_direct_reads` and `disk_bounce_reads` count which. A slot's bytes
    /// outside the payload are unspecified but never another block's: a direct read that fails
    /// verification zeroes what it read, and the get is a miss (corrupt, dropped) as anywhere.
    /// A slot shorter than the header is `BufferTooSmall` (`needed` counts payload bytes).
    pub fn get_batch_into_slots(
        &self,
        keys: &[BlockKey],
        slots: &mut [&mut [u8]],
    ) -> Vec<Result<Fetched, NodeError>> {
        self.get_batch(keys, slots, Dest::Slot)
    }

    /// Bytes a direct slot needs for a disk-tier block to be read straight into it: the disk
    /// tier's frame stride (header, `block_bytes`, padding to `DISK_ALIGN`), or header plus
    /// `block_bytes` on a node without a disk tier.
    pub fn direct_slot_bytes(&self) -> usize {
        self.disk_tier().map_or(
            BLOCK_HEADER_BYTES + self.inner.cfg.block_bytes as usize,
            |d| d.direct_read_bytes(),
        )
    }

    fn get_batch(
        &self,
        keys: &[BlockKey],
        outs: &mut [&mut [u8]],
        dest: Dest,
    ) -> Vec<Result<Fetched, NodeError>> {
        let mut results: Vec<Result<Fetched, NodeError>> = Vec::with_capacity(keys.len());
        let mut moving = Vec::new();
        for (i, (&key, out)) in keys.iter().zip(outs.iter_mut()).enumerate() {
            match self.inner.start_get(key, None, out, dest) {
                Ok(Started::Done(f)) => results.push(Ok(f)),
                Ok(Started::Moving { move_id, from }) => {
                    moving.push((i, move_id, from));
                    results.push(Ok(Fetched::Miss)); // replaced below
                }
                Err(e) => results.push(Err(e)),
            }
        }
        for (i, move_id, from) in moving {
            results[i] = self.inner.finish_get(keys[i], move_id, from, outs[i], dest);
        }
        // Keys without a buffer (outs shorter than keys) are not read.
        results.extend((results.len()..keys.len()).map(|_| {
            Err(NodeError::BufferTooSmall {
                needed: self.inner.cfg.block_bytes as usize,
                len: 0,
            })
        }));
        results
    }

    fn get_vec(
        &self,
        key: BlockKey,
        hint: Option<(u32, u32)>,
        out: &mut Vec<u8>,
    ) -> Result<GetOutcome, NodeError> {
        out.resize(self.inner.cfg.block_bytes as usize, 0);
        match self.inner.get_into(key, hint, out) {
            Ok(Fetched::Hit { tier, len }) => {
                out.truncate(len);
                Ok(GetOutcome::Hit(tier))
            }
            Ok(Fetched::Miss) => {
                out.clear();
                Ok(GetOutcome::Miss)
            }
            Err(e) => {
                out.clear();
                Err(e)
            }
        }
    }

    /// `get` with a (sequence, position) hint that drives sequential prefetch.
    pub fn get_hinted(
        &self,
        key: BlockKey,
        sequence: u32,
        position: u32,
        out: &mut Vec<u8>,
    ) -> Result<GetOutcome, NodeError> {
        self.get_vec(key, Some((sequence, position)), out)
    }

    /// Length of the longest prefix of `keys` that is stored (no access is counted).
    pub fn longest_cached_prefix(&self, keys: &[BlockKey]) -> usize {
        let inner = &self.inner;
        keys.iter()
            .take_while(|&&k| {
                let slot = lock(&inner.shards[inner.shard_of(k)]);
                slot.shard.peek(k).is_some()
            })
            .count()
    }

    /// Where a stored block is now: (tier, frame). For tools and tests; no access is counted.
    pub fn locate(&self, key: BlockKey) -> Option<(TierId, u32)> {
        let inner = &self.inner;
        lock(&inner.shards[inner.shard_of(key)]).shard.peek(key)
    }

    /// The node's KV event ring, if it publishes events (`NodeConfig::kv_events`): readers
    /// take a cursor at `next_seq` and `read` from it.
    pub fn kv_events(&self) -> Option<&Arc<KvEventLog>> {
        self.inner.kv_events.as_ref()
    }

    /// Every block the node holds, with the last event the list reflects: a reader that starts
    /// or lost events applies the events after `seq` to it. Holds every shard lock while it
    /// copies the key map (no event is published meanwhile). None without KV events.
    pub fn kv_snapshot(&self) -> Option<KvSnapshot> {
        let log = self.inner.kv_events.as_ref()?;
        let mut slots: Vec<ShardGuard<'_>> = self.inner.shards.iter().map(lock).collect();
        let mut blocks = Vec::new();
        let mut parents = Vec::new();
        for slot in slots.iter_mut() {
            slot.publish_events();
            let slot = &**slot;
            if let Some(ev) = slot.events.as_ref() {
                for r in ev.keys.values() {
                    let tier = slot.shard.peek(r.key).map_or(r.stored_in, |(t, _)| t);
                    blocks.push((r.key, tier));
                    parents.push(r.parent);
                }
            }
        }
        // Every shard's events of its last hold are in the ring, and none can be added while
        // the locks are held: the snapshot covers exactly the events before `next_seq`.
        let seq = log.next_seq() - 1;
        drop(slots);
        Some(KvSnapshot {
            seq,
            blocks,
            parents,
        })
    }

    /// Pins a stored block: it is not evicted from the tier it is in until `unpin`.
    pub fn pin(&self, key: BlockKey) -> Result<(), NodeError> {
        self.intent(Intent {
            key,
            action: IntentAction::Pin { ttl_ticks: 0 },
        })
    }

    /// Undoes one `pin`.
    pub fn unpin(&self, key: BlockKey) -> Result<(), NodeError> {
        self.intent(Intent {
            key,
            action: IntentAction::Unpin,
        })
    }

    /// Delivers an intent to the fast path.
    pub fn intent(&self, intent: Intent) -> Result<(), NodeError> {
        let inner = &self.inner;
        let mut slot = lock(&inner.shards[inner.shard_of(intent.key)]);
        slot.drain();
        slot.shard.intent(intent).map_err(|e| match e {
            IntentError::NotResident => NodeError::NotResident(intent.key),
            IntentError::NotPinned => NodeError::NotPinned(intent.key),
            IntentError::TooManyPins => NodeError::TooManyPins(intent.key),
        })
    }

    /// Validates and installs a policy table (atomic epoch swap on every shard). Returns the
    /// epoch. Shards pick it up at their next event; the housekeeper ticks them every ms. With
    /// the brain running, its next decision or TTL refresh replaces this table.
    pub fn install_policy(&self, table: &PolicyTable) -> Result<u64, NodeError> {
        table.validate(&self.inner.topology)?;
        let mut installer = self
            .inner
            .installer
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            match installer.try_install(table) {
                Ok(epoch) => {
                    if let Some(r) = &self.inner.gpu_routes {
                        r.publish(table.gpu_routes);
                    }
                    return Ok(epoch);
                }
                Err(e) if Instant::now() >= deadline => return Err(NodeError::InstallBusy(e)),
                Err(_) => std::thread::sleep(TICK_PERIOD),
            }
        }
    }

    /// A snapshot of counters and usage.
    pub fn stats(&self) -> NodeStats {
        let inner = &self.inner;
        let mut counters = Counters::default();
        let mut device_faults = 0;
        let mut used = vec![0u64; inner.cfg.tiers.len()];
        let mut epoch = u64::MAX;
        for m in &inner.shards {
            let slot = lock(m);
            counters.add(slot.shard.counters());
            device_faults += slot.device_faults;
            for (t, u) in used.iter_mut().enumerate() {
                *u += u64::from(slot.shard.tier_usage(TierId(t as u8)).0);
            }
            epoch = epoch.min(slot.shard.policy_epoch());
        }
        let disk = inner.tiers_disk();
        NodeStats {
            counters,
            tiers: inner
                .cfg
                .tiers
                .iter()
                .zip(used)
                .map(|(t, u)| TierUsage {
                    kind: t.kind,
                    used_blocks: u,
                    capacity_blocks: u64::from(t.capacity_blocks),
                })
                .collect(),
            telemetry_samples: inner.telemetry_samples.load(Ordering::Relaxed),
            policy_epoch: epoch,
            disk_backend: inner.disk_backend,
            disk_direct_io: disk.map(|d| d.direct_io()),
            gpu_disk_path: inner.gpu_disk_path,
            puts_waited: inner.puts_waited.load(Ordering::Relaxed),
            gets_waited: inner.gets_waited.load(Ordering::Relaxed),
            disk_direct_reads: inner.disk_direct_reads.load(Ordering::Relaxed),
            disk_bounce_reads: inner.disk_bounce_reads.load(Ordering::Relaxed),
            brain: self.brain_snapshot(),
            links: inner.link_stats(),
            rebuild: inner.rebuild.clone(),
            durable_puts: inner.durable_puts.load(Ordering::Relaxed),
            durable_syncs: inner.durable_syncs.load(Ordering::Relaxed),
            io_errors: inner.io_errors.load(Ordering::Relaxed) + device_faults,
            frames_retired: counters.frames_retired,
            puts_refused_no_space: inner.puts_refused_no_space.load(Ordering::Relaxed),
            move_wait_us_max: inner.move_wait_us_max.load(Ordering::Relaxed),
            kv_events: inner
                .kv_events
                .as_ref()
                .map(|l| (l.next_seq(), l.dropped(), l.lost_removals())),
        }
    }

    /// Waits until no move is in flight (for tests and orderly reports).
    pub fn quiesce(&self) -> Result<(), NodeError> {
        let deadline = Instant::now() + MOVE_TIMEOUT;
        loop {
            let busy: usize = self
                .inner
                .shards
                .iter()
                .map(|m| {
                    let mut slot = lock(m);
                    slot.drain();
                    slot.shard.moves_in_flight()
                })
                .sum();
            if busy == 0 {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(NodeError::Stalled(MOVE_TIMEOUT));
            }
            self.inner.ring_doorbells();
            std::thread::sleep(Duration::from_micros(50));
        }
    }

    /// Stops the threads and removes the disk tier files the node created (when configured to).
    pub fn close(mut self) -> Result<(), NodeError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), NodeError> {
        let _ = self.stop_brain();
        self.inner.stop.store(true, Ordering::Release);
        if let Some(h) = self.housekeeper.take() {
            let _ = h.join();
        }
        for e in &mut self.engines {
            e.shutdown()?;
        }
        // A persistent tier's file outlives the node (that is its point).
        if self.inner.cfg.remove_files_on_close
            && self.inner.persist_tier.is_none()
            && let Some(d) = self.inner.tiers_disk()
        {
            d.remove_created()?;
        }
        Ok(())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if self.housekeeper.is_some() {
            let _ = self.shutdown();
        }
    }
}

/// Starts the brain thread on the shards' telemetry rings, installing through the node's
/// installer.
fn start_brain(
    inner: &Arc<Inner>,
    rings: Vec<Consumer<TelemetrySample>>,
) -> Result<BrainThread, NodeError> {
    let settings = &inner.cfg.brain;
    let mut cfg = BrainConfig::for_node(&inner.topology, inner.shards.len() as u32, 0);
    cfg.table_ttl_ticks = settings.table_ttl_ticks;
    cfg.free_watermark = inner.cfg.free_watermark;
    cfg.replacement = settings.replacement.into();
    let mut brain = Brain::new(inner.topology.clone(), cfg);
    if let (Some(tps), Some(kvb), Some(bt)) = (
        settings.prefill_tokens_per_s,
        settings.kv_bytes_per_token,
        settings.block_tokens,
    ) {
        brain.set_placement(Placement::new(
            &inner.topology,
            CostModel {
                prefill_tokens_per_s: tps,
                kv_bytes_per_token: kvb,
                block_tokens: bt,
            },
        ));
    }
    let target = inner.clone();
    let install: InstallFn = Box::new(move |table: &PolicyTable| {
        target
            .installer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .try_install(table)
    });
    // Ticks are the housekeeper's 1 ms; refresh well within the TTL.
    let ttl = TICK_PERIOD * settings.table_ttl_ticks;
    let cadence = Cadence {
        period: Duration::from_millis(2),
        refresh: ttl / 4,
    };
    BrainThread::spawn_measured(brain, rings, install, cadence, Some(inner.links.clone())).map_err(
        |source| {
            NodeError::Tier(TierError::Io {
                context: "starting the brain thread".into(),
                source,
            })
        },
    )
}

fn sample_zero() -> TelemetrySample {
    TelemetrySample {
        key_tag: 0,
        tick: 0,
        kind: mcos_core::SampleKind::Hit,
        class: 0,
        tier: 0,
        shard: 0,
        epoch: 0,
        value: 0,
    }
}

impl Inner {
    fn shard_of(&self, key: BlockKey) -> usize {
        key.shard(self.shards.len())
    }

    fn tiers_disk(&self) -> Option<&DiskTier> {
        (0..self.tiers.len()).find_map(|i| match self.tiers.get(TierId(i as u8)) {
            Some(TierStore::Disk(d)) => Some(&**d),
            _ => None,
        })
    }

    fn link_stats(&self) -> Vec<LinkStat> {
        let mut out = Vec::new();
        for t in 1..self.topology.tiers.len() {
            for (from, to) in [(t, t - 1), (t - 1, t)] {
                let m = self.links.totals(from, to);
                let (from, to) = (TierId(from as u8), TierId(to as u8));
                out.push(LinkStat {
                    from,
                    to,
                    bytes: m.bytes,
                    seconds: m.nanos as f64 * 1e-9,
                    configured_bytes_per_s: self
                        .topology
                        .link(from, to)
                        .map_or(0, |l| l.bandwidth_bytes_per_s),
                });
            }
        }
        out
    }

    fn ring_doorbells(&self) {
        for d in &self.doorbells {
            d.ring();
        }
    }

    fn housekeep(&self) {
        while !self.stop.load(Ordering::Acquire) {
            for m in &self.shards {
                let mut slot = lock(m);
                slot.drain();
                let before = slot.shard.counters().moves_started;
                slot.shard.tick();
                let n = slot.drain_telemetry();
                self.telemetry_samples.fetch_add(n, Ordering::Relaxed);
                if slot.shard.counters().moves_started != before {
                    self.ring_doorbells();
                }
            }
            std::thread::sleep(TICK_PERIOD);
        }
    }

    /// Reads the block in `frame` of `tier` into `out` (as `dest` says); returns the payload
    /// length. `out` is written only when the block verifies and fits (a direct slot's read
    /// span is zeroed when it does not).
    fn read_frame(
        &self,
        tier: TierId,
        frame: u32,
        key: BlockKey,
        out: &mut [u8],
        dest: Dest,
    ) -> Result<usize, TierError> {
        match self.tiers.get(tier) {
            Some(TierStore::Disk(d)) if dest == Dest::Slot => {
                let (len, how) = d.read_block_direct(frame, key, out)?;
                let counter = match how {
                    DirectRead::Direct => &self.disk_direct_reads,
                    DirectRead::Bounced => &self.disk_bounce_reads,
                };
                counter.fetch_add(1, Ordering::Relaxed);
                Ok(len)
            }
            Some(TierStore::Disk(d)) => {
                let len = d.read_block(frame, key, out)?;
                self.disk_bounce_reads.fetch_add(1, Ordering::Relaxed);
                Ok(len)
            }
            Some(TierStore::Dram(d)) => d.read_block(frame, key, payload_dest(out, dest)?),
            #[cfg(feature = "cuda")]
            Some(TierStore::Hbm(h)) => h.read_block(frame, key, payload_dest(out, dest)?),
            None => Err(TierError::Config(format!("tier {tier} does not exist"))),
        }
    }

    fn write_frame(
        &self,
        tier: TierId,
        frame: u32,
        key: BlockKey,
        payload: &[u8],
    ) -> Result<(), TierError> {
        match self.tiers.get(tier) {
            Some(TierStore::Dram(d)) => d.write_block(frame, key, payload),
            Some(TierStore::Disk(d)) => d.write_block(frame, key, payload),
            #[cfg(feature = "cuda")]
            Some(TierStore::Hbm(h)) => h.write_block(frame, key, payload),
            None => Err(TierError::Config(format!("tier {tier} does not exist"))),
        }
    }

    /// Holds the block the fast path just located at `frame` of `tier` so that it can be read
    /// after the shard lock is dropped. Called with the lock held.
    fn hold(&self, tier: TierId, frame: u32) -> Result<Hold<'_>, TierError> {
        match self.tiers.get(tier) {
            Some(TierStore::Dram(d)) => Ok(Hold::Claimed(d.claim_read(frame)?)),
            Some(TierStore::Disk(_)) => Ok(Hold::Unclaimed),
            #[cfg(feature = "cuda")]
            Some(TierStore::Hbm(h)) => Ok(Hold::ClaimedHbm {
                _claim: h.claim_read(frame)?,
            }),
            None => Err(TierError::Config(format!("tier {tier} does not exist"))),
        }
    }

    /// Reads a held block into `out` (no shard lock needed); returns the payload length.
    fn read_held(
        &self,
        hold: &Hold<'_>,
        tier: TierId,
        frame: u32,
        key: BlockKey,
        out: &mut [u8],
        dest: Dest,
    ) -> Result<usize, TierError> {
        match hold {
            Hold::Claimed(r) => r.copy_payload(key, payload_dest(out, dest)?),
            // HBM: `read_block` takes a second read claim beside the one held; disk: a pread.
            _ => self.read_frame(tier, frame, key, out, dest),
        }
    }

    /// Reads a block at its current location with the shard lock held (nothing moves it or
    /// writes its frame meanwhile), dropping it if it is corrupt.
    fn read_locked(
        &self,
        slot: &mut ShardSlot,
        located: Option<(TierId, u32)>,
        key: BlockKey,
        out: &mut [u8],
        dest: Dest,
    ) -> Result<Option<usize>, NodeError> {
        let Some((tier, frame)) = located else {
            return Ok(None);
        };
        match self.read_frame(tier, frame, key, out, dest) {
            Ok(len) => Ok(Some(len)),
            Err(TierError::Corrupt { .. }) => {
                slot.shard.invalidate(key);
                Ok(None)
            }
            Err(TierError::Io { .. }) => {
                // The device failed under the block: dropped (a counted miss), its frame
                // retired; the node serves on.
                self.io_errors.fetch_add(1, Ordering::Relaxed);
                slot.shard.invalidate(key);
                self.retire(slot, tier, frame);
                Ok(None)
            }
            Err(e) => Err(read_error(e)),
        }
    }

    fn get_into(
        &self,
        key: BlockKey,
        hint: Option<(u32, u32)>,
        out: &mut [u8],
    ) -> Result<Fetched, NodeError> {
        match self.start_get(key, hint, out, Dest::Payload)? {
            Started::Done(f) => Ok(f),
            Started::Moving { move_id, from } => {
                self.finish_get(key, move_id, from, out, Dest::Payload)
            }
        }
    }

    /// The first half of a get: decides under the shard lock and, for a block that is where
    /// it can be read, reads it. A block the fast path is moving up is left `Moving`: the
    /// caller may start other gets (their moves join the same engine batch) before waiting.
    fn start_get(
        &self,
        key: BlockKey,
        hint: Option<(u32, u32)>,
        out: &mut [u8],
        dest: Dest,
    ) -> Result<Started, NodeError> {
        if key == BlockKey::NONE {
            return Err(NodeError::ReservedKey);
        }
        let m = &self.shards[self.shard_of(key)];
        let mut slot = lock(m);
        slot.drain();
        let before = slot.shard.counters().moves_started;
        let access = slot.shard.access(key, hint);
        if slot.shard.counters().moves_started != before {
            self.ring_doorbells();
        }
        match access {
            Access::Miss => Ok(Started::Done(Fetched::Miss)),
            Access::Hit { tier, frame } => self
                .read_from(m, slot, key, tier, Some((tier, frame)), out, dest)
                .map(Started::Done),
            Access::Wait { move_id, from } => Ok(Started::Moving { move_id, from }),
        }
    }

    /// The second half of a get whose block was moving: waits for the engine, then reads the
    /// block where it landed (counted where it was found, `from`).
    fn finish_get(
        &self,
        key: BlockKey,
        move_id: u32,
        from: TierId,
        out: &mut [u8],
        dest: Dest,
    ) -> Result<Fetched, NodeError> {
        let m = &self.shards[self.shard_of(key)];
        self.gets_waited.fetch_add(1, Ordering::Relaxed);
        let slot = self.wait_for(m, move_id)?;
        let located = slot.shard.peek(key);
        self.read_from(m, slot, key, from, located, out, dest)
    }

    /// Reads a block located under the shard lock (`slot` held): copy and verify after the lock
    /// is dropped, under the frame's claim; a block found corrupt is re-decided under the lock.
    // The get's state (lock, key, where it was found and is) and its buffer (where and how
    // to land it): grouping them would only rename the same arguments.
    #[allow(clippy::too_many_arguments)]
    fn read_from<'m>(
        &self,
        m: &'m Mutex<ShardSlot>,
        mut slot: ShardGuard<'m>,
        key: BlockKey,
        found_in: TierId,
        mut located: Option<(TierId, u32)>,
        out: &mut [u8],
        dest: Dest,
    ) -> Result<Fetched, NodeError> {
        let hit = |len| Fetched::Hit {
            tier: found_in,
            len,
        };
        let mut reads = 0;
        loop {
            let Some((tier, frame)) = located else {
                return Ok(Fetched::Miss);
            };
            // Decided under the lock: the block is resident at (tier, frame) and no writer
            // holds that frame. Hold it, then copy and verify without the lock.
            let hold = self.hold(tier, frame)?;
            drop(slot);
            let read = self.read_held(&hold, tier, frame, key, out, dest);
            drop(hold);
            reads += 1;
            match read {
                Ok(len) => return Ok(hit(len)),
                // Corrupt or failed as read without the lock: decided again under it (an I/O
                // error that repeats there drops the block and retires its frame).
                Err(TierError::Corrupt { .. } | TierError::Io { .. }) => {}
                Err(e) => return Err(read_error(e)),
            }
            // Corrupt as read: decide under the lock whether the block is. (Under a claim the
            // bytes were the block's own, but after the claim dropped the block may have left
            // and come back; an unclaimed disk frame may have been reused during the pread.)
            slot = lock(m);
            slot.drain();
            let now = slot.shard.peek(key);
            if now == Some((tier, frame)) || reads >= READ_ATTEMPTS {
                // Still there, or it keeps moving under the reader: read it here, where
                // nothing moves or writes it, and drop it only if it is corrupt here.
                return Ok(match self.read_locked(&mut slot, now, key, out, dest)? {
                    Some(len) => hit(len),
                    None => Fetched::Miss,
                });
            }
            // Moved while it was read (and its old frame reused): read it where it is now.
            located = now;
        }
    }

    /// Waits until move `move_id` of shard `m` has completed; returns the shard locked.
    fn wait_for<'a>(
        &self,
        m: &'a Mutex<ShardSlot>,
        move_id: u32,
    ) -> Result<ShardGuard<'a>, NodeError> {
        let start = Instant::now();
        let mut spins = 0u32;
        loop {
            {
                let mut slot = lock(m);
                slot.drain();
                if !slot.shard.move_pending(move_id) {
                    let waited = start.elapsed().as_micros() as u64;
                    self.move_wait_us_max.fetch_max(waited, Ordering::Relaxed);
                    return Ok(slot);
                }
            }
            if start.elapsed() > MOVE_TIMEOUT {
                return Err(NodeError::Stalled(MOVE_TIMEOUT));
            }
            self.ring_doorbells();
            backoff(&mut spins);
        }
    }

    fn put(
        &self,
        key: BlockKey,
        class: PriorityClass,
        payload: &[u8],
    ) -> Result<PutOutcome, NodeError> {
        self.check_put(key, payload)?;
        let start = Instant::now();
        let mut spins = 0u32;
        let mut waited = false;
        loop {
            if let Some(done) = self.try_put(key, BlockKey::NONE, class, payload, &mut waited)? {
                return Ok(done);
            }
            if start.elapsed() > MOVE_TIMEOUT {
                return Err(NodeError::Stalled(MOVE_TIMEOUT));
            }
            backoff(&mut spins);
        }
    }

    fn check_put(&self, key: BlockKey, payload: &[u8]) -> Result<(), NodeError> {
        if key == BlockKey::NONE {
            return Err(NodeError::ReservedKey);
        }
        if payload.len() > self.cfg.block_bytes as usize {
            return Err(NodeError::TooLarge {
                len: payload.len(),
                max: self.cfg.block_bytes as usize,
            });
        }
        Ok(())
    }

    /// One attempt at a put: `Some` when it is decided, `None` when it must be tried again
    /// (the tier is making room, or another caller is still writing the same key).
    fn try_put(
        &self,
        key: BlockKey,
        parent: BlockKey,
        class: PriorityClass,
        payload: &[u8],
        waited: &mut bool,
    ) -> Result<Option<PutOutcome>, NodeError> {
        let m = &self.shards[self.shard_of(key)];
        let fill = {
            let mut slot = lock(m);
            slot.drain();
            let before = slot.shard.counters().moves_started;
            let decision = slot.shard.insert(key, class.0);
            if slot.shard.counters().moves_started != before {
                self.ring_doorbells();
            }
            match decision {
                Insert::Fill { tier, frame } => Some((tier, frame)),
                // Present and visible; or another caller is still writing it: wait for its
                // commit, so that a put that returns `Present` is readable, as one that
                // returns `Stored` is.
                Insert::Present if slot.shard.peek(key).is_some() => {
                    return Ok(Some(PutOutcome::Present));
                }
                Insert::Present => None,
                Insert::Rejected(r) => return Ok(Some(PutOutcome::Rejected(r))),
                Insert::Retry => {
                    if !*waited {
                        *waited = true;
                        self.puts_waited.fetch_add(1, Ordering::Relaxed);
                    }
                    None
                }
            }
        };
        let Some((tier, frame)) = fill else {
            return Ok(None);
        };
        // The frame is reserved (filling: gets miss it, no victim scan picks it), so it is
        // written without the lock; the block becomes visible at the commit.
        let written = self.write_frame(tier, frame, key, payload);
        let mut slot = lock(m);
        let before = slot.shard.counters().moves_started;
        slot.commit(key, parent, tier, frame, written.is_ok());
        if slot.shard.counters().moves_started != before {
            self.ring_doorbells();
        }
        drop(slot);
        match written {
            Ok(()) => Ok(Some(PutOutcome::Stored(tier))),
            // A reader of the frame's previous block outlasted the claims' wait; the
            // reservation was given back: ask again.
            Err(TierError::FrameBusy { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Puts a batch in rounds: each round tries every block still waiting, so the demotions
    /// that make room for all of them are started together (one engine batch) instead of one
    /// put waiting out its demotion before the next asks for one.
    fn put_batch(
        &self,
        class: PriorityClass,
        blocks: &[(BlockKey, &[u8])],
        parents: &[BlockKey],
    ) -> Vec<Result<PutOutcome, NodeError>> {
        let mut results: Vec<Option<Result<PutOutcome, NodeError>>> = blocks
            .iter()
            .map(|(k, p)| self.check_put(*k, p).err().map(Err))
            .collect();
        let mut waited = vec![false; blocks.len()];
        let mut pending: Vec<usize> = (0..blocks.len())
            .filter(|&i| results[i].is_none())
            .collect();
        let start = Instant::now();
        let mut spins = 0u32;
        while !pending.is_empty() {
            let before = pending.len();
            pending.retain(|&i| {
                let (key, payload) = blocks[i];
                let parent = parents.get(i).copied().unwrap_or(BlockKey::NONE);
                match self.try_put(key, parent, class, payload, &mut waited[i]) {
                    Ok(None) => true,
                    Ok(Some(done)) => {
                        results[i] = Some(Ok(done));
                        false
                    }
                    Err(e) => {
                        results[i] = Some(Err(e));
                        false
                    }
                }
            });
            if start.elapsed() > MOVE_TIMEOUT {
                for &i in &pending {
                    results[i] = Some(Err(NodeError::Stalled(MOVE_TIMEOUT)));
                }
                break;
            }
            if pending.len() == before {
                backoff(&mut spins);
            }
        }
        results
            .into_iter()
            .map(|r| r.unwrap_or(Err(NodeError::Stalled(MOVE_TIMEOUT))))
            .collect()
    }
}

/// A tier error from a read, with a short caller buffer given its own variant.
/// The payload's destination within a get's buffer: all of it, or a direct slot's bytes after
/// the header room.
fn payload_dest(out: &mut [u8], dest: Dest) -> Result<&mut [u8], TierError> {
    match dest {
        Dest::Payload => Ok(out),
        Dest::Slot => {
            let len = out.len();
            out.get_mut(BLOCK_HEADER_BYTES..)
                .ok_or(TierError::BufferTooSmall {
                    needed: BLOCK_HEADER_BYTES,
                    len,
                })
        }
    }
}

fn read_error(e: TierError) -> NodeError {
    match e {
        TierError::BufferTooSmall { needed, len } => NodeError::BufferTooSmall { needed, len },
        e => e.into(),
    }
}

/// How a reader keeps a located block in place once it dropped the shard lock.
enum Hold<'a> {
    /// A memory frame's read claim, taken under the lock while the block was resident there:
    /// a writer of that frame (a move's destination, a put's fill, after the fast path freed
    /// it) waits until the claim drops (`mcos_tiers` claims).
    Claimed(FrameRead<'a>),
    /// The same for an HBM frame.
    #[cfg(feature = "cuda")]
    ClaimedHbm {
        _claim: mcos_tiers::cuda::hbm::HbmRead<'a>,
    },
    /// A disk frame, read without a claim (positional file I/O cannot corrupt memory): the
    /// header names the key and checksums the payload, so a frame reused meanwhile reads as
    /// corrupt, and that verdict is checked again under the lock before anything is dropped.
    Unclaimed,
}

impl Inner {
    /// Takes a frame the device failed under out of service (it was just freed); counted in
    /// the shard's `frames_retired`.
    fn retire(&self, slot: &mut ShardSlot, tier: TierId, frame: u32) {
        slot.shard.retire_frame(tier, frame);
    }

    /// `put` into one given tier (durable puts): no admission filter; room is made by
    /// evicting from that tier.
    fn put_into(
        &self,
        key: BlockKey,
        parent: BlockKey,
        class: PriorityClass,
        payload: &[u8],
        tier: TierId,
    ) -> Result<PutOutcome, NodeError> {
        if key == BlockKey::NONE {
            return Err(NodeError::ReservedKey);
        }
        if payload.len() > self.cfg.block_bytes as usize {
            return Err(NodeError::TooLarge {
                len: payload.len(),
                max: self.cfg.block_bytes as usize,
            });
        }
        let m = &self.shards[self.shard_of(key)];
        let start = Instant::now();
        let mut spins = 0u32;
        loop {
            {
                let mut slot = lock(m);
                slot.drain();
                let before = slot.shard.counters().moves_started;
                let decision = slot.shard.insert_into(key, class.0, tier);
                if slot.shard.counters().moves_started != before {
                    self.ring_doorbells();
                }
                match decision {
                    Insert::Fill { tier, frame } => {
                        let written = self.write_frame(tier, frame, key, payload);
                        slot.commit(key, parent, tier, frame, written.is_ok());
                        match written {
                            Ok(()) => return Ok(PutOutcome::Stored(tier)),
                            // A full device is backpressure: refused and counted.
                            Err(TierError::NoSpace { .. }) => {
                                self.puts_refused_no_space.fetch_add(1, Ordering::Relaxed);
                                return Ok(PutOutcome::Rejected(RejectReason::NoRoom));
                            }
                            // A failing frame is retired and the block tried in another one.
                            Err(TierError::Io { .. }) => {
                                self.io_errors.fetch_add(1, Ordering::Relaxed);
                                self.retire(&mut slot, tier, frame);
                                continue;
                            }
                            Err(e) => return Err(e.into()),
                        }
                    }
                    Insert::Present => return Ok(PutOutcome::Present),
                    Insert::Rejected(r) => return Ok(PutOutcome::Rejected(r)),
                    Insert::Retry => {}
                }
            }
            if start.elapsed() > MOVE_TIMEOUT {
                return Err(NodeError::Stalled(MOVE_TIMEOUT));
            }
            backoff(&mut spins);
        }
    }
}

/// Spin briefly, then yield, then sleep: waits for an engine on another core without burning
/// the only other core of a small machine.
fn backoff(spins: &mut u32) {
    *spins += 1;
    if *spins < 64 {
        std::hint::spin_loop();
    } else if *spins < 128 {
        std::thread::yield_now();
    } else {
        std::thread::sleep(Duration::from_micros(20));
    }
}

/// The GPU side of a node (feature `cuda`): the device, the HBM tier, pinned host tiers and the
/// GPU engine's mover.
#[cfg(feature = "cuda")]
mod gpu {
    use super::*;
    use mcos_tiers::cuda::kernels::Kernels;
    use mcos_tiers::cuda::pinned::PinnedHostTier;
    use mcos_tiers::cuda::{GpuDevice, GpuMover, GpuMoverConfig, GpuTier, HbmTier};

    /// Opens the GPU when the node has an HBM tier.
    pub(super) fn open(cfg: &NodeConfig) -> Result<Option<Arc<GpuDevice>>, NodeError> {
        if cfg.tiers.iter().any(|t| t.kind == TierKind::Hbm) {
            Ok(Some(GpuDevice::open(cfg.gpu_device)?))
        } else {
            Ok(None)
        }
    }

    pub(super) fn hbm_tier(
        gpu: Option<&Arc<GpuDevice>>,
        frames: u32,
        block_bytes: u32,
    ) -> Result<TierStore, NodeError> {
        let dev = gpu.ok_or_else(|| NodeError::Config("an hbm tier without a GPU".into()))?;
        Ok(TierStore::Hbm(Arc::new(HbmTier::new(
            dev,
            frames,
            block_bytes,
        )?)))
    }

    /// The GPU engine's mover over every tier of the node (host tiers are pinned and mapped
    /// here: the node's configuration makes them `host-pinned`).
    pub(super) fn mover(
        dev: &Arc<GpuDevice>,
        cfg: &NodeConfig,
        tiers: &TierSet,
        routes: Arc<RouteCell>,
    ) -> Result<GpuMover, NodeError> {
        let mut gpu_tiers = Vec::with_capacity(tiers.len());
        for i in 0..tiers.len() {
            let t = match tiers.get(TierId(i as u8)) {
                Some(TierStore::Hbm(h)) => GpuTier::Hbm(h.clone()),
                Some(TierStore::Disk(d)) => GpuTier::Disk(d.clone()),
                Some(TierStore::Dram(d)) => {
                    GpuTier::Host(Arc::new(PinnedHostTier::register(dev, d.clone())?))
                }
                None => return Err(NodeError::Config(format!("tier {i} is missing"))),
            };
            gpu_tiers.push(t);
        }
        let kernels = Arc::new(Kernels::load(dev)?);
        let mut mcfg = GpuMoverConfig::new(gpu_tiers, routes);
        mcfg.use_gds = cfg.gpu_direct_storage;
        mcfg.disk_backend = if cfg.disk_io == DiskIo::Psync {
            BackendChoice::Psync
        } else {
            BackendChoice::Auto
        };
        Ok(GpuMover::new(dev, kernels, mcfg)?)
    }
}
