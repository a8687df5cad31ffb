"""The GIL is released while a call waits on I/O: Python threads make progress meanwhile."""

import subprocess
import sys
import textwrap
import threading
import time

import numpy as np

import mcos
from conftest import BLOCK
from test_api import fresh_keys

# A fake mcosd written in Python, served by a second Python thread of the same process. The
# client's connect and stats block until that thread answers, which it can only do if the
# client released the GIL: with the GIL held, the process deadlocks (the subprocess times out).
FAKE_DAEMON = textwrap.dedent("""
    import json, socket, struct, threading, mcos

    srv = socket.socket(); srv.bind(("127.0.0.1", 0)); srv.listen(1)
    port = srv.getsockname()[1]

    def read_frame(c):
        h = b""
        while len(h) < 12:
            h += c.recv(12 - len(h))
        n, op, _, _, rid = struct.unpack("<IBBHI", h)
        body = b""
        while len(body) < n:
            body += c.recv(n - len(body))
        return op, rid

    def reply(c, op, rid, body):
        c.sendall(struct.pack("<IBBHI", len(body), op | 0x80, 0, 0, rid) + body)

    def serve():
        c, _ = srv.accept()
        op, rid = read_frame(c)                 # hello
        name = b"fake-mcosd"
        reply(c, op, rid, struct.pack("<HHQIIQII", 1, 0, 7, 4096, 64, 1 << 20, 1000, 2000)
              + struct.pack("<H", len(name)) + name)
        op, rid = read_frame(c)                 # stats
        reply(c, op, rid, json.dumps({"node": {}, "daemon": {"fake": True}}).encode())
        c.close()

    threading.Thread(target=serve, daemon=True).start()
    c = mcos.Client(f"tcp://127.0.0.1:{port}")
    assert c.block_bytes == 4096
    assert c.stats()["daemon"] == {"fake": True}
    print("ok")
""")


def test_calls_release_the_gil_deterministic():
    r = subprocess.run([sys.executable, "-c", FAKE_DAEMON], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


def test_two_threads_progress_at_once(daemon):
    """Two threads fetch from the daemon on their own clients while a third counts in pure
    Python: the counter keeps moving during the fetches, and both fetchers finish."""
    keys = fresh_keys(32)
    data = np.random.default_rng(9).integers(0, 255, (32, BLOCK), dtype=np.uint8)
    with mcos.Client(daemon.socket) as c:
        assert all(c.put(keys, list(data)))
    stop = threading.Event()
    ticks = [0]
    done = []

    def count():
        while not stop.is_set():
            ticks[0] += 1

    def fetch():
        with mcos.Client(daemon.socket) as c:
            out = np.zeros_like(data)
            for _ in range(200):
                assert all(c.get_into(keys, list(out)))
            assert np.array_equal(out, data)
            done.append(1)

    counter = threading.Thread(target=count)
    counter.start()
    fetchers = [threading.Thread(target=fetch) for _ in range(2)]
    t0 = time.time()
    before = ticks[0]
    for f in fetchers:
        f.start()
    for f in fetchers:
        f.join(timeout=120)
    during = ticks[0] - before
    stop.set()
    counter.join()
    assert len(done) == 2
    assert during > 1000, f"the Python thread barely ran ({during} ticks in {time.time() - t0:.2f}s)"
