//! Cache policies over variable-size objects and byte capacities, behind one trait.
//!
//! The object-trace counterpart of [`crate::policy`]: each request names an object and its size
//! in bytes; a cache holds at most `capacity_bytes` of objects. The request flow is
//! libCacheSim's (`cache_get_base` in `libCacheSim/cache/cache.c`): a request that finds its
//! object hits; otherwise, if the object fits in the cache at all, objects are evicted until it
//! fits and it is inserted. An object larger than the cache is never admitted (a miss). Each
//! policy lives in its own file and cites its source; where libCacheSim's variant of an algorithm
//! differs from the paper, the file says which one it follows.

mod arc;
mod belady;
mod belady_size;
mod clock;
mod fifo;
mod gdsf;
mod hyperbolic;
mod index;
mod lfu;
mod lirs;
mod lru;
mod pqueue;
mod qdlp;
mod queue;
mod s3fifo;
mod sieve;
mod slru;

use thiserror::Error;

use crate::objtrace::ObjRequest;

pub use arc::Arc;
pub use belady::Belady;
pub use belady_size::BeladySize;
pub use clock::Clock;
pub use fifo::Fifo;
pub use gdsf::Gdsf;
pub use hyperbolic::Hyperbolic;
pub use lfu::Lfu;
pub use lirs::Lirs;
pub use lru::Lru;
pub use qdlp::Qdlp;
pub use s3fifo::S3Fifo;
pub use sieve::Sieve;
pub use slru::Slru;

/// Policy names [`build`] accepts, in the order reports list them.
pub const OBJECT_POLICY_NAMES: [&str; 14] = [
    "lru",
    "fifo",
    "clock",
    "slru",
    "arc",
    "lirs",
    "sieve",
    "s3fifo",
    "qdlp",
    "lfu",
    "gdsf",
    "hyperbolic",
    "belady",
    "beladysize",
];

/// A cache of variable-size objects under a byte capacity.
pub trait ObjectPolicy {
    /// Name with its parameters, as [`build`] would accept it.
    fn name(&self) -> String;
    /// Most bytes the cache holds.
    fn capacity_bytes(&self) -> u64;
    /// Bytes resident now.
    fn used_bytes(&self) -> u64;
    /// Objects resident now.
    fn len(&self) -> usize;
    /// Whether no object is resident.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// One request, in trace order (`now` is its 0-based index): true on a hit. On a miss the
    /// object is inserted if the policy admits it and it fits in the cache at all.
    fn access(&mut self, req: &ObjRequest, now: u64) -> bool;
    /// A hint that `id` will be accessed soon, `stage` saying how soon: the policy may start
    /// loading the memory that access will touch. Changes no state and no decision; the
    /// default does nothing.
    fn prefetch(&self, _id: u64, _stage: Prefetch) {}
}

/// How soon a request named to [`ObjectPolicy::prefetch`] comes. The replay names each request
/// at every stage in turn, so a policy can follow pointers one level per stage: each stage may
/// read what the previous one asked to load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prefetch {
    /// Far ahead: where the id's index entry lives.
    Index,
    /// Nearer: the entry's object record.
    Node,
    /// Next or nearly: what updating that record writes (list neighbours, victims).
    Links,
}

/// The pieces of a policy that follows libCacheSim's generic get (find, evict until it fits,
/// insert); [`get_base`] composes them.
pub(crate) trait BasePolicy {
    /// Looks the object up; on a hit updates the policy's state and returns true.
    fn find(&mut self, req: &ObjRequest, now: u64) -> bool;
    /// Whether a missed object may be inserted (default: it fits in the whole cache).
    fn can_insert(&self, req: &ObjRequest) -> bool {
        req.size <= self.cap()
    }
    /// Evicts one object (or does one step of eviction that frees bytes).
    fn evict(&mut self, req: &ObjRequest, now: u64);
    /// Inserts the missed object; there is room.
    fn insert(&mut self, req: &ObjRequest, now: u64);
    /// Bytes resident.
    fn used(&self) -> u64;
    /// Capacity in bytes.
    fn cap(&self) -> u64;
}

/// libCacheSim's `cache_get_base`.
pub(crate) fn get_base<P: BasePolicy>(p: &mut P, req: &ObjRequest, now: u64) -> bool {
    if p.find(req, now) {
        return true;
    }
    if !p.can_insert(req) {
        return false;
    }
    // An eviction step may move an object between queues without freeing bytes (S3-FIFO,
    // QD-LP), but a policy that never frees anything is a bug: bound the steps that free nothing.
    let mut stalled = 0u32;
    while p.used() + req.size > p.cap() {
        let before = p.used();
        p.evict(req, now);
        stalled = if p.used() < before { 0 } else { stalled + 1 };
        assert!(
            stalled < 1 << 24,
            "eviction frees nothing ({before} bytes resident)"
        );
    }
    p.insert(req, now);
    false
}

/// Why [`build`] could not make a policy.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ObjPolicyError {
    /// Unknown name.
    #[error("unknown policy `{0}`; valid for object traces: {names}", names = OBJECT_POLICY_NAMES.join(", "))]
    Unknown(String),
    /// A parameter is unknown or out of range.
    #[error("policy `{policy}`: {reason}")]
    Param {
        /// The policy.
        policy: String,
        /// What is wrong, and what to write.
        reason: String,
    },
    /// Zero capacity.
    #[error("capacity must be at least one byte")]
    ZeroCapacity,
}

/// A policy spec `name[:key=value,...]`, e.g. `s3fifo:small=0.1,threshold=2`. libCacheSim's
/// spellings are accepted too (`S3-FIFO:fifo-size-ratio=0.1,move-to-main-threshold=2`,
/// `SLRU:n-seg=5`, `QDLP-FIFO`, `FIFO-Reinsertion`).
#[derive(Debug, Clone, PartialEq)]
pub struct PolicySpec {
    /// Policy name (lower case).
    pub name: String,
    /// Parameters in the order given.
    pub params: Vec<(String, String)>,
}

impl PolicySpec {
    /// Parses `name[:k=v,...]`.
    pub fn parse(text: &str) -> Result<Self, ObjPolicyError> {
        let (name, rest) = text.split_once(':').unwrap_or((text, ""));
        let name = name.trim().to_ascii_lowercase();
        // libCacheSim's names for the same algorithms.
        let name = match name.as_str() {
            "s3-fifo" => "s3fifo".to_owned(),
            "qdlp-fifo" => "qdlp".to_owned(),
            "fifo-reinsertion" | "clock" => "clock".to_owned(),
            _ => name,
        };
        let mut params = Vec::new();
        for part in rest.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=').ok_or_else(|| ObjPolicyError::Param {
                policy: name.clone(),
                reason: format!("parameter `{part}` has no `=` (write key=value)"),
            })?;
            let k = k.trim().to_ascii_lowercase();
            // libCacheSim's parameter names.
            let k = match k.as_str() {
                "fifo-size-ratio" => "small",
                "ghost-size-ratio" => "ghost",
                "move-to-main-threshold" => "threshold",
                "n-seg" => "segments",
                "n-bit-counter" => "bits",
                "n-sample" => "samples",
                other => other,
            }
            .to_owned();
            params.push((k, v.trim().to_owned()));
        }
        Ok(Self { name, params })
    }

    fn err(&self, reason: String) -> ObjPolicyError {
        ObjPolicyError::Param {
            policy: self.name.clone(),
            reason,
        }
    }

    /// Refuses parameters not in `known`.
    fn only(&self, known: &[&str]) -> Result<(), ObjPolicyError> {
        for (k, _) in &self.params {
            if !known.contains(&k.as_str()) {
                let valid = if known.is_empty() {
                    "it takes none".to_owned()
                } else {
                    format!("valid: {}", known.join(", "))
                };
                return Err(self.err(format!("unknown parameter `{k}` ({valid})")));
            }
        }
        Ok(())
    }

    fn f64_or(&self, key: &str, default: f64, lo: f64, hi: f64) -> Result<f64, ObjPolicyError> {
        match self.params.iter().rev().find(|(k, _)| k == key) {
            None => Ok(default),
            Some((_, v)) => match v.parse::<f64>() {
                Ok(x) if x >= lo && x <= hi => Ok(x),
                _ => Err(self.err(format!("`{key}={v}`: give a number from {lo} to {hi}"))),
            },
        }
    }

    fn u64_or(&self, key: &str, default: u64, lo: u64, hi: u64) -> Result<u64, ObjPolicyError> {
        match self.params.iter().rev().find(|(k, _)| k == key) {
            None => Ok(default),
            Some((_, v)) => match v.parse::<u64>() {
                Ok(x) if x >= lo && x <= hi => Ok(x),
                _ => Err(self.err(format!(
                    "`{key}={v}`: give a whole number from {lo} to {hi}"
                ))),
            },
        }
    }
}

/// Splits a comma-separated list of specs whose parameters are also comma-separated: a piece
/// with `=` and no `:` continues the spec before it (`s3fifo:small=0.1,threshold=2,lru` is two
/// specs).
pub fn split_specs(list: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for piece in list.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match out.last_mut() {
            Some(prev) if piece.contains('=') && !piece.contains(':') => {
                prev.push(',');
                prev.push_str(piece);
            }
            _ => out.push(piece.to_owned()),
        }
    }
    out
}

/// Whether the named policy reads each request's next access time (an offline oracle).
pub fn needs_next_access(name: &str) -> bool {
    let n = name
        .split(':')
        .next()
        .unwrap_or(name)
        .trim()
        .to_ascii_lowercase();
    n == "belady" || n == "beladysize"
}

/// Builds the policy `spec` (`name[:k=v,...]`) over `capacity_bytes`.
pub fn build(spec: &str, capacity_bytes: u64) -> Result<Box<dyn ObjectPolicy>, ObjPolicyError> {
    let s = PolicySpec::parse(spec)?;
    if capacity_bytes == 0 {
        return Err(ObjPolicyError::ZeroCapacity);
    }
    let c = capacity_bytes;
    Ok(match s.name.as_str() {
        "lru" => {
            s.only(&[])?;
            Box::new(Lru::new(c))
        }
        "fifo" => {
            s.only(&[])?;
            Box::new(Fifo::new(c))
        }
        "clock" => {
            s.only(&["bits"])?;
            Box::new(Clock::new(c, s.u64_or("bits", 1, 1, 16)? as u32))
        }
        "sieve" => {
            s.only(&[])?;
            Box::new(Sieve::new(c))
        }
        "s3fifo" => {
            s.only(&["small", "ghost", "threshold"])?;
            Box::new(S3Fifo::new(
                c,
                s.f64_or("small", 0.10, 0.0, 1.0)?,
                s.f64_or("ghost", 0.90, 0.0, 10.0)?,
                s.u64_or("threshold", 2, 1, 1 << 20)? as i64,
            ))
        }
        "slru" => {
            s.only(&["segments"])?;
            Box::new(Slru::new(c, s.u64_or("segments", 4, 1, 255)? as usize))
        }
        "arc" => {
            s.only(&["step"])?;
            let step_by_size = match s.params.iter().rev().find(|(k, _)| k == "step") {
                None => false,
                Some((_, v)) if v == "1" || v == "one" => false,
                Some((_, v)) if v == "size" => true,
                Some((_, v)) => {
                    return Err(s.err(format!(
                        "`step={v}`: write step=1 (libCacheSim) or step=size"
                    )));
                }
            };
            Box::new(Arc::new(c, step_by_size))
        }
        "qdlp" => {
            s.only(&["small", "ghost", "threshold", "bits"])?;
            Box::new(Qdlp::new(
                c,
                s.f64_or("small", 0.10, 0.0, 1.0)?,
                s.f64_or("ghost", 0.90, 0.0, 10.0)?,
                s.u64_or("threshold", 1, 1, 1 << 20)? as i64,
                s.u64_or("bits", 2, 1, 16)? as u32,
            ))
        }
        "lirs" => {
            s.only(&["hirs"])?;
            Box::new(Lirs::new(c, s.f64_or("hirs", 0.01, 0.0, 1.0)?))
        }
        "gdsf" => {
            s.only(&[])?;
            Box::new(Gdsf::new(c))
        }
        "hyperbolic" => {
            s.only(&["samples", "size"])?;
            let by_size = match s.params.iter().rev().find(|(k, _)| k == "size") {
                None => false,
                Some((_, v)) if v == "true" => true,
                Some((_, v)) if v == "false" => false,
                Some((_, v)) => return Err(s.err(format!("`size={v}`: write true or false"))),
            };
            Box::new(Hyperbolic::new(
                c,
                s.u64_or("samples", 64, 1, 4096)? as u32,
                by_size,
            ))
        }
        "lfu" => {
            s.only(&[])?;
            Box::new(Lfu::new(c))
        }
        "belady" => {
            s.only(&[])?;
            Box::new(Belady::new(c))
        }
        "beladysize" => {
            s.only(&[])?;
            Box::new(BeladySize::new(c))
        }
        _ => return Err(ObjPolicyError::Unknown(s.name)),
    })
}

/// A KV-block policy of [`crate::policy`] (`mcos`, the fast path's `lru` and `clock`,
/// `lru-tail`, `wtinylfu`, ...) run on an object trace read with unit sizes: each object is one
/// block, the capacity is a number of objects, and each request is a one-block request.
pub struct UnitSize {
    inner: Box<dyn crate::policy::CachePolicy>,
    cap: u64,
}

impl std::fmt::Debug for UnitSize {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnitSize")
            .field("policy", &self.inner.name())
            .field("cap", &self.cap)
            .finish()
    }
}

impl ObjectPolicy for UnitSize {
    fn name(&self) -> String {
        self.inner.name().to_owned()
    }
    fn capacity_bytes(&self) -> u64 {
        self.cap
    }
    fn used_bytes(&self) -> u64 {
        self.inner.len() as u64
    }
    fn len(&self) -> usize {
        self.inner.len()
    }
    fn access(&mut self, req: &ObjRequest, now: u64) -> bool {
        let hit = self.inner.access(req.id, now);
        self.inner.request_done(&[req.id]);
        hit
    }
}

/// Builds `spec` for a replay: an object policy, or, when `unit_sizes` (every object read as
/// size 1, capacity in objects), also a KV-block policy of [`crate::POLICY_NAMES`] (but `min`,
/// which needs the whole access sequence: `belady` is the object-trace oracle).
pub fn build_for(
    spec: &str,
    capacity: u64,
    unit_sizes: bool,
) -> Result<Box<dyn ObjectPolicy>, ObjPolicyError> {
    let s = PolicySpec::parse(spec)?;
    let block_policy = crate::POLICY_NAMES.contains(&s.name.as_str());
    let object_policy = OBJECT_POLICY_NAMES.contains(&s.name.as_str());
    if object_policy || !block_policy {
        return build(spec, capacity);
    }
    if !unit_sizes {
        return Err(s.err(
            "is a KV-block policy over unit-size blocks: on an object trace it runs with unit \
             sizes only (--ignore-obj-size; capacities then count objects)"
                .to_owned(),
        ));
    }
    s.only(&[])?;
    if crate::policy::needs_future(&s.name) {
        return Err(s.err(
            "needs the trace's whole access sequence; on object traces use `belady`".to_owned(),
        ));
    }
    let cap = usize::try_from(capacity).map_err(|_| ObjPolicyError::ZeroCapacity)?;
    let inner = crate::policy::by_name(&s.name, cap, None).map_err(|e| s.err(e.to_string()))?;
    Ok(Box::new(UnitSize {
        inner,
        cap: capacity,
    }))
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::objtrace::NEVER_AGAIN;

    /// Requests over `(id, size)` with next-access indices filled in.
    pub(crate) fn trace(items: &[(u64, u64)]) -> Vec<ObjRequest> {
        let mut reqs: Vec<ObjRequest> = items
            .iter()
            .enumerate()
            .map(|(i, &(id, size))| ObjRequest {
                time: i as u64,
                id,
                size,
                next_access_vtime: NEVER_AGAIN,
            })
            .collect();
        let mut last = std::collections::HashMap::new();
        for i in (0..reqs.len()).rev() {
            if let Some(&n) = last.get(&reqs[i].id) {
                reqs[i].next_access_vtime = n;
            }
            last.insert(reqs[i].id, i as i64 + 1);
        }
        reqs
    }

    /// Replays and checks the byte bound after each request; returns the hit pattern.
    pub(crate) fn run(p: &mut dyn ObjectPolicy, reqs: &[ObjRequest]) -> Vec<bool> {
        reqs.iter()
            .enumerate()
            .map(|(i, r)| {
                let hit = p.access(r, i as u64);
                assert!(
                    p.used_bytes() <= p.capacity_bytes(),
                    "{} over capacity",
                    p.name()
                );
                hit
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{run, trace};
    use super::*;

    #[test]
    fn every_policy_respects_bytes_and_refuses_oversized_objects() {
        let mut items = Vec::new();
        let mut x = 7u64;
        for _ in 0..3000 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let id = (x >> 33) % 300;
            items.push((id, 1 + id % 17 * 100));
        }
        items.push((10_000, 1_000_000));
        let reqs = trace(&items);
        for name in OBJECT_POLICY_NAMES {
            for cap in [1000u64, 5000, 40_000] {
                let mut p = build(name, cap).unwrap();
                let hits = run(p.as_mut(), &reqs);
                assert!(!hits[hits.len() - 1], "{name}: the oversized object missed");
                assert!(hits.iter().any(|&h| h), "{name} at {cap} never hit");
            }
        }
    }

    #[test]
    fn block_policies_run_on_unit_size_objects_only() {
        let reqs = trace(&[(1, 1), (2, 1), (1, 1), (3, 1), (1, 1)]);
        for name in ["mcos", "lru", "wtinylfu", "lru-tail"] {
            let mut p = build_for(name, 2, true).unwrap();
            assert_eq!(p.name(), name);
            let hits = run(p.as_mut(), &reqs);
            assert!(hits[2] && !hits[0], "{name}: {hits:?}");
        }
        let e = build_for("mcos", 2, false).err().unwrap().to_string();
        assert!(e.contains("--ignore-obj-size"), "{e}");
        assert!(
            build_for("min", 2, true)
                .err()
                .unwrap()
                .to_string()
                .contains("belady")
        );
        assert_eq!(build_for("fifo", 2, false).unwrap().name(), "fifo");
    }

    #[test]
    fn spec_lists_split_between_specs_not_parameters() {
        assert_eq!(
            split_specs("s3fifo:small=0.1,threshold=2, lru,slru:segments=5"),
            ["s3fifo:small=0.1,threshold=2", "lru", "slru:segments=5"]
        );
        assert!(split_specs(" , ").is_empty());
    }

    #[test]
    fn specs_parse_and_refuse_with_reasons() {
        assert!(build("s3fifo:small=0.2,threshold=1", 100).is_ok());
        let e = build("s3fifo:smal=0.2", 100).err().unwrap().to_string();
        assert!(
            e.contains("unknown parameter `smal`") && e.contains("small"),
            "{e}"
        );
        let e = build("s3fifo:small=2", 100).err().unwrap().to_string();
        assert!(e.contains("from 0 to 1"), "{e}");
        let e = build("nope", 100).err().unwrap().to_string();
        assert!(e.contains("lru") && e.contains("belady"), "{e}");
        assert_eq!(build("lru", 0).err(), Some(ObjPolicyError::ZeroCapacity));
        assert!(build("lru:x", 10).is_err());
        let p = build("S3-FIFO:fifo-size-ratio=0.2,move-to-main-threshold=1", 100).unwrap();
        assert_eq!(p.name(), "s3fifo:small=0.2,ghost=0.9,threshold=1");
        assert_eq!(
            build("SLRU:n-seg=5", 100).unwrap().name(),
            "slru:segments=5"
        );
    }
}
