#!/usr/bin/env bash
# End-to-end: kura serve driven by the official `openai` npm client (tests/client/), unchanged
# but for baseURL and apiKey. The client is installed into the build tree with `npm ci`; without
# node/npm or without network access the test is skipped with the reason.
set -u
. "$(dirname "$0")/lib/serve_common.bash"
SRC=${KURA_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
command -v node >/dev/null && command -v npm >/dev/null || { echo "SKIP: node/npm not installed"; exit 77; }
DIR=$(dirname "$KURA")/npm-client
mkdir -p "$DIR"
cp "$SRC/tests/client/package.json" "$SRC/tests/client/package-lock.json" "$SRC/tests/client/client.mjs" "$DIR/"
if [ ! -f "$DIR/node_modules/openai/package.json" ] ||
   [ "$SRC/tests/client/package-lock.json" -nt "$DIR/node_modules/.package-lock.json" ]; then
    if ! (cd "$DIR" && timeout 180 npm ci --no-audit --no-fund >"$T/npm.log" 2>&1); then
        echo "SKIP: 'npm ci' of the openai client failed (no network access?):"; tail -5 "$T/npm.log"
        exit 77
    fi
fi
start_server npm -m "$MODEL" --port 0 --threads 1 || exit 1
EXPECT=$(python3 -c "import json;print(json.load(open('$SHARED/ref/api-examples/v1_completions.json'))['choices'][0]['text'])")
KURA_BASE_URL=http://127.0.0.1:$PORT/v1 KURA_API_KEY=$USER KURA_MODEL=stories260K-F32.gguf \
    KURA_EXPECT_COMPLETION=$EXPECT timeout 120 node "$DIR/client.mjs"; rc=$?
check "openai npm client suite (rc $rc)" '[ $rc = 0 ]'
stop_server "$PID"
sanitizer_check
exit $fail
