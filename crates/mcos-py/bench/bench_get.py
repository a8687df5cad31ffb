"""Python get_into against the Rust client and redis-py, on one daemon and one redis, one run.

    target/py-venv/bin/python crates/mcos-py/bench/bench_get.py [--seconds 3] [--check]

Starts mcosd (release build; 1 GiB DRAM tier) on a temporary socket and redis-server
(persistence off) on a temporary Unix socket, stores KEYS blocks of 256 KiB in both, then
reads random batches of 32 for SECONDS each:

- ``rust-copy``: the Rust client's ``get_into`` of caller buffers (the daemon's copy into the
  shared region, then one copy into the buffer): the baseline of the 80 % target;
- ``rust-region``: the Rust client's ``get_into_region`` (the daemon's copy only);
- ``py-numpy``: ``mcos.Client.get_into`` into 32 numpy arrays (the same two copies as
  ``rust-copy``);
- ``py-region``: ``get_into`` into numpy views of a ``RegionBuffer`` (the daemon's copy only);
- ``redis-py``: one pipelined ``MGET`` of the same 32 keys per batch, the values copied into
  the same numpy arrays (``np.frombuffer`` + copy; a cache client must land bytes in the
  engine's buffers).

Every batch is checked for hits (and the Python ones sample byte checks). Prints one JSON
object; ``--check`` exits 1 when py-numpy is under 80 % of rust-copy or under 3x redis-py.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import mcos

REPO = Path(__file__).resolve().parents[3]
BLOCK = 256 << 10
BATCH = 32


def payload(i: int) -> np.ndarray:
    a = np.empty(BLOCK, np.uint8)
    a[:] = i % 251
    a[:8] = np.frombuffer(i.to_bytes(8, "little"), np.uint8)
    return a


def rng_batches(keys: int, seed: int):
    r = np.random.default_rng(seed)
    while True:
        yield [int(k) for k in r.integers(1, keys + 1, BATCH)]


def timed(fn, seconds: float):
    lat, n = [], 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        b0 = time.perf_counter()
        fn()
        lat.append(time.perf_counter() - b0)
        n += 1
    secs = time.perf_counter() - t0
    lat.sort()
    return {"gb_per_s": round(n * BATCH * BLOCK / secs / 1e9, 4), "batches": n,
            "p50_us": round(lat[len(lat) // 2] * 1e6, 1)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--keys", type=int, default=1024)
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    mcosd = os.environ.get("MCOSD_BIN", str(REPO / "target/release/mcosd"))
    example = REPO / "target/release/examples/get_batches"
    for p in (mcosd, example):
        if not Path(p).exists():
            sys.exit(f"{p} missing: cargo build --release -p mcos-server --bin mcosd "
                     "&& cargo build --release -p mcos-client --example get_batches")
    tmp = tempfile.TemporaryDirectory(prefix="mcos-bench-")
    d = Path(tmp.name)
    sock, rsock = d / "mcosd.sock", d / "redis.sock"
    (d / "mcosd.toml").write_text(f"""
block_bytes = {BLOCK}
[[tiers]]
kind = "host-dram"
capacity_blocks = {a.keys + 512}
[server]
max_batch_blocks = 256
max_inflight_bytes = {64 << 20}
""")
    procs = []
    try:
        procs.append(subprocess.Popen([mcosd, "--config", str(d / "mcosd.toml"), "--socket",
                                       str(sock)], stderr=subprocess.DEVNULL))
        procs.append(subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", str(rsock),
                                       "--save", "", "--appendonly", "no"],
                                      stdout=subprocess.DEVNULL))
        deadline = time.time() + 30
        while not (sock.exists() and rsock.exists()):
            if time.time() > deadline:
                sys.exit("mcosd or redis-server did not start")
            time.sleep(0.05)
        time.sleep(0.2)
        import redis

        r = redis.Redis(unix_socket_path=str(rsock))
        c = mcos.Client(str(sock), region_bytes=(2 * BATCH + BATCH + 8) * BLOCK)
        for lo in range(1, a.keys + 1, BATCH):
            ks = list(range(lo, min(lo + BATCH, a.keys + 1)))
            vals = [payload(k) for k in ks]
            assert all(c.put(ks, vals))
            r.mset({f"k{k}": v.tobytes() for k, v in zip(ks, vals)})
        res = {"block_bytes": BLOCK, "batch": BATCH, "keys": a.keys, "seconds": a.seconds}

        for mode in ("copy", "region"):
            out = subprocess.run([str(example), str(sock), str(BLOCK), str(a.keys), str(BATCH),
                                  str(a.seconds), mode], capture_output=True, text=True,
                                 check=True)
            res[f"rust-{mode}"] = json.loads(out.stdout)

        bufs = [np.zeros(BLOCK, np.uint8) for _ in range(BATCH)]
        batches = rng_batches(a.keys, 1)

        def py_numpy():
            ks = next(batches)
            assert all(c.get_into(ks, bufs))
            assert int.from_bytes(bufs[-1][:8].tobytes(), "little") == ks[-1]

        res["py-numpy"] = timed(py_numpy, a.seconds)

        rb = c.alloc(BATCH * BLOCK)
        views = list(np.asarray(rb).reshape(BATCH, BLOCK))

        def py_region():
            ks = next(batches)
            assert all(c.get_into(ks, views))
            assert int.from_bytes(views[0][:8].tobytes(), "little") == ks[0]

        res["py-region"] = timed(py_region, a.seconds)

        def redis_py():
            ks = next(batches)
            p = r.pipeline(transaction=False)
            p.mget([f"k{k}" for k in ks])
            vals = p.execute()[0]
            for b, v in zip(bufs, vals):
                b[:] = np.frombuffer(v, np.uint8)
            assert int.from_bytes(bufs[0][:8].tobytes(), "little") == ks[0]

        res["redis-py"] = timed(redis_py, a.seconds)
        py, rust, rd = (res[k]["gb_per_s"] for k in ("py-numpy", "rust-copy", "redis-py"))
        res["py_numpy_over_rust_copy"] = round(py / rust, 3)
        res["py_region_over_rust_region"] = round(
            res["py-region"]["gb_per_s"] / res["rust-region"]["gb_per_s"], 3)
        res["py_numpy_over_redis_py"] = round(py / rd, 2)
        res["machine"] = f"{os.cpu_count()} cpus, {os.uname().sysname} {os.uname().release}"
        print(json.dumps(res, indent=1))
        c.close()
        if a.check and (py < 0.8 * rust or py < 3 * rd):
            sys.exit("target missed: py-numpy must be >= 80 % of rust-copy and >= 3x redis-py")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        tmp.cleanup()


if __name__ == "__main__":
    main()
