//! An object trace (libCacheSim's formats) as a Mooncake-format KV trace at unit size: one
//! block, the object id, per request. This is how the KV-block policies and MIN see a storage
//! trace (BENCHMARKS.md, "Out of domain and large caches").
//!
//! Usage: `object_to_mooncake SRC DST` (the format from SRC's name, as `mcos replay` picks it).

use mcos_trace::objtrace::{ObjFormat, ObjTraceReader};
use mcos_trace::{Request, TraceWriter};
use std::process::ExitCode;

fn run(src: &str, dst: &str) -> Result<u64, String> {
    let format = ObjFormat::from_path(src.as_ref(), None).ok_or_else(|| {
        format!("{src}: no object-trace format in the name (.bin, .txt, .vscsi)")
    })??;
    let reader = ObjTraceReader::open(src, format).map_err(|e| e.to_string())?;
    let mut out = TraceWriter::create(dst).map_err(|e| e.to_string())?;
    let mut n = 0;
    for r in reader {
        let r = r.map_err(|e| e.to_string())?;
        out.write(&Request {
            timestamp_ms: r.time.saturating_mul(1000),
            input_length: 512,
            output_length: 0,
            hash_ids: vec![r.id],
        })
        .map_err(|e| e.to_string())?;
        n += 1;
    }
    out.finish().map_err(|e| e.to_string())?;
    Ok(n)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [src, dst] = args.as_slice() else {
        eprintln!("usage: object_to_mooncake SRC DST");
        return ExitCode::from(2);
    };
    match run(src, dst) {
        Ok(n) => {
            eprintln!("{n} requests written to {dst}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
