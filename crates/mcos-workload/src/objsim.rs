//! Byte-capacity simulator for object traces: object and byte miss ratios per policy and size.
//!
//! Accounting is libCacheSim's (`simulate_at_multi_sizes` in `libCacheSim/profiler/simulator.c`):
//! every request counts, with its size, in `requests` and `request_bytes`; a request that does not
//! hit counts in `misses` and `miss_bytes`; no warm-up. Each (policy, capacity) run streams the
//! trace file again in its own thread, so memory is the policies' own state (proportional to the
//! objects they hold) plus one pass's set of unique objects for the trace statistics.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use serde::Serialize;
use thiserror::Error;

use crate::objcache::{self, ObjPolicyError, Prefetch};
use crate::objtrace::{ObjFormat, ObjRequest, ObjTraceError, ObjTraceReader};
use crate::policy::{IdMap, id_map};
use crate::simulate::Capacity;

/// Why an object-trace simulation could not run.
#[derive(Debug, Error)]
pub enum ObjSimError {
    /// The trace could not be read.
    #[error(transparent)]
    Trace(#[from] ObjTraceError),
    /// The policy could not be built.
    #[error(transparent)]
    Policy(#[from] ObjPolicyError),
    /// A capacity is not usable for an object trace.
    #[error("invalid capacity: {0}")]
    Capacity(String),
    /// The trace has no requests.
    #[error("{0}: the trace has no requests (empty file?)")]
    Empty(PathBuf),
    /// An offline policy needs next-access times the format does not carry.
    #[error(
        "policy `{0}` needs each request's next access time, which only oracleGeneral traces carry"
    )]
    NoFuture(String),
}

/// One pass over an object trace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ObjTraceStats {
    /// Requests.
    pub requests: u64,
    /// Bytes requested (sum of request sizes).
    pub request_bytes: u64,
    /// Distinct objects.
    pub unique_objects: u64,
    /// Working-set bytes: each distinct object at its last size.
    pub unique_bytes: u64,
    /// Requests whose object changed size since its previous request.
    pub size_changes: u64,
    /// Whether every request carries a next-access time (oracleGeneral).
    pub has_next_access: bool,
}

impl ObjTraceStats {
    /// Reads the trace once; fails on the first bad record. With `unit_sizes` every request
    /// counts as size 1.
    pub fn from_path(
        path: &Path,
        format: &ObjFormat,
        unit_sizes: bool,
    ) -> Result<Self, ObjSimError> {
        let mut sizes: IdMap<u64> = id_map(1 << 16);
        let mut s = ObjTraceStats {
            requests: 0,
            request_bytes: 0,
            unique_objects: 0,
            unique_bytes: 0,
            size_changes: 0,
            has_next_access: true,
        };
        for r in ObjTraceReader::open(path, format.clone())? {
            let mut r = r?;
            if unit_sizes {
                r.size = 1;
            }
            s.requests += 1;
            s.request_bytes += r.size;
            s.has_next_access &= r.next_access_vtime != crate::objtrace::NEXT_ACCESS_UNKNOWN;
            match sizes.insert(r.id, r.size) {
                Some(old) if old != r.size => {
                    s.size_changes += 1;
                    s.unique_bytes = s.unique_bytes - old + r.size;
                }
                Some(_) => {}
                None => s.unique_bytes += r.size,
            }
        }
        s.unique_objects = sizes.len() as u64;
        if s.requests == 0 {
            return Err(ObjSimError::Empty(path.to_path_buf()));
        }
        Ok(s)
    }

    /// Whether a capacity needs the working-set bytes (a fraction), so the statistics pass.
    pub fn needs_stats(c: Capacity) -> bool {
        match c {
            Capacity::Bytes(_) => false,
            Capacity::Blocks(_) => false,
            Capacity::Fraction(_) => true,
        }
    }

    /// A capacity in bytes: a byte size as it is, a fraction of the working-set bytes
    /// (rounded, at least 1). A bare count is refused (object caches are sized in bytes), unless
    /// every object is read as size 1 (`unit_sizes`), where it counts objects.
    pub fn capacity_bytes(&self, c: Capacity, unit_sizes: bool) -> Result<u64, ObjSimError> {
        match c {
            Capacity::Blocks(n) if unit_sizes => Ok(n),
            Capacity::Bytes(b) => Ok(b.max(1)),
            Capacity::Fraction(f) if f.is_finite() && f > 0.0 => {
                Ok(((f * self.unique_bytes as f64).round() as u64).max(1))
            }
            Capacity::Fraction(f) => Err(ObjSimError::Capacity(format!(
                "fraction {f}: give a positive fraction of the working-set bytes such as 0.1"
            ))),
            Capacity::Blocks(n) => Err(ObjSimError::Capacity(format!(
                "`{n}` has no unit: object caches are sized in bytes (128MiB, 1GiB) or as a \
                 fraction of the working-set bytes (10%, 0.1)"
            ))),
        }
    }
}

/// A capacity that needs no statistics ([`ObjTraceStats::needs_stats`] false) in bytes.
fn absolute_bytes(c: Capacity, unit_sizes: bool) -> Result<u64, ObjSimError> {
    let none = ObjTraceStats {
        requests: 0,
        request_bytes: 0,
        unique_objects: 0,
        unique_bytes: 0,
        size_changes: 0,
        has_next_access: false,
    };
    debug_assert!(!ObjTraceStats::needs_stats(c));
    none.capacity_bytes(c, unit_sizes)
}

/// The outcome of one (policy, capacity) replay of an object trace.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ObjSimResult {
    /// Policy with its parameters.
    pub policy: String,
    /// Capacity in bytes.
    pub capacity_bytes: u64,
    /// Capacity as a fraction of the working-set bytes; `None` when the statistics pass was
    /// skipped (every capacity absolute), so the working set is not known.
    pub capacity_fraction: Option<f64>,
    /// Requests replayed.
    pub requests: u64,
    /// Bytes requested.
    pub request_bytes: u64,
    /// Requests that missed.
    pub misses: u64,
    /// Bytes of the requests that missed.
    pub miss_bytes: u64,
    /// `misses / requests`.
    pub object_miss_ratio: f64,
    /// `miss_bytes / request_bytes`.
    pub byte_miss_ratio: f64,
    /// `1 - object_miss_ratio`.
    pub object_hit_ratio: f64,
    /// `1 - byte_miss_ratio`.
    pub byte_hit_ratio: f64,
    /// Replay speed of this run alone (requests per second of wall time in its thread).
    pub requests_per_s: f64,
}

/// Replays `path` against one policy at one byte capacity.
/// With `unit_sizes` every object is read as size 1, and the KV-block policies
/// ([`objcache::build_for`]) may run too.
pub fn replay_object_trace(
    path: &Path,
    format: &ObjFormat,
    policy: &str,
    capacity_bytes: u64,
    working_set_bytes: Option<u64>,
    unit_sizes: bool,
) -> Result<ObjSimResult, ObjSimError> {
    let mut p = objcache::build_for(policy, capacity_bytes, unit_sizes)?;
    let start = Instant::now();
    let (mut requests, mut request_bytes, mut misses, mut miss_bytes) = (0u64, 0u64, 0u64, 0u64);
    let mut reader = ObjTraceReader::open(path, format.clone())?;
    // Requests are read `AHEAD` before they are replayed, and the policy is told of each one
    // as it comes nearer (`Prefetch`), so the memory its access touches is on its way: on
    // working sets larger than the CPU caches each access would otherwise wait on memory. The
    // order of accesses, and so every decision, is the trace's.
    const AHEAD: usize = 16;
    let mut ahead: VecDeque<ObjRequest> = VecDeque::with_capacity(AHEAD);
    let mut failed: Option<ObjTraceError> = None;
    loop {
        while ahead.len() < AHEAD && failed.is_none() {
            match reader.next() {
                Some(Ok(mut r)) => {
                    if unit_sizes {
                        r.size = 1;
                    }
                    p.prefetch(r.id, Prefetch::Index);
                    ahead.push_back(r);
                }
                Some(Err(e)) => failed = Some(e),
                None => break,
            }
        }
        let Some(r) = ahead.pop_front() else { break };
        if let Some(n) = ahead.get(AHEAD / 2) {
            p.prefetch(n.id, Prefetch::Node);
        }
        if let Some(n) = ahead.get(1) {
            p.prefetch(n.id, Prefetch::Links);
        }
        if !p.access(&r, requests) {
            misses += 1;
            miss_bytes += r.size;
        }
        debug_assert!(p.used_bytes() <= p.capacity_bytes());
        requests += 1;
        request_bytes += r.size;
    }
    if let Some(e) = failed {
        return Err(e.into());
    }
    if requests == 0 {
        return Err(ObjSimError::Empty(path.to_path_buf()));
    }
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
    Ok(ObjSimResult {
        policy: p.name(),
        capacity_bytes,
        capacity_fraction: working_set_bytes.map(|w| ratio(capacity_bytes, w)),
        requests,
        request_bytes,
        misses,
        miss_bytes,
        object_miss_ratio: ratio(misses, requests),
        byte_miss_ratio: ratio(miss_bytes, request_bytes),
        object_hit_ratio: 1.0 - ratio(misses, requests),
        byte_hit_ratio: 1.0 - ratio(miss_bytes, request_bytes),
        requests_per_s: requests as f64 / secs,
    })
}

/// An object trace ready for sweeps.
#[derive(Debug, Clone)]
pub struct ObjSimulator {
    path: PathBuf,
    format: ObjFormat,
    stats: Option<ObjTraceStats>,
    unit_sizes: bool,
}

impl ObjSimulator {
    /// Reads the trace once for its statistics.
    pub fn open(path: impl AsRef<Path>, format: ObjFormat) -> Result<Self, ObjSimError> {
        Self::open_with(path, format, false)
    }

    /// As [`ObjSimulator::open`]; with `unit_sizes` every object is read as size 1 (libCacheSim's
    /// `--ignore-obj-size`): capacities may then be object counts, and the KV-block policies
    /// (`mcos`, `wtinylfu`, ...) run beside the object policies.
    pub fn open_with(
        path: impl AsRef<Path>,
        format: ObjFormat,
        unit_sizes: bool,
    ) -> Result<Self, ObjSimError> {
        let path = path.as_ref().to_path_buf();
        let stats = ObjTraceStats::from_path(&path, &format, unit_sizes)?;
        Ok(Self {
            path,
            format,
            stats: Some(stats),
            unit_sizes,
        })
    }

    /// As [`ObjSimulator::open_with`] without the statistics pass: for sweeps whose capacities
    /// are all absolute, where the pass would read the trace once more for figures no run
    /// needs. Checks only that the file opens; a sweep with a fractional capacity makes the
    /// pass then.
    pub fn open_without_stats(
        path: impl AsRef<Path>,
        format: ObjFormat,
        unit_sizes: bool,
    ) -> Result<Self, ObjSimError> {
        let path = path.as_ref().to_path_buf();
        ObjTraceReader::open(&path, format.clone())?;
        Ok(Self {
            path,
            format,
            stats: None,
            unit_sizes,
        })
    }

    /// The trace's statistics, if the pass was made.
    pub fn stats(&self) -> Option<&ObjTraceStats> {
        self.stats.as_ref()
    }

    /// Whether every request carries a next-access time: from the statistics when they were
    /// gathered, else from the format (only oracleGeneral carries it, in every record).
    pub fn has_next_access(&self) -> bool {
        self.stats
            .as_ref()
            .map_or(self.format == ObjFormat::OracleGeneral, |s| {
                s.has_next_access
            })
    }

    /// Runs every policy at every capacity (policies outermost in the result), `threads` runs
    /// at a time, each streaming the trace itself. Validates all specs before running any.
    pub fn sweep(
        &self,
        policies: &[&str],
        capacities: &[Capacity],
        threads: usize,
    ) -> Result<Vec<ObjSimResult>, ObjSimError> {
        let gathered;
        let stats = match &self.stats {
            Some(s) => Some(s),
            None if capacities.iter().any(|&c| ObjTraceStats::needs_stats(c)) => {
                gathered = ObjTraceStats::from_path(&self.path, &self.format, self.unit_sizes)?;
                Some(&gathered)
            }
            None => None,
        };
        let caps: Vec<u64> = capacities
            .iter()
            .map(|&c| match stats {
                Some(s) => s.capacity_bytes(c, self.unit_sizes),
                None => absolute_bytes(c, self.unit_sizes),
            })
            .collect::<Result<_, _>>()?;
        let has_next_access = stats.map_or_else(|| self.has_next_access(), |s| s.has_next_access);
        for p in policies {
            objcache::build_for(p, 1, self.unit_sizes)?;
            if objcache::needs_next_access(p) && !has_next_access {
                return Err(ObjSimError::NoFuture((*p).to_owned()));
            }
        }
        let jobs: Vec<(&str, u64)> = policies
            .iter()
            .flat_map(|&p| caps.iter().map(move |&c| (p, c)))
            .collect();
        let results: Mutex<Vec<Option<Result<ObjSimResult, ObjSimError>>>> =
            Mutex::new((0..jobs.len()).map(|_| None).collect());
        let next = AtomicUsize::new(0);
        let threads = threads.clamp(1, jobs.len().max(1));
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    loop {
                        let j = next.fetch_add(1, Ordering::Relaxed);
                        let Some(&(p, c)) = jobs.get(j) else { break };
                        let r = replay_object_trace(
                            &self.path,
                            &self.format,
                            p,
                            c,
                            stats.map(|s| s.unique_bytes),
                            self.unit_sizes,
                        );
                        if let Ok(mut v) = results.lock() {
                            v[j] = Some(r);
                        }
                    }
                });
            }
        });
        let results = results.into_inner().unwrap_or_else(|e| e.into_inner());
        results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(ObjSimError::Capacity("a run did not finish".into()))))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::objtrace::{NEVER_AGAIN, ObjRequest, write_oracle_general};

    fn trace_file(dir: &Path) -> PathBuf {
        let mut reqs = Vec::new();
        let mut x = 11u64;
        for i in 0..4000u64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let id = (x >> 35) % 500;
            reqs.push(ObjRequest {
                time: i / 10,
                id,
                size: 512 * (1 + id % 8),
                next_access_vtime: NEVER_AGAIN,
            });
        }
        let mut last = std::collections::HashMap::new();
        for i in (0..reqs.len()).rev() {
            if let Some(&n) = last.get(&reqs[i].id) {
                reqs[i].next_access_vtime = n;
            }
            last.insert(reqs[i].id, i as i64 + 1);
        }
        let path = dir.join("t.oracleGeneral.bin");
        let mut out = Vec::new();
        write_oracle_general(&mut out, &reqs).unwrap();
        std::fs::write(&path, out).unwrap();
        path
    }

    #[test]
    fn threaded_sweep_equals_the_sequential_one_and_belady_bounds_lru() {
        let dir = tempfile::tempdir().unwrap();
        let sim = ObjSimulator::open(trace_file(dir.path()), ObjFormat::OracleGeneral).unwrap();
        assert_eq!(sim.stats().unwrap().requests, 4000);
        assert!(sim.stats().unwrap().has_next_access);
        let policies = ["lru", "s3fifo", "belady", "lirs", "gdsf"];
        let caps = [Capacity::Fraction(0.1), Capacity::Bytes(200 << 10)];
        let strip = |v: Vec<ObjSimResult>| -> Vec<(String, u64, u64, u64)> {
            v.into_iter()
                .map(|r| (r.policy, r.capacity_bytes, r.misses, r.miss_bytes))
                .collect()
        };
        let one = strip(sim.sweep(&policies, &caps, 1).unwrap());
        let three = strip(sim.sweep(&policies, &caps, 3).unwrap());
        assert_eq!(one, three);
        // Without the statistics pass: the same decisions; the fractional capacity makes the
        // pass itself, and absolute ones report no fraction.
        let lazy =
            ObjSimulator::open_without_stats(sim.path.clone(), ObjFormat::OracleGeneral, false)
                .unwrap();
        assert!(lazy.stats().is_none() && lazy.has_next_access());
        assert_eq!(strip(lazy.sweep(&policies, &caps, 2).unwrap()), one);
        let bytes_only = lazy
            .sweep(&["lru", "slru", "arc"], &[Capacity::Bytes(200 << 10)], 1)
            .unwrap();
        assert!(bytes_only.iter().all(|r| r.capacity_fraction.is_none()));
        let with_pass = sim
            .sweep(&["lru", "slru", "arc"], &[Capacity::Bytes(200 << 10)], 1)
            .unwrap();
        assert!(with_pass.iter().all(|r| r.capacity_fraction.is_some()));
        assert_eq!(strip(bytes_only), strip(with_pass));
        assert_eq!(one.len(), 10);
        assert_eq!(
            one[0].1,
            (0.1 * sim.stats().unwrap().unique_bytes as f64).round() as u64
        );
        for k in 0..2 {
            let (lru, belady) = (&one[k], &one[4 + k]);
            assert!(
                belady.2 <= lru.2,
                "Belady misses more than LRU: {belady:?} {lru:?}"
            );
        }
    }

    #[test]
    fn unit_sizes_count_objects_and_admit_block_policies() {
        let dir = tempfile::tempdir().unwrap();
        let path = trace_file(dir.path());
        let sim = ObjSimulator::open_with(&path, ObjFormat::OracleGeneral, true).unwrap();
        assert_eq!(
            sim.stats().unwrap().unique_bytes,
            sim.stats().unwrap().unique_objects
        );
        let r = sim
            .sweep(&["mcos", "lru", "belady"], &[Capacity::Blocks(50)], 2)
            .unwrap();
        assert!(
            r.iter()
                .all(|x| x.capacity_bytes == 50 && x.request_bytes == 4000)
        );
        assert!(
            r[2].misses <= r[1].misses && r[2].misses <= r[0].misses,
            "{r:?}"
        );
        let sized = ObjSimulator::open(&path, ObjFormat::OracleGeneral).unwrap();
        let e = sized
            .sweep(&["mcos"], &[Capacity::Bytes(1 << 20)], 1)
            .unwrap_err();
        assert!(e.to_string().contains("--ignore-obj-size"), "{e}");
    }

    #[test]
    fn bad_capacities_and_missing_futures_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let sim = ObjSimulator::open(trace_file(dir.path()), ObjFormat::OracleGeneral).unwrap();
        let e = sim.sweep(&["lru"], &[Capacity::Blocks(10)], 1).unwrap_err();
        assert!(e.to_string().contains("no unit"), "{e}");
        let lazy =
            ObjSimulator::open_without_stats(&sim.path, ObjFormat::OracleGeneral, false).unwrap();
        let e = lazy
            .sweep(&["lru"], &[Capacity::Blocks(10)], 1)
            .unwrap_err();
        assert!(e.to_string().contains("no unit"), "{e}");
        let csv = dir.path().join("t.csv");
        std::fs::write(&csv, "1,a,10\n2,b,10\n").unwrap();
        let cols = crate::objtrace::CsvColumns::parse("time=1,key=2,size=3").unwrap();
        let sim = ObjSimulator::open(&csv, ObjFormat::Csv(cols.clone())).unwrap();
        let e = sim
            .sweep(&["belady"], &[Capacity::Bytes(100)], 1)
            .unwrap_err();
        assert!(e.to_string().contains("oracleGeneral"), "{e}");
        let empty = dir.path().join("e.bin");
        std::fs::write(&empty, b"").unwrap();
        let e = ObjSimulator::open(&empty, ObjFormat::OracleGeneral).unwrap_err();
        assert!(e.to_string().contains("no requests"), "{e}");
        let lazy = ObjSimulator::open_without_stats(&empty, ObjFormat::OracleGeneral, false)
            .unwrap()
            .sweep(&["lru"], &[Capacity::Bytes(100)], 1);
        assert!(lazy.unwrap_err().to_string().contains("no requests"));
        let sim = ObjSimulator::open_without_stats(&csv, ObjFormat::Csv(cols), false).unwrap();
        assert!(!sim.has_next_access());
        let e = sim
            .sweep(&["belady"], &[Capacity::Bytes(100)], 1)
            .unwrap_err();
        assert!(e.to_string().contains("oracleGeneral"), "{e}");
    }
}
