//! The daemon's configuration: a node config (the same TOML `mcos --config` reads) plus a
//! `[server]` section. Unknown keys are errors in both.

use mcos_node::NodeConfig;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Why the configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML is invalid or names an unknown key.
    #[error("invalid config: {0}")]
    Invalid(String),
}

/// One tenant: who may connect, with which token, and how much it may store.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TenantConfig {
    /// Tenant name, sent in the hello.
    pub name: String,
    /// Shared secret, sent in the hello (empty: no token needed).
    #[serde(default)]
    pub token: String,
    /// Most blocks this tenant may have stored at once (none: no quota).
    #[serde(default)]
    pub quota_blocks: Option<u64>,
}

/// The `[server]` section.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Unix socket path (the local, zero-bounce path). Default: `$XDG_RUNTIME_DIR/mcosd.sock`,
    /// else `/tmp/mcosd-UID.sock`.
    #[serde(default)]
    pub socket: Option<PathBuf>,
    /// Mode bits of the socket file (default 0o660: owner and group).
    #[serde(default = "default_socket_mode")]
    pub socket_mode: u32,
    /// Group that owns the socket file (default: the daemon's own).
    #[serde(default)]
    pub socket_group: Option<String>,
    /// TCP listen address (off unless set). Give an address explicitly to listen beyond
    /// loopback.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
    /// HTTP address of `/metrics` and `/health` (off unless set).
    #[serde(default)]
    pub metrics: Option<SocketAddr>,
    /// Most connected clients; one more is refused with a `Busy` error.
    #[serde(default = "default_max_clients")]
    pub max_clients: usize,
    /// Most blocks per batch request.
    #[serde(default = "default_max_batch")]
    pub max_batch_blocks: u32,
    /// Largest request or reply body per client, bytes (bounds what one client holds in the
    /// daemon; a length prefix beyond it is refused before any allocation).
    #[serde(default = "default_max_inflight")]
    pub max_inflight_bytes: u64,
    /// Largest shared region a local client may attach, bytes.
    #[serde(default = "default_max_region")]
    pub max_region_bytes: u64,
    /// Pin lease when a pin names none, ms.
    #[serde(default = "default_lease")]
    pub lease_default_ms: u32,
    /// Longest pin lease, ms.
    #[serde(default = "default_lease_max")]
    pub lease_max_ms: u32,
    /// Most pins one session may hold.
    #[serde(default = "default_max_pins")]
    pub max_pins_per_session: usize,
    /// How long shutdown waits for clients to finish their request, ms.
    #[serde(default = "default_grace")]
    pub shutdown_grace_ms: u64,
    /// Tenants. None configured: one tenant `default` with no token (the socket's mode is the
    /// guard; TCP then logs a warning).
    #[serde(default)]
    pub tenants: Vec<TenantConfig>,
    /// Rack-scale pool: register this daemon in etcd (off unless set; needs `listen`).
    #[serde(default)]
    pub cluster: Option<ClusterSection>,
}

/// The `[server.cluster]` section: this daemon is a member of a pool whose membership lives in
/// etcd (docs/cluster.md).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSection {
    /// etcd endpoints, `host:port`.
    pub etcd: Vec<String>,
    /// Cluster name (the etcd key prefix); daemons of one pool share it.
    #[serde(default = "default_cluster_name")]
    pub name: String,
    /// This member's stable id (placement hashes it: a restarted node with the same id owns
    /// the same keys). Default: the advertised address.
    #[serde(default)]
    pub node_id: Option<String>,
    /// `host:port` peers and pool clients connect to. Default: the TCP listen address (which
    /// must then not be a wildcard).
    #[serde(default)]
    pub advertise: Option<String>,
    /// Lease TTL, seconds: a member that stops renewing (killed, partitioned) leaves every
    /// view within it.
    #[serde(default = "default_lease_ttl")]
    pub lease_ttl_s: u64,
    /// A local miss asks the key's owners (docs/cluster.md); false: misses stay misses.
    #[serde(default = "default_true")]
    pub fetch_from_owners: bool,
    /// Remote reads of one block after which the daemon offers it to its own node as a
    /// cache entry (0: never copy).
    #[serde(default = "default_copy_after_remote_reads")]
    pub copy_after_remote_reads: u32,
    /// Most blocks per second this daemon copies to other members to restore the
    /// replication factor of protected blocks after a member left.
    #[serde(default = "default_rereplicate_blocks_per_s")]
    pub rereplicate_blocks_per_s: u32,
}

impl ClusterSection {
    /// A section with `etcd` and every other field at its default.
    pub fn with_etcd(etcd: Vec<String>) -> ClusterSection {
        ClusterSection {
            etcd,
            name: default_cluster_name(),
            node_id: None,
            advertise: None,
            lease_ttl_s: default_lease_ttl(),
            fetch_from_owners: true,
            copy_after_remote_reads: default_copy_after_remote_reads(),
            rereplicate_blocks_per_s: default_rereplicate_blocks_per_s(),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_copy_after_remote_reads() -> u32 {
    // Measured (BENCHMARKS.md, the rack-scale pool): after 2 reads, round-robin routing copies
    // the same shared prefixes to every daemon and the pool loses 0.0075 of hit ratio; after 8
    // only the hot blocks are copied (154 copies cut remote fetches by 16 %, -0.0005).
    8
}
fn default_rereplicate_blocks_per_s() -> u32 {
    20_000
}

fn default_cluster_name() -> String {
    "mcos".into()
}
fn default_lease_ttl() -> u64 {
    mcos_cluster::membership::DEFAULT_LEASE_TTL_S
}

fn default_socket_mode() -> u32 {
    0o660
}
fn default_max_clients() -> usize {
    256
}
fn default_max_batch() -> u32 {
    1024
}
fn default_max_inflight() -> u64 {
    64 << 20
}
fn default_max_region() -> u64 {
    4 << 30
}
fn default_lease() -> u32 {
    30_000
}
fn default_lease_max() -> u32 {
    600_000
}
fn default_max_pins() -> usize {
    65_536
}
fn default_grace() -> u64 {
    10_000
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            socket: None,
            socket_mode: default_socket_mode(),
            socket_group: None,
            listen: None,
            metrics: None,
            max_clients: default_max_clients(),
            max_batch_blocks: default_max_batch(),
            max_inflight_bytes: default_max_inflight(),
            max_region_bytes: default_max_region(),
            lease_default_ms: default_lease(),
            lease_max_ms: default_lease_max(),
            max_pins_per_session: default_max_pins(),
            shutdown_grace_ms: default_grace(),
            tenants: Vec::new(),
            cluster: None,
        }
    }
}

impl ServerConfig {
    /// The socket path in force.
    pub fn socket_path(&self) -> PathBuf {
        if let Some(p) = &self.socket {
            return p.clone();
        }
        match std::env::var_os("XDG_RUNTIME_DIR") {
            Some(d) if !d.is_empty() => Path::new(&d).join("mcosd.sock"),
            // SAFETY: getuid has no preconditions and cannot fail.
            _ => PathBuf::from(format!("/tmp/mcosd-{}.sock", unsafe { libc::getuid() })),
        }
    }

    /// The tenants in force (the implicit `default` when none is configured).
    pub fn effective_tenants(&self) -> Vec<TenantConfig> {
        if self.tenants.is_empty() {
            vec![TenantConfig {
                name: "default".into(),
                token: String::new(),
                quota_blocks: None,
            }]
        } else {
            self.tenants.clone()
        }
    }

    fn validate(&self, block_bytes: u32) -> Result<(), ConfigError> {
        let bad = |m: String| Err(ConfigError::Invalid(m));
        if self.max_clients == 0 || self.max_batch_blocks == 0 {
            return bad("server.max_clients and server.max_batch_blocks must be at least 1".into());
        }
        let one_block = u64::from(block_bytes) + 64;
        if self.max_inflight_bytes < one_block {
            return bad(format!(
                "server.max_inflight_bytes = {} cannot hold one block of {block_bytes} bytes",
                self.max_inflight_bytes
            ));
        }
        if self.max_inflight_bytes > u64::from(u32::MAX) {
            return bad(format!(
                "server.max_inflight_bytes = {} exceeds a frame's 4 GiB limit",
                self.max_inflight_bytes
            ));
        }
        if self.lease_default_ms == 0 || self.lease_default_ms > self.lease_max_ms {
            return bad("server.lease_default_ms must be in 1..=server.lease_max_ms".into());
        }
        if self.socket_mode > 0o777 {
            return bad(format!(
                "server.socket_mode {:o} is not a mode",
                self.socket_mode
            ));
        }
        if let Some(c) = &self.cluster {
            if self.listen.is_none() {
                return bad(
                    "server.cluster needs server.listen (peers and pool clients use TCP)".into(),
                );
            }
            let listen_wild = self.listen.is_some_and(|a| a.ip().is_unspecified());
            if c.advertise.is_none() && listen_wild {
                return bad(
                    "server.cluster: server.listen is a wildcard address; set server.cluster.advertise to the host:port peers should use"
                        .into(),
                );
            }
            let mc = mcos_cluster::MembershipConfig {
                etcd: c.etcd.clone(),
                cluster: c.name.clone(),
                lease_ttl_s: c.lease_ttl_s,
            };
            if let Err(e) = mc.validate() {
                return bad(format!("server.cluster: {e}"));
            }
            if let Some(id) = &c.node_id
                && let Err(e) = mcos_cluster::membership::validate_node_id(id)
            {
                return bad(format!("server.cluster: {e}"));
            }
            if c.rereplicate_blocks_per_s == 0 {
                return bad(
                    "server.cluster.rereplicate_blocks_per_s must be at least 1 (protected blocks must get back to their factor)"
                        .into(),
                );
            }
        }
        let mut names = std::collections::HashSet::new();
        for t in &self.tenants {
            if t.name.is_empty() || t.name.len() > mcos_proto::MAX_STRING_BYTES {
                return bad("a tenant name must be 1 to 4096 bytes".into());
            }
            if !names.insert(&t.name) {
                return bad(format!("tenant `{}` is configured twice", t.name));
            }
        }
        Ok(())
    }
}

/// Node plus server.
#[derive(Clone, Debug)]
pub struct DaemonConfig {
    /// The node the daemon owns.
    pub node: NodeConfig,
    /// How it is served.
    pub server: ServerConfig,
}

/// The node a daemon runs when no config names one: 16 KiB blocks, 16,384 of them (256 MiB)
/// in host DRAM.
pub const DEFAULT_NODE_TOML: &str = r#"
block_bytes = 16384
[[tiers]]
kind = "host-dram"
capacity_blocks = 16384
"#;

impl DaemonConfig {
    /// Parses a config: node keys at the top level, the daemon's under `[server]`.
    pub fn from_toml(text: &str) -> Result<DaemonConfig, ConfigError> {
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| ConfigError::Invalid(e.to_string()))?;
        let server: ServerConfig = match table.remove("server") {
            Some(v) => v
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Invalid(format!("[server]: {e}")))?,
            None => ServerConfig::default(),
        };
        let node_text = if table.is_empty() {
            DEFAULT_NODE_TOML.to_string()
        } else {
            toml::to_string(&table).map_err(|e| ConfigError::Invalid(e.to_string()))?
        };
        let node = NodeConfig::from_toml(&node_text).map_err(|e| {
            let e = e.to_string();
            if e.contains("missing field") {
                // The node keys are all or nothing: say so where a partial set was given.
                ConfigError::Invalid(format!(
                    "{e}\na config that sets any node key (outside [server]) describes the whole \
                     node: give `block_bytes` and at least one [[tiers]], or leave every node \
                     key out for the default node (256 MiB of DRAM in 16 KiB blocks)"
                ))
            } else {
                ConfigError::Invalid(e)
            }
        })?;
        server.validate(node.block_bytes)?;
        Ok(DaemonConfig { node, server })
    }

    /// Reads and parses a config file.
    pub fn load(path: &Path) -> Result<DaemonConfig, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        DaemonConfig::from_toml(&text)
    }

    /// Re-checks the server section (after command-line overrides).
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.server.validate(self.node.block_bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_is_the_default_node() {
        let c = DaemonConfig::from_toml("").unwrap();
        assert_eq!(c.node.block_bytes, 16384);
        assert_eq!(c.server.max_batch_blocks, 1024);
        assert_eq!(c.server.effective_tenants()[0].name, "default");
    }

    #[test]
    fn a_partial_node_says_the_node_keys_go_together() {
        for text in [
            "shards = 2\n[server]\nmax_clients = 4\n",
            "block_bytes = 4096\n",
        ] {
            let e = DaemonConfig::from_toml(text).unwrap_err().to_string();
            assert!(e.contains("missing field"), "{e}");
            assert!(e.contains("leave every node key out"), "{e}");
        }
        // Other errors are left as they are.
        let e = DaemonConfig::from_toml("shards = \"two\"\n")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("leave every node key out"), "{e}");
    }

    #[test]
    fn server_section_and_node_keys_together() {
        let c = DaemonConfig::from_toml(
            r#"
block_bytes = 4096
[[tiers]]
kind = "host-dram"
capacity_blocks = 64
[server]
listen = "127.0.0.1:0"
max_batch_blocks = 32
[[server.tenants]]
name = "a"
token = "ta"
quota_blocks = 10
"#,
        )
        .unwrap();
        assert_eq!(c.node.block_bytes, 4096);
        assert_eq!(c.server.max_batch_blocks, 32);
        assert_eq!(c.server.tenants[0].quota_blocks, Some(10));
    }

    #[test]
    fn unknown_keys_refused() {
        let e = DaemonConfig::from_toml("[server]\nlisten_addr = \"x\"\n").unwrap_err();
        assert!(e.to_string().contains("listen_addr"), "{e}");
        assert!(DaemonConfig::from_toml("blocks = 3\n").is_err());
    }

    #[test]
    fn limits_checked() {
        let e = DaemonConfig::from_toml("[server]\nmax_inflight_bytes = 100\n").unwrap_err();
        assert!(e.to_string().contains("cannot hold one block"), "{e}");
        let dup = "[[server.tenants]]\nname = \"a\"\n[[server.tenants]]\nname = \"a\"\n";
        assert!(DaemonConfig::from_toml(dup).is_err());
    }
}
