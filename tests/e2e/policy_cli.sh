#!/usr/bin/env bash
# kura policy check / lint through the real binary: JSON shape and byte offsets, stdin and files,
# exit codes, line-accurate lint errors.
set -u
BIN=${KURA_BIN:?KURA_BIN not set}
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
check() { # name expected actual
    if [ "$2" != "$3" ]; then
        echo "FAIL: $1: expected '$2', got '$3'" >&2
        fail=1
    fi
}

"$BIN" policy --help | grep -q "usage: kura policy check" || { echo "FAIL: --help" >&2; fail=1; }
"$BIN" policy check --help >/dev/null; check "check --help exits 0" 0 $?
"$BIN" policy >/dev/null 2>&1; check "no subcommand exits 2" 2 $?
"$BIN" policy check --bogus </dev/null >/dev/null 2>&1; check "unknown option exits 2" 2 $?
"$BIN" policy check /nonexistent/file >/dev/null 2>&1; check "missing file exits 1" 1 $?
"$BIN" policy check --policy /nonexistent.yaml </dev/null >/dev/null 2>&1; check "missing policy exits 1" 1 $?

# stdin, --json: exactly one object with byte offsets into the input
printf '田中様の電話は０９０－１２３４－５６７８、mail: a.b@example.com\n' > "$tmp/in.txt"
out=$("$BIN" policy check --json < "$tmp/in.txt" 2>/dev/null)
check "json from stdin exits 0" 0 $?
py='import json,sys
d=json.loads(sys.stdin.read())
assert set(d)=={"findings","level","decision"}, d.keys()
data=open(sys.argv[1],"rb").read()
for f in d["findings"]:
    assert set(f)=={"type","start","end","rule","confidence"}, f
    print(f["type"], data[f["start"]:f["end"]].decode())
print(d["level"], d["decision"])'
got=$(printf '%s' "$out" | python3 -c "$py" "$tmp/in.txt")
want=$(printf 'person 田中\nphone ０９０－１２３４－５６７８\nemail a.b@example.com\nconfidential route_local')
check "json findings and spans" "$want" "$got"
[ "$(printf '%s\n' "$out" | wc -l)" = 1 ] || { echo "FAIL: --json printed more than one line" >&2; fail=1; }
# file argument and '-' give the same answer
check "file == stdin" "$out" "$("$BIN" policy check --json "$tmp/in.txt" 2>/dev/null)"
check "- == stdin" "$out" "$("$BIN" policy check --json - < "$tmp/in.txt" 2>/dev/null)"
# nothing found: public, and without upstreams nothing leaves (route_local to the local model)
got=$(printf 'The weather is nice today.' | "$BIN" policy check --json 2>/dev/null)
check "clean text" '{"findings":[],"level":"public","decision":"route_local"}' "$got"

# a policy with an upstream: public text is allowed there, personal data pseudonymised
cat > "$tmp/p.yaml" <<'YAML'
rules:
  - name: project_x
    level: secret
    keywords: [Project Kirin]
destinations:
  - name: local
    kind: local
  - name: cloud
    url: https://api.example.com/v1
    jurisdiction: US
    max_level: public
    action: pseudonymise
default_destination: cloud
YAML
got=$(printf 'Hello there' | "$BIN" policy check --json --policy "$tmp/p.yaml" 2>/dev/null)
check "auto allows public" '{"findings":[],"level":"public","decision":"allow"}' "$got"
got=$(printf 'Call 090-1234-5678' | "$BIN" policy check --json --policy "$tmp/p.yaml" --dest cloud 2>/dev/null)
check "explicit upstream pseudonymises" '{"findings":[{"type":"phone","start":5,"end":18,"rule":"jp_phone_ctx","confidence":0.97}],"level":"confidential","decision":"pseudonymise"}' "$got"
got=$(printf 'About project kirin.' | "$BIN" policy check --json --policy "$tmp/p.yaml" 2>/dev/null)
check "operator rule" '{"findings":[{"type":"project_x","start":6,"end":19,"rule":"project_x","confidence":0.9}],"level":"secret","decision":"route_local"}' "$got"
"$BIN" policy check --policy "$tmp/p.yaml" < "$tmp/in.txt" | grep -q "^decision: route_local -> local" \
    || { echo "FAIL: text output" >&2; fail=1; }

# lint
"$BIN" policy lint "$tmp/p.yaml" >/dev/null; check "lint ok exits 0" 0 $?
cat > "$tmp/bad.yaml" <<'YAML'
levels:
  phone: ultra
rules:
  - name: r
    pattern: '(unclosed'
destinations:
  - name: x
    url: https://x.example/v1
    jurisdiction: US
    colour: red
YAML
out=$("$BIN" policy lint "$tmp/bad.yaml" 2>/dev/null)
check "lint bad exits 1" 1 $?
printf '%s\n' "$out" | grep -q "^$tmp/bad.yaml:2: .*unknown level 'ultra'" || { echo "FAIL: lint line 2: $out" >&2; fail=1; }
printf '%s\n' "$out" | grep -q "^$tmp/bad.yaml:5: .*bad regular expression" || { echo "FAIL: lint line 5: $out" >&2; fail=1; }
printf '%s\n' "$out" | grep -q "^$tmp/bad.yaml:10: .*unknown key 'colour'" || { echo "FAIL: lint line 10: $out" >&2; fail=1; }
"$BIN" policy check --policy "$tmp/bad.yaml" </dev/null 2>&1 >/dev/null | grep -q "bad.yaml:2:" \
    || { echo "FAIL: check with a bad policy names file:line" >&2; fail=1; }
"$BIN" policy lint /nonexistent.yaml >/dev/null 2>&1; check "lint missing exits 1" 1 $?
"$BIN" policy lint >/dev/null 2>&1; check "lint without file exits 2" 2 $?
exit $fail
