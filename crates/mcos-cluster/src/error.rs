//! Typed errors of the pool: each says what failed and what to do about it.

use thiserror::Error;

/// Why a cluster operation failed.
#[derive(Debug, Error)]
pub enum ClusterError {
    /// etcd did not answer (not running, wrong address, or partitioned away).
    #[error(
        "etcd at {endpoints} is unreachable: {message} (is etcd running? `mcos cluster up` starts one)"
    )]
    EtcdUnreachable {
        /// The endpoints tried, comma-separated.
        endpoints: String,
        /// What the etcd client said.
        message: String,
    },
    /// etcd answered with an error.
    #[error("etcd refused {what}: {message}")]
    Etcd {
        /// The operation.
        what: &'static str,
        /// What etcd said.
        message: String,
    },
    /// Another live daemon holds this node id.
    #[error(
        "node id {node_id:?} is already registered by incarnation {incarnation} at {addr}; give this daemon another id, or wait for that lease to expire"
    )]
    DuplicateNode {
        /// The contested id.
        node_id: String,
        /// The holder's incarnation.
        incarnation: u64,
        /// The holder's address.
        addr: String,
    },
    /// The membership view is empty: no daemon is registered (or etcd was never reached).
    #[error("no live member in cluster {cluster:?}: start daemons with a [server.cluster] section")]
    NoMembers {
        /// The cluster prefix.
        cluster: String,
    },
    /// The membership thread could not start.
    #[error("cannot start the membership thread: {0}")]
    Thread(String),
    /// Bad configuration or arguments.
    #[error("{0}")]
    Invalid(String),
    /// Waiting for the first view or registration timed out.
    #[error("{0}")]
    Timeout(String),
}
