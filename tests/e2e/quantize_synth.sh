#!/usr/bin/env bash
# `kura quantize` and `kura model synth` through the CLI: every quantization type of the shared
# tiny-qwen2 F32 model must list the same tensors (type, shape, bytes) and metadata as the
# reference file of that type; synthesized models of each architecture must re-open with the
# expected tensors and metadata; bad invocations give exit code 2, failures 1.
set -uo pipefail
K=${KURA_BIN:?KURA_BIN not set}
S=${KURA_SHARED:-}
if [ ! -d "$S/models" ]; then
    echo "skip: shared models directory not found (KURA_SHARED='$S')"
    exit 77
fi
M=$S/models
T=$(mktemp -d /tmp/kura-e2e-quant-XXXXXX)
trap 'rm -rf "$T"' EXIT
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
# expect_rc RC CMD...: runs CMD, output in $T/out, checks its exit code.
expect_rc() {
    local want=$1; shift
    "$@" > "$T/out" 2>&1
    local rc=$?
    [ "$rc" -eq "$want" ] || { fail "exit $rc (want $want): $*"; sed 's/^/    /' "$T/out" | tail -5; }
}
has() { grep -qF -- "$1" "$T/out" || fail "output of last command lacks '$1'"; }
# haskv KEY VALUE: a metadata line of `kura inspect`; hast NAME TYPE SHAPE: a tensor line.
haskv() { grep -qE -- "^  ${1//./\\.} += $2\$" "$T/out" || fail "output lacks metadata $1 = $2"; }
hast() {
    grep -qE -- "^  ${1//./\\.} +$2 +\\[$3\\] " "$T/out" || fail "output lacks tensor $1 $2 [$3]"
}
lacks() { grep -qE -- "$1" "$T/out" && fail "output has '$1'"; }
# Tensor lines (name type shape bytes) and metadata lines of `kura inspect --tensors`, sorted.
listing() { "$K" inspect --tensors "$1" | grep -E '^  [a-z]' | grep -v '^  general.name' | tr -s ' ' | sort; }

# --- quantize -----------------------------------------------------------------------------
expect_rc 0 "$K" quantize --help; has "q4_k_m"; has "--threads"
expect_rc 2 "$K" quantize "$M/tiny-qwen2-F32.gguf" "$T/x.gguf"; has "--type is required"
expect_rc 2 "$K" quantize "$M/tiny-qwen2-F32.gguf" "$T/x.gguf" --type q3_x; has "unknown type 'q3_x'"
expect_rc 2 "$K" quantize "$M/tiny-qwen2-F32.gguf" --type q8_0; has "needs IN.gguf and OUT.gguf"
expect_rc 2 "$K" quantize "$M/tiny-qwen2-F32.gguf" "$T/x.gguf" --type q8_0 --threads 0
expect_rc 1 "$K" quantize "$T/none.gguf" "$T/x.gguf" --type q8_0; has "none.gguf"
expect_rc 1 "$K" quantize "$M/tiny-qwen2-F32.gguf" "$T/no/dir/x.gguf" --type q8_0
[ -e "$T/x.gguf" ] && fail "a failed quantize left $T/x.gguf"

declare -A FTYPE=([f32]=0 [f16]=1 [bf16]=32 [q8_0]=7 [q4_0]=2 [q4_1]=3 [q5_0]=8 [q5_1]=9
                  [q4_k_m]=15 [q5_k_m]=17 [q6_k]=18)
for t in f32 f16 bf16 q8_0 q4_0 q4_1 q5_0 q5_1 q4_k_m q5_k_m q6_k; do
    out=$T/qwen2-$t.gguf
    expect_rc 0 "$K" quantize "$M/tiny-qwen2-F32.gguf" "$out" --type "$t" --threads 2
    has "wrote $out"
    expect_rc 0 "$K" inspect "$out"
    haskv "general.file_type" "${FTYPE[$t]}"
    haskv "general.quantization_version" "2"
    ref=$M/tiny-qwen2-${t^^}.gguf
    # The F32 reference came from the converter, which does not write quantization_version.
    if ! diff <(listing "$out" | grep -v "quantization_version = 2") \
              <(listing "$ref" | grep -v "quantization_version = 2") > "$T/diff"; then
        fail "$t: tensors/metadata differ from $ref"; head -10 "$T/diff"
    fi
done
# K-quant mix details, spelled out.
expect_rc 0 "$K" inspect --tensors "$T/qwen2-q4_k_m.gguf"
hast "blk.0.attn_v.weight" q4_k "256, 128"
hast "blk.1.attn_v.weight" q6_k "256, 128"
hast "blk.1.ffn_down.weight" q6_k "512, 256"
hast "output.weight" q6_k "256, 512"
hast "blk.0.attn_q.bias" f32 "256"
# 172-column ffn_down falls back to F16; 64-column output to Q8_0.
expect_rc 0 "$K" quantize --quiet "$M/stories260K-F32.gguf" "$T/s.gguf" --type q4_0
expect_rc 0 "$K" inspect --tensors "$T/s.gguf"
hast "blk.4.ffn_down.weight" f16 "172, 64"
hast "output.weight" q8_0 "64, 512"
hast "blk.4.ffn_up.weight" q4_0 "64, 172"
# Quantizing a quantized model (dequantize, then quantize).
expect_rc 0 "$K" quantize --quiet "$T/qwen2-q8_0.gguf" "$T/q80-q4km.gguf" --type q4_k_m
expect_rc 0 "$K" inspect --tensors "$T/q80-q4km.gguf"; has "blk.1.ffn_down.weight            q6_k"

# --- model synth --------------------------------------------------------------------------
expect_rc 0 "$K" model synth --help; has "--vocab-from"
expect_rc 2 "$K" model
expect_rc 2 "$K" model frobnicate
expect_rc 2 "$K" model synth --n-embd 64 -o "$T/x.gguf"; has "--arch is required"
expect_rc 2 "$K" model synth --arch gpt2 --n-embd 64 --n-layer 1 --n-head 2 --n-head-kv 2 \
    --n-ff 128 --vocab-from "$M/stories260K-F32.gguf" --type f32 -o "$T/x.gguf"
has "'gpt2'"
expect_rc 2 "$K" model synth --arch llama --n-embd 64 --n-layer 1 --n-head 4 --n-head-kv 3 \
    --n-ff 128 --vocab-from "$M/stories260K-F32.gguf" --type f32 -o "$T/x.gguf"
has "n_head_kv"
expect_rc 2 "$K" model synth --arch llama --n-embd abc --n-layer 1 --n-head 4 --n-head-kv 2 \
    --n-ff 128 --vocab-from "$M/stories260K-F32.gguf" --type f32 -o "$T/x.gguf"
expect_rc 1 "$K" model synth --arch llama --n-embd 64 --n-layer 1 --n-head 4 --n-head-kv 2 \
    --n-ff 128 --vocab-from "$T/none.gguf" --type f32 -o "$T/x.gguf"
[ -e "$T/x.gguf" ] && fail "a failed synth left $T/x.gguf"

synth() { # ARCH TYPE OUT extra...
    local arch=$1 type=$2 out=$3; shift 3
    expect_rc 0 "$K" model synth --arch "$arch" --n-embd 256 --n-layer 3 --n-head 4 \
        --n-head-kv 2 --n-ff 512 --ctx 1024 --vocab-from "$M/stories260K-F32.gguf" \
        --type "$type" --seed 7 --threads 2 -o "$out" "$@"
}
for arch in llama qwen2 qwen3; do
    for t in q4_k_m q8_0 f16; do
        out=$T/$arch-$t.gguf
        synth "$arch" "$t" "$out"
        expect_rc 0 "$K" inspect --tensors "$out"
        has "architecture:  $arch"
        haskv "general.file_type" "${FTYPE[$t]}"
        haskv "$arch.context_length" "1024"
        haskv "$arch.embedding_length" "256"
        haskv "$arch.block_count" "3"
        haskv "$arch.feed_forward_length" "512"
        haskv "$arch.attention.head_count" "4"
        haskv "$arch.attention.head_count_kv" "2"
        haskv "$arch.rope.dimension_count" "64"
        haskv "$arch.vocab_size" "512"
        haskv "tokenizer.ggml.tokens" "\\[str x 512\\] .*"
        has "token_embd.weight"
        has "blk.2.ffn_down.weight"
        hast "output_norm.weight" f32 "256"
        has "blk.2.attn_k.weight"
        case $arch in
        qwen2) hast "blk.0.attn_k.bias" f32 "128"
               lacks "attn_q_norm";;
        qwen3) hast "blk.0.attn_q_norm.weight" f32 "64"
               haskv "qwen3.attention.key_length" "64"
               lacks "attn_q\\.bias";;
        llama) lacks "attn_q\\.bias|attn_q_norm";;
        esac
    done
done
expect_rc 0 "$K" inspect --tensors "$T/llama-q4_k_m.gguf"
hast "output.weight" q6_k "256, 512"
# use_more_bits(i, 3) holds for layer 2 only.
hast "blk.0.attn_v.weight" q4_k "256, 128"
hast "blk.1.attn_v.weight" q4_k "256, 128"
hast "blk.2.attn_v.weight" q6_k "256, 128"
hast "blk.1.ffn_down.weight" q4_k "512, 256"
hast "blk.2.ffn_down.weight" q6_k "512, 256"
# Same seed, same bytes; tied embeddings: no output.weight, token_embd takes the output type.
synth qwen2 q4_k_m "$T/again.gguf"
cmp -s "$T/again.gguf" "$T/qwen2-q4_k_m.gguf" || fail "synth is not deterministic"
synth qwen2 q4_k_m "$T/tied.gguf" --tied
expect_rc 0 "$K" inspect --tensors "$T/tied.gguf"
lacks "^  output\\.weight"
hast "token_embd.weight" q6_k "256, 512"
# Real BPE vocabulary: every tokenizer key copied.
expect_rc 0 "$K" model synth --arch llama --n-embd 64 --n-layer 1 --n-head 2 --n-head-kv 1 \
    --n-ff 128 --rope-theta 500000 --tied --vocab-from "$M/vocab/ggml-vocab-llama-bpe.gguf" \
    --type q8_0 --quiet -o "$T/bpe.gguf"
"$K" inspect "$M/vocab/ggml-vocab-llama-bpe.gguf" | grep '^  tokenizer\.' | sort > "$T/want"
"$K" inspect "$T/bpe.gguf" | grep '^  tokenizer\.' | sort > "$T/got"
cmp -s "$T/want" "$T/got" || fail "tokenizer keys differ from the vocabulary file"
expect_rc 0 "$K" inspect "$T/bpe.gguf"
haskv "llama.vocab_size" "128256"
haskv "llama.rope.freq_base" "500000"
# Synth output quantizes further like any model.
expect_rc 0 "$K" quantize --quiet "$T/qwen3-f16.gguf" "$T/qwen3-q5km.gguf" --type q5_k_m
expect_rc 0 "$K" inspect "$T/qwen3-q5km.gguf"; haskv "general.file_type" "17"

ls "$T" | grep -q '\.tmp\.' && fail "temporary files left behind"
if [ "$failures" -ne 0 ]; then
    echo "$failures failure(s)"
    exit 1
fi
echo "ok"
