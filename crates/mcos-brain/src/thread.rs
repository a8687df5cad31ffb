//! The brain on its own thread (the node's mode): it wakes every `period`, drains every shard's
//! telemetry ring in batches, steps the shadows, and installs what it decided through the
//! node's installer. The fast path never waits for it: a full ring drops samples (counted by
//! the shard), an install the shards have not caught up with is retried at the next wake-up,
//! and when the thread stops the shards keep the last table until its TTL, then fall back to
//! the built-in default.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mcos_core::limits::MAX_TIERS;
use mcos_core::{Consumer, InstallError, LinkMeters, LinkTotals, PolicyTable, TelemetrySample};

use crate::brain::{Brain, BrainStats, EMPTY_SAMPLE, LinkReport};

/// Installs a validated table; returns the epoch (the node wraps its shared installer).
pub type InstallFn = Box<dyn FnMut(&PolicyTable) -> Result<u64, InstallError> + Send>;

/// What the brain thread last published: for `mcos policy show` and node statistics.
#[derive(Clone, Debug)]
pub struct BrainSnapshot {
    /// Label of the knobs in force.
    pub knobs: String,
    /// The brain's counters.
    pub stats: BrainStats,
    /// The last table installed (None before the first install).
    pub installed: Option<(u64, PolicyTable)>,
    /// The fetch links as placement sees them, configured and measured (empty without a
    /// placement model).
    pub links: Vec<LinkReport>,
    /// The slowest tier blocks are kept in (None without a placement model).
    pub floor_tier: Option<mcos_core::TierId>,
}

/// A running brain thread.
pub struct BrainThread {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<Brain>>,
    snapshot: Arc<Mutex<BrainSnapshot>>,
    /// Milliseconds since `started` at the thread's last wake-up: written by the brain thread
    /// each loop, read by `health` (a stalled brain stops advancing it).
    heartbeat_ms: Arc<AtomicU64>,
    started: Instant,
}

/// Whether the brain thread is running and when it last woke up.
#[derive(Copy, Clone, Debug, PartialEq)]
pub struct BrainHealth {
    /// The thread is running (false after a panic or a stop).
    pub alive: bool,
    /// Time since its last wake-up.
    pub silent: Duration,
}

/// Test-only faults (feature `fault-injection`): the next wake-up of every brain thread in the
/// process panics, or sleeps for the given time.
#[cfg(feature = "fault-injection")]
pub mod fault {
    use std::sync::atomic::{AtomicBool, AtomicU64};
    /// Set: the next wake-up panics (and clears it).
    pub static PANIC: AtomicBool = AtomicBool::new(false);
    /// Non-zero: the next wake-up sleeps this many ms (and clears it).
    pub static STALL_MS: AtomicU64 = AtomicU64::new(0);
}

/// How often the thread wakes and refreshes.
#[derive(Copy, Clone, Debug)]
pub struct Cadence {
    /// Sleep between steps.
    pub period: Duration,
    /// Re-install the current table at least this often (keeps its TTL from expiring).
    pub refresh: Duration,
}

impl Default for Cadence {
    fn default() -> Cadence {
        Cadence {
            period: Duration::from_millis(2),
            refresh: Duration::from_millis(500),
        }
    }
}

impl BrainThread {
    /// Starts `brain` on a thread named `mcos-brain`.
    pub fn spawn(
        brain: Brain,
        rings: Vec<Consumer<TelemetrySample>>,
        install: InstallFn,
        cadence: Cadence,
    ) -> std::io::Result<BrainThread> {
        BrainThread::spawn_measured(brain, rings, install, cadence, None)
    }

    /// As [`BrainThread::spawn`], and at every wake-up the thread reads the engines' link
    /// meters and feeds the bytes and time moved since the last wake-up on every fetch route
    /// (a slower tier to a faster one) into [`Brain::observe_transfer`].
    pub fn spawn_measured(
        mut brain: Brain,
        mut rings: Vec<Consumer<TelemetrySample>>,
        mut install: InstallFn,
        cadence: Cadence,
        links: Option<Arc<LinkMeters>>,
    ) -> std::io::Result<BrainThread> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let snapshot = Arc::new(Mutex::new(BrainSnapshot {
            knobs: brain.knobs().label(),
            stats: brain.stats().clone(),
            installed: None,
            links: brain.links(),
            floor_tier: brain.floor_tier(),
        }));
        let publish = snapshot.clone();
        let started = Instant::now();
        let heartbeat_ms = Arc::new(AtomicU64::new(0));
        let beat = heartbeat_ms.clone();
        let handle = std::thread::Builder::new()
            .name("mcos-brain".into())
            .spawn(move || {
                let mut batch = vec![EMPTY_SAMPLE; 256];
                let mut seen = [[LinkTotals::default(); MAX_TIERS]; MAX_TIERS];
                let mut last_install = Instant::now();
                let mut behind = 0u32;
                while !flag.load(Ordering::Acquire) {
                    beat.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
                    #[cfg(feature = "fault-injection")]
                    {
                        if fault::PANIC.swap(false, Ordering::Relaxed) {
                            panic!("injected brain fault");
                        }
                        let ms = fault::STALL_MS.swap(0, Ordering::Relaxed);
                        if ms > 0 {
                            std::thread::sleep(Duration::from_millis(ms));
                        }
                    }
                    let mut full = false;
                    for r in rings.iter_mut() {
                        let depth = r.capacity();
                        let mut drained = 0;
                        while drained < depth {
                            let n = r.pop_batch(&mut batch);
                            if n == 0 {
                                break;
                            }
                            brain.observe(&batch[..n]);
                            drained += n;
                        }
                        full |= drained >= depth;
                    }
                    // A ring found full at every wake-up means samples are being dropped:
                    // model fewer keys rather than a stream with holes.
                    behind = if full { behind + 1 } else { 0 };
                    if behind >= 4 {
                        behind = 0;
                        brain.coarsen_sampling();
                    }
                    if let Some(meters) = &links {
                        feed_links(&mut brain, meters, &mut seen);
                    }
                    if last_install.elapsed() >= cadence.refresh {
                        brain.refresh();
                    }
                    let installed = if brain.wants_install() {
                        brain.install_with(&mut install)
                    } else {
                        None
                    };
                    if installed.is_some() {
                        last_install = Instant::now();
                    }
                    if let Ok(mut snap) = publish.lock() {
                        snap.knobs = brain.knobs().label();
                        snap.stats.clone_from(brain.stats());
                        if let Some(epoch) = installed {
                            snap.installed = Some((epoch, brain.table().clone()));
                        }
                        snap.links = brain.links();
                        snap.floor_tier = brain.floor_tier();
                    }
                    std::thread::sleep(cadence.period);
                }
                brain
            })?;
        Ok(BrainThread {
            stop,
            handle: Some(handle),
            snapshot,
            heartbeat_ms,
            started,
        })
    }

    /// Whether the thread still runs, and how long since it last woke up.
    pub fn health(&self) -> BrainHealth {
        let beat = Duration::from_millis(self.heartbeat_ms.load(Ordering::Relaxed));
        BrainHealth {
            alive: self.handle.as_ref().is_some_and(|h| !h.is_finished()),
            silent: self.started.elapsed().saturating_sub(beat),
        }
    }

    /// What the brain last published.
    pub fn snapshot(&self) -> Option<BrainSnapshot> {
        self.snapshot.lock().ok().map(|s| s.clone())
    }

    /// Stops the thread and hands the brain back (for its statistics).
    pub fn stop(mut self) -> Option<Brain> {
        self.stop.store(true, Ordering::Release);
        self.handle.take().and_then(|h| h.join().ok())
    }
}

/// Feeds what moved on every fetch route since the last call (`seen` holds the totals read
/// then) into the brain.
fn feed_links(
    brain: &mut Brain,
    meters: &LinkMeters,
    seen: &mut [[LinkTotals; MAX_TIERS]; MAX_TIERS],
) {
    for (src, row) in seen.iter_mut().enumerate() {
        for (dst, last) in row.iter_mut().enumerate().take(src) {
            let now = meters.totals(src, dst);
            let bytes = now.bytes.saturating_sub(last.bytes);
            let nanos = now.nanos.saturating_sub(last.nanos);
            if bytes > 0 && nanos > 0 {
                brain.observe_transfer(src, dst, bytes, nanos as f64 * 1e-9);
                *last = now;
            }
        }
    }
}

impl Drop for BrainThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
