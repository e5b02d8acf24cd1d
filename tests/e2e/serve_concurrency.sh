#!/usr/bin/env bash
# End-to-end (issue 5's concurrency criterion): 8 simultaneous streaming greedy requests to
# `kura serve` each return exactly the text that request returns when it runs alone, on the F32
# model (float kernels: the batch-invariant path) and the Q8_0 model.
set -u
. "$(dirname "$0")/lib/serve_common.bash"

PROMPTS=("Once upon a time" "The little dog" "Lily wanted to" "One day, a big" \
         "Tom and Sue went" "The sun was" "There was a girl who" "A cat sat")

# stream I OUT: one streamed greedy completion of prompt I; writes the concatenated text to OUT
# (and fails the check later if the stream did not end with [DONE])
stream() {
    local i=$1 out=$2
    curl -sN --max-time 120 -H "Authorization: Bearer $USER" -H 'Content-Type: application/json' \
        -d "{\"model\":\"m\",\"prompt\":\"${PROMPTS[$i]}\",\"max_tokens\":48,\"temperature\":0,\"stream\":true}" \
        "http://127.0.0.1:$PORT/v1/completions" > "$out.sse"
    python3 - "$out.sse" > "$out" <<'PY'
import json, sys
text, done = [], False
for line in open(sys.argv[1], encoding="utf-8"):
    line = line.strip()
    if line == "data: [DONE]":
        done = True
    elif line.startswith("data: "):
        j = json.loads(line[6:])
        for c in j.get("choices", []):
            text.append(c.get("text") or "")
print(("" if done else "NO-DONE:") + json.dumps("".join(text)))
PY
}

for M in stories260K-F32 stories260K-Q8_0; do
    printf 'models:\n  - name: m\n    path: %s\n    slots: 8\nengine:\n  threads: 2\n' \
        "$SHARED/models/$M.gguf" > "$T/$M.yaml"
    start_server "$M" --config "$T/$M.yaml" || exit 1
    for i in "${!PROMPTS[@]}"; do stream "$i" "$T/alone$i"; done
    pids=()
    for i in "${!PROMPTS[@]}"; do stream "$i" "$T/together$i" & pids+=($!); done
    wait "${pids[@]}"
    same=0
    for i in "${!PROMPTS[@]}"; do
        if ! grep -q '^NO-DONE' "$T/alone$i" && [ -s "$T/alone$i" ] &&
            cmp -s "$T/alone$i" "$T/together$i"; then
            same=$((same + 1))
        else
            echo "  prompt $i alone:    $(cat "$T/alone$i")"
            echo "  prompt $i together: $(cat "$T/together$i")"
        fi
    done
    check "$M: 8 concurrent streams equal each stream alone ($same of 8)" '[ $same = 8 ]'
    check "$M: the streams produced text" '[ "$(cat "$T/alone0")" != "\"\"" ]'
    stop_server "$PID"
done
sanitizer_check
exit $fail
