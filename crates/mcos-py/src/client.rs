//! `mcos.Client`: mcosd over its Unix socket (shared region) or TCP, and `mcos.RegionBuffer`.
//!
//! Copies per block on the local path: a caller buffer inside the shared region (a
//! `RegionBuffer`, or a numpy view of one) gets the block straight from the daemon (one copy,
//! tier -> region, made by the daemon); any other buffer is staged (tier -> region by the
//! daemon, region -> buffer here: two). The region is split in two: the staging area (the
//! first `min(64, max_batch_blocks)` blocks, used by one call at a time under the connection's
//! lock) and the arena that `alloc` hands out. Over TCP the payload arrives in the reply frame
//! and is copied into the buffer (socket -> frame buffer -> caller).

use crate::buffers::{self, HostBuf, Span};
use crate::errors::{self, Closed, InvalidArgument, RegionError};
use crate::intents::IntentArg;
use crate::keys;
use mcos_client::{ClientIntent, ClientOptions, Outcome};
use mcos_core::BlockKey;
use mcos_proto::local::Region;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Most blocks staged per request (bounds the staging area whatever the block size).
const STAGING_BLOCKS_MAX: usize = 64;
/// Arena allocations are page-aligned (the daemon's copies run at full speed on them, and a
/// numpy view over one is aligned for every dtype).
const ARENA_ALIGN: usize = 4096;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// First-fit free list over the arena part of the region.
struct Arena {
    /// Free ranges (offset, length), sorted by offset, never adjacent (coalesced).
    free: Vec<(usize, usize)>,
}

impl Arena {
    fn alloc(&mut self, len: usize) -> Option<usize> {
        let len = len.max(1).div_ceil(ARENA_ALIGN) * ARENA_ALIGN;
        let i = self.free.iter().position(|&(_, l)| l >= len)?;
        let (off, l) = self.free[i];
        if l == len {
            self.free.remove(i);
        } else {
            self.free[i] = (off + len, l - len);
        }
        Some(off)
    }

    fn release(&mut self, off: usize, len: usize) {
        let len = len.max(1).div_ceil(ARENA_ALIGN) * ARENA_ALIGN;
        let i = self.free.partition_point(|&(o, _)| o < off);
        self.free.insert(i, (off, len));
        if i + 1 < self.free.len() && self.free[i].0 + self.free[i].1 == self.free[i + 1].0 {
            self.free[i].1 += self.free[i + 1].1;
            self.free.remove(i + 1);
        }
        if i > 0 && self.free[i - 1].0 + self.free[i - 1].1 == self.free[i].0 {
            self.free[i - 1].1 += self.free[i].1;
            self.free.remove(i);
        }
    }

    fn free_bytes(&self) -> usize {
        self.free.iter().map(|&(_, l)| l).sum()
    }
}

/// The local path's shared region, as this binding splits it.
struct Local {
    region: Arc<Region>,
    base: usize,
    len: usize,
    staging_blocks: usize,
    /// Where the arena starts: the staging area below it is never a caller's buffer.
    arena_start: usize,
    arena: Arc<Mutex<Arena>>,
    arena_bytes: usize,
}

impl Local {
    /// The region offset of `s` when all of it lies inside the region.
    fn offset_of(&self, s: Span) -> Option<u64> {
        (s.addr >= self.base + self.arena_start && s.addr + s.len <= self.base + self.len)
            .then(|| (s.addr - self.base) as u64)
    }
}

/// What one block's get came to.
#[derive(Copy, Clone)]
pub enum Got {
    Hit(usize),
    Miss,
    /// The block exists but could not be delivered (the node failed on it, or the buffer is
    /// shorter than the block): reported as a miss, counted.
    LoadError,
}

/// A connection to mcosd. Thread-safe: calls on one client are serialised (one request in
/// flight per connection); use one client per thread for parallel I/O.
#[pyclass(module = "mcos", name = "Client", frozen)]
pub struct Client {
    conn: Mutex<Option<mcos_client::Client>>,
    local: Option<Local>,
    address: String,
    block_bytes: usize,
    batch_len: usize,
    /// Written by calls (any thread, under the connection lock or not), read by `stats`.
    load_errors: AtomicU64,
    store_errors: AtomicU64,
}

fn closed() -> PyErr {
    Closed::new_err("the client is closed")
}

impl Client {
    /// Runs `f` on the connection with the GIL released.
    fn with_conn<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut mcos_client::Client) -> PyResult<T> + Send,
    ) -> PyResult<T> {
        py.detach(|| {
            let mut g = lock(&self.conn);
            let c = g.as_mut().ok_or_else(closed)?;
            f(c)
        })
    }

    /// Fetches `keys` into `spans` (the GIL released); one result per key.
    fn fetch(&self, py: Python<'_>, keys: &[BlockKey], spans: &[Span]) -> PyResult<Vec<Got>> {
        let bb = self.block_bytes;
        let batch = self.batch_len;
        let got = self.with_conn(py, |c| {
            let mut out = Vec::with_capacity(keys.len());
            match &self.local {
                Some(l) => {
                    let mut descs: Vec<(BlockKey, u64, u32)> = Vec::with_capacity(batch);
                    let mut slot: Vec<Option<usize>> = Vec::with_capacity(batch);
                    let mut i = 0;
                    while i < keys.len() {
                        descs.clear();
                        slot.clear();
                        let mut staged = 0;
                        let start = i;
                        while i < keys.len() && descs.len() < batch {
                            let s = spans[i];
                            if let Some(off) = l.offset_of(s) {
                                descs.push((keys[i], off, cap_u32(s.len)));
                                slot.push(None);
                            } else {
                                if staged == l.staging_blocks {
                                    break;
                                }
                                descs.push((keys[i], (staged * bb) as u64, bb as u32));
                                slot.push(Some(staged));
                                staged += 1;
                            }
                            i += 1;
                        }
                        let res = c.get_into_region(&descs).map_err(errors::client)?;
                        for (j, o) in res.into_iter().enumerate() {
                            let s = spans[start + j];
                            out.push(match (o, slot[j]) {
                                (Outcome::Hit { len, .. }, None) => Got::Hit(len as usize),
                                (Outcome::Hit { len, .. }, Some(k)) => {
                                    let len = len as usize;
                                    match (len <= s.len)
                                        .then(|| l.region.range((k * bb) as u64, len))
                                    {
                                        Some(Some(src)) => {
                                            // SAFETY: the reply arrived, so the daemon no
                                            // longer writes this staging slot; the
                                            // destination is the caller's exported buffer
                                            // (held for the call, not overlapping any other
                                            // buffer of the batch nor the staging area,
                                            // which offset_of ruled out).
                                            unsafe {
                                                std::ptr::copy_nonoverlapping(
                                                    src,
                                                    s.addr as *mut u8,
                                                    len,
                                                )
                                            };
                                            Got::Hit(len)
                                        }
                                        _ => Got::LoadError,
                                    }
                                }
                                (Outcome::Miss, _) => Got::Miss,
                                _ => Got::LoadError,
                            });
                        }
                    }
                }
                None => {
                    let mut bufs: Vec<&mut [u8]> = spans
                        .iter()
                        // SAFETY: each span is a caller's exported, writable buffer held for
                        // the call; acquire_all refused overlapping ones.
                        .map(|s| unsafe {
                            std::slice::from_raw_parts_mut(s.addr as *mut u8, s.len)
                        })
                        .collect();
                    for o in c.get_into(keys, &mut bufs).map_err(errors::client)? {
                        out.push(match o {
                            Outcome::Hit { len, .. } => Got::Hit(len as usize),
                            Outcome::Miss => Got::Miss,
                            _ => Got::LoadError,
                        });
                    }
                }
            }
            Ok(out)
        })?;
        let errs = got.iter().filter(|g| matches!(g, Got::LoadError)).count();
        self.load_errors.fetch_add(errs as u64, Ordering::Relaxed);
        Ok(got)
    }

    /// Stores `spans` under `keys` (the GIL released); true per block stored (now or before).
    fn store(
        &self,
        py: Python<'_>,
        class: u8,
        keys: &[BlockKey],
        spans: &[Span],
    ) -> PyResult<Vec<bool>> {
        let bb = self.block_bytes;
        if let Some((i, s)) = spans.iter().enumerate().find(|(_, s)| s.len > bb) {
            return Err(InvalidArgument::new_err(format!(
                "buffer {i} holds {} bytes; the daemon's block size is {bb}",
                s.len
            )));
        }
        let batch = self.batch_len;
        let outcomes = self.with_conn(py, |c| match &self.local {
            Some(l) => {
                let mut out = Vec::with_capacity(keys.len());
                let mut descs: Vec<(BlockKey, u64, u32)> = Vec::with_capacity(batch);
                let mut i = 0;
                while i < keys.len() {
                    descs.clear();
                    let mut staged = 0;
                    while i < keys.len() && descs.len() < batch {
                        let s = spans[i];
                        if let Some(off) = l.offset_of(s) {
                            descs.push((keys[i], off, s.len as u32));
                        } else {
                            if staged == l.staging_blocks {
                                break;
                            }
                            let off = staged * bb;
                            let dst = l.region.range(off as u64, s.len).ok_or_else(|| {
                                RegionError::new_err("staging slot outside the region")
                            })?;
                            // SAFETY: no request is in flight on this connection (its lock is
                            // held), so the staging slot is ours; the source is the caller's
                            // exported buffer, which lies outside the region.
                            unsafe {
                                std::ptr::copy_nonoverlapping(s.addr as *const u8, dst, s.len)
                            };
                            descs.push((keys[i], off as u64, s.len as u32));
                            staged += 1;
                        }
                        i += 1;
                    }
                    out.extend(c.put_from_region(class, &descs).map_err(errors::client)?);
                }
                Ok(out)
            }
            None => {
                let blocks: Vec<(BlockKey, &[u8])> = keys
                    .iter()
                    .zip(spans)
                    // SAFETY: each span is a caller's exported buffer held for the call.
                    .map(|(&k, s)| {
                        (k, unsafe {
                            std::slice::from_raw_parts(s.addr as *const u8, s.len)
                        })
                    })
                    .collect();
                c.put_class(class, &blocks).map_err(errors::client)
            }
        })?;
        let failed = outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Failed))
            .count();
        self.store_errors
            .fetch_add(failed as u64, Ordering::Relaxed);
        Ok(outcomes.iter().map(Outcome::is_stored).collect())
    }
}

fn cap_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// What keeps a call's caller memory exported (and RegionBuffers alive) while it runs.
type Exports = (Vec<HostBuf>, Vec<Span>, Vec<Py<RegionBuffer>>);

/// Exported buffers and their spans (RegionBuffer objects map to their own range).
fn spans_of(objs: &Bound<'_, PyAny>, write: bool) -> PyResult<Exports> {
    // RegionBuffers are not buffer-protocol objects under the abi3 build (3.9): take their range
    // directly, and everything else through the buffer protocol or DLPack.
    let list: Vec<Bound<'_, PyAny>> = objs.try_iter()?.collect::<PyResult<_>>()?;
    let mut holds = Vec::new();
    let mut rbs = Vec::new();
    let mut spans = Vec::with_capacity(list.len());
    let mut others = Vec::new();
    for o in &list {
        if let Ok(rb) = o.cast::<RegionBuffer>() {
            let r = rb.get();
            spans.push(Some(Span {
                addr: r.addr,
                len: r.len,
            }));
            rbs.push(rb.clone().unbind());
        } else {
            spans.push(None);
            others.push(o.clone());
        }
    }
    if !others.is_empty() {
        let tuple = pyo3::types::PyTuple::new(objs.py(), &others)?;
        holds = buffers::acquire_all(tuple.as_any(), write)?;
    }
    let mut it = holds.iter();
    let spans = spans
        .into_iter()
        .map(|s| s.or_else(|| it.next().map(HostBuf::span)))
        .collect::<Option<Vec<Span>>>()
        .ok_or_else(|| InvalidArgument::new_err("buffer count changed while reading"))?;
    Ok((holds, spans, rbs))
}

fn check_lengths(keys: usize, bufs: usize) -> PyResult<()> {
    if keys != bufs {
        return Err(InvalidArgument::new_err(format!(
            "{keys} keys but {bufs} buffers (one buffer per key)"
        )));
    }
    Ok(())
}

#[pymethods]
impl Client {
    /// Connects to mcosd: a socket path (`/run/mcosd.sock`, `unix:PATH`) for the local path
    /// with a shared region, or `host:port` / `tcp://host:port`.
    #[new]
    #[pyo3(signature = (address, tenant = "default", token = "", region_bytes = 0, reconnect_timeout_s = 5.0))]
    fn new(
        py: Python<'_>,
        address: &str,
        tenant: &str,
        token: &str,
        region_bytes: usize,
        reconnect_timeout_s: f64,
    ) -> PyResult<Client> {
        let opts = ClientOptions {
            tenant: tenant.into(),
            token: token.into(),
            region_bytes,
            reconnect_timeout: Duration::from_secs_f64(reconnect_timeout_s.max(0.0)),
        };
        let addr = address.to_string();
        let c = py
            .detach(|| mcos_client::Client::connect_with(&addr, opts))
            .map_err(errors::client)?;
        let bb = c.block_bytes() as usize;
        let batch = (c.welcome().max_batch_blocks.max(1) as usize).min(1 << 16);
        let local = match c.region() {
            Some(region) => {
                let len = region.len();
                let base = region
                    .range(0, len)
                    .ok_or_else(|| RegionError::new_err("empty region"))?
                    as usize;
                let staging_blocks = STAGING_BLOCKS_MAX.min(batch).min(len / bb.max(1));
                if staging_blocks == 0 {
                    return Err(RegionError::new_err(format!(
                        "region_bytes={len} holds no block of the daemon's {bb} bytes"
                    )));
                }
                let arena_start = (staging_blocks * bb).div_ceil(ARENA_ALIGN) * ARENA_ALIGN;
                let arena_bytes = (len.saturating_sub(arena_start) / ARENA_ALIGN) * ARENA_ALIGN;
                let free = if arena_bytes > 0 {
                    vec![(arena_start, arena_bytes)]
                } else {
                    Vec::new()
                };
                Some(Local {
                    region,
                    base,
                    len,
                    staging_blocks,
                    arena_start,
                    arena: Arc::new(Mutex::new(Arena { free })),
                    arena_bytes,
                })
            }
            None => None,
        };
        Ok(Client {
            conn: Mutex::new(Some(c)),
            local,
            address: address.to_string(),
            block_bytes: bb,
            batch_len: batch,
            load_errors: AtomicU64::new(0),
            store_errors: AtomicU64::new(0),
        })
    }

    /// The daemon's block size (largest payload per key).
    #[getter]
    fn block_bytes(&self) -> usize {
        self.block_bytes
    }

    /// Whether this is the local path (Unix socket with a shared region).
    #[getter]
    fn is_local(&self) -> bool {
        self.local.is_some()
    }

    /// The address connected to.
    #[getter]
    fn address(&self) -> &str {
        &self.address
    }

    /// Bytes of the shared region's arena (what `alloc` can hand out in all); 0 over TCP.
    #[getter]
    fn arena_bytes(&self) -> usize {
        self.local.as_ref().map_or(0, |l| l.arena_bytes)
    }

    /// Blocks that existed but could not be delivered (reported as misses) since connect.
    #[getter]
    fn load_errors(&self) -> u64 {
        self.load_errors.load(Ordering::Relaxed)
    }

    /// Memory inside the shared region: `get_into` writes blocks into it with no copy on this
    /// side, `put` reads them from it. View it with `numpy.asarray(buf)` (uint8, no copy).
    fn alloc(&self, nbytes: usize) -> PyResult<RegionBuffer> {
        let l = self.local.as_ref().ok_or_else(|| {
            RegionError::new_err("alloc needs the local path (a Unix socket); this client is TCP")
        })?;
        let mut arena = lock(&l.arena);
        let off = arena.alloc(nbytes).ok_or_else(|| {
            RegionError::new_err(format!(
                "the region's arena has no {nbytes} contiguous bytes free ({} free of {}); \
                 connect with a larger region_bytes=",
                arena.free_bytes(),
                l.arena_bytes
            ))
        })?;
        drop(arena);
        Ok(RegionBuffer {
            region: l.region.clone(),
            arena: l.arena.clone(),
            addr: l.base + off,
            offset: off,
            len: nbytes,
        })
    }

    /// Stores one buffer per key (any buffer-protocol object or host DLPack tensor of at most
    /// `block_bytes`). Returns, per key, whether it is stored (now or before).
    #[pyo3(signature = (keys, buffers, priority_class = 0))]
    fn put(
        &self,
        py: Python<'_>,
        keys: &Bound<'_, PyAny>,
        buffers: &Bound<'_, PyAny>,
        priority_class: u8,
    ) -> PyResult<Vec<bool>> {
        let keys = keys::keys(keys)?;
        let (holds, spans, _rbs) = spans_of(buffers, false)?;
        check_lengths(keys.len(), spans.len())?;
        let r = self.store(py, priority_class, &keys, &spans);
        drop(holds);
        r
    }

    /// Fetches blocks straight into caller memory (one writable buffer per key). Returns, per
    /// key, whether it was a hit; a block that exists but cannot be delivered is a miss and
    /// counted in `load_errors`.
    fn get_into(
        &self,
        py: Python<'_>,
        keys: &Bound<'_, PyAny>,
        buffers: &Bound<'_, PyAny>,
    ) -> PyResult<Vec<bool>> {
        let keys = keys::keys(keys)?;
        let (holds, spans, _rbs) = spans_of(buffers, true)?;
        check_lengths(keys.len(), spans.len())?;
        let got = self.fetch(py, &keys, &spans);
        drop(holds);
        Ok(got?.into_iter().map(|g| matches!(g, Got::Hit(_))).collect())
    }

    /// Fetches blocks as bytes (None for a miss). One more copy than `get_into`.
    fn get<'py>(
        &self,
        py: Python<'py>,
        keys: &Bound<'py, PyAny>,
    ) -> PyResult<Vec<Option<Bound<'py, PyBytes>>>> {
        let keys = keys::keys(keys)?;
        let mut bufs: Vec<Vec<u8>> = keys.iter().map(|_| vec![0u8; self.block_bytes]).collect();
        let spans: Vec<Span> = bufs
            .iter_mut()
            .map(|b| Span {
                addr: b.as_mut_ptr() as usize,
                len: b.len(),
            })
            .collect();
        let got = self.fetch(py, &keys, &spans)?;
        Ok(got
            .into_iter()
            .zip(&bufs)
            .map(|(g, b)| match g {
                Got::Hit(len) => Some(PyBytes::new(py, &b[..len])),
                _ => None,
            })
            .collect())
    }

    /// Per key, whether it is stored (no access is counted).
    fn exists(&self, py: Python<'_>, keys: &Bound<'_, PyAny>) -> PyResult<Vec<bool>> {
        let keys = keys::keys(keys)?;
        let t = self.with_conn(py, |c| c.exists(&keys).map_err(errors::client))?;
        Ok(t.iter().map(Option::is_some).collect())
    }

    /// Per key, the tier it is stored in (0 = fastest), or None.
    fn tiers(&self, py: Python<'_>, keys: &Bound<'_, PyAny>) -> PyResult<Vec<Option<u8>>> {
        let keys = keys::keys(keys)?;
        self.with_conn(py, |c| c.exists(&keys).map_err(errors::client))
    }

    /// Length of the longest stored prefix of `keys` (no access is counted).
    fn longest_prefix(&self, py: Python<'_>, keys: &Bound<'_, PyAny>) -> PyResult<usize> {
        let keys = keys::keys(keys)?;
        self.with_conn(py, |c| c.longest_prefix(&keys).map_err(errors::client))
    }

    /// Pins stored blocks under a lease of `ttl_s` seconds (None: the daemon's default). A pin
    /// lasts until `unpin`, its lease, or this connection's end. True per block pinned.
    #[pyo3(signature = (keys, ttl_s = None))]
    fn pin(
        &self,
        py: Python<'_>,
        keys: &Bound<'_, PyAny>,
        ttl_s: Option<f64>,
    ) -> PyResult<Vec<bool>> {
        let keys = keys::keys(keys)?;
        let ttl = ttl_s.map(|s| Duration::from_secs_f64(s.max(0.001)));
        let o = self.with_conn(py, |c| c.pin(&keys, ttl).map_err(errors::client))?;
        Ok(o.iter().map(|o| matches!(o, Outcome::Done)).collect())
    }

    /// Releases pins this connection holds. True per pin released.
    fn unpin(&self, py: Python<'_>, keys: &Bound<'_, PyAny>) -> PyResult<Vec<bool>> {
        let keys = keys::keys(keys)?;
        let o = self.with_conn(py, |c| c.unpin(&keys).map_err(errors::client))?;
        Ok(o.iter().map(|o| matches!(o, Outcome::Done)).collect())
    }

    /// Delivers one intent for every key: exactly one of `priority_class=`, `expect_reuse=`,
    /// `sequence=` (keys at positions `first_position..`) or `queued=True`. True per block the
    /// intent applied to (a block that is not stored: False).
    #[pyo3(signature = (keys, *, priority_class = None, expect_reuse = None, sequence = None, first_position = 0, queued = false))]
    #[allow(clippy::too_many_arguments)]
    fn intent(
        &self,
        py: Python<'_>,
        keys: &Bound<'_, PyAny>,
        priority_class: Option<u8>,
        expect_reuse: Option<u32>,
        sequence: Option<u32>,
        first_position: u32,
        queued: bool,
    ) -> PyResult<Vec<bool>> {
        let keys = keys::keys(keys)?;
        let arg = IntentArg::parse(
            priority_class,
            expect_reuse,
            sequence,
            first_position,
            queued,
        )?;
        let list: Vec<(BlockKey, ClientIntent)> = keys
            .iter()
            .enumerate()
            .map(|(i, &k)| {
                let ci = match arg {
                    IntentArg::Class(c) => ClientIntent::Class(c),
                    IntentArg::ExpectReuse(n) => ClientIntent::ExpectReuse(n),
                    IntentArg::Sequence {
                        sequence,
                        first_position,
                    } => ClientIntent::Sequence {
                        sequence,
                        position: first_position.saturating_add(i as u32),
                    },
                    IntentArg::Queued => ClientIntent::Queued,
                };
                (k, ci)
            })
            .collect();
        let o = self.with_conn(py, |c| c.intents(&list).map_err(errors::client))?;
        Ok(o.iter().map(|o| matches!(o, Outcome::Done)).collect())
    }

    /// The daemon's and node's statistics, plus this client's (`client`: load and store
    /// errors, path).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let text = self.with_conn(py, |c| c.stats_json().map_err(errors::client))?;
        let d = py.import("json")?.call_method1("loads", (text,))?;
        let me = PyDict::new(py);
        me.set_item("load_errors", self.load_errors.load(Ordering::Relaxed))?;
        me.set_item("store_errors", self.store_errors.load(Ordering::Relaxed))?;
        me.set_item("local", self.local.is_some())?;
        me.set_item("block_bytes", self.block_bytes)?;
        d.set_item("client", me)?;
        Ok(d)
    }

    /// Closes the connection (its pins are released by the daemon). Idempotent.
    fn close(&self, py: Python<'_>) {
        py.detach(|| lock(&self.conn).take());
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __exit__(
        &self,
        py: Python<'_>,
        _t: &Bound<'_, PyAny>,
        _v: &Bound<'_, PyAny>,
        _tb: &Bound<'_, PyAny>,
    ) {
        self.close(py);
    }

    fn __repr__(&self) -> String {
        format!(
            "mcos.Client({:?}, {}, block_bytes={})",
            self.address,
            if self.local.is_some() { "local" } else { "tcp" },
            self.block_bytes
        )
    }
}

/// Memory inside a client's shared region, returned to the arena when collected. Keep it (or a
/// numpy view of it) alive while the daemon may write into it; never pass one range to two
/// calls at once.
#[pyclass(module = "mcos", name = "RegionBuffer", frozen)]
pub struct RegionBuffer {
    /// Keeps the mapping alive as long as any view of it.
    #[allow(dead_code)]
    region: Arc<Region>,
    arena: Arc<Mutex<Arena>>,
    addr: usize,
    offset: usize,
    len: usize,
}

impl Drop for RegionBuffer {
    fn drop(&mut self) {
        lock(&self.arena).release(self.offset, self.len);
    }
}

#[pymethods]
impl RegionBuffer {
    /// Offset in the shared region.
    #[getter]
    fn offset(&self) -> usize {
        self.offset
    }

    /// Bytes.
    #[getter]
    fn nbytes(&self) -> usize {
        self.len
    }

    fn __len__(&self) -> usize {
        self.len
    }

    /// numpy's array interface: `numpy.asarray(buf)` is a uint8 view of this memory (no copy;
    /// the array keeps the buffer alive).
    #[getter]
    fn __array_interface__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let d = PyDict::new(py);
        d.set_item("shape", (self.len,))?;
        d.set_item("typestr", "|u1")?;
        d.set_item("data", (self.addr, false))?;
        d.set_item("version", 3)?;
        Ok(d)
    }

    fn __repr__(&self) -> String {
        format!(
            "mcos.RegionBuffer(offset={}, nbytes={})",
            self.offset, self.len
        )
    }
}
