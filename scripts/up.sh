#!/usr/bin/env bash
# Brings the whole stack up locally on the embedded default: identity on SQLite, the gateway with
# the example rules, and the demo upstream. No Kubernetes, no Docker. Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."

# Pingora builds zlib-ng with cmake and links OpenSSL: fetch them on Debian/Ubuntu when missing.
need=()
command -v cmake >/dev/null 2>&1 || need+=(cmake)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
command -v curl >/dev/null 2>&1 || need+=(curl)
if command -v dpkg >/dev/null 2>&1 && ! dpkg -s libssl-dev >/dev/null 2>&1; then need+=(libssl-dev); fi
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if command -v apt-get >/dev/null 2>&1; then
    echo "installing build prerequisites: ${need[*]}"
    $sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "please install: ${need[*]} (cmake, pkg-config, OpenSSL headers and curl)" >&2
    exit 1
  fi
fi

echo "building portcullis-identity and portcullis-gateway (first build takes a few minutes)..."
cargo build --quiet -p portcullis-identity -p portcullis-gateway --bins
bin="${CARGO_TARGET_DIR:-target}/debug"

mkdir -p .local
# Secrets stay on this machine, in .local/ (git-ignored), so sessions survive a restart.
if [ ! -s .local/secrets.env ]; then
  umask 077
  {
    echo "SECRETS_COOKIE=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
    echo "SECRETS_CIPHER=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"
    echo "SECRETS_DEFAULT=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
  } > .local/secrets.env
fi
set -a
# shellcheck disable=SC1091
. .local/secrets.env
DSN="sqlite://$PWD/.local/identity.sqlite?mode=rwc"
set +a

pids=()
cleanup() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

"$bin/portcullis-identity" serve --dev -c identity/examples/local/kratos.yml > .local/identity.log 2>&1 &
pids+=($!)
"$bin/portcullis-gateway" demo-upstream --listen 127.0.0.1:4460 > .local/upstream.log 2>&1 &
pids+=($!)
"$bin/portcullis-gateway" serve -c gateway/examples/local/oathkeeper.yml > .local/gateway.log 2>&1 &
pids+=($!)

wait_for() { # name url
  for _ in $(seq 1 300); do
    if curl -fsS -o /dev/null "$2" 2>/dev/null; then return 0; fi
    for pid in "${pids[@]}"; do
      if ! kill -0 "$pid" 2>/dev/null; then
        echo "$1 did not start; its log is in .local/:" >&2
        tail -n 20 .local/*.log >&2
        exit 1
      fi
    done
    sleep 0.2
  done
  echo "$1 did not become ready at $2" >&2
  exit 1
}
wait_for identity http://127.0.0.1:4433/health/ready
wait_for gateway http://127.0.0.1:4456/health/ready
wait_for upstream http://127.0.0.1:4460/

cat <<'MSG'

Portcullis is up (logs in .local/*.log):

  Register in a browser   http://127.0.0.1:4433/self-service/registration/browser
  Log in                  http://127.0.0.1:4433/self-service/login/browser
  Your account            http://127.0.0.1:4433/ui/welcome   (built-in UI: settings, sign out)
  Public route            http://127.0.0.1:4455/public/hello
  Protected route         http://127.0.0.1:4455/protected/hello   (401 until you log in)
  Identity public API     http://127.0.0.1:4433      admin API   http://127.0.0.1:4434
  Gateway API             http://127.0.0.1:4456/rules

Press Ctrl-C to stop.
MSG
wait -n "${pids[@]}"
echo "a component stopped; shutting down (see .local/*.log)" >&2
