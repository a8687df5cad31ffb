//! The daemon as a real process: started on a temporary socket (and loopback ports) with a
//! temporary data directory, driven by real clients, stopped at the end of each test (killed
//! on drop if a test fails first).
#![allow(clippy::unwrap_used)]

use mcos_client::{Client, ClientError, ClientIntent, ClientOptions, Outcome};
use mcos_core::BlockKey;
use mcos_proto::{ErrorCode, FrameHeader, HEADER_BYTES, Op, encode, reply};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BLOCK: usize = 4096;

struct Daemon {
    child: Option<Child>,
    dir: tempfile::TempDir,
    socket: PathBuf,
    tcp: String,
    metrics: String,
    log: PathBuf,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn config(dir: &Path, extra: &str) -> String {
    format!(
        r#"
block_bytes = {BLOCK}
[[tiers]]
kind = "host-dram"
capacity_blocks = 256
[[tiers]]
kind = "disk"
capacity_blocks = 2048
path = "{}/disk.tier"
[server]
max_batch_blocks = 64
max_inflight_bytes = 1048576
lease_default_ms = 60000
{extra}
"#,
        dir.display()
    )
}

impl Daemon {
    fn start(extra: &str) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        Daemon::start_in(dir, extra)
    }

    fn start_in(dir: tempfile::TempDir, extra: &str) -> Daemon {
        let cfg = dir.path().join("mcosd.toml");
        std::fs::write(&cfg, config(dir.path(), extra)).unwrap();
        let socket = dir.path().join("mcosd.sock");
        let (tcp, metrics) = (
            format!("127.0.0.1:{}", free_port()),
            format!("127.0.0.1:{}", free_port()),
        );
        let mut d = Daemon {
            child: None,
            socket,
            tcp,
            metrics,
            log: dir.path().join("mcosd.log"),
            dir,
        };
        d.spawn(&cfg);
        d
    }

    fn spawn(&mut self, cfg: &Path) {
        let log = std::fs::File::create(&self.log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_mcosd"))
            .args(["--config", cfg.to_str().unwrap(), "--socket"])
            .arg(&self.socket)
            .args([
                "--listen",
                &self.tcp,
                "--metrics",
                &self.metrics,
                "--log",
                "debug",
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while UnixStream::connect(&self.socket).is_err() || TcpStream::connect(&self.tcp).is_err() {
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("mcosd exited early ({st}): {}", self.log_text());
            }
            assert!(
                Instant::now() < deadline,
                "mcosd did not start: {}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // The probes above were connections too: let their sessions end before a test counts.
        while value(&self.scrape(), "mcos_clients_connected", &[]) != 0.0 {
            assert!(Instant::now() < deadline, "probe sessions did not end");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn restart(&mut self) {
        if self.child.is_some() {
            assert!(self.stop().success(), "{}", self.log_text());
        }
        let cfg = self.dir.path().join("mcosd.toml");
        self.spawn(&cfg);
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn local(&self, tenant: &str, token: &str) -> Client {
        Client::connect(self.socket.to_str().unwrap(), tenant, token).unwrap()
    }

    fn remote(&self, tenant: &str, token: &str) -> Client {
        Client::connect(&self.tcp, tenant, token).unwrap()
    }

    /// SIGTERM, then the exit status (killed after 20 s).
    fn stop(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        // SAFETY: kill on our own child's pid.
        unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = c.try_wait().unwrap() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                panic!("mcosd did not stop on SIGTERM: {}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn http(&self, path: &str) -> (String, String) {
        let mut s = TcpStream::connect(&self.metrics).unwrap();
        write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        (head.lines().next().unwrap().to_string(), body.to_string())
    }

    /// Samples of the scrape, parsed by an independent Prometheus text parser.
    fn scrape(&self) -> prometheus_parse::Scrape {
        let (status, body) = self.http("/metrics");
        assert!(status.contains("200"), "{status}");
        prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn value(s: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .find(|x| x.metric == name && labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match x.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
        .unwrap_or_else(|| panic!("no sample {name} {labels:?}"))
}

/// The bytes block `k` must hold: derived from the key alone, so any reader can verify.
fn payload(k: u64, len: usize) -> Vec<u8> {
    let mut x = k.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn key(i: u64) -> BlockKey {
    BlockKey(u128::from(i) << 64 | u128::from(i) | 1)
}

#[test]
fn round_trips_are_byte_exact_on_both_transports() {
    let d = Daemon::start("");
    for mut c in [d.local("default", ""), d.remote("default", "")] {
        let local = c.region().is_some();
        let base = if local { 1000 } else { 2000 };
        let lens = [BLOCK, 1, 100, BLOCK - 1];
        let data: Vec<Vec<u8>> = (0..4)
            .map(|i| payload(base + i, lens[i as usize]))
            .collect();
        let keys: Vec<BlockKey> = (0..4).map(|i| key(base + i)).collect();
        let blocks: Vec<(BlockKey, &[u8])> =
            keys.iter().zip(&data).map(|(k, p)| (*k, &p[..])).collect();
        let put = c.put(&blocks).unwrap();
        assert!(
            put.iter().all(|o| matches!(o, Outcome::Stored { tier: 0 })),
            "{put:?}"
        );
        assert!(c.put(&blocks[..1]).unwrap()[0] == Outcome::Present);
        let got = c.get(&keys).unwrap();
        for (g, want) in got.iter().zip(&data) {
            assert_eq!(g.as_deref(), Some(&want[..]), "local={local}");
        }
        assert_eq!(c.get(&[key(base + 99)]).unwrap(), vec![None]);
        assert_eq!(c.exists(&keys[..2]).unwrap(), vec![Some(0), Some(0)]);
        assert_eq!(
            c.longest_prefix(&[keys[0], keys[1], key(base + 50), keys[2]])
                .unwrap(),
            2
        );
        // A buffer shorter than the block: refused for that block, nothing written past it.
        let mut small = [0u8; 10];
        let r = c.get_into(&keys[..1], &mut [&mut small[..]]).unwrap();
        assert_eq!(
            r,
            vec![Outcome::TooLarge {
                limit: BLOCK as u32
            }]
        );
        // Over the block size: refused by the client before sending.
        let big = vec![0u8; BLOCK + 1];
        assert!(matches!(
            c.put(&[(key(base + 77), &big[..])]),
            Err(ClientError::Invalid(_))
        ));
        assert!(
            c.intents(&[
                (keys[0], ClientIntent::ExpectReuse(3)),
                (keys[0], ClientIntent::Class(3))
            ])
            .unwrap()
            .iter()
            .all(|o| *o == Outcome::Done)
        );
        let s: serde_json::Value = serde_json::from_str(&c.stats_json().unwrap()).unwrap();
        assert!(s["node"]["hits_per_tier"][0].as_u64().unwrap() >= 4);
        let p: serde_json::Value = serde_json::from_str(&c.policy_json().unwrap()).unwrap();
        assert_eq!(p["class_bits"].as_array().unwrap().len(), 256);
    }
    // The zero-bounce path proper: blocks written in the region, fetched back into it.
    let mut c = d.local("default", "");
    let r = c.region().unwrap();
    let data = payload(3000, BLOCK);
    // SAFETY: no request in flight; this test owns the region.
    unsafe { r.slice_mut(0, BLOCK).unwrap().copy_from_slice(&data) };
    assert_eq!(
        c.put_from_region(0, &[(key(3000), 0, BLOCK as u32)])
            .unwrap(),
        vec![Outcome::Stored { tier: 0 }]
    );
    let got = c
        .get_into_region(&[(key(3000), BLOCK as u64, BLOCK as u32)])
        .unwrap();
    assert_eq!(
        got,
        vec![Outcome::Hit {
            tier: 0,
            len: BLOCK as u32
        }]
    );
    // SAFETY: the reply arrived; nothing writes the region now.
    assert_eq!(unsafe { r.slice(BLOCK as u64, BLOCK).unwrap() }, &data[..]);
    // Two ranges of one batch overlapping: served one at a time, each verified on arrival.
    let got = c
        .get_into_region(&[(key(3000), 0, BLOCK as u32), (key(3000), 100, BLOCK as u32)])
        .unwrap();
    assert!(got.iter().all(|o| o.is_hit()), "{got:?}");
    // SAFETY: the reply arrived.
    assert_eq!(unsafe { r.slice(100, BLOCK).unwrap() }, &data[..]);
    // A range past the region's end is refused by the client; the daemon checks too.
    let len = r.len() as u64;
    assert!(matches!(
        c.get_into_region(&[(key(3000), len, 1)]),
        Err(ClientError::RegionTooSmall { .. })
    ));
}

#[test]
fn four_clients_ten_thousand_mixed_operations_every_get_verified() {
    let d = Daemon::start("");
    let socket = d.socket.to_str().unwrap().to_string();
    let tcp = d.tcp.clone();
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let addr = if t % 2 == 0 {
                socket.clone()
            } else {
                tcp.clone()
            };
            std::thread::spawn(move || {
                let mut c = Client::connect(&addr, "default", "").unwrap();
                let mut rng = t.wrapping_mul(0x2545_f491_4f6c_dd1d) | 1;
                let (mut hits, mut verified) = (0u64, 0u64);
                for _ in 0..10_000 {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    // Keys shared by all clients: 4,000 blocks over a 2,304-block node, so
                    // blocks are evicted, demoted and promoted while others read them.
                    let ks: Vec<u64> = (0..4).map(|j| (rng >> (j * 12)) % 4000).collect();
                    let keys: Vec<BlockKey> = ks.iter().map(|&k| key(k)).collect();
                    if rng % 10 < 3 {
                        let data: Vec<Vec<u8>> = ks.iter().map(|&k| payload(k, BLOCK)).collect();
                        let blocks: Vec<(BlockKey, &[u8])> =
                            keys.iter().zip(&data).map(|(k, p)| (*k, &p[..])).collect();
                        for o in c.put(&blocks).unwrap() {
                            assert!(
                                matches!(
                                    o,
                                    Outcome::Stored { .. }
                                        | Outcome::Present
                                        | Outcome::Rejected { .. }
                                ),
                                "{o:?}"
                            );
                        }
                    } else if rng % 10 < 9 {
                        for (g, &k) in c.get(&keys).unwrap().iter().zip(&ks) {
                            if let Some(b) = g {
                                assert_eq!(b, &payload(k, BLOCK), "wrong bytes for key {k}");
                                hits += 1;
                            }
                            verified += 1;
                        }
                    } else {
                        let e = c.exists(&keys).unwrap();
                        assert_eq!(e.len(), 4);
                    }
                }
                (hits, verified)
            })
        })
        .collect();
    let mut hits = 0;
    for t in threads {
        let (h, _) = t.join().unwrap();
        hits += h;
    }
    assert!(hits > 1000, "the workload should hit often ({hits} hits)");
    let s = d.scrape();
    assert_eq!(value(&s, "mcos_corrupt_blocks_total", &[]), 0.0);
    assert_eq!(value(&s, "mcos_requests_total", &[("op", "hello")]), 4.0);
}

#[test]
fn tenants_cannot_see_or_hold_each_others_blocks() {
    let tenants = r#"
[[server.tenants]]
name = "a"
token = "token-a"
[[server.tenants]]
name = "b"
token = "token-b"
quota_blocks = 8
"#;
    let d = Daemon::start(tenants);
    let mut a = d.local("a", "token-a");
    let mut b = d.remote("b", "token-b");
    let keys: Vec<BlockKey> = (0..4).map(key).collect();
    let data = payload(1, BLOCK);
    let blocks: Vec<(BlockKey, &[u8])> = keys.iter().map(|k| (*k, &data[..])).collect();
    assert!(a.put(&blocks).unwrap().iter().all(|o| o.is_stored()));
    // Same client keys, other tenant: nothing to get, detect, prefix-match or pin.
    assert_eq!(b.get(&keys).unwrap(), vec![None; 4]);
    assert_eq!(b.exists(&keys).unwrap(), vec![None; 4]);
    assert_eq!(b.longest_prefix(&keys).unwrap(), 0);
    assert_eq!(b.pin(&keys[..1], None).unwrap(), vec![Outcome::NotResident]);
    assert_eq!(
        b.intents(&[(keys[0], ClientIntent::Class(3))]).unwrap(),
        vec![Outcome::NotResident]
    );
    // b stores its own block under the same client key: a still reads its own bytes.
    let other = payload(2, BLOCK);
    assert_eq!(
        b.put(&[(keys[0], &other[..])]).unwrap(),
        vec![Outcome::Stored { tier: 0 }]
    );
    assert_eq!(a.get(&keys[..1]).unwrap()[0].as_deref(), Some(&data[..]));
    assert_eq!(b.get(&keys[..1]).unwrap()[0].as_deref(), Some(&other[..]));
    // b's quota: 8 blocks.
    let more: Vec<(BlockKey, &[u8])> = (10..20).map(|i| (key(i), &other[..])).collect();
    let r = b.put(&more).unwrap();
    assert_eq!(r.iter().filter(|o| o.is_stored()).count(), 7, "{r:?}");
    assert!(r.contains(&Outcome::QuotaExceeded));
    // Wrong token and unknown tenant: refused with a typed error.
    for (t, tok) in [("a", "token-b"), ("c", ""), ("a", "")] {
        match Client::connect(d.socket.to_str().unwrap(), t, tok) {
            Err(ClientError::AuthRefused(m)) => assert!(m.contains("wrong token"), "{m}"),
            Err(e) => panic!("{e}"),
            Ok(_) => panic!("{t}/{tok} accepted"),
        }
    }
}

/// Sends raw bytes on a fresh connection and returns the error reply's code, then checks the
/// connection was closed.
fn raw_refusal(d: &Daemon, frames: &[u8]) -> ErrorCode {
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(frames).unwrap();
    let mut got = Vec::new();
    let _ = s.read_to_end(&mut got); // ends at the daemon's close
    // Skip a welcome if the frames began with a good hello.
    let mut at = 0;
    loop {
        let mut h = [0u8; HEADER_BYTES];
        h.copy_from_slice(&got[at..at + HEADER_BYTES]);
        let hdr = FrameHeader::decode(&h, u64::MAX).unwrap();
        let body = &got[at + HEADER_BYTES..at + HEADER_BYTES + hdr.body_len as usize];
        if hdr.op == Op::Error as u8 {
            assert_eq!(
                at + HEADER_BYTES + body.len(),
                got.len(),
                "nothing after the error: closed"
            );
            let (code, msg) = reply::decode_error(body).unwrap();
            eprintln!("refused: {code:?}: {msg}");
            return code;
        }
        at += HEADER_BYTES + body.len();
    }
}

#[test]
fn bad_frames_get_an_error_and_a_closed_connection_others_carry_on() {
    let d = Daemon::start("");
    let mut bystander = d.remote("default", "");
    let data = payload(5, BLOCK);
    bystander.put(&[(key(5), &data[..])]).unwrap();

    let mut hello = Vec::new();
    encode::hello(&mut hello, 1, mcos_proto::PROTOCOL_VERSION, "default", b"");
    // Wrong version.
    let mut v2 = Vec::new();
    encode::hello(&mut v2, 1, 99, "default", b"");
    assert_eq!(raw_refusal(&d, &v2), ErrorCode::VersionMismatch);
    // Not an mcos client at all.
    assert_eq!(
        raw_refusal(&d, b"GET / HTTP/1.1\r\n\r\n"),
        ErrorCode::Malformed
    );
    // A request before hello.
    let mut stats = Vec::new();
    encode::empty(&mut stats, Op::Stats, 2);
    assert_eq!(raw_refusal(&d, &stats), ErrorCode::NotAuthenticated);
    // Length prefix far beyond the limit: refused from the header alone.
    let mut huge = hello.clone();
    huge.extend_from_slice(&[0xff, 0xff, 0xff, 0x7f, 0x10, 0, 0, 0, 3, 0, 0, 0]);
    assert_eq!(raw_refusal(&d, &huge), ErrorCode::LimitExceeded);
    // Unknown op.
    let mut unknown = hello.clone();
    unknown.extend_from_slice(&[0, 0, 0, 0, 0x55, 0, 0, 0, 3, 0, 0, 0]);
    assert_eq!(raw_refusal(&d, &unknown), ErrorCode::UnknownOp);
    // A put whose entries announce more payload than the frame carries.
    let mut bad_put = hello.clone();
    let mut p = Vec::new();
    encode::put_inline(&mut p, 3, 0, &[(key(9), &data[..])]);
    let body_len = (p.len() - HEADER_BYTES + 10) as u32; // only 10 of 4096 bytes follow
    p[0..4].copy_from_slice(&body_len.to_le_bytes());
    p.extend_from_slice(&data[..10]);
    bad_put.extend_from_slice(&p);
    assert_eq!(raw_refusal(&d, &bad_put), ErrorCode::Malformed);
    // A batch over max_batch_blocks (64).
    let mut big_batch = hello.clone();
    let mut g = Vec::new();
    let keys: Vec<BlockKey> = (1..=65).map(key).collect();
    encode::get_inline(&mut g, 4, &keys);
    big_batch.extend_from_slice(&g);
    assert_eq!(raw_refusal(&d, &big_batch), ErrorCode::LimitExceeded);
    // A region get over TCP-less... on the Unix socket without a region attached.
    let mut no_region = hello.clone();
    let mut r = Vec::new();
    encode::get_region(&mut r, 5, &[(key(5), 0, 4096)]);
    no_region.extend_from_slice(&r);
    assert_eq!(raw_refusal(&d, &no_region), ErrorCode::Region);

    // The daemon and the other client carry on.
    assert_eq!(
        bystander.get(&[key(5)]).unwrap()[0].as_deref(),
        Some(&data[..])
    );
    let s = d.scrape();
    assert_eq!(
        value(&s, "mcos_protocol_errors_total", &[("code", "1")]),
        2.0
    );
    assert_eq!(
        value(&s, "mcos_protocol_errors_total", &[("code", "5")]),
        2.0
    );
    // Refused connections are closed; their sessions end a moment after the reply is read.
    let deadline = Instant::now() + Duration::from_secs(5);
    while value(&d.scrape(), "mcos_clients_connected", &[]) != 1.0 {
        assert!(
            Instant::now() < deadline,
            "refused connections stay counted"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_client_that_dies_mid_batch_leaves_no_pin_and_leases_expire() {
    let d = Daemon::start("");
    let mut c = d.local("default", "");
    let data = payload(1, BLOCK);
    let keys: Vec<BlockKey> = (0..16).map(key).collect();
    let blocks: Vec<(BlockKey, &[u8])> = keys.iter().map(|k| (*k, &data[..])).collect();
    c.put(&blocks).unwrap();

    // A raw client pins 16 blocks, then dies halfway through its next frame.
    let mut s = UnixStream::connect(&d.socket).unwrap();
    let mut f = Vec::new();
    encode::hello(&mut f, 1, mcos_proto::PROTOCOL_VERSION, "default", b"");
    let mut pin = Vec::new();
    encode::pin(&mut pin, 2, 0, &keys);
    f.extend_from_slice(&pin);
    s.write_all(&f).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let mut hdr = [0u8; HEADER_BYTES];
    for _ in 0..2 {
        r.read_exact(&mut hdr).unwrap();
        let h = FrameHeader::decode(&hdr, u64::MAX).unwrap();
        let mut body = vec![0u8; h.body_len as usize];
        r.read_exact(&mut body).unwrap();
    }
    assert_eq!(value(&d.scrape(), "mcos_pins_held", &[]), 16.0);
    let mut half = Vec::new();
    encode::get_inline(&mut half, 3, &keys);
    s.write_all(&half[..half.len() / 2]).unwrap();
    drop(r);
    drop(s); // the process's death looks like this to the daemon: its socket closes
    let deadline = Instant::now() + Duration::from_secs(5);
    while value(&d.scrape(), "mcos_pins_held", &[]) != 0.0 {
        assert!(
            Instant::now() < deadline,
            "pins of a dead client were not released"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        value(&d.scrape(), "mcos_pin_leases_released_at_close_total", &[]),
        16.0
    );

    // A live client's lease ends at its deadline; its own unpin then finds nothing.
    assert_eq!(
        c.pin(&keys[..2], Some(Duration::from_millis(150))).unwrap(),
        vec![Outcome::Done; 2]
    );
    assert_eq!(
        c.pin(&[key(999)], None).unwrap(),
        vec![Outcome::NotResident]
    );
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(
        value(&d.scrape(), "mcos_pin_leases_expired_total", &[]),
        2.0
    );
    assert_eq!(c.unpin(&keys[..1]).unwrap(), vec![Outcome::NotPinned]);
    // Pins and unpins balance.
    assert_eq!(c.pin(&keys[..1], None).unwrap(), vec![Outcome::Done]);
    assert_eq!(c.unpin(&keys[..1]).unwrap(), vec![Outcome::Done]);
    assert_eq!(value(&d.scrape(), "mcos_pins_held", &[]), 0.0);
}

#[test]
fn sigterm_with_clients_in_flight_exits_cleanly_and_clients_reconnect_after_restart() {
    let mut d = Daemon::start("");
    let disk = d.dir.path().join("disk.tier");
    assert!(disk.exists());
    let socket = d.socket.to_str().unwrap().to_string();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..3u64)
        .map(|t| {
            let (socket, stop) = (socket.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut c = Client::connect_with(
                    &socket,
                    ClientOptions {
                        reconnect_timeout: Duration::from_millis(100),
                        ..Default::default()
                    },
                )
                .unwrap();
                let mut i = 0u64;
                let mut ok = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let k = t * 1_000_000 + i % 3000;
                    let data = payload(k, BLOCK);
                    match c.put(&[(key(k), &data[..])]).and_then(|_| c.get(&[key(k)])) {
                        Ok(g) => {
                            if let Some(b) = &g[0] {
                                assert_eq!(b, &data, "wrong bytes during shutdown");
                            }
                            ok += 1;
                        }
                        Err(ClientError::DaemonGone { .. }) => return ok,
                        Err(e) => panic!("unexpected error during shutdown: {e}"),
                    }
                    i += 1;
                }
                ok
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let status = d.stop();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for w in workers {
        assert!(w.join().unwrap() > 0, "a client made no progress");
    }
    assert!(status.success(), "exit {status}: {}", d.log_text());
    let log = d.log_text();
    assert!(log.contains("mcosd stopped cleanly"), "{log}");
    assert!(
        !log.contains('\x1b'),
        "a log written to a file carries no terminal colour codes: {log}"
    );
    assert!(!d.socket.exists(), "socket removed");
    assert!(
        !disk.exists(),
        "node closed: its tier file removed as configured"
    );

    // A client survives a restart: its next call reconnects (same region) and succeeds.
    d.restart();
    let mut c = d.local("default", "");
    let data = payload(7, BLOCK);
    c.put(&[(key(7), &data[..])]).unwrap();
    d.restart();
    let got = c.get(&[key(7)]).unwrap(); // the old node is gone: a miss, not an error
    assert_eq!(got, vec![None]);
    c.put(&[(key(7), &data[..])]).unwrap();
    assert_eq!(c.get(&[key(7)]).unwrap()[0].as_deref(), Some(&data[..]));
    assert_eq!(d.stop().code(), Some(0));
}

#[test]
fn metrics_parse_as_prometheus_text_and_count_what_happened() {
    let d = Daemon::start("");
    let (status, body) = d.http("/health");
    assert!(status.contains("200"), "{status}");
    assert!(body.contains("\"status\":\"ok\""), "{body}");
    assert!(d.http("/nope").0.contains("404"));

    let mut c = d.local("default", "");
    let data = payload(3, BLOCK);
    let blocks: Vec<(BlockKey, &[u8])> = (0..10).map(|i| (key(i), &data[..])).collect();
    c.put(&blocks).unwrap();
    let keys: Vec<BlockKey> = (0..15).map(key).collect(); // 10 hits, 5 misses
    c.get(&keys).unwrap();
    let s = d.scrape();
    assert_eq!(value(&s, "mcos_requests_total", &[("op", "put")]), 1.0);
    assert_eq!(value(&s, "mcos_requests_total", &[("op", "get")]), 1.0);
    assert_eq!(
        value(&s, "mcos_blocks_total", &[("op", "put"), ("status", "ok")]),
        10.0
    );
    assert_eq!(
        value(&s, "mcos_blocks_total", &[("op", "get"), ("status", "ok")]),
        10.0
    );
    assert_eq!(
        value(
            &s,
            "mcos_blocks_total",
            &[("op", "get"), ("status", "miss")]
        ),
        5.0
    );
    assert_eq!(value(&s, "mcos_hits_total", &[("tier", "0")]), 10.0);
    assert_eq!(value(&s, "mcos_misses_total", &[]), 5.0);
    assert_eq!(value(&s, "mcos_tier_used_blocks", &[("tier", "0")]), 10.0);
    assert_eq!(value(&s, "mcos_clients_connected", &[]), 1.0);
    assert_eq!(value(&s, "mcos_regions_attached_total", &[]), 1.0);
    // The latency histogram counted the get.
    let h = s
        .samples
        .iter()
        .find(|x| x.metric == "mcos_request_duration_seconds" && x.labels.get("op") == Some("get"))
        .expect("histogram");
    match &h.value {
        prometheus_parse::Value::Histogram(b) => assert_eq!(b.last().unwrap().count, 1.0),
        v => panic!("{v:?}"),
    }
    // Names follow the conventions: counters end in _total, no per-key labels.
    for d in &s.docs {
        assert!(d.0.starts_with("mcos_"), "{}", d.0);
    }
    for x in &s.samples {
        assert!(x.labels.get("key").is_none());
    }
    drop(c);
    let deadline = Instant::now() + Duration::from_secs(5);
    while value(&d.scrape(), "mcos_clients_connected", &[]) != 0.0 {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    // The log went through tracing.
    let log = d.log_text();
    assert!(
        BufReader::new(log.as_bytes())
            .lines()
            .any(|l| l.unwrap().contains("mcosd serving"))
    );
}

#[test]
fn durable_puts_survive_sigkill_and_the_warm_restart_is_reported() {
    let mut d = Daemon::start("");
    // Rewrite the config with a persistent disk tier and a brain, and restart into it.
    let cfg = d.dir.path().join("mcosd.toml");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("disk.tier\"", "disk.tier\"\npersist = true")
        .replace("[server]", "[brain]\nenabled = true\n[server]");
    std::fs::write(&cfg, text).unwrap();
    d.restart();
    let mut c = d.local("default", "");
    let blocks: Vec<(BlockKey, Vec<u8>)> = (0..40).map(|i| (key(i), payload(i, BLOCK))).collect();
    let refs: Vec<(BlockKey, &[u8])> = blocks.iter().map(|(k, p)| (*k, &p[..])).collect();
    let out = c.put_durable(0, &refs[..30]).unwrap();
    assert!(
        out.iter()
            .all(|o| matches!(o, Outcome::Durable { tier: 1 })),
        "{out:?}"
    );
    // A durable put of a key already durable: present, and durable.
    assert!(c.put_durable(0, &refs[..1]).unwrap()[0].is_durable());
    c.put(&refs[30..]).unwrap(); // stored, not durable: in DRAM
    // Over TCP (payloads inline) the flag works the same; a key already in DRAM only is
    // present but not durable.
    let mut r = d.remote("default", "");
    let extra = payload(99, BLOCK);
    let out = r
        .put_durable(0, &[(key(99), &extra[..]), refs[35]])
        .unwrap();
    assert_eq!(out, vec![Outcome::Durable { tier: 1 }, Outcome::Present]);
    drop(r);
    let s = d.scrape();
    assert_eq!(value(&s, "mcos_durable_acknowledged_total", &[]), 32.0);
    assert!(value(&s, "mcos_durable_syncs_total", &[]) >= 1.0);
    assert_eq!(value(&s, "mcos_brain_up", &[]), 1.0);
    drop(c);
    // SIGKILL: no flush, no clean shutdown.
    let mut child = d.child.take().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    let cfg = d.dir.path().join("mcosd.toml");
    d.spawn(&cfg);
    let mut c = d.local("default", "");
    assert_eq!(c.get(&[key(99)]).unwrap()[0].as_deref(), Some(&extra[..]));
    let keys: Vec<BlockKey> = (0..40).map(key).collect();
    let got = c.get(&keys).unwrap();
    for (i, g) in got.iter().enumerate() {
        match g {
            Some(b) => assert_eq!(b, &blocks[i].1, "block {i}: wrong bytes"),
            None => assert!(i >= 30, "durable block {i} lost"),
        }
    }
    let s = d.scrape();
    assert_eq!(
        value(&s, "mcos_rebuild_frames", &[("result", "restored")]),
        31.0
    );
    assert_eq!(
        value(&s, "mcos_rebuild_frames", &[("result", "scanned")]),
        2048.0
    );
    assert!(value(&s, "mcos_rebuild_seconds", &[]) > 0.0);
    let v: serde_json::Value = serde_json::from_str(&c.stats_json().unwrap()).unwrap();
    assert_eq!(v["node"]["rebuild"]["blocks_restored"], 31);
    assert!(d.log_text().contains("warm restart: directory rebuilt"));
    drop(c);
    assert_eq!(d.stop().code(), Some(0));
}

/// The first file offset of `needle` in the file at `path` (a test's way to find the frame
/// that holds a block: its payload bytes are unique).
fn find_in_file(path: &Path, needle: &[u8]) -> Option<u64> {
    let bytes = std::fs::read(path).unwrap();
    bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p as u64)
}

#[test]
fn direct_slots_take_disk_blocks_straight_into_the_region_and_never_a_corrupt_one() {
    let mut d = Daemon::start("");
    // A persistent disk tier: blocks there (durable puts, and DRAM's demotions) are read in
    // place, which is the path a direct slot serves without a bounce buffer.
    let cfg = d.dir.path().join("mcosd.toml");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("disk.tier\"", "disk.tier\"\npersist = true\nsync = false");
    std::fs::write(&cfg, text).unwrap();
    d.restart();
    const N: u64 = 64;
    let mut c = Client::connect_with(
        d.socket.to_str().unwrap(),
        ClientOptions {
            region_bytes: (2 * N as usize + 2) * 8192,
            ..ClientOptions::default()
        },
    )
    .unwrap();
    let layout = c.direct_slot_layout();
    assert_eq!(
        (layout.slot_bytes, layout.align, layout.payload_offset),
        (8192, 4096, 64)
    );
    let blocks: Vec<(BlockKey, Vec<u8>)> = (0..N)
        .map(|i| {
            (
                key(5000 + i),
                payload(5000 + i, BLOCK - (i as usize % 3) * 100),
            )
        })
        .collect();
    let refs: Vec<(BlockKey, &[u8])> = blocks.iter().map(|(k, p)| (*k, &p[..])).collect();
    let out = c.put_durable(0, &refs).unwrap();
    assert!(out.iter().all(Outcome::is_durable), "{out:?}");
    let stats: serde_json::Value = serde_json::from_str(&c.stats_json().unwrap()).unwrap();
    let direct_io = stats["node"]["disk_direct_io"] == serde_json::json!(true);
    let r = c.region().unwrap();
    let counters = |d: &Daemon| {
        let s = d.scrape();
        (
            value(&s, "mcos_disk_direct_reads_total", &[]),
            value(&s, "mcos_disk_bounce_reads_total", &[]),
        )
    };
    let check = |got: &[Outcome], at: &dyn Fn(usize) -> u64| {
        for (i, (o, (_, want))) in got.iter().zip(&blocks).enumerate() {
            assert_eq!(
                *o,
                Outcome::Hit {
                    tier: 1,
                    len: want.len() as u32
                },
                "block {i}"
            );
            // SAFETY: the reply arrived; nothing writes the region until the next call.
            let bytes = unsafe { r.slice(at(i), want.len()).unwrap() };
            assert!(bytes == &want[..], "block {i}: wrong bytes");
        }
    };
    // Aligned slots, packed from offset 0: every block straight from the file.
    let (direct0, bounce0) = counters(&d);
    let descs: Vec<(BlockKey, u64, u32)> = blocks
        .iter()
        .enumerate()
        .map(|(i, (k, _))| (*k, layout.slot_offset(0, i), layout.slot_bytes))
        .collect();
    let got = c.get_into_slots(&descs).unwrap();
    check(&got, &|i| layout.payload_at(layout.slot_offset(0, i)));
    let (direct1, bounce1) = counters(&d);
    assert_eq!(
        direct1 - direct0,
        N as f64,
        "every aligned slot read directly"
    );
    assert_eq!(bounce1, bounce0);
    // Slots 512 bytes off the alignment: the same bytes, through the bounce buffer.
    let base = layout.region_bytes(N as usize) + 512;
    let descs: Vec<(BlockKey, u64, u32)> = blocks
        .iter()
        .enumerate()
        .map(|(i, (k, _))| (*k, layout.slot_offset(base, i), layout.slot_bytes))
        .collect();
    let got = c.get_into_slots(&descs).unwrap();
    check(&got, &|i| layout.payload_at(layout.slot_offset(base, i)));
    let (direct2, bounce2) = counters(&d);
    if direct_io {
        assert_eq!(bounce2 - bounce1, N as f64, "every unaligned slot bounced");
        assert_eq!(direct2, direct1);
    } else {
        eprintln!("the disk tier runs without O_DIRECT here: any slot is read directly");
    }
    // A slot one byte short of a frame: bounced, still exact; shorter than the payload plus
    // its header room: too large, the needed bytes counting the room.
    let (k0, p0) = (&blocks[0].0, &blocks[0].1);
    let got = c
        .get_into_slots(&[
            (*k0, 0, layout.slot_bytes - 1),
            (*k0, 8192, 64 + p0.len() as u32 - 1),
        ])
        .unwrap();
    assert_eq!(
        got,
        vec![
            Outcome::Hit {
                tier: 1,
                len: p0.len() as u32
            },
            Outcome::TooLarge {
                limit: 64 + p0.len() as u32
            }
        ]
    );
    // SAFETY: the reply arrived.
    assert!(unsafe { r.slice(64, p0.len()).unwrap() } == &p0[..]);
    // Plain region gets of disk blocks bounce (and are counted so).
    let (_, bounce3) = counters(&d);
    let got = c.get_into_region(&[(*k0, 0, BLOCK as u32)]).unwrap();
    assert!(got[0].is_hit());
    assert_eq!(counters(&d).1 - bounce3, 1.0);
    // A block in DRAM (a plain put) lands at the same place in its slot.
    let hot = payload(7777, BLOCK);
    c.put(&[(key(7777), &hot[..])]).unwrap();
    let got = c
        .get_into_slots(&[(key(7777), 0, layout.slot_bytes)])
        .unwrap();
    assert_eq!(
        got,
        vec![Outcome::Hit {
            tier: 0,
            len: BLOCK as u32
        }]
    );
    // SAFETY: the reply arrived.
    assert!(unsafe { r.slice(64, BLOCK).unwrap() } == &hot[..]);
    // A flipped byte on disk: the block is reported missing (dropped, counted corrupt), and
    // the slot shows none of its bytes.
    let (bad_key, bad) = (&blocks[5].0, &blocks[5].1);
    let tier_file = d.dir.path().join("disk.tier");
    let at = find_in_file(&tier_file, &bad[..256]).expect("the block is on disk");
    {
        use std::os::unix::fs::FileExt;
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&tier_file)
            .unwrap();
        let mut b = [0u8; 1];
        f.read_exact_at(&mut b, at + 100).unwrap();
        f.write_all_at(&[b[0] ^ 0x20], at + 100).unwrap();
        f.sync_all().unwrap();
    }
    let corrupt0 = value(&d.scrape(), "mcos_corrupt_blocks_total", &[]);
    // SAFETY: no request in flight; this test owns the region.
    unsafe {
        r.slice_mut(0, layout.slot_bytes as usize)
            .unwrap()
            .fill(0xee)
    };
    let got = c
        .get_into_slots(&[(*bad_key, 0, layout.slot_bytes)])
        .unwrap();
    assert_eq!(got, vec![Outcome::Miss]);
    // SAFETY: the reply arrived.
    let slot = unsafe { r.slice(0, layout.slot_bytes as usize).unwrap() };
    assert!(
        find_subslice(slot, &bad[200..264]).is_none(),
        "a corrupt block's bytes stayed in the slot"
    );
    assert!(value(&d.scrape(), "mcos_corrupt_blocks_total", &[]) > corrupt0);
    assert_eq!(
        c.get(&[*bad_key]).unwrap(),
        vec![None],
        "dropped, not served"
    );
    // The other blocks are untouched.
    let got = c
        .get_into_slots(&[(blocks[6].0, 0, layout.slot_bytes)])
        .unwrap();
    assert!(got[0].is_hit());
    drop(c);
    assert_eq!(d.stop().code(), Some(0));
}

fn find_subslice(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
