/* Person names through MeCab (mecab-ipadic-utf8): proper-noun person tags (名詞,固有名詞,人名),
 * accepted when the name is a family + given name pair, or followed by an honorific (さん, 様,
 * 氏, 殿, 先生, ...), or preceded by a name field word (氏名, 名前, 担当, ...). Unknown katakana
 * words right before an honorific are names too (foreign names: スミスさん).
 * The model is shared; each call makes its own tagger and lattice, so calls are thread-safe. */
#include <mecab.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "policy/policy_int.h"

struct kura_mecab {
    mecab_model_t *model;
    pthread_key_t key; /* per-thread tagger + lattice, reused across calls */
};

struct tagger_tls {
    mecab_t *tagger;
    mecab_lattice_t *lat;
};

static void tls_free(void *p)
{
    struct tagger_tls *t = p;
    if (!t)
        return;
    if (t->lat)
        mecab_lattice_destroy(t->lat);
    if (t->tagger)
        mecab_destroy(t->tagger);
    free(t);
}

static bool is_dir(const char *p)
{
    struct stat st;
    return p && stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

struct kura_mecab *kura_mecab_open(const char *dic, char *why, size_t why_len)
{
    static const char *const candidates[] = {
        "/var/lib/mecab/dic/ipadic-utf8", "/usr/lib/x86_64-linux-gnu/mecab/dic/ipadic-utf8",
        "/usr/lib/aarch64-linux-gnu/mecab/dic/ipadic-utf8", "/usr/lib/mecab/dic/ipadic-utf8",
        "/usr/share/mecab/dic/ipadic", "/usr/local/lib/mecab/dic/ipadic"};
    const char *use = NULL;
    if (dic && *dic) {
        use = dic;
    } else if (getenv("KURA_MECAB_DIC") && *getenv("KURA_MECAB_DIC")) {
        use = getenv("KURA_MECAB_DIC");
    } else {
        for (size_t k = 0; k < sizeof candidates / sizeof candidates[0] && !use; k++)
            if (is_dir(candidates[k]))
                use = candidates[k];
    }
    if (!use) {
        snprintf(why, why_len, "no ipadic-utf8 dictionary found (install mecab-ipadic-utf8 "
                               "or set KURA_MECAB_DIC)");
        return NULL;
    }
    char sysdic[4200];
    snprintf(sysdic, sizeof sysdic, "%s/sys.dic", use);
    if (!is_file(sysdic)) {
        snprintf(why, why_len, "dictionary '%s' has no sys.dic", use);
        return NULL;
    }
    /* an rc file must exist for MeCab; the dictionary's own dicrc is enough */
    char arg[8600];
    const char *rc = is_file("/etc/mecabrc") ? "/etc/mecabrc" : "/dev/null";
    snprintf(arg, sizeof arg, "-r %s -d %s", rc, use);
    if (strchr(use, ' ')) {
        snprintf(why, why_len, "dictionary path '%s' contains a space", use);
        return NULL;
    }
    mecab_model_t *model = mecab_model_new2(arg);
    if (!model) {
        const char *err = mecab_strerror(NULL);
        snprintf(why, why_len, "mecab could not load '%s': %s", use, err ? err : "unknown error");
        return NULL;
    }
    struct kura_mecab *m = calloc(1, sizeof *m);
    if (!m) {
        mecab_model_destroy(model);
        snprintf(why, why_len, "out of memory");
        return NULL;
    }
    m->model = model;
    if (pthread_key_create(&m->key, tls_free) != 0) {
        mecab_model_destroy(model);
        free(m);
        snprintf(why, why_len, "pthread_key_create failed");
        return NULL;
    }
    return m;
}

void kura_mecab_close(struct kura_mecab *m)
{
    if (!m)
        return;
    /* this thread's tagger goes now; other threads' go when they exit */
    tls_free(pthread_getspecific(m->key));
    pthread_setspecific(m->key, NULL);
    pthread_key_delete(m->key);
    mecab_model_destroy(m->model);
    free(m);
}

static const char *const honorifics[] = {"さん", "様", "さま", "氏", "殿", "先生", "くん", "君", "ちゃん"};
static const char *const name_fields[] = {"氏名", "名前", "担当", "患者", "宛名", "契約者",
                                          "申込者", "名義", "署名", "依頼者", "本人"};

static bool starts(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

static bool surface_is(const mecab_node_t *nd, const char *w)
{
    size_t l = strlen(w);
    return nd->length == l && memcmp(nd->surface, w, l) == 0;
}

static bool is_honorific(const mecab_node_t *nd)
{
    for (size_t k = 0; k < sizeof honorifics / sizeof honorifics[0]; k++)
        if (surface_is(nd, honorifics[k]))
            return true;
    return false;
}

static bool all_katakana(const char *s, size_t l)
{
    if (l < 6)
        return false;
    for (size_t i = 0; i + 2 < l + 0 && i < l; i += 3) {
        const unsigned char *u = (const unsigned char *)s + i;
        if (u[0] != 0xE3)
            return false;
        unsigned cp = ((u[0] & 0x0Fu) << 12) | ((u[1] & 0x3Fu) << 6) | (u[2] & 0x3Fu);
        if (!(cp >= 0x30A1 && cp <= 0x30FC))
            return false;
    }
    return l % 3 == 0;
}

/* A name field word ending within a few bytes before position a. */
static bool name_field_before(const char *t, size_t a)
{
    size_t lo = a > 18 ? a - 18 : 0;
    for (size_t k = 0; k < sizeof name_fields / sizeof name_fields[0]; k++) {
        size_t l = strlen(name_fields[k]);
        for (size_t p = lo; p + l <= a; p++)
            if (memcmp(t + p, name_fields[k], l) == 0) {
                /* only separators between the word and the name */
                size_t q = p + l;
                bool ok = true;
                while (q < a) {
                    if (t[q] == ':' || t[q] == ' ') {
                        q++;
                    } else if (a - q >= 3 && (memcmp(t + q, "は", 3) == 0 || memcmp(t + q, "者", 3) == 0 ||
                                              memcmp(t + q, "の", 3) == 0)) {
                        q += 3;
                    } else {
                        ok = false;
                        break;
                    }
                }
                if (ok)
                    return true;
            }
    }
    return false;
}

/* Parses one segment norm[s0, s1) and appends its person findings. */
static int persons_segment(struct tagger_tls *tl, const char *norm, size_t s0, size_t s1,
                           struct kura_findings *out)
{
    mecab_lattice_set_sentence2(tl->lat, norm + s0, s1 - s0);
    if (!mecab_parse_lattice(tl->tagger, tl->lat))
        return -1;
    const mecab_node_t *nd = mecab_lattice_get_bos_node(tl->lat);
    nd = nd ? nd->next : NULL;
    while (nd && nd->stat != MECAB_EOS_NODE) {
        const char *feat = nd->feature ? nd->feature : "";
        bool person = starts(feat, "名詞,固有名詞,人名");
        if (!person) {
            /* unknown katakana word + honorific */
            if (nd->next && nd->next->stat != MECAB_EOS_NODE && is_honorific(nd->next) &&
                all_katakana(nd->surface, nd->length) && nd->next->surface == nd->surface + nd->length) {
                size_t a = (size_t)(nd->surface - norm);
                if (kura_findings_push(out, KURA_PII_PERSON, a, a + nd->length, 0.8f,
                                       "jp_katakana_honorific", -1))
                    return -1;
            }
            nd = nd->next;
            continue;
        }
        size_t a = (size_t)(nd->surface - norm), b = a + nd->length;
        bool sei = strstr(feat, "人名,姓") != NULL, mei = strstr(feat, "人名,名") != NULL;
        int count = 1;
        const mecab_node_t *last = nd;
        while (last->next && last->next->stat != MECAB_EOS_NODE &&
               starts(last->next->feature ? last->next->feature : "", "名詞,固有名詞,人名")) {
            const mecab_node_t *x = last->next;
            size_t xa = (size_t)(x->surface - norm);
            bool adjacent = xa == b || (xa == b + 1 && norm[b] == ' ');
            if (!adjacent)
                break;
            sei |= strstr(x->feature, "人名,姓") != NULL;
            mei |= strstr(x->feature, "人名,名") != NULL;
            b = xa + x->length;
            last = x;
            count++;
        }
        const mecab_node_t *after = last->next;
        bool hon = after && after->stat != MECAB_EOS_NODE && is_honorific(after) &&
                   (size_t)(after->surface - norm) == b;
        bool field = name_field_before(norm, a);
        float conf = 0;
        if (sei && mei)
            conf = (hon || field) ? 0.95f : 0.85f;
        else if (hon)
            conf = 0.85f;
        else if (field)
            conf = 0.75f;
        if (conf > 0 && b - a >= 3) {
            if (kura_findings_push(out, KURA_PII_PERSON, a, b, conf,
                                   hon ? "jp_person_honorific" : "jp_person_mecab", -1))
                return -1;
        }
        (void)count;
        nd = last->next;
    }
    return 0;
}

static bool segment_end(const char *t, size_t n, size_t p, size_t *len)
{
    if (t[p] == '\n' || t[p] == '!' || t[p] == '?') {
        *len = 1;
        return true;
    }
    if (p + 3 <= n && memcmp(t + p, "。", 3) == 0) {
        *len = 3;
        return true;
    }
    return false;
}

int kura_mecab_persons(struct kura_mecab *m, const char *norm, size_t n, struct kura_findings *out)
{
    if (n == 0)
        return 0;
    struct tagger_tls *tl = pthread_getspecific(m->key);
    if (!tl) {
        tl = calloc(1, sizeof *tl);
        if (!tl)
            return -1;
        tl->tagger = mecab_model_new_tagger(m->model);
        tl->lat = mecab_model_new_lattice(m->model);
        if (!tl->tagger || !tl->lat || pthread_setspecific(m->key, tl) != 0) {
            tls_free(tl);
            return -1;
        }
    }
    /* only segments with kanji or katakana can hold a Japanese name: skip the rest */
    size_t s0 = 0;
    bool ja = false;
    for (size_t p = 0; p <= n; p++) {
        size_t sl = 0;
        /* very long segments are cut (at a character start) to bound MeCab's lattice */
        bool cut = p < n && p - s0 >= 16384 && ((unsigned char)norm[p] & 0xC0) != 0x80;
        if (p == n || cut || segment_end(norm, n, p, &sl)) {
            size_t e = p == n ? n : cut ? p : p + sl;
            if (ja && persons_segment(tl, norm, s0, e, out))
                return -1;
            s0 = e;
            ja = false;
            if (cut)
                p--; /* look at this character again as the start of the next segment */
            else if (sl > 1)
                p += sl - 1;
            continue;
        }
        unsigned char c = (unsigned char)norm[p];
        if (c >= 0xE3 && c <= 0xE9 && p + 1 < n)
            ja |= c >= 0xE4 || (unsigned char)norm[p + 1] >= 0x82;
    }
    return 0;
}
