//! `mcos._mcos`: the native half of the `mcos` Python package.
//!
//! Three classes over the Rust crates, nothing more: [`client::Client`] (mcosd over its Unix
//! socket with the shared region, or TCP), [`node::Node`] (an embedded node), and
//! [`client::RegionBuffer`] (memory inside a client's shared region, which the daemon writes
//! blocks into directly). Keys are chained with `mcos_core::BlockKey` itself, so Python and
//! Rust derive the same keys, independent of Python's hash seed. Caller memory comes in through
//! the buffer protocol or DLPack ([`buffers`]); the GIL is released for every call that waits
//! on I/O. The engine plug-ins are pure Python over these classes (`python/mcos/plugins`).

mod buffers;
mod client;
mod errors;
mod intents;
mod keys;
mod node;

use pyo3::prelude::*;

#[pymodule]
fn _mcos(m: &Bound<'_, PyModule>) -> PyResult<()> {
    errors::register(m)?;
    m.add_class::<client::Client>()?;
    m.add_class::<client::RegionBuffer>()?;
    m.add_class::<node::Node>()?;
    m.add_function(wrap_pyfunction!(keys::block_keys, m)?)?;
    m.add_function(wrap_pyfunction!(keys::key_of, m)?)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
