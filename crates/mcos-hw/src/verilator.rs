//! Builds the RTL with Verilator (C++ model plus `hw/tb/harness.cpp`) and runs it on an event
//! file. A build is reused while the sources and parameters are unchanged (a stamp file holds
//! their hash), so tests and benchmarks pay the C++ compile once.

use crate::event::{Descriptor, Event, Output};
use crate::telemetry::{PortRun, Regs};
use crate::{HwConfig, HwError};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository's `hw/` folder (the RTL and the harness).
pub fn hw_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../hw")
}

/// Where builds go: `$CARGO_TARGET_DIR/mcos-hw` or the workspace's `target/mcos-hw`.
pub fn work_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"))
        .join("mcos-hw")
}

/// `name` on PATH, if any.
pub fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> HwError + '_ {
    move |source| HwError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Verilator parameters for `cfg`.
pub fn params(cfg: &HwConfig) -> Vec<String> {
    vec![
        format!("-GFRAMES={}", cfg.frames),
        format!("-GFRAMES1={}", cfg.frames1),
        format!("-GFRAME_BITS={}", cfg.frame_bits),
        format!("-GSET_BITS={}", cfg.set_bits),
        format!("-GSK_BITS={}", cfg.sketch_bits),
        format!("-GTAG_BITS={}", cfg.tag_bits),
        format!("-GWAYS={}", crate::config::WAYS),
        format!("-GWAY_BITS={}", crate::config::WAYS.trailing_zeros()),
        format!(
            "-GAGED={}",
            u8::from(cfg.replacement == mcos_core::Replacement::Aged)
        ),
        format!("-GTEL_DEPTH_BITS={}", cfg.tel_depth_bits),
    ]
}

/// A built harness.
pub struct Harness {
    exe: PathBuf,
    dir: PathBuf,
    tel_depth_bits: u32,
    /// Seconds the build took (0 when reused).
    pub build_seconds: f64,
}

/// Verilates and compiles the pipeline for `cfg` (or reuses the last build).
pub fn build(cfg: &HwConfig) -> Result<Harness, HwError> {
    let verilator = which("verilator").ok_or(HwError::Tool {
        tool: "verilator",
        why: "not on PATH (Debian: apt-get install verilator)".into(),
    })?;
    let rtl = hw_dir().join("rtl/mcos_hw_pipeline.sv");
    let tb = hw_dir().join("tb/harness.cpp");
    let mut h = std::collections::hash_map::DefaultHasher::new();
    std::fs::read(&rtl).map_err(io(&rtl))?.hash(&mut h);
    std::fs::read(&tb).map_err(io(&tb))?.hash(&mut h);
    params(cfg).hash(&mut h);
    let stamp_value = format!("{:016x}", h.finish());
    let dir = if cfg.frames1 > 0 {
        work_dir().join(format!(
            "verilator-{}+{}-{:?}",
            cfg.frames, cfg.frames1, cfg.replacement
        ))
    } else {
        work_dir().join(format!("verilator-{}-{:?}", cfg.frames, cfg.replacement))
    };
    let exe = dir.join("harness");
    let stamp = dir.join("stamp");
    if exe.is_file() && std::fs::read_to_string(&stamp).ok().as_deref() == Some(&stamp_value) {
        return Ok(Harness {
            exe,
            dir,
            tel_depth_bits: cfg.tel_depth_bits,
            build_seconds: 0.0,
        });
    }
    std::fs::create_dir_all(&dir).map_err(io(&dir))?;
    let t = std::time::Instant::now();
    let out = Command::new(verilator)
        .args(["--cc", "--exe", "--build", "-j", "1", "-Wno-fatal", "-O3"])
        .args(["--x-assign", "fast", "--x-initial", "fast"])
        .args(["--top-module", "mcos_hw_pipeline", "-o", "harness"])
        .args(params(cfg))
        .arg("--Mdir")
        .arg(&dir)
        .arg(&rtl)
        .arg(&tb)
        .output()
        .map_err(io(&dir))?;
    if !out.status.success() {
        return Err(HwError::Tool {
            tool: "verilator",
            why: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    std::fs::write(&stamp, &stamp_value).map_err(io(&stamp))?;
    Ok(Harness {
        exe,
        dir,
        tel_depth_bits: cfg.tel_depth_bits,
        build_seconds: t.elapsed().as_secs_f64(),
    })
}

impl Harness {
    /// Runs the RTL on `events` (offered back to back); its outputs, cycle stamped. The
    /// telemetry port is left idle (no consumer: the ring fills and drops, unobserved).
    pub fn run(&self, events: &[Event], name: &str) -> Result<Vec<Output>, HwError> {
        Ok(self.run_port(events, name, 0, 0)?.outputs)
    }

    /// Runs the RTL on `events` with `shift` written to the telemetry port in cycle 0 and a
    /// consumer of `period` (`telemetry::Consumer`, 0: none) draining the ring, as
    /// `telemetry::run_model_with_consumer` runs the model.
    pub fn run_port(
        &self,
        events: &[Event],
        name: &str,
        shift: u8,
        period: u32,
    ) -> Result<PortRun, HwError> {
        let input = self.dir.join(format!("{name}.events"));
        let output = self.dir.join(format!("{name}.outputs"));
        let regs = self.dir.join(format!("{name}.regs"));
        let drained = self.dir.join(format!("{name}.drained"));
        let descs = self.dir.join(format!("{name}.descs"));
        let mut bytes = Vec::with_capacity(events.len() * Event::RECORD_BYTES);
        for e in events {
            e.encode(&mut bytes);
        }
        std::fs::write(&input, &bytes).map_err(io(&input))?;
        let out = Command::new(&self.exe)
            .arg(&input)
            .arg(&output)
            .arg(&regs)
            .arg(&drained)
            .arg(shift.to_string())
            .arg(period.to_string())
            .arg(self.tel_depth_bits.to_string())
            .arg(&descs)
            .output()
            .map_err(io(&self.exe))?;
        if !out.status.success() {
            return Err(HwError::Tool {
                tool: "harness",
                why: format!(
                    "{} ({})",
                    String::from_utf8_lossy(&out.stderr).trim(),
                    out.status
                ),
            });
        }
        let data = std::fs::read(&output).map_err(io(&output))?;
        let regs_data = std::fs::read(&regs).map_err(io(&regs))?;
        let drained_data = std::fs::read(&drained).map_err(io(&drained))?;
        let descs_data = std::fs::read(&descs).map_err(io(&descs))?;
        for f in [&input, &output, &regs, &drained, &descs] {
            let _ = std::fs::remove_file(f);
        }
        let word = |r: &[u8]| {
            r.iter()
                .rev()
                .fold(0u128, |acc, &x| (acc << 8) | u128::from(x))
        };
        Ok(PortRun {
            outputs: Output::decode_all(&data).map_err(|why| HwError::Tool {
                tool: "harness",
                why: format!("{}: {why}", output.display()),
            })?,
            regs: regs_data
                .chunks_exact(12)
                .map(|r| Regs {
                    head: word(&r[0..4]) as u32,
                    tail: word(&r[4..8]) as u32,
                    dropped: word(&r[8..12]) as u32,
                })
                .collect(),
            drained: drained_data
                .chunks_exact(24)
                .map(|r| (word(&r[0..8]) as u64, word(&r[8..24])))
                .collect(),
            descriptors: Descriptor::decode_all(&descs_data),
        })
    }
}
