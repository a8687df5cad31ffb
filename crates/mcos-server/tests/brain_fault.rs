//! A daemon whose brain thread panics or stalls keeps serving: the fast path keeps the brain's
//! last table until its TTL, then runs the built-in one, and the event is in the logs and on
//! /metrics. Needs the test-only feature (`cargo test -p mcos-server --features
//! fault-injection`), which lets the test make the real daemon's brain fail.
#![cfg(feature = "fault-injection")]
#![allow(clippy::unwrap_used)]

use mcos_client::Client;
use mcos_core::BlockKey;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn metric(addr: &str, name: &str) -> f64 {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
}

fn daemon_survives(fault: &str, log_says: &str, brain_up: f64) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("d.toml");
    // A 300 ms table TTL so the fallback comes quickly once the brain is gone.
    std::fs::write(
        &cfg,
        "block_bytes = 4096\n[[tiers]]\nkind = \"host-dram\"\ncapacity_blocks = 256\n\
         [brain]\nenabled = true\ntable_ttl_ticks = 300\n",
    )
    .unwrap();
    let sock = dir.path().join("d.sock");
    let metrics = format!("127.0.0.1:{}", free_port());
    let log = dir.path().join("d.log");
    let mut d = Command::new(env!("CARGO_BIN_EXE_mcosd"))
        .args([
            "--config",
            cfg.to_str().unwrap(),
            "--socket",
            sock.to_str().unwrap(),
        ])
        .args(["--metrics", &metrics])
        .env("MCOS_FAULT_BRAIN", fault)
        .stderr(std::fs::File::create(&log).unwrap())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Client::connect(sock.to_str().unwrap(), "default", "").is_err() {
        assert!(Instant::now() < deadline, "mcosd did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut c = Client::connect(sock.to_str().unwrap(), "default", "").unwrap();
    let data = vec![7u8; 4096];
    // Before the fault: a brain table is in force.
    let deadline = Instant::now() + Duration::from_secs(10);
    while metric(&metrics, "mcos_policy_epoch") < 2.0 {
        assert!(Instant::now() < deadline, "no brain table installed");
        c.put(&[(BlockKey(1), &data[..])]).unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    // The fault comes 1 s after start; the table lapses 300 ms after the brain's last refresh.
    let deadline = Instant::now() + Duration::from_secs(15);
    while metric(&metrics, "mcos_policy_fallbacks_total") < 1.0 {
        assert!(
            Instant::now() < deadline,
            "the table never lapsed to the built-in one"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        metric(&metrics, "mcos_policy_epoch"),
        0.0,
        "the built-in table runs"
    );
    assert_eq!(metric(&metrics, "mcos_brain_up"), brain_up);
    assert!(metric(&metrics, "mcos_brain_silent_seconds") > 0.3);
    // The node serves on, on the built-in table.
    for k in 10..50u128 {
        assert!(c.put(&[(BlockKey(k), &data[..])]).unwrap()[0].is_stored());
    }
    assert!(matches!(c.get(&[BlockKey(20)]).unwrap()[0].as_deref(), Some(b) if b == &data[..]));
    assert_eq!(c.exists(&[BlockKey(30)]).unwrap(), vec![Some(0)]);
    // The event is in the log (the watchdog looks once a second).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&log).unwrap();
        if text.contains(log_says) && text.contains("lapsed after its TTL") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "log lacks the brain event: {text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // SAFETY: signals our own child.
    unsafe { libc::kill(d.id() as i32, libc::SIGTERM) };
    assert!(d.wait().unwrap().success());
}

#[test]
fn a_panicked_brain_costs_its_tables_after_the_ttl_and_nothing_else() {
    daemon_survives("panic:1000", "brain thread has stopped", 0.0);
}

#[test]
fn a_stalled_brain_costs_its_tables_after_the_ttl_and_nothing_else() {
    // A stalled thread is alive (it sleeps 10 s): up, but silent.
    daemon_survives("stall:1000", "brain thread is stalled", 1.0);
}
