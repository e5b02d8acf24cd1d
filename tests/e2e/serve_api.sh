#!/usr/bin/env bash
# End-to-end: kura apikey + kura serve on loopback, every endpoint and error with curl.
set -u
. "$(dirname "$0")/lib/serve_common.bash"

REF=$SHARED/ref/api-examples

# ---- API keys ----
check "admin secret printed" '[[ "$ADMIN" == kura_* ]] && [ ${#ADMIN} -eq 48 ]'
check "user secret printed" '[[ "$USER" == kura_* ]] && [ "$USER" != "$ADMIN" ]'
check "apikeys.json 0600" '[ "$(stat -c %a "$T/state/apikeys.json")" = 600 ]'
check "no secret stored" '! grep -q "${USER#kura_}" "$T/state/apikeys.json"'
"$KURA" apikey list > "$T/list"
check "list shows both keys" 'grep -q "^ops  *admin" "$T/list" && grep -q "^app  *user" "$T/list"'
"$KURA" apikey create --name app --role user >/dev/null 2>&1; rc=$?
check "duplicate name refused (rc $rc)" '[ $rc = 2 ]'
"$KURA" apikey create --name x --role root >/dev/null 2>&1; rc=$?
check "bad role is a usage error" '[ $rc = 2 ]'
"$KURA" apikey revoke nosuch >/dev/null 2>&1; rc=$?
check "revoking an unknown key fails" '[ $rc = 1 ]'
KURA_PASSPHRASE=wrong "$KURA" apikey list >/dev/null 2>&1; rc=$?
check "wrong passphrase refused" '[ $rc = 1 ]'

# ---- usage errors ----
"$KURA" serve --help > "$T/help"; rc=$?
check "serve --help" '[ $rc = 0 ] && grep -q -- "--tls-cert" "$T/help" && grep -q "rate_limits.user.tokens_per_min" "$T/help"'
"$KURA" serve >/dev/null 2>&1; rc=$?
check "serve without a model is a usage error" '[ $rc = 2 ]'
"$KURA" serve -m "$MODEL" --port 99999 >/dev/null 2>&1; rc=$?
check "bad --port is a usage error" '[ $rc = 2 ]'
printf 'listen:\n  port: 8080\n  hots: 1.2.3.4\n' > "$T/bad.yaml"
"$KURA" serve -m "$MODEL" --config "$T/bad.yaml" 2> "$T/err"; rc=$?
check "unknown config key: rc 2, file and line" '[ $rc = 2 ] && grep -q "bad.yaml:3: unknown key .listen.hots." "$T/err"'
printf 'limits:\n  queue: lots\n' > "$T/bad2.yaml"
"$KURA" serve -m "$MODEL" --config "$T/bad2.yaml" 2> "$T/err"; rc=$?
check "bad config value: rc 2, file and line" '[ $rc = 2 ] && grep -q "bad2.yaml:2: limits.queue: expected an integer" "$T/err"'
printf 'models: [\n' > "$T/bad3.yaml"
"$KURA" serve --config "$T/bad3.yaml" 2> "$T/err"; rc=$?
check "YAML syntax error names the line" '[ $rc = 2 ] && grep -q "bad3.yaml:2" "$T/err"'

# ---- a server with two models from a config file ----
cat > "$T/kura.yaml" <<EOF
listen:
  host: 127.0.0.1
  port: 0
limits:
  max_body_bytes: 65536
embedding_model: stories-q8
engine:
  slots: 2
  threads: 1
models:
  - name: stories
    path: $MODEL
  - name: stories-q8
    path: $SHARED/models/stories260K-Q8_0.gguf
    slots: 1
EOF
start_server main --config "$T/kura.yaml" || exit 1
MAIN_PID=$PID

req GET /health ""
check "/health without a key: 200" '[ "$CODE" = 200 ] && py "j[\"status\"] == \"ok\""'
req GET /v1/models ""
check "/v1/models without a key: 401 invalid_api_key" '[ "$CODE" = 401 ] && py "j[\"error\"][\"code\"] == \"invalid_api_key\""'
req GET /v1/models "kura_notakey"
check "invalid key: 401" '[ "$CODE" = 401 ]'
curl -s -o "$T/body" -w '%{http_code}' -H "Authorization: Basic Zm9vOmJhcg==" "http://127.0.0.1:$PORT/v1/models" > "$T/code"
check "non-Bearer auth: 401" '[ "$(cat "$T/code")" = 401 ]'
req GET /v1/models "$USER"
check "/v1/models: both models" '[ "$CODE" = 200 ] && py "j[\"object\"] == \"list\" and [m[\"id\"] for m in j[\"data\"]] == [\"stories\", \"stories-q8\", \"auto\"]"'
req GET /v1/models/stories-q8 "$USER"
check "/v1/models/ID" '[ "$CODE" = 200 ] && py "j[\"id\"] == \"stories-q8\" and len(j[\"meta\"][\"sha256\"]) == 64"'
req GET /v1/models/gpt-4 "$USER"
check "/v1/models/UNKNOWN: 404" '[ "$CODE" = 404 ]'
req GET /metrics "$USER"
check "/metrics with a user key: 403" '[ "$CODE" = 403 ]'
req GET /nope "$USER"
check "unknown route: 404" '[ "$CODE" = 404 ] && py "j[\"error\"][\"code\"] == \"unknown_url\""'
req GET /v1/completions "$USER"
check "GET on a POST route: 405" '[ "$CODE" = 405 ]'

# ---- completions ----
req POST /v1/completions "$USER" '{"model":"stories","prompt":"Once upon a time","max_tokens":16,"temperature":0}'
EXPECT=$(python3 -c "import json;print(json.load(open('$REF/v1_completions.json'))['choices'][0]['text'])")
check "completion: greedy text equals the reference server's" '[ "$CODE" = 200 ] && py "j[\"choices\"][0][\"text\"] == \"\"\"$EXPECT\"\"\""'
check "completion: object, usage, finish_reason" 'py "j[\"object\"] == \"text_completion\" and j[\"usage\"] == {\"prompt_tokens\": 5, \"completion_tokens\": 16, \"total_tokens\": 21} and j[\"choices\"][0][\"finish_reason\"] == \"length\" and j[\"id\"].startswith(\"cmpl-\")"'
cp "$T/body" "$T/compl.json"
req POST /v1/completions "$USER" '{"model":"stories","prompt":"Once upon a time","max_tokens":16,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}'
python3 - "$T/body" "$T/compl.json" > "$T/sse.txt" 2>&1 <<'EOF'
import json, sys
raw = open(sys.argv[1]).read()
want = json.load(open(sys.argv[2]))["choices"][0]["text"]
events = [e for e in raw.split("\n\n") if e.strip()]
assert all(e.startswith("data: ") for e in events), "every event is a data: line"
assert events[-1] == "data: [DONE]", "ends with [DONE]"
chunks = [json.loads(e[6:]) for e in events[:-1]]
text = "".join(c["choices"][0]["text"] for c in chunks if c["choices"])
assert text == want, (text, want)
assert all(c["object"] == "text_completion" for c in chunks)
fin = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
assert len(fin) == 1 and fin[0]["choices"][0]["finish_reason"] == "length"
assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 16
print("sse ok")
EOF
check "streamed completion: same text, one finish, usage chunk, [DONE]" 'grep -q "sse ok" "$T/sse.txt" || { cat "$T/sse.txt"; false; }'

req POST /v1/completions "$USER" '{"model":"stories","prompt":"Once upon a time","max_tokens":4,"temperature":0,"logprobs":3}'
check "completion logprobs: legacy shape, 3 alternatives, matches the reference" 'py "
lp = j[\"choices\"][0][\"logprobs\"]
ref = json.load(open(\"$REF/v1_completions_logprobs.json\"))[\"choices\"][0][\"logprobs\"][\"content\"]
len(lp[\"tokens\"]) == 4 and all(len(t) == 3 for t in lp[\"top_logprobs\"]) and lp[\"tokens\"] == [r[\"token\"] for r in ref] and all(abs(a - r[\"logprob\"]) < 0.01 for a, r in zip(lp[\"token_logprobs\"], ref)) and lp[\"text_offset\"][0] == 0
"'

# ---- chat ----
CHAT='{"model":"stories","messages":[{"role":"system","content":"You are a storyteller."},{"role":"user","content":"Tell me a story"}],"max_tokens":12,"temperature":0'
req POST /v1/chat/completions "$USER" "$CHAT}"
check "chat: 200, assistant message, usage" '[ "$CODE" = 200 ] && py "j[\"object\"] == \"chat.completion\" and j[\"choices\"][0][\"message\"][\"role\"] == \"assistant\" and len(j[\"choices\"][0][\"message\"][\"content\"]) > 0 and j[\"usage\"][\"completion_tokens\"] == 12 and j[\"usage\"][\"total_tokens\"] == j[\"usage\"][\"prompt_tokens\"] + 12"'
cp "$T/body" "$T/chat.json"
req POST /v1/chat/completions "$USER" "$CHAT"',"stream":true}'
python3 - "$T/body" "$T/chat.json" > "$T/sse.txt" 2>&1 <<'EOF'
import json, sys
raw = open(sys.argv[1]).read()
want = json.load(open(sys.argv[2]))["choices"][0]["message"]["content"]
events = [e for e in raw.split("\n\n") if e.strip()]
assert events[-1] == "data: [DONE]"
chunks = [json.loads(e[6:]) for e in events[:-1]]
assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
assert all(c["object"] == "chat.completion.chunk" and "usage" not in c for c in chunks)
text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)
assert text == want, (text, want)
assert chunks[-1]["choices"][0]["finish_reason"] == "length"
print("sse ok")
EOF
check "streamed chat: role first, same text as non-streamed, [DONE]" 'grep -q "sse ok" "$T/sse.txt" || { cat "$T/sse.txt"; false; }'
req POST /v1/chat/completions "$USER" "$CHAT"',"logprobs":true,"top_logprobs":2}'
check "chat logprobs: content entries with bytes and 2 top_logprobs" '[ "$CODE" = 200 ] && py "
c = j[\"choices\"][0][\"logprobs\"][\"content\"]
len(c) == 12 and all(len(e[\"top_logprobs\"]) == 2 and e[\"logprob\"] <= 0 and bytes(e[\"bytes\"]).decode(\"utf-8\", \"replace\") == e[\"token\"] for e in c) and all(e[\"top_logprobs\"][0][\"logprob\"] >= e[\"top_logprobs\"][1][\"logprob\"] for e in c)
"'
req POST /v1/chat/completions "$USER" '{"model":"stories-q8","messages":[{"role":"user","content":"Hi"}],"max_tokens":3}'
check "second model selected by name" '[ "$CODE" = 200 ] && py "j[\"model\"] == \"stories-q8\""'
req POST /v1/chat/completions "$USER" '{"messages":[{"role":"user","content":"Hi"}],"max_tokens":2,"stop":["\n"],"seed":7,"temperature":0.8,"top_p":0.9,"presence_penalty":0.5,"frequency_penalty":0.5,"user":"ward-7-frontend"}'
check "sampling parameters accepted; model defaults to the first" '[ "$CODE" = 200 ] && py "j[\"model\"] == \"stories\""'
req POST /v1/chat/completions "$USER" '{"messages":[{"role":"user","content":"Give me JSON"}],"max_tokens":60,"response_format":{"type":"json_object"},"temperature":0}'
check "response_format json_object: output parses as JSON" '[ "$CODE" = 200 ] && py "
c = j[\"choices\"][0]
isinstance(json.loads(c[\"message\"][\"content\"]), dict)
"'
req POST /v1/chat/completions "$USER" '{"messages":[{"role":"user","content":"JSON please"}],"max_tokens":8,"response_format":{"type":"json_object"},"temperature":0.9,"seed":3}'
check "json_object with a short max_tokens still closes the object" '[ "$CODE" = 200 ] && py "isinstance(json.loads(j[\"choices\"][0][\"message\"][\"content\"]), dict)"'

# ---- embeddings ----
req POST /v1/embeddings "$USER" '{"model":"stories","input":"hello world"}'
check "embedding: 64 floats, unit length" '[ "$CODE" = 200 ] && py "len(j[\"data\"]) == 1 and len(j[\"data\"][0][\"embedding\"]) == 64 and abs(math.sqrt(sum(x * x for x in j[\"data\"][0][\"embedding\"])) - 1) < 1e-3 and j[\"usage\"][\"prompt_tokens\"] > 0"'
cp "$T/body" "$T/emb.json"
req POST /v1/embeddings "$USER" '{"input":"hello world"}'
check "embedding without model: the configured embedding_model" '[ "$CODE" = 200 ] && py "j[\"model\"] == \"stories-q8\""'
req POST /v1/embeddings "$USER" '{"model":"stories","input":["hello world","a cat"],"encoding_format":"base64"}'
check "embedding: array input, base64 equals the float form" '[ "$CODE" = 200 ] && py "
e0 = struct.unpack(\"<64f\", base64.b64decode(j[\"data\"][0][\"embedding\"]))
ref = json.load(open(\"$T/emb.json\"))[\"data\"][0][\"embedding\"]
len(j[\"data\"]) == 2 and j[\"data\"][1][\"index\"] == 1 and all(abs(a - b) < 1e-6 for a, b in zip(e0, ref))
"'

# ---- request errors ----
expect_err() { # expect_err DESCRIPTION STATUS PARAM PATH BODY
    req POST "$4" "$USER" "$5"
    if [ "$CODE" = "$2" ] && py "j[\"error\"][\"param\"] == (None if \"$3\" == \"-\" else \"$3\") and j[\"error\"][\"type\"] and j[\"error\"][\"message\"]"; then
        ok "$1 -> $2 ${3}"
    else
        bad "$1: got $CODE $(cat "$T/body")"
    fi
}
expect_err "malformed JSON" 400 - /v1/chat/completions '{"messages": ['
expect_err "body not an object" 400 - /v1/completions '[1,2]'
expect_err "messages missing" 400 messages /v1/chat/completions '{"model":"stories"}'
expect_err "messages wrong type" 400 messages /v1/chat/completions '{"messages":"hi"}'
expect_err "bad role" 400 'messages[0].role' /v1/chat/completions '{"messages":[{"role":"wizard","content":"x"}]}'
expect_err "content wrong type" 400 'messages[0].content' /v1/chat/completions '{"messages":[{"role":"user","content":5}]}'
expect_err "max_tokens wrong type" 400 max_tokens /v1/completions '{"prompt":"x","max_tokens":"ten"}'
expect_err "temperature out of range" 400 temperature /v1/completions '{"prompt":"x","temperature":7}'
expect_err "stop wrong type" 400 stop /v1/completions '{"prompt":"x","stop":3}'
expect_err "n > 1" 400 n /v1/completions '{"prompt":"x","n":2}'
expect_err "top_logprobs without logprobs" 400 top_logprobs /v1/chat/completions '{"messages":[{"role":"user","content":"x"}],"top_logprobs":2}'
expect_err "response_format unknown type" 400 response_format.type /v1/chat/completions '{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"yaml"}}'
expect_err "prompt missing" 400 prompt /v1/completions '{"model":"stories"}'
expect_err "input wrong type" 400 input /v1/embeddings '{"input":7}'
expect_err "model wrong type" 400 model /v1/completions '{"prompt":"x","model":1}'
expect_err "unknown model" 404 model /v1/completions '{"prompt":"x","model":"gpt-4"}'
expect_err "unknown embedding model" 404 model /v1/embeddings '{"input":"x","model":"gpt-4"}'
LONG=$(python3 -c "print('Once upon a time there was a dog. ' * 40)")
expect_err "prompt longer than the context" 400 prompt /v1/completions "{\"prompt\":\"$LONG\",\"max_tokens\":4}"
check "... with code context_length_exceeded" 'py "j[\"error\"][\"code\"] == \"context_length_exceeded\""'
expect_err "chat longer than the context" 400 messages /v1/chat/completions "{\"messages\":[{\"role\":\"user\",\"content\":\"$LONG\"}]}"
python3 -c "print('{\"prompt\":\"' + 'a' * 70000 + '\"}')" > "$T/big.json"
CODE=$(curl -s -o "$T/body" -w '%{http_code}' -H "Authorization: Bearer $USER" --data-binary @"$T/big.json" "http://127.0.0.1:$PORT/v1/completions")
check "body over limits.max_body_bytes: 413" '[ "$CODE" = 413 ] && py "j[\"error\"][\"code\"] == \"request_too_large\""'
CODE=$(curl -s -o "$T/body" -w '%{http_code}' -H "Authorization: Bearer $USER" -H "Transfer-Encoding: chunked" --data-binary @"$T/big.json" "http://127.0.0.1:$PORT/v1/completions")
check "chunked body over the limit: 413" '[ "$CODE" = 413 ]'
req GET /health ""
check "still healthy after the errors" '[ "$CODE" = 200 ]'

# ---- metrics ----
req GET /metrics "$ADMIN"
check "/metrics (admin): Prometheus text with requests, histograms, tokens, slots, KV" '[ "$CODE" = 200 ] &&
  grep -q "^kura_http_requests_total{route=\"/v1/completions\",status=\"200\"} [1-9]" "$T/body" &&
  grep -q "^kura_http_requests_total{route=\"/v1/chat/completions\",status=\"400\"} [1-9]" "$T/body" &&
  grep -q "^kura_http_request_duration_seconds_bucket{route=\"/v1/completions\",le=\"+Inf\"} [1-9]" "$T/body" &&
  grep -q "^kura_http_request_duration_seconds_count{route=\"/v1/completions\"}" "$T/body" &&
  grep -q "^kura_tokens_generated_total{model=\"stories\"} [1-9]" "$T/body" &&
  grep -q "^kura_tokens_prompt_total{model=\"stories\"} [1-9]" "$T/body" &&
  grep -q "^kura_queue_depth{model=\"stories\"} 0" "$T/body" &&
  grep -q "^kura_active_slots{model=\"stories\"}" "$T/body" &&
  grep -q "^kura_slots{model=\"stories-q8\"} 1" "$T/body" &&
  grep -q "^kura_kv_cells_total{model=\"stories\"} [1-9]" "$T/body" &&
  grep -q "^kura_auth_failures_total [1-9]" "$T/body" &&
  grep -q "^kura_time_to_first_token_seconds_bucket{model=\"stories\",le=\"+Inf\"} [1-9]" "$T/body" &&
  grep -q "^kura_request_tokens_total{model=\"stories\",kind=\"completion\"} [1-9]" "$T/body"'

# ---- revocation takes effect on a running server ----
"$KURA" apikey create --name temp --role user > "$T/temp.out"
TEMP=$(tail -n1 "$T/temp.out" | awk '{print $NF}')
req GET /v1/models "$TEMP"
check "new key works without a restart" '[ "$CODE" = 200 ]'
"$KURA" apikey revoke temp >/dev/null
req GET /v1/models "$TEMP"
check "revoked key: 401" '[ "$CODE" = 401 ]'

stop_server "$MAIN_PID"; rc=$?
check "SIGTERM: clean exit (rc $rc)" '[ $rc = 0 ]'

# ---- rate limits, queue overload ----
TOKKEY=$("$KURA" apikey create --name tok --role user | tail -n1 | awk '{print $NF}')
start_server rate -m "$MODEL" --port 0 --threads 1 --rate-user-rpm 2 --rate-key ops:1:0 --rate-key tok:0:10 || exit 1
for i in 1 2 3; do req GET /v1/models "$USER"; codes[$i]=$CODE; done
check "rate limit: third request in a minute is 429 with Retry-After" '[ "${codes[1]}${codes[2]}${codes[3]}" = 200200429 ] && grep -qi "^Retry-After: [1-9]" "$T/hdr"'
req GET /v1/models "$ADMIN"
check "... other keys unaffected" '[ "$CODE" = 200 ]'
req GET /v1/models "$ADMIN"
check "per-key limit (--rate-key ops:1:0): second request 429" '[ "$CODE" = 429 ]'
req POST /v1/completions "$TOKKEY" '{"prompt":"Once upon a time","max_tokens":16,"temperature":0}'
check "token limit: a request within the budget runs" '[ "$CODE" = 200 ]'
req POST /v1/completions "$TOKKEY" '{"prompt":"Once upon a time","max_tokens":16,"temperature":0}'
check "token limit: the budget spent (21 of 10 tokens/min), next is 429 with Retry-After" '[ "$CODE" = 429 ] && grep -qi "^Retry-After: [1-9]" "$T/hdr"'
stop_server "$PID"

start_server busy -m "$MODEL" --port 0 --threads 1 --slots 1 --queue 0 || exit 1
for i in $(seq 1 12); do
    curl -s -o "$T/b$i" -D "$T/h$i" -w '%{http_code}\n' -H "Authorization: Bearer $USER" \
        -d '{"prompt":"Once upon a time","max_tokens":120,"temperature":0}' \
        "http://127.0.0.1:$PORT/v1/completions" > "$T/c$i" &
done
wait $(jobs -p | grep -v "^$PID$") 2>/dev/null
n503=0; nok=0; nra=0
for i in $(seq 1 12); do
    c=$(cat "$T/c$i")
    [ "$c" = 503 ] && n503=$((n503 + 1)) && grep -qi "^Retry-After: [1-9]" "$T/h$i" && nra=$((nra + 1))
    [ "$c" = 200 ] && nok=$((nok + 1))
done
check "queue full: 503 with Retry-After ($n503 of 12), the rest 200 ($nok)" '[ $n503 -ge 1 ] && [ $nra = $n503 ] && [ $((n503 + nok)) = 12 ]'
stop_server "$PID"

# ---- TLS ----
if command -v openssl >/dev/null; then
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$T/key.pem" -out "$T/cert.pem" -days 1 \
        -subj "/CN=127.0.0.1" >/dev/null 2>&1
    chmod 600 "$T/key.pem"
    start_server tls -m "$MODEL" --port 0 --threads 1 --tls-cert "$T/cert.pem" --tls-key "$T/key.pem" || exit 1
    BASE=https://127.0.0.1:$PORT
    CODE=$(curl -s --cacert "$T/cert.pem" -o "$T/body" -w '%{http_code}' -H "Authorization: Bearer $USER" "$BASE/v1/models")
    check "TLS: /v1/models over https" '[ "$CODE" = 200 ]'
    CODE=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/health")
    check "TLS: plain http refused" '[ "$CODE" != 200 ]'
    unset BASE
    stop_server "$PID"
else
    echo "note: openssl not installed; TLS not tested"
fi

# ---- prompt logging off by default, on when configured ----
start_server lp -m "$MODEL" --port 0 --threads 1 --log-prompts || exit 1
req POST /v1/completions "$USER" '{"prompt":"Zebras logged here","max_tokens":2}'
stop_server "$PID"

# ---- audit ----
"$KURA" audit verify > "$T/verify" 2>&1; rc=$?
check "audit log verifies (rc $rc)" '[ $rc = 0 ]'
"$KURA" audit show --json > "$T/audit.jsonl"
acount() { python3 -c "
import json, sys
n = 0
for l in open('$T/audit.jsonl'):
    r = json.loads(l)
    if r['action'] == '$1' and ($2): n += 1
print(n)"; }
check "audit: server.start and server.stop" '[ "$(acount server.start "r[\"outcome\"] == \"ok\"")" -ge 5 ] && [ "$(acount server.stop True)" -ge 5 ]'
check "audit: model.load with the file digest" '[ "$(acount model.load "r[\"details\"][\"sha256\"] == \"$(sha256sum "$MODEL" | cut -c1-64)\"")" -ge 5 ]'
check "audit: auth failures" '[ "$(acount auth.failure "r[\"outcome\"] == \"denied\"")" -ge 3 ]'
check "audit: auth successes name the key" '[ "$(acount auth.success "r[\"actor\"] == \"apikey:app\"")" -ge 10 ]'
check "audit: requests with route, model, tokens, status" '[ "$(acount api.request "r[\"object\"] == \"/v1/completions\" and r[\"details\"].get(\"model\") == \"stories\" and r[\"details\"].get(\"completion_tokens\") == 16 and r[\"details\"][\"status\"] == 200")" -ge 1 ]'
check "audit: failed requests recorded" '[ "$(acount api.request "r[\"details\"][\"status\"] == 400")" -ge 10 ]'
check "audit: rate-limited request recorded" '[ "$(acount api.request "r[\"details\"][\"status\"] == 429")" -ge 1 ]'
check "audit: apikey create and revoke" '[ "$(acount apikey.create True)" -ge 4 ] && [ "$(acount apikey.revoke "r[\"object\"] == \"temp\"")" = 1 ]'
check "audit: prompt text only where enabled" '[ "$(grep -c "Zebras logged here" "$T/audit.jsonl")" = 1 ] && ! grep -q "Tell me a story" "$T/audit.jsonl"'
check "audit: the request's user field is recorded" '[ "$(acount api.request "r[\"details\"].get(\"user\") == \"ward-7-frontend\"")" = 1 ]'
check "audit: unauthenticated requests recorded as anonymous" '[ "$(acount api.request "r[\"actor\"].startswith(\"anonymous@127.0.0.1\") and r[\"details\"][\"status\"] == 401")" -ge 3 ]'
check "audit: no API key secret in the log" '! grep -q "${USER#kura_}" "$T/state/audit/audit.log"'

sanitizer_check
exit $fail
