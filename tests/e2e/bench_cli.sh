#!/usr/bin/env bash
# End-to-end: kura bench (the issue's command) on a tiny real model: the table, the one-line
# JSON with every field, the options, and clear usage errors.
set -u
KURA=${KURA_BIN:?KURA_BIN not set}
MODEL=${KURA_SHARED:-}/models/stories260K-F32.gguf
if [ ! -f "$MODEL" ]; then
    echo "SKIP: $MODEL not found (../shared absent)"
    exit 77
fi
T=$(mktemp -d /tmp/kura-e2e-bench-XXXXXX)
trap 'rm -rf "$T"' EXIT
export KURA_STATE_DIR=$T/state # not initialised: nothing is audited
# shellcheck source=lib/cli_common.bash
. "$(dirname "$0")/lib/cli_common.bash"

expect_rc 0 "table" "$KURA" bench -m "$MODEL" -t 1 -p 8 -n 4 -r 2
for f in "^prefill .* tokens/s \\(8 tokens, mean of 2\\)" "^decode .* tokens/s \\(4 tokens, mean of 2\\)" \
         "^peak RSS " "^threads +1$"; do
    grep -Eq "$f" "$T/out" && ok "table line /$f/" || { bad "table lacks /$f/"; cat "$T/out"; }
done

expect_rc 0 "--json" "$KURA" bench -m "$MODEL" -t 2 -p 16 -n 3 -r 1 --json --no-warmup
[ "$(wc -l <"$T/out")" = 1 ] && ok "one JSON line" || bad "JSON output is not one line"
python3 - "$T/out" "$MODEL" <<'PY' && ok "JSON fields" || bad "JSON fields"
import json, sys
j = json.loads(open(sys.argv[1]).read())
for k in ("prefill_tokens_per_s", "decode_tokens_per_s", "peak_rss_bytes", "threads", "model"):
    assert k in j, k
assert j["prefill_tokens_per_s"] > 0 and j["decode_tokens_per_s"] > 0, j
assert j["peak_rss_bytes"] > 1 << 20 and j["threads"] == 2, j
assert j["model"] == sys.argv[2] and j["depth"] == 0, j
PY

expect_rc 0 "--depth (context longer than the prompt)" "$KURA" bench -m "$MODEL" -p 4 -n 2 -d 40 -r 1 --json
python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); assert j["depth"] == 40 and j["decode_tokens_per_s"] > 0, j' "$T/out" \
    && ok "JSON depth" || bad "JSON depth"
expect_rc 0 "-d in the table" "$KURA" bench -m "$MODEL" -p 8 -n 2 -d 6 -r 1
grep -Eq "^decode .*\(2 tokens after 6 of context, mean of 1\)" "$T/out" && ok "table depth" || { bad "table depth"; cat "$T/out"; }

expect_rc 2 "no model" "$KURA" bench -p 4
expect_rc 2 "-p 0" "$KURA" bench -m "$MODEL" -p 0
expect_rc 2 "-r abc" "$KURA" bench -m "$MODEL" -r abc
expect_rc 2 "-d -1" "$KURA" bench -m "$MODEL" -d -1
expect_rc 2 "unknown option" "$KURA" bench -m "$MODEL" --bogus
expect_rc 1 "missing file" "$KURA" bench -m "$T/none.gguf" -p 4 -n 1 -r 1
grep -q "none.gguf" "$T/err" && ok "error names the file" || bad "error does not name the file"
exit $fail
