//! Synthesis and place and route: yosys statistics for a generic and an iCE40 mapping, and
//! nextpnr-ice40 for a measured fmax. The scripts are `hw/synth/*.ys.in`; the figures are
//! parsed from the tools' own reports, never assumed.

use crate::verilator::{hw_dir, which, work_dir};
use crate::{HwConfig, HwError};
use std::path::Path;
use std::process::Command;

/// What yosys reported.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SynthStats {
    /// Cells in the top module.
    pub cells: u64,
    /// Flip-flops (iCE40: SB_DFF*; generic: $_DFF*/$_SDFF*/$_DFFE* cells).
    pub ffs: u64,
    /// LUTs (iCE40: SB_LUT4; generic: 0).
    pub luts: u64,
    /// Carry cells (iCE40: SB_CARRY).
    pub carries: u64,
    /// iCE40 block RAMs (SB_RAM40_4K, 4 Kbit each).
    pub brams: u64,
    /// Memory bits (generic: $mem cells' bits; iCE40: BRAMs x 4096).
    pub ram_bits: u64,
}

/// nextpnr's result.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PnrStats {
    /// Fmax nextpnr reported for the clock, MHz: after routing when routing completed, else
    /// its post-placement estimate (`routed` says which).
    pub fmax_mhz: f64,
    /// Whether routing completed within the time limit.
    pub routed: bool,
    /// Device.
    pub device: String,
    /// Logic cells used / available.
    pub logic_cells: (u64, u64),
    /// Block RAMs used / available.
    pub brams: (u64, u64),
}

/// The configuration placed on an iCE40 HX8K: 256 frames, 12-bit tags and 256-counter sketch
/// rows, so that each of the 16 directory way RAMs is one 16-bit-wide block RAM and everything
/// fits its 32 (the logic is the same RTL; the software-checked configuration has 64-bit tags,
/// whose comparators are wider, and 4096-counter rows).
pub fn ice40_config() -> HwConfig {
    HwConfig {
        frames: 256,
        frames1: 0,
        frame_bits: 8,
        set_bits: 5,
        sketch_bits: 8,
        tag_bits: 12,
        replacement: mcos_core::Replacement::Clock,
        tel_depth_bits: crate::telemetry::DEPTH_BITS_DEFAULT,
    }
}

/// The two-tier configuration placed on an iCE40 HX8K: [`ice40_config`] with a 32-frame tier
/// 1 (global frame ids of 9 bits; 64 sets per directory bank, so each way RAM is still one
/// 16-bit-wide block RAM). With 64 tier-1 frames the first RTL needed 8,122 logic cells of
/// the HX8K's 7,680.
pub fn ice40_two_tier_config() -> HwConfig {
    HwConfig {
        frames1: 32,
        frame_bits: 9,
        set_bits: 6,
        ..ice40_config()
    }
}

/// The two-tier configuration of the generic synthesis: 256 + 32 frames at the
/// software-checked widths.
pub fn generic_two_tier_config() -> HwConfig {
    HwConfig::two_tier(256, 32)
}

/// The configuration of the generic synthesis: the software-checked widths (64-bit tags,
/// 4096-counter sketch rows) at 256 frames (yosys needs minutes per thousand frames of
/// reference-bit logic on these machines).
pub fn generic_config() -> HwConfig {
    HwConfig {
        frames: 256,
        ..HwConfig::for_frames(256)
    }
}

fn chparams(cfg: &HwConfig) -> String {
    format!(
        "-chparam FRAMES {} -chparam FRAMES1 {} -chparam FRAME_BITS {} -chparam SET_BITS {} -chparam SK_BITS {} \
         -chparam TAG_BITS {} -chparam WAYS {} -chparam WAY_BITS {} -chparam AGED {} \
         -chparam TEL_DEPTH_BITS {}",
        cfg.frames,
        cfg.frames1,
        cfg.frame_bits,
        cfg.set_bits,
        cfg.sketch_bits,
        cfg.tag_bits,
        crate::config::WAYS,
        crate::config::WAYS.trailing_zeros(),
        u8::from(cfg.replacement == mcos_core::Replacement::Aged),
        cfg.tel_depth_bits
    )
}

fn tool(name: &'static str) -> Result<std::path::PathBuf, HwError> {
    which(name).ok_or(HwError::Tool {
        tool: name,
        why: "not on PATH (Debian: apt-get install yosys nextpnr-ice40)".into(),
    })
}

fn run_yosys(script_in: &str, cfg: &HwConfig, json: &Path, log: &Path) -> Result<String, HwError> {
    let yosys = tool("yosys")?;
    let tpl_path = hw_dir().join("synth").join(script_in);
    let tpl = std::fs::read_to_string(&tpl_path).map_err(|source| HwError::Io {
        path: tpl_path.display().to_string(),
        source,
    })?;
    let script = tpl
        .replace(
            "@RTL@",
            &hw_dir()
                .join("rtl/mcos_hw_pipeline.sv")
                .display()
                .to_string(),
        )
        .replace(
            "@TOP@",
            &hw_dir()
                .join("rtl/mcos_hw_ice40_top.sv")
                .display()
                .to_string(),
        )
        .replace("@PARAMS@", &chparams(cfg))
        .replace("@JSON@", &json.display().to_string());
    let ys = log.with_extension("ys");
    std::fs::write(&ys, script).map_err(|source| HwError::Io {
        path: ys.display().to_string(),
        source,
    })?;
    let out = Command::new(yosys)
        .arg("-q")
        .arg("-l")
        .arg(log)
        .arg("-s")
        .arg(&ys)
        .output()
        .map_err(|source| HwError::Io {
            path: ys.display().to_string(),
            source,
        })?;
    if !out.status.success() {
        return Err(HwError::Tool {
            tool: "yosys",
            why: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    std::fs::read_to_string(log).map_err(|source| HwError::Io {
        path: log.display().to_string(),
        source,
    })
}

/// Parses the last `stat` report in a yosys log.
pub fn parse_stat(log: &str) -> SynthStats {
    // A report starts with its wire counts; its memory bits come before its cells.
    let report = log.rfind("Number of wires:").map_or(log, |i| &log[i..]);
    let mut s = SynthStats::default();
    let mut mem_bits_generic = 0u64;
    for line in report.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        let num = |i: usize| {
            words
                .get(i)
                .and_then(|w| w.parse::<u64>().ok())
                .unwrap_or(0)
        };
        match words.first().copied() {
            Some("Number") if line.contains("Number of cells:") => s.cells = num(3),
            Some("Number") if line.contains("Number of memory bits:") => mem_bits_generic = num(4),
            Some(cell) if words.len() == 2 => {
                let n = num(1);
                if cell == "SB_LUT4" {
                    s.luts += n;
                } else if cell == "SB_CARRY" {
                    s.carries += n;
                } else if cell.starts_with("SB_RAM40_4K") {
                    s.brams += n;
                } else if cell.starts_with("SB_DFF")
                    || cell.starts_with("$_DFF")
                    || cell.starts_with("$_SDFF")
                    || cell.starts_with("$_DFFE")
                    || cell.starts_with("$_SDFFE")
                    || cell.starts_with("$_SDFFCE")
                {
                    s.ffs += n;
                }
            }
            _ => {}
        }
    }
    s.ram_bits = if s.brams > 0 {
        s.brams * 4096
    } else {
        mem_bits_generic
    };
    s
}

/// Generic synthesis of `cfg` (memories kept as `$mem` cells, counted in bits).
pub fn generic(cfg: &HwConfig) -> Result<SynthStats, HwError> {
    let dir = work_dir().join("synth");
    std::fs::create_dir_all(&dir).map_err(|source| HwError::Io {
        path: dir.display().to_string(),
        source,
    })?;
    let log = run_yosys(
        "generic.ys.in",
        cfg,
        &dir.join("generic.json"),
        &dir.join("generic.log"),
    )?;
    Ok(parse_stat(&log))
}

/// iCE40 synthesis and place and route on an HX8K (CT256), with the netlist yosys wrote.
pub fn ice40(cfg: &HwConfig) -> Result<(SynthStats, PnrStats), HwError> {
    let dir = work_dir().join("synth");
    std::fs::create_dir_all(&dir).map_err(|source| HwError::Io {
        path: dir.display().to_string(),
        source,
    })?;
    let json = dir.join("ice40.json");
    let log = run_yosys("ice40.ys.in", cfg, &json, &dir.join("ice40.log"))?;
    let stats = parse_stat(&log);
    let nextpnr = tool("nextpnr-ice40")?;
    let pnr_log = dir.join("nextpnr.log");
    // Bounded: a design that does not route would keep the router busy for as long as it runs.
    let out = Command::new("timeout")
        .arg(PNR_TIME_LIMIT_S.to_string())
        .arg(nextpnr)
        .args([
            "--hx8k",
            "--package",
            "ct256",
            "--freq",
            "100",
            "--seed",
            "1",
        ])
        .arg("--json")
        .arg(&json)
        .arg("--log")
        .arg(&pnr_log)
        .output()
        .map_err(|source| HwError::Io {
            path: json.display().to_string(),
            source,
        })?;
    let text = std::fs::read_to_string(&pnr_log).unwrap_or_default();
    let placed = text.contains("Max frequency for clock");
    if !out.status.success() && !placed {
        return Err(HwError::Tool {
            tool: "nextpnr-ice40",
            why: format!(
                "{}{}",
                String::from_utf8_lossy(&out.stderr),
                text.lines().rev().take(20).collect::<Vec<_>>().join("\n")
            ),
        });
    }
    Ok((stats, parse_pnr(&text)))
}

/// Seconds nextpnr may run (place and route of the HX8K configuration: about 7 minutes on the
/// shared 2-vCPU machine of BENCHMARKS.md; a design that does not route stops here).
pub const PNR_TIME_LIMIT_S: u32 = 900;

/// Parses a nextpnr-ice40 log: the last "Max frequency for clock" line and the utilisation.
pub fn parse_pnr(log: &str) -> PnrStats {
    let mut p = PnrStats {
        device: "iCE40 HX8K (ct256)".into(),
        ..PnrStats::default()
    };
    // Routing finished when the router printed its summary; the timing after it is final.
    p.routed = log.contains("Routing complete");
    for line in log.lines() {
        if let Some(i) = line.find("Max frequency for clock") {
            // "... Max frequency for clock 'clk$SB_IO_IN_$glb_clk': 41.23 MHz (PASS at 12.00 MHz)"
            if let Some(mhz) = line[i..]
                .split(':')
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                .and_then(|v| v.parse::<f64>().ok())
            {
                p.fmax_mhz = mhz;
            }
        }
        let used = |name: &str| -> Option<(u64, u64)> {
            let i = line.find(name)?;
            let rest = line[i + name.len()..].trim_start_matches(':').trim();
            let mut it = rest.split('/');
            let a = it.next()?.trim().parse().ok()?;
            let b = it.next()?.split_whitespace().next()?.parse().ok()?;
            Some((a, b))
        };
        if let Some(v) = used("ICESTORM_LC") {
            p.logic_cells = v;
        }
        if let Some(v) = used("ICESTORM_RAM") {
            p.brams = v;
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_yosys_ice40_stat_report() {
        let log = "Number of wires: 1\nNumber of cells: 1\n...\n   Number of wires: 9\n   \
                   Number of memory bits:            0\n   \
                   Number of cells:              11732\n     SB_CARRY                      290\n     \
                   SB_DFF                        173\n     SB_DFFESR                      19\n     \
                   SB_LUT4                     10806\n     SB_RAM40_4K                    22\n";
        let s = parse_stat(log);
        assert_eq!(s.cells, 11732, "the last report counts");
        assert_eq!((s.luts, s.ffs, s.carries, s.brams), (10806, 192, 290, 22));
        assert_eq!(s.ram_bits, 22 * 4096);
    }

    #[test]
    fn parses_generic_memory_bits_and_flip_flops() {
        let log = "   Number of wires: 3\n   Number of memory bits:       1234\n   \
                   Number of cells:   50\n     \
                   $_DFFE_PP_   7\n     $_SDFF_PP0_   3\n     $mem_v2   2\n";
        let s = parse_stat(log);
        assert_eq!((s.cells, s.ffs, s.luts), (50, 10, 0));
        assert_eq!(s.ram_bits, 1234, "memory bits come before the cells line");
    }

    #[test]
    fn parses_nextpnr_fmax_and_utilisation() {
        let log = "Info: \t         ICESTORM_LC:  3579/ 7680    46%\n\
                   Info: \t        ICESTORM_RAM:    22/   32    68%\n\
                   Info: Max frequency for clock 'clk$SB_IO_IN_$glb_clk': 29.75 MHz (FAIL at 100.00 MHz)\n\
                   ERROR: Max frequency for clock 'clk$SB_IO_IN_$glb_clk': 28.15 MHz (FAIL at 100.00 MHz)\n";
        let p = parse_pnr(log);
        assert_eq!(p.fmax_mhz, 28.15, "the post-route figure (the last)");
        assert_eq!(p.logic_cells, (3579, 7680));
        assert_eq!(p.brams, (22, 32));
    }
}
