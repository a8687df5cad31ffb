"""The one API over the local daemon path, TCP and the embedded node: real bytes, real misses."""

import os

import numpy as np
import pytest

import mcos
from conftest import BLOCK


def fresh_keys(n, block_tokens=16):
    """Keys no other test uses (a random model name)."""
    return mcos.block_keys(list(range(n * block_tokens)), block_tokens, os.urandom(8).hex())


def blocks(n, seed=0):
    return np.random.default_rng(seed).integers(0, 255, size=(n, BLOCK), dtype=np.uint8)


def test_roundtrip_numpy(store):
    keys = fresh_keys(40)  # more than the 64-block staging area? no: see test_large_batch
    data = blocks(40, 1)
    assert store.put(keys, list(data)) == [True] * 40
    out = np.zeros_like(data)
    assert store.get_into(keys, list(out)) == [True] * 40
    assert np.array_equal(out, data)
    assert store.get(keys[:2]) == [data[0].tobytes(), data[1].tobytes()]
    assert store.exists(keys) == [True] * 40
    assert store.longest_prefix(keys) == 40


def test_large_batch_spans_requests(store):
    # 150 blocks: more than the client's staging area (64) in one call.
    keys = fresh_keys(150)
    data = blocks(150, 2)
    assert all(store.put(keys, list(data)))
    out = np.zeros_like(data)
    assert all(store.get_into(keys, list(out)))
    assert np.array_equal(out, data)


def test_misses_and_prefix(store):
    keys = fresh_keys(6)
    data = blocks(6, 3)
    assert all(store.put(keys[:3], list(data[:3])))
    out = np.full_like(data, 7)
    assert store.get_into(keys, list(out)) == [True] * 3 + [False] * 3
    assert (out[3:] == 7).all(), "a miss writes nothing"
    assert store.longest_prefix(keys) == 3
    assert store.exists(keys) == [True] * 3 + [False] * 3
    assert store.get(keys[3:4]) == [None]


def test_short_payloads_and_other_buffers(store):
    keys = fresh_keys(3)
    payloads = [b"hello", bytearray(b"x" * 1000), memoryview(b"y" * BLOCK)]
    assert all(store.put(keys, payloads))
    got = store.get(keys)
    assert got == [b"hello", b"x" * 1000, b"y" * BLOCK]
    ba = bytearray(BLOCK)
    assert store.get_into(keys[1:2], [ba]) == [True]
    assert ba[:1000] == b"x" * 1000


class DlpackOnly:
    """A DLPack producer that is not a buffer-protocol object (as a torch tensor is not)."""

    def __init__(self, arr):
        self.arr = arr

    def __dlpack__(self, **kw):
        return self.arr.__dlpack__(**kw)

    def __dlpack_device__(self):
        return self.arr.__dlpack_device__()


def test_dlpack_in_and_out(store):
    keys = fresh_keys(4)
    src = np.random.default_rng(4).standard_normal((4, BLOCK // 4)).astype(np.float32)
    assert all(store.put(keys, [DlpackOnly(r) for r in src]))
    dst = np.zeros_like(src)
    assert all(store.get_into(keys, [DlpackOnly(r) for r in dst]))
    assert np.array_equal(dst, src)


def test_cuda_tensor_is_a_clear_error(store):
    class CudaTensor:
        def __dlpack__(self, **kw):
            raise AssertionError("must not be exported")

        def __dlpack_device__(self):
            return (2, 0)  # kDLCUDA

    with pytest.raises(mcos.DeviceError, match="no CUDA support"):
        store.get_into(fresh_keys(1), [CudaTensor()])


def test_buffer_errors(store):
    keys = fresh_keys(2)
    with pytest.raises(mcos.InvalidBuffer, match="buffer 0"):
        store.get_into(keys[:1], [b"read-only bytes"])
    with pytest.raises(mcos.InvalidBuffer, match="contiguous"):
        store.get_into(keys[:1], [np.zeros((64, 64), np.uint8)[:, ::2]])
    with pytest.raises(mcos.InvalidBuffer, match="overlap"):
        a = np.zeros(2 * BLOCK, np.uint8)
        store.get_into(keys, [a[: BLOCK + 10], a[BLOCK:]])
    with pytest.raises(mcos.InvalidBuffer):
        store.put(keys[:1], [object()])
    with pytest.raises(mcos.InvalidArgument, match="block size"):
        store.put(keys[:1], [np.zeros(BLOCK + 1, np.uint8)])
    with pytest.raises(mcos.InvalidArgument, match="2 keys but 1 buffers"):
        store.get_into(keys, [np.zeros(BLOCK, np.uint8)])
    with pytest.raises(mcos.InvalidArgument, match="16 bytes"):
        store.exists([b"short"])
    with pytest.raises(mcos.InvalidArgument, match="reserved"):
        store.exists([0])
    for e in (mcos.InvalidBuffer, mcos.InvalidArgument, mcos.DeviceError, mcos.AuthError):
        assert issubclass(e, mcos.Error)


def test_int_keys_are_the_same_keys(store):
    k = fresh_keys(1)[0]
    assert store.put([k], [b"abc"]) == [True]
    assert store.get([int.from_bytes(k, "little")]) == [b"abc"]


def test_short_buffer_is_a_counted_miss(store):
    keys = fresh_keys(1)
    assert all(store.put(keys, [np.ones(BLOCK, np.uint8)]))
    before = store.load_errors
    small = np.zeros(100, np.uint8)
    assert store.get_into(keys, [small]) == [False]
    assert store.load_errors == before + 1
    assert store.stats()["client"]["load_errors"] == before + 1
    assert (small == 0).all()


def test_pin_unpin_intent(store):
    keys = fresh_keys(3)
    assert all(store.put(keys[:2], [b"a", b"b"]))
    assert store.pin(keys) == [True, True, False]
    assert store.unpin(keys[:2]) == [True, True]
    assert store.unpin(keys[:1]) == [False], "nothing left to unpin"
    assert store.intent(keys, queued=True) == [True, True, False]
    assert store.intent(keys[:2], sequence=7, first_position=3) == [True, True]
    assert store.intent(keys[:2], expect_reuse=4) == [True, True]
    assert store.intent(keys[:2], priority_class=3) == [True, True]
    with pytest.raises(mcos.InvalidArgument, match="exactly one"):
        store.intent(keys, queued=True, expect_reuse=2)


def test_stats(store):
    s = store.stats()
    assert s["node"]["tiers"][0]["kind"] == "dram"
    assert s["client"]["block_bytes"] == BLOCK
    assert isinstance(s["node"]["accesses"], int)


def test_daemon_stats_and_pin_lease(local, daemon):
    keys = fresh_keys(1)
    assert local.put(keys, [b"x"]) == [True]
    assert local.pin(keys, ttl_s=30) == [True]
    s = local.stats()
    assert s["daemon"]["pins_held"] >= 1
    assert local.unpin(keys) == [True]


def test_region_buffers_are_written_in_place(local):
    keys = fresh_keys(8)
    data = blocks(8, 5)
    assert all(local.put(keys, list(data)))
    rb = local.alloc(8 * BLOCK)
    view = np.asarray(rb).reshape(8, BLOCK)
    assert view.ctypes.data == np.asarray(rb).ctypes.data, "a view, not a copy"
    # RegionBuffer objects, and numpy views of region memory, both land in place.
    assert all(local.get_into(keys[:4], list(view[:4])))
    parts = [local.alloc(BLOCK) for _ in range(4)]
    assert all(local.get_into(keys[4:], parts))
    assert np.array_equal(view[:4], data[:4])
    for p, d in zip(parts, data[4:]):
        assert np.array_equal(np.asarray(p), d)
    # put reads straight from the region too.
    k2 = fresh_keys(4)
    assert all(local.put(k2, list(view[:4])))
    assert local.get(k2[:1]) == [data[0].tobytes()]


def test_region_arena_is_reused_and_bounded(local):
    total = local.arena_bytes
    assert total > 0
    a = local.alloc(total)
    with pytest.raises(mcos.RegionError, match="arena"):
        local.alloc(4096)
    del a
    b = local.alloc(total)  # freed memory comes back
    assert b.nbytes == total


def test_tcp_has_no_region(remote):
    assert not remote.is_local
    with pytest.raises(mcos.RegionError, match="TCP"):
        remote.alloc(4096)


def test_auth_and_unreachable(daemon):
    with pytest.raises(mcos.AuthError, match="refused"):
        mcos.Client(daemon.socket, tenant="alice", token="wrong")
    c = mcos.Client(daemon.socket, tenant="alice", token="s3cret")
    k = fresh_keys(1)
    assert c.put(k, [b"alice's"]) == [True]
    with mcos.Client(daemon.socket) as other:
        assert other.exists(k) == [False], "tenants do not see each other's blocks"
    c.close()
    with pytest.raises(mcos.Closed):
        c.exists(k)
    with pytest.raises(mcos.DaemonUnavailable, match="not reachable"):
        mcos.Client("/nonexistent/mcosd.sock", reconnect_timeout_s=0)
