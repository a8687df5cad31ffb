#!/usr/bin/env bash
# Builds what the GPU machine runs, here (no GPU, no CUDA toolkit needed: cudarc loads CUDA at
# run time), into one folder to carry there:
#   dist/gpu/mcos            release `mcos` with the cuda feature
#   dist/gpu/tests/*         the GPU test binaries (mcos-tiers gpu_mover, mcos-node gpu_node)
#   dist/gpu/gpu-bench.sh    the one command to run there: bash dist/gpu/gpu-bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-dist/gpu}
rm -rf "$dest"
mkdir -p "$dest/tests"
cargo build --release --locked -p mcos-cli --features cuda
cp target/release/mcos "$dest/mcos"
cargo test --release --locked --no-run -p mcos-tiers -p mcos-node --features cuda \
    --test gpu_mover --test gpu_node --message-format=json 2>/dev/null \
    | grep '"executable":"' \
    | sed -E 's/.*"executable":"([^"]+)".*/\1/' \
    | while read -r exe; do cp "$exe" "$dest/tests/$(basename "$exe" | sed -E 's/-[0-9a-f]{16}$//')"; done
cp scripts/gpu-bench.sh "$dest/gpu-bench.sh"
# Line tables are kept (debug = 1 in the release profile) but the bundle stays small.
if command -v strip >/dev/null 2>&1; then
    strip --strip-debug "$dest/mcos" "$dest"/tests/* 2>/dev/null || true
fi
ls -la "$dest" "$dest/tests"
du -sh "$dest"
echo "carry $dest to the GPU machine and run: bash $dest/gpu-bench.sh"
