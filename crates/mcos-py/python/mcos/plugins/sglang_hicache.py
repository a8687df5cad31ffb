"""SGLang HiCache storage backend over mcosd.

Enable it with SGLang's dynamic backend loader::

    --enable-hierarchical-cache --hicache-storage-backend dynamic \
    --hicache-storage-backend-extra-config '{"backend_name": "mcos",
        "module_path": "mcos.plugins.sglang_hicache", "class_name": "McosHiCacheStorage",
        "address": "/run/user/1000/mcosd.sock", "tenant": "default", "token": ""}'

SGLang calls ``cls(storage_config, kwargs)``. Page keys (SGLang's hex page hashes) become MCOS
keys with ``mcos.key_of`` under the model name and, unless the model is MLA (one KV copy for all
ranks), the tensor-parallel rank. The method set is ``HiCacheStorage``'s: ``get``, ``batch_get``,
``set``, ``batch_set``, ``exists``, ``batch_exists`` (length of the consecutive hit prefix),
the zero-copy ``batch_get_v1`` / ``batch_set_v1`` over the registered host memory pool
(``register_mem_pool_host``; ``get_page_buffer_meta(host_indices)`` gives each page's parts as
(pointer, size)), ``clear`` and ``get_stats``.

Failure policy: a batch call never returns None (that stops SGLang's prefetch thread for good)
and never raises into SGLang: a load that fails is a miss (SGLang recomputes), a store that
fails is False; both are counted in ``get_stats()``.
"""

import ctypes
import threading
from typing import Any, List, Optional

import mcos


def _cfg_get(cfg: Any, name: str, default: Any = None) -> Any:
    if cfg is None:
        return default
    if isinstance(cfg, dict):
        return cfg.get(name, default)
    return getattr(cfg, name, default)


class McosHiCacheStorage:
    """``HiCacheStorage`` over an ``mcos.Client`` (thread-safe: SGLang's prefetch and backup
    threads call it at once)."""

    def __init__(self, storage_config: Any = None, kwargs: Optional[dict] = None, client=None):
        extra = dict(_cfg_get(storage_config, "extra_config", None) or {})
        extra.update(kwargs or {})
        self.model = str(_cfg_get(storage_config, "model_name", None) or extra.get("model", "model"))
        is_mla = bool(_cfg_get(storage_config, "is_mla_model", False))
        rank = int(_cfg_get(storage_config, "tp_rank", 0) or 0)
        # MLA keeps one KV copy that every rank shares; MHA ranks each hold their heads' slice.
        self.scope = f"{self.model}/mla" if is_mla else f"{self.model}/tp{rank}"
        self.client = client or mcos.Client(
            extra.get("address", extra.get("socket", "")),
            tenant=extra.get("tenant", "default"),
            token=extra.get("token", ""),
        )
        self.mem_pool_host = None
        self._lock = threading.Lock()
        self._stats = {"load_errors": 0, "store_errors": 0, "gets": 0, "hits": 0, "sets": 0}

    # ---- keys ------------------------------------------------------------------------------
    def _key(self, key: str, part: int = 0) -> bytes:
        return mcos.key_of(f"{self.scope}/{key}/{part}")

    def _count(self, **d: int) -> None:
        with self._lock:
            for k, v in d.items():
                self._stats[k] += v

    # ---- HiCacheStorage --------------------------------------------------------------------
    def register_mem_pool_host(self, mem_pool_host) -> None:
        self.mem_pool_host = mem_pool_host

    def get(self, key: str, target_location=None, target_sizes=None):
        got = self.batch_get([key], [target_location] if target_location is not None else None)
        return got[0]

    def batch_get(self, keys: List[str], target_locations=None, target_sizes=None) -> List:
        n = len(keys)
        if n == 0:
            return []
        mkeys = [self._key(k) for k in keys]
        try:
            if target_locations is None:
                vals = self.client.get(mkeys)
                out = [v if v is not None else None for v in vals]
                hits = sum(v is not None for v in vals)
            else:
                ok = self.client.get_into(mkeys, list(target_locations))
                out = [t if h else None for t, h in zip(target_locations, ok)]
                hits = sum(ok)
        except mcos.Error:
            self._count(load_errors=n, gets=n)
            return [None] * n
        self._count(gets=n, hits=hits)
        return out

    def set(self, key: str, value=None, target_location=None, target_sizes=None) -> bool:
        src = value if value is not None else target_location
        return self.batch_set([key], [src])

    def batch_set(self, keys: List[str], values=None, target_locations=None, target_sizes=None) -> bool:
        srcs = values if values is not None else target_locations
        if not keys:
            return True
        if srcs is None:
            return False
        try:
            ok = self.client.put([self._key(k) for k in keys], list(srcs))
        except mcos.Error:
            self._count(store_errors=len(keys))
            return False
        self._count(sets=len(keys))
        return all(ok)

    def exists(self, key: str) -> bool:
        return self.batch_exists([key]) == 1

    def batch_exists(self, keys: List[str], extra_info=None) -> int:
        """Number of leading keys stored (SGLang prefetches only a consecutive prefix)."""
        if not keys:
            return 0
        parts = self._parts_per_page()
        mkeys = [self._key(k, j) for k in keys for j in range(parts)]
        try:
            return self.client.longest_prefix(mkeys) // parts
        except mcos.Error:
            self._count(load_errors=1)
            return 0

    # ---- zero-copy v1 over the host pool --------------------------------------------------
    def _parts_per_page(self) -> int:
        if self.mem_pool_host is None:
            return 1
        return int(getattr(self.mem_pool_host, "mcos_parts_per_page", 0) or self._probe_parts())

    def _probe_parts(self) -> int:
        # The pool's layout decides how many (pointer, size) parts one page has (K and V:
        # 2 for MHA, 1 for MLA); ask it for one page and remember.
        try:
            ptrs, _ = self.mem_pool_host.get_page_buffer_meta([0])
            parts = max(1, len(ptrs))
        except Exception:  # a pool without page 0 yet: one part per page
            parts = 1
        try:
            self.mem_pool_host.mcos_parts_per_page = parts
        except AttributeError:
            pass
        return parts

    def _views(self, host_indices):
        ptrs, sizes = self.mem_pool_host.get_page_buffer_meta(host_indices)
        return [(ctypes.c_char * int(s)).from_address(int(p)) for p, s in zip(ptrs, sizes)]

    def batch_get_v1(self, keys: List[str], host_indices, extra_info=None) -> List[bool]:
        n = len(keys)
        if n == 0:
            return []
        try:
            views = self._views(host_indices)
            parts = max(1, len(views) // n)
            mkeys = [self._key(k, j) for k in keys for j in range(parts)]
            ok = self.client.get_into(mkeys, views)
        except (mcos.Error, ValueError, TypeError, AttributeError):
            self._count(load_errors=n, gets=n)
            return [False] * n
        res = [all(ok[i * parts:(i + 1) * parts]) for i in range(n)]
        self._count(gets=n, hits=sum(res))
        return res

    def batch_set_v1(self, keys: List[str], host_indices, extra_info=None) -> List[bool]:
        n = len(keys)
        if n == 0:
            return []
        try:
            views = self._views(host_indices)
            parts = max(1, len(views) // n)
            mkeys = [self._key(k, j) for k in keys for j in range(parts)]
            ok = self.client.put(mkeys, views)
        except (mcos.Error, ValueError, TypeError, AttributeError):
            self._count(store_errors=n)
            return [False] * n
        self._count(sets=n)
        return [all(ok[i * parts:(i + 1) * parts]) for i in range(n)]

    # ---- housekeeping ---------------------------------------------------------------------
    def clear(self) -> None:
        """MCOS evicts by policy; blocks are immutable and shared, so clear drops nothing."""

    def get_stats(self):
        with self._lock:
            s = dict(self._stats)
        s["client_load_errors"] = self.client.load_errors
        return s

    def close(self) -> None:
        self.client.close()
