//! `mcos.Node`: the client's API on a node embedded in this process (no daemon). One copy per
//! block each way: the node copies between its tier and the caller's buffer.

use crate::buffers::{self, Span};
use crate::errors::{self, Closed, InvalidArgument};
use crate::intents::IntentArg;
use crate::keys;
use mcos_core::{BlockKey, Intent, IntentAction, PriorityClass};
use mcos_node::{Fetched, Node as RustNode, NodeConfig, NodeError, PutOutcome};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};
use serde_json::json;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{RwLock, RwLockReadGuard};

/// An MCOS node in this process. Thread-safe; calls from several threads run in parallel (the
/// GIL is released while the node works).
#[pyclass(module = "mcos", name = "Node", frozen)]
pub struct Node {
    /// Read-locked by every call, write-locked by `close`.
    node: RwLock<Option<RustNode>>,
    block_bytes: usize,
    /// Written by any calling thread, read by `stats`.
    load_errors: AtomicU64,
    store_errors: AtomicU64,
}

fn closed() -> PyErr {
    Closed::new_err("the node is closed")
}

impl Node {
    fn with_node<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&RustNode) -> PyResult<T> + Send,
    ) -> PyResult<T> {
        py.detach(|| {
            let g: RwLockReadGuard<'_, Option<RustNode>> =
                self.node.read().unwrap_or_else(|e| e.into_inner());
            let n = g.as_ref().ok_or_else(closed)?;
            f(n)
        })
    }

    /// Per key: Some(len) on a hit, None on a miss; node failures are misses, counted.
    fn fetch(
        &self,
        py: Python<'_>,
        keys: &[BlockKey],
        spans: &[Span],
    ) -> PyResult<Vec<Option<usize>>> {
        let (got, errs) = self.with_node(py, |n| {
            let mut errs = 0u64;
            let got = keys
                .iter()
                .zip(spans)
                .map(|(&k, s)| {
                    // SAFETY: the span is a caller's exported, writable buffer held for the
                    // call; acquire_all refused overlapping ones.
                    let out = unsafe { std::slice::from_raw_parts_mut(s.addr as *mut u8, s.len) };
                    match n.get_into(k, None, out) {
                        Ok(Fetched::Hit { len, .. }) => Some(len),
                        Ok(Fetched::Miss) => None,
                        Err(_) => {
                            errs += 1;
                            None
                        }
                    }
                })
                .collect::<Vec<_>>();
            Ok((got, errs))
        })?;
        self.load_errors.fetch_add(errs, Ordering::Relaxed);
        Ok(got)
    }
}

fn open_config(py: Python<'_>, config: &Bound<'_, PyAny>) -> PyResult<NodeConfig> {
    let invalid = |e: NodeError| InvalidArgument::new_err(e.to_string());
    if let Ok(s) = config.cast::<PyString>() {
        let s: String = s.extract()?;
        let s = s.as_str();
        let path = std::path::Path::new(s);
        let text = if !s.contains('\n') && path.is_file() {
            std::fs::read_to_string(path).map_err(|e| {
                InvalidArgument::new_err(format!("cannot read node config {s}: {e}"))
            })?
        } else {
            s.to_string()
        };
        return NodeConfig::from_toml(&text).map_err(invalid);
    }
    if config.is_instance_of::<PyDict>() {
        let text: String = py
            .import("json")?
            .call_method1("dumps", (config,))?
            .extract()?;
        let cfg: NodeConfig = serde_json::from_str(&text)
            .map_err(|e| InvalidArgument::new_err(format!("invalid node config: {e}")))?;
        cfg.validate().map_err(invalid)?;
        return Ok(cfg);
    }
    Err(InvalidArgument::new_err(
        "Node(config): a dict, TOML text, or the path of a TOML file",
    ))
}

/// The node's statistics in the daemon's `stats()["node"]` shape.
#[pymethods]
impl Node {
    /// Opens a node: `config` is a dict, TOML text, or a TOML file's path (the format of
    /// `mcos --config`; README "Node configuration").
    #[new]
    fn new(py: Python<'_>, config: &Bound<'_, PyAny>) -> PyResult<Node> {
        let cfg = open_config(py, config)?;
        let block_bytes = cfg.block_bytes as usize;
        let node = py.detach(|| RustNode::open(cfg)).map_err(errors::node)?;
        Ok(Node {
            node: RwLock::new(Some(node)),
            block_bytes,
            load_errors: AtomicU64::new(0),
            store_errors: AtomicU64::new(0),
        })
    }

    /// Block size (largest payload per key).
    #[getter]
    fn block_bytes(&self) -> usize {
        self.block_bytes
    }

    /// Blocks that existed but could not be delivered (reported as misses).
    #[getter]
    fn load_errors(&self) -> u64 {
        self.load_errors.load(Ordering::Relaxed)
    }

    /// Stores one buffer per key; per key, whether it is stored (now or before).
    #[pyo3(signature = (keys, buffers, priority_class = 0))]
    fn put(
        &self,
        py: Python<'_>,
        keys: &Bound<'_, PyAny>,
        buffers: &Bound<'_, PyAny>,
        priority_class: u8,
    ) -> PyResult<Vec<bool>> {
        let keys = keys::keys(keys)?;
        let holds = buffers::acquire_all(buffers, false)?;
        if keys.len() != holds.len() {
            return Err(InvalidArgument::new_err(format!(
                "{} keys but {} buffers (one buffer per key)",
                keys.len(),
                holds.len()
            )));
        }
        let bb = self.block_bytes;
        if let Some((i, h)) = holds.iter().enumerate().find(|(_, h)| h.len > bb) {
            return Err(InvalidArgument::new_err(format!(
                "buffer {i} holds {} bytes; the node's block size is {bb}",
                h.len
            )));
        }
        let spans: Vec<Span> = holds.iter().map(|h| h.span()).collect();
        let stored = self.with_node(py, |n| {
            let mut errs = 0u64;
            let stored = keys
                .iter()
                .zip(&spans)
                .map(|(&k, s)| {
                    // SAFETY: the span is a caller's exported buffer held for the call.
                    let p = unsafe { std::slice::from_raw_parts(s.addr as *const u8, s.len) };
                    match n.put_class(k, PriorityClass(priority_class), p) {
                        Ok(PutOutcome::Stored(_) | PutOutcome::Present) => true,
                        Ok(PutOutcome::Rejected(_)) => false,
                        Err(_) => {
                            errs += 1;
                            false
                        }
                    }
                })
                .collect::<Vec<bool>>();
            Ok((stored, errs))
        });
        drop(holds);
        let (stored, errs) = stored?;
        self.store_errors.fetch_add(errs, Ordering::Relaxed);
        Ok(stored)
    }

    /// Fetches blocks straight into caller memory; per key, whether it was a hit (a block the
    /// node fails to deliver is a miss, counted in `load_errors`).
    fn get_into(
        &self,
        py: Python<'_>,
        keys: &Bound<'_, PyAny>,
        buffers: &Bound<'_, PyAny>,
    ) -> PyResult<Vec<bool>> {
        let keys = keys::keys(keys)?;
        let holds = buffers::acquire_all(buffers, true)?;
        if keys.len() != holds.len() {
            return Err(InvalidArgument::new_err(format!(
                "{} keys but {} buffers (one buffer per key)",
                keys.len(),
                holds.len()
            )));
        }
        let spans: Vec<Span> = holds.iter().map(|h| h.span()).collect();
        let got = self.fetch(py, &keys, &spans);
        drop(holds);
        Ok(got?.iter().map(Option::is_some).collect())
    }

    /// Fetches blocks as bytes (None for a miss).
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
            .map(|(g, b)| g.map(|len| PyBytes::new(py, &b[..len])))
            .collect())
    }

    /// Per key, whether it is stored (no access is counted).
    fn exists(&self, py: Python<'_>, keys: &Bound<'_, PyAny>) -> PyResult<Vec<bool>> {
        let keys = keys::keys(keys)?;
        self.with_node(py, |n| {
            Ok(keys.iter().map(|&k| n.locate(k).is_some()).collect())
        })
    }

    /// Per key, the tier it is stored in (0 = fastest), or None.
    fn tiers(&self, py: Python<'_>, keys: &Bound<'_, PyAny>) -> PyResult<Vec<Option<u8>>> {
        let keys = keys::keys(keys)?;
        self.with_node(py, |n| {
            Ok(keys
                .iter()
                .map(|&k| n.locate(k).map(|(t, _)| t.0))
                .collect())
        })
    }

    /// Length of the longest stored prefix of `keys` (no access is counted).
    fn longest_prefix(&self, py: Python<'_>, keys: &Bound<'_, PyAny>) -> PyResult<usize> {
        let keys = keys::keys(keys)?;
        self.with_node(py, |n| Ok(n.longest_cached_prefix(&keys)))
    }

    /// Pins stored blocks for `ttl_s` seconds (None: until `unpin`). True per block pinned.
    #[pyo3(signature = (keys, ttl_s = None))]
    fn pin(
        &self,
        py: Python<'_>,
        keys: &Bound<'_, PyAny>,
        ttl_s: Option<f64>,
    ) -> PyResult<Vec<bool>> {
        let keys = keys::keys(keys)?;
        // The node ticks every millisecond; a TTL is counted in ticks.
        let ttl_ticks = ttl_s.map_or(0, |s| (s * 1000.0).clamp(1.0, f64::from(u32::MAX)) as u32);
        self.with_node(py, |n| {
            Ok(keys
                .iter()
                .map(|&key| {
                    n.intent(Intent {
                        key,
                        action: IntentAction::Pin { ttl_ticks },
                    })
                    .is_ok()
                })
                .collect())
        })
    }

    /// Undoes one pin per key. True per pin released.
    fn unpin(&self, py: Python<'_>, keys: &Bound<'_, PyAny>) -> PyResult<Vec<bool>> {
        let keys = keys::keys(keys)?;
        self.with_node(py, |n| {
            Ok(keys.iter().map(|&k| n.unpin(k).is_ok()).collect())
        })
    }

    /// Delivers one intent for every key (see `Client.intent`).
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
        self.with_node(py, |n| {
            Ok(keys
                .iter()
                .enumerate()
                .map(|(i, &key)| {
                    let action = match arg {
                        IntentArg::Class(c) => IntentAction::SetClass(PriorityClass(c)),
                        IntentArg::ExpectReuse(u) => IntentAction::ExpectReuse {
                            uses: u.min(255) as u8,
                        },
                        IntentArg::Sequence {
                            sequence,
                            first_position,
                        } => IntentAction::Sequence {
                            sequence,
                            position: first_position.saturating_add(i as u32),
                        },
                        IntentArg::Queued => IntentAction::SetClass(PriorityClass::QUEUED),
                    };
                    n.intent(Intent { key, action }).is_ok()
                })
                .collect())
        })
    }

    /// Counters and usage (`node`, in the daemon's shape) and this binding's (`client`).
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let v = self.with_node(py, |n| Ok(n.stats().to_json()))?;
        let text = json!({
            "node": v,
            "client": {
                "load_errors": self.load_errors.load(Ordering::Relaxed),
                "store_errors": self.store_errors.load(Ordering::Relaxed),
                "local": true,
                "block_bytes": self.block_bytes,
            },
        })
        .to_string();
        py.import("json")?.call_method1("loads", (text,))
    }

    /// Stops the node's threads and removes the tier files it created. Idempotent.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        let n = py.detach(|| self.node.write().unwrap_or_else(|e| e.into_inner()).take());
        match n {
            Some(n) => py.detach(|| n.close()).map_err(errors::node),
            None => Ok(()),
        }
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
    ) -> PyResult<()> {
        self.close(py)
    }
}
