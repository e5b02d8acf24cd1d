# Shared by tests/e2e/serve_*.sh: a temporary state dir with keys, API keys, and a kura serve
# started on a free loopback port (port 0; the server prints the port it got).
KURA=${KURA_BIN:?KURA_BIN not set}
SHARED=${KURA_SHARED:-}
MODEL=$SHARED/models/stories260K-F32.gguf
if [ -z "$SHARED" ] || [ ! -f "$MODEL" ]; then
    echo "SKIP: ../shared/models/stories260K-F32.gguf not found"; exit 77
fi
if ! "$KURA" serve --help >/dev/null 2>&1; then
    echo "SKIP: this kura binary has no 'serve' (built without src/serve/sched.c)"; exit 77
fi
command -v curl >/dev/null || { echo "SKIP: curl not installed"; exit 77; }
# The system interpreter directly (version-manager shims can take seconds per start).
PYTHON=$(command -v /usr/bin/python3 || command -v python3) || { echo "SKIP: python3 not installed"; exit 77; }
python3() { "$PYTHON" "$@"; }

T=$(mktemp -d /tmp/kura-e2e-serve-XXXXXX)
SERVER_PIDS=()
cleanup() {
    for p in "${SERVER_PIDS[@]}"; do kill "$p" 2>/dev/null; done
    for p in "${SERVER_PIDS[@]}"; do wait "$p" 2>/dev/null; done
    rm -rf "$T"
}
trap cleanup EXIT
export KURA_STATE_DIR=$T/state KURA_PASSPHRASE='e2e serve passphrase'
export KURA_ARGON2_OPSLIMIT=1 KURA_ARGON2_MEMLIMIT=8192   # tests only: a cheap KDF
fail=0
ok()  { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fail=1; }
check() { if eval "$2"; then ok "$1"; else bad "$1"; fi; }

# Keys, and an admin and a user API key (the secret is the last word of the last line).
"$KURA" keys init >/dev/null || { echo "keys init failed"; exit 1; }
ADMIN=$("$KURA" apikey create --name ops --role admin | tail -n1 | awk '{print $NF}')
USER=$("$KURA" apikey create --name app --role user | tail -n1 | awk '{print $NF}')

# start_server NAME ARGS...: sets PORT and PID (stdout/stderr in $T/NAME.out/.err)
start_server() {
    local name=$1; shift
    "$KURA" serve "$@" >"$T/$name.out" 2>"$T/$name.err" &
    PID=$!
    SERVER_PIDS+=("$PID")
    PORT=
    for _ in $(seq 1 200); do
        PORT=$(sed -n 's/.*listening on https\{0,1\}:\/\/[^ ]*:\([0-9]*\) .*/\1/p' "$T/$name.out")
        [ -n "$PORT" ] && return 0
        kill -0 "$PID" 2>/dev/null || break
        sleep 0.05
    done
    echo "server $name did not start:"; cat "$T/$name.out" "$T/$name.err"
    return 1
}

stop_server() { # stop_server PID: SIGTERM and wait; returns its exit code (non-zero is a failure)
    kill -TERM "$1" 2>/dev/null
    wait "$1"
    local rc=$?
    [ $rc = 0 ] || bad "server $1 exited with $rc"
    return $rc
}

# Fails the test when a server's stderr holds a sanitizer report (ASan/UBSan/LSan builds).
sanitizer_check() {
    if grep -l -E "ERROR: (AddressSanitizer|LeakSanitizer)|runtime error:" "$T"/*.err 2>/dev/null; then
        bad "sanitizer report in server output:"; grep -h -A20 -E "ERROR: |runtime error:" "$T"/*.err | head -60
    else
        ok "no sanitizer reports"
    fi
}

# req METHOD PATH KEY [DATA]: body in $T/body, headers in $T/hdr, status in $CODE
req() {
    local m=$1 path=$2 key=$3 data=${4-}
    local args=(-s -o "$T/body" -D "$T/hdr" -w '%{http_code}' -X "$m" --max-time 60)
    [ -n "$key" ] && args+=(-H "Authorization: Bearer $key")
    [ -n "$data" ] && args+=(-H 'Content-Type: application/json' --data-binary "$data")
    CODE=$(curl "${args[@]}" "${BASE:-http://127.0.0.1:$PORT}$path")
}

# py CODE: Python lines run with j = the parsed $T/body; the last non-empty line is the
# condition; exit 0 when it holds
py() {
    PY_CODE=$1 python3 -c "
import json, sys, base64, struct, math, os
j = json.load(open('$T/body'))
lines = [l for l in os.environ['PY_CODE'].strip().split('\n')]
exec('\n'.join(lines[:-1]))
sys.exit(0 if eval(lines[-1]) else 1)" 2>/dev/null
}
