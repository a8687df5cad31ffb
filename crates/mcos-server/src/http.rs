//! `/metrics` (Prometheus text) and `/health` over HTTP/1.1: one request per connection,
//! bounded request size and time, `Connection: close`.

use crate::Shared;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Longest request head read.
const MAX_REQUEST_BYTES: usize = 8 << 10;

pub(crate) fn serve(sh: &Shared, mut s: TcpStream) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(5)));
    let mut buf = vec![0u8; MAX_REQUEST_BYTES];
    let mut n = 0;
    while !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
        if n == buf.len() {
            respond(
                &mut s,
                "431 Request Header Fields Too Large",
                "text/plain",
                "request too large\n",
                false,
            );
            return;
        }
        match s.read(&mut buf[n..]) {
            Ok(0) | Err(_) => return,
            Ok(k) => n += k,
        }
    }
    let head = String::from_utf8_lossy(&buf[..n]);
    let mut parts = head.lines().next().unwrap_or("").split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    let head_only = method == "HEAD";
    if method != "GET" && !head_only {
        respond(
            &mut s,
            "405 Method Not Allowed",
            "text/plain",
            "GET or HEAD only\n",
            false,
        );
        return;
    }
    match path {
        "/metrics" => {
            let mut text =
                sh.metrics
                    .render(&sh.node.stats(), sh.node.brain_health(), sh.leases.total());
            crate::events::render_metrics(sh, &mut text);
            crate::fence::render_metrics(sh, &mut text);
            if let Some(p) = sh.pool.get() {
                p.render_metrics(&mut text);
            }
            respond(
                &mut s,
                "200 OK",
                "text/plain; version=0.0.4; charset=utf-8",
                &text,
                head_only,
            );
        }
        "/health" => {
            let stopping = sh.shutdown.load(Ordering::Acquire);
            let body = serde_json::json!({
                "status": if stopping { "stopping" } else { "ok" },
                "uptime_seconds": sh.started.elapsed().as_secs_f64(),
                "clients_connected": sh.metrics.clients_connected.load(Ordering::Relaxed),
                "policy_epoch": sh.node.stats().policy_epoch,
            })
            .to_string()
                + "\n";
            let status = if stopping {
                "503 Service Unavailable"
            } else {
                "200 OK"
            };
            respond(&mut s, status, "application/json", &body, head_only);
        }
        _ => respond(
            &mut s,
            "404 Not Found",
            "text/plain",
            "try /metrics or /health\n",
            head_only,
        ),
    }
}

fn respond(s: &mut TcpStream, status: &str, ctype: &str, body: &str, head_only: bool) {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = s.write_all(head.as_bytes());
    if !head_only {
        let _ = s.write_all(body.as_bytes());
    }
}
