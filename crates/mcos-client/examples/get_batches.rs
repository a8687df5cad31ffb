//! The Rust client's batch-get rate against a running mcosd, for `crates/mcos-py/bench`
//! (the Python binding's figures are measured against this, on the same daemon and blocks).
//!
//! `get_batches SOCKET BLOCK_BYTES KEYS BATCH SECONDS MODE`: reads random batches of BATCH
//! blocks among keys 1..=KEYS (stored beforehand by the caller) for SECONDS and prints one
//! JSON line. MODE `copy`: `get_into` caller buffers (through the shared region: the daemon's
//! copy plus one here, as the Python `get_into` of numpy arrays); `region`: `get_into_region`
//! (the daemon's copy only). Every batch must hit in full.

use mcos_client::{Client, ClientOptions};
use mcos_core::BlockKey;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    if a.len() != 6 {
        return Err("usage: get_batches SOCKET BLOCK_BYTES KEYS BATCH SECONDS copy|region".into());
    }
    let (block, keys, batch): (usize, u64, usize) = (a[1].parse()?, a[2].parse()?, a[3].parse()?);
    let seconds: f64 = a[4].parse()?;
    let region_mode = a[5] == "region";
    let mut c = Client::connect_with(
        &a[0],
        ClientOptions {
            region_bytes: 2 * batch * block,
            ..ClientOptions::default()
        },
    )?;
    let mut bufs = vec![vec![0u8; block]; batch];
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let (mut bytes, mut batches) = (0u64, 0u64);
    let mut lat_us = Vec::new();
    let t0 = Instant::now();
    while t0.elapsed().as_secs_f64() < seconds {
        let ks: Vec<BlockKey> = (0..batch)
            .map(|_| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                BlockKey(u128::from(rng % keys + 1))
            })
            .collect();
        let b0 = Instant::now();
        let out = if region_mode {
            let descs: Vec<(BlockKey, u64, u32)> = ks
                .iter()
                .enumerate()
                .map(|(i, &k)| (k, (i * block) as u64, block as u32))
                .collect();
            c.get_into_region(&descs)?
        } else {
            let mut views: Vec<&mut [u8]> = bufs.iter_mut().map(|b| &mut b[..]).collect();
            c.get_into(&ks, &mut views)?
        };
        lat_us.push(b0.elapsed().as_secs_f64() * 1e6);
        if !out.iter().all(|o| o.is_hit()) {
            return Err(format!("a batch missed: {out:?}").into());
        }
        bytes += (batch * block) as u64;
        batches += 1;
    }
    let secs = t0.elapsed().as_secs_f64();
    lat_us.sort_by(f64::total_cmp);
    let p50 = lat_us.get(lat_us.len() / 2).copied().unwrap_or(0.0);
    println!(
        "{{\"mode\": \"{}\", \"gb_per_s\": {:.4}, \"batches\": {batches}, \"p50_us\": {p50:.1}}}",
        a[5],
        bytes as f64 / secs / 1e9
    );
    Ok(())
}
