"""Fixtures: a real mcosd process on a temporary socket and loopback port (stopped at the end,
killed if it does not stop, even when tests fail), and an embedded node."""

import os
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import mcos

REPO = Path(__file__).resolve().parents[3]
BLOCK = 16384


def mcosd_binary() -> str:
    env = os.environ.get("MCOSD_BIN")
    if env:
        return env
    for profile in ("release", "debug"):
        p = REPO / "target" / profile / "mcosd"
        if p.exists():
            return str(p)
    pytest.fail("mcosd not found: build it (cargo build -p mcos-server) or set MCOSD_BIN")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Daemon:
    def __init__(self, block_bytes: int = BLOCK, dram_blocks: int = 512, extra: str = ""):
        self.dir = tempfile.TemporaryDirectory(prefix="mcos-py-")
        d = Path(self.dir.name)
        self.socket = str(d / "mcosd.sock")
        self.tcp = f"127.0.0.1:{free_port()}"
        self.log = d / "mcosd.log"
        cfg = d / "mcosd.toml"
        cfg.write_text(f"""
block_bytes = {block_bytes}
[[tiers]]
kind = "host-dram"
capacity_blocks = {dram_blocks}
[[tiers]]
kind = "disk"
capacity_blocks = {dram_blocks * 4}
path = "{d}/disk.tier"
[server]
max_batch_blocks = 256
lease_default_ms = 60000
[[server.tenants]]
name = "default"
[[server.tenants]]
name = "alice"
token = "s3cret"
{extra}
""")
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [mcosd_binary(), "--config", str(cfg), "--socket", self.socket,
                 "--listen", self.tcp],
                stdout=subprocess.DEVNULL, stderr=log)
        deadline = time.time() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mcosd exited early: {self.log.read_text()}")
            try:
                with socket.socket(socket.AF_UNIX) as s:
                    s.connect(self.socket)
                with socket.create_connection(("127.0.0.1", int(self.tcp.split(":")[1]))):
                    pass
                break
            except OSError:
                if time.time() > deadline:
                    self.stop()
                    raise RuntimeError(f"mcosd did not start: {self.log.read_text()}")
                time.sleep(0.02)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        rc = self.proc.returncode
        self.dir.cleanup()
        return rc


@pytest.fixture(scope="session")
def daemon():
    d = Daemon()
    try:
        yield d
    finally:
        rc = d.stop()
        assert rc == 0, f"mcosd exited with {rc}"


@pytest.fixture
def local(daemon):
    c = mcos.Client(daemon.socket, region_bytes=8 << 20)
    yield c
    c.close()


@pytest.fixture
def remote(daemon):
    c = mcos.Client(daemon.tcp)
    yield c
    c.close()


@pytest.fixture(params=["local", "tcp", "node"])
def store(request, daemon, tmp_path):
    """Every back end behind the one API."""
    if request.param == "local":
        s = mcos.Client(daemon.socket, region_bytes=8 << 20)
    elif request.param == "tcp":
        s = mcos.Client(daemon.tcp)
    else:
        s = mcos.Node({"block_bytes": BLOCK, "tiers": [
            {"kind": "host-dram", "capacity_blocks": 256},
            {"kind": "disk", "capacity_blocks": 1024, "path": str(tmp_path / "disk.tier")}]})
    yield s
    s.close()
