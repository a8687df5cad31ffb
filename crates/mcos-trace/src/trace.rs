//! Mooncake-format KV-block traces: a streaming reader and a writer.
//!
//! Format (Mooncake, FAST'25, `FAST25-release/traces/*.jsonl`): one JSON object per line with
//! `timestamp` (arrival, milliseconds), `input_length` and `output_length` (prompt and answer, in
//! tokens) and `hash_ids`, one id per `block_tokens` tokens of the prompt (512 in Mooncake). An id
//! stands for the block *and its whole prefix*, so equal ids mean equal prefixes; the last block may
//! be partial. Unknown fields are ignored, blank lines are skipped, and an empty `hash_ids` is a valid
//! request that touches no block.
//!
//! The reader never holds more than one line: it is an iterator of `Result<Request, TraceError>`
//! over a [`BufRead`], and every error names the file and the 1-based line.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Tokens per block in the Mooncake traces.
pub const DEFAULT_BLOCK_TOKENS: u32 = 512;

/// Longest line the reader accepts. A Mooncake line is a few KiB; a line this long is not a trace.
pub const MAX_LINE_BYTES: u64 = 16 << 20;

/// One request of a trace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// Arrival time in milliseconds from the start of the trace.
    #[serde(rename = "timestamp")]
    pub timestamp_ms: u64,
    /// Prompt length in tokens.
    pub input_length: u32,
    /// Answer length in tokens.
    pub output_length: u32,
    /// Prefix-chained block ids of the prompt, first block first.
    pub hash_ids: Vec<u64>,
}

impl Request {
    /// Tokens held by block `index` of this prompt: `block_tokens` for every block but the last,
    /// which holds the remainder `input_length - block_tokens * (n - 1)`, clamped to
    /// `1..=block_tokens` so an inconsistent line still weighs every block.
    ///
    /// # Panics
    /// If `index` is not a block of this request or `block_tokens` is 0 (caller bugs).
    pub fn tokens_in_block(&self, index: usize, block_tokens: u32) -> u32 {
        let n = self.hash_ids.len();
        assert!(index < n, "block {index} of a request with {n} blocks");
        assert!(block_tokens > 0, "block_tokens must be positive");
        if index + 1 < n {
            return block_tokens;
        }
        let full = u64::from(block_tokens) * (n as u64 - 1);
        let rest = u64::from(self.input_length).saturating_sub(full);
        rest.clamp(1, u64::from(block_tokens)) as u32
    }

    /// Tokens per block, in block order (see [`Request::tokens_in_block`]).
    pub fn block_token_counts(&self, block_tokens: u32) -> impl ExactSizeIterator<Item = u32> + '_ {
        (0..self.hash_ids.len()).map(move |i| self.tokens_in_block(i, block_tokens))
    }

    /// Prompt tokens covered by the blocks: the sum of [`Request::block_token_counts`].
    pub fn block_tokens_total(&self, block_tokens: u32) -> u64 {
        self.block_token_counts(block_tokens).map(u64::from).sum()
    }
}

/// What went wrong reading or writing a trace.
#[derive(Debug, Error)]
pub enum TraceError {
    /// The trace file could not be opened.
    #[error("cannot open trace {}: {source} (check the path; traces are read, never copied)", path.display())]
    Open {
        /// The path given.
        path: PathBuf,
        /// The operating system's reason.
        source: io::Error,
    },
    /// Reading a line failed.
    #[error("{}:{line}: read failed: {source}", path.display())]
    Read {
        /// The trace.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// The operating system's reason.
        source: io::Error,
    },
    /// A line is not a valid request.
    #[error("{}:{line}: {reason}", path.display())]
    Parse {
        /// The trace.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// What is wrong with the line, and at which column.
        reason: String,
    },
    /// Creating or writing the output failed.
    #[error("cannot write trace {}: {source}", path.display())]
    Write {
        /// The output.
        path: PathBuf,
        /// The reason.
        source: io::Error,
    },
}

/// Streaming reader of a Mooncake-format trace: yields one `Result<Request, TraceError>` per
/// non-blank line. A malformed line yields an error and reading goes on with the next line; an I/O
/// error or an over-long line ends the iteration.
#[derive(Debug)]
pub struct TraceReader<R = BufReader<File>> {
    reader: R,
    path: PathBuf,
    line_no: u64,
    line: String,
    done: bool,
}

impl TraceReader<BufReader<File>> {
    /// Opens the trace at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, TraceError> {
        let path = path.as_ref();
        let file = File::open(path).map_err(|source| TraceError::Open {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self::from_reader(BufReader::new(file), path))
    }
}

impl<R: BufRead> TraceReader<R> {
    /// Reads a trace from any buffered reader; `name` is used in error messages.
    pub fn from_reader(reader: R, name: impl AsRef<Path>) -> Self {
        Self {
            reader,
            path: name.as_ref().to_path_buf(),
            line_no: 0,
            line: String::new(),
            done: false,
        }
    }

    /// The path (or name) this reader reports in errors.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn parse_error(&self, reason: String) -> TraceError {
        TraceError::Parse {
            path: self.path.clone(),
            line: self.line_no,
            reason,
        }
    }
}

impl<R: BufRead> Iterator for TraceReader<R> {
    type Item = Result<Request, TraceError>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            self.line.clear();
            self.line_no += 1;
            let read = (&mut self.reader)
                .take(MAX_LINE_BYTES + 1)
                .read_line(&mut self.line);
            match read {
                Ok(0) => self.done = true,
                Ok(n) if n as u64 > MAX_LINE_BYTES => {
                    self.done = true;
                    let reason =
                        format!("line longer than {MAX_LINE_BYTES} bytes; is this a JSONL trace?");
                    return Some(Err(self.parse_error(reason)));
                }
                Ok(_) => {
                    let text = self.line.trim();
                    if text.is_empty() {
                        continue;
                    }
                    let parsed = serde_json::from_str::<Request>(text);
                    return Some(parsed.map_err(|e| self.parse_error(describe_json_error(&e))));
                }
                Err(source) => {
                    self.done = true;
                    return Some(Err(TraceError::Read {
                        path: self.path.clone(),
                        line: self.line_no,
                        source,
                    }));
                }
            }
        }
        None
    }
}

/// Turns a serde_json error on a single line into "what is wrong (column N)"; serde_json's own
/// position always says line 1 because each line is parsed alone.
fn describe_json_error(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    let msg = msg
        .rsplit_once(" at line ")
        .map_or(msg.as_str(), |(head, _)| head);
    let kind = match e.classify() {
        serde_json::error::Category::Syntax | serde_json::error::Category::Eof => "malformed JSON",
        serde_json::error::Category::Data => "invalid request",
        serde_json::error::Category::Io => "read failed",
    };
    let hint = if msg.starts_with("invalid value: integer `-")
        || msg.contains("expected u32")
        || msg.contains("expected u64")
    {
        " (lengths, timestamps and ids must be non-negative integers; lengths fit in u32)"
    } else {
        ""
    };
    format!("{kind}: {msg} (column {}){hint}", e.column())
}

/// Writes requests in the Mooncake format, one JSON object per line.
#[derive(Debug)]
pub struct TraceWriter<W: Write = BufWriter<File>> {
    out: W,
    path: PathBuf,
}

impl TraceWriter<BufWriter<File>> {
    /// Creates (or truncates) the file at `path`.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, TraceError> {
        let path = path.as_ref();
        let file = File::create(path).map_err(|source| TraceError::Write {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self::from_writer(BufWriter::new(file), path))
    }
}

impl<W: Write> TraceWriter<W> {
    /// Writes to any writer; `name` is used in error messages.
    pub fn from_writer(out: W, name: impl AsRef<Path>) -> Self {
        Self {
            out,
            path: name.as_ref().to_path_buf(),
        }
    }

    /// Appends one request as one line.
    pub fn write(&mut self, request: &Request) -> Result<(), TraceError> {
        serde_json::to_writer(&mut self.out, request)
            .map_err(io::Error::from)
            .and_then(|()| self.out.write_all(b"\n"))
            .map_err(|source| self.write_error(source))
    }

    /// Flushes and returns the underlying writer.
    pub fn finish(mut self) -> Result<W, TraceError> {
        self.out
            .flush()
            .map_err(|source| self.write_error(source))?;
        Ok(self.out)
    }

    fn write_error(&self, source: io::Error) -> TraceError {
        TraceError::Write {
            path: self.path.clone(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(text: &str) -> Vec<Result<Request, TraceError>> {
        TraceReader::from_reader(text.as_bytes(), "t.jsonl").collect()
    }

    fn parse_reason(r: &Result<Request, TraceError>) -> (u64, String) {
        match r {
            Err(TraceError::Parse { line, reason, .. }) => (*line, reason.clone()),
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn reads_mooncake_lines_and_skips_blank_ones() {
        let text = "{\"timestamp\": 0, \"input_length\": 6758, \"output_length\": 500, \"hash_ids\": [0, 1]}\n\
                    \n   \n\
                    {\"timestamp\": 7, \"input_length\": 10, \"output_length\": 1, \"hash_ids\": [], \"extra\": 1}\r\n";
        let got: Vec<Request> = read_all(text).into_iter().map(|r| r.unwrap()).collect();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].timestamp_ms, 0);
        assert_eq!(got[0].hash_ids, vec![0, 1]);
        assert_eq!(got[1].timestamp_ms, 7);
        assert!(got[1].hash_ids.is_empty());
    }

    #[test]
    fn malformed_line_names_its_line_and_reading_goes_on() {
        let text = "{\"timestamp\": 0, \"input_length\": 1, \"output_length\": 1, \"hash_ids\": [3]}\n\
                    \n\
                    {\"timestamp\": 1, \"input_length\": 1, \n\
                    {\"timestamp\": 2, \"input_length\": 1, \"output_length\": 1, \"hash_ids\": [4]}\n";
        let got = read_all(text);
        assert_eq!(got.len(), 3);
        let (line, reason) = parse_reason(&got[1]);
        assert_eq!(line, 3);
        assert!(reason.contains("malformed JSON"), "{reason}");
        let msg = got[1].as_ref().unwrap_err().to_string();
        assert!(msg.starts_with("t.jsonl:3: "), "{msg}");
        assert_eq!(got[2].as_ref().unwrap().hash_ids, vec![4]);
    }

    #[test]
    fn missing_field_is_named() {
        let got = read_all("{\"timestamp\": 0, \"input_length\": 1, \"output_length\": 1}\n");
        let (line, reason) = parse_reason(&got[0]);
        assert_eq!(line, 1);
        assert!(reason.contains("missing field `hash_ids`"), "{reason}");
    }

    #[test]
    fn negative_and_huge_numbers_are_rejected() {
        let neg = read_all(
            "{\"timestamp\": -1, \"input_length\": 1, \"output_length\": 1, \"hash_ids\": []}",
        );
        let (_, reason) = parse_reason(&neg[0]);
        assert!(
            reason.contains("-1") && reason.contains("non-negative"),
            "{reason}"
        );
        let huge = read_all(
            "{\"timestamp\": 1, \"input_length\": 99999999999, \"output_length\": 1, \"hash_ids\": []}",
        );
        let (_, reason) = parse_reason(&huge[0]);
        assert!(reason.contains("99999999999"), "{reason}");
        let bad_id = read_all(
            "{\"timestamp\": 1, \"input_length\": 1, \"output_length\": 1, \"hash_ids\": [1.5]}",
        );
        let (_, reason) = parse_reason(&bad_id[0]);
        assert!(reason.contains("invalid request"), "{reason}");
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = TraceReader::open("/nonexistent/dir/trace.jsonl").unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, TraceError::Open { .. }));
        assert!(msg.contains("/nonexistent/dir/trace.jsonl"), "{msg}");
    }

    #[test]
    fn writer_output_reads_back() {
        let reqs = vec![
            Request {
                timestamp_ms: 5,
                input_length: 1000,
                output_length: 20,
                hash_ids: vec![1, 2],
            },
            Request {
                timestamp_ms: 9,
                input_length: 0,
                output_length: 0,
                hash_ids: vec![],
            },
        ];
        let mut w = TraceWriter::from_writer(Vec::new(), "mem");
        for r in &reqs {
            w.write(r).unwrap();
        }
        let bytes = w.finish().unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.starts_with("{\"timestamp\":5,"), "{text}");
        let back: Vec<Request> = read_all(&text).into_iter().map(|r| r.unwrap()).collect();
        assert_eq!(back, reqs);
    }

    #[test]
    fn tokens_per_block_last_block_partial_and_clamped() {
        let r = Request {
            timestamp_ms: 0,
            input_length: 6758,
            output_length: 0,
            hash_ids: (0..14).collect(),
        };
        let counts: Vec<u32> = r.block_token_counts(512).collect();
        assert_eq!(counts[0], 512);
        assert_eq!(counts[13], 6758 - 512 * 13);
        assert_eq!(r.block_tokens_total(512), 6758);
        let short = Request {
            timestamp_ms: 0,
            input_length: 3,
            output_length: 0,
            hash_ids: vec![1, 2],
        };
        assert_eq!(
            short.tokens_in_block(1, 512),
            1,
            "inconsistent line clamps up to 1"
        );
        let long = Request {
            timestamp_ms: 0,
            input_length: 5000,
            output_length: 0,
            hash_ids: vec![1],
        };
        assert_eq!(
            long.tokens_in_block(0, 512),
            512,
            "clamped down to block_tokens"
        );
    }
}
