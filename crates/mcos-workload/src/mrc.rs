//! Miss-ratio curves: the block hit ratio of each policy over a range of capacities, in far
//! less work than one replay per capacity.
//!
//! - LRU is exact at every capacity from one pass: LRU has the inclusion property, so an access
//!   hits a cache of `c` blocks exactly when its reuse stack distance (distinct blocks touched
//!   since its last access) is below `c` (Mattson, Gecsei, Slutz and Traiger, "Evaluation
//!   techniques for storage hierarchies", IBM Systems Journal 1970). Distances come from a
//!   Fenwick tree over last-access times (Bennett and Kruskal, 1975): O(N log N) for N accesses.
//! - The other policies (MIN included, the bound) are replayed per capacity on a spatial sample
//!   of the blocks: a block is in the sample when a hash of its id falls below a threshold, so
//!   every access to a sampled block is kept and none of the others, and the cache is scaled by
//!   the sampled share of the blocks (SHARDS: Waldspurger, Park, Garthwaite and Ahmad, "Efficient
//!   MRC construction with SHARDS", FAST 2015), with its adjustment for the sample's access
//!   count. A small cache replays on a denser sample (twice the rate, and again, up to the whole
//!   trace) so its scaled size stays at least [`MIN_SCALED_BLOCKS`]. Each replay costs about
//!   its sample's rate of an exact one; the replays run in parallel on every core. A sample
//!   rate of 1 makes them exact runs. A policy whose state does not scale with a sample
//!   ([`samples_soundly`]: `mcos`, `wtinylfu`) runs exactly. (`mcos` can replay a sample with
//!   its brain's counts of accesses scaled by the rate, [`policy::by_name_sampled`], so that it
//!   steps, decides and forgets at the same points of the trace; it is still too far off its
//!   exact run for a curve.)
//! - The sampling error is stated, not assumed: LRU is also replayed on the same sample through
//!   its one-pass distances, and the largest gap to its exact curve at the computed capacities
//!   is reported ([`SamplingError`]). `tests/mrc.rs` checks every sampled policy against exact
//!   runs on the Mooncake trace.
//!
//! Replays follow the simulator's accounting (`crate::simulate`): each block access counts on
//! its own and `request_done` follows each request, so an exact point equals
//! [`crate::Simulator::run`] at the same capacity.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use serde::Serialize;

use crate::policy::{self, AccessSeq, IdMap};
use crate::simulate::{SimError, TraceStats, replay};
use crate::trace::Request;

/// Policies `mcos mrc` draws when none are named: every baseline of the simulator and the
/// brain, with MIN as the bound (`lru` is the exact one-pass curve).
pub const MRC_DEFAULT_POLICIES: [&str; 7] =
    ["lru", "mcos", "s3fifo", "sieve", "arc", "wtinylfu", "min"];

/// Fewest sampled blocks the automatic sample rate aims for: below this, small caches hold so
/// few sampled blocks that the rounding of their capacity shows in the curve.
pub const MIN_SAMPLED_BLOCKS: u64 = 16_384;

/// Default sample rate for traces large enough to keep [`MIN_SAMPLED_BLOCKS`] at it.
pub const DEFAULT_SAMPLE_RATE: f64 = 0.1;

/// Smallest scaled cache a sampled replay runs at: a capacity whose share of the sample would
/// be smaller replays on a denser sample (twice the rate, up to the whole trace). At 512 a
/// sieve point on the Mooncake trace was 0.0057 off its exact run, at 1,024 0.0051; at 2,048
/// every point of every baseline policy is within 0.0041.
pub const MIN_SCALED_BLOCKS: u64 = 2048;

/// Hash space the sample threshold is taken in (SHARDS' modulus `P`).
const SAMPLE_MODULUS: u64 = 1 << 24;

/// How a curve was computed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum MrcMethod {
    /// LRU stack distances over every access: exact at every capacity.
    StackDistance,
    /// One replay per capacity over every access.
    Exact,
    /// One replay per capacity over a spatial sample of the blocks (denser for small caches:
    /// each point's rate is [`MrcPoint::sample_rate`]).
    Sampled {
        /// Share of the blocks in the sparsest sample (measured, not the nominal threshold).
        rate: f64,
    },
}

/// One capacity of a curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MrcPoint {
    /// Cache capacity in blocks (of the full trace).
    pub capacity_blocks: u64,
    /// `capacity_blocks` over the trace's unique blocks.
    pub capacity_fraction: f64,
    /// Block hits over block accesses.
    pub hit_ratio: f64,
    /// `1 - hit_ratio`.
    pub miss_ratio: f64,
    /// Share of the blocks this point was replayed on (1: every access).
    pub sample_rate: f64,
}

/// One policy's curve.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MrcCurve {
    /// Policy name (as [`crate::POLICY_NAMES`]).
    pub policy: String,
    /// How the points were computed.
    pub method: MrcMethod,
    /// One point per capacity, smallest first.
    pub points: Vec<MrcPoint>,
}

/// The stated error of the sampled curves: LRU replayed on the same sample against its exact
/// curve, at the same capacities.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SamplingError {
    /// Largest absolute hit-ratio gap over the capacities.
    pub lru_max_abs: f64,
    /// Mean absolute hit-ratio gap over the capacities.
    pub lru_mean_abs: f64,
}

/// Every curve of one trace.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MrcReport {
    /// The trace's size.
    pub stats: TraceStats,
    /// Share of the blocks in the sparsest sample (1 when nothing was sampled).
    pub sample_rate: f64,
    /// Distinct blocks in the sparsest sample.
    pub sampled_blocks: u64,
    /// The sampled curves' stated error; `None` when no curve was sampled.
    pub sampling_error: Option<SamplingError>,
    /// One curve per policy, in the order asked.
    pub curves: Vec<MrcCurve>,
}

/// What to compute.
#[derive(Debug, Clone, PartialEq)]
pub struct MrcConfig {
    /// Policies, as [`crate::POLICY_NAMES`]; `lru` is computed exactly by stack distances.
    pub policies: Vec<String>,
    /// Capacities in blocks, any order (sorted and deduplicated).
    pub capacities: Vec<u64>,
    /// Sample rate in (0, 1] for the policies other than LRU; `None` picks
    /// [`auto_sample_rate`].
    pub sample_rate: Option<f64>,
    /// Salt of the sampling hash (another salt draws another sample).
    pub salt: u64,
    /// Worker threads for the per-capacity replays (at least 1).
    pub threads: usize,
}

/// The sample rate used when none is given: [`DEFAULT_SAMPLE_RATE`], raised so that at least
/// [`MIN_SAMPLED_BLOCKS`] blocks are sampled, and 1 (exact runs) for small traces.
pub fn auto_sample_rate(unique_blocks: u64) -> f64 {
    let floor = MIN_SAMPLED_BLOCKS as f64 / unique_blocks.max(1) as f64;
    let rate = DEFAULT_SAMPLE_RATE.max(floor);
    if rate >= 0.5 { 1.0 } else { rate }
}

/// `points` capacities spaced evenly on a log scale from `from` to `to` blocks (both included),
/// deduplicated after rounding to whole blocks, smallest first.
pub fn log_spaced(from: u64, to: u64, points: usize) -> Vec<u64> {
    let (lo, hi) = (from.max(1), to.max(from.max(1)));
    if points <= 1 || lo == hi {
        return vec![hi];
    }
    let (a, b) = ((lo as f64).ln(), (hi as f64).ln());
    let mut out: Vec<u64> = (0..points)
        .map(|i| {
            let x = a + (b - a) * i as f64 / (points - 1) as f64;
            (x.exp().round() as u64).clamp(lo, hi)
        })
        .collect();
    out.dedup();
    out
}

/// Whether block `id` is in the sample of rate `threshold / SAMPLE_MODULUS` under `salt`.
fn sampled(id: u64, salt: u64, threshold: u64) -> bool {
    // SplitMix64's finaliser: a full avalanche, so the sample is uniform over any id layout.
    let mut z = (id ^ salt).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    z % SAMPLE_MODULUS < threshold
}

/// The requests with only the sampled blocks (requests left empty are dropped: they access
/// nothing).
fn sample_requests(requests: &[Request], salt: u64, rate: f64) -> Vec<Request> {
    let threshold = ((rate * SAMPLE_MODULUS as f64).round() as u64).clamp(1, SAMPLE_MODULUS);
    requests
        .iter()
        .filter_map(|r| {
            let ids: Vec<u64> = r
                .hash_ids
                .iter()
                .copied()
                .filter(|&id| sampled(id, salt, threshold))
                .collect();
            (!ids.is_empty()).then(|| Request {
                hash_ids: ids,
                ..r.clone()
            })
        })
        .collect()
}

/// LRU reuse distances of a stream of block accesses in one pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackDistances {
    /// `histogram[d]`: accesses whose block was last touched `d` distinct blocks ago.
    histogram: Vec<u64>,
    /// First accesses (infinite distance: a miss at any capacity).
    cold: u64,
    accesses: u64,
}

impl StackDistances {
    /// Distances of `ids`, accessed in order.
    pub fn of(ids: impl IntoIterator<Item = u64>) -> Self {
        let ids: Vec<u64> = ids.into_iter().collect();
        let n = ids.len();
        // Fenwick tree over access times: a 1 at the time of each block's latest access, so the
        // ones after a block's previous access count the distinct blocks touched since.
        let mut tree = vec![0u32; n + 1];
        let add = |tree: &mut [u32], mut i: usize, v: i32| {
            i += 1;
            while i < tree.len() {
                tree[i] = tree[i].wrapping_add_signed(v);
                i += i & i.wrapping_neg();
            }
        };
        let prefix = |tree: &[u32], mut i: usize| -> u64 {
            // Sum over times [0, i).
            let mut s = 0u64;
            while i > 0 {
                s += u64::from(tree[i]);
                i &= i - 1;
            }
            s
        };
        let mut last: IdMap<usize> = policy::id_map(n / 2 + 1);
        let mut histogram = Vec::new();
        let mut cold = 0;
        for (t, &id) in ids.iter().enumerate() {
            match last.insert(id, t) {
                None => cold += 1,
                Some(p) => {
                    let d = (prefix(&tree, t) - prefix(&tree, p + 1)) as usize;
                    if histogram.len() <= d {
                        histogram.resize(d + 1, 0);
                    }
                    histogram[d] += 1;
                    add(&mut tree, p, -1);
                }
            }
            add(&mut tree, t, 1);
        }
        Self {
            histogram,
            cold,
            accesses: n as u64,
        }
    }

    /// Accesses that hit an LRU cache of `capacity` blocks.
    pub fn hits(&self, capacity: u64) -> u64 {
        let c = usize::try_from(capacity)
            .unwrap_or(usize::MAX)
            .min(self.histogram.len());
        self.histogram[..c].iter().sum()
    }

    /// Hit ratios at every capacity of `sorted` (ascending), in one sweep of the histogram.
    fn hit_ratios(&self, sorted: &[u64]) -> Vec<f64> {
        let mut out = Vec::with_capacity(sorted.len());
        let (mut d, mut hits) = (0usize, 0u64);
        for &c in sorted {
            while (d as u64) < c && d < self.histogram.len() {
                hits += self.histogram[d];
                d += 1;
            }
            out.push(ratio(hits, self.accesses));
        }
        out
    }

    /// Accesses in the stream.
    pub fn accesses(&self) -> u64 {
        self.accesses
    }

    /// First accesses to a block.
    pub fn cold_misses(&self) -> u64 {
        self.cold
    }
}

/// A sampled replay's hit ratio with SHARDS' adjustment (Waldspurger et al. 2015, section
/// 3.3): the misses are weighed against the accesses a sample of this rate holds on average
/// rather than the ones this sample drew. Whether a few very hot blocks (a shared system
/// prompt's) fall in the sample moves the access count a lot and the miss count hardly at all,
/// since those blocks hit at almost any capacity. Exact when nothing was sampled.
fn adjusted_hit_ratio(hits: u64, accesses: u64, expected_accesses: f64) -> f64 {
    if accesses as f64 == expected_accesses {
        return ratio(hits, accesses);
    }
    if expected_accesses <= 0.0 {
        return 0.0;
    }
    let misses = accesses.saturating_sub(hits) as f64;
    (1.0 - misses / expected_accesses).clamp(0.0, 1.0)
}

/// The capacity a sampled replay runs at for a full-trace capacity of `blocks`.
fn scaled(blocks: u64, rate: f64) -> u64 {
    ((blocks as f64 * rate).round() as u64).max(1)
}

/// Computes the curves of `cfg.policies` over `requests`. `progress(done, total)` is called
/// after each replay (from worker threads).
pub fn miss_ratio_curves(
    requests: &[Request],
    block_tokens: u32,
    cfg: &MrcConfig,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<MrcReport, SimError> {
    let stats = TraceStats::of_requests(requests, block_tokens)?;
    stats.check_usable()?;
    for p in &cfg.policies {
        if !policy::POLICY_NAMES.contains(&p.as_str()) {
            return Err(policy::PolicyError::Unknown { name: p.clone() }.into());
        }
    }
    let mut capacities = cfg.capacities.clone();
    capacities.sort_unstable();
    capacities.dedup();
    if capacities.first() == Some(&0) || capacities.is_empty() {
        return Err(SimError::InvalidCapacity(
            "a miss-ratio curve needs capacities of at least 1 block".into(),
        ));
    }
    let nominal = cfg
        .sample_rate
        .unwrap_or_else(|| auto_sample_rate(stats.unique_blocks));
    if !(nominal > 0.0 && nominal <= 1.0) {
        return Err(SimError::InvalidCapacity(format!(
            "sample rate {nominal}: give a share of the blocks in (0, 1], such as 0.1"
        )));
    }
    let fraction = |c: u64| ratio(c, stats.unique_blocks);
    let point = |c: u64, hit_ratio: f64, sample_rate: f64| MrcPoint {
        capacity_blocks: c,
        sample_rate,
        capacity_fraction: fraction(c),
        hit_ratio,
        miss_ratio: 1.0 - hit_ratio,
    };

    let all_ids = || requests.iter().flat_map(|r| r.hash_ids.iter().copied());
    let exact_lru = StackDistances::of(all_ids()).hit_ratios(&capacities);

    let replayed: Vec<&str> = cfg
        .policies
        .iter()
        .map(String::as_str)
        .filter(|p| *p != "lru")
        .collect();
    let sampling = nominal < 1.0 && replayed.iter().any(|p| samples_soundly(p));
    // The sample ladder: the nominal rate, doubled until 1 (the whole trace, level 0 below).
    // A capacity replays on the sparsest sample that still gives its scaled cache at least
    // MIN_SCALED_BLOCKS blocks: a cache of a few dozen sampled blocks rounds too coarsely.
    let mut ladder = vec![1.0];
    if sampling {
        let mut r = nominal;
        while r < 0.75 {
            ladder.push(r);
            r *= 2.0;
        }
        ladder[1..].reverse();
    }
    let mut streams = vec![Stream {
        requests: std::borrow::Cow::Borrowed(requests),
        rate: 1.0,
        expected_accesses: stats.block_accesses as f64,
        future: OnceLock::new(),
    }];
    for &nominal_rate in &ladder[1..] {
        let s = sample_requests(requests, cfg.salt, nominal_rate);
        let sampled_stats = TraceStats::of_requests(&s, block_tokens)?;
        if sampled_stats.block_accesses == 0 {
            return Err(SimError::Unusable(format!(
                "a sample at rate {nominal_rate} holds no block of this trace; raise --sample-rate"
            )));
        }
        let rate = ratio(sampled_stats.unique_blocks, stats.unique_blocks);
        streams.push(Stream {
            requests: std::borrow::Cow::Owned(s),
            rate,
            // The accesses a sample of this share of the blocks holds on average: hot blocks
            // make the sample's own count swing far from it (SHARDS' adjustment, below).
            expected_accesses: stats.block_accesses as f64 * rate,
            future: OnceLock::new(),
        });
    }
    // Level per capacity: the sparsest stream (last) whose scaled cache is large enough.
    let level = |c: u64| {
        (1..streams.len())
            .rev()
            .find(|&l| scaled(c, streams[l].rate) >= MIN_SCALED_BLOCKS)
            .unwrap_or(0)
    };
    let stream_of = |p: &str, c: usize| {
        if samples_soundly(p) {
            &streams[level(capacities[c])]
        } else {
            &streams[0]
        }
    };
    let sparsest = &streams[streams.len() - 1];
    let (rate, sampled_blocks) = (
        sparsest.rate,
        (sparsest.rate * stats.unique_blocks as f64).round() as u64,
    );
    let sampling_error = sampling.then(|| {
        let lru_of: Vec<StackDistances> = streams
            .iter()
            .map(|st| {
                StackDistances::of(st.requests.iter().flat_map(|r| r.hash_ids.iter().copied()))
            })
            .collect();
        let gaps: Vec<f64> = capacities
            .iter()
            .zip(&exact_lru)
            .map(|(&c, &exact)| {
                let l = level(c);
                let (st, sd) = (&streams[l], &lru_of[l]);
                let hits = sd.hits(scaled(c, st.rate));
                (adjusted_hit_ratio(hits, sd.accesses(), st.expected_accesses) - exact).abs()
            })
            .collect();
        SamplingError {
            lru_max_abs: gaps.iter().copied().fold(0.0, f64::max),
            lru_mean_abs: gaps.iter().sum::<f64>() / gaps.len() as f64,
        }
    });

    for p in &replayed {
        for c in 0..capacities.len() {
            let st = stream_of(p, c);
            if policy::needs_future(p) {
                st.future
                    .get_or_init(|| AccessSeq::from_requests(st.requests.iter()));
            }
        }
    }
    // Every (policy, capacity) replay, the costliest first (exact runs, denser samples) so the
    // slow ones start early.
    let mut jobs: Vec<(usize, usize)> = (0..replayed.len())
        .flat_map(|p| (0..capacities.len()).rev().map(move |c| (p, c)))
        .collect();
    jobs.sort_by(|&(p, c), &(q, d)| {
        stream_of(replayed[q], d)
            .rate
            .total_cmp(&stream_of(replayed[p], c).rate)
    });
    let results = Mutex::new(vec![vec![(0.0, 1.0); capacities.len()]; replayed.len()]);
    let first_error: Mutex<Option<SimError>> = Mutex::new(None);
    let (next, done) = (AtomicUsize::new(0), AtomicUsize::new(0));
    std::thread::scope(|s| {
        for _ in 0..cfg.threads.clamp(1, jobs.len().max(1)) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&(p, c)) = jobs.get(i) else { break };
                    let st = stream_of(replayed[p], c);
                    match st.hit_ratio(replayed[p], capacities[c], block_tokens) {
                        Ok(hr) => {
                            if let Ok(mut r) = results.lock() {
                                r[p][c] = (hr, st.rate);
                            }
                        }
                        Err(e) => {
                            if let Ok(mut slot) = first_error.lock() {
                                slot.get_or_insert(e);
                            }
                            break;
                        }
                    }
                    progress(done.fetch_add(1, Ordering::Relaxed) + 1, jobs.len());
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().ok().flatten() {
        return Err(e);
    }
    let results = results
        .into_inner()
        .map_err(|_| SimError::Unusable("a replay thread panicked".into()))?;
    let curves = cfg
        .policies
        .iter()
        .map(|name| {
            let (method, points) = match replayed.iter().position(|p| p == name) {
                Some(i) if samples_soundly(name) && sampling => {
                    (MrcMethod::Sampled { rate }, results[i].clone())
                }
                Some(i) => (MrcMethod::Exact, results[i].clone()),
                None => (
                    MrcMethod::StackDistance,
                    exact_lru.iter().map(|&h| (h, 1.0)).collect(),
                ),
            };
            MrcCurve {
                policy: name.clone(),
                method,
                points: capacities
                    .iter()
                    .zip(points)
                    .map(|(&c, (h, r))| point(c, h, r))
                    .collect(),
            }
        })
        .collect();
    Ok(MrcReport {
        stats,
        sample_rate: rate,
        sampled_blocks,
        sampling_error,
        curves,
    })
}

/// Whether a policy's curve survives spatial sampling. Not `wtinylfu`: its hit ratio turns on
/// how blocks collide in its frequency sketch, which a sample does not reproduce. With the
/// sketch and the window scaled from the full cache (rows of `rate * 4 * next_pow2(capacity)`
/// counters, halving every `rate * 10 * capacity` accesses) it stayed 0.006 above its exact
/// runs at rates 0.1 to 0.4 on the Mooncake trace, and the exact run itself moves by up to
/// 0.0046 when only the sketch's hash layout changes; at a power-of-two rate (1/8, where the
/// scaled sketch has exactly the full one's counters per sampled block) with its halving period
/// scaled by the sample's share of the accesses rather than of the blocks, it was still up to
/// 0.0088 above, six of 50 points over 0.005. It runs exactly (it is cheap). Not
/// `mcos`: even with its brain's cadence scaled by the rate ([`policy::McosPolicy::sampled`])
/// its switches follow a different path on a sample, up to 0.0099 off its exact run on the
/// Mooncake trace (BENCHMARKS.md), and its brain's work shrinks far less than the sample, so
/// it runs exactly: a curve is only worth drawing if it is the policy's curve. Its brain is
/// 83-89 % of an exact run's time, and its decisions follow from the accesses it samples alone:
/// a replay that keeps them must feed it the same sample and pays that share in full.
pub fn samples_soundly(policy: &str) -> bool {
    !matches!(policy, "mcos" | "wtinylfu")
}

/// Requests one group of replays runs on.
struct Stream<'a> {
    requests: std::borrow::Cow<'a, [Request]>,
    /// Share of the trace's blocks in `requests` (1: the whole trace).
    rate: f64,
    expected_accesses: f64,
    /// MIN's future, built once before the replays.
    future: OnceLock<AccessSeq>,
}

impl Stream<'_> {
    fn hit_ratio(&self, name: &str, capacity: u64, block_tokens: u32) -> Result<f64, SimError> {
        let cap = scaled(capacity, self.rate);
        let cap = usize::try_from(cap)
            .map_err(|_| SimError::InvalidCapacity(format!("{cap} blocks does not fit")))?;
        let full = usize::try_from(capacity).unwrap_or(usize::MAX);
        let mut pol = policy::by_name_sampled(name, cap, self.future.get(), full, self.rate)?;
        let counts = replay(self.requests.iter(), pol.as_mut(), block_tokens);
        Ok(adjusted_hit_ratio(
            counts.block_hits,
            counts.block_accesses,
            self.expected_accesses,
        ))
    }
}

fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::CachePolicy;

    fn req(ids: &[u64]) -> Request {
        Request {
            timestamp_ms: 0,
            input_length: 512 * ids.len() as u32,
            output_length: 1,
            hash_ids: ids.to_vec(),
        }
    }

    /// A skewed stream with reuse at every distance: a small hot set and a long cold tail.
    fn stream() -> Vec<Request> {
        let mut x: u64 = 7;
        (0..2_000)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let root = if x >> 62 == 0 {
                    (x >> 20) % 5
                } else {
                    (x >> 20) % 400
                };
                let len = 1 + (x >> 40) % 8;
                req(&(0..len).map(|k| root * 100 + k).collect::<Vec<_>>())
            })
            .collect()
    }

    #[test]
    fn stack_distances_equal_list_lru_at_every_capacity() {
        let reqs = stream();
        let sd = StackDistances::of(reqs.iter().flat_map(|r| r.hash_ids.iter().copied()));
        for cap in [1u64, 2, 3, 7, 50, 333, 1000, 5000] {
            let mut lru = policy::Lru::new(cap as usize);
            let counts = replay(&reqs, &mut lru as &mut dyn CachePolicy, 512);
            assert_eq!(sd.hits(cap), counts.block_hits, "capacity {cap}");
        }
        assert_eq!(
            sd.accesses(),
            reqs.iter().map(|r| r.hash_ids.len() as u64).sum::<u64>()
        );
    }

    #[test]
    fn exact_runs_equal_the_simulator() {
        let reqs = stream();
        let sim = crate::Simulator::from_requests(reqs.clone(), 512).unwrap();
        let cfg = MrcConfig {
            policies: vec!["lru".into(), "s3fifo".into(), "min".into()],
            capacities: vec![40, 8, 300],
            sample_rate: Some(1.0),
            salt: 0,
            threads: 2,
        };
        let calls = AtomicUsize::new(0);
        let report = miss_ratio_curves(&reqs, 512, &cfg, &|_, _| {
            calls.fetch_add(1, Ordering::Relaxed);
        })
        .unwrap();
        assert_eq!(calls.into_inner(), 6, "one progress call per replay");
        assert!(report.sampling_error.is_none());
        for curve in &report.curves {
            let caps: Vec<u64> = curve.points.iter().map(|p| p.capacity_blocks).collect();
            assert_eq!(caps, [8, 40, 300], "sorted");
            for p in &curve.points {
                let r = sim
                    .run(&curve.policy, crate::Capacity::Blocks(p.capacity_blocks))
                    .unwrap();
                assert_eq!(
                    p.hit_ratio, r.block_hit_ratio,
                    "{} at {}",
                    curve.policy, p.capacity_blocks
                );
                assert!((p.hit_ratio + p.miss_ratio - 1.0).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn sampling_keeps_every_access_of_a_sampled_block() {
        let reqs = stream();
        let s = sample_requests(&reqs, 3, 0.25);
        let kept: std::collections::HashSet<u64> =
            s.iter().flat_map(|r| r.hash_ids.iter().copied()).collect();
        let all: Vec<u64> = reqs
            .iter()
            .flat_map(|r| r.hash_ids.iter().copied())
            .collect();
        let expect = all.iter().filter(|id| kept.contains(id)).count();
        assert_eq!(s.iter().map(|r| r.hash_ids.len()).sum::<usize>(), expect);
        let unique: std::collections::HashSet<u64> = all.iter().copied().collect();
        let share = kept.len() as f64 / unique.len() as f64;
        assert!((share - 0.25).abs() < 0.06, "sampled share {share}");
    }

    #[test]
    fn a_sampled_brain_keeps_its_cadence_over_the_trace() {
        let reqs: Vec<Request> = (0..6).flat_map(|_| stream()).collect();
        let accesses = |r: &[Request]| r.iter().map(|q| q.hash_ids.len()).sum::<usize>();
        let mut full = policy::McosPolicy::new(400);
        let a = replay(&reqs, &mut full as &mut dyn CachePolicy, 512);
        // A rate of 1 is the unsampled policy, access for access.
        let mut same = policy::McosPolicy::sampled(400, 400, 1.0);
        let b = replay(&reqs, &mut same as &mut dyn CachePolicy, 512);
        assert_eq!(a, b);
        let s = sample_requests(&reqs, 1, 0.25);
        let share = accesses(&s) as f64 / accesses(&reqs) as f64;
        let mut sampled = policy::McosPolicy::sampled(100, 400, 0.25);
        replay(&s, &mut sampled as &mut dyn CachePolicy, 512);
        let mut unscaled = policy::McosPolicy::new(100);
        replay(&s, &mut unscaled as &mut dyn CachePolicy, 512);
        let decisions = |p: &policy::McosPolicy| p.brain().stats().decisions as f64;
        // Decisions per access of the whole trace: as many as the full run's (up to the
        // sample's share of the accesses), where the unscaled brain makes a quarter of them.
        let (f, d, u) = (decisions(&full), decisions(&sampled), decisions(&unscaled));
        assert!(f >= 20.0, "{f} decisions");
        assert!(
            (d * 0.25 / share / f - 1.0).abs() < 0.2,
            "{d} against {f} (share {share})"
        );
        assert!(u < 0.5 * d, "{u} unscaled against {d}");
    }

    #[test]
    fn bad_configs_are_errors() {
        let reqs = stream();
        let mut cfg = MrcConfig {
            policies: vec!["nope".into()],
            capacities: vec![10],
            sample_rate: None,
            salt: 0,
            threads: 1,
        };
        let none = |_: usize, _: usize| {};
        assert!(matches!(
            miss_ratio_curves(&reqs, 512, &cfg, &none),
            Err(SimError::Policy(_))
        ));
        cfg.policies = vec!["sieve".into()];
        cfg.sample_rate = Some(1.5);
        assert!(miss_ratio_curves(&reqs, 512, &cfg, &none).is_err());
        cfg.sample_rate = None;
        cfg.capacities = vec![0, 5];
        assert!(miss_ratio_curves(&reqs, 512, &cfg, &none).is_err());
        assert!(miss_ratio_curves(&[], 512, &cfg, &none).is_err());
    }

    #[test]
    fn log_spacing() {
        assert_eq!(log_spaced(1, 1000, 4), [1, 10, 100, 1000]);
        assert_eq!(log_spaced(5, 5, 10), [5]);
        let v = log_spaced(1, 10, 50);
        assert!(v.windows(2).all(|w| w[0] < w[1]) && v[0] == 1 && v[v.len() - 1] == 10);
        assert_eq!(auto_sample_rate(100), 1.0);
        assert_eq!(auto_sample_rate(10_000_000), DEFAULT_SAMPLE_RATE);
    }
}
