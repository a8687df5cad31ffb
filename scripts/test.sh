#!/usr/bin/env bash
# The project's test command (README.md "Run the tests"; .ci/run runs exactly this).
# Formatting, lints with warnings denied, every test of the workspace, then the loom model checks
# of the lock-free rings and the policy install (a separate build with --cfg loom), and the Python
# package's pytest suite (scripts/test-python.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() { printf '\n== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy (warnings denied)"
cargo clippy --workspace --all-targets --locked -- -D warnings
step "cargo test (workspace)"
cargo test --workspace --locked --no-fail-fast
step "the daemon outlives a failing brain (test-only fault injection built into mcosd)"
cargo test -p mcos-server --features fault-injection --locked --test brain_fault
step "cuda feature: clippy and the no-GPU paths (cudarc loads CUDA at run time: no toolkit needed)"
cargo clippy -p mcos-tiers -p mcos-node -p mcos-bench -p mcos-cli --all-targets --features cuda --locked -- -D warnings
cargo test -p mcos-tiers -p mcos-node -p mcos-bench -p mcos-cli --features cuda --locked
step "python package mcos: maturin build into target/py-venv, pytest (live mcosd, embedded node)"
./scripts/test-python.sh
step "fuzzing (coverage-guided, libFuzzer; replays fuzz/corpus and fuzz/regressions, then ${FUZZ_SECONDS:-20} s per target)"
FUZZ_SECONDS="${FUZZ_SECONDS:-20}" ./scripts/fuzz.sh
step "loom model checks (rings, policy install)"
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom cargo test -p mcos-core --test loom --release --locked
