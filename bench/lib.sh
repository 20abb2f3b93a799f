# Sourced by the bench scripts: the binary under test in $BIN, from the first
# argument or a release build made here; the working directory is the repository.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=${1:-}
if [ -z "$BIN" ]; then
  cargo build --release -q -p vwed-edge
  BIN=target/release/vwed-edge
fi
