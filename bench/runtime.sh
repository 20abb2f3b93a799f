# Sourced by the bench scripts. start_runtime BINARY [VAR=value ...]: builds a release
# binary when BINARY is empty, then starts it on 127.0.0.1:$PORT with a fresh data dir
# and the given settings, and waits for /health. Sets BIN, DATA and SUP; the runtime
# and its data dir go away when the calling script exits.
start_runtime() {
  BIN=${1:-}
  shift || true
  if [ -z "$BIN" ]; then
    cargo build --release -q -p vwed-edge
    BIN=target/release/vwed-edge
  fi
  DATA=$(mktemp -d)
  trap 'kill -9 $SUP 2>/dev/null || true; rm -rf "$DATA"' EXIT
  env VWED_SAMPLE_PROJECT=false "$@" "$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$DATA" >"$DATA/log" 2>&1 &
  SUP=$!
  for _ in $(seq 100); do curl -sf "localhost:$PORT/health" >/dev/null && break; sleep 0.05; done
}
