//! The policy-table validator: a table assembled from arbitrary bits is accepted or refused
//! against a topology, never a panic; an accepted table's class words round-trip.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mcos_core::{ClassPolicy, PolicyTable};

fuzz_target!(|data: &[u8]| {
    if data.len() < 24 {
        return;
    }
    let tiers = usize::from(data[0] % 5);
    let mut t = PolicyTable::builtin(tiers.max(1));
    let u32_at = |i: usize| u32::from_le_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
    t.version = u32_at(1);
    t.ttl_ticks = u32_at(5);
    t.sketch_window = u32_at(9);
    t.gpu_routes.gather_max_block_bytes = u32_at(13);
    t.gpu_routes.degraded_below_mb_per_s = u32_at(17);
    t.history_quarters = data[21];
    t.telemetry_kinds = data[22];
    for (i, s) in t.protected_share.iter_mut().enumerate() {
        *s = data.get(23 + i).copied().unwrap_or(0);
    }
    for (i, s) in t.window_share.iter_mut().enumerate() {
        *s = data.get(31 + i).copied().unwrap_or(0);
    }
    for (c, chunk) in data.get(40..).unwrap_or(&[]).chunks(17).enumerate() {
        if c >= t.classes.len() || chunk.len() < 17 {
            break;
        }
        let mut w = [0u8; 16];
        w.copy_from_slice(&chunk[1..]);
        if let Ok(p) = ClassPolicy::from_bits(u128::from_le_bytes(w)) {
            assert_eq!(ClassPolicy::from_bits(p.to_bits()), Ok(p));
            t.classes[usize::from(chunk[0])] = p;
        }
    }
    let dir = std::path::Path::new("/nonexistent");
    let mut cfg = mcos_node::NodeConfig::dram_and_disk(16384, 64, 256, dir);
    cfg.tiers.truncate(tiers.clamp(1, 2));
    let _ = t.validate(&cfg.topology());
});
