//! Where a miss-ratio curve's time goes (issue 17), on the 50 log-spaced capacities of
//! `mcos mrc` (1 % to 100 % of the unique blocks) over the in-memory trace:
//!
//! - default: per policy, the exact replays of every capacity, and for `mcos` its brain's
//!   share (`BrainStats::busy`) and sampled accesses per capacity (on stderr);
//! - `CURVES=1`: `miss_ratio_curves` over the policies as `mcos mrc` computes them (2 threads),
//!   timed, `REPEATS` times (default 1);
//! - `CMP_RATE=r`: the curves at sample rate `r` (`SALT=s` draws another sample), every point
//!   against its exact replay: the largest gap, the mean signed gap and the points over 0.005.
//!
//! ```text
//! cargo run --release -p mcos-workload --example mrc_cost -- TRACE [POLICIES] [POINTS]
//! ```

use std::time::Instant;

use mcos_workload::mrc::log_spaced;
use mcos_workload::policy::{self, CachePolicy, McosPolicy};
use mcos_workload::{MrcConfig, Request, Simulator, miss_ratio_curves, replay};

fn exact(name: &str, capacity: u64, reqs: &[Request]) -> Result<f64, Box<dyn std::error::Error>> {
    let mut p = policy::by_name(name, capacity as usize, None)?;
    let c = replay(reqs, p.as_mut(), 512);
    Ok(c.block_hits as f64 / c.block_accesses.max(1) as f64)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: mrc_cost TRACE [POLICIES] [POINTS]")?;
    let policies = args.next().unwrap_or_else(|| "mcos,wtinylfu,s3fifo".into());
    let points: usize = args.next().unwrap_or_else(|| "50".into()).parse()?;
    let sim = Simulator::open(&path, 512)?;
    let unique = sim.stats().unique_blocks;
    let caps = log_spaced(unique.div_ceil(100), unique, points);
    let reqs = sim.requests()?;
    let names: Vec<String> = policies.split(',').map(str::to_owned).collect();
    let env_num = |k: &str, d: u64| std::env::var(k).map_or(Ok(d), |s| s.parse());

    if std::env::var("CURVES").is_ok() {
        let cfg = MrcConfig {
            policies: names,
            capacities: caps,
            sample_rate: None,
            salt: 0,
            threads: 2,
        };
        for _ in 0..env_num("REPEATS", 1)? {
            let t = Instant::now();
            miss_ratio_curves(reqs, 512, &cfg, &|_, _| {})?;
            println!("curves {:.2} s", t.elapsed().as_secs_f64());
        }
        return Ok(());
    }

    if let Ok(rate) = std::env::var("CMP_RATE") {
        let cfg = MrcConfig {
            policies: names,
            capacities: caps,
            sample_rate: Some(rate.parse()?),
            salt: env_num("SALT", 0)?,
            threads: 2,
        };
        let report = miss_ratio_curves(reqs, 512, &cfg, &|_, _| {})?;
        for curve in &report.curves {
            let (mut worst, mut sum, mut over) = (0.0f64, 0.0, 0);
            for p in &curve.points {
                let ex = exact(&curve.policy, p.capacity_blocks, reqs)?;
                let gap = p.hit_ratio - ex;
                over += usize::from(gap.abs() > 0.005);
                worst = worst.max(gap.abs());
                sum += gap;
                eprintln!(
                    "{} {:>7} rate {:.4}: {:.4} exact {ex:.4} gap {gap:+.4}",
                    curve.policy, p.capacity_blocks, p.sample_rate, p.hit_ratio
                );
            }
            println!(
                "{} {:?}: worst {worst:.4}, mean signed {:+.4}, over 0.005: {over}",
                curve.policy,
                curve.method,
                sum / curve.points.len() as f64
            );
        }
        return Ok(());
    }

    for name in &names {
        let (mut total, mut brain, mut samples) = (0.0, 0.0, 0u64);
        for &c in &caps {
            let t = Instant::now();
            if name == "mcos" {
                let mut p = McosPolicy::new(c as usize);
                replay(reqs, &mut p as &mut dyn CachePolicy, 512);
                let b = p.brain().stats();
                brain += b.busy.as_secs_f64();
                samples += b.sampled_accesses;
                eprintln!(
                    "mcos {c:>7} blocks: {:.3} s, brain {:.3} s, {} brain samples, shift {}",
                    t.elapsed().as_secs_f64(),
                    b.busy.as_secs_f64(),
                    b.sampled_accesses,
                    p.brain().sample_shift()
                );
            } else {
                exact(name, c, reqs)?;
            }
            total += t.elapsed().as_secs_f64();
        }
        println!(
            "{name}: {} points, {total:.2} s, brain {brain:.2} s ({samples} brain samples)",
            caps.len()
        );
    }
    Ok(())
}
