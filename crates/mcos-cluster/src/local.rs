//! A single-member etcd on loopback, for `mcos cluster up` and for tests: a real etcd
//! process (Debian `etcd-server`) with its own data directory and free ports, stopped when
//! the handle drops.

use crate::error::ClusterError;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long etcd gets to start answering.
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A running etcd.
pub struct LocalEtcd {
    child: Option<Child>,
    /// `127.0.0.1:port` clients use.
    pub client_addr: String,
    /// Its log file.
    pub log: PathBuf,
}

/// Whether an `etcd` binary is on PATH.
pub fn etcd_installed() -> bool {
    Command::new("etcd")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn free_port() -> Result<u16, ClusterError> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| ClusterError::Invalid(format!("no free loopback port: {e}")))
}

impl LocalEtcd {
    /// Starts etcd with its data in `data_dir` (created), listening on free loopback ports,
    /// and waits until it accepts connections.
    pub fn start(data_dir: &Path) -> Result<LocalEtcd, ClusterError> {
        LocalEtcd::start_on(data_dir, &[])
    }

    /// [`LocalEtcd::start`], also listening for clients on `extra_ips` (same port): for
    /// daemons in a network namespace the caller created.
    pub fn start_on(
        data_dir: &Path,
        extra_ips: &[std::net::Ipv4Addr],
    ) -> Result<LocalEtcd, ClusterError> {
        if !etcd_installed() {
            return Err(ClusterError::Invalid(
                "etcd is not installed (Debian: apt-get install etcd-server)".into(),
            ));
        }
        std::fs::create_dir_all(data_dir).map_err(|e| {
            ClusterError::Invalid(format!("cannot create {}: {e}", data_dir.display()))
        })?;
        let mut last = String::new();
        // A port picked free can be taken before etcd binds it: try again with others.
        for _ in 0..3 {
            let (cp, pp) = (free_port()?, free_port()?);
            let client = format!("http://127.0.0.1:{cp}");
            let mut listen = client.clone();
            for ip in extra_ips {
                listen.push_str(&format!(",http://{ip}:{cp}"));
            }
            let peer = format!("http://127.0.0.1:{pp}");
            let log = data_dir.join("etcd.log");
            let log_file = std::fs::File::create(&log).map_err(|e| {
                ClusterError::Invalid(format!("cannot create {}: {e}", log.display()))
            })?;
            let mut cmd = Command::new("etcd");
            // SAFETY: prctl is async-signal-safe and touches no memory of the parent: etcd
            // dies with the thread that started it, so a killed `mcos cluster up` or test
            // leaves no etcd behind.
            unsafe {
                cmd.pre_exec(|| {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    Ok(())
                });
            }
            let child = cmd
                .arg("--name")
                .arg("mcos")
                .arg("--data-dir")
                .arg(data_dir.join("data"))
                .arg("--listen-client-urls")
                .arg(&listen)
                .arg("--advertise-client-urls")
                .arg(&client)
                .arg("--listen-peer-urls")
                .arg(&peer)
                .arg("--initial-advertise-peer-urls")
                .arg(&peer)
                .arg("--initial-cluster")
                .arg(format!("mcos={peer}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log_file)
                .spawn()
                .map_err(|e| ClusterError::Invalid(format!("cannot start etcd: {e}")))?;
            let mut e = LocalEtcd {
                child: Some(child),
                client_addr: format!("127.0.0.1:{cp}"),
                log,
            };
            match e.wait_ready() {
                Ok(()) => return Ok(e),
                Err(err) => {
                    last = err;
                    e.stop();
                }
            }
        }
        Err(ClusterError::Invalid(format!("etcd did not start: {last}")))
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                let tail = std::fs::read_to_string(&self.log).unwrap_or_default();
                let tail: String = tail.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
                return Err(format!("etcd exited ({status}): {tail}"));
            }
            if TcpStream::connect(&self.client_addr).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "etcd did not accept connections on {} within {START_TIMEOUT:?}",
                    self.client_addr
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process id (for `mcos cluster up`'s report).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Stops etcd (SIGKILL: its data directory is scratch) and reaps it.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for LocalEtcd {
    fn drop(&mut self) {
        self.stop();
    }
}
