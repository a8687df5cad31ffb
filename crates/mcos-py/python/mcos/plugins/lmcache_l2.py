"""LMCache MP-mode L2 storage over mcosd, as a ``native_plugin`` adapter.

LMCache's ``native_plugin`` L2 adapter supplies the eventfd demultiplexing and locking; the
plug-in object provides ``event_fd()``, ``submit_batch_get/set/exists(...) -> future id``,
``drain_completions() -> [(future_id, ok, err, list[bool] | None)]`` and ``close()``. Enable::

    python -m lmcache.v1.multiprocess.server ... --l2-adapter '{"type": "native_plugin",
        "module_path": "mcos.plugins.lmcache_l2", "class_name": "McosL2Plugin",
        "adapter_params": {"address": "/run/user/1000/mcosd.sock"}}'

Keys are LMCache's key strings, hashed with ``mcos.key_of`` under ``namespace``. Requests run
on one worker thread in submission order; each completion is signalled by writing the eventfd.
A get that fails is reported as all misses (ok=True, so LMCache recomputes) and counted in
``load_errors``; a set that fails completes with ok=False and the error's message.
"""

import collections
import os
import queue
import threading
from typing import List, Optional, Tuple

import mcos

Completion = Tuple[int, bool, Optional[str], Optional[List[bool]]]


class McosL2Plugin:
    def __init__(self, address: str = "", tenant: str = "default", token: str = "",
                 namespace: str = "lmcache", client=None, **_ignored):
        self.client = client or mcos.Client(address, tenant=tenant, token=token)
        self.namespace = namespace
        if hasattr(os, "eventfd"):
            self._efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
            self._wfd = self._efd
        else:  # Python 3.9: a pipe's read end is as pollable as an eventfd
            self._efd, self._wfd = os.pipe()
            os.set_blocking(self._efd, False)
        self._next = 1
        self._lock = threading.Lock()
        self._done: "collections.deque[Completion]" = collections.deque()
        self._q: "queue.Queue" = queue.Queue()
        self.load_errors = 0
        self._worker = threading.Thread(target=self._run, name="mcos-l2", daemon=True)
        self._worker.start()

    def _keys(self, keys: List[str]) -> List[bytes]:
        return [mcos.key_of(f"{self.namespace}/{k}") for k in keys]

    def _submit(self, op: str, keys, mvs=None) -> int:
        with self._lock:
            fid = self._next
            self._next += 1
        self._q.put((fid, op, list(keys), None if mvs is None else list(mvs)))
        return fid

    def event_fd(self) -> int:
        return self._efd

    def submit_batch_get(self, keys: List[str], mvs: List[memoryview]) -> int:
        return self._submit("get", keys, mvs)

    def submit_batch_set(self, keys: List[str], mvs: List[memoryview]) -> int:
        return self._submit("set", keys, mvs)

    def submit_batch_exists(self, keys: List[str]) -> int:
        return self._submit("exists", keys)

    def drain_completions(self) -> List[Completion]:
        try:
            os.read(self._efd, 8)
        except BlockingIOError:
            pass
        out = []
        while True:
            try:
                out.append(self._done.popleft())
            except IndexError:
                return out

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            fid, op, keys, mvs = item
            n = len(keys)
            try:
                if op == "get":
                    res: Completion = (fid, True, None, self.client.get_into(self._keys(keys), mvs))
                elif op == "set":
                    res = (fid, True, None, self.client.put(self._keys(keys), mvs))
                else:
                    res = (fid, True, None, self.client.exists(self._keys(keys)))
            except mcos.Error as e:
                if op == "set":
                    res = (fid, False, str(e), None)
                else:  # a failed load is a miss: LMCache recomputes
                    self.load_errors += n
                    res = (fid, True, None, [False] * n)
            self._done.append(res)
            os.write(self._wfd, (1).to_bytes(8, "little") if self._wfd == self._efd else b"x")

    def close(self) -> None:
        if self._worker.is_alive():
            self._q.put(None)
            self._worker.join(timeout=10)
        self.client.close()
        for fd in {self._efd, self._wfd}:
            try:
                os.close(fd)
            except OSError:
                pass
