"""MCOS from Python: store and fetch blocks of AI state (KV-cache pages) in an MCOS node.

Two back ends, one API:

- ``Client(address, tenant=, token=)``: the ``mcosd`` daemon, over its Unix socket with a
  shared memory region (the daemon copies blocks straight into it) or over TCP;
- ``Node(config)``: a node embedded in this process.

Both take keys (16-byte ``bytes``, from ``block_keys`` or ``key_of``) and caller memory (numpy
arrays, any buffer-protocol object, any host ``__dlpack__`` tensor) and release the GIL while
they wait. Engine plug-ins live in ``mcos.plugins`` (SGLang HiCache, LMCache, KV events).
"""

from dataclasses import dataclass
from typing import List, Sequence, Union

from ._mcos import (  # noqa: F401  (re-exported API)
    AuthError,
    Client,
    Closed,
    DaemonUnavailable,
    DeviceError,
    Error,
    InvalidArgument,
    InvalidBuffer,
    Node,
    NodeFailure,
    ProtocolError,
    RegionBuffer,
    RegionError,
    __version__,
    key_of,
)
from ._mcos import block_keys as _block_keys

__all__ = [
    "AuthError",
    "Client",
    "Closed",
    "DaemonUnavailable",
    "DeviceError",
    "Error",
    "InvalidArgument",
    "InvalidBuffer",
    "Namespace",
    "Node",
    "NodeFailure",
    "ProtocolError",
    "RegionBuffer",
    "RegionError",
    "block_keys",
    "key_of",
]


@dataclass(frozen=True)
class Namespace:
    """Where a chain of keys lives (``mcos_core::Namespace``): blocks of different models,
    layouts, tensor-parallel ranks or tenants never share keys."""

    model: str
    layout: str = "default"
    shard: int = 0
    tenant_salt: int = 0


def block_keys(
    token_ids: Sequence[int], block_tokens: int, namespace: Union[Namespace, str]
) -> List[bytes]:
    """Keys of ``token_ids`` cut into blocks of ``block_tokens`` tokens, each chained over its
    whole prefix exactly as ``BlockKey::chain_all`` does in Rust (a trailing partial block gets
    a key too). ``namespace`` is a ``Namespace`` or a model name. The keys depend only on the
    arguments: the same in every process, interpreter and ``PYTHONHASHSEED``."""
    ns = Namespace(namespace) if isinstance(namespace, str) else namespace
    return _block_keys(
        [int(t) for t in token_ids],
        block_tokens,
        ns.model,
        ns.layout,
        ns.shard,
        ns.tenant_salt,
    )
