#!/usr/bin/env bash
# Bundle test: `./nin bundle` output runs on a host without .NET, and the GPU check runs end to end as
# its own CPU rehearsal.
#
#   tools/containers/bundle-test.sh        (as root; CI runs it after the container test)
#
#  1. `./nin bundle --backend system` (what a GPU host with PyTorch gets): prints its .tar.xz size
#     (aim: <= 60 MB without libtorch);
#  2. `./nin bundle --backend cpu --no-tar` (libtorch inside) for a host with no PyTorch needed;
#  3. a bare Debian 13 container (debian:trixie, or a debootstrapped minbase with nothing added where no
#     registry is reachable: no ICU, CA bundle, .NET or PyTorch): `nin serve` from the read-only CPU bundle,
#     and from the host (127.0.0.1, host networking): readiness, /predict with the shipped model, a tiny
#     training job over SignalR;
#  4. a Debian 13 container with Debian's python3-torch (the GPU host's PyTorch, CPU here) and no .NET:
#     gpu-check.sh --device cpu with small sizes (Nin's loop, the PyTorch anchor, the /predict bench,
#     the summary table).
# The container is removed at the end, also on failure. Bounded: NIN_BUNDLE_TEST_TIMEOUT (default 1500 s).
set -euo pipefail
HERE=$(cd -P -- "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")" && pwd)
REPO=$(cd -P -- "$HERE/../.." && pwd)
DATA=${NIN_TEST_DATA_DIR:-$(realpath -m -- "$REPO/../shared/datasets")}
LIMIT=${NIN_BUNDLE_TEST_TIMEOUT:-1500}
NAME=nin-bundle-test-$$
HOST_IMAGE=nin-test/bundle-host:trixie

# shellcheck source=tools/containers/engine.sh
. "$HERE/engine.sh"
test_start "bundle test" "$LIMIT"

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if ((rc != 0)) && docker inspect "$NAME" >/dev/null 2>&1; then
        echo "---- service log (last 40 lines)" >&2
        docker logs --tail 40 "$NAME" >&2 2>&1 || true
    fi
    docker rm -f "$NAME" >/dev/null 2>&1 || true
    stop_docker
    kill "$WATCHDOG" 2>/dev/null || true
    echo "bundle test: $( ((rc == 0)) && echo passed || echo "FAILED (exit $rc)") in $((SECONDS - START))s"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Each bundle's build folder (artifacts/bundle-build/BACKEND, a second copy of what it publishes: 0.7 GB with libtorch)
# goes once its bundle is made, and the system bundle's folder once packed: on a small disk the CPU bundle's libtorch
# found no room beside them.
say "./nin bundle --backend system (libtorch from the host's PyTorch)"
./nin bundle --backend system --out artifacts/nin-bundle-system
rm -rf -- "$REPO/artifacts/bundle-build/system" "$REPO/artifacts/nin-bundle-system"
say "./nin bundle --backend cpu (libtorch inside)"
./nin bundle --backend cpu --out artifacts/nin-bundle-cpu --no-tar
rm -rf -- "$REPO/artifacts/bundle-build/cpu"
echo "disk: $(df -h --output=avail "$REPO" | tail -n 1 | tr -d ' ') free"
BUNDLE=$REPO/artifacts/nin-bundle-cpu

say "a bare Debian 13 host with PyTorch and no .NET"
ensure_docker || die "no Docker engine"
ensure_js_client
base=$("$HERE/standins.sh" --base)
if [[ $(docker image inspect -f '{{ index .Config.Labels "nin.bundle-host-base" }}' "$HOST_IMAGE" 2>/dev/null) != "$base" ]]; then
    ctx=$(mktemp -d)
    cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM $base
RUN apt-get update -q \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3-torch python3-numpy \\
 && rm -rf /var/lib/apt/lists/*
LABEL nin.bundle-host-base="$base"
DOCKERFILE
    docker build -q --network host -t "$HOST_IMAGE" "$ctx" >/dev/null 2>"$ctx.err" || { cat "$ctx.err" >&2; die "building $HOST_IMAGE failed"; }
    rm -rf -- "$ctx" "$ctx.err"
fi
echo "$HOST_IMAGE: $base + Debian's python3-torch ($(docker run --rm "$HOST_IMAGE" python3 -c 'import torch; print(torch.__version__)'))"
run=(docker run --network host -v "$BUNDLE:/opt/nin:ro" -v "$DATA:/data:ro" -e NIN_DATA_DIR=/data -w /var/tmp)
if "${run[@]}" --rm "$HOST_IMAGE" bash -c 'command -v dotnet || ls -d /usr/share/dotnet /usr/lib/dotnet 2>/dev/null'; then
    die "the test host has .NET; it must not"
fi
echo "no dotnet in the container"

say "nin serve from the CPU bundle on a bare Debian 13 (minbase, nothing added: no ICU, CA bundle or PyTorch)"
bare=$("$HERE/standins.sh" --bare)
if "${run[@]}" --rm "$bare" bash -c 'ls /usr/lib/x86_64-linux-gnu/libicuuc.so.* /etc/ssl/certs/ca-certificates.crt 2>/dev/null | grep .'; then
    die "$bare is not bare: it has ICU or a CA bundle"
fi
port=$(free_port) || die "no free port"
"${run[@]}" -d --name "$NAME" -e NIN_HOME=/var/tmp/nin "$bare" /opt/nin/nin serve --urls "http://127.0.0.1:$port" >/dev/null
smoke() { timeout "${SMOKE_TIMEOUT:-300}" node "$HERE/smoke.mjs" "http://127.0.0.1:$port" "" "$@"; }
smoke ready 200 180
smoke predict "$DATA/fashion-mnist"
SMOKE_TIMEOUT=600 smoke train
docker rm -f "$NAME" >/dev/null

say "gpu-check.sh, rehearsed on the CPU with small sizes"
"${run[@]}" --rm --name "$NAME" "$HOST_IMAGE" /opt/nin/gpu-check.sh --device cpu --data /data --epochs 2 \
    --image-size 67 --batch 64 --max-train 512 --max-test 256 --clients 1,4 --seconds 2 --out /var/tmp/gpu-check
