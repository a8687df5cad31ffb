"""KV events in vLLM's shape, so KV-aware routers (vLLM's, NVIDIA Dynamo's) see what MCOS holds.

The stream is vLLM's ``ZmqEventPublisher``: a ZMQ PUB socket sending multipart messages
``(topic, sequence as 8 bytes big-endian, payload)``, the payload a msgpack ``KVEventBatch``
encoded as msgspec does for vLLM's array-like tagged structs::

    [ts, [["BlockStored", block_hashes, parent_block_hash, token_ids, block_size, lora_id,
           medium], ["BlockRemoved", block_hashes, medium], ["AllBlocksCleared"]], dp_rank]

Point a router at it as at a vLLM worker started with
``--kv-events-config '{"enable_kv_cache_events": true, "publisher": "zmq",
"endpoint": "tcp://*:5557", "topic": "kv-events"}'``. Block hashes are the MCOS keys' low 64
bits (``hash_format="int"``, the u64 Dynamo's router keys on) or the 16 key bytes
(``"bytes"``, vLLM >= 0.11's ``BlockHash``). Needs ``pyzmq`` and ``msgpack``.
"""

import threading
import time
from typing import Iterable, List, Optional, Sequence

import msgpack
import zmq


def _hash(key: bytes, fmt: str):
    if fmt == "bytes":
        return bytes(key)
    return int.from_bytes(bytes(key)[:8], "little")


class KvEventPublisher:
    def __init__(self, endpoint: str = "tcp://*:5557", topic: str = "kv-events",
                 data_parallel_rank: int = 0, hash_format: str = "int",
                 medium: str = "CPU", context: Optional[zmq.Context] = None):
        if hash_format not in ("int", "bytes"):
            raise ValueError("hash_format is 'int' or 'bytes'")
        self._ctx = context or zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.PUB)
        self._sock.setsockopt(zmq.SNDHWM, 100_000)
        self._sock.bind(endpoint)
        self.endpoint = self._sock.getsockopt(zmq.LAST_ENDPOINT).decode()
        self.topic = topic.encode()
        self.dp_rank = data_parallel_rank
        self.hash_format = hash_format
        self.medium = medium
        self._seq = 0
        self._lock = threading.Lock()

    def stored(self, keys: Sequence[bytes], parent: Optional[bytes] = None,
               token_ids: Optional[Iterable[int]] = None, block_size: int = 0,
               lora_id: Optional[int] = None) -> int:
        """Blocks ``keys`` (a chain, ``parent`` before the first) are now stored."""
        ev = ["BlockStored", [_hash(k, self.hash_format) for k in keys],
              None if parent is None else _hash(parent, self.hash_format),
              list(token_ids or []), block_size, lora_id, self.medium]
        return self.publish([ev])

    def removed(self, keys: Sequence[bytes]) -> int:
        return self.publish([["BlockRemoved", [_hash(k, self.hash_format) for k in keys],
                              self.medium]])

    def cleared(self) -> int:
        return self.publish([["AllBlocksCleared"]])

    def publish(self, events: List[list]) -> int:
        """Sends one ``KVEventBatch``; returns its sequence number."""
        payload = msgpack.packb([time.time(), events, self.dp_rank], use_bin_type=True)
        with self._lock:
            seq = self._seq
            self._seq += 1
            self._sock.send_multipart([self.topic, seq.to_bytes(8, "big"), payload])
        return seq

    def close(self) -> None:
        self._sock.close(linger=0)
