#!/usr/bin/env bash
# Every GPU check and benchmark of MCOS, in one command, on a GPU machine that has no Rust
# toolchain: it runs binaries built elsewhere (scripts/build-gpu-bundle.sh) and writes JSON.
#
#   bash gpu-bench.sh [--quick] [more `mcos bench gpu` options]
#
# Finds `mcos` beside this script (or MCOS_BIN, or ../target/release/mcos), the GPU test
# binaries in tests/ beside it, puts libnvrtc/libcufile on the loader path if they are not
# already, then writes into OUT (default ./gpu-results):
#   env.txt          nvidia-smi, driver, kernel, CUDA libraries found
#   test-*.log       each GPU test binary's output (they skip only where no driver loads)
#   bench-gpu.json   the report of `mcos bench gpu --format json` (BENCHMARKS.md reads it)
#   bench-gpu.log    its progress and errors
#   summary.json     exit status of every step
# Exits non-zero if any step failed (a failed verification fails the benchmark step).
set -uo pipefail

here=$(cd "$(dirname "$0")" && pwd)
bin=${MCOS_BIN:-}
if [ -z "$bin" ]; then
    for c in "$here/mcos" "$here/../target/release/mcos"; do
        if [ -x "$c" ]; then bin=$c; break; fi
    done
fi
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
    echo "gpu-bench: no mcos binary: build one with scripts/build-gpu-bundle.sh and copy dist/gpu here, or set MCOS_BIN" >&2
    exit 2
fi
out=${OUT:-$PWD/gpu-results}
mkdir -p "$out"

# CUDA's run-time libraries: the driver (libcuda) comes with the driver install; NVRTC and
# cuFile come with the toolkit or with pip wheels, often off the default loader path.
lib_dirs=(/usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib)
for d in /usr/local/cuda-*/lib64 /usr/local/cuda-*/targets/x86_64-linux/lib; do lib_dirs+=("$d"); done
if command -v python3 >/dev/null 2>&1; then
    while IFS= read -r d; do lib_dirs+=("$d"); done < <(python3 -c '
import glob, site, sys
roots = site.getsitepackages() + [site.getusersitepackages()]
for r in roots:
    for p in glob.glob(r + "/nvidia/*/lib") + glob.glob(r + "/nvidia/lib*"):
        print(p)
' 2>/dev/null)
fi
for lib in libnvrtc.so libcufile.so; do
    if ! ldconfig -p 2>/dev/null | grep -q "$lib"; then
        for d in "${lib_dirs[@]}"; do
            if ls "$d"/"$lib"* >/dev/null 2>&1; then
                export LD_LIBRARY_PATH="$d${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
                break
            fi
        done
    fi
done

{
    echo "date: $(date -u +%FT%TZ)"
    echo "host: $(uname -a)"
    echo "binary: $bin"
    echo "LD_LIBRARY_PATH: ${LD_LIBRARY_PATH:-}"
    ld_path=${LD_LIBRARY_PATH:-}
    for lib in libcuda.so libnvrtc.so libcufile.so; do
        echo "$lib: $(ldconfig -p 2>/dev/null | grep -m1 "$lib" || true) $(for d in ${ld_path//:/ }; do ls "$d"/"$lib"* 2>/dev/null; done | head -1)"
    done
    command -v nvidia-smi >/dev/null && nvidia-smi
    command -v nvidia-smi >/dev/null && nvidia-smi -q | grep -iE "Link (Gen|Width)|Product Name|Driver Version|CUDA Version" | head -20
    lsmod 2>/dev/null | grep -E "nvidia_fs|nvidia " || echo "nvidia_fs module: not loaded (GPUDirect Storage runs in compatibility mode or not at all)"
} > "$out/env.txt" 2>&1

status=0
steps=()
# The GPU tests fail instead of skipping when no driver loads: here a GPU is the point.
export MCOS_REQUIRE_GPU=1
for t in "$here"/tests/*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    echo "== GPU tests: $name"
    "$t" --test-threads=1 --nocapture > "$out/test-$name.log" 2>&1
    rc=$?
    tail -n 3 "$out/test-$name.log"
    steps+=("\"test-$name\": $rc")
    [ $rc -eq 0 ] || status=1
done

extra=()
case " $* " in
    *" --dir "*) ;;
    *) extra=(--dir "${DISK_DIR:-$out/disk}") ;;  # a real filesystem, so O_DIRECT and cuFile can work
esac
echo "== mcos bench gpu $* ${extra[*]}"
"$bin" bench gpu --format json --out "$out/bench-gpu.json" "${extra[@]}" "$@" > /dev/null 2> "$out/bench-gpu.log"
rc=$?
steps+=("\"bench-gpu\": $rc")
[ $rc -eq 0 ] || status=1
tail -n 5 "$out/bench-gpu.log"
rm -rf "${DISK_DIR:-$out/disk}"

(IFS=,; echo "{${steps[*]}, \"ok\": $([ $status -eq 0 ] && echo true || echo false)}") > "$out/summary.json"
echo "== results in $out (summary: $(cat "$out/summary.json"))"
exit $status
