"""Keys: the Rust chaining, identical across interpreters, hash seeds and processes."""

import os
import subprocess
import sys

import mcos

SCRIPT = "import mcos; print(','.join(k.hex() for k in mcos.block_keys(range(100), 16, " \
         "mcos.Namespace('llama-3-8b', 'bf16', 1, 42))), mcos.key_of('page-7').hex())"

# Computed by the Rust side (BlockKey::chain_all over Namespace { model: "m", layout:
# "default", shard: 0, tenant_salt: 0 }, tokens [1, 2, 3, 4, 5], block_tokens 2; printed
# little-endian): a change to either side's hashing breaks this.
RUST_CHAIN = [
    "c9b61f1c3f2f6b0ad1bbdcd4e1562a0c",
    "7b0af27987d6d744b251b035f017c2ab",
    "e726b8f3f49934620459ceaee23311a0",
]


def test_same_keys_in_other_interpreters_and_hash_seeds():
    outs = set()
    for seed in ("0", "1", "12345", "random"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        r = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True,
                           text=True, check=True)
        outs.add(r.stdout)
    here = mcos.block_keys(range(100), 16, mcos.Namespace("llama-3-8b", "bf16", 1, 42))
    assert len(outs) == 1
    assert outs.pop().split()[0] == ",".join(k.hex() for k in here)


def test_matches_rust_chain_all():
    assert [k.hex() for k in mcos.block_keys([1, 2, 3, 4, 5], 2, "m")] == RUST_CHAIN


def test_chaining_properties():
    a = mcos.block_keys([1, 2, 3, 4, 5, 6], 2, "m")
    b = mcos.block_keys([1, 2, 3, 4, 9, 9], 2, "m")
    assert len(a) == 3 and all(len(k) == 16 for k in a)
    assert a[:2] == b[:2] and a[2] != b[2]
    assert mcos.block_keys([1, 2], 2, mcos.Namespace("m", tenant_salt=1))[0] != a[0]
    assert mcos.block_keys([1, 2], 2, "other")[0] != a[0]
    assert mcos.key_of("x") == mcos.key_of(b"x") != mcos.key_of("y")
