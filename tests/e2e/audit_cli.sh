#!/usr/bin/env bash
# End-to-end: kura keys / kura audit with a temporary state directory.
set -u
KURA=${KURA_BIN:?KURA_BIN not set}
T=$(mktemp -d /tmp/kura-e2e-audit-XXXXXX)
trap 'rm -rf "$T"' EXIT
export KURA_STATE_DIR=$T/state KURA_PASSPHRASE='e2e passphrase'
export KURA_ARGON2_OPSLIMIT=1 KURA_ARGON2_MEMLIMIT=8192   # tests only: a cheap KDF
# shellcheck source=lib/cli_common.bash
. "$(dirname "$0")/lib/cli_common.bash"

expect_rc 0 "keys --help" "$KURA" keys --help
expect_rc 0 "audit --help" "$KURA" audit --help
expect_rc 2 "audit without subcommand" "$KURA" audit
expect_rc 2 "audit note without --object" "$KURA" audit note --action x
expect_rc 2 "keys unknown option" "$KURA" keys init --bogus
expect_rc 0 "keys init" "$KURA" keys init
expect_rc 1 "keys init twice" "$KURA" keys init
[ "$(stat -c %a "$T/state/keys/keys.json")" = 600 ] && ok "key file 0600" || bad "key file mode"
[ "$(stat -c %a "$T/state/keys")" = 700 ] && ok "keys dir 0700" || bad "keys dir mode"
grep -q "e2e passphrase" "$T/state/keys/keys.json" && bad "passphrase in key file" || ok "no passphrase in key file"
PUB=$("$KURA" keys export-public) || bad "export-public"
case "$PUB" in ed25519:????????????????????????????????????????????????????????????????) ok "public key $PUB";; *) bad "public key format '$PUB'";; esac
expect_rc 0 "keys status" "$KURA" keys status
grep -q '"signing_public"' "$T/out" && ok "status names the key" || bad "status output"

expect_rc 0 "audit note" "$KURA" audit note --action hardware.swap --object gpu0 --detail "replaced H100 #2"
grep -q "recorded as seq" "$T/out" && ok "note prints seq" || bad "note output"
KURA_PASSPHRASE=wrong expect_rc 1 "note with wrong passphrase" "$KURA" audit note --action x --object y
grep -q "wrong passphrase" "$T/err" && ok "clean wrong-passphrase message" || bad "message: $(cat "$T/err")"
grep -q "wrong" "$T/out" && bad "passphrase echoed" || true

expect_rc 0 "show --json" "$KURA" audit show --json --action hardware.swap
grep -q '"actor":"local:' "$T/out" && ok "actor is local user" || bad "actor: $(cat "$T/out")"
grep -q '"detail":"replaced H100 #2"' "$T/out" && ok "detail recorded" || bad "detail"
expect_rc 0 "show --table" "$KURA" audit show --table --action 'keys.*'
grep -q "keys.init" "$T/out" && ok "keys.init audited" || bad "keys.init not in log"

expect_rc 0 "verify --pubkey" "$KURA" audit verify --pubkey "$PUB"
expect_rc 0 "verify --keys (tags)" "$KURA" audit verify --keys --json
grep -q '"verdict": "intact"' "$T/out" && ok "json verdict" || bad "json verdict"
echo "$PUB" > "$T/pub.txt"
expect_rc 0 "verify --pubkey FILE" "$KURA" audit verify --pubkey "$T/pub.txt"
expect_rc 1 "verify with another key" "$KURA" audit verify --pubkey "ed25519:$(printf '11%.0s' $(seq 32))"

expect_rc 0 "export" "$KURA" audit export --out "$T/bundle.jsonl"
expect_rc 0 "verify-bundle" "$KURA" audit verify-bundle --pubkey "$PUB" "$T/bundle.jsonl"
expect_rc 2 "verify-bundle without key" "$KURA" audit verify-bundle "$T/bundle.jsonl"
sed -i '3s/"ok"/"OK"/' "$T/bundle.jsonl"
expect_rc 1 "verify-bundle of an altered bundle" "$KURA" audit verify-bundle --pubkey "$PUB" "$T/bundle.jsonl"

# rotation: new passphrase, same signing key, log still verifies, old passphrase refused
KURA_NEW_PASSPHRASE='rotated passphrase' expect_rc 0 "keys rotate" "$KURA" keys rotate
[ "$("$KURA" keys export-public)" = "$PUB" ] && ok "signing key kept" || bad "signing key changed"
expect_rc 1 "old passphrase refused" "$KURA" audit note --action x --object y
export KURA_PASSPHRASE='rotated passphrase'
printf 'rotated passphrase\n' > "$T/pass"; chmod 600 "$T/pass"
expect_rc 0 "note with --passphrase-file" env -u KURA_PASSPHRASE "$KURA" audit note --action review --object q3 --passphrase-file "$T/pass"
chmod 644 "$T/pass"
expect_rc 1 "world-readable passphrase file refused" env -u KURA_PASSPHRASE "$KURA" audit note --action review --object q3 --passphrase-file "$T/pass"
grep -q "chmod 600" "$T/err" && ok "says how to fix it" || bad "perm message: $(cat "$T/err")"
expect_rc 0 "verify after rotation" "$KURA" audit verify --pubkey "$PUB" --keys

# bad permissions on the key file
chmod 644 "$T/state/keys/keys.json"
expect_rc 1 "group/world-readable key file refused" "$KURA" audit note --action x --object y
grep -q "chmod 600" "$T/err" && ok "clear permission message" || bad "message: $(cat "$T/err")"
chmod 600 "$T/state/keys/keys.json"

# tampering: flip a byte in a middle record; verify names it and exits 1
LOG=$T/state/audit/audit.log
cp "$LOG" "$T/log.bak"
sed -i '5s/"seq":5,"time":"\(....\)/"seq":5,"time":"1999/' "$LOG"
expect_rc 1 "verify detects an altered record" "$KURA" audit verify --pubkey "$PUB"
grep -q "line 5" "$T/out" && ok "names line 5" || bad "verify output: $(cat "$T/out")"
cp "$T/log.bak" "$LOG"
# truncation: drop the last record
head -n -1 "$T/log.bak" > "$LOG"
expect_rc 1 "verify detects truncation" "$KURA" audit verify --pubkey "$PUB"
cp "$T/log.bak" "$LOG"
expect_rc 1 "expect-min-seq beyond the end" "$KURA" audit verify --pubkey "$PUB" --expect-min-seq 100000
# torn tail: verify reports it, the next write seals it
printf '{"seq":99,"time":"2024' >> "$LOG"
expect_rc 1 "verify reports a torn tail" "$KURA" audit verify --pubkey "$PUB"
grep -q "torn tail" "$T/out" && ok "torn tail named" || bad "torn output: $(cat "$T/out")"
expect_rc 0 "note seals the torn tail" "$KURA" audit note --action after.crash --object node
grep -q "torn tail" "$T/err" && ok "seal reported" || bad "seal not reported"
expect_rc 0 "verify after seal" "$KURA" audit verify --pubkey "$PUB"
# head missing
mv "$T/state/audit/head.json" "$T/head.bak"
expect_rc 1 "verify without head fails" "$KURA" audit verify --pubkey "$PUB"
expect_rc 0 "verify --no-head" "$KURA" audit verify --pubkey "$PUB" --no-head
mv "$T/head.bak" "$T/state/audit/head.json"

# model loads are audited (file digest), and fail closed when the keys cannot be unlocked
MODEL=${KURA_SHARED:-}/models/stories260K-F32.gguf
if [ -f "$MODEL" ]; then
    WANT=$(sha256sum "$MODEL" | cut -d' ' -f1)
    expect_rc 0 "run records the model load" "$KURA" run -m "$MODEL" -p "Once" -n 2 --temp 0
    expect_rc 0 "show model.load" "$KURA" audit show --json --action model.load
    grep -q "\"sha256\":\"$WANT\"" "$T/out" && ok "model.load has the file's SHA-256" || bad "model.load record: $(cat "$T/out")"
    grep -q '"digest_cached":false' "$T/out" && ok "first digest computed" || bad "first digest: $(cat "$T/out")"
    expect_rc 0 "second run" "$KURA" run -m "$MODEL" -p "Once" -n 2 --temp 0
    expect_rc 0 "show model.load again" "$KURA" audit show --json --action model.load
    [ "$(grep -c '"digest_cached":true' "$T/out")" = 1 ] && ok "second digest from the keyed cache" || bad "cache: $(cat "$T/out")"
    # a forged cache entry is ignored (MAC), the digest is recomputed
    sed -i "s/$WANT/$(printf '0%.0s' {1..64})/" "$T/state/cache/digests"
    expect_rc 0 "bench records too" "$KURA" bench -m "$MODEL" -p 4 -n 2 -r 1
    expect_rc 0 "show after forged cache" "$KURA" audit show --json --action model.load
    [ "$(grep -c "\"sha256\":\"$WANT\"" "$T/out")" = 3 ] && ok "forged cache entry ignored" || bad "forged cache: $(cat "$T/out")"
    KURA_PASSPHRASE=wrong expect_rc 1 "run refuses when the load cannot be audited" "$KURA" run -m "$MODEL" -p "Once" -n 2
    expect_rc 1 "missing model" "$KURA" run -m "$T/nope.gguf" -p x -n 1
    expect_rc 0 "show failed load" "$KURA" audit show --json --action model.load
    grep -q '"outcome":"error"' "$T/out" && ok "failed load recorded" || bad "failed load: $(cat "$T/out")"
    expect_rc 0 "verify after model loads" "$KURA" audit verify --pubkey "$PUB"
else
    echo "skip: model-load audit part (no ../shared models)"
fi
exit $fail
