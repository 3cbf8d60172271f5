#!/usr/bin/env bash
# Checks the Kubernetes manifests in deploy/k8s without a cluster (run by tools/containers/scale-test.sh,
# so by CI; by hand: tools/deploy/validate-k8s.sh):
#   1. validate-k8s.py: parses every YAML file; required fields by kind; references between the documents
#      (selectors, ports, volumes, ConfigMap/Secret keys, PVCs, Ingress backends, KServe runtime and model
#      format); Nin's rules (roles, probes, RWX volume, sticky /hubs/, the compose file's settings present);
#   2. schema-k8s.mjs: the built-in kinds against the Kubernetes API's OpenAPI schemas (npm kubernetes-models),
#      and the KServe ServingRuntime's containers and volumes as core Container and Volume objects.
# Needs python3 with PyYAML (python3-yaml, installed here when missing and run as root) and node/npm
# (npm ci in tools/deploy once).
set -euo pipefail
HERE=$(cd -P -- "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")" && pwd)
REPO=$(cd -P -- "$HERE/../.." && pwd)

if ! python3 -c 'import yaml' 2>/dev/null; then
    [[ $EUID -eq 0 ]] || { echo "validate-k8s: python3-yaml is missing (sudo apt-get install python3-yaml)" >&2; exit 1; }
    apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends python3-yaml >/dev/null
fi
python3 "$HERE/validate-k8s.py" "$REPO/deploy/k8s"

if [[ ! -d $HERE/node_modules/kubernetes-models ]]; then
    (cd "$HERE" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi
cd "$REPO"
mapfile -t files < <(find deploy/k8s -name '*.yaml' | sort)
node "$HERE/schema-k8s.mjs" "${files[@]}"
