//! Sizes from the command line, bounded before anything is allocated: a refusal names the
//! limit and the memory the request would need, instead of an allocation failure later.

use anyhow::{Result, bail};
use mcos_core::limits::MAX_FRAMES_PER_TIER;

/// Most requests `mcos run` generates: the built-in workload is held in memory (with the
/// simulator's copy and MIN's access sequence); write larger ones with `mcos generate`.
pub const MAX_RUN_REQUESTS: usize = 10_000_000;
/// Memory per generated request of `mcos run`, measured (about 13 blocks per request; the
/// requests, the simulator's copy and the access sequence).
pub const RUN_BYTES_PER_REQUEST: u64 = 1024;
/// Memory per block of a simulated cache (hash index, list node, policy metadata), an upper
/// estimate over the baseline policies.
pub const SIM_BYTES_PER_BLOCK: u64 = 96;

/// Memory the kernel reports available (`MemAvailable`), if known.
pub fn mem_available_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib.saturating_mul(1024))
}

/// `bytes` readably (GiB, MiB or KiB).
pub fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if b >= (1u64 << 30) as f64 {
        format!("{:.1} GiB", b / (1u64 << 30) as f64)
    } else if b >= (1u64 << 20) as f64 {
        format!("{:.1} MiB", b / (1u64 << 20) as f64)
    } else {
        format!("{:.1} KiB", b / 1024.0)
    }
}

/// Refuses `needed` bytes of memory when the machine reports less available.
fn check_memory(what: &str, needed: u64) -> Result<()> {
    if let Some(avail) = mem_available_bytes()
        && needed > avail
    {
        bail!(
            "{what} needs about {} of memory and {} is available: lower it",
            human(needed),
            human(avail)
        );
    }
    Ok(())
}

/// `mcos run --requests`.
pub fn check_run_requests(requests: usize) -> Result<()> {
    let needed = (requests as u64).saturating_mul(RUN_BYTES_PER_REQUEST);
    if requests > MAX_RUN_REQUESTS {
        bail!(
            "--requests {requests} is above the limit of {MAX_RUN_REQUESTS}: the built-in \
             workload is held in memory (about {} for {requests} requests); for a larger \
             workload write a trace with `mcos generate` in parts and replay it",
            human(needed)
        );
    }
    check_memory(&format!("--requests {requests}"), needed)
}

/// A tier of `blocks` blocks, given by `flag`: at most the per-tier frame limit.
fn check_frames(flag: &str, blocks: u64, bytes_per_block: u64) -> Result<()> {
    if blocks >= u64::from(MAX_FRAMES_PER_TIER) {
        bail!(
            "{flag} of {blocks} blocks is above the limit of {} blocks per tier (it would need \
             about {} of memory)",
            MAX_FRAMES_PER_TIER - 1,
            human(blocks.saturating_mul(bytes_per_block))
        );
    }
    Ok(())
}

/// A simulated cache of `blocks` blocks.
pub fn check_sim_blocks(flag: &str, blocks: u64) -> Result<()> {
    check_frames(flag, blocks, SIM_BYTES_PER_BLOCK)?;
    check_memory(
        &format!("{flag} of {blocks} blocks (simulated)"),
        blocks.saturating_mul(SIM_BYTES_PER_BLOCK),
    )
}

/// A real memory tier of `blocks` frames of `stride` bytes.
pub fn check_memory_tier(flag: &str, blocks: u64, stride: u64) -> Result<()> {
    check_frames(flag, blocks, stride)?;
    check_memory(
        &format!("{flag} of {blocks} blocks of {stride} bytes"),
        blocks.saturating_mul(stride),
    )
}

/// A real disk tier of `blocks` frames (its free space is checked when the file is created).
pub fn check_disk_tier(flag: &str, blocks: u64, stride: u64) -> Result<()> {
    check_frames(flag, blocks, stride)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversize_requests_name_the_limit_and_the_memory() {
        let e = check_run_requests(100_000_000).unwrap_err().to_string();
        assert!(e.contains("limit of 10000000") && e.contains("GiB"), "{e}");
        let e = check_sim_blocks("--capacity", 2_000_000_000)
            .unwrap_err()
            .to_string();
        assert!(e.contains("268435455") && e.contains("GiB"), "{e}");
        check_sim_blocks("--capacity", 1000).unwrap();
        check_run_requests(6000).unwrap();
    }
}
