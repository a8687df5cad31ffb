#!/usr/bin/env bash
# Makes docs/report.png, the picture in README.md: `mcos report` on the Mooncake conversation
# trace, screenshotted by headless Chromium (Debian package `chromium`). The page itself is
# left in a temporary directory, whose path is printed.
#   scripts/report-picture.sh [TRACE]     (default: ../shared/traces/mooncake-conversation/...)
# MCOS=path/to/mcos uses that binary instead of building the release one.
set -euo pipefail
cd "$(dirname "$0")/.."
trace="${1:-../shared/traces/mooncake-conversation/conversation_trace.jsonl}"
if [ -z "${MCOS:-}" ]; then
  cargo build --release -p mcos-cli --locked
  MCOS=target/release/mcos
fi
command -v chromium >/dev/null || { echo "needs chromium (apt-get install chromium)" >&2; exit 1; }
out="$(mktemp -d)"
"$MCOS" report --trace "$trace" --points 30 --out "$out/report.html"
chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --hide-scrollbars \
  --user-data-dir="$out/profile" --window-size=1000,1400 \
  --screenshot="$out/report.png" "file://$out/report.html" 2>/dev/null
cp "$out/report.png" docs/report.png
echo "wrote docs/report.png (page: $out/report.html)"
