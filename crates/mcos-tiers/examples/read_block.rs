//! Cost of one synchronous disk-tier read, three ways, interleaved in one run:
//! - `alloc`: the former `DiskTier::read_block` (a fresh zeroed aligned buffer per call, one
//!   O_DIRECT read into it, verify, copy the payload out), rebuilt here as the baseline;
//! - `bounce`: `DiskTier::read_block` now (this thread's kept bounce buffer, verify, copy);
//! - `direct`: `DiskTier::read_block_direct` into an aligned slot (read and verify in place).
//!
//! `cargo run --release -p mcos-tiers --example read_block -- [block_kib=16,256] [rounds=7] [dir]`
//!
//! Blocks are spread over 64 MiB of frames read in random order; whether reads reach the
//! device depends on the filesystem (O_DIRECT on ext4 does; on tmpfs it is a memory copy).
//! Prints per-read medians of `rounds` interleaved rounds and the ratios to `alloc`.

use mcos_core::BlockKey;
use mcos_core::limits::{BLOCK_HEADER_BYTES, DISK_ALIGN};
use mcos_tiers::DiskTier;
use mcos_tiers::header::verify;
use std::alloc::{Layout, alloc_zeroed, dealloc};
use std::fs::OpenOptions;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::time::Instant;

/// Reads per way per round.
const READS: usize = 2000;

/// The former read path: allocate and zero a frame-sized aligned buffer, read, verify, copy.
fn read_alloc(
    file: &std::fs::File,
    tier: &DiskTier,
    frame: u32,
    key: BlockKey,
    out: &mut [u8],
) -> Result<usize, Box<dyn std::error::Error>> {
    let stride = tier.frame_stride();
    let layout = Layout::from_size_align(stride, DISK_ALIGN)?;
    // SAFETY: the layout has a non-zero size (a frame is at least 4096 bytes).
    let ptr = unsafe { alloc_zeroed(layout) };
    if ptr.is_null() {
        return Err("allocation failed".into());
    }
    // SAFETY: `ptr` is a live allocation of `stride` zeroed bytes, freed below, not aliased.
    let buf = unsafe { std::slice::from_raw_parts_mut(ptr, stride) };
    let r = file
        .read_exact_at(buf, tier.frame_offset(frame)?)
        .map_err(Box::<dyn std::error::Error>::from)
        .and_then(|()| {
            let len = verify(buf, key)? as usize;
            out[..len].copy_from_slice(&buf[BLOCK_HEADER_BYTES..BLOCK_HEADER_BYTES + len]);
            Ok(len)
        });
    // SAFETY: allocated above with this layout, freed once; `buf` is not used after this.
    unsafe { dealloc(ptr, layout) };
    r
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let kibs: Vec<u32> = args
        .get(1)
        .map_or("16,256", String::as_str)
        .split(',')
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    let rounds: usize = args.get(2).map_or(Ok(7), |s| s.parse())?;
    let dir = args
        .get(3)
        .map_or_else(std::env::temp_dir, std::path::PathBuf::from);
    for kib in kibs {
        let block = kib * 1024;
        let stride = (block as usize + BLOCK_HEADER_BYTES).next_multiple_of(DISK_ALIGN);
        let frames = ((64usize << 20) / stride).max(16) as u32;
        let path = dir.join(format!("mcos-read-block-{}.tier", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let tier = DiskTier::create(&path, frames, block)?;
        let payload: Vec<u8> = (0..block).map(|i| (i % 251) as u8).collect();
        for f in 0..frames {
            tier.write_block(f, BlockKey(u128::from(f) + 1), &payload)?;
        }
        tier.sync_data()?;
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(if tier.direct_io() { libc::O_DIRECT } else { 0 })
            .open(&path)?;
        let mut out = vec![0u8; block as usize];
        let slot_layout = Layout::from_size_align(tier.direct_read_bytes(), DISK_ALIGN)?;
        // SAFETY: non-zero size; freed at the end of this iteration.
        let slot_ptr = unsafe { alloc_zeroed(slot_layout) };
        if slot_ptr.is_null() {
            return Err("allocation failed".into());
        }
        // SAFETY: a live allocation of this many bytes, used only through this slice.
        let slot = unsafe { std::slice::from_raw_parts_mut(slot_ptr, tier.direct_read_bytes()) };
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            (rng % u64::from(frames)) as u32
        };
        let (mut alloc_us, mut bounce_us, mut direct_us) = (vec![], vec![], vec![]);
        for _ in 0..rounds {
            for way in 0..3 {
                let t = Instant::now();
                for _ in 0..READS {
                    let f = next();
                    let key = BlockKey(u128::from(f) + 1);
                    let len = match way {
                        0 => read_alloc(&file, &tier, f, key, &mut out)?,
                        1 => tier.read_block(f, key, &mut out)?,
                        _ => tier.read_block_direct(f, key, slot)?.0,
                    };
                    assert_eq!(len, block as usize);
                }
                let us = t.elapsed().as_secs_f64() * 1e6 / READS as f64;
                [&mut alloc_us, &mut bounce_us, &mut direct_us][way].push(us);
            }
        }
        // SAFETY: allocated above with this layout; `slot` is not used after this.
        unsafe { dealloc(slot_ptr, slot_layout) };
        let direct = tier.direct_io();
        drop(tier);
        let _ = std::fs::remove_file(&path);
        let (a, b, d) = (median(alloc_us), median(bounce_us), median(direct_us));
        println!(
            "{kib} KiB (O_DIRECT {}): per read alloc {a:.1} us, bounce {b:.1} us ({:.2}x alloc), \
             direct {d:.1} us ({:.2}x alloc); medians of {rounds} rounds x {READS} reads",
            direct,
            b / a,
            d / a
        );
    }
    Ok(())
}
