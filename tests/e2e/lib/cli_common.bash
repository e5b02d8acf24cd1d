# Shared by the CLI end-to-end scripts: pass/fail bookkeeping and an exit-status check whose
# output lands in $T/out and $T/err (T: the script's temporary directory, set before sourcing).
fail=0
ok()  { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fail=1; }
expect_rc() { # expect_rc RC DESCRIPTION CMD...
    local want=$1 what=$2; shift 2
    "$@" >"$T/out" 2>"$T/err"; local rc=$?
    if [ "$rc" = "$want" ]; then ok "$what (rc $rc)"; else bad "$what: rc $rc, want $want"; cat "$T/out" "$T/err"; fi
}
