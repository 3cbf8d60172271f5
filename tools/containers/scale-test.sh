#!/usr/bin/env bash
# Scale-out test: docker-compose.scale.yml, unchanged, with two api replicas behind nginx and one training
# worker sharing PostgreSQL, Redis and the volumes; every client call goes through the load balancer
# (the published port on 127.0.0.1) unless it is about one replica.
#
#   tools/containers/scale-test.sh            (as root; CI runs it after tools/containers/test.sh)
#
#  1. Docker engine and compose (engine.sh); the six base images, local stand-ins where no registry is
#     reachable (standins.sh); compose config valid (also with the gpu profile), refused without NIN_API_KEY;
#  2. `up --build --scale api=2 --scale worker=1`, every container healthy, the worker serving no API routes,
#     REST through the lb reaching both replicas (their own /metrics);
#  3. a tiny training job posted through the lb and followed by the JavaScript SignalR client through the lb:
#     every EpochCompleted once and JobFinished (the worker's events reach the client's replica over Redis);
#  4. its model activated through the lb, then /predict on EACH api replica (its container address)
#     answers with that version;
#  5. a second job cancelled through the lb (DELETE /train/{id}) ends Cancelled on the worker;
#  6. a third job: the worker is killed (SIGKILL) mid-epoch, a fresh worker container is started, and the job
#     finishes from its checkpoint (resumedAfterEpoch, finished epochs not rerun, each epoch's event once over
#     SignalR across the kill); Hangfire__InvisibilityTimeout is 20 s here (NIN_INVISIBILITY_TIMEOUT);
#     also: deploy/k8s checked client-side (tools/deploy/validate-k8s.sh), and the KServe ServingRuntime's
#     container run as KServe would (command, env, emptyDirs, the model at /mnt/models) answering v2 infer;
#  7. timings printed; `down -v` at the end, also on failure or interruption.
# Bounded: each step has a time limit, the whole run NIN_SCALE_TEST_TIMEOUT seconds (default 2400).
set -euo pipefail
HERE=$(cd -P -- "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")" && pwd)
REPO=$(cd -P -- "$HERE/../.." && pwd)
DATA=${NIN_TEST_DATA_DIR:-$(realpath -m -- "$REPO/../shared/datasets")}
LIMIT=${NIN_SCALE_TEST_TIMEOUT:-2400}
FILE=docker-compose.scale.yml

# shellcheck source=tools/containers/engine.sh
. "$HERE/engine.sh"
test_start "scale test" "$LIMIT"

TIMINGS=()
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }
timing() { TIMINGS+=("$(printf '%-60s %7s s' "$1" "$2")"); echo "TIME $1: $2 s"; }

say "Docker engine"
ensure_docker || die "no Docker engine"
ensure_compose

say "Kubernetes manifests (deploy/k8s), checked client-side"
"$REPO/tools/deploy/validate-k8s.sh" | tail -n 2

say "base images"
images=(mcr.microsoft.com/dotnet/sdk:10.0 mcr.microsoft.com/dotnet/aspnet:10.0 node:22-bookworm-slim postgres:17 nginx:1.28 redis:7)
"$HERE/standins.sh" "${images[@]}"
for image in "${images[@]}"; do
    if [[ $(docker image inspect -f '{{ index .Config.Labels "nin.standin" }}' "$image") == true ]]; then
        echo "NOTE: $image is a local STAND-IN (no registry reachable), not the official image"
    fi
done

ensure_js_client

# ------------------------------------------------------------------ stack

export COMPOSE_PROJECT_NAME=nin-st-$$
port=$(free_port) || die "no free port"
export NIN_PORT=$port
export NIN_INVISIBILITY_TIMEOUT=00:00:20
LB=http://127.0.0.1:$port
compose() { "${COMPOSE[@]}" -f "$FILE" "$@"; }
client() { local base=$1; shift; timeout "${CLIENT_TIMEOUT:-300}" node "$HERE/scale.mjs" "$base" "$NIN_API_KEY" "$@"; }
smoke() { timeout 300 node "$HERE/smoke.mjs" "$LB" "$NIN_API_KEY" "$@"; }
ip_of() { docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}' "$1" | awk '{ print $1 }'; }
TMP=$(mktemp -d)

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if ((rc != 0)); then
        for s in api worker lb; do
            echo "---- $s log (last 40 lines)" >&2
            compose logs --no-color --tail 40 "$s" >&2 2>/dev/null || true
        done
    fi
    echo "---- down -v"
    timeout 180 "${COMPOSE[@]}" -f "$FILE" down -v --remove-orphans --timeout 20 >/dev/null 2>&1 || true
    local left
    left=$(docker ps -aq --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME")
    [[ -z $left ]] || { docker rm -fv $left >/dev/null 2>&1 || true; echo "removed leftover containers" >&2; }
    rm -rf -- "$TMP"
    stop_docker
    kill "$WATCHDOG" 2>/dev/null || true
    if ((${#TIMINGS[@]})); then
        echo "---- timings (2 api replicas, 1 worker, PostgreSQL, Redis and nginx sharing this machine's cores)"
        printf '%s\n' "${TIMINGS[@]}"
    fi
    echo "scale test: $( ((rc == 0)) && echo passed || echo "FAILED (exit $rc)") in $((SECONDS - START))s"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "$FILE: valid (also with the gpu profile), and no start without an API key"
NIN_API_KEY=placeholder compose config -q
NIN_API_KEY=placeholder compose --profile gpu config -q
if out=$(env -u NIN_API_KEY "${COMPOSE[@]}" -f "$FILE" config 2>&1); then
    die "compose accepted $FILE without NIN_API_KEY"
fi
grep -q NIN_API_KEY <<<"$out" || die "compose refused without NIN_API_KEY but did not say so: $out"
echo "without NIN_API_KEY: refused"
NIN_API_KEY=$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')
export NIN_API_KEY

say "up --build --scale api=2 --scale worker=1 (project $COMPOSE_PROJECT_NAME, lb on port $port)"
t=$EPOCHREALTIME
timeout 1200 "${COMPOSE[@]}" -f "$FILE" up -d --build --scale api=2 --scale worker=1
timing "build and up (image cached or not)" $(since "$t")
t=$EPOCHREALTIME
wait_healthy() { # SERVICE COUNT SECONDS: COUNT containers of SERVICE, all healthy
    local service=$1 count=$2 until=$((SECONDS + $3)) ids states
    while ((SECONDS < until)); do
        ids=$(compose ps -q "$service")
        states=$(for id in $ids; do docker inspect -f '{{.State.Health.Status}}' "$id"; done | sort | uniq -c | xargs)
        if [[ $(wc -w <<<"$ids") -eq $count && $states == "$count healthy" ]]; then
            echo "$service: $count healthy"
            return 0
        fi
        sleep 2
    done
    die "$service: not $count healthy containers within $3s ($states)"
}
wait_healthy api 2 300
wait_healthy worker 1 300
wait_healthy lb 1 120
smoke ready 200 120
timing "all containers healthy after up" $(since "$t")
mapfile -t apis < <(compose ps -q api)
worker=$(compose ps -q worker)
api_urls=()
for id in "${apis[@]}"; do api_urls+=("http://$(ip_of "$id"):8080"); done
echo "api replicas: ${api_urls[*]}; worker: http://$(ip_of "$worker"):8080"
client "http://$(ip_of "$worker"):8080" route /health/ready 200
client "http://$(ip_of "$worker"):8080" route /models 404
client "${api_urls[0]}" route /models 200
client "$LB" spread 20 "${api_urls[@]}"

docker cp "$DATA/fashion-mnist" "${apis[0]}:/var/lib/nin/data/" >/dev/null
tiny='"dataset":"fashion-mnist","batchSize":32,"imageSize":67,"maxTestImages":64,"seed":3'

say "1: a tiny job through the lb, followed over SignalR through the lb"
t=$EPOCHREALTIME
CLIENT_TIMEOUT=700 client "$LB" watch "{$tiny,\"epochs\":2,\"maxTrainImages\":256,\"modelName\":\"scale-smoke\"}" 600 | tee "$TMP/job1"
timing "job 1 (2 epochs x 256 images, 67 px): POST to JobFinished" $(since "$t")
read -r _ model version < <(grep '^MODEL ' "$TMP/job1")
[[ -n $version ]] || die "no model version from job 1"

say "2: activate $model v$version through the lb; /predict on each api replica serves it"
t=$EPOCHREALTIME
client "$LB" activate "$model" "$version" "$DATA/fashion-mnist" 60 "${api_urls[@]}"
timing "activation to both replicas serving it (incl. node start)" $(since "$t")

say "2b: the KServe runtime (deploy/k8s/kserve/servingruntime.yaml) serving $model v$version over the v2 protocol"
# Its container as KServe would run it: the image, command, args, environment, user and emptyDirs from the
# YAML, the InferenceService's storage (the version's folder, copied out of the models volume) read-only at
# /mnt/models. Only the image name differs (the one built here).
docker cp "${apis[0]}:/var/lib/nin/models/$model/$version" "$TMP/kserve-model" >/dev/null
chmod -R a+rX "$TMP/kserve-model"
runtime_args=$(NIN_API_KEY=$NIN_API_KEY python3 - "$REPO/deploy/k8s/kserve/servingruntime.yaml" "$TMP/kserve-model" <<'PY'
import os, shlex, sys, yaml
doc = next(d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d.get("kind") == "ServingRuntime")
c = doc["spec"]["containers"][0]
out = ["--user", str(c.get("securityContext", {}).get("runAsUser", 1654)), "-v", f"{sys.argv[2]}:/mnt/models:ro"]
empty = {v["name"] for v in doc["spec"].get("volumes", []) if "emptyDir" in v}
for m in c.get("volumeMounts", []):
    if m["name"] in empty:  # an emptyDir is a fresh host folder, writable by any user (0777)
        folder = os.path.join(os.path.dirname(sys.argv[2]), "emptydir-" + m["name"])
        os.makedirs(folder)
        os.chmod(folder, 0o1777)
        out += ["-v", f"{folder}:{m['mountPath']}"]
for e in c.get("env", []):
    value = os.environ["NIN_API_KEY"] if "valueFrom" in e else e["value"]
    out += ["-e", f"{e['name']}={value}"]
command = c.get("command", [])
out += ["--entrypoint", command[0], "nin-api:cpu"] + command[1:] + c.get("args", [])
print(" ".join(shlex.quote(a) for a in out))
PY
)
t=$EPOCHREALTIME
eval "kserve=\$(docker run -d --label com.docker.compose.project=$COMPOSE_PROJECT_NAME $runtime_args)"
client "http://$(ip_of "$kserve"):8080" kserve "$model" "$DATA/fashion-mnist"
timing "KServe runtime container: start to v2 ready and infer" $(since "$t")
docker rm -fv "$kserve" >/dev/null

say "3: a second job cancelled through the lb"
job2=$(client "$LB" start "{$tiny,\"epochs\":20,\"maxTrainImages\":512,\"modelName\":\"scale-cancel\"}" | awk '/^JOB / { print $2 }')
client "$LB" wait "$job2" running 300 >/dev/null
t=$EPOCHREALTIME
client "$LB" cancel "$job2"
client "$LB" wait "$job2" status:Cancelled 60 >/dev/null
timing "DELETE through the lb to Cancelled (job on the worker)" $(since "$t")

say "4: a third job; the worker is killed mid-epoch, a fresh one finishes it from its checkpoint"
job3=$(client "$LB" start "{$tiny,\"epochs\":4,\"maxTrainImages\":1024,\"modelName\":\"scale-resume\"}" | awk '/^JOB / { print $2 }')
CLIENT_TIMEOUT=700 client "$LB" watch "$job3" 600 >"$TMP/watch3" 2>&1 &
watcher=$!
client "$LB" wait "$job3" epoch:1 300 >"$TMP/before-kill.json"
docker kill -s KILL "$worker" >/dev/null
t=$EPOCHREALTIME
echo "killed worker ${worker:0:12} (SIGKILL) with epoch 1 done and epoch 2 under way ($(python3 -c 'import json, sys; p = json.load(open(sys.argv[1]))["progress"]; print("batch %d/%d" % (p["batch"], p["batches"]))' "$TMP/before-kill.json"))"
docker rm -f "$worker" >/dev/null
timeout 120 "${COMPOSE[@]}" -f "$FILE" up -d --no-deps --scale api=2 --scale worker=1 worker
worker=$(compose ps -q worker)
wait_healthy worker 1 300
timing "kill to a fresh worker healthy" $(since "$t")
client "$LB" wait "$job3" resumed 300 >/dev/null
timing "kill to the job resumed (InvisibilityTimeout 20 s)" $(since "$t")
client "$LB" wait "$job3" status:Succeeded 600 >/dev/null
timing "kill to the job Succeeded" $(since "$t")
client "$LB" resumed "$job3" "$TMP/before-kill.json"
wait "$watcher" || { cat "$TMP/watch3"; die "the SignalR client following job 3 across the kill failed"; }
cat "$TMP/watch3"
echo "the fresh worker's log for job $job3:"
compose logs --no-color worker 2>&1 | grep -F "Job $job3" | sed 's/^[^|]*| //' | tee "$TMP/worker3"
[[ $(grep -c 'training on' "$TMP/worker3") -eq 1 && $(grep -c 'resuming after epoch 1' "$TMP/worker3") -eq 1 ]] ||
    die "the fresh worker did not run job 3 exactly once, resuming after epoch 1 (log above)"

say "logs: no GSS/Kerberos errors"
if compose logs --no-color api worker 2>&1 | grep -i -E 'gssapi|krb5'; then
    die "a Nin container logged GSS/Kerberos errors (lines above)"
fi
echo "clean"
