//! Writes a large synthetic object trace in libCacheSim's `oracleGeneral` format, for measuring
//! the simulator on traces of tens of millions of requests (none is staged in `../shared/traces`).
//!
//! ```sh
//! cargo run --release -p mcos-trace --example synth_objects -- OUT REQUESTS OBJECTS [ALPHA] [SEED]
//! cargo run --release -p mcos-trace --example synth_objects -- /tmp/z30m.oracleGeneral.bin 30000000 3000000
//! ```
//!
//! Popularity is Zipf(`ALPHA`, default 0.9) over `OBJECTS` ids, with the ranks scattered over the
//! id space (a rank's id is a hash of it, so popular ids are not neighbours); each object's size
//! is drawn once from a log-normal around 16 KiB (sigma 1.5, clipped to 512 B .. 4 MiB, whole
//! 512-byte sectors). `next_access_vtime` is filled in exactly (a backward pass), so Belady runs
//! on the file. Deterministic for a given seed. Memory: 16 bytes per request while writing.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::process::ExitCode;

use mcos_trace::objtrace::{NEVER_AGAIN, ObjRequest, write_oracle_general};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("synth_objects: {e}");
            ExitCode::FAILURE
        }
    }
}

fn arg<T: std::str::FromStr>(
    args: &[String],
    i: usize,
    name: &str,
    default: Option<T>,
) -> Result<T, String> {
    match args.get(i) {
        Some(s) => s.parse().map_err(|_| format!("{name}: cannot parse {s:?}")),
        None => default.ok_or_else(|| {
            format!("usage: synth_objects OUT REQUESTS OBJECTS [ALPHA] [SEED] (missing {name})")
        }),
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out: String = arg(&args, 0, "OUT", None)?;
    let requests: usize = arg(&args, 1, "REQUESTS", None)?;
    let objects: usize = arg(&args, 2, "OBJECTS", None)?;
    let alpha: f64 = arg(&args, 3, "ALPHA", Some(0.9))?;
    let seed: u64 = arg(&args, 4, "SEED", Some(42))?;
    if requests == 0 || objects == 0 || u32::try_from(objects).is_err() || alpha <= 0.0 {
        return Err("REQUESTS and OBJECTS must be positive (OBJECTS < 2^32) and ALPHA > 0".into());
    }

    // Zipf by inverting the cumulative weights of the ranks.
    let mut cdf = Vec::with_capacity(objects);
    let mut total = 0.0;
    for rank in 1..=objects {
        total += (rank as f64).powf(-alpha);
        cdf.push(total);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut ranks: Vec<u32> = Vec::with_capacity(requests);
    for i in 0..requests {
        let u = rng.random::<f64>() * total;
        ranks.push(cdf.partition_point(|&c| c < u).min(objects - 1) as u32);
        if i % 10_000_000 == 9_999_999 {
            eprintln!("synth_objects: drew {} M requests", (i + 1) / 1_000_000);
        }
    }
    drop(cdf);

    // Next access of every request, from a backward pass.
    let mut next = vec![NEVER_AGAIN; requests];
    let mut seen: HashMap<u32, usize> = HashMap::with_capacity(objects);
    for i in (0..requests).rev() {
        if let Some(j) = seen.insert(ranks[i], i) {
            next[i] = j as i64;
        }
    }
    let unique = seen.len();
    drop(seen);

    let file = File::create(&out).map_err(|e| format!("{out}: {e}"))?;
    let mut w = BufWriter::with_capacity(1 << 20, file);
    let mut bytes: u64 = 0;
    let mut batch = Vec::with_capacity(4096);
    for (i, (&rank, &next_access_vtime)) in ranks.iter().zip(&next).enumerate() {
        let id = scatter(u64::from(rank), seed);
        let size = object_size(id);
        bytes += size;
        batch.push(ObjRequest {
            time: (i / 1000) as u64,
            id,
            size,
            next_access_vtime,
        });
        if batch.len() == batch.capacity() {
            write_oracle_general(&mut w, &batch).map_err(|e| format!("{out}: {e}"))?;
            batch.clear();
        }
    }
    write_oracle_general(&mut w, &batch).map_err(|e| format!("{out}: {e}"))?;
    w.flush().map_err(|e| format!("{out}: {e}"))?;
    eprintln!(
        "synth_objects: wrote {out}: {requests} requests, {unique} unique objects, \
         {:.1} GiB requested, Zipf alpha {alpha}, seed {seed}",
        bytes as f64 / (1u64 << 30) as f64
    );
    Ok(())
}

/// A rank's object id: a bijective mix (splitmix64's finaliser) of the rank and the seed.
fn scatter(rank: u64, seed: u64) -> u64 {
    let mut z = rank.wrapping_add(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// An object's size, a function of its id: log-normal around 16 KiB, in 512-byte sectors.
fn object_size(id: u64) -> u64 {
    let mut rng = ChaCha8Rng::seed_from_u64(id);
    let u1 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    let normal = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
    let bytes = 16_384.0 * (1.5 * normal).exp();
    (bytes.clamp(512.0, 4.0 * 1024.0 * 1024.0) as u64).div_ceil(512) * 512
}
