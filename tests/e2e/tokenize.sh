#!/usr/bin/env bash
# kura tokenize against the reference engine's ids, driving the real binary.
set -u
BIN=${KURA_BIN:?KURA_BIN not set}
SHARED=${KURA_SHARED:-}
fail=0
check() { # name expected actual
    if [ "$2" != "$3" ]; then
        echo "FAIL: $1: expected '$2', got '$3'" >&2
        fail=1
    fi
}

# usage errors and help, no models needed
"$BIN" tokenize --help | grep -q "usage: kura tokenize" || { echo "FAIL: --help" >&2; fail=1; }
"$BIN" tokenize >/dev/null 2>&1; check "no -m exits 2" 2 $?
"$BIN" tokenize -m >/dev/null 2>&1; check "-m without value exits 2" 2 $?
"$BIN" tokenize --bogus >/dev/null 2>&1; check "unknown option exits 2" 2 $?
"$BIN" tokenize -m /nonexistent.gguf -p x >/dev/null 2>&1; check "missing file exits 1" 1 $?

if [ -z "$SHARED" ] || [ ! -d "$SHARED/ref/tokenize" ]; then
    echo "skip: shared models directory not found" >&2
    [ $fail = 0 ] && exit 77 || exit 1
fi
REF=$SHARED/ref/tokenize

# expected ids from the reference JSON (python3 only reads the file; kura does the work)
expected() { # vocab index key
    python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(json.dumps(d["results"][int(sys.argv[2])][sys.argv[3]]))' \
        "$REF/$1.json" "$2" "$3"
}

for vocab in ggml-vocab-llama-bpe ggml-vocab-qwen2 ggml-vocab-llama-spm; do
    model=$SHARED/models/vocab/$vocab.gguf
    for i in 04 16; do   # Japanese, special-looking text (the unit test covers every input)
        got=$("$BIN" tokenize -m "$model" < "$REF/inputs/$i.txt"); check "$vocab $i rc" 0 $?
        check "$vocab input $i" "$(expected $vocab $((10#$i)) ids)" "$got"
        got=$("$BIN" tokenize -m "$model" --no-bos < "$REF/inputs/$i.txt")
        check "$vocab input $i --no-bos" "$(expected $vocab $((10#$i)) ids_no_bos)" "$got"
    done
done

# -p and stdin agree; the stories model's own vocabulary
m=$SHARED/models/stories260K-F32.gguf
a=$("$BIN" tokenize -m "$m" -p "Hello world")
b=$(printf 'Hello world' | "$BIN" tokenize -m "$m")
check "stories -p" "[1, 346, 306, 414, 263, 304, 341]" "$a"
check "stories stdin" "$a" "$b"

# chat markers become single special tokens
got=$("$BIN" tokenize -m "$SHARED/models/vocab/ggml-vocab-qwen2.gguf" -p "<|im_start|>user")
check "qwen2 chat marker" "[151644, 872]" "$got"

exit $fail
