#!/usr/bin/env bash
# The Python package's tests (scripts/test.sh runs this; so does CI through .ci/run): a virtual
# environment in target/py-venv (created once, reused), maturin/numpy/pytest/pyzmq/msgpack from
# PyPI, `mcos` built into it with maturin, then pytest against a live mcosd (started and stopped
# by the fixtures on a temporary socket) and the embedded node.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=target/py-venv
if [ ! -x "$VENV/bin/python" ]; then
  "${PYTHON:-python3}" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --disable-pip-version-check \
  'maturin>=1.5,<2' 'numpy>=1.22' pytest pyzmq msgpack
cargo build -q -p mcos-server --bin mcosd --locked
VIRTUAL_ENV="$PWD/$VENV" PATH="$PWD/$VENV/bin:$PATH" \
  maturin develop -q -m crates/mcos-py/Cargo.toml --locked
set +e
MCOSD_BIN="$PWD/target/debug/mcosd" "$VENV/bin/python" -m pytest -q crates/mcos-py/tests
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit "$rc"
