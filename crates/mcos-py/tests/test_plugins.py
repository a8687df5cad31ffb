"""Engine plug-ins against the engines' published method contracts and call patterns (SGLang,
LMCache and vLLM are not installed here: each pulls in torch and CUDA)."""

import ctypes
import os
import select
import threading

import msgpack
import numpy as np
import zmq

import mcos
from conftest import BLOCK
from mcos.plugins.kv_events import KvEventPublisher
from mcos.plugins.lmcache_l2 import McosL2Plugin
from mcos.plugins.sglang_hicache import McosHiCacheStorage


class StorageConfig:
    """The fields of SGLang's HiCacheStorageConfig the backend reads."""

    def __init__(self, tp_rank=0, is_mla_model=False, extra_config=None):
        self.tp_rank = tp_rank
        self.tp_size = 2
        self.is_mla_model = is_mla_model
        self.model_name = "m-" + os.urandom(4).hex()
        self.extra_config = extra_config or {}


class HostPool:
    """A host KV pool in page_first layout: K and V parts per page, as get_page_buffer_meta
    hands them to zero-copy backends (pointer, size per part)."""

    def __init__(self, pages, part_bytes):
        self.buf = np.zeros((pages, 2, part_bytes), np.uint8)

    def get_page_buffer_meta(self, host_indices):
        ptrs, sizes = [], []
        for p in host_indices:
            for part in range(2):
                ptrs.append(self.buf[int(p), part].ctypes.data)
                sizes.append(self.buf.shape[2])
        return ptrs, sizes


def hicache(daemon, **kw):
    extra = {"backend_name": "mcos", "module_path": "mcos.plugins.sglang_hicache",
             "class_name": "McosHiCacheStorage", "address": daemon.socket}
    return McosHiCacheStorage(StorageConfig(extra_config=extra, **kw), {})


def test_hicache_batch_calls(daemon):
    s = hicache(daemon)
    keys = [f"{i:064x}" for i in range(8)]
    vals = [np.full(BLOCK, i, np.uint8) for i in range(8)]
    assert s.batch_set(keys[:5], vals[:5]) is True
    assert s.batch_exists(keys) == 5, "length of the consecutive hit prefix"
    assert s.exists(keys[0]) and not s.exists(keys[7])
    outs = [np.zeros(BLOCK, np.uint8) for _ in keys]
    got = s.batch_get(keys, outs)
    assert got is not None and len(got) == 8
    assert all(g is not None for g in got[:5]) and got[5:] == [None] * 3
    assert all((outs[i] == i).all() for i in range(5))
    assert s.get(keys[1], np.zeros(BLOCK, np.uint8)) is not None
    assert s.set(keys[6], vals[6]) is True
    st = s.get_stats()
    assert st["sets"] == 6 and st["hits"] >= 6
    s.close()


def test_hicache_zero_copy_v1_and_ranks(daemon):
    s = hicache(daemon)
    pool = HostPool(pages=16, part_bytes=BLOCK // 2)
    pool.buf[:] = np.random.default_rng(3).integers(0, 255, pool.buf.shape, dtype=np.uint8)
    s.register_mem_pool_host(pool)
    keys = [f"page-{i}" for i in range(6)]
    assert s.batch_set_v1(keys[:4], [0, 1, 2, 3]) == [True] * 4
    assert s.batch_exists(keys) == 4
    expect = pool.buf[:4].copy()
    pool.buf[8:] = 0
    assert s.batch_get_v1(keys, [8, 9, 10, 11, 12, 13]) == [True] * 4 + [False] * 2
    assert np.array_equal(pool.buf[8:12], expect)
    # Another tensor-parallel rank holds its own heads: it sees none of rank 0's pages...
    other = McosHiCacheStorage(StorageConfig(tp_rank=1, extra_config={"address": daemon.socket}), {})
    other.model = s.model
    other.scope = f"{s.model}/tp1"
    other.register_mem_pool_host(pool)
    assert other.batch_exists(keys) == 0
    s.close()
    other.close()


def test_hicache_concurrent_threads(daemon):
    s = hicache(daemon)
    pool = HostPool(pages=64, part_bytes=4096)
    pool.buf[:32] = np.random.default_rng(5).integers(0, 255, pool.buf[:32].shape, dtype=np.uint8)
    s.register_mem_pool_host(pool)
    errors = []

    def worker(t):
        try:
            keys = [f"t{t}-{i}" for i in range(16)]
            idx = list(range(16 * t, 16 * t + 16))
            for _ in range(20):
                assert s.batch_set_v1(keys, idx) == [True] * 16
                assert s.batch_exists(keys) == 16
                assert s.batch_get_v1(keys, [i + 32 for i in idx]) == [True] * 16
        except Exception as e:  # surfaced below
            errors.append(e)

    ts = [threading.Thread(target=worker, args=(t,)) for t in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors
    assert np.array_equal(pool.buf[32:64], pool.buf[:32])
    s.close()


def test_hicache_failures_are_misses_never_none(daemon):
    s = hicache(daemon)
    s.register_mem_pool_host(HostPool(pages=4, part_bytes=1024))
    s.client.close()  # every call now fails inside the client
    assert s.batch_get_v1(["a", "b"], [0, 1]) == [False, False]
    assert s.batch_get(["a", "b"], [np.zeros(8, np.uint8)] * 2) == [None, None]
    assert s.batch_exists(["a"]) == 0
    assert s.batch_set_v1(["a"], [0]) == [False]
    assert s.batch_set(["a"], [b"x"]) is False
    st = s.get_stats()
    assert st["load_errors"] == 5 and st["store_errors"] == 2


def wait_completions(p, n, timeout=10.0):
    got = []
    while len(got) < n:
        r, _, _ = select.select([p.event_fd()], [], [], timeout)
        assert r, "no completion signalled on the event fd"
        got.extend(p.drain_completions())
    return {c[0]: c for c in got}


def test_lmcache_native_plugin(daemon):
    p = McosL2Plugin(address=daemon.socket, namespace="lm-" + os.urandom(4).hex())
    keys = [f"chunk-{i}" for i in range(4)]
    src = [np.full(BLOCK, i + 1, np.uint8) for i in range(4)]
    f_set = p.submit_batch_set(keys[:3], [memoryview(a) for a in src[:3]])
    done = wait_completions(p, 1)
    assert done[f_set][1:] == (True, None, [True] * 3)
    f_ex = p.submit_batch_exists(keys)
    dst = [np.zeros(BLOCK, np.uint8) for _ in keys]
    f_get = p.submit_batch_get(keys, [memoryview(a) for a in dst])
    done = wait_completions(p, 2)
    assert done[f_ex][3] == [True, True, True, False]
    assert done[f_get][1:] == (True, None, [True, True, True, False])
    assert all((dst[i] == i + 1).all() for i in range(3)) and (dst[3] == 0).all()
    # A failed load is a miss (LMCache recomputes), counted; a failed store says why.
    p.client.close()
    f_get = p.submit_batch_get(keys[:2], [memoryview(a) for a in dst[:2]])
    f_set = p.submit_batch_set(keys[:1], [memoryview(src[0])])
    done = wait_completions(p, 2)
    assert done[f_get][1:] == (True, None, [False, False])
    assert done[f_set][1] is False and "closed" in done[f_set][2]
    assert p.load_errors == 2
    p.close()


def test_kv_events_in_vllm_shape():
    pub = KvEventPublisher(endpoint="tcp://127.0.0.1:*", topic="kv-events")
    sub = zmq.Context.instance().socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"kv-events")
    sub.setsockopt(zmq.RCVTIMEO, 5000)
    sub.connect(pub.endpoint)
    keys = mcos.block_keys(range(32), 16, "m")
    # PUB drops messages until the subscription arrives: publish until the first is seen.
    for _ in range(100):
        pub.cleared()
        try:
            first = sub.recv_multipart(flags=zmq.NOBLOCK) if sub.poll(50) else None
        except zmq.Again:
            first = None
        if first:
            break
    assert first and first[0] == b"kv-events"
    s1 = pub.stored(keys, parent=None, token_ids=range(32), block_size=16)
    s2 = pub.removed(keys[1:])
    frames = [sub.recv_multipart(), sub.recv_multipart()]
    seqs = [int.from_bytes(f[1], "big") for f in frames]
    assert seqs == [s1, s2] and s2 == s1 + 1 and all(len(f[1]) == 8 for f in frames)
    ts, events, rank = msgpack.unpackb(frames[0][2])
    assert rank == 0 and isinstance(ts, float)
    tag, hashes, parent, tokens, block_size, lora, medium = events[0]
    assert tag == "BlockStored" and parent is None and block_size == 16 and medium == "CPU"
    assert hashes == [int.from_bytes(k[:8], "little") for k in keys]
    assert tokens == list(range(32))
    _, events, _ = msgpack.unpackb(frames[1][2])
    assert events == [["BlockRemoved", hashes[1:], "CPU"]]
    _, events, _ = msgpack.unpackb(first[2])
    assert events == [["AllBlocksCleared"]]
    pub.close()
    sub.close(linger=0)
