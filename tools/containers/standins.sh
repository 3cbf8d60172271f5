#!/usr/bin/env bash
# Makes sure the base images that the Dockerfile and docker-compose.yml name exist locally:
#
#   mcr.microsoft.com/dotnet/sdk:10.0    mcr.microsoft.com/dotnet/aspnet:10.0
#   node:22-bookworm-slim                postgres:17
#   nginx:1.28                           redis:7            (docker-compose.scale.yml)
#
#   standins.sh [IMAGE...]     those images only (default: all of them)
#
# Each one is used as it is when present, else pulled; only where the pull fails (no container
# registry reachable, as on this project's CI machines) a local STAND-IN is built and tagged with
# exactly that name, so the project's own Dockerfile and compose files run unchanged:
#   - a Debian 13 root (debootstrap, minbase, cached) imported with `docker import`, plus the host's
#     CA bundle (trust what the host trusts);
#   - sdk: the host's .NET SDK; aspnet: the host's .NET and ASP.NET Core runtimes, user `app`
#     (uid 1654, APP_UID) and ASPNETCORE_HTTP_PORTS=8080 as in the official image;
#   - node: the host's Node.js and npm; postgres: Debian 13's PostgreSQL 17 with an entrypoint that
#     honours POSTGRES_USER / POSTGRES_PASSWORD / POSTGRES_DB;
#   - nginx: Debian 13's nginx (1.26) with the official image's nginx.conf (includes conf.d/*.conf, user
#     nginx, logs to stdout/stderr) in the foreground; redis: Debian 13's redis-server (8.0) with the
#     official entrypoint's behaviour (user redis, /data, every interface, protected mode off).
# Stand-ins carry the label nin.standin=true; `standins.sh --remove` deletes them. `standins.sh --base` and
# `--bare` print a Debian 13 image's tag: the stand-ins' base, and one with nothing beyond minbase.
# Needs root (debootstrap, docker). Builds use host networking (apt inside the postgres stand-in).
set -euo pipefail
HERE=$(cd -P -- "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")" && pwd)
CACHE=${NIN_IMAGE_ROOT_CACHE:-/var/cache/nin/image-root}
MIRROR=${NIN_DEBIAN_MIRROR:-http://deb.debian.org/debian}
BASE=nin-standin/debian:trixie

log() { printf 'standins: %s\n' "$*" >&2; }
die() { printf 'standins: error: %s\n' "$*" >&2; exit 1; }

declare -A STANDIN=(
    [mcr.microsoft.com/dotnet/sdk:10.0]=sdk
    [mcr.microsoft.com/dotnet/aspnet:10.0]=aspnet
    [node:22-bookworm-slim]=node
    [postgres:17]=postgres
    [nginx:1.28]=nginx
    [redis:7]=redis
)

have() { docker image inspect "$1" >/dev/null 2>&1; }
is_standin() { [[ $(docker image inspect -f '{{ index .Config.Labels "nin.standin" }}' "$1" 2>/dev/null) == true ]]; }

# The Debian 13 base: debootstrapped once into $CACHE, imported as $BASE.
base_image() {
    have "$BASE" && return 0
    if [[ ! -x $CACHE/usr/bin/env ]]; then
        command -v debootstrap >/dev/null 2>&1 || [[ -x /usr/sbin/debootstrap ]] ||
            { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap; } >&2
        log "debootstrap Debian 13 (minbase) into $CACHE (once, about a minute)"
        rm -rf --one-file-system -- "$CACHE.partial"
        mkdir -p -- "$(dirname -- "$CACHE")"
        unshare --mount --propagation private -- /usr/sbin/debootstrap --variant=minbase \
            --include=ca-certificates,libicu76,tzdata,libssl3t64,procps trixie "$CACHE.partial" "$MIRROR" \
            >"$CACHE.log" 2>&1 || { tail -n 20 "$CACHE.log" >&2; die "debootstrap failed"; }
        rm -rf -- "$CACHE.partial"/var/cache/apt/archives/*.deb "$CACHE.partial"/var/lib/apt/lists/*
        mv -T -- "$CACHE.partial" "$CACHE"
    fi
    local ca=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
    log "importing $CACHE as $BASE (with the host's CA bundle $ca)"
    tar -C "$CACHE" --exclude=./proc/* --exclude=./sys/* --exclude=./dev/* -c . |
        docker import -c 'CMD ["bash"]' -c 'LABEL nin.standin=true' - "$BASE.raw" >/dev/null
    local ctx
    ctx=$(mktemp -d)
    cp -- "$(readlink -f -- "$ca")" "$ctx/ca-certificates.crt"
    printf 'FROM %s\nCOPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt\nLABEL nin.standin=true\n' "$BASE.raw" >"$ctx/Dockerfile"
    docker build -q -t "$BASE" "$ctx" >/dev/null 2>"$ctx.err" || { cat "$ctx.err" >&2; die "building $BASE failed"; }
    rm -f -- "$ctx.err"
    docker image rm "$BASE.raw" >/dev/null
    rm -rf -- "$ctx"
}

dotnet_dir() { dirname -- "$(readlink -f -- "$(command -v dotnet)")"; }

build_standin() {
    local name=$1 kind=$2 ctx
    ctx=$(mktemp -d)
    cp -- "$HERE/standins/$kind.Dockerfile" "$ctx/Dockerfile"
    case $kind in
        sdk) cp -a -- "$(dotnet_dir)" "$ctx/dotnet" ;;
        aspnet)
            local d
            d=$(dotnet_dir)
            mkdir -p "$ctx/dotnet/shared"
            cp -a -- "$d/dotnet" "$d/host" "$ctx/dotnet/"
            cp -a -- "$d/shared/Microsoft.NETCore.App" "$d/shared/Microsoft.AspNetCore.App" "$ctx/dotnet/shared/"
            ;;
        node)
            command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || die "node and npm are needed on the host for the node stand-in"
            cp -- "$(readlink -f -- "$(command -v node)")" "$ctx/node"
            cp -a -- "$(dirname -- "$(dirname -- "$(readlink -f -- "$(command -v npm)")")")" "$ctx/npm"
            ;;
        postgres) cp -- "$HERE/standins/postgres-entrypoint.sh" "$ctx/" ;;
        nginx) cp -- "$HERE/standins/nginx.conf" "$HERE/standins/nginx-default.conf" "$ctx/" ;;
        redis) cp -- "$HERE/standins/redis-entrypoint.sh" "$ctx/" ;;
    esac
    log "building stand-in $name ($kind)"
    # Quiet unless it fails (the legacy builder warns about its own deprecation on every build).
    docker build -q --network host --label nin.standin=true -t "$name" "$ctx" >/dev/null 2>"$ctx.err" ||
        { cat "$ctx.err" >&2; rm -rf -- "$ctx" "$ctx.err"; die "building the $kind stand-in failed"; }
    rm -rf -- "$ctx" "$ctx.err"
}

# --base: only a bare Debian 13 image (debian:trixie when it can be had, else the stand-in); prints its tag.
if [[ ${1:-} == --base ]]; then
    if have debian:trixie || timeout 120 docker pull -q debian:trixie >/dev/null 2>&1; then
        echo debian:trixie
    else
        log "debian:trixie cannot be pulled: using the debootstrapped stand-in $BASE"
        base_image
        echo "$BASE"
    fi
    exit 0
fi

# --bare: a Debian 13 image with nothing beyond debootstrap's minbase (no ICU, tzdata, CA bundle or procps), for
# checking what the portable bundle needs of a host; debian:trixie (also bare) when it can be pulled. Prints its tag.
if [[ ${1:-} == --bare ]]; then
    if have debian:trixie || timeout 120 docker pull -q debian:trixie >/dev/null 2>&1; then
        echo debian:trixie
        exit 0
    fi
    BARE=nin-standin/debian:trixie-bare
    if ! have "$BARE"; then
        root=$CACHE-bare
        if [[ ! -x $root/usr/bin/env ]]; then
            log "debootstrap a bare Debian 13 (minbase, nothing added) into $root (once, about a minute)"
            rm -rf --one-file-system -- "$root.partial"
            unshare --mount --propagation private -- /usr/sbin/debootstrap --variant=minbase trixie "$root.partial" "$MIRROR" \
                >"$root.log" 2>&1 || { tail -n 20 "$root.log" >&2; die "debootstrap failed"; }
            rm -rf -- "$root.partial"/var/cache/apt/archives/*.deb "$root.partial"/var/lib/apt/lists/*
            mv -T -- "$root.partial" "$root"
        fi
        tar -C "$root" --exclude=./proc/* --exclude=./sys/* --exclude=./dev/* -c . |
            docker import -c 'CMD ["bash"]' -c 'LABEL nin.standin=true' - "$BARE" >/dev/null
    fi
    echo "$BARE"
    exit 0
fi

if [[ ${1:-} == --remove ]]; then
    docker image ls -q --filter label=nin.standin=true | sort -u | xargs -r docker image rm -f >/dev/null
    docker image rm -f "$BASE" nin-standin/debian:trixie-bare >/dev/null 2>&1 || true
    log "stand-in images removed"
    exit 0
fi

command -v docker >/dev/null 2>&1 || die "docker is not installed"
names=("$@")
((${#names[@]})) || names=("${!STANDIN[@]}")
for name in "${names[@]}"; do
    [[ -n ${STANDIN[$name]:-} ]] || die "no stand-in is known for $name (known: ${!STANDIN[*]})"
    if have "$name"; then
        if is_standin "$name"; then log "$name: local STAND-IN (built earlier)"; else log "$name: present"; fi
        continue
    fi
    if timeout 120 docker pull -q "$name" >/dev/null 2>&1; then
        log "$name: pulled"
        continue
    fi
    log "$name: cannot be pulled (no registry reachable): building a local STAND-IN"
    base_image
    build_standin "$name" "${STANDIN[$name]}"
done
