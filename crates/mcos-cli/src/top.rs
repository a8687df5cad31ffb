//! `mcos top --connect ADDR`: a live view of a running daemon, refreshed every second.
//!
//! It reads the same `stats` reply as `mcos stats --connect` (docs/protocol.md, op 0x20) and
//! shows per tier occupancy and hit ratio, each link's bytes per second now and as the engines
//! measured them, operations per second and latency percentiles per operation, the policy
//! epoch and the brain's current knobs, and the clients connected. On a terminal it is a full
//! screen (ratatui over crossterm: keys only, so it works over SSH; `q`, Esc or Ctrl-C quits);
//! when stdout is not a terminal it prints one plain line per refresh instead. A daemon that
//! goes away is retried every refresh, and the screen says so.

use anyhow::{Context, Result};
use clap::Args;
use mcos_client::Client;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::crossterm::terminal::{EnterAlternateScreen, LeaveAlternateScreen};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Paragraph, Row, Table};
use serde_json::Value;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

#[derive(Args, Debug)]
pub struct TopArgs {
    /// The daemon: its socket path, or host:port of its TCP listener.
    #[arg(long)]
    pub connect: String,
    /// Tenant name.
    #[arg(long, default_value = "default")]
    pub tenant: String,
    /// Tenant token (default: $MCOS_TOKEN, else none).
    #[arg(long)]
    pub token: Option<String>,
    /// Refresh interval in milliseconds.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(50..=60_000))]
    pub interval_ms: u64,
    /// Stop after this many refreshes (default: until quit or interrupted).
    #[arg(long)]
    pub iterations: Option<u64>,
}

/// One stats reply, with what the view needs read out of it.
#[derive(Debug, Clone, Default)]
struct Snapshot {
    at: Option<Instant>,
    version: String,
    uptime_s: f64,
    clients: u64,
    epoch: u64,
    knobs: String,
    switches: u64,
    installs: u64,
    accesses: u64,
    misses: u64,
    tiers: Vec<TierRow>,
    links: Vec<LinkRow>,
    ops: Vec<OpRow>,
}

#[derive(Debug, Clone, Default)]
struct TierRow {
    kind: String,
    used: u64,
    capacity: u64,
    hits: u64,
}

#[derive(Debug, Clone, Default)]
struct LinkRow {
    from: u64,
    to: u64,
    bytes: u64,
    measured_bps: f64,
    configured_bps: f64,
}

#[derive(Debug, Clone, Default)]
struct OpRow {
    name: String,
    requests: u64,
    p50_us: Option<f64>,
    p99_us: Option<f64>,
}

impl Snapshot {
    fn parse(j: &Value, at: Instant) -> Snapshot {
        let (n, d) = (&j["node"], &j["daemon"]);
        let u = |v: &Value| v.as_u64().unwrap_or(0);
        let hits = n["hits_per_tier"].as_array().cloned().unwrap_or_default();
        Snapshot {
            at: Some(at),
            version: d["version"].as_str().unwrap_or("?").to_owned(),
            uptime_s: d["uptime_seconds"].as_f64().unwrap_or(0.0),
            clients: u(&d["clients_connected"]),
            epoch: u(&n["policy_epoch"]),
            knobs: match &n["brain"] {
                Value::Object(b) => b.get("knobs").map_or("?".into(), |k| {
                    k.as_str().map_or(k.to_string(), String::from)
                }),
                _ => "off (built-in table)".into(),
            },
            switches: u(&n["brain"]["switches"]),
            installs: u(&n["brain"]["installs"]),
            accesses: u(&n["accesses"]),
            misses: u(&n["misses"]),
            tiers: n["tiers"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
                .map(|(i, t)| TierRow {
                    kind: t["kind"].as_str().unwrap_or("?").to_owned(),
                    used: u(&t["used_blocks"]),
                    capacity: u(&t["capacity_blocks"]),
                    hits: hits.get(i).map_or(0, u),
                })
                .collect(),
            links: n["links"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|l| LinkRow {
                    from: u(&l["from"]),
                    to: u(&l["to"]),
                    bytes: u(&l["bytes"]),
                    measured_bps: l["measured_bytes_per_s"].as_f64().unwrap_or(0.0),
                    configured_bps: l["configured_bytes_per_s"].as_f64().unwrap_or(0.0),
                })
                .collect(),
            ops: d["requests"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(op, v)| OpRow {
                    name: op.clone(),
                    requests: u(v),
                    p50_us: d["latency"][op]["p50_us_at_most"].as_f64(),
                    p99_us: d["latency"][op]["p99_us_at_most"].as_f64(),
                })
                .collect(),
        }
    }
}

/// Per-second rates between two snapshots.
fn per_s(now: u64, before: u64, dt: f64) -> f64 {
    if dt > 0.0 {
        now.saturating_sub(before) as f64 / dt
    } else {
        0.0
    }
}

struct View {
    now: Snapshot,
    before: Snapshot,
    status: String,
}

impl View {
    fn dt(&self) -> f64 {
        match (self.now.at, self.before.at) {
            (Some(a), Some(b)) => a.duration_since(b).as_secs_f64(),
            _ => 0.0,
        }
    }

    fn ops_per_s(&self) -> f64 {
        let total = |s: &Snapshot| s.ops.iter().map(|o| o.requests).sum::<u64>();
        per_s(total(&self.now), total(&self.before), self.dt())
    }

    fn hit_ratio(&self, tier: usize) -> f64 {
        let hits = self.now.tiers.get(tier).map_or(0, |t| t.hits);
        hits as f64 / self.now.accesses.max(1) as f64
    }

    fn link_now_bps(&self, i: usize) -> f64 {
        let before = self.before.links.get(i).map_or(0, |l| l.bytes);
        self.now
            .links
            .get(i)
            .map_or(0.0, |l| per_s(l.bytes, before, self.dt()))
    }

    /// The plain line printed when stdout is not a terminal.
    fn line(&self) -> String {
        let s = &self.now;
        let mut out = format!(
            "up {:.0}s clients {} ops/s {:.0} epoch {} brain {}",
            s.uptime_s,
            s.clients,
            self.ops_per_s(),
            s.epoch,
            s.knobs
        );
        for (i, t) in s.tiers.iter().enumerate() {
            out.push_str(&format!(
                " | tier{i} {} {:.1}% used hit {:.3}",
                t.kind,
                100.0 * t.used as f64 / t.capacity.max(1) as f64,
                self.hit_ratio(i)
            ));
        }
        for (i, l) in s.links.iter().enumerate() {
            out.push_str(&format!(
                " | link {}<-{} {:.3} GB/s now, {:.3} measured",
                l.to,
                l.from,
                self.link_now_bps(i) / 1e9,
                l.measured_bps / 1e9
            ));
        }
        if !self.status.is_empty() {
            out.push_str(&format!(" | {}", self.status));
        }
        out
    }

    fn draw(&self, f: &mut ratatui::Frame) {
        let s = &self.now;
        let areas = Layout::vertical([
            Constraint::Length(4),
            Constraint::Length(s.tiers.len() as u16 + 3),
            Constraint::Length(s.links.len().max(1) as u16 + 3),
            Constraint::Min(4),
            Constraint::Length(1),
        ])
        .split(f.area());
        let bold = Style::default().add_modifier(Modifier::BOLD);
        let header = Paragraph::new(vec![
            Line::from(format!(
                "mcosd {}  up {:.0} s  clients connected {}  ops/s {:.0}  accesses {}  misses {}",
                s.version,
                s.uptime_s,
                s.clients,
                self.ops_per_s(),
                s.accesses,
                s.misses
            )),
            Line::from(format!(
                "policy epoch {}  brain's choice: {}  ({} switches, {} installs)",
                s.epoch, s.knobs, s.switches, s.installs
            )),
        ])
        .block(Block::default().borders(Borders::ALL).title(" mcos top "));
        f.render_widget(header, areas[0]);

        let tiers = Table::new(
            s.tiers.iter().enumerate().map(|(i, t)| {
                let used = 100.0 * t.used as f64 / t.capacity.max(1) as f64;
                let bar = "#".repeat((used / 5.0).round() as usize);
                Row::new(vec![
                    format!("tier{i}"),
                    t.kind.clone(),
                    t.used.to_string(),
                    t.capacity.to_string(),
                    format!("{used:5.1}% {bar:<20}"),
                    t.hits.to_string(),
                    format!("{:.3}", self.hit_ratio(i)),
                ])
            }),
            [
                Constraint::Length(6),
                Constraint::Length(10),
                Constraint::Length(10),
                Constraint::Length(10),
                Constraint::Length(28),
                Constraint::Length(12),
                Constraint::Length(9),
            ],
        )
        .header(
            Row::new([
                "tier",
                "kind",
                "used",
                "capacity",
                "occupancy",
                "hits",
                "hit ratio",
            ])
            .style(bold),
        )
        .block(Block::default().borders(Borders::ALL).title(" tiers "));
        f.render_widget(tiers, areas[1]);

        let links = Table::new(
            s.links.iter().enumerate().map(|(i, l)| {
                Row::new(vec![
                    format!("tier{} <- tier{}", l.to, l.from),
                    format!("{:.3}", self.link_now_bps(i) / 1e9),
                    format!("{:.3}", l.measured_bps / 1e9),
                    format!("{:.3}", l.configured_bps / 1e9),
                ])
            }),
            [
                Constraint::Length(18),
                Constraint::Length(12),
                Constraint::Length(14),
                Constraint::Length(14),
            ],
        )
        .header(Row::new(["link", "GB/s now", "GB/s measured", "GB/s configured"]).style(bold))
        .block(Block::default().borders(Borders::ALL).title(" links "));
        f.render_widget(links, areas[2]);

        let dt = self.dt();
        let us = |v: Option<f64>| v.map_or("> 1 s".into(), |x| format!("{x:.0}"));
        let ops = Table::new(
            s.ops.iter().filter(|o| o.requests > 0).map(|o| {
                let before = self
                    .before
                    .ops
                    .iter()
                    .find(|b| b.name == o.name)
                    .map_or(0, |b| b.requests);
                Row::new(vec![
                    o.name.clone(),
                    format!("{:.0}", per_s(o.requests, before, dt)),
                    o.requests.to_string(),
                    us(o.p50_us),
                    us(o.p99_us),
                ])
            }),
            [
                Constraint::Length(14),
                Constraint::Length(10),
                Constraint::Length(12),
                Constraint::Length(12),
                Constraint::Length(12),
            ],
        )
        .header(Row::new(["op", "ops/s", "total", "p50 us <=", "p99 us <="]).style(bold))
        .block(Block::default().borders(Borders::ALL).title(" operations "));
        f.render_widget(ops, areas[3]);
        let foot = if self.status.is_empty() {
            "q: quit".to_owned()
        } else {
            format!("q: quit   {}", self.status)
        };
        f.render_widget(Paragraph::new(foot), areas[4]);
    }
}

/// A connection to the daemon, re-made after a failure.
struct Source {
    args: TopArgs,
    token: String,
    client: Option<Client>,
}

impl Source {
    fn fetch(&mut self) -> Result<Snapshot> {
        if self.client.is_none() {
            self.client = Some(
                Client::connect(&self.args.connect, &self.args.tenant, &self.token)
                    .with_context(|| format!("cannot reach the daemon at {}", self.args.connect))?,
            );
        }
        let Some(c) = self.client.as_mut() else {
            anyhow::bail!("no connection");
        };
        let text = match c.stats_json() {
            Ok(t) => t,
            Err(e) => {
                self.client = None;
                return Err(e).context("the daemon's stats");
            }
        };
        let j: Value = serde_json::from_str(&text).context("the daemon's stats are not JSON")?;
        Ok(Snapshot::parse(&j, Instant::now()))
    }
}

pub fn run(a: TopArgs) -> Result<()> {
    let token = a
        .token
        .clone()
        .or_else(|| std::env::var("MCOS_TOKEN").ok())
        .unwrap_or_default();
    let interval = Duration::from_millis(a.interval_ms);
    let iterations = a.iterations;
    let mut src = Source {
        args: a,
        token,
        client: None,
    };
    // The first reply must come: a wrong address or tenant is an error, not an empty screen.
    let first = src.fetch()?;
    let mut view = View {
        now: first,
        before: Snapshot::default(),
        status: String::new(),
    };
    if std::io::stdout().is_terminal() {
        full_screen(&mut src, &mut view, interval, iterations)
    } else {
        plain(&mut src, &mut view, interval, iterations)
    }
}

fn refresh(src: &mut Source, view: &mut View) {
    match src.fetch() {
        Ok(s) => {
            view.before = std::mem::replace(&mut view.now, s);
            view.status.clear();
        }
        Err(e) => view.status = format!("disconnected ({}); retrying", crate::error_text(&e)),
    }
}

fn plain(src: &mut Source, view: &mut View, interval: Duration, n: Option<u64>) -> Result<()> {
    crate::interrupt::install()?;
    let mut done = 0u64;
    loop {
        println!("{}", view.line());
        done += 1;
        if n.is_some_and(|n| done >= n) || crate::interrupt::received().is_some() {
            return Ok(());
        }
        std::thread::sleep(interval);
        if crate::interrupt::received().is_some() {
            return Ok(());
        }
        refresh(src, view);
    }
}

fn full_screen(
    src: &mut Source,
    view: &mut View,
    interval: Duration,
    n: Option<u64>,
) -> Result<()> {
    ratatui::crossterm::terminal::enable_raw_mode()
        .context("cannot put the terminal in raw mode")?;
    let mut stdout = std::io::stdout();
    if let Err(e) = ratatui::crossterm::execute!(stdout, EnterAlternateScreen) {
        let _ = ratatui::crossterm::terminal::disable_raw_mode();
        return Err(e).context("cannot switch to the alternate screen");
    }
    let result = screen_loop(src, view, interval, n);
    // Restore the terminal whatever happened in the loop.
    let _ = ratatui::crossterm::terminal::disable_raw_mode();
    let _ = ratatui::crossterm::execute!(std::io::stdout(), LeaveAlternateScreen);
    result
}

fn screen_loop(
    src: &mut Source,
    view: &mut View,
    interval: Duration,
    n: Option<u64>,
) -> Result<()> {
    let backend = ratatui::backend::CrosstermBackend::new(std::io::stdout());
    let mut term = ratatui::Terminal::new(backend).context("cannot draw on the terminal")?;
    term.clear()?;
    let mut done = 0u64;
    loop {
        term.draw(|f| view.draw(f))?;
        done += 1;
        if n.is_some_and(|n| done >= n) {
            return Ok(());
        }
        let next = Instant::now() + interval;
        while let Some(left) = next.checked_duration_since(Instant::now()) {
            if !event::poll(left)? {
                break;
            }
            match event::read()? {
                Event::Key(k) if k.kind != KeyEventKind::Release => {
                    let ctrl_c =
                        k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
                    if ctrl_c || matches!(k.code, KeyCode::Char('q') | KeyCode::Esc) {
                        return Ok(());
                    }
                }
                Event::Resize(..) => term.draw(|f| view.draw(f)).map(|_| ())?,
                _ => {}
            }
        }
        refresh(src, view);
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn reply(hits: u64, bytes: u64, gets: u64) -> Value {
        serde_json::json!({
            "node": {
                "accesses": 200, "misses": 50, "hits_per_tier": [hits, 10],
                "tiers": [
                    {"kind": "dram", "used_blocks": 50, "capacity_blocks": 100},
                    {"kind": "disk", "used_blocks": 10, "capacity_blocks": 1000}
                ],
                "links": [{"from": 1, "to": 0, "bytes": bytes, "seconds": 1.0,
                           "measured_bytes_per_s": 2e9, "configured_bytes_per_s": 5e9}],
                "policy_epoch": 7,
                "brain": {"knobs": "slru50+h1", "switches": 2, "installs": 9}
            },
            "daemon": {
                "version": "0.1.0", "uptime_seconds": 12.0, "clients_connected": 3,
                "requests": {"get": gets, "put": 0},
                "latency": {"get": {"p50_us_at_most": 8.0, "p99_us_at_most": 64.0}}
            }
        })
    }

    #[test]
    fn rates_and_plain_line_come_from_two_replies() {
        let t0 = Instant::now();
        let t1 = t0 + Duration::from_secs(2);
        let view = View {
            before: Snapshot::parse(&reply(100, 1_000_000_000, 1000), t0),
            now: Snapshot::parse(&reply(140, 5_000_000_000, 3000), t1),
            status: String::new(),
        };
        assert!((view.ops_per_s() - 1000.0).abs() < 1e-9);
        assert!((view.link_now_bps(0) - 2e9).abs() < 1.0);
        assert!((view.hit_ratio(0) - 0.7).abs() < 1e-12);
        let line = view.line();
        for part in [
            "clients 3",
            "ops/s 1000",
            "epoch 7",
            "brain slru50+h1",
            "tier0 dram 50.0% used hit 0.700",
            "tier1 disk 1.0% used",
            "link 0<-1 2.000 GB/s now, 2.000 measured",
        ] {
            assert!(line.contains(part), "{part} in {line}");
        }
    }

    #[test]
    fn the_screen_shows_tiers_links_and_ops() {
        let t0 = Instant::now();
        let view = View {
            before: Snapshot::parse(&reply(100, 0, 10), t0),
            now: Snapshot::parse(&reply(120, 10, 20), t0 + Duration::from_secs(1)),
            status: "disconnected (x); retrying".into(),
        };
        let backend = ratatui::backend::TestBackend::new(110, 30);
        let mut term = ratatui::Terminal::new(backend).unwrap();
        term.draw(|f| view.draw(f)).unwrap();
        let text: String = term
            .backend()
            .buffer()
            .content()
            .iter()
            .map(|c| c.symbol())
            .collect();
        for part in [
            "tier0",
            "dram",
            "tier1",
            "disk",
            "hit ratio",
            "tier0 <- tier1",
            "get",
            "slru50+h1",
            "retrying",
            "q: quit",
        ] {
            assert!(text.contains(part), "{part} missing");
        }
    }
}
