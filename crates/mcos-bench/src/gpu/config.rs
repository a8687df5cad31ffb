//! Configuration of `mcos bench gpu` (the benchmark itself is `cuda::bench`, feature `cuda`).
//! Plain data and validation, tested on every machine.

use std::path::PathBuf;

/// Llama-3-8B's weights per transformer layer in bf16: 4096 x (4096 + 1024 + 1024 + 4096) for
/// attention plus 3 x 4096 x 14336 for the MLP = 218,103,808 parameters.
pub const LLAMA3_8B_LAYER_WEIGHT_BYTES: u64 = 218_103_808 * 2;

/// What `mcos bench gpu` runs.
#[derive(Clone, Debug, PartialEq)]
pub struct GpuBenchConfig {
    /// CUDA device ordinal.
    pub device: i32,
    /// Scattered blocks per transfer batch (one launch or batched call moves them all).
    pub transfer_blocks: u32,
    /// Payload sizes of the scattered-block runs.
    pub block_sizes: Vec<u32>,
    /// Frames of each arena the blocks are scattered over (>= `transfer_blocks`).
    pub scatter_frames: u32,
    /// Timed repetitions per transfer run (median reported).
    pub reps: u32,
    /// Decision-to-first-byte samples.
    pub latency_samples: u32,
    /// Descriptors per latency sample.
    pub latency_batch: u32,
    /// Directory for the disk -> HBM run's file.
    pub disk_dir: PathBuf,
    /// Blocks of the disk -> HBM run (64 KiB each).
    pub disk_blocks: u32,
    /// Context tokens of the decode loop.
    pub context_tokens: u32,
    /// Timed decode steps per mode.
    pub decode_tokens: u32,
    /// Resident fractions of the KV cache the decode loop sweeps (below 1: it does not fit).
    pub resident_fractions: Vec<f64>,
    /// Weight bytes each decode layer reads.
    pub weights_bytes_per_layer: u64,
}

impl GpuBenchConfig {
    /// The full run (targets of issue 4): 1024 scattered 16 and 64 KiB blocks, an 8K-token
    /// Llama-3-8B decode at 87.5, 75 and 50 % of its KV cache resident.
    pub fn full(disk_dir: PathBuf) -> GpuBenchConfig {
        GpuBenchConfig {
            device: 0,
            transfer_blocks: 1024,
            block_sizes: vec![16 << 10, 64 << 10],
            scatter_frames: 4096,
            reps: 20,
            latency_samples: 2000,
            latency_batch: 32,
            disk_dir,
            disk_blocks: 512,
            context_tokens: 8192,
            decode_tokens: 16,
            resident_fractions: vec![0.875, 0.75, 0.5],
            weights_bytes_per_layer: LLAMA3_8B_LAYER_WEIGHT_BYTES,
        }
    }

    /// A short run that exercises every path (smoke test on a GPU machine).
    pub fn quick(disk_dir: PathBuf) -> GpuBenchConfig {
        GpuBenchConfig {
            transfer_blocks: 256,
            scatter_frames: 1024,
            reps: 5,
            latency_samples: 200,
            disk_blocks: 64,
            context_tokens: 2048,
            decode_tokens: 4,
            resident_fractions: vec![0.75],
            weights_bytes_per_layer: 64 << 20,
            ..GpuBenchConfig::full(disk_dir)
        }
    }

    /// Checks the numbers hold together; the message names the option.
    pub fn validate(&self) -> Result<(), String> {
        if self.transfer_blocks == 0
            || self.transfer_blocks as usize > mcos_core::limits::GPU_ENGINE_BATCH
        {
            return Err(format!(
                "--blocks {} is outside 1..={} (one GPU engine batch)",
                self.transfer_blocks,
                mcos_core::limits::GPU_ENGINE_BATCH
            ));
        }
        if self.scatter_frames < self.transfer_blocks {
            return Err(format!(
                "--scatter-frames {} is smaller than --blocks {}",
                self.scatter_frames, self.transfer_blocks
            ));
        }
        if self.block_sizes.is_empty() {
            return Err("--block-sizes needs at least one size".into());
        }
        for &b in &self.block_sizes {
            if b == 0 || b > 16 << 20 {
                return Err(format!("block size {b} is outside 1..=16 MiB"));
            }
        }
        if self.reps == 0 || self.reps > 1000 {
            return Err(format!("--reps {} is outside 1..=1000", self.reps));
        }
        if self.latency_samples == 0 || self.latency_samples > 100_000 {
            return Err(format!(
                "--latency-samples {} is outside 1..=100000",
                self.latency_samples
            ));
        }
        if self.latency_batch == 0
            || self.latency_batch as usize > mcos_core::limits::GPU_ENGINE_BATCH
        {
            return Err(format!(
                "latency batch {} is outside 1..=1024",
                self.latency_batch
            ));
        }
        if self.disk_blocks == 0 || self.disk_blocks > 65_536 {
            return Err(format!(
                "--disk-blocks {} is outside 1..=65536",
                self.disk_blocks
            ));
        }
        if self.context_tokens < 16 || self.context_tokens > 1 << 20 {
            return Err(format!(
                "--context-tokens {} is outside 16..=1048576",
                self.context_tokens
            ));
        }
        if self.decode_tokens == 0 || self.decode_tokens > 10_000 {
            return Err(format!(
                "--decode-tokens {} is outside 1..=10000",
                self.decode_tokens
            ));
        }
        for &f in &self.resident_fractions {
            if !(0.0..1.0).contains(&f) {
                return Err(format!(
                    "resident fraction {f} is outside 0..1 (1.0 is the all-in-HBM reference, always run)"
                ));
            }
        }
        if self.weights_bytes_per_layer < 4096 * 2 * 8 || self.weights_bytes_per_layer > 8 << 30 {
            return Err(format!(
                "--weights-mib {} is outside 64 KiB..8 GiB",
                self.weights_bytes_per_layer >> 20
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_are_valid_and_bad_values_name_their_option() {
        let d = PathBuf::from("/tmp");
        GpuBenchConfig::full(d.clone()).validate().unwrap();
        GpuBenchConfig::quick(d.clone()).validate().unwrap();
        assert_eq!(LLAMA3_8B_LAYER_WEIGHT_BYTES, 436_207_616);
        let mut c = GpuBenchConfig::full(d.clone());
        c.transfer_blocks = 5000;
        assert!(c.validate().unwrap_err().contains("--blocks"));
        let mut c = GpuBenchConfig::full(d.clone());
        c.scatter_frames = 10;
        assert!(c.validate().unwrap_err().contains("--scatter-frames"));
        let mut c = GpuBenchConfig::full(d.clone());
        c.resident_fractions = vec![1.0];
        assert!(c.validate().unwrap_err().contains("resident fraction"));
        let mut c = GpuBenchConfig::full(d);
        c.block_sizes = vec![0];
        assert!(c.validate().is_err());
    }
}
