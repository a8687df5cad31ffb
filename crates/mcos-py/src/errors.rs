//! The exception hierarchy: every failure is an `mcos.Error` subclass whose message is the Rust
//! error's own text (which says what to do).

use mcos_client::ClientError;
use mcos_node::NodeError;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;

create_exception!(mcos, Error, PyException, "Base class of every MCOS error.");
create_exception!(
    mcos,
    DaemonUnavailable,
    Error,
    "mcosd cannot be reached (not running, or gone and not back in time)."
);
create_exception!(mcos, AuthError, Error, "mcosd refused the tenant or token.");
create_exception!(
    mcos,
    ProtocolError,
    Error,
    "mcosd refused a request or answered outside the protocol (version mismatch included)."
);
create_exception!(
    mcos,
    InvalidArgument,
    Error,
    "Arguments that cannot be sent: mismatched lengths, bad keys, overlapping buffers."
);
create_exception!(
    mcos,
    InvalidBuffer,
    Error,
    "An object that is neither a contiguous buffer nor a host DLPack tensor (or is read-only where memory is written)."
);
create_exception!(
    mcos,
    RegionError,
    Error,
    "The shared region is missing (TCP) or too small for the request."
);
create_exception!(
    mcos,
    DeviceError,
    Error,
    "Device memory this build cannot reach (a CUDA tensor without the `cuda` feature)."
);
create_exception!(mcos, NodeFailure, Error, "The embedded node failed.");
create_exception!(mcos, Closed, Error, "The client or node was closed.");

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("Error", py.get_type::<Error>())?;
    m.add("DaemonUnavailable", py.get_type::<DaemonUnavailable>())?;
    m.add("AuthError", py.get_type::<AuthError>())?;
    m.add("ProtocolError", py.get_type::<ProtocolError>())?;
    m.add("InvalidArgument", py.get_type::<InvalidArgument>())?;
    m.add("InvalidBuffer", py.get_type::<InvalidBuffer>())?;
    m.add("RegionError", py.get_type::<RegionError>())?;
    m.add("DeviceError", py.get_type::<DeviceError>())?;
    m.add("NodeFailure", py.get_type::<NodeFailure>())?;
    m.add("Closed", py.get_type::<Closed>())?;
    Ok(())
}

/// A client error as the matching exception, with the Rust message.
pub fn client(e: ClientError) -> PyErr {
    let msg = e.to_string();
    match e {
        ClientError::DaemonGone { .. } => DaemonUnavailable::new_err(msg),
        ClientError::AuthRefused(_) => AuthError::new_err(msg),
        ClientError::VersionMismatch(_)
        | ClientError::Refused { .. }
        | ClientError::Protocol(_) => ProtocolError::new_err(msg),
        ClientError::RegionTooSmall { .. } | ClientError::NoRegion => RegionError::new_err(msg),
        ClientError::Invalid(_) => InvalidArgument::new_err(msg),
    }
}

/// A node error as the matching exception, with the Rust message.
pub fn node(e: NodeError) -> PyErr {
    let msg = e.to_string();
    match e {
        NodeError::ReservedKey | NodeError::TooLarge { .. } | NodeError::BufferTooSmall { .. } => {
            InvalidArgument::new_err(msg)
        }
        _ => NodeFailure::new_err(msg),
    }
}
