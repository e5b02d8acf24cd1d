/* Every vocabulary in ../shared against the reference engine's token ids:
 * ref/tokenize/<vocab>.json (default BOS rule and without it, special tokens parsed) and
 * ref/tokenize-llamacpp/<vocab>.gguf.inp/.out (the engine's own test strings, no BOS, special
 * tokens not parsed). Also decode(encode(x)) == x where the tokenizer is lossless. */
#include <dirent.h>
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kura/gguf.h"
#include "kura/tokenizer.h"
#include "test.h"

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *b = malloc(cap + 1);
    for (;;) {
        if (n == cap) {
            cap *= 2;
            b = realloc(b, cap + 1);
        }
        size_t r = fread(b + n, 1, cap - n, f);
        n += r;
        if (r == 0)
            break;
    }
    fclose(f);
    b[n] = '\0';
    *len = n;
    return b;
}

static int ids_equal_json(const int32_t *ids, size_t n, json_t *arr)
{
    if (!json_is_array(arr) || json_array_size(arr) != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (json_integer_value(json_array_get(arr, i)) != ids[i])
            return 0;
    return 1;
}

static void print_ids(const char *what, const int32_t *ids, size_t n)
{
    fprintf(stderr, "  %s:", what);
    for (size_t i = 0; i < n; i++)
        fprintf(stderr, " %d", (int)ids[i]);
    fputc('\n', stderr);
}

static int lossless(const struct kura_tok *t)
{
    return kura_tok_kind(t) == KURA_TOK_SPM || kura_tok_kind(t) == KURA_TOK_BPE;
}

static void check_json(const char *shared, const char *vocab, const struct kura_tok *t)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/ref/tokenize/%s.json", shared, vocab);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    CHECKF(root != NULL, "%s: %s", path, je.text);
    if (!root)
        return;
    json_t *results = json_object_get(root, "results");
    CHECKF(json_array_size(results) > 0, "%s: no results", path);
    for (size_t i = 0; i < json_array_size(results); i++) {
        json_t *r = json_array_get(results, i);
        char ipath[1024];
        snprintf(ipath, sizeof ipath, "%s/ref/tokenize/inputs/%02zu.txt", shared, i);
        size_t len;
        char *text = read_all(ipath, &len);
        CHECKF(text != NULL, "%s missing", ipath);
        if (!text)
            continue;
        for (int with_bos = 1; with_bos >= 0; with_bos--) {
            json_t *exp = json_object_get(r, with_bos ? "ids" : "ids_no_bos");
            if (!exp)
                continue;
            int32_t *ids;
            size_t n;
            struct kura_errbuf eb = {0};
            enum kura_err e = kura_tok_encode(t, text, len, with_bos, true, &ids, &n, &eb);
            CHECKF(e == KURA_OK, "%s input %zu: %s", vocab, i, eb.msg);
            if (e)
                continue;
            int ok = ids_equal_json(ids, n, exp);
            CHECKF(ok, "%s input %zu (%s): ids differ", vocab, i, with_bos ? "bos" : "no bos");
            if (!ok)
                print_ids("got", ids, n);
            if (!with_bos && lossless(t) && !strstr(text, "<")) {
                char *back;
                size_t blen;
                CHECK(kura_tok_decode(t, ids, n, 0, &back, &blen, NULL) == KURA_OK);
                CHECKF(blen == len && memcmp(back, text, len) == 0,
                       "%s input %zu: decode does not give the text back: '%s'", vocab, i, back);
                free(back);
            }
            free(ids);
        }
        free(text);
    }
    json_decref(root);
}

static void check_llamacpp(const char *shared, const char *vocab, const struct kura_tok *t)
{
    char path[1024];
    size_t in_len, out_len;
    snprintf(path, sizeof path, "%s/ref/tokenize-llamacpp/%s.gguf.inp", shared, vocab);
    char *inp = read_all(path, &in_len);
    if (!inp)
        return; /* not every vocabulary has the engine's own test file */
    snprintf(path, sizeof path, "%s/ref/tokenize-llamacpp/%s.gguf.out", shared, vocab);
    char *out = read_all(path, &out_len);
    CHECKF(out != NULL, "%s missing", path);
    if (!out) {
        free(inp);
        return;
    }
    /* strings separated by "\n__ggml_vocab_test__\n"; expected ids one line per string */
    static const char sep[] = "\n__ggml_vocab_test__\n";
    const size_t sep_len = sizeof sep - 1;
    char *p = inp, *end = inp + in_len, *line = out, *save = NULL;
    (void)save;
    int k = 0;
    while (p < end) {
        char *m = memmem(p, (size_t)(end - p), sep, sep_len);
        size_t slen = m ? (size_t)(m - p) : (size_t)(end - p);
        char *nl = strchr(line, '\n');
        CHECKF(nl != NULL || *line, "%s: fewer expected lines than strings", vocab);
        if (!nl && !*line)
            break;
        if (nl)
            *nl = '\0';
        int32_t exp[4096];
        size_t n_exp = 0;
        for (char *q = line; *q && n_exp < 4096;) {
            char *e2;
            long v = strtol(q, &e2, 10);
            if (e2 == q)
                break;
            exp[n_exp++] = (int32_t)v;
            q = e2;
        }
        int32_t *ids;
        size_t n;
        enum kura_err e = kura_tok_encode(t, p, slen, false, false, &ids, &n, NULL);
        CHECK(e == KURA_OK);
        if (!e) {
            int ok = n == n_exp && (n == 0 || memcmp(ids, exp, n * sizeof *ids) == 0);
            CHECKF(ok, "%s llama.cpp test string %d ('%.*s') differs", vocab, k,
                   (int)(slen < 60 ? slen : 60), p);
            if (!ok) {
                print_ids("exp", exp, n_exp);
                print_ids("got", ids, n);
            }
            free(ids);
        }
        line = nl ? nl + 1 : line + strlen(line);
        p = m ? m + sep_len : end;
        k++;
    }
    free(inp);
    free(out);
}

int main(void)
{
    const char *shared = test_shared_dir();
    if (!shared)
        return TEST_SKIP;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/ref/tokenize", shared);
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "skip: %s not found\n", dir);
        return TEST_SKIP;
    }
    struct dirent *de;
    int n_vocabs = 0;
    while ((de = readdir(d))) {
        size_t nl = strlen(de->d_name);
        if (nl < 6 || strcmp(de->d_name + nl - 5, ".json") || de->d_name[0] == '_' ||
            !strcmp(de->d_name, "inputs.json"))
            continue;
        char vocab[256], model[1400];
        snprintf(vocab, sizeof vocab, "%.*s", (int)(nl - 5), de->d_name);
        if (!strncmp(vocab, "ggml-vocab-", 11))
            snprintf(model, sizeof model, "%s/models/vocab/%s.gguf", shared, vocab);
        else if (!strcmp(vocab, "stories260K-tok512"))
            snprintf(model, sizeof model, "%s/models/stories260K-F32.gguf", shared);
        else
            continue;
        struct kura_errbuf eb = {0};
        struct kura_gguf *g = NULL;
        struct kura_tok *t = NULL;
        enum kura_err e = kura_gguf_open(model, &g, &eb);
        if (!e)
            e = kura_tok_create(g, &t, &eb);
        kura_gguf_close(g); /* the tokenizer must not need the file any more */
        CHECKF(e == KURA_OK, "%s: %s", model, eb.msg);
        if (e)
            continue;
        int before = test_failures;
        check_json(shared, vocab, t);
        check_llamacpp(shared, vocab, t);
        printf("%-28s %s\n", vocab, test_failures == before ? "ok" : "FAILED");
        kura_tok_destroy(t);
        n_vocabs++;
    }
    closedir(d);
    CHECKF(n_vocabs >= 20, "only %d vocabularies found", n_vocabs);
    return test_finish();
}
