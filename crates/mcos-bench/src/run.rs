//! The three ways of running the same decisions, and the brain that churns the policy.
//!
//! - [`fast_path`]: one thread per shard, pinned to its own core, executing its stream's
//!   decisions directly, in batches of `batch`. Each batch is timed with two clock reads; one
//!   batch in `sample_every` is instead timed per decision (the sampled per-event histogram)
//!   and left out of the batch figures, so the per-event clock reads never inflate them.
//!   The ops of upcoming decisions are known (they sit in the shard's queue), so the thread
//!   starts their memory reads early, in two stages as a pipeline would: the directory buckets
//!   of the op `2 x prefetch_ahead` positions ahead, and the frame entry of the op
//!   `prefetch_ahead` ahead (whose buckets have arrived by then).
//! - [`round_trip`]: the software way. The shard moves onto a policy thread; the caller sends
//!   each decision over a bounded channel and blocks until the answer comes back, optionally
//!   with one real system call per decision on the policy thread (a driver crossing).
//! - [`Brain`]: installs a new policy table every `interval` while churn is on, and measures
//!   commit-to-effect: from the start of the install until every shard has begun an event under
//!   the new epoch (`PolicyInstaller::all_seen`).

use crate::clock::Clock;
use crate::decide::{Decider, Outcome};
use crate::histogram::Histogram;
use crate::probe::{Probe, ThreadCounts};
use crate::stream::{MAX_OPS_PER_DECISION, Op, OpKind, Stream};
use mcos_core::{BlockKey, PolicyInstaller, PolicyTable};
use mcos_fastpath::Counters;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;
use std::time::{Duration, Instant};

/// Ops generated per refill of the untimed phases' queues.
pub const CHUNK_OPS: usize = 1 << 12;

/// Ops a fast-path shard's queue holds. Small: the shard takes no event while its queue is
/// refilled on its own thread, and a table installed meanwhile takes effect only at the next
/// event (a refill of about 300 ops takes some 20 us).
pub const QUEUE_OPS: usize = 512;

/// How the fast-path loop runs.
#[derive(Copy, Clone, Debug, serde::Serialize)]
pub struct LoopConfig {
    /// Decisions per timed batch.
    pub batch: u64,
    /// One batch in this many is timed per decision instead.
    pub sample_every: u64,
    /// Ops ahead of the current one whose frame entry is prefetched; directory buckets are
    /// prefetched twice as far ahead (0: no prefetch).
    pub prefetch_ahead: usize,
}

/// Timings of one mode (churn off or on) of one shard.
#[derive(Clone, Debug, Default)]
pub struct Timed {
    /// Per-decision latency of each batch (batch time / decisions), weighted by decisions.
    pub batch: Histogram,
    /// Sampled per-decision latencies (each includes one clock read).
    pub event: Histogram,
    /// The same samples split by kind of decision: [hit, miss, sequence read (an access with
    /// a sequence hint, after its declares)].
    pub by_kind: [Histogram; 3],
    /// Decisions in the batch figures.
    pub decisions: u64,
    /// Nanoseconds spent in those batches.
    pub busy_ns: u64,
}

impl Timed {
    /// Decisions per second of busy time.
    pub fn rate(&self) -> f64 {
        if self.busy_ns == 0 {
            0.0
        } else {
            self.decisions as f64 * 1e9 / self.busy_ns as f64
        }
    }

    /// Adds another shard's figures (rates add up when shards run side by side).
    pub fn merge(&mut self, o: &Timed) {
        self.batch.merge(&o.batch);
        self.event.merge(&o.event);
        for (a, b) in self.by_kind.iter_mut().zip(o.by_kind.iter()) {
            a.merge(b);
        }
        self.decisions += o.decisions;
        self.busy_ns += o.busy_ns;
    }
}

/// What one fast-path shard thread measured.
pub struct ShardRun<S> {
    /// Timings with churn off ([0]) and on ([1]).
    pub modes: [Timed; 2],
    /// System calls, context switches and allocations over the whole timed window.
    pub counts: ThreadCounts,
    /// Why system calls were not counted, if they were not.
    pub syscall_error: Option<String>,
    /// Shard counters over the timed window.
    pub counters: Counters,
    /// Wall time of the timed window (including queue refills).
    pub wall_ns: u64,
    /// The shard, for the next phase.
    pub decider: Decider,
    /// The stream, for the next phase.
    pub stream: S,
}

/// Pins the calling thread to `cpu` (best effort: a refusal leaves it unpinned).
pub fn pin_to(cpu: usize) -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET writes inside it; the call
        // reads it for the calling thread (pid 0).
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = cpu;
        false
    }
}

/// Runs until `decisions` decisions are timed, taking ops from `stream`. `churn` says which
/// mode the current batch counts under.
pub fn fast_path<S: Stream>(
    mut decider: Decider,
    mut stream: S,
    decisions: u64,
    cfg: &LoopConfig,
    clock: &Clock,
    churn: &AtomicBool,
) -> ShardRun<S> {
    let mut modes = [Timed::default(), Timed::default()];
    let mut probe = Probe::new();
    let before = decider.counters();
    let batch = cfg.batch.max(1);
    let sample_every = cfg.sample_every.max(1);
    let ahead = cfg.prefetch_ahead;
    // The shard's queue, a sliding window refilled (untimed) whenever it holds less than a
    // batch and its lookahead, so every batch finds the ops it prefetches for already queued.
    let reserve = batch as usize * MAX_OPS_PER_DECISION + 2 * ahead;
    let mut buf = vec![Op::access(BlockKey(1), 0); QUEUE_OPS.max(2 * reserve)].into_boxed_slice();
    let (mut head, mut tail) = (0usize, 0usize);
    let mut exhausted = false;
    let mut done = 0u64;
    let mut batch_no = 0u64;
    let wall0 = clock.now();
    probe.start();
    while done < decisions {
        if tail - head < reserve && !exhausted {
            buf.copy_within(head..tail, 0);
            tail -= head;
            head = 0;
            let n = stream.fill(&mut buf[tail..]);
            exhausted = n == 0;
            tail += n;
        }
        if head == tail {
            break;
        }
        let ops = &buf[..tail];
        {
            let t = &mut modes[usize::from(churn.load(Ordering::Relaxed))];
            let sampled = batch_no.is_multiple_of(sample_every);
            batch_no += 1;
            let start = clock.now();
            let mut last = start;
            let mut k = 0u64;
            let mut i = head;
            while k < batch && i < tail {
                if ahead > 0 && i + 2 * ahead < tail {
                    decider.prefetch(&ops[i + 2 * ahead]);
                    decider.prefetch_block(&ops[i + ahead]);
                }
                if let Some(outcome) = decider.apply(&ops[i]) {
                    k += 1;
                    if sampled {
                        let now = clock.now();
                        let ns = clock.ns(now - last);
                        t.event.record(ns);
                        let kind = match (ops[i].hint().is_some(), outcome) {
                            (true, _) => 2,
                            (false, Outcome::Hit) => 0,
                            (false, Outcome::Miss) => 1,
                        };
                        t.by_kind[kind].record(ns);
                        last = now;
                    }
                }
                i += 1;
            }
            head = i;
            let end = clock.now();
            done += k;
            if !sampled && k > 0 {
                let ns = clock.ns(end - start);
                t.batch.record_n(ns / k, k);
                t.decisions += k;
                t.busy_ns += ns;
            }
        }
    }
    let counts = probe.stop();
    let wall_ns = clock.ns(clock.now() - wall0);
    let after = decider.counters();
    ShardRun {
        modes,
        counts,
        syscall_error: probe.syscall_error().map(str::to_owned),
        counters: counters_delta(&before, &after),
        wall_ns,
        decider,
        stream,
    }
}

/// Counters accumulated between two snapshots.
pub fn counters_delta(before: &Counters, after: &Counters) -> Counters {
    after.since(before)
}

/// Executes decisions untimed until `until` says stop (warm-up), at most `max` decisions.
pub fn warm<S: Stream>(
    decider: &mut Decider,
    stream: &mut S,
    max: u64,
    mut until: impl FnMut(&S) -> bool,
) -> u64 {
    let mut buf = vec![Op::access(BlockKey(1), 0); CHUNK_OPS];
    let mut done = 0;
    while done < max && !until(stream) {
        let n = stream.fill(&mut buf);
        if n == 0 {
            break;
        }
        for op in &buf[..n] {
            if decider.apply(op).is_some() {
                done += 1;
            }
        }
    }
    done
}

/// One decision as a message: its ops, by value.
#[derive(Copy, Clone)]
struct Request {
    ops: [Op; MAX_OPS_PER_DECISION],
    len: usize,
}

/// What the round-trip mode measured.
#[derive(Clone, Debug)]
pub struct RoundTripRun {
    /// Latency of each decision as the caller saw it (send to answer).
    pub latency: Histogram,
    /// Decisions timed.
    pub decisions: u64,
    /// Wall time of the timed decisions.
    pub wall_ns: u64,
    /// The caller thread's counts over the timed window.
    pub caller: ThreadCounts,
    /// The policy thread's counts over the timed window.
    pub policy: ThreadCounts,
    /// Hits among the timed decisions.
    pub hits: u64,
}

/// Runs `decisions` decisions the software way: the shard on a policy thread, each decision a
/// request over a bounded channel and a blocking wait for the answer; with `syscall`, the
/// policy thread makes one real system call (`getppid`) per decision before answering. The
/// first `warmup` decisions are not timed. Returns the shard and stream for the next phase.
pub fn round_trip<S: Stream>(
    decider: Decider,
    stream: &mut S,
    decisions: u64,
    warmup: u64,
    syscall: bool,
    clock: &Clock,
) -> Result<(RoundTripRun, Decider), String> {
    let (req_tx, req_rx) = sync_channel::<Option<Request>>(1);
    let (resp_tx, resp_rx) = sync_channel::<(Outcome, Option<ThreadCounts>)>(1);
    let policy = std::thread::Builder::new()
        .name("mcos-policy".into())
        .spawn(move || {
            let mut decider = decider;
            let mut probe = Probe::new();
            // `None` marks the start of the timed window.
            while let Ok(msg) = req_rx.recv() {
                let Some(req) = msg else {
                    probe.start();
                    continue;
                };
                let outcome = decider.decide(&req.ops[..req.len]).unwrap_or(Outcome::Miss);
                if syscall {
                    // SAFETY: getppid takes no arguments and cannot fail; it stands in for
                    // the driver crossing of a software memory manager.
                    unsafe { libc::syscall(libc::SYS_getppid) };
                }
                if resp_tx.send((outcome, None)).is_err() {
                    break;
                }
            }
            let counts = probe.stop();
            let _ = resp_tx.send((Outcome::Miss, Some(counts)));
            decider
        })
        .map_err(|e| format!("cannot start the policy thread: {e}"))?;

    let mut buf = vec![Op::access(BlockKey(1), 0); CHUNK_OPS];
    let mut latency = Histogram::new();
    let mut probe = Probe::new();
    let (mut done, mut hits) = (0u64, 0u64);
    let mut wall0 = clock.now();
    let total = decisions + warmup;
    let mut req = Request {
        ops: [Op::access(BlockKey(1), 0); MAX_OPS_PER_DECISION],
        len: 0,
    };
    let mut failed = None;
    'outer: while done < total {
        let n = stream.fill(&mut buf);
        if n == 0 {
            break;
        }
        for op in &buf[..n] {
            req.ops[req.len] = *op;
            req.len += 1;
            if op.kind != OpKind::Access {
                continue;
            }
            if done == warmup {
                if req_tx.send(None).is_err() {
                    failed = Some("the policy thread stopped");
                    break 'outer;
                }
                probe.start();
                wall0 = clock.now();
            }
            let t0 = clock.now();
            if req_tx.send(Some(req)).is_err() {
                failed = Some("the policy thread stopped");
                break 'outer;
            }
            let Ok((outcome, _)) = resp_rx.recv() else {
                failed = Some("the policy thread stopped answering");
                break 'outer;
            };
            let t1 = clock.now();
            if done >= warmup {
                latency.record(clock.ns(t1 - t0));
                hits += u64::from(outcome == Outcome::Hit);
            }
            done += 1;
            req.len = 0;
            if done == total {
                break 'outer;
            }
        }
    }
    let caller = probe.stop();
    let wall_ns = clock.ns(clock.now() - wall0);
    drop(req_tx);
    let policy_counts = resp_rx.recv().ok().and_then(|(_, c)| c).unwrap_or_default();
    let decider = policy
        .join()
        .map_err(|_| "the policy thread panicked".to_string())?;
    if let Some(why) = failed {
        return Err(why.into());
    }
    Ok((
        RoundTripRun {
            latency,
            decisions: done.saturating_sub(warmup),
            wall_ns,
            caller,
            policy: policy_counts,
            hits,
        },
        decider,
    ))
}

/// What the brain measured while churning.
#[derive(Clone, Debug, Default)]
pub struct BrainRun {
    /// Tables installed.
    pub installs: u64,
    /// Installs refused because a shard had not yet seen the previous epoch.
    pub refused: u64,
    /// Install start to every shard running on the new epoch.
    pub commit_to_effect: Histogram,
    /// Installs whose effect was not seen within the wait bound (counted, not in the histogram).
    pub unseen: u64,
}

/// The policy churner: alternates churn off and on every `segment`; while on, installs a new
/// table every `interval`.
pub struct Brain {
    /// Between installs.
    pub interval: Duration,
    /// Length of each churn-off and churn-on segment.
    pub segment: Duration,
}

/// Longest the brain waits for every shard to pick up a table before counting it unseen.
const EFFECT_WAIT: Duration = Duration::from_millis(100);

impl Brain {
    /// Runs until `stop`; `churn` tells the shards which mode they are in.
    pub fn run(
        &self,
        mut installer: PolicyInstaller,
        table: &PolicyTable,
        clock: &Clock,
        churn: &AtomicBool,
        stop: &AtomicBool,
    ) -> (BrainRun, PolicyInstaller) {
        let mut out = BrainRun::default();
        let mut tables = [table.clone(), table.clone()];
        let mut version = table.version;
        let started = Instant::now();
        let mut next = started;
        while !stop.load(Ordering::Relaxed) {
            let on = (started.elapsed().as_nanos() / self.segment.as_nanos().max(1)) % 2 == 1;
            churn.store(on, Ordering::Relaxed);
            if on {
                // A new table: same decisions, new version and entry versions, so the shards
                // pay the install's real costs (bank switch, reread entries) without a change
                // of policy skewing the comparison.
                version = version.wrapping_add(1);
                let t = &mut tables[(version % 2) as usize];
                t.version = version;
                for c in t.classes.iter_mut() {
                    c.entry_version = version as u16;
                }
                let t0 = clock.now();
                match installer.try_install(t) {
                    Ok(_) => {
                        out.installs += 1;
                        let waited = Instant::now();
                        let mut spins = 0u32;
                        loop {
                            if installer.all_seen() {
                                out.commit_to_effect.record(clock.ns(clock.now() - t0));
                                break;
                            }
                            if stop.load(Ordering::Relaxed) {
                                // The shards finished first: nothing left to take effect on.
                                out.installs -= 1;
                                break;
                            }
                            if waited.elapsed() > EFFECT_WAIT {
                                out.unseen += 1;
                                break;
                            }
                            spins += 1;
                            if spins < 4096 {
                                std::hint::spin_loop();
                            } else {
                                // A shard sharing this core needs it back to see the table.
                                std::thread::yield_now();
                            }
                        }
                    }
                    Err(_) => out.refused += 1,
                }
            }
            next += self.interval;
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            } else {
                next = now;
            }
        }
        churn.store(false, Ordering::Relaxed);
        (out, installer)
    }
}
