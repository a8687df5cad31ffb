//! The object-trace parsers (libCacheSim's formats): oracleGeneral, also through the zstd
//! decoder, CSV with a column spec, txt and vscsi, from any bytes. The first byte picks the
//! format; for CSV the first line is the column spec. Each record is a request or an error that
//! names it; never a panic, a hang or an unbounded allocation.
#![no_main]
use libfuzzer_sys::fuzz_target;
use mcos_trace::objtrace::{CsvColumns, ObjFormat, ObjTraceReader};
use std::io::{BufReader, Cursor};

fn drain(reader: Result<ObjTraceReader, mcos_trace::objtrace::ObjTraceError>) {
    if let Ok(reader) = reader {
        for r in reader.take(10_000) {
            if r.is_err() {
                break;
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let input = |bytes: &[u8]| Box::new(BufReader::new(Cursor::new(bytes.to_vec())));
    match pick % 5 {
        0 => drain(ObjTraceReader::from_reader(
            input(rest),
            "fuzz.oracleGeneral.bin",
            ObjFormat::OracleGeneral,
        )),
        1 => drain(ObjTraceReader::from_reader(
            input(rest),
            "fuzz.txt",
            ObjFormat::Txt,
        )),
        2 => drain(ObjTraceReader::from_reader(
            input(rest),
            "fuzz.vscsi",
            ObjFormat::Vscsi,
        )),
        3 => {
            // "SPEC\nCSV...": the column spec as a user would type it, then the file.
            let split = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
            let (spec, body) = rest.split_at(split);
            let Ok(spec) = std::str::from_utf8(spec) else {
                return;
            };
            if let Ok(cols) = CsvColumns::parse(spec) {
                let body = body.get(1..).unwrap_or_default();
                drain(ObjTraceReader::from_reader(
                    input(body),
                    "fuzz.csv",
                    ObjFormat::Csv(cols),
                ));
            }
        }
        _ => {
            // A `.zst` file: the decoder sees the bytes first. One scratch file per process.
            let path = std::env::temp_dir().join(format!(
                "mcos-fuzz-{}.oracleGeneral.bin.zst",
                std::process::id()
            ));
            if std::fs::write(&path, rest).is_ok() {
                drain(ObjTraceReader::open(&path, ObjFormat::OracleGeneral));
            }
        }
    }
});
