//! What the RTL tests share: the CI switch, the Verilator build (once per configuration and
//! test binary) and the Mooncake trace, each skipped with a printed reason outside CI.

use std::path::PathBuf;
use std::sync::OnceLock;

use mcos_hw::HwConfig;

pub fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// Builds the RTL for `cfg` once into `cell`; `None` (skipped) when verilator is missing,
/// which fails under `CI=true`.
pub fn harness_with(
    cell: &'static OnceLock<Option<mcos_hw::verilator::Harness>>,
    cfg: HwConfig,
) -> Option<&'static mcos_hw::verilator::Harness> {
    cell.get_or_init(|| {
        if mcos_hw::verilator::which("verilator").is_none() {
            assert!(
                !ci(),
                "CI=true but verilator is not on PATH (.ci/run installs it)"
            );
            eprintln!("skipped: verilator is not on PATH (apt-get install verilator)");
            return None;
        }
        let h = mcos_hw::verilator::build(&cfg).expect("verilator is on PATH but the build failed");
        eprintln!("verilator build: {:.1} s", h.build_seconds);
        Some(h)
    })
    .as_ref()
}

/// The Mooncake conversation trace in `../shared`; `None` (skipped) when it is absent, which
/// fails under `CI=true`.
pub fn trace() -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/traces/mooncake-conversation/conversation_trace.jsonl");
    if p.is_file() {
        Some(p)
    } else {
        assert!(
            !ci(),
            "CI=true but the Mooncake trace is missing at {}",
            p.display()
        );
        eprintln!("skipped: no Mooncake trace at {}", p.display());
        None
    }
}
