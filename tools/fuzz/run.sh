#!/usr/bin/env bash
# The fuzz pass of CI (called by .ci/run after ./nin test): a Nin server on 127.0.0.1 (a port of its own, a temporary
# home, an API key), its served OpenAPI document turned by Portman (npm, tools/fuzz/package.json) into
#   - contract tests: each operation's documented example request, answered with a documented success whose body
#     matches its schema (status, content type, JSON, schema),
#   - fuzz variations: request bodies and query values beyond their documented minimum/maximum/length, or without a
#     required field, which must get a 400 that matches the 400 schema,
#   - a stateful flow: start a training job, follow it, cancel it, cancel it again,
# and every request checked for a 5xx. newman runs the collection; any failed check fails the pass.
# Bounded: FUZZ_TIMEOUT seconds (default 900) for everything, 60 s per request, one pass over ~65 requests.
set -euo pipefail
cd "$(dirname -- "$(readlink -f -- "${BASH_SOURCE[0]}")")/../.."
REPO=$PWD
OUT=$REPO/artifacts/fuzz
FUZZ=$REPO/tools/fuzz
TIMEOUT=${FUZZ_TIMEOUT:-900}
KEY="fuzz-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
rm -rf "$OUT" && mkdir -p "$OUT"
HOME_DIR=$(mktemp -d /tmp/nin-fuzz-home.XXXXXX)
SERVER_PID=

say() { printf 'fuzz: %s\n' "$*" >&2; }
# HTTP with node (CI has node and npm, not necessarily curl): ok URL, or get URL FILE.
ok() { node -e 'fetch(process.argv[1]).then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))' "$1"; }
get() { node -e 'fetch(process.argv[1]).then(async r => { if (!r.ok) process.exit(1); require("fs").writeFileSync(process.argv[2], await r.text()); }, () => process.exit(1))' "$1" "$2"; }
cleanup() {
    if [[ -n $SERVER_PID ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -- "-$SERVER_PID" 2>/dev/null || kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$HOME_DIR"
}
trap cleanup EXIT

if [[ ! -x $FUZZ/node_modules/.bin/portman || $FUZZ/package-lock.json -nt $FUZZ/node_modules/.package-lock.json ]]; then
    say "installing Portman (npm ci in tools/fuzz)"
    (cd "$FUZZ" && npm ci --no-audit --no-fund >/dev/null)
fi

# The server: loopback only, port 0 (Kestrel picks a free one; its log says which), limits high enough for one pass.
settings=(NIN_HOME="$HOME_DIR" NIN_QUIET=1 Security__ApiKeys__0="$KEY" Nin__DownloadDatasets=false
    RateLimiting__TrainPermitLimit=1000 RateLimiting__PredictPermitLimit=10000)
if [[ -z ${NIN_DATA_DIR:-} && -d $REPO/../shared/datasets ]]; then
    settings+=(NIN_DATA_DIR="$REPO/../shared/datasets")
fi
say "starting the server (log: $OUT/server.log)"
# The log exists before the server starts: the background job opens its redirect when it gets to it, and a sed below
# reading a file not there yet exits 2, which set -e turns into a failed pass (the likely cause of a CI fuzz step that exited 2).
: >"$OUT/server.log"
setsid env "${settings[@]}" "$REPO/nin" serve --urls http://127.0.0.1:0 >>"$OUT/server.log" 2>&1 &
SERVER_PID=$!

deadline=$((SECONDS + TIMEOUT))
base=
while ((SECONDS < deadline)) && kill -0 "$SERVER_PID" 2>/dev/null; do
    base=$(sed -n 's/.*Now listening on: \(http:\/\/127\.0\.0\.1:[0-9]*\).*/\1/p' "$OUT/server.log" | head -n 1)
    [[ -n $base ]] && ok "$base/health/ready" && break
    sleep 2
done
[[ -n $base ]] && ok "$base/health/ready" || { say "the server did not become ready"; tail -n 40 "$OUT/server.log" >&2; exit 1; }
say "server ready at $base"

get "$base/swagger/v1/swagger.json" "$OUT/openapi.json"
node "$FUZZ/break-cycles.js" "$OUT/openapi.json" "$OUT/openapi-acyclic.json"
# From artifacts/fuzz: Portman keeps its working files in ./tmp, and the config names its test script relative to it.
(cd "$OUT" && "$FUZZ/node_modules/.bin/portman" -l openapi-acyclic.json -c "$FUZZ/portman-config.json" -b "$base" \
    --runNewman false -o collection.json >portman.log 2>&1) || { cat "$OUT/portman.log" >&2; exit 1; }
grep -E "skipped|Error" "$OUT/portman.log" >&2 || true

left=$((deadline - SECONDS))
((left > 30)) || { say "no time left for newman"; exit 1; }
status=0
timeout "$left" "$FUZZ/node_modules/.bin/newman" run "$OUT/collection.json" \
    --env-var "apiKey=$KEY" --timeout-request 60000 --reporters cli,junit \
    --reporter-junit-export "$OUT/newman-junit.xml" --color off --disable-unicode >"$OUT/newman.log" 2>&1 || status=$?
tail -n 60 "$OUT/newman.log"
if grep -q "HTTP/1.1\" 5\|Internal Server Error" "$OUT/newman.log"; then
    say "a server error was answered"
    status=1
fi
say "newman exited $status (report: $OUT/newman.log, $OUT/newman-junit.xml)"
exit "$status"
