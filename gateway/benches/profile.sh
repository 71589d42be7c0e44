#!/usr/bin/env bash
# Instructions per request of the gateway's pass-through pipeline against the bare Pingora floor.
#
# Both proxies run under `valgrind --tool=callgrind` with instrumentation off, get warmed up, then
# serve exactly $REQUESTS keep-alive GETs (one connection, one request at a time, from a small
# client pinned to the other core) with instrumentation on. Instruction counts do not depend on
# what else the shared machine is doing, so this is the figure to compare changes with; wrk runs
# (bench/run.py) give the req/s and CPU µs/request next to nginx and HAProxy.
#
# Usage: gateway/benches/profile.sh [--no-build] [requests]      (default 20000)
# The floor is built with the gateway binary's allocator (mimalloc) so the ratio compares like with
# like; FLOOR_FEATURES= (empty) builds the glibc floor instead.
# Needs: valgrind, nginx (the upstream), python3, taskset. Honours CARGO_TARGET_DIR; BIN=<dir>
# profiles binaries from another directory (e.g. copies of a previous build, with --no-build).
# Output: Ir/request for each system and callgrind files in $OUT (default /tmp/portcullis-profile)
# for `callgrind_annotate --inclusive=yes <file>`.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=1
if [[ "${1:-}" == "--no-build" ]]; then BUILD=0; shift; fi
REQUESTS=${1:-20000}
WARMUP=500
OUT=${OUT:-/tmp/portcullis-profile}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=${BIN:-$TARGET/release}
UPSTREAM_PORT=19180
FLOOR_PORT=19183
GATEWAY_PORT=19184
PROXY_CPU=0
LOAD_CPU=1

if [[ $BUILD == 1 ]]; then
  (cd "$ROOT" && cargo build --release --quiet -p portcullis-gateway -p portcullis-bench-floor \
    ${FLOOR_FEATURES---features=portcullis-bench-floor/mimalloc})
fi
mkdir -p "$OUT"
WORK=$(mktemp -d /tmp/portcullis-profile-run.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

cat >"$WORK/upstream.conf" <<EOF
worker_processes 1; daemon off; pid $WORK/upstream.pid; error_log $WORK/upstream-error.log;
events { worker_connections 1024; }
http { access_log off; keepalive_requests 1000000;
  server { listen 127.0.0.1:$UPSTREAM_PORT; location / { return 200 "hello from upstream\n"; } } }
EOF
printf -- '---\nversion: 1\nthreads: 1\n' >"$WORK/pingora.yml"
cat >"$WORK/rules.yml" <<EOF
- id: passthrough
  match:
    url: http://127.0.0.1:$GATEWAY_PORT/<.*>
    methods: [GET]
  upstream:
    url: http://127.0.0.1:$UPSTREAM_PORT
  authenticators: [{handler: noop}]
  authorizer: {handler: allow}
  mutators: [{handler: noop}]
EOF
cat >"$WORK/oathkeeper.yml" <<EOF
log: {level: warn}
serve:
  proxy: {host: 127.0.0.1, port: $GATEWAY_PORT}
  api: {host: 127.0.0.1, port: 19185}
  prometheus: {host: 127.0.0.1, port: 19186}
access_rules:
  repositories: [file://$WORK/rules.yml]
  matching_strategy: regexp
authenticators: {noop: {enabled: true}}
authorizers: {allow: {enabled: true}}
mutators: {noop: {enabled: true}}
EOF

# A keep-alive HTTP/1.1 client: N sequential GETs on one connection, fails on a non-200.
cat >"$WORK/client.py" <<'EOF'
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
req = f"GET /bench HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: profile\r\n\r\n".encode()
buf = b""
for _ in range(n):
    s.sendall(req)
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            sys.exit("connection closed")
        buf += chunk
    head, buf = buf.split(b"\r\n\r\n", 1)
    if not head.startswith(b"HTTP/1.1 200"):
        sys.exit("unexpected response: " + head.split(b"\r\n")[0].decode())
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(buf) < length:
        chunk = s.recv(65536)
        if not chunk:
            sys.exit("connection closed")
        buf += chunk
    buf = buf[length:]
EOF

wait_port() {
  for _ in $(seq 1 600); do
    if python3 -c "import socket,sys; socket.create_connection(('127.0.0.1', $1), timeout=0.2)" 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "nothing listens on $1" >&2; for f in "$WORK"/*.log; do echo "== $f" >&2; tail -n 5 "$f" >&2; done
  return 1
}

taskset -c $LOAD_CPU nginx -c "$WORK/upstream.conf" -e "$WORK/upstream-error.log" &
PIDS+=($!)
wait_port $UPSTREAM_PORT

# profile NAME PORT ENV CMD...: prints "NAME Ir/request"; ENV is "NAME=value ..." (set outside
# valgrind, which does not follow an `env` exec).
profile() {
  local name=$1 port=$2 vars=$3
  shift 3
  local file="$OUT/callgrind.$name.out"
  rm -f "$file" "$file".*
  # shellcheck disable=SC2086
  env $vars taskset -c $PROXY_CPU valgrind --tool=callgrind --instr-atstart=no \
    --callgrind-out-file="$file" "$@" >"$WORK/$name.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  wait_port "$port"
  taskset -c $LOAD_CPU python3 "$WORK/client.py" "$port" $WARMUP
  callgrind_control -i on "$pid" >/dev/null
  callgrind_control -z "$pid" >/dev/null
  taskset -c $LOAD_CPU python3 "$WORK/client.py" "$port" "$REQUESTS"
  # The dump is written to "$file.1"; shutdown is not measured.
  callgrind_control -d "$pid" >/dev/null
  callgrind_control -i off "$pid" >/dev/null
  kill -KILL "$pid"
  wait "$pid" 2>/dev/null || true
  mv "$file.1" "$file"
  local total
  total=$(callgrind_annotate "$file" 2>/dev/null | awk '/PROGRAM TOTALS/ && !seen {gsub(",", "", $1); print $1; seen = 1}')
  echo "$name $((total / REQUESTS)) Ir/request ($file)"
}

profile floor $FLOOR_PORT "FLOOR_LISTEN=127.0.0.1:$FLOOR_PORT FLOOR_UPSTREAM=127.0.0.1:$UPSTREAM_PORT" \
  "$BIN/portcullis-bench-floor" -c "$WORK/pingora.yml"
profile gateway $GATEWAY_PORT "LOG_LEVEL=warn" "$BIN/portcullis-gateway" serve -c "$WORK/oathkeeper.yml"
