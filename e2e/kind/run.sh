#!/usr/bin/env bash
# The kind suite: a real cluster, the real images, the chart, and the user journeys through the
# gateway (register → login → protected call; Rule apply → enforced; IdentitySchema → served).
#
#   bash e2e/kind/run.sh            # needs docker, kind, kubectl, helm, curl, jq, cargo
#   KEEP_CLUSTER=1 bash e2e/kind/run.sh
#
# It cannot run on the offline development machine (no Docker engine, no kind); it runs in
# .github/workflows/e2e.yml. Every wait is on a condition (rollout, Established, Ready), never
# a fixed sleep.
set -euo pipefail

repo="$(cd "$(dirname "$0")/../.." && pwd)"
cluster="${KIND_CLUSTER:-portcullis-e2e}"
ns=portcullis
gw=http://127.0.0.1:4455
logs="${E2E_LOGS:-$repo/target/kind-logs}"

step() { printf '\n=== %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

diagnostics() {
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    step "diagnostics (exit $rc)"
    kubectl get all,rules.portcullis.dev,identityschemas.portcullis.dev -A -o wide || true
    kubectl get events -A --sort-by=.lastTimestamp | tail -n 80 || true
    for d in gateway identity operator; do
      kubectl -n "$ns" logs "deploy/portcullis-$d" --all-containers --tail=200 || true
    done
    mkdir -p "$logs" && kind export logs "$logs" --name "$cluster" || true
  fi
  if [ -z "${KEEP_CLUSTER:-}" ]; then kind delete cluster --name "$cluster" || true; fi
  exit "$rc"
}
trap diagnostics EXIT

step "cluster"
kind get clusters | grep -qx "$cluster" \
  || kind create cluster --name "$cluster" --config "$repo/e2e/kind/kind.yaml" --wait 120s

step "images (tag e2e, loaded into kind, never pulled)"
for target in gateway identity operator; do
  docker build -f "$repo/docker/Dockerfile" --target "$target" \
    -t "ghcr.io/portcullis/portcullis-$target:e2e" "$repo"
  kind load docker-image "ghcr.io/portcullis/portcullis-$target:e2e" --name "$cluster"
done

step "chart"
helm upgrade --install portcullis "$repo/charts/portcullis" --namespace "$ns" --create-namespace \
  -f "$repo/e2e/kind/values.yaml" --wait --timeout 5m
kubectl wait --for=condition=Established crd/rules.portcullis.dev crd/identityschemas.portcullis.dev --timeout=60s
for d in gateway identity operator; do
  kubectl -n "$ns" rollout status "deploy/portcullis-$d" --timeout=180s
done
helm test portcullis --namespace "$ns" --timeout 2m

step "Rules and IdentitySchema"
kubectl create namespace e2e --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -f "$repo/e2e/kind/journeys.yaml"
kubectl -n e2e rollout status deploy/echo --timeout=120s
kubectl -n "$ns" wait --for=condition=Ready rules.portcullis.dev/identity-public --timeout=60s
kubectl -n e2e wait --for=condition=Ready rules.portcullis.dev/echo --timeout=60s
kubectl -n "$ns" wait --for=condition=Ready identityschemas.portcullis.dev/customer --timeout=60s

step "Rule enforced: no credentials → 401"
code="$(curl -s -o /dev/null -w '%{http_code}' "$gw/echo/hostname")"
[ "$code" = 401 ] || fail "unauthenticated call answered $code, want 401"

step "register → login → protected call"
email="e2e-$(date +%s)@example.com"
password="kind-e2e-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
flow="$(curl -sf "$gw/.ory/kratos/public/self-service/registration/api" | jq -r .id)"
curl -sf -H 'Content-Type: application/json' \
  -d "$(jq -n --arg e "$email" --arg p "$password" '{method:"password",password:$p,traits:{email:$e}}')" \
  "$gw/.ory/kratos/public/self-service/registration?flow=$flow" >/dev/null \
  || fail "registration failed"
flow="$(curl -sf "$gw/.ory/kratos/public/self-service/login/api" | jq -r .id)"
token="$(curl -sf -H 'Content-Type: application/json' \
  -d "$(jq -n --arg e "$email" --arg p "$password" '{method:"password",identifier:$e,password:$p}')" \
  "$gw/.ory/kratos/public/self-service/login?flow=$flow" | jq -r .session_token)"
[ -n "$token" ] && [ "$token" != null ] || fail "login returned no session_token"
code="$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $token" "$gw/echo/hostname")"
[ "$code" = 200 ] || fail "authenticated call answered $code, want 200"

step "IdentitySchema served by identity"
schema_id="$(kubectl -n "$ns" get identityschemas.portcullis.dev/customer -o jsonpath='{.status.schemaId}')"
curl -sf "$gw/.ory/kratos/public/schemas" | jq -e --arg id "$schema_id" 'map(.id) | index($id) != null' >/dev/null \
  || fail "schema $schema_id is not listed at /schemas"

step "operator process e2e against this cluster (the in-cluster operator scaled to 0)"
kubectl -n "$ns" scale deploy/portcullis-operator --replicas=0
# (kubectl wait errors when no pod matches any more, so poll the condition itself.)
timeout 120 bash -c "until [ -z \"\$(kubectl -n $ns get pods -l app.kubernetes.io/component=operator -o name)\" ]; do sleep 1; done"
kubeconfig="$(mktemp)"
kind get kubeconfig --name "$cluster" >"$kubeconfig"
(cd "$repo" && KUBECONFIG="$kubeconfig" cargo test -p portcullis-operator --test process_e2e)

step "kind e2e: OK"
