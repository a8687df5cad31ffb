//! Keys from Python: 16-byte values (little-endian u128, as on the wire) or ints.
//!
//! `block_keys` is `BlockKey::chain_all` itself and `key_of` is xxh3-128 with a fixed seed, so a
//! key never depends on the interpreter, its hash seed (`PYTHONHASHSEED`) or the process.

use crate::errors::InvalidArgument;
use mcos_core::{BlockKey, Namespace};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyInt, PyList};
use xxhash_rust::xxh3::xxh3_128_with_seed;

/// Seed of `key_of` (external names such as an engine's page hash). Changing it changes every
/// key an engine plug-in has stored: never do.
const NAME_SEED: u64 = 0x4d43_4f53_7079_0001; // "MCOSpy" v1

/// One key from a Python object: 16 bytes (little-endian) or a non-zero int below 2**128.
pub fn key(obj: &Bound<'_, PyAny>) -> PyResult<BlockKey> {
    let k = if let Ok(b) = obj.cast::<PyBytes>() {
        let raw: [u8; 16] = b.as_bytes().try_into().map_err(|_| {
            InvalidArgument::new_err(format!(
                "a key is 16 bytes, this one has {} (derive keys with mcos.block_keys or mcos.key_of)",
                b.as_bytes().len()
            ))
        })?;
        u128::from_le_bytes(raw)
    } else if obj.is_instance_of::<PyInt>() {
        obj.extract::<u128>().map_err(|_| {
            InvalidArgument::new_err("an int key must lie in 1..2**128 (16 bytes, little-endian)")
        })?
    } else {
        return Err(InvalidArgument::new_err(format!(
            "a key is 16 bytes or an int, not {} (for strings use mcos.key_of)",
            obj.get_type().name()?
        )));
    };
    if k == 0 {
        return Err(InvalidArgument::new_err(
            "key 0 is reserved; derive keys with mcos.block_keys or mcos.key_of",
        ));
    }
    Ok(BlockKey(k))
}

/// Keys of a Python iterable.
pub fn keys(obj: &Bound<'_, PyAny>) -> PyResult<Vec<BlockKey>> {
    let mut out = Vec::with_capacity(obj.len().unwrap_or(0));
    for k in obj.try_iter()? {
        out.push(key(&k?)?);
    }
    Ok(out)
}

fn to_bytes(py: Python<'_>, k: BlockKey) -> Bound<'_, PyBytes> {
    PyBytes::new(py, &k.0.to_le_bytes())
}

/// Keys of `token_ids` cut into blocks of `block_tokens`, chained from the namespace root
/// exactly as `BlockKey::chain_all` (a trailing partial block gets a key too).
#[pyfunction]
#[pyo3(signature = (token_ids, block_tokens, model, layout = "default", shard = 0, tenant_salt = 0))]
pub fn block_keys<'py>(
    py: Python<'py>,
    token_ids: Vec<u32>,
    block_tokens: usize,
    model: &str,
    layout: &str,
    shard: u32,
    tenant_salt: u64,
) -> PyResult<Bound<'py, PyList>> {
    if block_tokens == 0 {
        return Err(InvalidArgument::new_err("block_tokens must be at least 1"));
    }
    let ns = Namespace {
        model: model.to_string(),
        layout: layout.to_string(),
        shard,
        tenant_salt,
    };
    let keys = BlockKey::chain_all(&ns, &token_ids, block_tokens);
    PyList::new(py, keys.into_iter().map(|k| to_bytes(py, k)))
}

/// The key of an external name (a str's UTF-8 bytes, or bytes): xxh3-128 with a fixed seed.
#[pyfunction]
pub fn key_of<'py>(py: Python<'py>, name: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyBytes>> {
    let h = if let Ok(s) = name.extract::<String>() {
        xxh3_128_with_seed(s.as_bytes(), NAME_SEED)
    } else if let Ok(b) = name.cast::<PyBytes>() {
        xxh3_128_with_seed(b.as_bytes(), NAME_SEED)
    } else {
        return Err(InvalidArgument::new_err("key_of takes a str or bytes"));
    };
    // Zero low bits are reserved by the node's directory (as BlockKey's own hashing does).
    let h = if h as u64 == 0 { h | 1 } else { h };
    Ok(to_bytes(py, BlockKey(h)))
}
