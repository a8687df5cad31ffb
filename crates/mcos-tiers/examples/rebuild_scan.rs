//! Rebuild speed of a large persistent tier file: writes a block into every frame, drops the
//! page cache when allowed (root), then times the header-only scan a warm restart does.
//!
//! `cargo run --release -p mcos-tiers --example rebuild_scan -- [GiB=4] [block_bytes=16384] [dir]`

use mcos_core::BlockKey;
use mcos_tiers::DiskTier;
use mcos_tiers::rebuild::scan_headers;
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let gib: u64 = args.get(1).map_or(Ok(4), |s| s.parse())?;
    let block: u32 = args.get(2).map_or(Ok(16384), |s| s.parse())?;
    let dir = match args.get(3) {
        Some(d) => std::path::PathBuf::from(d),
        None => std::env::temp_dir(),
    };
    let stride = (u64::from(block) + 64).div_ceil(4096) * 4096;
    let frames = u32::try_from((gib << 30) / stride)?;
    let path = dir.join("mcos-rebuild-scan.tier");
    let _ = std::fs::remove_file(&path);
    let tier = DiskTier::create(&path, frames, block)?;
    let t = Instant::now();
    let payload = [0x5au8; 64];
    for f in 0..frames {
        tier.write_block(f, BlockKey(u128::from(f) + 1), &payload)?;
    }
    tier.sync_data()?;
    println!(
        "wrote {frames} frames ({:.2} GiB file) in {:.1} s",
        tier.file_bytes() as f64 / f64::from(1u32 << 30),
        t.elapsed().as_secs_f64()
    );
    let dropped = std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok();
    let scan = scan_headers(&tier)?;
    println!(
        "scan ({} page cache): {} headers ({} blocks, {} empty, {} discarded) in {:.3} s: \
         {:.2} GB/s of file covered, {:.0} headers/s",
        if dropped {
            "cold: dropped"
        } else {
            "could not drop the"
        },
        scan.frames_scanned,
        scan.blocks.len(),
        scan.empty_frames,
        scan.discarded_frames,
        scan.seconds,
        scan.file_bytes_covered as f64 / scan.seconds / 1e9,
        scan.frames_scanned as f64 / scan.seconds
    );
    let scan = scan_headers(&tier)?;
    println!(
        "scan again (warm): {:.3} s: {:.2} GB/s, {:.0} headers/s",
        scan.seconds,
        scan.file_bytes_covered as f64 / scan.seconds / 1e9,
        scan.frames_scanned as f64 / scan.seconds
    );
    drop(tier);
    std::fs::remove_file(&path)?;
    Ok(())
}
