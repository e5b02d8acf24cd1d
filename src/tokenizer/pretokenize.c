/* Regex pre-tokenizers for byte-level BPE, chosen by tokenizer.ggml.pre. Each entry is a list
 * of patterns applied in turn: pattern k splits every piece left by pattern k-1 into its
 * matches and the gaps between them (both kept), each piece matched as a subject of its own
 * (so look-arounds and `$` stop at the piece's ends). The pattern texts are the published
 * pre-tokenizer regexes of each model family (their tokenizer.json files). */
#include "tokenizer/tok_int.h"

#include <stdlib.h>
#include <string.h>

#define GPT2_RE "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define CONTRACTIONS_RE "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
#define CJK_RE "[一-龥ࠀ-一가-퟿]+"

static const char *const re_default[] = {"[\\p{P}\\$\\+<=>\\^~\\|]+", GPT2_RE, "\\p{N}+",
                                         "[0-9][0-9][0-9]", NULL};
static const char *const re_llama3[] = {
    CONTRACTIONS_RE "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
                    "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    NULL};
/* Letterlike and Greek-extended code points are written as escapes: they are compatibility
 * characters that editors and normalizers like to replace with their canonical twins. */
static const char *const re_deepseek_llm[] = {
    "[\\r\\n]",
    "\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-\\x{1F7D}ᾀ-ᾴᾶ-ᾼ\\x{1FBE}ῂ-ῄῆ-ῌῐ-\\x{1FD3}ῖ-\\x{1FDB}ῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤ\\x{2126}ℨ\\x{212A}-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+",
    "\\s?[!-/:-~！-／：-～‘-‟　-。]+",
    "\\s+$",
    CJK_RE,
    "\\p{N}+",
    NULL};
static const char *const re_deepseek_coder[] = {"[\\r\\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", CJK_RE,
                                                "\\p{N}", NULL};
static const char *const re_falcon[] = {"[\\p{P}\\$\\+<=>\\^~\\|`]+", GPT2_RE, "[0-9][0-9][0-9]",
                                        NULL};
static const char *const re_digits_gpt2[] = {"\\p{N}", GPT2_RE, NULL};
static const char *const re_gpt2[] = {GPT2_RE, NULL};
static const char *const re_qwen2[] = {
    CONTRACTIONS_RE "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*"
                    "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    NULL};
static const char *const re_qwen35[] = {
    CONTRACTIONS_RE "|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*"
                    "|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    NULL};
static const char *const re_gemma4[] = {"[^\\n]+|[\\n]+", NULL};

static const char *const *pre_regexes(enum pre_kind p)
{
    switch (p) {
    case PRE_LLAMA3: return re_llama3;
    case PRE_DEEPSEEK_LLM: return re_deepseek_llm;
    case PRE_DEEPSEEK_CODER: return re_deepseek_coder;
    case PRE_FALCON: return re_falcon;
    case PRE_STARCODER:
    case PRE_REFACT:
    case PRE_COMMAND_R: return re_digits_gpt2;
    case PRE_GPT2:
    case PRE_MPT: return re_gpt2;
    case PRE_QWEN2: return re_qwen2;
    case PRE_QWEN35: return re_qwen35;
    case PRE_GEMMA4: return re_gemma4;
    case PRE_DEFAULT: break;
    }
    return re_default;
}

int tok_pre_compile(struct kura_tok *t, struct kura_errbuf *eb)
{
    const char *const *list = pre_regexes(t->pre);
    for (t->n_re = 0; list[t->n_re]; t->n_re++) {
        int errcode;
        PCRE2_SIZE erroff;
        /* `$` must mean the end of the piece only, as in ECMAScript */
        pcre2_code *re = pcre2_compile((PCRE2_SPTR)list[t->n_re], PCRE2_ZERO_TERMINATED,
                                       PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &errcode,
                                       &erroff, NULL);
        if (!re) {
            PCRE2_UCHAR msg[128];
            pcre2_get_error_message(errcode, msg, sizeof msg);
            return kura_err_set(eb, KURA_ERR_INTERNAL, "pre-tokenizer regex %u: %s at %zu",
                                t->n_re, (const char *)msg, (size_t)erroff);
        }
        pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* optional: falls back to the interpreter */
        t->re[t->n_re] = re;
    }
    return KURA_OK;
}

void tok_pre_free(struct kura_tok *t)
{
    for (uint32_t i = 0; i < t->n_re; i++)
        pcre2_code_free(t->re[i]);
    t->n_re = 0;
}

/* text must be valid UTF-8 (the caller sanitizes). */
int tok_pre_split(const struct kura_tok *t, const char *text, size_t len, struct spanvec *out)
{
    struct spanvec a = {0}, b = {0};
    pcre2_match_data *md = NULL;
    int err = KURA_OK;
    out->n = 0;
    if (len == 0)
        return KURA_OK;
    if ((err = spanvec_push(&a, 0, len)))
        goto done;
    md = pcre2_match_data_create(4, NULL);
    if (!md) {
        err = KURA_ERR_NOMEM;
        goto done;
    }
    for (uint32_t r = 0; r < t->n_re; r++) {
        b.n = 0;
        for (size_t k = 0; k < a.n; k++) {
            const char *subj = text + a.v[k].off;
            size_t slen = a.v[k].len, pos = 0, last = 0;
            while (pos <= slen) {
                int rc = pcre2_match(t->re[r], (PCRE2_SPTR)subj, slen, pos, PCRE2_NO_UTF_CHECK,
                                     md, NULL);
                if (rc < 0)
                    break; /* no match (or a resource limit): the rest stays one piece */
                PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
                size_t ms = ov[0], me = ov[1];
                if (me == ms) { /* empty match: step one character, emit nothing */
                    if (ms >= slen)
                        break;
                    pos = ms + tok_utf8_len((unsigned char)subj[ms]);
                    continue;
                }
                if (ms > last && (err = spanvec_push(&b, a.v[k].off + last, ms - last)))
                    goto done;
                if ((err = spanvec_push(&b, a.v[k].off + ms, me - ms)))
                    goto done;
                last = pos = me;
            }
            if (last < slen && (err = spanvec_push(&b, a.v[k].off + last, slen - last)))
                goto done;
        }
        struct spanvec tmp = a;
        a = b;
        b = tmp;
    }
    /* hand a's storage to out */
    free(out->v);
    *out = a;
    a.v = NULL;
done:
    pcre2_match_data_free(md);
    free(a.v);
    free(b.v);
    return err;
}
