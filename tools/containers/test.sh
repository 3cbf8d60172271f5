#!/usr/bin/env bash
# Container test: builds and runs the project's own Dockerfile and docker-compose.yml, unchanged, and
# checks the running stack from the host as a user would.
#
#   tools/containers/test.sh            (as root; CI runs it after ./nin test)
#
#  1. a Docker engine (Debian's docker.io; dockerd started here if none runs) and compose, as
#     `docker compose` or `docker-compose` (v1, Debian 12);
#  2. the base images the Dockerfile and compose file name: pulled, or where no registry is reachable,
#     local stand-ins built by standins.sh (said plainly in the output);
#  3. compose refuses to start without NIN_API_KEY; `up --build` with one, on a free port;
#  4. from the host, to 127.0.0.1 only: /health/ready 200; /predict with the shipped model; a tiny
#     training job on the built-in dataset (copied into the data volume), its epochs received over
#     SignalR through the published port by the JavaScript client; `restart api` keeps jobs and models;
#     `stop postgres` turns readiness 503 naming the job storage, `start postgres` brings 200 back;
#     the api runs as uid 1654 and its log has no GSS/Kerberos errors;
#  5. `down -v` at the end, also on failure or interruption; nothing of it is left running.
# Bounded: each step has a time limit, the whole run NIN_CONTAINER_TEST_TIMEOUT seconds (default 1500).
set -euo pipefail
HERE=$(cd -P -- "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")" && pwd)
REPO=$(cd -P -- "$HERE/../.." && pwd)
DATA=${NIN_TEST_DATA_DIR:-$(realpath -m -- "$REPO/../shared/datasets")}
LIMIT=${NIN_CONTAINER_TEST_TIMEOUT:-1500}

# shellcheck source=tools/containers/engine.sh
. "$HERE/engine.sh"
test_start "container test" "$LIMIT"

say "Docker engine"
ensure_docker || die "no Docker engine"
ensure_js_client
ensure_compose

say "base images"
"$HERE/standins.sh" mcr.microsoft.com/dotnet/sdk:10.0 mcr.microsoft.com/dotnet/aspnet:10.0 node:22-bookworm-slim postgres:17
for image in mcr.microsoft.com/dotnet/sdk:10.0 mcr.microsoft.com/dotnet/aspnet:10.0 node:22-bookworm-slim postgres:17; do
    if [[ $(docker image inspect -f '{{ index .Config.Labels "nin.standin" }}' "$image") == true ]]; then
        echo "NOTE: $image is a local STAND-IN (no registry reachable), not the official image"
    fi
done

# ------------------------------------------------------------------ stack

export COMPOSE_PROJECT_NAME=nin-ct-$$
port=$(free_port) || die "no free port"
export NIN_PORT=$port
BASE=http://127.0.0.1:$port
compose() { "${COMPOSE[@]}" "$@"; }
smoke() { timeout "${SMOKE_TIMEOUT:-300}" node "$HERE/smoke.mjs" "$BASE" "$NIN_API_KEY" "$@"; }

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if ((rc != 0)); then
        echo "---- api log (last 60 lines)" >&2
        compose logs --no-color --tail 60 api >&2 2>/dev/null || true
    fi
    echo "---- down -v"
    timeout 180 "${COMPOSE[@]}" down -v --remove-orphans --timeout 20 >/dev/null 2>&1 || true
    local left
    left=$(docker ps -aq --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME")
    [[ -z $left ]] || { docker rm -f $left >/dev/null 2>&1 || true; echo "removed leftover containers" >&2; }
    stop_docker
    kill "$WATCHDOG" 2>/dev/null || true
    echo "container test: $( ((rc == 0)) && echo passed || echo "FAILED (exit $rc)") in $((SECONDS - START))s"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "compose files: valid, and no start without an API key"
NIN_API_KEY=placeholder compose -f docker-compose.yml config -q
NIN_API_KEY=placeholder compose -f docker-compose.yml -f docker-compose.gpu.yml config -q
if out=$(env -u NIN_API_KEY "${COMPOSE[@]}" -f docker-compose.yml config 2>&1); then
    die "compose accepted docker-compose.yml without NIN_API_KEY"
fi
grep -q NIN_API_KEY <<<"$out" || die "compose refused without NIN_API_KEY but did not say so: $out"
echo "without NIN_API_KEY: refused ($(grep -m1 NIN_API_KEY <<<"$out"))"
NIN_API_KEY=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
export NIN_API_KEY

say "docker compose up --build (project $COMPOSE_PROJECT_NAME, port $port)"
timeout 900 "${COMPOSE[@]}" up -d --build
api=$(compose ps -q api)
[[ -n $api ]] || die "no api container"
smoke ready 200 240
uid=$(docker exec "$api" id -u)
[[ $uid == 1654 ]] || die "the api runs as uid $uid, expected 1654 (the image's app user)"
echo "api container $api runs as uid $uid"

say "/predict with the shipped model"
smoke predict "$DATA/fashion-mnist"

say "a tiny training job on the built-in dataset, followed over SignalR"
docker cp "$DATA/fashion-mnist" "$api:/var/lib/nin/data/" >/dev/null
SMOKE_TIMEOUT=660 smoke train | tee /tmp/nin-ct-train.$$
job=$(awk '/^JOB / { print $2 }' /tmp/nin-ct-train.$$)
rm -f /tmp/nin-ct-train.$$
[[ -n $job ]] || die "no job id from the training step"

say "restart api: jobs and models are kept"
timeout 120 "${COMPOSE[@]}" restart api
smoke ready 200 180
smoke kept "$job" container-smoke

say "stop postgres: readiness 503 naming the job storage; start: 200 again"
timeout 120 "${COMPOSE[@]}" stop postgres
body=$(smoke ready 503 90)
echo "$body"
grep -qi 'jobStorage' <<<"$body" || die "readiness 503 does not name the job storage: $body"
timeout 120 "${COMPOSE[@]}" start postgres
smoke ready 200 120

say "api log: no GSS/Kerberos errors"
if compose logs --no-color api 2>&1 | grep -i -E 'gssapi|krb5' ; then
    die "the api logged GSS/Kerberos errors (lines above)"
fi
echo "clean"
