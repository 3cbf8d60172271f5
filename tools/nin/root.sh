# shellcheck shell=bash
# Sourced by ./nin: where dotnet runs. TorchSharp 0.107's native libLibTorchSharp.so needs a
# libstdc++ with GLIBCXX_3.4.32 (GCC 13+); Debian 12 ships at most 3.4.30. On such hosts
# commands run inside a cached Debian 13 (trixie) root, in a private mount namespace: the bind
# mounts exist only for the lifetime of the process and vanish with it (even after kill -9).
# Elsewhere (Ubuntu 24.04, Debian 13, the .NET 10 container images) dotnet runs directly.
#
# Reads: REPO, NIN_ROOTFS, NIN_USE_ROOT, NIN_DEBIAN_MIRROR, NIN_LIBTORCH_DIR, NIN_QUIET.
# Sets:  USE_ROOT, WHY, ROOTFS, DOTNET_EXE, DOTNET_DIR; run_exec / run_child run a command there.

ROOTFS=$(realpath -m -- "${NIN_ROOTFS:-/var/cache/nin/trixie-root}")
MIRROR=${NIN_DEBIAN_MIRROR:-http://deb.debian.org/debian}
SUITE=trixie
# libicu76: .NET globalization; ca-certificates: HTTPS to NuGet; tzdata: TimeZoneInfo.
ROOT_PACKAGES=(libicu76 ca-certificates tzdata)
NEEDED_GLIBCXX=GLIBCXX_3.4.32

# ---------------------------------------------------------------- detection

# The host's libstdc++.so.6 for this architecture: ldconfig's cache first, then
# the usual multiarch locations.
host_libstdcxx() {
    local tag=
    case $(uname -m) in
        x86_64) tag='x86-64' ;;
        aarch64) tag='AArch64' ;;
    esac
    local p
    if command -v ldconfig >/dev/null 2>&1 || [[ -x /sbin/ldconfig ]]; then
        while read -r p; do
            [[ -f $p ]] && { printf '%s\n' "$p"; return 0; }
        done < <(PATH=$PATH:/sbin:/usr/sbin ldconfig -p 2>/dev/null |
            awk -v tag="$tag" '$1 == "libstdc++.so.6" && (tag == "" || index($0, tag)) { print $NF }')
    fi
    for p in /usr/lib/"$(uname -m)"-linux-gnu/libstdc++.so.6 /usr/lib64/libstdc++.so.6 \
        /lib64/libstdc++.so.6 /usr/lib/libstdc++.so.6; do
        [[ -f $p ]] && { printf '%s\n' "$p"; return 0; }
    done
    return 1
}

# Highest GLIBCXX_3.4.x a libstdc++ provides (for messages only).
glibcxx_max() { grep -ao 'GLIBCXX_3\.4\.[0-9]*' "$1" 2>/dev/null | sort -uV | tail -n 1; }

has_needed_glibcxx() { [[ -f $1 ]] && grep -qa "$NEEDED_GLIBCXX" "$1"; }

# shellcheck source=/dev/null
host_os() { (. /etc/os-release 2>/dev/null && printf '%s\n' "${PRETTY_NAME:-unknown}") || echo unknown; }

# Decide once: USE_ROOT=1 means run inside the Debian 13 root.
decide_mode() {
    HOST_LIBSTDCXX=$(host_libstdcxx || true)
    case ${NIN_USE_ROOT:-auto} in
        1 | yes | true) USE_ROOT=1 WHY="NIN_USE_ROOT=${NIN_USE_ROOT}" ;;
        0 | no | false) USE_ROOT=0 WHY="NIN_USE_ROOT=${NIN_USE_ROOT}" ;;
        auto | '')
            if [[ -n $HOST_LIBSTDCXX ]] && has_needed_glibcxx "$HOST_LIBSTDCXX"; then
                USE_ROOT=0 WHY="host libstdc++ has $NEEDED_GLIBCXX"
            else
                USE_ROOT=1
                WHY="host libstdc++ lacks $NEEDED_GLIBCXX ($(host_os))"
            fi
            ;;
        *) die "NIN_USE_ROOT must be 1, 0 or unset (got '${NIN_USE_ROOT}')" ;;
    esac
}

# The dotnet executable and the folder it lives in (bound at the same path in the root).
find_dotnet() {
    local c
    for c in "$(command -v dotnet 2>/dev/null || true)" "${DOTNET_ROOT:+$DOTNET_ROOT/dotnet}" \
        "${HOME:-/root}/.dotnet/dotnet" /usr/share/dotnet/dotnet /usr/lib/dotnet/dotnet; do
        [[ -n $c && -x $c ]] || continue
        DOTNET_EXE=$(readlink -f -- "$c")
        DOTNET_DIR=$(dirname -- "$DOTNET_EXE")
        return 0
    done
    die "dotnet not found: install the .NET 10 SDK (https://dot.net) and put dotnet on PATH (or set DOTNET_ROOT)"
}

# --------------------------------------------------------------- the root

root_libstdcxx() {
    local f
    for f in "${1:-$ROOTFS}"/usr/lib/*-linux-gnu/libstdc++.so.6; do
        [[ -f $f ]] && { printf '%s\n' "$f"; return 0; }
    done
    return 1
}

# A usable root (default $ROOTFS): it has env (we chroot into it) and a new enough libstdc++.
root_ok() {
    local dir=${1:-$ROOTFS} f
    [[ -x $dir/usr/bin/env ]] && f=$(root_libstdcxx "$dir") && has_needed_glibcxx "$f"
}

apt_install() {
    say "installing $* with apt-get"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 update -q >&2 ||
        die "apt-get update failed (network?)"
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -q --no-install-recommends "$@" >&2 ||
        die "apt-get install $* failed"
}

# apt_install without letting the packages' maintainer scripts start services (Debian's
# redis-server would start a system-wide server on port 6379): while apt runs, a policy-rc.d that
# answers 101 ("action forbidden"), which invoke-rc.d and deb-systemd-invoke honour; removed
# afterwards, also when apt fails or is interrupted. A policy-rc.d already there (Docker images
# ship one) is left alone: it decides. The service stays enabled for the next boot.
apt_install_no_autostart() {
    local policy=/usr/sbin/policy-rc.d
    if [[ -e $policy ]]; then
        apt_install "$@"
        return 0
    fi
    (
        trap 'rm -f -- "$policy"' EXIT
        trap 'exit 130' INT
        trap 'exit 143' TERM HUP
        printf '#!/bin/sh\n# made by nin while installing %s; removed when apt-get is done\nexit 101\n' "$*" >"$policy"
        chmod 755 "$policy"
        apt_install "$@"
    ) || exit 1
}

# Create the root once. It is built in a temp dir beside the target and moved
# into place only when complete, so an interrupted run never leaves a half root;
# a lock file serialises concurrent first runs.
# The exact command that prepares this machine as root: sudo drops the environment, so the
# settings that change what prepare does are spelled out.
sudo_prepare() {
    local v env=()
    for v in NIN_ROOTFS NIN_USE_ROOT NIN_DEBIAN_MIRROR NIN_CHROMIUM; do
        [[ -n ${!v:-} ]] && env+=("$v=$(printf '%q' "${!v}")")
    done
    printf 'sudo %s%s prepare\n' "${env[*]:+${env[*]} }" "$REPO/nin"
}

create_root() {
    if [[ $EUID -ne 0 ]]; then
        die "this host's libstdc++ lacks $NEEDED_GLIBCXX (TorchSharp needs GCC 13's libstdc++), so nin runs
     dotnet inside a Debian 13 root at $ROOTFS, which does not exist yet and needs root to
     create (debootstrap, ~1 minute, once). Run once as root:
       $(sudo_prepare)
     or use a host with GCC 13's libstdc++ (Ubuntu 24.04, Debian 13) or the .NET 10 Docker image."
    fi
    if ! command -v debootstrap >/dev/null 2>&1 && [[ ! -x /usr/sbin/debootstrap ]]; then
        command -v apt-get >/dev/null 2>&1 ||
            die "debootstrap is needed to create $ROOTFS and apt-get is not available to install it"
        apt_install debootstrap
    fi
    local parent
    parent=$(dirname -- "$ROOTFS")
    mkdir -p -- "$parent"
    exec 9>"$ROOTFS.lock"
    flock 9
    if root_ok; then exec 9>&-; return 0; fi # another nin made it while we waited
    [[ -e $ROOTFS ]] && die "$ROOTFS exists but is not a usable Debian 13 root; remove it (rm -rf --one-file-system $ROOTFS) and retry"
    # Leftovers of interrupted creations; we hold the lock, so nobody is using them.
    rm -rf --one-file-system -- "$ROOTFS".partial.* 2>/dev/null || true
    local tmp log includes
    tmp=$(mktemp -d -- "$ROOTFS.partial.XXXXXX")
    chmod 755 "$tmp" # mktemp makes it 0700; as the root's / it must be traversable by non-root users
    log=$tmp.log
    # shellcheck disable=SC2064 # expand now: tmp is local
    trap "rm -rf --one-file-system -- '$tmp' '$log'" EXIT
    includes=$(IFS=,; echo "${ROOT_PACKAGES[*]}")
    say "creating Debian 13 root at $ROOTFS with debootstrap from $MIRROR (once, ~1 minute)"
    # debootstrap mounts /proc and /sys inside the target; in a private mount
    # namespace those mounts cannot outlive it, even if it is killed.
    if ! unshare --mount --propagation private -- \
        debootstrap --variant=minbase --include="$includes" "$SUITE" "$tmp" "$MIRROR" >"$log" 2>&1; then
        tail -n 25 "$log" >&2 || true
        die "debootstrap $SUITE from $MIRROR failed (network or mirror?); full log above (last lines). Set NIN_DEBIAN_MIRROR to use another mirror."
    fi
    rm -f -- "$tmp"/var/cache/apt/archives/*.deb
    # Mount targets for the per-run binds of the host's resolver config.
    [[ -e $tmp/etc/hosts ]] || : >"$tmp/etc/hosts"
    [[ -e $tmp/etc/resolv.conf ]] || : >"$tmp/etc/resolv.conf"
    {
        echo "# Debian root made by nin for TorchSharp (needs $NEEDED_GLIBCXX)"
        echo "created=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
        echo "suite=$SUITE"
        echo "variant=minbase"
        echo "mirror=$MIRROR"
        echo "packages=${ROOT_PACKAGES[*]}"
        echo "host=$(host_os)"
    } >"$tmp/.nin-root"
    root_ok "$tmp" || die "debootstrap finished but $tmp has no libstdc++ with $NEEDED_GLIBCXX"
    mv -T -- "$tmp" "$ROOTFS"
    rm -f -- "$log"
    trap - EXIT
    exec 9>&-
    CREATED=1
    say "Debian 13 root ready at $ROOTFS"
}

ensure_root() {
    root_ok || create_root "$@"
}

# ----------------------------------------------------------------- binds

BINDS=()
# Queue PATH for binding at the same path inside the root (FORCE=1: even if the
# root has its own content there, e.g. /tmp or /root).
add_bind() {
    local p=$1 force=${2:-0}
    [[ $p == /* && -e $p ]] || return 0
    p=$(realpath -s -m -- "$p") # normalise ./ and // but keep the user's spelling
    [[ $p == / ]] && return 0
    # Through a symlink (e.g. ../shared -> /data/shared) the target must be visible too.
    local real
    real=$(realpath -e -- "$p")
    [[ $real != "$p" ]] && add_bind "$real" "$force"
    local t=$ROOTFS$p
    # A symlink inside the root (e.g. /var/run -> /run) would make the mount land
    # elsewhere, possibly on the host; skip such paths.
    if [[ $(realpath -m -- "$t") != "$t" ]]; then
        say "warning: not binding $p: it crosses a symlink inside the Debian root"
        return 0
    fi
    # Never hide files the root itself ships (e.g. NIN_X_DIR=/usr/lib).
    if [[ $force != 1 ]] && [[ -e $t ]] && [[ ! -d $t || -n $(find "$t" -mindepth 1 ! -type d -print -quit 2>/dev/null) ]]; then
        say "warning: not binding $p: it would hide the Debian root's own files"
        return 0
    fi
    BINDS+=("$p")
}

collect_binds() {
    local v val
    BINDS=()
    add_bind /proc 1
    add_bind /sys 1
    add_bind /dev 1 # includes /dev/shm, /dev/pts
    add_bind /tmp 1 # temp files and test sockets shared with the host
    [[ -n ${TMPDIR:-} ]] && add_bind "$TMPDIR"
    add_bind "$DOTNET_DIR"
    [[ -n ${DOTNET_ROOT:-} ]] && add_bind "$DOTNET_ROOT"
    # HOME holds ~/.nuget/packages, NuGet.Config, ~/.dotnet (first-run state, tools).
    [[ -n ${HOME:-} && $HOME != / ]] && add_bind "$HOME" 1
    for v in NUGET_PACKAGES NUGET_HTTP_CACHE_PATH NUGET_PLUGINS_CACHE_PATH DOTNET_CLI_HOME; do
        [[ -n ${!v:-} ]] && add_bind "${!v}"
    done
    add_bind /opt/nuget/packages # fallback package folder on dev machines
    add_bind "$REPO"
    add_bind "$(dirname -- "$REPO")/shared" # CI puts datasets there
    add_bind "$(pwd -P)"                    # the caller's cwd
    # Paths handed to the app through NIN_* variables (data, models, libtorch...).
    while read -r v; do
        case $v in NIN_ROOTFS | NIN_USE_ROOT | NIN_DEBIAN_MIRROR | NIN_QUIET) continue ;; esac
        val=${!v}
        [[ $val == /* ]] || continue
        if [[ ! -e $val && $v == *_DIR ]]; then
            mkdir -p -- "$val" || die "cannot create $v=$val"
        fi
        if [[ -d $val ]]; then
            add_bind "$val"
        elif [[ -e $val ]]; then
            add_bind "$(dirname -- "$val")"
        fi
    done < <(compgen -e | grep '^NIN_' || true)
    # Parents first; drop paths already covered by a parent bind.
    local sorted=() p q covered
    while IFS= read -r p; do
        covered=0
        for q in "${sorted[@]}"; do
            [[ $p == "$q" || $p == "$q"/* ]] && { covered=1; break; }
        done
        ((covered)) || sorted+=("$p")
    done < <(printf '%s\n' "${BINDS[@]}" | sort -u)
    BINDS=("${sorted[@]}")
}

# --------------------------------------------------------------- running

# Variables dotnet should see in both modes.
setup_env() {
    export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
    export DOTNET_ROOT=${DOTNET_ROOT:-$DOTNET_DIR}
    if [[ -n ${NIN_LIBTORCH_DIR:-} ]]; then
        [[ -d $NIN_LIBTORCH_DIR ]] || die "NIN_LIBTORCH_DIR=$NIN_LIBTORCH_DIR is not a directory"
        export LD_LIBRARY_PATH="$NIN_LIBTORCH_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    fi
}

# Runs inside the new mount namespace: bind the queued paths into the root and
# exec chroot. Args: ROOT CWD CA_BUNDLE BIND... -- COMMAND...
# shellcheck disable=SC2016 # expanded by the inner bash
INNER='set -euo pipefail
root=$1 cwd=$2 ca=$3; shift 3
while [[ $1 != -- ]]; do
    src=$1 dst=$root$1; shift
    if [[ -d $src ]]; then
        [[ -d $dst ]] || mkdir -p -- "$dst" 2>/dev/null
    elif [[ ! -e $dst ]]; then
        mkdir -p -- "${dst%/*}" 2>/dev/null && : >"$dst" 2>/dev/null
    fi || { echo "nin: error: cannot create mount point $dst (run once as root to create it)" >&2; exit 1; }
    mount --rbind "$src" "$dst"
done
shift
for f in /etc/resolv.conf /etc/hosts; do # same name resolution as the host (NuGet restore)
    if [[ -e $f && -e $root$f ]]; then mount --bind "$(readlink -f -- "$f")" "$root$f"; fi
done
# Trust what the host trusts (corporate or egress-proxy CAs), not only the Debian list.
ca_dst=$root/etc/ssl/certs/ca-certificates.crt
if [[ -n $ca && -f $ca_dst ]]; then mount --bind -o ro "$ca" "$ca_dst" 2>/dev/null || mount --bind "$ca" "$ca_dst"; fi
exec chroot "$root" "$@"'

# The host's CA bundle, if we can find one.
host_ca_bundle() {
    local f
    for f in "${SSL_CERT_FILE:-}" /etc/ssl/certs/ca-certificates.crt /etc/pki/tls/certs/ca-bundle.crt \
        /etc/ssl/ca-bundle.pem /etc/ssl/cert.pem; do
        [[ -n $f && -f $f ]] && { readlink -f -- "$f"; return 0; }
    done
    return 0
}

# Build the argv that runs COMMAND... in the environment, into RUN.
# cwd: caller's cwd (or $RUN_CWD).
prepare_run() {
    local cwd=${RUN_CWD:-$(pwd -P)}
    setup_env
    if ((USE_ROOT == 0)); then
        export PATH="$DOTNET_DIR:$PATH"
        RUN=(env -C "$cwd" "$@")
        return 0
    fi
    if [[ ${NIN_QUIET:-0} != 1 && -z ${NOTICE_DONE:-} ]]; then
        say "$WHY; running inside Debian 13 root at $ROOTFS (see docs/hosts.md)"
        NOTICE_DONE=1
    fi
    collect_binds
    [[ -e $ROOTFS/etc/hosts ]] || { [[ $EUID -eq 0 ]] && : >"$ROOTFS/etc/hosts"; } || true
    local ns=(unshare --mount --propagation private)
    if [[ $EUID -ne 0 ]]; then
        # Rootless: a user namespace where we are root, if the kernel allows it.
        unshare --user --map-root-user --mount true 2>/dev/null ||
            die "running inside $ROOTFS needs root or unprivileged user namespaces (kernel.unprivileged_userns_clone / user.max_user_namespaces); run as root (sudo ./nin ...) or use a host with GCC 13's libstdc++"
        ns=(unshare --user --map-root-user --mount --propagation private)
    fi
    local inner_path="$DOTNET_DIR:${HOME:-/root}/.dotnet/tools:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    RUN=("${ns[@]}" -- bash -c "$INNER" nin-root "$ROOTFS" "$cwd" "$(host_ca_bundle)" "${BINDS[@]}" --
        /usr/bin/env -C "$cwd" PATH="$inner_path" "$@")
}

# Replace this process by COMMAND in the environment (signals go straight to it).
run_exec() {
    prepare_run "$@"
    exec "${RUN[@]}"
}

# Run COMMAND as a child and wait; SIGTERM/SIGINT/SIGHUP are forwarded so
# stopping ./nin mid-build stops the build too.
run_child() {
    prepare_run "$@"
    local pid rc=0
    "${RUN[@]}" &
    pid=$!
    trap 'kill -TERM "$pid" 2>/dev/null || true' TERM INT HUP
    wait "$pid" || rc=$?
    while kill -0 "$pid" 2>/dev/null; do wait "$pid" || rc=$?; done # woken by a signal: wait again
    trap - TERM INT HUP
    return "$rc"
}

