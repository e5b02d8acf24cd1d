#!/usr/bin/env bash
# End-to-end: kura serve with a policy file. A mock OpenAI-compatible upstream on loopback
# (tests/tools/mock_upstream.py) records every byte it receives and echoes the user messages.
# Requests full of personal data (Japanese and English) go through "auto", through an upstream
# that pseudonymises and through one that refuses, streaming and not: no finding may reach the
# mock, the client gets the restored originals, harmless requests do go upstream, every answer
# has x-kura-route / x-kura-level, and the audit log holds the decisions (never the values).
set -u
. "$(dirname "$0")/lib/serve_common.bash"

SRC=${KURA_SRC:?KURA_SRC not set}

# ---- the mock upstream ----
python3 "$SRC/tests/tools/mock_upstream.py" "$T/raw.bin" "$T/bodies.jsonl" > "$T/mock.port" 2>/dev/null &
MOCK_PID=$!
SERVER_PIDS+=("$MOCK_PID")
MOCK_PORT=
for _ in $(seq 1 200); do
    MOCK_PORT=$(head -n1 "$T/mock.port")
    [ -n "$MOCK_PORT" ] && break
    sleep 0.05
done
[ -n "$MOCK_PORT" ] || { echo "mock upstream did not start"; exit 1; }

cat > "$T/policy.yaml" <<EOF
version: 1
auto_model: auto
destinations:
  - name: local
    kind: local
  - name: us-gpt
    kind: upstream
    url: http://127.0.0.1:$MOCK_PORT/v1
    model: gpt-mock
    jurisdiction: US
    max_level: internal
    action: pseudonymise
  - name: us-strict
    kind: upstream
    url: http://127.0.0.1:$MOCK_PORT/v1
    jurisdiction: US
    max_level: internal
    action: refuse
  - name: us-home
    kind: upstream
    url: http://127.0.0.1:$MOCK_PORT/v1
    jurisdiction: US
    max_level: internal
    action: local
default_destination: us-gpt
local_destination: local
EOF
"$KURA" policy lint "$T/policy.yaml" >/dev/null 2>&1; rc=$?
check "policy file lints clean" '[ $rc = 0 ]'

# ---- usage ----
"$KURA" serve --help > "$T/help"
check "serve --help documents --policy" 'grep -q -- "--policy FILE" "$T/help" && grep -q "x-kura-route" "$T/help"'
"$KURA" serve -m "$MODEL" --port 0 --policy "$T/nosuch.yaml" 2> "$T/err"; rc=$?
check "missing policy file: server does not start (rc $rc)" '[ $rc != 0 ] && grep -q "policy" "$T/err"'
printf 'destinations:\n  - name: stories\n    url: http://127.0.0.1:1/v1\n    jurisdiction: US\n' > "$T/clash.yaml"
"$KURA" serve -m "$MODEL" --model-name stories --port 0 --policy "$T/clash.yaml" 2> "$T/err"; rc=$?
check "upstream named like a local model is refused (rc $rc)" '[ $rc != 0 ] && grep -q "upstream destination" "$T/err"'

# ---- the server: policy from the config file ----
cat > "$T/kura.yaml" <<EOF
listen: {host: 127.0.0.1, port: 0}
engine: {slots: 2, threads: 1, ctx: 512}
limits: {max_tokens: 8}
policy: $T/policy.yaml
models:
  - name: stories
    path: $MODEL
EOF
start_server main --config "$T/kura.yaml" || exit 1
MAIN_PID=$PID

req GET /v1/models "$USER"
check "/v1/models lists the local model, auto and the upstreams" '[ "$CODE" = 200 ] && py "
ids = {m[\"id\"]: m for m in j[\"data\"]}
ids[\"auto\"][\"meta\"][\"kind\"] == \"auto\" and ids[\"us-gpt\"][\"meta\"] == {\"kind\": \"upstream\", \"jurisdiction\": \"US\", \"max_level\": \"internal\", \"action\": \"pseudonymise\"} and ids[\"us-strict\"][\"meta\"][\"action\"] == \"refuse\" and \"sha256\" in ids[\"stories\"][\"meta\"] and \"local\" not in ids"'
req GET /v1/models/us-gpt "$USER"
check "/v1/models/us-gpt" '[ "$CODE" = 200 ] && py "j[\"owned_by\"] == \"upstream\""'

# The personal data: each line one request; VALUES are what must never reach the upstream.
cat > "$T/pii.txt" <<'EOF'
私のマイナンバーは972281866208です。田中太郎様の電話は090-1234-5678、メールはtaro.tanaka@example.co.jpです。
Please call Mr. John Smith at +81 3-1234-5678 or email john.smith@example.com. My Number: 1641 0457 5008.
佐藤花子様の住所は東京都千代田区千代田1-1です。電話は03-3581-0001、連絡先はhanako.sato@example.jpです。
鈴木一郎様（個人番号 0793-3791-5669）から、携帯 080-9876-5432 へ折り返しをお願いします。
Dear Ms. Alice Brown, your number 09012345678 and alice.brown@example.org are on file.
EOF
VALUES=(972281866208 田中太郎 090-1234-5678 taro.tanaka@example.co.jp "John Smith" "3-1234-5678"
        john.smith@example.com "1641 0457 5008" 佐藤花子 03-3581-0001 hanako.sato@example.jp
        鈴木一郎 0793-3791-5669 080-9876-5432 "Alice Brown" 09012345678 alice.brown@example.org)
# the detector must see every line (else the test proves nothing)
while IFS= read -r line; do
    printf '%s' "$line" | "$KURA" policy check --json > "$T/pc.json"
    check "detector finds personal data in: ${line:0:24}..." 'python3 -c "
import json; j = json.load(open(\"$T/pc.json\")); assert len(j[\"findings\"]) >= 3" 2>/dev/null'
done < "$T/pii.txt"

chat_body() { # chat_body MODEL STREAM TEXT [SYSTEM]
    python3 -c '
import json, sys
msgs = []
if len(sys.argv) > 4: msgs.append({"role": "system", "content": sys.argv[4]})
msgs.append({"role": "user", "content": sys.argv[3]})
print(json.dumps({"model": sys.argv[1], "messages": msgs, "stream": sys.argv[2] == "1",
                  "max_tokens": 8}, ensure_ascii=False))' "$@"
}
# answer text of $T/body (JSON or SSE) -> $T/answer; returns 1 when it does not parse
answer() {
    python3 -c '
import json, sys
b = open(sys.argv[1], encoding="utf-8").read()
if b.startswith("data:"):
    out = []
    for ev in b.split("\n\n"):
        ev = ev.strip()
        if not ev: continue
        assert ev.startswith("data: ")
        if ev == "data: [DONE]": break
        j = json.loads(ev[6:])
        assert "error" not in j
        for c in j["choices"]:
            out.append(c["delta"].get("content") or "")
    assert b.rstrip().endswith("data: [DONE]")
    t = "".join(out)
else:
    t = json.loads(b)["choices"][0]["message"]["content"]
open(sys.argv[2], "w", encoding="utf-8").write(t)' "$T/body" "$T/answer" 2>/dev/null
}
hdr() { tr -d '\r' < "$T/hdr" | sed -n "s/^$1: //Ip" | head -n1; }

sent_upstream=0
i=0
while IFS= read -r line; do
    i=$((i + 1))
    for s in 0 1; do
        # explicit upstream, action pseudonymise: goes out with placeholders, comes back restored
        req POST /v1/chat/completions "$USER" "$(chat_body us-gpt $s "$line" "You are a helpful assistant.")"
        sent_upstream=$((sent_upstream + 1))
        check "pii $i stream=$s us-gpt: 200, routed upstream, level secret or confidential" \
            '[ "$CODE" = 200 ] && [ "$(hdr x-kura-route)" = upstream:us-gpt ] && [[ "$(hdr x-kura-level)" =~ ^(secret|confidential)$ ]]'
        answer; rc=$?
        printf 'Echo: %s' "$line" > "$T/expect"
        check "pii $i stream=$s us-gpt: the client gets the restored originals" '[ $rc = 0 ] && cmp -s "$T/answer" "$T/expect"'
        # auto: too sensitive for the upstream -> the local model
        req POST /v1/chat/completions "$USER" "$(chat_body auto $s "$line")"
        answer; rc=$?
        check "pii $i stream=$s auto: answered locally" \
            '[ "$CODE" = 200 ] && [ $rc = 0 ] && [ "$(hdr x-kura-route)" = local:stories ] && [[ "$(hdr x-kura-level)" =~ ^(secret|confidential)$ ]] && ! grep -q "^Echo" "$T/answer"'
        # action refuse: 403 with an OpenAI error object naming the reason, never the values
        req POST /v1/chat/completions "$USER" "$(chat_body us-strict $s "$line")"
        leaked=0
        for v in "${VALUES[@]}"; do grep -qF -- "$v" "$T/body" && leaked=1; done
        check "pii $i stream=$s us-strict: 403 policy_refused without values" \
            '[ "$CODE" = 403 ] && [ $leaked = 0 ] && [ "$(hdr x-kura-route)" = refused ] && [ -n "$(hdr x-kura-level)" ] && py "j[\"error\"][\"code\"] == \"policy_refused\" and \"level\" in j[\"error\"][\"message\"]"'
    done
done < "$T/pii.txt"
# action local: an explicit upstream with too high a level is rerouted to the local model
for s in 0 1; do
    req POST /v1/chat/completions "$USER" "$(chat_body us-home $s "$(head -n1 "$T/pii.txt")")"
    answer; rc=$?
    check "pii stream=$s us-home (action local): rerouted locally" \
        '[ "$CODE" = 200 ] && [ $rc = 0 ] && [ "$(hdr x-kura-route)" = local:stories ] && [ "$(hdr x-kura-level)" = secret ] && ! grep -q "^Echo" "$T/answer"'
done

# harmless requests do go upstream through auto (and are not altered)
for s in 0 1; do
    req POST /v1/chat/completions "$USER" "$(chat_body auto $s "What is the capital of France? Answer in one word.")"
    sent_upstream=$((sent_upstream + 1))
    answer; rc=$?
    check "harmless stream=$s auto: upstream, level public, echoed" \
        '[ "$CODE" = 200 ] && [ $rc = 0 ] && [ "$(hdr x-kura-route)" = upstream:us-gpt ] && [ "$(hdr x-kura-level)" = public ] && [ "$(cat "$T/answer")" = "Echo: What is the capital of France? Answer in one word." ]'
done
# the client's numeric generation parameters go upstream; text fields like stop strings do not
req POST /v1/chat/completions "$USER" '{"model":"auto","messages":[{"role":"user","content":"Name a colour."}],"temperature":0.25,"max_tokens":7,"seed":42,"stop":["zz-stop"]}'
sent_upstream=$((sent_upstream + 1))
check "numeric parameters forwarded upstream, stop strings not" \
    '[ "$CODE" = 200 ] && tail -n1 "$T/bodies.jsonl" | grep -q "\"temperature\": *0.25" && tail -n1 "$T/bodies.jsonl" | grep -q "\"max_tokens\": *7" && tail -n1 "$T/bodies.jsonl" | grep -q "\"seed\": *42" && ! tail -n1 "$T/bodies.jsonl" | grep -q zz-stop'
# an explicit local model stays local and still gets the headers
req POST /v1/chat/completions "$USER" "$(chat_body stories 0 "田中太郎様の電話は090-1234-5678です。")"
check "explicit local model: local, level reported" '[ "$CODE" = 200 ] && [ "$(hdr x-kura-route)" = local:stories ] && [[ "$(hdr x-kura-level)" =~ ^(secret|confidential)$ ]]'
# completions: auto is served locally; an explicit upstream only serves chat
req POST /v1/completions "$USER" '{"model":"auto","prompt":"Once upon a time","max_tokens":4}'
check "completion via auto: local" '[ "$CODE" = 200 ] && [ "$(hdr x-kura-route)" = local:stories ] && [ "$(hdr x-kura-level)" = public ]'
req POST /v1/completions "$USER" '{"model":"us-gpt","prompt":"Once upon a time","max_tokens":4}'
check "completion via an upstream: 400" '[ "$CODE" = 400 ] && py "j[\"error\"][\"code\"] == \"upstream_chat_only\""'
req POST /v1/chat/completions "$USER" '{"model":"nosuch","messages":[{"role":"user","content":"hi"}]}'
check "unknown model still 404" '[ "$CODE" = 404 ]'

# ---- what reached the upstream ----
check "the mock received every upstream request ($sent_upstream)" '[ "$(wc -l < "$T/bodies.jsonl")" = "$sent_upstream" ]'
python3 -c '
import json, sys
with open(sys.argv[2], "w", encoding="utf-8") as o:
    for l in open(sys.argv[1], encoding="utf-8"):
        for m in json.loads(l)["messages"]:
            o.write(m["content"] + "\n\n")' "$T/bodies.jsonl" "$T/sent.txt"
"$KURA" policy check --json "$T/sent.txt" > "$T/sent.json"
check "zero findings in what the upstream received" 'python3 -c "
import json; j = json.load(open(\"$T/sent.json\")); assert j[\"findings\"] == [], j" 2>/dev/null'
check "placeholders did go out" 'grep -q "<PERSON_1>" "$T/sent.txt" && grep -q "<MY_NUMBER_1>" "$T/sent.txt"'
leaked=
for v in "${VALUES[@]}"; do grep -qF -- "$v" "$T/raw.bin" && leaked="$leaked [$v]"; done
check "no original value in the raw bytes the upstream received" '[ -z "$leaked" ]' || echo "leaked:$leaked"
check "the upstream got the destination's model name" 'grep -q "\"model\":\"gpt-mock\"" "$T/bodies.jsonl"'

# ---- a server without a policy: nothing leaves ----
start_server nopol -m "$MODEL" --model-name tiny --port 0 --threads 1 --max-tokens 4 || exit 1
NOPOL_PID=$PID
req GET /v1/models "$USER"
check "no policy: auto listed, no upstream" '[ "$CODE" = 200 ] && py "sorted(m[\"id\"] for m in j[\"data\"]) == [\"auto\", \"tiny\"]"'
before=$(wc -l < "$T/bodies.jsonl")
req POST /v1/chat/completions "$USER" "$(chat_body auto 1 "What is the capital of France?")"
check "no policy: auto stays local" '[ "$CODE" = 200 ] && [ "$(hdr x-kura-route)" = local:tiny ] && [ "$(hdr x-kura-level)" = public ]'
check "no policy: nothing reached the mock" '[ "$(wc -l < "$T/bodies.jsonl")" = "$before" ]'
stop_server "$NOPOL_PID"
stop_server "$MAIN_PID"

# ---- the audit log ----
"$KURA" audit verify > "$T/verify" 2>&1; rc=$?
check "audit log verifies (rc $rc)" '[ $rc = 0 ]'
"$KURA" audit show --json > "$T/audit.jsonl"
acount() { python3 -c "
import json, sys
n = 0
for l in open('$T/audit.jsonl'):
    r = json.loads(l)
    d = r.get('details') or {}
    p = d.get('policy') if isinstance(d, dict) else None
    if r['action'] == '$1' and ($2): n += 1
print(n)"; }
check "audit: pseudonymised upstream requests with level and finding types" \
    '[ "$(acount api.request "p and p[\"route\"] == \"upstream:us-gpt\" and p[\"decision\"] == \"pseudonymise\" and \"my_number\" in p[\"finding_types\"] and p[\"jurisdiction\"] == \"US\" and d[\"status\"] == 200")" = 6 ]'
check "audit: auto requests routed locally" \
    '[ "$(acount api.request "p and p[\"requested\"] == \"auto\" and p[\"route\"] == \"local:stories\" and p[\"decision\"] == \"route_local\" and \"person\" in p[\"finding_types\"]")" = 10 ]'
check "audit: reroutes of an explicit upstream" \
    '[ "$(acount api.request "p and p[\"requested\"] == \"us-home\" and p[\"route\"] == \"local:stories\" and p[\"decision\"] == \"route_local\"")" = 2 ]'
check "audit: refusals" '[ "$(acount api.request "p and p[\"decision\"] == \"refuse\" and d[\"status\"] == 403")" = 10 ]'
check "audit: harmless auto requests allowed upstream" \
    '[ "$(acount api.request "p and p[\"requested\"] == \"auto\" and p[\"decision\"] == \"allow\" and p[\"level\"] == \"public\" and p[\"finding_types\"] == []")" -ge 2 ]'
check "audit: every egress recorded with destination and jurisdiction" \
    '[ "$(acount policy.egress "r[\"outcome\"] == \"ok\" and d[\"destination\"] == \"us-gpt\" and d[\"jurisdiction\"] == \"US\"")" = "$sent_upstream" ]'
leaked=
for v in "${VALUES[@]}"; do grep -qF -- "$v" "$T/audit.jsonl" && leaked="$leaked [$v]"; done
check "audit: no original value in the log" '[ -z "$leaked" ]' || echo "leaked:$leaked"

sanitizer_check
exit $fail
