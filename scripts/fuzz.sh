#!/usr/bin/env bash
# Coverage-guided fuzzing of the parsers that take outside input: libFuzzer (through
# libfuzzer-sys) over code built with LLVM's sanitizer-coverage (edge counters, comparison
# tracing), so inputs that reach new code are kept and mutated further. Stable toolchain.
#
# For each target: first replays the committed corpus and every regression input
# (fuzz/regressions/TARGET: crashes found earlier, kept as tests), then fuzzs for
# FUZZ_SECONDS (default 20) seconds. A crash, panic, timeout (5 s) or allocation over 1 GiB
# fails the run and leaves the input in fuzz/artifacts/TARGET/.
#
#   scripts/fuzz.sh [TARGET...]        FUZZ_SECONDS=60 scripts/fuzz.sh proto_decode
#   FUZZ_UPDATE_CORPUS=1 scripts/fuzz.sh   also merges what was found into fuzz/corpus/
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${FUZZ_SECONDS:-20}"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(proto_decode block_header node_config policy_table trace_mooncake trace_object)
fi
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-../target/fuzz}"
# An explicit --target keeps the instrumentation off build scripts and proc macros. Not
# --locked: fuzz/Cargo.lock pins the fuzzer's own dependencies, and a workspace crate that gains
# a dependency (already pinned in ../Cargo.lock) must not fail the fuzz run.
host="$(rustc -vV | sed -n 's/^host: //p')"
cargo build --release --bins --quiet --target "$host"
bin="$CARGO_TARGET_DIR/$host/release"
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t" "regressions/$t" "artifacts/$t"
  scratch="$(mktemp -d)"
  printf '== fuzz %s: replay ' "$t"
  replay=$("$bin/$t" -runs=0 -rss_limit_mb=1024 -timeout=5 "corpus/$t" "regressions/$t" 2>&1) || {
    echo "$replay" | tail -20; echo "replay of the corpus of $t failed"; exit 1; }
  echo "$replay" | grep -oE 'Done [0-9]+ runs' || echo "ok"
  out=$("$bin/$t" -max_total_time="$seconds" -max_len=4096 -rss_limit_mb=1024 -timeout=5 \
      -print_final_stats=1 -artifact_prefix="artifacts/$t/" "$scratch" "corpus/$t" 2>&1) || {
    echo "$out" | tail -40; rm -rf "$scratch"; echo "fuzz target $t failed: input in fuzz/artifacts/$t/"; exit 1; }
  execs=$(echo "$out" | grep -oE 'stat::number_of_executed_units: *[0-9]+' | grep -oE '[0-9]+$' || echo "?")
  cov=$(echo "$out" | grep -oE 'cov: [0-9]+' | tail -1 || true)
  echo "   $t: $execs executions in ${seconds}s, $cov, $(ls "$scratch" | wc -l) new corpus inputs"
  if [ "${FUZZ_UPDATE_CORPUS:-0}" = 1 ]; then
    # Keep the inputs that add coverage (minimised) in the committed corpus.
    "$bin/$t" -merge=1 -rss_limit_mb=1024 -timeout=5 "corpus/$t" "$scratch" >/dev/null 2>&1
  fi
  rm -rf "$scratch"
done
