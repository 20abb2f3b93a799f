# Sourced by the bench scripts (from the repository's root).
#
# bench_binary BINARY: sets BIN to BINARY, or to a release build made here when it
# is empty.
#
# start_runtime BINARY [VAR=value ...]: bench_binary, then starts it on
# 127.0.0.1:$PORT with a fresh data dir and the given settings, and waits for
# /health. Sets BIN, DATA and SUP; the runtime and its data dir go away when the
# calling script exits. The runtime asks for credentials: $DATA/admin.token.
bench_binary() {
  BIN=${1:-}
  if [ -z "$BIN" ]; then
    cargo build --release -q -p vwed-edge
    BIN=target/release/vwed-edge
  fi
}

start_runtime() {
  bench_binary "${1:-}"
  shift || true
  DATA=$(mktemp -d)
  trap 'kill -9 $SUP 2>/dev/null || true; rm -rf "$DATA"' EXIT
  env VWED_SAMPLE_PROJECT=false "$@" "$BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$DATA" >"$DATA/log" 2>&1 &
  SUP=$!
  for _ in $(seq 100); do curl -sf "localhost:$PORT/health" >/dev/null && break; sleep 0.05; done
}
