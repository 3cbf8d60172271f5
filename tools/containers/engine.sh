# shellcheck shell=bash
# Sourced by the container tests: their common start, a Docker engine and a compose command.
#   test_start NAME LIMIT  say/die in NAME's words, root and the built-in dataset checked, cwd the repository,
#                   and a watchdog that ends the script (so its cleanup runs) after LIMIT seconds
#   ensure_docker   start Debian's dockerd if none answers (installing docker.io as root if missing);
#                   stop_docker (call from the caller's cleanup) stops it again if this run started it
#   ensure_compose  COMPOSE=(docker compose) or (docker-compose), v1 on Debian 12
#   ensure_js_client  the JavaScript SignalR client the .mjs clients import (the dashboard's npm project)
STARTED_DOCKERD=

test_start() {
    TEST_NAME=$1
    START=$SECONDS
    say() { printf '\n---- [+%ds] %s\n' "$((SECONDS - START))" "$*"; }
    die() { printf '%s: FAILED: %s\n' "$TEST_NAME" "$*" >&2; exit 1; }
    [[ $EUID -eq 0 ]] || die "run as root (it starts dockerd and builds images)"
    [[ -d $DATA/fashion-mnist ]] || die "the built-in dataset is missing: $DATA/fashion-mnist (set NIN_TEST_DATA_DIR)"
    cd "$REPO"
    local limit=$2 self=$$
    ( trap 'kill "$nap" 2>/dev/null; exit 0' TERM; sleep "$limit" & nap=$!; wait "$nap" &&
        echo "$TEST_NAME: over ${limit}s, stopping" >&2 && kill -TERM "$self" ) 2>/dev/null &
    WATCHDOG=$!
}

engine_apt_install() {
    apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "$@" >/dev/null
}

ensure_docker() {
    if ! docker info >/dev/null 2>&1; then
        command -v dockerd >/dev/null 2>&1 || [[ -x /usr/sbin/dockerd ]] || { echo "installing docker.io"; engine_apt_install docker.io; }
        command -v docker >/dev/null 2>&1 || { echo "no docker client after installing docker.io" >&2; return 1; }
        PATH=$PATH:/usr/sbin dockerd >/var/log/nin-dockerd.log 2>&1 &
        STARTED_DOCKERD=$!
        local _
        for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
        docker info >/dev/null 2>&1 || { tail -n 20 /var/log/nin-dockerd.log >&2; echo "dockerd did not start" >&2; return 1; }
        echo "started dockerd (pid $STARTED_DOCKERD, log /var/log/nin-dockerd.log)"
    fi
    docker version --format 'engine {{.Server.Version}}, client {{.Client.Version}}'
}

stop_docker() {
    [[ -n $STARTED_DOCKERD ]] || return 0
    kill "$STARTED_DOCKERD" 2>/dev/null || true
    wait "$STARTED_DOCKERD" 2>/dev/null || true
    echo "stopped dockerd"
    STARTED_DOCKERD=
}

ensure_compose() {
    if docker compose version >/dev/null 2>&1; then
        COMPOSE=(docker compose)
    else
        command -v docker-compose >/dev/null 2>&1 || { echo "installing docker-compose"; engine_apt_install docker-compose; }
        COMPOSE=(docker-compose)
    fi
    echo "compose: ${COMPOSE[*]} ($("${COMPOSE[@]}" version --short 2>/dev/null || "${COMPOSE[@]}" version | head -n 1))"
}

# A free TCP port on 127.0.0.1.
free_port() {
    local p _
    for _ in $(seq 50); do
        p=$((20000 + RANDOM % 30000))
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return 0; }
    done
    return 1
}

# The .mjs clients import @microsoft/signalr from the dashboard's npm project; a script run alone on a fresh clone
# (no ./nin test before it) installs it here.
ensure_js_client() {
    [[ -d $REPO/Nin.Api/frontend/node_modules/@microsoft/signalr ]] && return 0
    say "npm ci in Nin.Api/frontend (for @microsoft/signalr)"
    (cd "$REPO/Nin.Api/frontend" && timeout 600 npm ci --no-audit --no-fund >/dev/null) || die "npm ci in Nin.Api/frontend failed"
}
