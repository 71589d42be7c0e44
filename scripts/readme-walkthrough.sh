#!/usr/bin/env bash
# Runs the README's curl walk-through verbatim against a stack started by scripts/up.sh in a
# scratch state directory, and checks what a reader is told to expect.
set -euo pipefail
cd "$(dirname "$0")/.."

block=$(sed -n '/<!-- walkthrough:begin -->/,/<!-- walkthrough:end -->/p' README.md | sed '1,2d;$d' | sed '$d')
[ -n "$block" ] || { echo "no walk-through block in README.md" >&2; exit 1; }

rm -rf .local
mkdir -p target
./scripts/up.sh > target/up.log 2>&1 &
up=$!
trap 'kill -TERM $up 2>/dev/null || true; wait $up 2>/dev/null || true' EXIT
for _ in $(seq 1 1500); do
  grep -q "Portcullis is up" target/up.log 2>/dev/null && break
  kill -0 $up 2>/dev/null || { cat target/up.log; exit 1; }
  sleep 0.2
done
grep -q "Portcullis is up" target/up.log || { cat target/up.log; echo "stack did not come up" >&2; exit 1; }

out=$(bash -euo pipefail -c "$block" 2>&1) || { echo "$out"; echo "walk-through failed" >&2; exit 1; }
echo "$out"
fail=0
check() { if ! grep -qiE "$1" <<<"$out"; then echo "walk-through: expected $2" >&2; fail=1; fi; }
check '"session_token":"' "a session token from registration"
check '"identity":\{' "whoami to show the identity"
check '"x-user-id":"[0-9a-f-]{36}"' "the upstream to see X-User-Id"
check '^401$' "401 without a session"
check '^404$' "404 for an unknown URL"
[ $fail -eq 0 ] && echo "README walk-through: 5 passed, 0 failed"
exit $fail
