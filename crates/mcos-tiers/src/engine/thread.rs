//! The engine thread: a dedicated thread that drains the fast path's descriptor rings, executes
//! the moves in batches and answers on the completion rings (the DPU model of DESIGN.md, with
//! foyer's "engine thread owns its ring" design).
//!
//! Contract with the fast path, per shard: one `Consumer<MoveDescriptor>` and one
//! `Producer<MoveCompletion>`, both owned by this thread. The fast path pushes a batch of
//! descriptors, then rings the [`Doorbell`] once for the batch. The engine
//! - takes from a shard at most one mover batch of descriptors per round (`ENGINE_BATCH` for the
//!   CPU movers, `GPU_ENGINE_BATCH` for the GPU mover), and never more than that
//!   shard's completion ring has free slots, so posting a completion never waits and is never
//!   dropped (a shard that stops reading completions stops being served, nothing is lost);
//! - orders the round's descriptors urgent first (`Urgency::Demand` before `Evict` before
//!   `Prefetch`, arrival order within an urgency) and executes them in chunks of
//!   one mover batch, one backend submission (or kernel launch) per chunk;
//! - posts exactly one `MoveCompletion` per descriptor, with `engine` set to its engine id. A
//!   move is visible only through its completion.
//!
//! Measurement: with [`EngineConfig::with_link_meters`], each executed chunk is timed with one
//! clock pair and its bytes per (source, destination) route and its time are added to the shared
//! `LinkMeters`, which the brain reads as measured link bandwidth.
//!
//! Idle: after a round that found nothing, the thread parks for up to `idle_park` (default 1 ms).
//! The doorbell unparks it at once; `std::thread::park`'s token means a doorbell rung between the
//! empty round and the park is not lost. The timeout only bounds the latency of a descriptor
//! pushed without a doorbell, and costs an idle engine about a thousand cheap wake-ups a second.

use super::batch::TierMover;
use super::{BackendChoice, Mover, Outcome, select_backend};
use crate::error::TierError;
use crate::store::TierSet;
use mcos_core::limits::{MAX_ENGINES, MAX_SHARDS, MAX_TIERS};
use mcos_core::{
    Consumer, LinkMeters, MoveCompletion, MoveDescriptor, MoveStatus, Producer, Urgency,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::thread::{JoinHandle, Thread};
use std::time::Duration;

/// Default longest idle park (see the module docs).
pub const DEFAULT_IDLE_PARK: Duration = Duration::from_millis(1);

/// Longest idle park a configuration may ask for.
pub const MAX_IDLE_PARK: Duration = Duration::from_millis(100);

/// Default name of the engine thread.
pub const DEFAULT_THREAD_NAME: &str = "mcos-disk-engine";

/// Backend names the handle can report (index stored in `Shared::backend`).
const BACKEND_NAMES: [&str; 3] = ["io_uring", "psync", "gpu"];

/// The two rings between one fast-path shard and this engine.
pub struct ShardRings {
    /// Descriptors from the shard.
    pub descriptors: Consumer<MoveDescriptor>,
    /// Completions to the shard.
    pub completions: Producer<MoveCompletion>,
}

/// How to start an engine thread.
pub struct EngineConfig {
    /// Engine id written into every completion (`< MAX_ENGINES`).
    pub engine_id: u8,
    /// Thread name.
    pub name: String,
    /// Tiers by id.
    pub tiers: TierSet,
    /// One pair of rings per fast-path shard (`1..=MAX_SHARDS`).
    pub shards: Vec<ShardRings>,
    /// Disk backend.
    pub backend: BackendChoice,
    /// Longest idle park (`0 < idle_park <= MAX_IDLE_PARK`).
    pub idle_park: Duration,
    /// How long an idle engine keeps polling its rings before it parks (0: park at once).
    /// Polling trades a core for latency: a parked engine wakes in 10-60 us, a polling one
    /// sees a descriptor in well under a microsecond. At most `MAX_IDLE_PARK`.
    pub spin_before_park: Duration,
    /// The mover to run instead of the CPU disk/memcpy mover built from `tiers` and `backend`
    /// (the GPU engine).
    pub mover: Option<Box<dyn Mover>>,
    /// Where the engine adds, per batch, the bytes it moved per route and the time the batch
    /// took (the brain's measured link bandwidth). None: not measured.
    pub links: Option<Arc<LinkMeters>>,
}

impl EngineConfig {
    /// An engine with the default name, backend (`Auto`) and idle park.
    pub fn new(engine_id: u8, tiers: TierSet, shards: Vec<ShardRings>) -> EngineConfig {
        EngineConfig {
            engine_id,
            name: DEFAULT_THREAD_NAME.to_string(),
            tiers,
            shards,
            backend: BackendChoice::Auto,
            idle_park: DEFAULT_IDLE_PARK,
            spin_before_park: Duration::ZERO,
            mover: None,
            links: None,
        }
    }

    /// Measures every batch into `links`: bytes per route and the batch's execution time.
    pub fn with_link_meters(mut self, links: Arc<LinkMeters>) -> EngineConfig {
        self.links = Some(links);
        self
    }

    /// Runs `mover` instead of the CPU mover (the GPU engine).
    pub fn with_mover(mut self, mover: Box<dyn Mover>) -> EngineConfig {
        self.mover = Some(mover);
        self
    }

    /// Polls the rings for `spin` before parking when idle.
    pub fn with_spin_before_park(mut self, spin: Duration) -> EngineConfig {
        self.spin_before_park = spin;
        self
    }

    /// Picks the disk backend (`Psync` forces pread/pwrite).
    pub fn with_backend(mut self, backend: BackendChoice) -> EngineConfig {
        self.backend = backend;
        self
    }

    /// Sets the longest idle park.
    pub fn with_idle_park(mut self, idle_park: Duration) -> EngineConfig {
        self.idle_park = idle_park;
        self
    }

    /// Sets the thread name.
    pub fn with_name(mut self, name: impl Into<String>) -> EngineConfig {
        self.name = name.into();
        self
    }

    fn validate(&self) -> Result<(), TierError> {
        if usize::from(self.engine_id) >= MAX_ENGINES {
            return Err(TierError::Config(format!(
                "engine id {} is out of range: ids are 0..{MAX_ENGINES}",
                self.engine_id
            )));
        }
        if self.shards.is_empty() || self.shards.len() > MAX_SHARDS {
            return Err(TierError::Config(format!(
                "an engine serves 1..={MAX_SHARDS} shards, {} given",
                self.shards.len()
            )));
        }
        if self.spin_before_park > MAX_IDLE_PARK {
            return Err(TierError::Config(format!(
                "spin before park {:?} is longer than {MAX_IDLE_PARK:?}",
                self.spin_before_park
            )));
        }
        if self.idle_park.is_zero() || self.idle_park > MAX_IDLE_PARK {
            return Err(TierError::Config(format!(
                "idle park {:?} is outside (0, {MAX_IDLE_PARK:?}]",
                self.idle_park
            )));
        }
        Ok(())
    }
}

/// Engine statistics. Every field is written only by the engine thread and read by anyone,
/// with `Relaxed` ordering: they are monotonic counts, never used to order other memory.
#[derive(Debug, Default)]
pub struct EngineCounters {
    /// Descriptors executed (one completion posted for each).
    pub descriptors: AtomicU64,
    /// Chunks of up to one mover batch of descriptors executed.
    pub batches: AtomicU64,
    /// Backend calls that carried disk I/O (one io_uring submission each with io_uring).
    pub submissions: AtomicU64,
    /// Header + payload bytes of moves that completed `Done`.
    pub bytes: AtomicU64,
    /// Bytes the disk backend transferred (aligned spans, padding included).
    pub io_bytes: AtomicU64,
    /// Completions with a status other than `Done`.
    pub errors: AtomicU64,
    /// Completions with status `Corrupt` (also counted in `errors`).
    pub corrupt: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// See [`EngineCounters::descriptors`].
    pub descriptors: u64,
    /// See [`EngineCounters::batches`].
    pub batches: u64,
    /// See [`EngineCounters::submissions`].
    pub submissions: u64,
    /// See [`EngineCounters::bytes`].
    pub bytes: u64,
    /// See [`EngineCounters::io_bytes`].
    pub io_bytes: u64,
    /// See [`EngineCounters::errors`].
    pub errors: u64,
    /// See [`EngineCounters::corrupt`].
    pub corrupt: u64,
}

impl EngineCounters {
    /// Reads every counter (each `Relaxed`; the set is not one atomic snapshot).
    pub fn snapshot(&self) -> EngineStats {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        EngineStats {
            descriptors: r(&self.descriptors),
            batches: r(&self.batches),
            submissions: r(&self.submissions),
            bytes: r(&self.bytes),
            io_bytes: r(&self.io_bytes),
            errors: r(&self.errors),
            corrupt: r(&self.corrupt),
        }
    }
}

struct Shared {
    counters: EngineCounters,
    /// Set once by `EngineHandle::shutdown` (release), read by the engine thread (acquire)
    /// before each round.
    stop: AtomicBool,
    /// Index into `BACKEND_NAMES` of the backend running now. Written by the engine thread
    /// after each batch (it changes at most once, io_uring retiring to psync), read by the
    /// handle; `Relaxed`, it orders nothing.
    backend: AtomicU8,
}

fn backend_index(name: &str) -> u8 {
    BACKEND_NAMES.iter().position(|&n| n == name).unwrap_or(1) as u8
}

/// Wakes the engine thread. Cheap to clone and share between shards; ring it once after
/// pushing a batch of descriptors.
#[derive(Clone, Debug)]
pub struct Doorbell {
    thread: Thread,
}

impl Doorbell {
    /// Unparks the engine thread (a no-op cost if it is already running).
    pub fn ring(&self) {
        self.thread.unpark();
    }
}

/// Starts engine threads.
pub struct EngineThread;

impl EngineThread {
    /// Validates `config`, picks the backend (io_uring, else pread/pwrite, or pread/pwrite when
    /// forced) and starts the thread.
    pub fn spawn(mut config: EngineConfig) -> Result<EngineHandle, TierError> {
        config.validate()?;
        let (mover, fallback_reason): (Box<dyn Mover>, Option<String>) = match config.mover.take() {
            Some(m) => (m, None),
            None => {
                let (backend, why) = select_backend(config.backend);
                (Box::new(TierMover::new(config.tiers.clone(), backend)), why)
            }
        };
        let shared = Arc::new(Shared {
            counters: EngineCounters::default(),
            stop: AtomicBool::new(false),
            backend: AtomicU8::new(backend_index(mover.name())),
        });
        let batch = mover.max_batch().max(1);
        let worker = Worker {
            engine_id: config.engine_id,
            mover,
            batch,
            staged: Vec::with_capacity(config.shards.len() * batch),
            descs: vec![MoveDescriptor::EMPTY; batch],
            outs: vec![Outcome::done(0); batch],
            shards: config.shards,
            shared: shared.clone(),
            idle_park: config.idle_park,
            spin_before_park: config.spin_before_park,
            links: config.links,
        };
        // The mover starts on its own thread (a GPU context is bound per thread); spawn waits
        // for that, so a mover that cannot start is an error here, not a silent dead engine.
        let (started_tx, started_rx) = std::sync::mpsc::sync_channel(1);
        let join = std::thread::Builder::new()
            .name(config.name.clone())
            .spawn(move || worker.run(started_tx))
            .map_err(|e| TierError::io(format!("cannot start engine thread {}", config.name), e))?;
        let started = started_rx.recv().unwrap_or_else(|_| {
            Err(TierError::EnginePanicked {
                name: config.name.clone(),
            })
        });
        if let Err(e) = started {
            let _ = join.join();
            return Err(e);
        }
        Ok(EngineHandle {
            doorbell: Doorbell {
                thread: join.thread().clone(),
            },
            join: Some(join),
            shared,
            name: config.name,
            fallback_reason,
        })
    }
}

/// The owner's side of a running engine thread. Dropping it shuts the engine down.
pub struct EngineHandle {
    join: Option<JoinHandle<()>>,
    doorbell: Doorbell,
    shared: Arc<Shared>,
    name: String,
    fallback_reason: Option<String>,
}

impl EngineHandle {
    /// Wakes the engine: call once after pushing a batch of descriptors.
    pub fn doorbell(&self) {
        self.doorbell.ring();
    }

    /// A doorbell to hand to the fast-path shards.
    pub fn doorbell_handle(&self) -> Doorbell {
        self.doorbell.clone()
    }

    /// The disk backend running now: `"io_uring"` or `"psync"`.
    pub fn backend_name(&self) -> &'static str {
        let i = usize::from(self.shared.backend.load(Ordering::Relaxed));
        BACKEND_NAMES.get(i).copied().unwrap_or("psync")
    }

    /// Why io_uring is not used, when `Auto` had to fall back at start-up.
    pub fn fallback_reason(&self) -> Option<&str> {
        self.fallback_reason.as_deref()
    }

    /// Live counters.
    pub fn counters(&self) -> &EngineCounters {
        &self.shared.counters
    }

    /// The thread's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Stops the engine after it drained its rings, and joins the thread. Descriptors pushed
    /// before this call are executed and answered, except those of a shard whose completion
    /// ring stays full (they stay in the ring). Idempotent.
    pub fn shutdown(&mut self) -> Result<(), TierError> {
        let Some(join) = self.join.take() else {
            return Ok(());
        };
        self.shared.stop.store(true, Ordering::Release);
        join.thread().unpark();
        join.join().map_err(|_| TierError::EnginePanicked {
            name: self.name.clone(),
        })
    }
}

impl Drop for EngineHandle {
    fn drop(&mut self) {
        // A panic in the engine thread was a bug; it already printed its message.
        let _ = self.shutdown();
    }
}

#[derive(Copy, Clone)]
struct Staged {
    urgency: Urgency,
    seq: u32,
    shard: u16,
    desc: MoveDescriptor,
}

struct Worker {
    engine_id: u8,
    mover: Box<dyn Mover>,
    /// Descriptors per shard per round and per `execute` call (`Mover::max_batch`).
    batch: usize,
    shards: Vec<ShardRings>,
    /// One round's descriptors (capacity shards * batch, allocated at spawn).
    staged: Vec<Staged>,
    /// One execute call's descriptors and outcomes (batch each, allocated at spawn).
    descs: Vec<MoveDescriptor>,
    outs: Vec<Outcome>,
    shared: Arc<Shared>,
    idle_park: Duration,
    spin_before_park: Duration,
    links: Option<Arc<LinkMeters>>,
}

impl Worker {
    fn run(mut self, started: std::sync::mpsc::SyncSender<Result<(), TierError>>) {
        let start = self.mover.start();
        let ok = start.is_ok();
        let _ = started.send(start);
        if !ok {
            return;
        }
        let mut idle_since: Option<std::time::Instant> = None;
        loop {
            let stopping = self.shared.stop.load(Ordering::Acquire);
            if self.round() > 0 {
                idle_since = None;
                continue;
            }
            if stopping {
                return;
            }
            let since = *idle_since.get_or_insert_with(std::time::Instant::now);
            if since.elapsed() < self.spin_before_park {
                std::hint::spin_loop();
            } else {
                std::thread::park_timeout(self.idle_park);
            }
        }
    }

    /// Drains what the rings hold (bounded per shard), executes it, posts the completions.
    /// Returns the descriptors executed.
    fn round(&mut self) -> usize {
        self.staged.clear();
        for (shard, rings) in self.shards.iter_mut().enumerate() {
            // Never take more than the completion ring can answer without waiting.
            let room = rings.completions.free_slots().min(self.batch);
            let n = rings.descriptors.pop_batch(&mut self.descs[..room]);
            for desc in &self.descs[..n] {
                let seq = self.staged.len() as u32;
                self.staged.push(Staged {
                    urgency: desc.urgency,
                    seq,
                    // In range: at most MAX_SHARDS shards.
                    shard: shard as u16,
                    desc: *desc,
                });
            }
        }
        // Urgent first; `seq` keeps arrival order within an urgency (and makes keys unique,
        // so the in-place unstable sort is deterministic).
        self.staged.sort_unstable_by_key(|s| (s.urgency, s.seq));

        let counters = &self.shared.counters;
        for chunk in self.staged.chunks(self.batch) {
            let n = chunk.len();
            for (d, s) in self.descs.iter_mut().zip(chunk) {
                *d = s.desc;
            }
            #[cfg(feature = "fault-injection")]
            {
                let us = super::fault::BATCH_DELAY_US.load(std::sync::atomic::Ordering::Relaxed);
                if us > 0 {
                    std::thread::sleep(std::time::Duration::from_micros(us));
                }
            }
            // One clock pair per batch, not per move.
            let started = self.links.is_some().then(std::time::Instant::now);
            let tally = self.mover.execute(&self.descs[..n], &mut self.outs[..n]);
            let elapsed_ns = started.map_or(0, |t| t.elapsed().as_nanos() as u64);
            let mut route_bytes = [[0u64; MAX_TIERS]; MAX_TIERS];
            let (mut bytes, mut errors, mut corrupt) = (0u64, 0u64, 0u64);
            for (s, o) in chunk.iter().zip(&self.outs[..n]) {
                match o.status {
                    MoveStatus::Done => {
                        bytes += u64::from(o.bytes);
                        let (src, dst) =
                            (usize::from(s.desc.src_tier), usize::from(s.desc.dst_tier));
                        if src < MAX_TIERS && dst < MAX_TIERS {
                            route_bytes[src][dst] += u64::from(o.bytes);
                        }
                    }
                    MoveStatus::Corrupt => {
                        errors += 1;
                        corrupt += 1;
                    }
                    MoveStatus::IoError
                    | MoveStatus::NoSpace
                    | MoveStatus::SourceFailed
                    | MoveStatus::DestinationFailed => errors += 1,
                }
                post(
                    &mut self.shards[usize::from(s.shard)].completions,
                    o.completion(&s.desc, self.engine_id),
                );
            }
            if let Some(links) = &self.links {
                record_routes(links, &route_bytes, bytes, elapsed_ns);
            }
            counters.descriptors.fetch_add(n as u64, Ordering::Relaxed);
            counters.batches.fetch_add(1, Ordering::Relaxed);
            counters
                .submissions
                .fetch_add(tally.submissions, Ordering::Relaxed);
            counters
                .io_bytes
                .fetch_add(tally.io_bytes, Ordering::Relaxed);
            counters.bytes.fetch_add(bytes, Ordering::Relaxed);
            counters.errors.fetch_add(errors, Ordering::Relaxed);
            counters.corrupt.fetch_add(corrupt, Ordering::Relaxed);
            self.shared
                .backend
                .store(backend_index(self.mover.name()), Ordering::Relaxed);
        }
        self.staged.len()
    }
}

/// Splits one batch's time over the routes it moved bytes on, in proportion to their bytes.
/// The node gives disk moves and host-memory copies their own engines, so a CPU engine's batch
/// that mixes routes mixes reads and writes of one device, and the split gives each the
/// device's throughput for that batch. The GPU engine's batches may mix host and disk routes;
/// there the split is an approximation (each route gets the batch's average throughput).
fn record_routes(
    links: &LinkMeters,
    route_bytes: &[[u64; MAX_TIERS]; MAX_TIERS],
    total_bytes: u64,
    elapsed_ns: u64,
) {
    if total_bytes == 0 || elapsed_ns == 0 {
        return;
    }
    for (src, row) in route_bytes.iter().enumerate() {
        for (dst, &b) in row.iter().enumerate() {
            if b > 0 {
                let ns = (u128::from(elapsed_ns) * u128::from(b) / u128::from(total_bytes)) as u64;
                // In range: tier ids are below MAX_TIERS <= 8.
                links.record(src as u8, dst as u8, b, ns.max(1));
            }
        }
    }
}

/// Posts one completion. The round reserved a slot for it (only this thread pushes, so free
/// slots only grow), so the first push succeeds; the retry loop is the belt to that brace and
/// backs off rather than drop a completion.
fn post(ring: &mut Producer<MoveCompletion>, completion: MoveCompletion) {
    let mut c = completion;
    let mut spins = 0u32;
    while let Err(back) = ring.push(c) {
        c = back;
        spins += 1;
        if spins < 64 {
            std::hint::spin_loop();
        } else {
            std::thread::yield_now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dram::DramTier;
    use crate::store::TierStore;
    use mcos_core::ring;

    fn tiers() -> TierSet {
        TierSet::new(vec![TierStore::Dram(Arc::new(
            DramTier::new(1, 8).unwrap(),
        ))])
        .unwrap()
    }

    fn rings() -> ShardRings {
        let (_p, descriptors) = ring::<MoveDescriptor>(4);
        let (completions, _c) = ring::<MoveCompletion>(4);
        ShardRings {
            descriptors,
            completions,
        }
    }

    #[test]
    fn bad_configs_are_refused() {
        let bad_id = EngineConfig::new(MAX_ENGINES as u8, tiers(), vec![rings()]);
        assert!(matches!(
            EngineThread::spawn(bad_id),
            Err(TierError::Config(_))
        ));
        let no_shards = EngineConfig::new(0, tiers(), vec![]);
        assert!(matches!(
            EngineThread::spawn(no_shards),
            Err(TierError::Config(_))
        ));
        let long_park =
            EngineConfig::new(0, tiers(), vec![rings()]).with_idle_park(Duration::from_secs(1));
        assert!(matches!(
            EngineThread::spawn(long_park),
            Err(TierError::Config(_))
        ));
    }

    #[test]
    fn idle_engine_starts_names_itself_and_shuts_down() {
        let mut h = EngineThread::spawn(
            EngineConfig::new(1, tiers(), vec![rings()]).with_name("mcos-test-engine"),
        )
        .unwrap();
        assert_eq!(h.name(), "mcos-test-engine");
        h.doorbell();
        h.doorbell_handle().ring();
        h.shutdown().unwrap();
        h.shutdown().unwrap();
        assert_eq!(h.counters().snapshot(), EngineStats::default());
    }

    #[test]
    fn batch_time_is_split_over_routes_by_bytes() {
        let links = LinkMeters::default();
        let mut routes = [[0u64; MAX_TIERS]; MAX_TIERS];
        routes[1][0] = 3000;
        routes[0][1] = 1000;
        record_routes(&links, &routes, 4000, 8000);
        assert_eq!(
            (links.totals(1, 0).bytes, links.totals(1, 0).nanos),
            (3000, 6000)
        );
        assert_eq!(
            (links.totals(0, 1).bytes, links.totals(0, 1).nanos),
            (1000, 2000)
        );
        // Nothing moved, or no time measured: nothing recorded.
        record_routes(&links, &routes, 0, 8000);
        record_routes(&links, &routes, 4000, 0);
        assert_eq!(links.totals(1, 0).bytes, 3000);
    }

    #[test]
    fn post_retries_until_the_consumer_frees_a_slot() {
        let (mut p, mut c) = ring::<MoveCompletion>(1);
        let done = MoveCompletion {
            move_id: 1,
            detail: 0,
            bytes: 0,
            status: MoveStatus::Done,
            engine: 0,
        };
        post(&mut p, done);
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            c.pop()
        });
        post(&mut p, MoveCompletion { move_id: 2, ..done });
        assert_eq!(t.join().unwrap().map(|c| c.move_id), Some(1));
    }
}
