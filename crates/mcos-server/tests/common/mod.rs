//! A pool member as a real `mcosd` process for the pool tests: its config written to a temp
//! dir, its log kept there, killed (SIGKILL) on drop, its log printed when a test fails.
#![allow(clippy::unwrap_used, dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Whether etcd is installed; without it a test skips with a printed reason, except under
/// `CI=true`, where that is a failure.
pub fn etcd_or_skip(test: &str) -> bool {
    if mcos_cluster::etcd_installed() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: etcd is not installed and CI=true (apt-get install etcd-server)");
    }
    eprintln!("skipping {test}: etcd is not installed (apt-get install etcd-server)");
    false
}

/// `len` bytes that depend on `k` (xorshift): a block whose wrong key or stale bytes show.
pub fn payload(k: u128, len: usize) -> Vec<u8> {
    let mut v = vec![0u8; len];
    let mut x = k as u64 ^ 0x9e37_79b9_7f4a_7c15;
    for b in v.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = x as u8;
    }
    v
}

pub struct Daemon {
    pub id: String,
    pub child: Option<Child>,
    pub log: PathBuf,
    pub socket: PathBuf,
    config: PathBuf,
    /// The network namespace it runs in (`ip netns exec`), if any.
    netns: Option<String>,
}

impl Daemon {
    /// Starts member `id` of `cluster` (etcd at `etcd`, lease TTL 3 s, TCP on a free loopback
    /// port) over the node `node_toml` (block size and tiers).
    pub fn start(dir: &Path, id: &str, etcd: &str, cluster: &str, node_toml: &str) -> Daemon {
        Daemon::start_with(dir, id, etcd, cluster, node_toml, "")
    }

    /// As [`Daemon::start`], with `cluster_toml` appended to its `[server.cluster]` section.
    pub fn start_with(
        dir: &Path,
        id: &str,
        etcd: &str,
        cluster: &str,
        node_toml: &str,
        cluster_toml: &str,
    ) -> Daemon {
        Daemon::start_in(
            dir,
            id,
            etcd,
            cluster,
            node_toml,
            cluster_toml,
            "127.0.0.1",
            None,
        )
    }

    /// As [`Daemon::start_with`], listening on `ip` inside network namespace `netns` if given.
    #[allow(clippy::too_many_arguments)]
    pub fn start_in(
        dir: &Path,
        id: &str,
        etcd: &str,
        cluster: &str,
        node_toml: &str,
        cluster_toml: &str,
        ip: &str,
        netns: Option<&str>,
    ) -> Daemon {
        let config = dir.join(format!("{id}.toml"));
        std::fs::write(
            &config,
            format!(
                "{node_toml}\n[server]\nlisten = \"{ip}:0\"\n[server.cluster]\n\
                 etcd = [\"{etcd}\"]\nname = \"{cluster}\"\nnode_id = \"{id}\"\nlease_ttl_s = 3\n\
                 {cluster_toml}"
            ),
        )
        .unwrap();
        let mut d = Daemon {
            id: id.to_string(),
            child: None,
            log: dir.join(format!("{id}.log")),
            socket: dir.join(format!("{id}.sock")),
            config,
            netns: netns.map(str::to_string),
        };
        d.restart();
        d
    }

    /// Starts the process again with the same config, socket and log (appended).
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart of a running daemon");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = match &self.netns {
            None => Command::new(env!("CARGO_BIN_EXE_mcosd")),
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, env!("CARGO_BIN_EXE_mcosd")]);
                c
            }
        };
        self.child = Some(
            cmd.arg("--config")
                .arg(&self.config)
                .arg("--socket")
                .arg(&self.socket)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
    }

    /// SIGKILL, and reaps the process.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, and the exit status (fails the test after 10 s).
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().unwrap();
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            if let Some(s) = c.try_wait().unwrap() {
                return s;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} ignored SIGTERM",
                self.id
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    pub fn socket_str(&self) -> &str {
        self.socket.to_str().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            let log = std::fs::read_to_string(&self.log).unwrap_or_default();
            eprintln!("--- {} ---\n{log}", self.log.display());
        }
    }
}
