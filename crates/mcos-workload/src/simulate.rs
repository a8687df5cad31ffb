//! Capacity-sweep simulator: replays every block access of a trace against a baseline policy.
//!
//! Accounting (the one that reproduces the Mooncake reference table, see
//! `tests/mooncake_reference.rs`): blocks have equal size; each block access of each request, in
//! prompt order, is one [`CachePolicy::access`] and counts as a hit or a miss on its own; a miss is
//! inserted (MIN may bypass); after a request's blocks, [`CachePolicy::request_done`] is called.
//! The block hit ratio is hits over accesses. The token hit ratio weighs each block by its tokens
//! (`block_tokens`, the last block of a prompt partial) over all prompt tokens the blocks cover. The
//! prefix hit ratio counts a request's hits only up to its first miss, which is what a prefix cache
//! (vLLM, SGLang) can reuse; on the Mooncake conversation trace it equals the block hit ratio for
//! LRU and MIN, because a block's prefix is always accessed just before it.
//!
//! Capacity is a number of blocks, or a fraction of the trace's unique blocks (rounded, at least 1).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::Serialize;
use thiserror::Error;

use crate::policy::{self, AccessSeq, CachePolicy, IdMap, PolicyError};
use crate::trace::{Request, TraceError, TraceReader};

/// How big a cache or tier is. Written (see [`Capacity::parse`]) as a percentage of the trace's
/// unique blocks (`5%`), a plain fraction strictly between 0 and 1 (`0.05`, the same), a block
/// count (`1828`) or a byte size with a unit (`128MiB`, `1GiB`, `500MB`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Capacity {
    /// A fraction of the trace's unique blocks (must be positive; above 1 is allowed).
    Fraction(f64),
    /// An absolute number of blocks (at least 1).
    Blocks(u64),
    /// Bytes of payload: converted to blocks with the block size ([`Capacity::in_blocks_of`]).
    Bytes(u64),
}

/// Byte units [`Capacity::parse`] accepts (case-insensitive), with their multipliers.
const BYTE_UNITS: [(&str, u64); 9] = [
    ("kib", 1 << 10),
    ("mib", 1 << 20),
    ("gib", 1 << 30),
    ("tib", 1 << 40),
    ("kb", 1_000),
    ("mb", 1_000_000),
    ("gb", 1_000_000_000),
    ("tb", 1_000_000_000_000),
    ("b", 1),
];

/// How to write a capacity, for error messages.
pub const CAPACITY_SYNTAX: &str = "a capacity is a percentage of the unique blocks (5%), a \
     fraction strictly between 0 and 1 (0.05), a block count (1828) or a size with a unit \
     (128MiB, 1GiB)";

impl Capacity {
    /// Parses one capacity. Refused, with what to write instead: 0, negative numbers, NaN,
    /// percentages outside (0, 100], and decimals of 1 or more (`1.0` and `2.5` were read as
    /// 100 % and 250 % though `1` is one block: ambiguous, so `100%` or `2` must be written).
    pub fn parse(text: &str) -> Result<Capacity, String> {
        let s = text.trim();
        let refuse = |why: &str| Err(format!("capacity `{s}` {why} ({CAPACITY_SYNTAX})"));
        if s.starts_with('-') {
            return refuse("must be positive");
        }
        if let Some(p) = s.strip_suffix('%') {
            return match p.trim().parse::<f64>() {
                Ok(p) if p > 0.0 && p <= 100.0 => Ok(Capacity::Fraction(p / 100.0)),
                Ok(_) => refuse("is outside 0% (exclusive) to 100%"),
                Err(_) => refuse("is not a percentage"),
            };
        }
        let lower = s.to_ascii_lowercase();
        if let Some((unit, mult)) = BYTE_UNITS
            .iter()
            .find(|(u, _)| lower.ends_with(u) && lower.len() > u.len())
        {
            let number = lower[..lower.len() - unit.len()].trim();
            return match number.parse::<f64>() {
                Ok(n) if n.is_finite() && n > 0.0 => {
                    let bytes = n * *mult as f64;
                    if bytes >= u64::MAX as f64 {
                        return refuse("is too large");
                    }
                    Ok(Capacity::Bytes((bytes.round() as u64).max(1)))
                }
                _ => refuse("is not a size"),
            };
        }
        if let Ok(n) = s.parse::<u64>() {
            return if n == 0 {
                refuse("holds nothing (capacity 0)")
            } else {
                Ok(Capacity::Blocks(n))
            };
        }
        match s.parse::<f64>() {
            Ok(f) if f > 0.0 && f < 1.0 => Ok(Capacity::Fraction(f)),
            Ok(f) if f.is_nan() => refuse("is not a number"),
            Ok(0.0) => refuse("holds nothing (capacity 0)"),
            Ok(f) if f.is_finite() && f.fract() == 0.0 && f < 1e15 => refuse(&format!(
                "is ambiguous (a fraction of 100 % or more, or a block count?): write {:.0}% or {f:.0}",
                f * 100.0
            )),
            Ok(f) if f.is_finite() && f < 1e6 => refuse(&format!(
                "is ambiguous (a fraction above 1 or a block count?): write {:.0}% for that share \
                 of the unique blocks, or a whole number of blocks",
                f * 100.0
            )),
            Ok(_) => refuse(&format!(
                "is out of range (a tier holds fewer than {} blocks)",
                mcos_core::limits::MAX_FRAMES_PER_TIER
            )),
            Err(_) => refuse("is not a capacity"),
        }
    }

    /// The same capacity with a byte size converted to whole blocks of `block_bytes` (at
    /// least 1); fractions and block counts are returned as they are.
    pub fn in_blocks_of(self, block_bytes: u32) -> Capacity {
        match self {
            Capacity::Bytes(b) => Capacity::Blocks((b / u64::from(block_bytes.max(1))).max(1)),
            other => other,
        }
    }

    /// The capacity in blocks for a trace with `unique_blocks` distinct blocks:
    /// `round(fraction * unique_blocks)`, at least 1. A byte size must first be converted with
    /// [`Capacity::in_blocks_of`].
    pub fn blocks(self, unique_blocks: u64) -> Result<u64, SimError> {
        match self {
            Capacity::Fraction(f) if f.is_finite() && f > 0.0 => {
                Ok(((f * unique_blocks as f64).round() as u64).max(1))
            }
            Capacity::Fraction(f) => Err(SimError::InvalidCapacity(format!(
                "fraction {f} of the unique blocks; give a positive number such as 0.05"
            ))),
            Capacity::Blocks(0) => Err(SimError::InvalidCapacity(
                "0 blocks; give at least 1".to_owned(),
            )),
            Capacity::Blocks(n) => Ok(n),
            Capacity::Bytes(b) => Err(SimError::InvalidCapacity(format!(
                "{b} bytes needs a block size to become blocks (Capacity::in_blocks_of)"
            ))),
        }
    }
}

/// Why a simulation could not run.
#[derive(Debug, Error)]
pub enum SimError {
    /// The trace could not be read.
    #[error(transparent)]
    Trace(#[from] TraceError),
    /// The policy could not be built.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// The capacity is not usable.
    #[error("invalid capacity: {0}")]
    InvalidCapacity(String),
    /// The trace cannot give meaningful results (empty, or no block accesses).
    #[error("{0}: nothing to replay; check the trace file")]
    Unusable(String),
    /// `block_tokens` was 0.
    #[error("block_tokens must be at least 1 (Mooncake traces use 512)")]
    ZeroBlockTokens,
}

/// One pass over a trace: its size and reuse ceiling.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TraceStats {
    /// Requests (non-blank lines).
    pub requests: u64,
    /// Block accesses (sum of `hash_ids` lengths).
    pub block_accesses: u64,
    /// Distinct block ids.
    pub unique_blocks: u64,
    /// Prompt tokens covered by the blocks (see [`Request::block_tokens_total`]).
    pub prompt_tokens: u64,
    /// Tokens per block used for the token counts.
    pub block_tokens: u32,
    /// Requests with no blocks (`hash_ids` empty): nothing to cache.
    pub empty_requests: u64,
    /// Requests whose `input_length` does not fit their block count at `block_tokens`
    /// (outside `((n - 1) * block_tokens, n * block_tokens]`).
    pub length_mismatches: u64,
    /// Requests whose timestamp is earlier than the one before.
    pub timestamps_backwards: u64,
}

impl TraceStats {
    /// What is questionable about the trace, one line each with counts (empty if nothing).
    /// A trace without any block access is not here: [`TraceStats::check_usable`] refuses it.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        let of = |n: u64| format!("{n} of {} requests", self.requests);
        if self.empty_requests > 0 {
            out.push(format!(
                "{} have no blocks (empty hash_ids): they are counted as requests but access nothing",
                of(self.empty_requests)
            ));
        }
        if self.length_mismatches > 0 {
            out.push(format!(
                "{} have an input_length that disagrees with their block count at {} tokens per \
                 block: is --block-tokens right for this trace? token counts use the block count",
                of(self.length_mismatches),
                self.block_tokens
            ));
        }
        if self.timestamps_backwards > 0 {
            out.push(format!(
                "{} have a timestamp earlier than the request before: arrivals are replayed in \
                 file order",
                of(self.timestamps_backwards)
            ));
        }
        out
    }

    /// Refuses a trace whose results would be meaningless: no requests, or no block accesses.
    pub fn check_usable(&self) -> Result<(), SimError> {
        if self.requests == 0 {
            return Err(SimError::Unusable(
                "the trace has no requests (empty file?)".into(),
            ));
        }
        if self.block_accesses == 0 {
            return Err(SimError::Unusable(format!(
                "none of the trace's {} requests has any block (every hash_ids is empty)",
                self.requests
            )));
        }
        Ok(())
    }

    /// Stats of the trace at `path`, read in one streaming pass; fails on the first bad line.
    pub fn from_path(path: impl AsRef<Path>, block_tokens: u32) -> Result<Self, SimError> {
        let mut acc = StatsAcc::new(block_tokens)?;
        for request in TraceReader::open(path)? {
            acc.add(&request?);
        }
        Ok(acc.finish())
    }

    /// Stats of in-memory requests.
    pub fn of_requests(requests: &[Request], block_tokens: u32) -> Result<Self, SimError> {
        let mut acc = StatsAcc::new(block_tokens)?;
        requests.iter().for_each(|r| acc.add(r));
        Ok(acc.finish())
    }

    /// Block hit ratio of an infinite cache: every access but the first to each block hits.
    pub fn infinite_cache_hit_ratio(&self) -> f64 {
        ratio(
            self.block_accesses - self.unique_blocks,
            self.block_accesses,
        )
    }
}

struct StatsAcc {
    stats: TraceStats,
    seen: IdMap<()>,
    last_timestamp_ms: Option<u64>,
}

impl StatsAcc {
    fn new(block_tokens: u32) -> Result<Self, SimError> {
        if block_tokens == 0 {
            return Err(SimError::ZeroBlockTokens);
        }
        Ok(Self {
            stats: TraceStats {
                requests: 0,
                block_accesses: 0,
                unique_blocks: 0,
                prompt_tokens: 0,
                block_tokens,
                empty_requests: 0,
                length_mismatches: 0,
                timestamps_backwards: 0,
            },
            seen: policy::id_map(1 << 16),
            last_timestamp_ms: None,
        })
    }

    fn add(&mut self, r: &Request) {
        let n = r.hash_ids.len() as u64;
        let bt = u64::from(self.stats.block_tokens);
        let len = u64::from(r.input_length);
        if n == 0 {
            self.stats.empty_requests += 1;
        } else if len <= (n - 1) * bt || len > n * bt {
            self.stats.length_mismatches += 1;
        }
        if self.last_timestamp_ms.is_some_and(|t| r.timestamp_ms < t) {
            self.stats.timestamps_backwards += 1;
        }
        self.last_timestamp_ms = Some(r.timestamp_ms);
        self.stats.requests += 1;
        self.stats.block_accesses += r.hash_ids.len() as u64;
        self.stats.prompt_tokens += r.block_tokens_total(self.stats.block_tokens);
        for &id in &r.hash_ids {
            self.seen.insert(id, ());
        }
    }

    fn finish(mut self) -> TraceStats {
        self.stats.unique_blocks = self.seen.len() as u64;
        self.stats
    }
}

/// Raw counters of one replay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct ReplayCounts {
    /// Requests replayed.
    pub requests: u64,
    /// Block accesses replayed.
    pub block_accesses: u64,
    /// Accesses that hit.
    pub block_hits: u64,
    /// Hits before the first miss of their request.
    pub prefix_block_hits: u64,
    /// Prompt tokens covered by the blocks.
    pub prompt_tokens: u64,
    /// Tokens in blocks that hit.
    pub hit_tokens: u64,
}

impl ReplayCounts {
    /// Replays one request: each block in order, then [`CachePolicy::request_done`].
    pub fn record(&mut self, policy: &mut dyn CachePolicy, request: &Request, block_tokens: u32) {
        let mut prefix_intact = true;
        for (i, &id) in request.hash_ids.iter().enumerate() {
            let tokens = u64::from(request.tokens_in_block(i, block_tokens));
            let hit = policy.access(id, self.block_accesses);
            assert!(
                policy.len() <= policy.capacity(),
                "{} exceeded its capacity",
                policy.name()
            );
            self.block_accesses += 1;
            self.prompt_tokens += tokens;
            if hit {
                self.block_hits += 1;
                self.hit_tokens += tokens;
                if prefix_intact {
                    self.prefix_block_hits += 1;
                }
            } else {
                prefix_intact = false;
            }
        }
        policy.request_done(&request.hash_ids);
        self.requests += 1;
    }
}

/// Replays in-memory requests against `policy`.
///
/// # Panics
/// If `block_tokens` is 0.
pub fn replay<'a>(
    requests: impl IntoIterator<Item = &'a Request>,
    policy: &mut dyn CachePolicy,
    block_tokens: u32,
) -> ReplayCounts {
    let mut counts = ReplayCounts::default();
    for r in requests {
        counts.record(policy, r, block_tokens);
    }
    counts
}

/// The outcome of one (policy, capacity) replay.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimResult {
    /// Policy name.
    pub policy: String,
    /// Capacity as a fraction of the trace's unique blocks.
    pub capacity_fraction: f64,
    /// Capacity in blocks.
    pub capacity_blocks: u64,
    /// Requests replayed.
    pub requests: u64,
    /// Block accesses replayed.
    pub block_accesses: u64,
    /// Accesses that hit.
    pub block_hits: u64,
    /// `block_hits / block_accesses`.
    pub block_hit_ratio: f64,
    /// Tokens in hit blocks over prompt tokens.
    pub token_hit_ratio: f64,
    /// Hits before the first miss of their request.
    pub prefix_block_hits: u64,
    /// `prefix_block_hits / block_accesses`.
    pub prefix_hit_ratio: f64,
    /// Resident blocks evicted.
    pub evictions: u64,
    /// Missed blocks not admitted (MIN's bypass).
    pub admissions_rejected: u64,
}

enum Source {
    File(PathBuf),
    Memory(Vec<Request>),
}

/// A trace ready for capacity sweeps: its stats are computed once, the access sequence MIN needs
/// is built on first use, and each run streams the trace again (a file is never held in memory).
pub struct Simulator {
    source: Source,
    block_tokens: u32,
    stats: TraceStats,
    future: OnceLock<AccessSeq>,
    /// The requests of a file trace, read on the first served replay.
    loaded: OnceLock<Vec<Request>>,
}

impl std::fmt::Debug for Simulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let source = match &self.source {
            Source::File(p) => p.display().to_string(),
            Source::Memory(r) => format!("{} in-memory requests", r.len()),
        };
        f.debug_struct("Simulator")
            .field("source", &source)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Simulator {
    /// Reads the trace at `path` once for its stats; fails on the first bad line.
    pub fn open(path: impl AsRef<Path>, block_tokens: u32) -> Result<Self, SimError> {
        let path = path.as_ref().to_path_buf();
        let stats = TraceStats::from_path(&path, block_tokens)?;
        Ok(Self {
            source: Source::File(path),
            block_tokens,
            stats,
            future: OnceLock::new(),
            loaded: OnceLock::new(),
        })
    }

    /// A simulator over in-memory requests (for example from the generator).
    pub fn from_requests(requests: Vec<Request>, block_tokens: u32) -> Result<Self, SimError> {
        let stats = TraceStats::of_requests(&requests, block_tokens)?;
        Ok(Self {
            source: Source::Memory(requests),
            block_tokens,
            stats,
            future: OnceLock::new(),
            loaded: OnceLock::new(),
        })
    }

    /// The trace's stats.
    pub fn stats(&self) -> &TraceStats {
        &self.stats
    }

    /// Replays the trace against `policy` (a name from [`crate::POLICY_NAMES`]) at `capacity`.
    pub fn run(&self, policy: &str, capacity: Capacity) -> Result<SimResult, SimError> {
        self.run_with(policy, capacity, None).map(|(r, _)| r)
    }

    /// As [`Simulator::run`], through the serving-engine model (`crate::serve`): requests
    /// queue at their timestamps for one prefill engine, and the intents `cfg` names reach the
    /// policy. Reads the whole trace into memory once.
    pub fn run_served(
        &self,
        policy: &str,
        capacity: Capacity,
        cfg: &crate::serve::ServeConfig,
    ) -> Result<(SimResult, crate::serve::ServeStats), SimError> {
        let (r, s) = self.run_with(policy, capacity, Some(cfg))?;
        let s =
            s.ok_or_else(|| SimError::InvalidCapacity("served replay lost its stats".into()))?;
        Ok((r, s))
    }

    /// The prefill throughput (tokens/s) at which the trace's prompt tokens, all prefilled,
    /// would keep one engine busy a fraction `load` of the trace's span.
    pub fn prefill_rate_for_load(&self, load: f64) -> Result<f64, SimError> {
        let reqs = self.requests()?;
        let first = reqs.first().map_or(0, |r| r.timestamp_ms);
        let last = reqs.last().map_or(0, |r| r.timestamp_ms);
        let span_s = ((last - first) as f64 / 1000.0).max(1.0);
        if !(load.is_finite() && load > 0.0) {
            return Err(SimError::InvalidCapacity(format!(
                "load {load}: give a positive fraction such as 0.8"
            )));
        }
        Ok(self.stats.prompt_tokens as f64 / (span_s * load))
    }

    /// Every request of the trace, in order (a file trace is read into memory once).
    pub fn requests(&self) -> Result<&[Request], SimError> {
        match &self.source {
            Source::Memory(r) => Ok(r),
            Source::File(path) => {
                if let Some(r) = self.loaded.get() {
                    return Ok(r);
                }
                let mut v = Vec::new();
                for request in TraceReader::open(path)? {
                    v.push(request?);
                }
                Ok(self.loaded.get_or_init(|| v))
            }
        }
    }

    fn run_with(
        &self,
        policy: &str,
        capacity: Capacity,
        serve: Option<&crate::serve::ServeConfig>,
    ) -> Result<(SimResult, Option<crate::serve::ServeStats>), SimError> {
        let capacity_blocks = capacity.blocks(self.stats.unique_blocks)?;
        let cap = usize::try_from(capacity_blocks).map_err(|_| {
            SimError::InvalidCapacity(format!("{capacity_blocks} blocks does not fit in memory"))
        })?;
        let future = if policy::needs_future(policy) {
            Some(self.future()?)
        } else {
            None
        };
        let mut p = policy::by_name(policy, cap, future)?;
        let (counts, served) = match serve {
            None => (self.replay(p.as_mut())?, None),
            Some(cfg) => {
                let (c, s) = crate::serve::serve(self.requests()?, p.as_mut(), cfg);
                (c, Some(s))
            }
        };
        let stats = p.stats();
        let capacity_fraction = match capacity {
            Capacity::Fraction(f) => f,
            Capacity::Blocks(_) | Capacity::Bytes(_) => {
                ratio(capacity_blocks, self.stats.unique_blocks)
            }
        };
        Ok((
            SimResult {
                policy: p.name().to_owned(),
                capacity_fraction,
                capacity_blocks,
                requests: counts.requests,
                block_accesses: counts.block_accesses,
                block_hits: counts.block_hits,
                block_hit_ratio: ratio(counts.block_hits, counts.block_accesses),
                token_hit_ratio: ratio(counts.hit_tokens, counts.prompt_tokens),
                prefix_block_hits: counts.prefix_block_hits,
                prefix_hit_ratio: ratio(counts.prefix_block_hits, counts.block_accesses),
                evictions: stats.evictions,
                admissions_rejected: stats.admissions_rejected,
            },
            served,
        ))
    }

    /// Runs every policy at every capacity, policies outermost.
    pub fn sweep(
        &self,
        policies: &[&str],
        capacities: &[Capacity],
    ) -> Result<Vec<SimResult>, SimError> {
        let mut out = Vec::with_capacity(policies.len() * capacities.len());
        for policy in policies {
            for &capacity in capacities {
                out.push(self.run(policy, capacity)?);
            }
        }
        Ok(out)
    }

    fn replay(&self, policy: &mut dyn CachePolicy) -> Result<ReplayCounts, SimError> {
        match &self.source {
            Source::Memory(requests) => Ok(replay(requests, policy, self.block_tokens)),
            Source::File(path) => {
                let mut counts = ReplayCounts::default();
                for request in TraceReader::open(path)? {
                    counts.record(policy, &request?, self.block_tokens);
                }
                Ok(counts)
            }
        }
    }

    fn future(&self) -> Result<&AccessSeq, SimError> {
        if let Some(seq) = self.future.get() {
            return Ok(seq);
        }
        let mut seq = AccessSeq::new();
        match &self.source {
            Source::Memory(requests) => requests.iter().for_each(|r| seq.push_request(r)),
            Source::File(path) => {
                for request in TraceReader::open(path)? {
                    seq.push_request(&request?);
                }
            }
        }
        Ok(self.future.get_or_init(|| seq))
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

    #[test]
    fn questionable_traces_are_counted() {
        let req = |t: u64, len: u32, ids: &[u64]| Request {
            timestamp_ms: t,
            input_length: len,
            output_length: 1,
            hash_ids: ids.to_vec(),
        };
        let rs = [
            req(10, 1000, &[1, 2]),
            req(5, 1000, &[1, 2]),
            req(6, 9000, &[3]),
            req(7, 0, &[]),
            req(8, 512, &[4]),
        ];
        let s = TraceStats::of_requests(&rs, 512).unwrap();
        assert_eq!(
            (
                s.empty_requests,
                s.length_mismatches,
                s.timestamps_backwards
            ),
            (1, 1, 1)
        );
        let w = s.warnings().join("\n");
        assert!(w.contains("1 of 5 requests have no blocks"), "{w}");
        assert!(w.contains("--block-tokens"), "{w}");
        assert!(w.contains("earlier"), "{w}");
        s.check_usable().unwrap();
        let clean = TraceStats::of_requests(&rs[4..], 512).unwrap();
        assert!(clean.warnings().is_empty());
        let e = TraceStats::of_requests(&[], 512).unwrap().check_usable();
        assert!(e.unwrap_err().to_string().contains("no requests"));
        let e = TraceStats::of_requests(&rs[3..4], 512)
            .unwrap()
            .check_usable();
        assert!(e.unwrap_err().to_string().contains("hash_ids is empty"));
    }

    #[test]
    fn capacity_syntax_table() {
        use Capacity::*;
        let ok = [
            ("5%", Fraction(0.05)),
            ("100%", Fraction(1.0)),
            ("0.5 %", Fraction(0.005)),
            ("0.05", Fraction(0.05)),
            (" 0.25 ", Fraction(0.25)),
            ("1", Blocks(1)),
            ("1828", Blocks(1828)),
            ("2000000000", Blocks(2_000_000_000)),
            ("128MiB", Bytes(128 << 20)),
            ("1GiB", Bytes(1 << 30)),
            ("1.5 KiB", Bytes(1536)),
            ("500MB", Bytes(500_000_000)),
            ("4096b", Bytes(4096)),
        ];
        for (text, want) in ok {
            assert_eq!(Capacity::parse(text), Ok(want), "{text}");
        }
        let refused = [
            ("0", "holds nothing"),
            ("0.0", "holds nothing"),
            ("-1", "must be positive"),
            ("-0.5", "must be positive"),
            ("1.0", "write 100% or 1"),
            ("2.5", "write 250%"),
            ("NaN", "not a number"),
            ("inf", "out of range"),
            ("1e30", "out of range"),
            ("0%", "outside"),
            ("150%", "outside"),
            ("abc", "not a capacity"),
            ("xMiB", "not a size"),
            ("0GiB", "not a size"),
        ];
        for (text, why) in refused {
            let e = Capacity::parse(text).unwrap_err();
            assert!(e.contains(why), "{text}: {e}");
            assert!(
                e.contains("5%") && e.contains("1GiB"),
                "says what to write: {e}"
            );
        }
        assert_eq!(Bytes(1 << 20).in_blocks_of(16384), Blocks(64));
        assert_eq!(Bytes(10).in_blocks_of(16384), Blocks(1));
        assert!(Bytes(10).blocks(100).is_err());
    }

    fn req(ts: u64, input: u32, ids: &[u64]) -> Request {
        Request {
            timestamp_ms: ts,
            input_length: input,
            output_length: 1,
            hash_ids: ids.to_vec(),
        }
    }

    #[test]
    fn capacity_from_fraction_rounds_and_floors_at_one() {
        assert_eq!(Capacity::Fraction(0.01).blocks(182_790).unwrap(), 1_828);
        assert_eq!(Capacity::Fraction(0.05).blocks(182_790).unwrap(), 9_140);
        assert_eq!(Capacity::Fraction(0.10).blocks(182_790).unwrap(), 18_279);
        assert_eq!(Capacity::Fraction(0.25).blocks(182_790).unwrap(), 45_698);
        assert_eq!(Capacity::Fraction(1e-9).blocks(10).unwrap(), 1);
        assert_eq!(Capacity::Fraction(2.0).blocks(10).unwrap(), 20);
        assert_eq!(Capacity::Blocks(7).blocks(10).unwrap(), 7);
        for bad in [
            Capacity::Fraction(0.0),
            Capacity::Fraction(-0.5),
            Capacity::Fraction(f64::NAN),
            Capacity::Blocks(0),
        ] {
            assert!(
                matches!(bad.blocks(10), Err(SimError::InvalidCapacity(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn counts_blocks_tokens_and_prefix_hits() {
        // block_tokens 4. Request A: blocks 1,2 (tokens 4 + 2). Request B: 1,3,2 -> hit, miss, hit.
        let reqs = vec![req(0, 6, &[1, 2]), req(1, 9, &[1, 3, 2])];
        let sim = Simulator::from_requests(reqs, 4).unwrap();
        assert_eq!(sim.stats().unique_blocks, 3);
        assert_eq!(sim.stats().block_accesses, 5);
        assert_eq!(sim.stats().prompt_tokens, 6 + 9);
        let r = sim.run("lru", Capacity::Blocks(10)).unwrap();
        assert_eq!((r.block_hits, r.prefix_block_hits), (2, 1));
        assert!((r.block_hit_ratio - 2.0 / 5.0).abs() < 1e-12);
        // Hit tokens: block 1 of B (4) + block 2 of B (last, 9 - 8 = 1).
        assert!((r.token_hit_ratio - 5.0 / 15.0).abs() < 1e-12);
        assert!((sim.stats().infinite_cache_hit_ratio() - 2.0 / 5.0).abs() < 1e-12);
    }

    #[test]
    fn every_policy_runs_and_min_bounds_them() {
        let mut reqs = Vec::new();
        let mut x: u64 = 1;
        for t in 0..300u64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let root = (x >> 40) % 7;
            let len = 1 + (x >> 20) % 6;
            let ids: Vec<u64> = (0..len).map(|k| root * 100 + k).collect();
            reqs.push(req(t, 512 * len as u32, &ids));
        }
        let sim = Simulator::from_requests(reqs, 512).unwrap();
        for cap in [Capacity::Blocks(3), Capacity::Fraction(0.5)] {
            let min = sim.run("min", cap).unwrap();
            for name in crate::POLICY_NAMES {
                let r = sim.run(name, cap).unwrap();
                assert_eq!(r.policy, name);
                assert_eq!(r.block_accesses, sim.stats().block_accesses);
                assert!(
                    r.block_hits <= min.block_hits,
                    "{name} beat MIN: {} > {}",
                    r.block_hits,
                    min.block_hits
                );
            }
        }
    }

    #[test]
    fn errors_are_typed() {
        let sim = Simulator::from_requests(vec![req(0, 1, &[1])], 512).unwrap();
        assert!(matches!(
            sim.run("nope", Capacity::Blocks(1)),
            Err(SimError::Policy(_))
        ));
        assert!(matches!(
            sim.run("lru", Capacity::Blocks(0)),
            Err(SimError::InvalidCapacity(_))
        ));
        assert!(matches!(
            Simulator::from_requests(vec![], 0),
            Err(SimError::ZeroBlockTokens)
        ));
        let err = Simulator::open("/no/such/trace.jsonl", 512).unwrap_err();
        assert!(err.to_string().contains("/no/such/trace.jsonl"), "{err}");
    }
}
