# shellcheck shell=bash
# Sourced by ./nin: what `./nin test` needs besides dotnet, provided by nin itself so that a
# fresh clone passes with nothing installed by hand:
#   - the dashboard's front-end bundle (npm, on the host: the Debian 13 root has no node);
#   - Chromium where the tests run (inside the Debian 13 root when one is used), for Playwright;
#   - a throwaway PostgreSQL cluster on a free loopback port (initdb in a temporary folder,
#     stopped and removed when the tests end, also on failure and Ctrl-C), unless
#     NIN_TEST_POSTGRES names a server to use instead;
#   - a throwaway Redis server (Debian's redis-server, on the host like PostgreSQL) on a free
#     loopback port, without persistence, in its own temporary folder, stopped and removed the
#     same way, unless NIN_TEST_REDIS (host:port) names a server to use instead.
# The tests run in the host's network namespace (also inside the Debian 13 root), so servers on
# the host's 127.0.0.1 are reachable from them.
# As root, missing packages are installed with apt; otherwise nin stops before building and
# prints the one command that installs them (`sudo ./nin prepare`).
#
# Reads: REPO, USE_ROOT, ROOTFS, DOTNET_EXE (root.sh).
# Exports NIN_TEST_POSTGRES, NIN_TEST_REDIS, NIN_CHROMIUM.

CHROMIUM_PACKAGES=(chromium fonts-dejavu-core)
# Node.js where the tests run (the Debian 13 root has none): the gRPC tests run a Node client (tools/grpc-client).
NODE_PACKAGES=(nodejs)
PG_RUN_DIR=
REDIS_RUN_DIR=

# ------------------------------------------------------------------ front end

# The Debian 13 root has no Node.js: bundle the dashboard's front end on the host first
# (MSBuild's own target, incremental), so the build inside finds it up to date. Natively
# the build runs the same target itself.
build_frontend_on_host() {
    ((USE_ROOT)) || return 0
    [[ -f $REPO/Nin.Api/frontend/package.json ]] || return 0
    command -v npm >/dev/null 2>&1 || { say "warning: npm not found on the host; the dashboard bundle cannot be built"; return 0; }
    "$DOTNET_EXE" msbuild "$REPO/Nin.Api/Nin.Api.csproj" -t:NinFrontendBuild -nologo -v:minimal >&2 ||
        die "building the dashboard's front end (npm) failed"
}

# --------------------------------------------------------- the Node gRPC client

# The non-.NET gRPC client the tests run (tools/grpc-client: @grpc/grpc-js, @grpc/proto-loader) gets its packages on
# the host, like the dashboard's; the tests run it with the node of the environment they run in.
install_grpc_client_packages() {
    local dir=$REPO/tools/grpc-client
    [[ -f $dir/package-lock.json ]] || return 0
    command -v npm >/dev/null 2>&1 || { say "warning: npm not found on the host; the gRPC client's packages cannot be installed"; return 0; }
    if [[ ! -f $dir/node_modules/.package-lock.json || $dir/package-lock.json -nt $dir/node_modules/.package-lock.json ]]; then
        (cd "$dir" && npm ci --no-audit --no-fund --ignore-scripts >&2) || die "npm ci in tools/grpc-client failed"
        touch "$dir/node_modules/.package-lock.json"
    fi
}

node_present() {
    if ((USE_ROOT)); then [[ -x $ROOTFS/usr/bin/node ]]; else command -v node >/dev/null 2>&1; fi
}

# Debian packages where the tests run: inside the Debian 13 root when one is used, else on the host.
install_where_tests_run() {
    local what=$1
    shift
    if ((USE_ROOT)); then
        say "installing $* inside the Debian 13 root (once)"
        run_child bash -c 'export DEBIAN_FRONTEND=noninteractive; apt-get -o DPkg::Lock::Timeout=900 update -q && apt-get -o DPkg::Lock::Timeout=900 install -y -q --no-install-recommends "$@"' \
            apt "$@" >&2 || die "installing $what inside $ROOTFS failed"
    else
        apt_install "$@"
    fi
}

install_node() { install_where_tests_run Node.js "${NODE_PACKAGES[@]}"; }

# ------------------------------------------------------------------- Chromium

# The browser the Playwright tests start, as a path inside the environment the tests run in.
chromium_path() { printf '%s\n' "${NIN_CHROMIUM:-/usr/bin/chromium}"; }

# The same file as seen from the host (the root's copy when tests run inside the root).
chromium_host_path() {
    if ((USE_ROOT)); then printf '%s%s\n' "$ROOTFS" "$(chromium_path)"; else chromium_path; fi
}

chromium_present() { [[ -x $(chromium_host_path) ]]; }

install_chromium() {
    if ((!USE_ROOT)) && ! command -v apt-get >/dev/null 2>&1; then
        die "Chromium is not at $(chromium_path) and apt-get is not available: install Chromium and set NIN_CHROMIUM to its path"
    fi
    install_where_tests_run Chromium "${CHROMIUM_PACKAGES[@]}"
    chromium_present || die "Chromium was installed but $(chromium_host_path) is still missing; set NIN_CHROMIUM to its path"
}

# ----------------------------------------------------------------- PostgreSQL

# The newest PostgreSQL server programs on the host (Debian/Ubuntu layout first, then PATH).
pg_bindir() {
    local d best
    best=$(for d in /usr/lib/postgresql/*/bin; do
        [[ -x $d/postgres && -x $d/initdb && -x $d/pg_ctl && -x $d/createdb ]] && echo "$d"
    done | sort -V | tail -n 1)
    if [[ -z $best ]] && command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        best=$(dirname -- "$(readlink -f -- "$(command -v initdb)")")
    fi
    [[ -n $best ]] && printf '%s\n' "$best"
}

postgres_needed() { [[ -z ${NIN_TEST_POSTGRES:-} ]]; }

# The account the throwaway cluster runs as: PostgreSQL refuses to run as root.
pg_run_as() {
    if [[ $EUID -ne 0 ]]; then
        PG_AS=()
        PG_OWNER=$(id -un)
    elif id -u postgres >/dev/null 2>&1; then
        PG_AS=(runuser -u postgres --)
        PG_OWNER=postgres
    else
        PG_AS=(runuser -u nobody --)
        PG_OWNER=nobody
    fi
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Clusters of earlier runs whose ./nin was killed (SIGKILL leaves no chance to clean up).
reap_stale_postgres() {
    local dir owner bindir
    for dir in "${TMPDIR:-/tmp}"/nin-pg.*; do
        [[ -d $dir && -f $dir/nin.pid ]] || continue
        owner=$(cat -- "$dir/nin.pid" 2>/dev/null || echo)
        [[ -n $owner ]] && kill -0 "$owner" 2>/dev/null && continue
        bindir=$(cat -- "$dir/bindir" 2>/dev/null || echo)
        if [[ -n $bindir && -f $dir/data/postmaster.pid ]]; then
            pg_run_as
            "${PG_AS[@]}" "$bindir/pg_ctl" -D "$dir/data" -m immediate -w -t 10 stop >/dev/null 2>&1 || true
        fi
        rm -rf --one-file-system -- "$dir"
    done
}

start_throwaway_postgres() {
    local bindir port try password log
    bindir=$(pg_bindir) || die "no PostgreSQL server programs found (install postgresql, or set NIN_TEST_POSTGRES)"
    reap_stale_postgres
    pg_run_as
    PG_RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/nin-pg.XXXXXX")
    echo $$ >"$PG_RUN_DIR/nin.pid"
    echo "$bindir" >"$PG_RUN_DIR/bindir"
    password=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
    printf '%s\n' "$password" >"$PG_RUN_DIR/pw"
    chmod 700 "$PG_RUN_DIR"
    chown "$PG_OWNER" "$PG_RUN_DIR" "$PG_RUN_DIR/pw"
    log=$PG_RUN_DIR/postgres.log
    # Password authentication over TCP, as the service uses it; trust on the private socket only.
    "${PG_AS[@]}" "$bindir/initdb" -D "$PG_RUN_DIR/data" -U nin --pwfile="$PG_RUN_DIR/pw" -E UTF8 \
        --auth-host=scram-sha-256 --auth-local=trust --no-instructions >"$PG_RUN_DIR/initdb.log" 2>&1 ||
        { cat "$PG_RUN_DIR/initdb.log" >&2; die "initdb failed (see above)"; }
    for try in $(seq 1 20); do
        port=$((20000 + RANDOM % 30000))
        port_in_use "$port" && continue
        # A throwaway cluster: durability off, a private socket folder, loopback only.
        if "${PG_AS[@]}" "$bindir/pg_ctl" -D "$PG_RUN_DIR/data" -l "$log" -w -t 60 \
            -o "-h 127.0.0.1 -p $port -k $PG_RUN_DIR -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
            start >/dev/null; then
            "${PG_AS[@]}" "$bindir/createdb" -h "$PG_RUN_DIR" -p "$port" -U nin nin_test ||
                die "createdb on the throwaway PostgreSQL failed"
            export NIN_TEST_POSTGRES="Host=127.0.0.1;Port=$port;Username=nin;Password=$password;Database=nin_test"
            say "throwaway PostgreSQL $("$bindir/postgres" --version | awk '{ print $3 }') on 127.0.0.1:$port ($PG_RUN_DIR, removed afterwards)"
            return 0
        fi
        grep -q 'in use' "$log" 2>/dev/null || { tail -n 20 "$log" >&2 || true; die "PostgreSQL did not start (log above)"; }
    done
    die "no free loopback port found for PostgreSQL after 20 tries"
}

stop_throwaway_postgres() {
    [[ -n $PG_RUN_DIR && -d $PG_RUN_DIR ]] || return 0
    local bindir
    bindir=$(cat -- "$PG_RUN_DIR/bindir" 2>/dev/null || echo)
    if [[ -n $bindir && -f $PG_RUN_DIR/data/postmaster.pid ]]; then
        "${PG_AS[@]}" "$bindir/pg_ctl" -D "$PG_RUN_DIR/data" -m fast -w -t 20 stop >/dev/null 2>&1 ||
            "${PG_AS[@]}" "$bindir/pg_ctl" -D "$PG_RUN_DIR/data" -m immediate -w -t 10 stop >/dev/null 2>&1 || true
    fi
    rm -rf --one-file-system -- "$PG_RUN_DIR"
    PG_RUN_DIR=
}

# ---------------------------------------------------------------------- Redis

# The host's redis-server (Debian's package puts it in /usr/bin).
redis_server_path() {
    local p
    p=$(command -v redis-server 2>/dev/null) || return 1
    printf '%s\n' "$p"
}

redis_needed() { [[ -z ${NIN_TEST_REDIS:-} ]]; }

redis_version() { "$1" --version 2>/dev/null | sed -n 's/.* v=\([^ ]*\).*/\1/p'; }

# The account the throwaway server runs as: not root when nin runs as root (a test server has no
# business with root's powers); Debian's package creates the `redis` account.
redis_run_as() {
    if [[ $EUID -ne 0 ]]; then
        REDIS_AS=()
        REDIS_OWNER=$(id -un)
    elif id -u redis >/dev/null 2>&1; then
        REDIS_AS=(runuser -u redis --)
        REDIS_OWNER=redis
    else
        REDIS_AS=(runuser -u nobody --)
        REDIS_OWNER=nobody
    fi
}

# True when the server on 127.0.0.1:PORT answers PING with +PONG (bash's /dev/tcp; no redis-cli).
redis_pong() {
    local line
    (
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf 'PING\r\n' >&3
        IFS= read -r -t 2 line <&3 && [[ $line == '+PONG'* ]]
    ) 2>/dev/null
}

# The pid in DIR's redis.pid if that process is still the redis-server this folder started.
redis_pid_of() {
    local dir=$1 pid port
    pid=$(cat -- "$dir/redis.pid" 2>/dev/null) || return 1
    port=$(cat -- "$dir/port" 2>/dev/null) || return 1
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    # redis-server sets its title to "redis-server 127.0.0.1:PORT" (else its arguments stay): a
    # reused pid is not ours.
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -Eq "redis-server.*(127\.0\.0\.1:$port|--port $port )" || return 1
    printf '%s\n' "$pid"
}

# Stop the server DIR started (SIGTERM: with no persistence it exits at once; SIGKILL after 10 s).
redis_stop_dir() {
    local dir=$1 pid
    if pid=$(redis_pid_of "$dir"); then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -rf --one-file-system -- "$dir" 2>/dev/null || true
}

# Servers of earlier runs whose ./nin was killed (SIGKILL leaves no chance to clean up).
reap_stale_redis() {
    local dir owner
    for dir in "${TMPDIR:-/tmp}"/nin-redis.*; do
        [[ -d $dir && -f $dir/nin.pid ]] || continue
        owner=$(cat -- "$dir/nin.pid" 2>/dev/null || echo)
        [[ -n $owner ]] && kill -0 "$owner" 2>/dev/null && continue
        redis_stop_dir "$dir"
    done
}

start_throwaway_redis() {
    local server port log
    server=$(redis_server_path) || die "redis-server not found (install redis-server, or set NIN_TEST_REDIS)"
    reap_stale_redis
    redis_run_as
    REDIS_RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/nin-redis.XXXXXX")
    echo $$ >"$REDIS_RUN_DIR/nin.pid"
    chmod 700 "$REDIS_RUN_DIR"
    chown "$REDIS_OWNER" "$REDIS_RUN_DIR"
    log=$REDIS_RUN_DIR/redis.log
    for _ in $(seq 1 20); do
        port=$((20000 + RANDOM % 30000))
        port_in_use "$port" && continue
        echo "$port" >"$REDIS_RUN_DIR/port"
        rm -f -- "$log"
        # Loopback only, no RDB snapshots or AOF, files (pid, log) in the private folder only.
        "${REDIS_AS[@]}" "$server" --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
            --dir "$REDIS_RUN_DIR" --pidfile "$REDIS_RUN_DIR/redis.pid" --logfile "$log" \
            --daemonize yes >"$REDIS_RUN_DIR/start.out" 2>&1 ||
            { cat -- "$REDIS_RUN_DIR/start.out" "$log" >&2 2>/dev/null || true; die "redis-server did not start (output above)"; }
        for _ in $(seq 1 100); do
            if redis_pid_of "$REDIS_RUN_DIR" >/dev/null && redis_pong "$port"; then
                export NIN_TEST_REDIS="127.0.0.1:$port"
                say "throwaway Redis $(redis_version "$server") on 127.0.0.1:$port ($REDIS_RUN_DIR, removed afterwards)"
                return 0
            fi
            grep -q 'in use' "$log" 2>/dev/null && break
            sleep 0.1
        done
        grep -q 'in use' "$log" 2>/dev/null || { tail -n 20 "$log" >&2 2>/dev/null || true; die "Redis did not become ready on 127.0.0.1:$port (log above)"; }
    done
    die "no free loopback port found for Redis after 20 tries"
}

stop_throwaway_redis() {
    [[ -n $REDIS_RUN_DIR && -d $REDIS_RUN_DIR ]] || { REDIS_RUN_DIR=; return 0; }
    redis_stop_dir "$REDIS_RUN_DIR"
    REDIS_RUN_DIR=
}

# ------------------------------------------------------------------ together

# The EXIT trap of ./nin test: every throwaway server goes, whatever ended the run.
stop_test_services() {
    stop_throwaway_redis
    stop_throwaway_postgres
}

# What is missing, as "description|how" lines (empty when nothing is).
missing_test_deps() {
    command -v npm >/dev/null 2>&1 || echo "Node.js 18+ and npm on the host (the dashboard bundle)|apt-get install nodejs npm"
    chromium_present || echo "Chromium at $(chromium_host_path) (browser tests)|$( ((USE_ROOT)) && echo 'inside the Debian 13 root: ' )apt-get install ${CHROMIUM_PACKAGES[*]}"
    node_present || echo "Node.js where the tests run (the gRPC client test)|$( ((USE_ROOT)) && echo 'inside the Debian 13 root: ' )apt-get install ${NODE_PACKAGES[*]}"
    if postgres_needed && ! pg_bindir >/dev/null; then
        echo "PostgreSQL server programs (initdb, pg_ctl) for a throwaway test cluster|apt-get install postgresql (or set NIN_TEST_POSTGRES to a server's connection string)"
    fi
    if redis_needed && ! redis_server_path >/dev/null; then
        echo "redis-server for a throwaway test server|apt-get install redis-server (or set NIN_TEST_REDIS to a server's host:port)"
    fi
    return 0
}

# Install what the tests need, as root; otherwise stop with the exact command.
ensure_test_deps() {
    local missing
    missing=$(missing_test_deps)
    if [[ -n $missing && $EUID -ne 0 ]]; then
        {
            echo "nin: error: the tests need things this machine lacks, and installing them needs root:"
            while IFS='|' read -r what how; do echo "  - $what ($how)"; done <<<"$missing"
            echo "Run once:  $(sudo_prepare)"
        } >&2
        exit 1
    fi
    command -v npm >/dev/null 2>&1 || apt_install nodejs npm
    chromium_present || install_chromium
    node_present || install_node
    if postgres_needed && ! pg_bindir >/dev/null; then apt_install postgresql; fi
    # Debian's package would start a system-wide server on port 6379: the tests start their own.
    if redis_needed && ! redis_server_path >/dev/null; then apt_install_no_autostart redis-server; fi
    return 0
}

# `./nin doctor`: what the tests will use.
doctor_test_deps() {
    local bindir server
    if command -v npm >/dev/null 2>&1; then
        echo "npm:               $(command -v npm) ($(npm --version 2>/dev/null || echo '?'))"
    else
        echo "npm:               NOT FOUND (needed to bundle the dashboard; ./nin prepare installs it as root)"
    fi
    if chromium_present; then
        echo "chromium (tests):  $(chromium_host_path)"
    else
        echo "chromium (tests):  missing at $(chromium_host_path) (./nin test installs it as root; else: sudo ./nin prepare)"
    fi
    if ! postgres_needed; then
        echo "postgres (tests):  NIN_TEST_POSTGRES is set: that server is used"
    elif bindir=$(pg_bindir); then
        echo "postgres (tests):  throwaway cluster per run from $bindir ($("$bindir/postgres" --version 2>/dev/null | awk '{ print $3 }'))"
    else
        echo "postgres (tests):  server programs missing (./nin test installs postgresql as root; else: sudo ./nin prepare, or set NIN_TEST_POSTGRES)"
    fi
    if ! redis_needed; then
        echo "redis (tests):     NIN_TEST_REDIS is set: that server ($NIN_TEST_REDIS) is used"
    elif server=$(redis_server_path); then
        echo "redis (tests):     throwaway server per run from $server ($(redis_version "$server"))"
    else
        echo "redis (tests):     redis-server missing (./nin test installs redis-server as root; else: sudo ./nin prepare, or set NIN_TEST_REDIS)"
    fi
    if command -v docker >/dev/null 2>&1; then
        echo "docker:            $(command -v docker) (container test: tools/containers/test.sh)"
    else
        echo "docker:            not found (only the container test needs it)"
    fi
}
