//! The trace parsers: Mooncake JSONL from any bytes (each line a request or an error naming
//! it), and the Azure CSV reader. Never a panic, a hang or an unbounded allocation.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mcos_trace::{AzureSynthesis, TraceReader, read_azure};

fuzz_target!(|data: &[u8]| {
    let reader = TraceReader::from_reader(std::io::Cursor::new(data), "fuzz.jsonl");
    for r in reader.take(10_000) {
        if let Ok(req) = r {
            let _ = req.block_tokens_total(16);
        }
    }
    // The Azure reader takes a path: one scratch file per fuzzing process.
    let path = std::env::temp_dir().join(format!("mcos-fuzz-azure-{}.csv", std::process::id()));
    if std::fs::write(&path, data).is_ok() {
        let _ = read_azure(&path, &AzureSynthesis::default());
    }
});
