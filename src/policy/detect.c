/* Detection of personal data in NFKC-normalised text.
 *
 * Digit runs (digits joined by single separators) are cut into windows and classified by shape,
 * validation (check digits, Luhn, prefixes) and the nearest context word before them (電話,
 * 口座番号, 注文番号, ...). A negative context word (order, serial, invoice numbers) nearest to a
 * run suppresses it. Runs glued to letters ("ORD-0312345678") are codes, not identifiers.
 * Other scanners: e-mail, IPv4/IPv6, passports, IBANs, dates of birth, addresses, names. */
#include "kura/policy.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/limits.h"
#include "policy/policy_int.h"

/* ---------------------------------------------------------------- names of things */

static const char *const type_names[KURA_PII__COUNT] = {
    "my_number", "corporate_number", "credit_card", "phone", "email", "ip_address",
    "bank_account", "passport", "drivers_license", "birth_date", "health_insurance", "person",
    "address", "postal_code", "rule"};

const char *kura_pii_type_name(enum kura_pii_type t)
{
    return (unsigned)t < KURA_PII__COUNT ? type_names[t] : "?";
}

int kura_pii_type_from_name(const char *name)
{
    for (int i = 0; i < KURA_PII_RULE; i++)
        if (strcmp(name, type_names[i]) == 0)
            return i;
    return -1;
}

bool kura_pii_type_is_structured(enum kura_pii_type t)
{
    return t != KURA_PII_PERSON && t != KURA_PII_ADDRESS && t != KURA_PII_RULE &&
           (unsigned)t < KURA_PII__COUNT;
}

const char *kura_finding_type_name(const struct kura_finding *f)
{
    return f->type == KURA_PII_RULE && f->rule ? f->rule : kura_pii_type_name(f->type);
}

int kura_findings_push(struct kura_findings *f, enum kura_pii_type type, size_t start, size_t end,
                       float conf, const char *rule, int rule_index)
{
    if (f->n == f->cap) {
        if (f->cap >= KURA_POLICY_MAX_FINDINGS)
            return -1;
        size_t cap = f->cap ? f->cap * 2 : 16;
        struct kura_finding *v = realloc(f->v, cap * sizeof *v);
        if (!v)
            return -1;
        f->v = v;
        f->cap = cap;
    }
    f->v[f->n++] = (struct kura_finding){type, start, end, conf, rule, rule_index, 0};
    return 0;
}

void kura_findings_free(struct kura_findings *f)
{
    if (!f)
        return;
    free(f->v);
    f->v = NULL;
    f->n = f->cap = 0;
}

/* ---------------------------------------------------------------- character helpers */

static bool isdig(int c) { return c >= '0' && c <= '9'; }
static bool isalp(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static bool isaln(int c) { return isdig(c) || isalp(c); }
static bool isupp(int c) { return c >= 'A' && c <= 'Z'; }
static bool ishex(int c) { return isdig(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

/* Is there the UTF-8 string s at t[p]? */
static bool at(const char *t, size_t n, size_t p, const char *s)
{
    size_t l = strlen(s);
    return p <= n && l <= n - p && memcmp(t + p, s, l) == 0;
}

/* Length of the UTF-8 character starting at t[p] (1 for bytes that are not a lead byte). */
static size_t u8len(const char *t, size_t n, size_t p)
{
    unsigned char c = (unsigned char)t[p];
    size_t l = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    return p + l <= n ? l : 1;
}

static uint32_t u8cp(const char *t, size_t n, size_t p)
{
    const unsigned char *u = (const unsigned char *)t + p;
    size_t l = u8len(t, n, p);
    if (l == 1)
        return u[0];
    if (l == 2)
        return ((u[0] & 0x1Fu) << 6) | (u[1] & 0x3Fu);
    if (l == 3)
        return ((u[0] & 0x0Fu) << 12) | ((u[1] & 0x3Fu) << 6) | (u[2] & 0x3Fu);
    return ((u[0] & 0x07u) << 18) | ((u[1] & 0x3Fu) << 12) | ((u[2] & 0x3Fu) << 6) | (u[3] & 0x3Fu);
}

/* Start of the UTF-8 character before position p. */
static size_t u8prev(const char *t, size_t p)
{
    if (p == 0)
        return 0;
    size_t q = p - 1;
    while (q > 0 && ((unsigned char)t[q] & 0xC0) == 0x80 && p - q < 4)
        q--;
    return q;
}

static bool is_kanji(uint32_t c) { return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || c == 0x3005; }
static bool is_katakana(uint32_t c) { return c >= 0x30A1 && c <= 0x30FA; }

/* ---------------------------------------------------------------- context words */

enum ctx { C_NONE = 0, C_NEG, C_PHONE, C_MYNUM, C_CORP, C_CARD, C_BANK, C_PASSPORT, C_LICENSE,
           C_BIRTH, C_INSURANCE, C_POSTAL };

struct kw { const char *s; uint8_t ctx; };

/* ASCII keywords match case-insensitively and as whole words. */
static const struct kw ctx_words[] = {
    {"電話", C_PHONE}, {"携帯", C_PHONE}, {"ファックス", C_PHONE}, {"連絡先", C_PHONE},
    {"内線", C_PHONE}, {"tel", C_PHONE}, {"fax", C_PHONE}, {"phone", C_PHONE},
    {"mobile", C_PHONE}, {"call", C_PHONE}, {"cell", C_PHONE}, {"telephone", C_PHONE},
    {"マイナンバー", C_MYNUM}, {"個人番号", C_MYNUM}, {"my number", C_MYNUM},
    {"individual number", C_MYNUM},
    {"法人番号", C_CORP}, {"corporate number", C_CORP},
    {"カード番号", C_CARD}, {"クレジットカード", C_CARD}, {"カード", C_CARD}, {"card", C_CARD},
    {"credit card", C_CARD}, {"visa", C_CARD}, {"mastercard", C_CARD}, {"amex", C_CARD},
    {"jcb", C_CARD},
    {"口座番号", C_BANK}, {"口座", C_BANK}, {"普通預金", C_BANK}, {"当座預金", C_BANK},
    {"普通", C_BANK}, {"当座", C_BANK}, {"銀行", C_BANK}, {"支店", C_BANK},
    {"account number", C_BANK}, {"account no", C_BANK}, {"account", C_BANK}, {"acct", C_BANK},
    {"bank", C_BANK}, {"iban", C_BANK},
    {"旅券", C_PASSPORT}, {"パスポート", C_PASSPORT}, {"passport", C_PASSPORT},
    {"免許", C_LICENSE}, {"driver's license", C_LICENSE}, {"driver's licence", C_LICENSE},
    {"drivers license", C_LICENSE}, {"driving licence", C_LICENSE},
    {"driving license", C_LICENSE}, {"licence", C_LICENSE}, {"license", C_LICENSE},
    {"生年月日", C_BIRTH}, {"誕生日", C_BIRTH}, {"生まれ", C_BIRTH}, {"出生", C_BIRTH},
    {"dob", C_BIRTH}, {"d.o.b", C_BIRTH}, {"date of birth", C_BIRTH}, {"birth date", C_BIRTH},
    {"birthdate", C_BIRTH}, {"born", C_BIRTH}, {"birthday", C_BIRTH},
    {"保険者番号", C_INSURANCE}, {"被保険者", C_INSURANCE}, {"保険証", C_INSURANCE},
    {"insurer number", C_INSURANCE}, {"insurance", C_INSURANCE},
    {"〒", C_POSTAL}, {"郵便番号", C_POSTAL}, {"postal code", C_POSTAL}, {"zip code", C_POSTAL},
    {"zip", C_POSTAL}, {"postcode", C_POSTAL},
    {"注文番号", C_NEG}, {"受注番号", C_NEG}, {"注文", C_NEG}, {"発注", C_NEG},
    {"伝票番号", C_NEG}, {"管理番号", C_NEG}, {"会員番号", C_NEG}, {"製造番号", C_NEG},
    {"シリアル", C_NEG}, {"型番", C_NEG}, {"品番", C_NEG}, {"請求書番号", C_NEG},
    {"請求番号", C_NEG}, {"予約番号", C_NEG}, {"問い合わせ番号", C_NEG}, {"問合せ番号", C_NEG},
    {"お問合せ番号", C_NEG}, {"追跡番号", C_NEG}, {"お客様番号", C_NEG}, {"顧客番号", C_NEG},
    {"社員番号", C_NEG}, {"商品コード", C_NEG}, {"受付番号", C_NEG}, {"整理番号", C_NEG},
    {"ロット", C_NEG}, {"チケット", C_NEG}, {"バージョン", C_NEG}, {"ビルド", C_NEG},
    {"在庫", C_NEG},
    {"order", C_NEG}, {"invoice", C_NEG}, {"serial", C_NEG}, {"s/n", C_NEG}, {"sn", C_NEG},
    {"tracking", C_NEG}, {"reference", C_NEG}, {"ref", C_NEG}, {"ticket", C_NEG},
    {"lot", C_NEG}, {"part", C_NEG}, {"model", C_NEG}, {"version", C_NEG}, {"build", C_NEG},
    {"sku", C_NEG}, {"isbn", C_NEG}, {"id", C_NEG}, {"case", C_NEG},
    {"item", C_NEG}, {"product", C_NEG}, {"shipment", C_NEG}, {"booking", C_NEG},
};
#define N_CTX_WORDS (sizeof ctx_words / sizeof ctx_words[0])

static size_t ctx_len[N_CTX_WORDS];
static bool ctx_ascii[N_CTX_WORDS];
/* keywords by their first byte (both cases for ASCII), so a scan looks only at candidates */
#define KW_PER_BYTE 48
static uint8_t kw_by_byte[256][KW_PER_BYTE];
static uint8_t n_kw_by_byte[256];

static pthread_once_t ctx_once = PTHREAD_ONCE_INIT;

static void ctx_init_once(void)
{
    for (size_t k = 0; k < N_CTX_WORDS; k++) {
        ctx_len[k] = strlen(ctx_words[k].s);
        unsigned char b = (unsigned char)ctx_words[k].s[0];
        ctx_ascii[k] = b < 0x80;
        unsigned char bs[2] = {b, b};
        if (ctx_ascii[k] && b >= 'a' && b <= 'z')
            bs[1] = (unsigned char)(b - 32);
        for (int v = 0; v < (bs[0] == bs[1] ? 1 : 2); v++)
            if (n_kw_by_byte[bs[v]] < KW_PER_BYTE)
                kw_by_byte[bs[v]][n_kw_by_byte[bs[v]]++] = (uint8_t)k;
    }
}

static bool kw_at(const char *t, size_t n, size_t p, size_t k)
{
    size_t l = ctx_len[k];
    if (p + l > n)
        return false;
    if (!ctx_ascii[k])
        return memcmp(t + p, ctx_words[k].s, l) == 0;
    if (strncasecmp(t + p, ctx_words[k].s, l) != 0)
        return false;
    if (p > 0 && isalp((unsigned char)t[p - 1]))
        return false;
    if (p + l < n && isalp((unsigned char)t[p + l]))
        return false;
    return true;
}

/* Nearest context word ending at or before pos, within the same line/sentence and ~24 chars. */
static enum ctx ctx_before(const char *t, size_t n, size_t pos, size_t window)
{
    size_t lo = pos > window ? pos - window : 0;
    for (size_t q = pos; q > lo; q--) /* same line only */
        if (t[q - 1] == '\n') {
            lo = q;
            break;
        }
    size_t best_end = 0, best_len = 0;
    enum ctx best = C_NONE;
    for (size_t p = lo; p < pos; p++) {
        unsigned char c0 = (unsigned char)t[p];
        if ((c0 & 0xC0) == 0x80)
            continue;
        for (size_t q = 0; q < n_kw_by_byte[c0]; q++) {
            size_t k = kw_by_byte[c0][q];
            if (p + ctx_len[k] > pos || !kw_at(t, n, p, k))
                continue;
            size_t e = p + ctx_len[k];
            if (e > best_end || (e == best_end && ctx_len[k] > best_len)) {
                best_end = e;
                best_len = ctx_len[k];
                best = (enum ctx)ctx_words[k].ctx;
            }
        }
    }
    return best;
}

/* ---------------------------------------------------------------- validators */

static bool luhn(const char *d, size_t n)
{
    int sum = 0;
    for (size_t i = 0; i < n; i++) {
        int v = d[n - 1 - i] - '0';
        if (i & 1) {
            v *= 2;
            if (v > 9)
                v -= 9;
        }
        sum += v;
    }
    return sum % 10 == 0;
}

/* 個人番号: check digit over the 11 digits before it, Pn from the right, Qn = n+1 (n<=6) else n-5. */
static bool my_number_ok(const char *d)
{
    int sum = 0;
    for (int nn = 1; nn <= 11; nn++) {
        int p = d[11 - nn] - '0';
        int q = nn <= 6 ? nn + 1 : nn - 5;
        sum += p * q;
    }
    int r = sum % 11;
    int cd = r <= 1 ? 0 : 11 - r;
    return cd == d[11] - '0';
}

/* 法人番号: the FIRST digit checks the 12 that follow: 9 - (sum Pn*Qn mod 9), Qn = 1 odd, 2 even. */
static bool corporate_number_ok(const char *d)
{
    int sum = 0;
    for (int nn = 1; nn <= 12; nn++) {
        int p = d[13 - nn] - '0';
        sum += p * ((nn & 1) ? 1 : 2);
    }
    return 9 - (sum % 9) == d[0] - '0';
}

static int prefix_num(const char *d, int k)
{
    int v = 0;
    for (int i = 0; i < k; i++)
        v = v * 10 + (d[i] - '0');
    return v;
}

static bool card_prefix_ok(const char *d, size_t n)
{
    int p1 = d[0] - '0', p2 = prefix_num(d, 2), p3 = prefix_num(d, 3), p4 = prefix_num(d, 4);
    int p6 = prefix_num(d, 6);
    if (p1 == 4)
        return n == 13 || n == 16 || n == 19;                      /* Visa */
    if ((p2 >= 51 && p2 <= 55) || (p4 >= 2221 && p4 <= 2720))
        return n == 16;                                            /* Mastercard */
    if (p2 == 34 || p2 == 37)
        return n == 15;                                            /* Amex */
    if (p4 >= 3528 && p4 <= 3589)
        return n >= 16 && n <= 19;                                 /* JCB */
    if ((p3 >= 300 && p3 <= 305) || p2 == 36 || p2 == 38 || p2 == 39)
        return n >= 14 && n <= 19;                                 /* Diners */
    if (p4 == 6011 || p2 == 65 || (p3 >= 644 && p3 <= 649) || (p6 >= 622126 && p6 <= 622925))
        return n >= 16 && n <= 19;                                 /* Discover */
    if (p2 == 62)
        return n >= 16 && n <= 19;                                 /* UnionPay */
    return false;
}

/* ---------------------------------------------------------------- prefectures */

static const char *const prefectures[] = {
    "北海道", "青森県", "岩手県", "宮城県", "秋田県", "山形県", "福島県", "茨城県", "栃木県",
    "群馬県", "埼玉県", "千葉県", "東京都", "神奈川県", "新潟県", "富山県", "石川県", "福井県",
    "山梨県", "長野県", "岐阜県", "静岡県", "愛知県", "三重県", "滋賀県", "京都府", "大阪府",
    "兵庫県", "奈良県", "和歌山県", "鳥取県", "島根県", "岡山県", "広島県", "山口県", "徳島県",
    "香川県", "愛媛県", "高知県", "福岡県", "佐賀県", "長崎県", "熊本県", "大分県", "宮崎県",
    "鹿児島県", "沖縄県"};
#define N_PREF (sizeof prefectures / sizeof prefectures[0])

static size_t prefecture_at(const char *t, size_t n, size_t p)
{
    unsigned char c = (unsigned char)t[p];
    if (c < 0xE0)
        return 0;
    if (p + 9 > n)
        return 0;
    for (size_t k = 0; k < N_PREF; k++)
        if ((unsigned char)prefectures[k][0] == c && prefectures[k][1] == t[p + 1] &&
            prefectures[k][2] == t[p + 2] && at(t, n, p, prefectures[k]))
            return strlen(prefectures[k]);
    return 0;
}

/* ---------------------------------------------------------------- scanner state */

struct scan {
    const char *t;
    size_t n;
    struct kura_findings *out;
    int err;          /* -1: out of memory; a PCRE2 error code: a built-in pattern gave up */
    const char *what; /* the pattern that gave up */
    size_t at;        /* where */
};

static void emit(struct scan *s, enum kura_pii_type type, size_t a, size_t b, float conf,
                 const char *rule)
{
    if (!s->err && kura_findings_push(s->out, type, a, b, conf, rule, -1))
        s->err = -1;
}

/* ---------------------------------------------------------------- digit runs */

#define RUN_MAX_GROUPS 12
#define RUN_MAX_DIGITS 40

struct run {
    size_t gs[RUN_MAX_GROUPS], ge[RUN_MAX_GROUPS]; /* group spans */
    int ng;
    size_t start;   /* including a leading '+' or '(' */
    bool plus, lparen;
};

struct win {
    char d[RUN_MAX_DIGITS + 1];
    int nd;
    int lens[RUN_MAX_GROUPS];
    int ng;
    bool dash, space, dot, slash, paren, other;
};

static void win_fill(const struct scan *s, const struct run *r, int i, int j, struct win *w)
{
    memset(w, 0, sizeof *w);
    for (int g = i; g <= j; g++) {
        for (size_t p = r->gs[g]; p < r->ge[g]; p++)
            w->d[w->nd++] = s->t[p];
        w->lens[w->ng++] = (int)(r->ge[g] - r->gs[g]);
        if (g < j) {
            for (size_t p = r->ge[g]; p < r->gs[g + 1]; p++) {
                char c = s->t[p];
                if (c == '-')
                    w->dash = true;
                else if (c == ' ')
                    w->space = true;
                else if (c == '.')
                    w->dot = true;
                else if (c == '/')
                    w->slash = true;
                else if (c == '(' || c == ')')
                    w->paren = true;
                else
                    w->other = true;
            }
        }
    }
    w->d[w->nd] = 0;
}

/* Japanese phone number in domestic form d (starts with 0). Returns confidence or 0. */
static float phone_domestic(const char *d, int nd, const int *lens, int ng, bool formatted)
{
    if (nd < 10 || nd > 11 || d[0] != '0' || d[1] == '0')
        return 0;
    bool mobile_like = (d[1] == '2' || d[1] == '5' || d[1] == '7' || d[1] == '8' || d[1] == '9') &&
                       d[2] == '0';
    bool p0800 = memcmp(d, "0800", 4) == 0;
    if (nd == 11 && !mobile_like && !p0800)
        return 0;
    if (nd == 10 && mobile_like)
        return 0;
    if (ng != 1) {
        if (ng != 3)
            return 0;
        if (lens[0] < 2 || lens[0] > 5 || lens[1] < 1 || lens[1] > 4 || lens[2] < 3 || lens[2] > 4)
            return 0;
        if (nd == 11 && lens[2] != 4)
            return 0;
    }
    return formatted ? 0.9f : 0.75f;
}

/* The whole window as a phone number (+81 handled). */
static float phone_conf(const struct run *r, int i, const struct win *w)
{
    if (w->slash || w->other)
        return 0;
    if (w->dot && (w->dash || w->space))
        return 0;
    if (i == 0 && r->plus) {
        if (w->nd < 3 || w->d[0] != '8' || w->d[1] != '1')
            return 0;
        char d[RUN_MAX_DIGITS + 2];
        int lens[RUN_MAX_GROUPS], ng = 0, nd = 0;
        d[nd++] = '0';
        int g0 = 0, skip = 2;
        if (w->lens[0] == 2) { /* "+81 3 1234 5678": drop the "81" group */
            g0 = 1;
            if (w->ng > 1 && w->lens[1] == 1 && w->d[2] == '0') { /* "+81 (0)3 ..." */
                g0 = 2;
                skip = 3;
            }
        } else {
            return 0;
        }
        for (int k = skip; k < w->nd; k++)
            d[nd++] = w->d[k];
        d[nd] = 0;
        for (int g = g0; g < w->ng; g++)
            lens[ng++] = w->lens[g];
        if (ng == 0)
            return 0;
        lens[0] += 1; /* the restored 0 */
        return phone_domestic(d, nd, lens, ng, true);
    }
    bool formatted = w->ng > 1 || (r->lparen && i == 0);
    return phone_domestic(w->d, w->nd, w->lens, w->ng, formatted);
}

static bool groups_are(const struct win *w, int a, int b, int c, int e)
{
    int want[4] = {a, b, c, e}, k = 0;
    for (; k < 4 && want[k]; k++)
        if (k >= w->ng || w->lens[k] != want[k])
            return false;
    return k == w->ng;
}

static bool card_shape(const struct win *w)
{
    if (w->dot || w->slash || w->paren || w->other || (w->dash && w->space))
        return false;
    if (w->ng == 1)
        return true;
    if (groups_are(w, 4, 6, 5, 0) || groups_are(w, 4, 6, 4, 0))
        return true;
    for (int g = 0; g < w->ng - 1; g++)
        if (w->lens[g] != 4)
            return false;
    return w->lens[w->ng - 1] >= 1 && w->lens[w->ng - 1] <= 4;
}

static bool plain_or(const struct win *w, int a, int b, int c, int e)
{
    if (w->dot || w->slash || w->paren || w->other || (w->dash && w->space))
        return false;
    return w->ng == 1 || groups_are(w, a, b, c, e);
}

static bool prefecture_follows(const struct scan *s, size_t e)
{
    size_t p = e;
    while (p < s->n && p < e + 3 && (s->t[p] == ' ' || s->t[p] == ','))
        p++;
    return prefecture_at(s->t, s->n, p) > 0;
}

/* Classifies window [i, j] of run r; emits and returns true when it is an identifier. */
static bool classify(struct scan *s, const struct run *r, int i, int j, enum ctx c)
{
    struct win w;
    win_fill(s, r, i, j, &w);
    size_t a = (i == 0) ? r->start : r->gs[i], b = r->ge[j];
    if (i == 0 && r->lparen) {
        /* "(03)1234-5678" keeps its '('; "(045-518-5513)" is a number in brackets */
        bool closes = r->ng > 1 && memchr(s->t + r->ge[0], ')', r->gs[1] - r->ge[0]) != NULL;
        if (!closes)
            a = r->plus ? r->start : r->gs[0];
    }
    const char *d = w.d;
    int nd = w.nd;
    if (c == C_NEG)
        return false;
    bool prev_postal_mark = a >= 3 && at(s->t, s->n, a - 3, "〒");
    if (a >= 4 && at(s->t, s->n, a - 4, "〒") && s->t[a - 1] == ' ')
        prev_postal_mark = true;
    /* context-specific first */
    switch (c) {
    case C_MYNUM:
        if (nd == 12 && plain_or(&w, 4, 4, 4, 0) && my_number_ok(d)) {
            emit(s, KURA_PII_MY_NUMBER, a, b, 0.98f, "jp_my_number_ctx");
            return true;
        }
        if (nd == 12)
            return false; /* wrong check digit under マイナンバー: a near-miss, nothing else */
        break;
    case C_LICENSE:
        if (nd == 12 && plain_or(&w, 4, 4, 4, 0)) {
            emit(s, KURA_PII_DRIVERS_LICENSE, a, b, 0.9f, "jp_drivers_license_ctx");
            return true;
        }
        if (nd >= 6 && nd <= 9 && w.ng == 1 && i == j) { /* US-style licence numbers */
            emit(s, KURA_PII_DRIVERS_LICENSE, a, b, 0.7f, "en_drivers_license_ctx");
            return true;
        }
        break;
    case C_CORP:
        if (nd == 13 && plain_or(&w, 1, 4, 4, 4) && corporate_number_ok(d)) {
            emit(s, KURA_PII_CORPORATE_NUMBER, a, b, 0.98f, "jp_corporate_number_ctx");
            return true;
        }
        if (nd == 13)
            return false;
        break;
    case C_BANK:
        if (w.ng == 1 && (nd == 7 || (nd >= 8 && nd <= 12))) {
            emit(s, KURA_PII_BANK_ACCOUNT, a, b, nd == 7 ? 0.9f : 0.8f, "bank_account_ctx");
            return true;
        }
        break;
    case C_INSURANCE:
        if (w.ng == 1 && (nd == 8 || nd == 6) && luhn(d, (size_t)nd)) {
            emit(s, KURA_PII_HEALTH_INSURANCE, a, b, 0.95f, "jp_insurer_number_ctx");
            return true;
        }
        if (w.ng == 1 && (nd == 8 || nd == 6))
            return false;
        break;
    case C_POSTAL:
        if (nd == 7 && plain_or(&w, 3, 4, 0, 0) && (w.ng == 2 ? w.dash : true)) {
            emit(s, KURA_PII_POSTAL_CODE, a, b, 0.95f, "jp_postal_ctx");
            return true;
        }
        break;
    case C_PHONE: {
        float pc = phone_conf(r, i, &w);
        if (pc > 0) {
            emit(s, KURA_PII_PHONE, a, b, 0.97f, "jp_phone_ctx");
            return true;
        }
        break;
    }
    default:
        break;
    }
    /* by shape */
    if (prev_postal_mark && nd == 7 && plain_or(&w, 3, 4, 0, 0)) {
        emit(s, KURA_PII_POSTAL_CODE, a, b, 0.97f, "jp_postal_mark");
        return true;
    }
    if (nd >= 13 && nd <= 19 && card_shape(&w) && luhn(d, (size_t)nd) && card_prefix_ok(d, (size_t)nd)) {
        emit(s, KURA_PII_CREDIT_CARD, a, b, c == C_CARD ? 0.98f : 0.9f, "credit_card_luhn");
        return true;
    }
    float pc = phone_conf(r, i, &w);
    if (pc > 0) {
        emit(s, KURA_PII_PHONE, a, b, pc, w.ng > 1 || r->plus ? "jp_phone_formatted" : "jp_phone_plain");
        return true;
    }
    if (nd == 12 && plain_or(&w, 4, 4, 4, 0) && my_number_ok(d)) {
        emit(s, KURA_PII_MY_NUMBER, a, b, w.ng == 3 ? 0.8f : 0.7f, "jp_my_number_check");
        return true;
    }
    if (nd == 13 && w.ng == 1 && corporate_number_ok(d) && c != C_CARD) {
        emit(s, KURA_PII_CORPORATE_NUMBER, a, b, 0.6f, "jp_corporate_number_check");
        return true;
    }
    if (nd == 7 && w.ng == 2 && w.dash && w.lens[0] == 3 && prefecture_follows(s, b)) {
        emit(s, KURA_PII_POSTAL_CODE, a, b, 0.9f, "jp_postal_address");
        return true;
    }
    return false;
}

static bool is_run_sep(char c)
{
    return c == '-' || c == ' ' || c == '.' || c == '/' || c == '(' || c == ')';
}

/* Scans one run starting at p; returns the position after it. */
static size_t scan_run(struct scan *s, size_t p)
{
    const char *t = s->t;
    size_t n = s->n;
    struct run r;
    memset(&r, 0, sizeof r);
    r.start = p;
    size_t q = p;
    if (t[q] == '+') {
        r.plus = true;
        q++;
    }
    if (q < n && t[q] == '(') {
        r.lparen = true;
        q++;
    }
    bool glued = false, too_long = false;
    size_t ndig = 0;
    for (;;) {
        size_t g = q;
        while (q < n && isdig((unsigned char)t[q]))
            q++;
        if (r.ng < RUN_MAX_GROUPS) {
            r.gs[r.ng] = g;
            r.ge[r.ng] = q;
            r.ng++;
        } else {
            too_long = true;
        }
        ndig += q - g;
        /* separator of 1..3 chars with at most one space, then a digit */
        size_t k = q;
        int spaces = 0;
        while (k < n && k - q < 3 && is_run_sep(t[k])) {
            if (t[k] == ' ')
                spaces++;
            k++;
        }
        if (k > q && k < n && isdig((unsigned char)t[k]) && spaces <= 1) {
            q = k;
            continue;
        }
        break;
    }
    size_t end = q;
    if (ndig > RUN_MAX_DIGITS)
        too_long = true;
    /* glued to letters on the right: "0312345678abc", "090-1234-5678-X" */
    if (end < n && isaln((unsigned char)t[end]))
        glued = true;
    if (end + 1 < n && (t[end] == '-' || t[end] == '_' || t[end] == '/') &&
        isaln((unsigned char)t[end + 1]))
        glued = true;
    if (glued || too_long)
        return end;
    enum ctx c = ctx_before(t, n, p, 72);
    int i = 0;
    while (i < r.ng) {
        if (i > 0) {
            /* a window may start inside a run only after a plain space */
            bool ok = r.gs[i] - r.ge[i - 1] == 1 && t[r.ge[i - 1]] == ' ';
            if (!ok) {
                i++;
                continue;
            }
        }
        int hit = -1;
        for (int j = r.ng - 1; j >= i; j--) {
            if (j < r.ng - 1 && !(r.gs[j + 1] - r.ge[j] == 1 && t[r.ge[j]] == ' '))
                continue;
            if (classify(s, &r, i, j, c)) {
                hit = j;
                break;
            }
        }
        i = hit >= 0 ? hit + 1 : i + 1;
    }
    return end;
}

static void scan_digit_runs(struct scan *s)
{
    const char *t = s->t;
    size_t n = s->n, p = 0;
    while (p < n) {
        unsigned char c = (unsigned char)t[p];
        bool starts = isdig(c) ||
                      ((c == '+' || c == '(') && p + 1 < n && isdig((unsigned char)t[p + 1])) ||
                      (c == '+' && p + 2 < n && t[p + 1] == '(' && isdig((unsigned char)t[p + 2]));
        if (!starts) {
            p++;
            continue;
        }
        bool glued = false;
        if (p > 0) {
            unsigned char pc = (unsigned char)t[p - 1];
            if (isaln(pc) || pc == '_' || pc == '@')
                glued = true;
            if ((pc == '-' || pc == '/' || pc == '#') && p > 1 && isaln((unsigned char)t[p - 2]))
                glued = true;
            if (pc == '-' && p == 1)
                glued = false;
        }
        if (glued) { /* skip the whole code */
            p++;
            while (p < n && (isaln((unsigned char)t[p]) || t[p] == '-' || t[p] == '_'))
                p++;
            continue;
        }
        p = scan_run(s, p);
        while (p < n && isaln((unsigned char)t[p]))
            p++;
    }
}

/* ---------------------------------------------------------------- e-mail */

static bool email_local(int c)
{
    return isaln(c) || c == '.' || c == '_' || c == '%' || c == '+' || c == '-';
}

static void scan_email(struct scan *s)
{
    const char *t = s->t;
    size_t n = s->n, last_end = 0;
    for (size_t p = 0; p < n; p++) {
        if (t[p] != '@' || p < last_end)
            continue;
        size_t a = p;
        while (a > last_end && p - a < 64 && email_local((unsigned char)t[a - 1])) /* RFC 5321 */
            a--;
        if (a > last_end && email_local((unsigned char)t[a - 1]))
            continue; /* longer local part: not an address (and no quadratic rescans) */
        while (a < p && (t[a] == '.' || t[a] == '-'))
            a++;
        if (a == p)
            continue;
        size_t q = p + 1, labels = 0, last_label = 0, tld_alpha = 1;
        while (q < n && q - p < 255) {
            size_t ls = q;
            while (q < n && q - ls < 63 && (isaln((unsigned char)t[q]) || t[q] == '-'))
                q++;
            if (q == ls)
                break;
            labels++;
            last_label = ls;
            tld_alpha = 1;
            for (size_t k = ls; k < q; k++)
                if (!isalp((unsigned char)t[k]))
                    tld_alpha = 0;
            if (q + 1 < n && t[q] == '.' && isaln((unsigned char)t[q + 1]))
                q++;
            else
                break;
        }
        if (labels < 2 || !tld_alpha || q - last_label < 2)
            continue;
        emit(s, KURA_PII_EMAIL, a, q, 0.99f, "email");
        last_end = q;
    }
}

/* ---------------------------------------------------------------- IP addresses */

static size_t parse_ipv4(const char *t, size_t n, size_t p)
{
    size_t q = p;
    for (int k = 0; k < 4; k++) {
        size_t g = q;
        int v = 0;
        while (q < n && isdig((unsigned char)t[q]) && q - g < 4)
            v = v * 10 + (t[q++] - '0');
        size_t l = q - g;
        if (l == 0 || l > 3 || v > 255 || (l > 1 && t[g] == '0'))
            return 0;
        if (k < 3) {
            if (q >= n || t[q] != '.')
                return 0;
            q++;
        }
    }
    if (q < n && (isaln((unsigned char)t[q]) || (t[q] == '.' && q + 1 < n && isdig((unsigned char)t[q + 1]))))
        return 0;
    return q;
}

static size_t parse_ipv6(const char *t, size_t n, size_t p)
{
    size_t q = p;
    int groups = 0, colons = 0;
    bool dbl = false, v4 = false;
    while (q < n) {
        size_t g = q;
        while (q < n && ishex((unsigned char)t[q]) && q - g <= 4)
            q++;
        if (q - g > 4)
            return 0;
        if (q < n && t[q] == '.' && q > g && groups >= 2) { /* trailing dotted IPv4 */
            size_t e = parse_ipv4(t, n, g);
            if (!e)
                return 0;
            q = e;
            groups += 2;
            v4 = true;
            break;
        }
        if (q > g)
            groups++;
        if (q < n && t[q] == ':') {
            if (q + 1 < n && t[q + 1] == ':') {
                if (dbl)
                    return 0;
                dbl = true;
                colons += 2;
                q += 2;
                continue;
            }
            if (q == g && !(q > p && t[q - 1] == ':'))
                return 0;
            colons++;
            q++;
            if (q >= n || !ishex((unsigned char)t[q]))
                return 0;
            continue;
        }
        break;
    }
    (void)v4;
    if (colons < 2 || groups == 0 || groups > 8)
        return 0;
    if (!dbl && groups != 8)
        return 0;
    if (dbl && groups > 7)
        return 0;
    if (q < n && (isaln((unsigned char)t[q]) || t[q] == ':'))
        return 0;
    return q;
}

static void scan_ip(struct scan *s)
{
    const char *t = s->t;
    size_t n = s->n;
    for (size_t p = 0; p < n; p++) {
        unsigned char c = (unsigned char)t[p];
        if (!ishex(c) && c != ':')
            continue;
        unsigned char pc = p ? (unsigned char)t[p - 1] : ' ';
        if (isaln(pc) || pc == '.' || pc == ':' || pc == '-' || pc == '_') {
            continue;
        }
        size_t e = 0;
        if (isdig(c))
            e = parse_ipv4(t, n, p);
        if (e) {
            if (ctx_before(t, n, p, 48) != C_NEG)
                emit(s, KURA_PII_IP_ADDRESS, p, e, 0.9f, "ipv4");
            p = e;
            continue;
        }
        e = parse_ipv6(t, n, p);
        if (e) {
            emit(s, KURA_PII_IP_ADDRESS, p, e, 0.9f, "ipv6");
            p = e;
        }
    }
}

/* ---------------------------------------------------------------- passport, IBAN */

static bool iban_ok(const char *s, size_t n)
{
    /* move the first four characters to the end, letters to numbers, mod 97 == 1 */
    int r = 0;
    for (size_t k = 0; k < n; k++) {
        char c = s[(k + 4) % n];
        if (isdig((unsigned char)c)) {
            r = (r * 10 + (c - '0')) % 97;
        } else if (isupp((unsigned char)c)) {
            int v = c - 'A' + 10;
            r = (r * 100 + v) % 97;
        } else {
            return false;
        }
    }
    return r == 1;
}

static void scan_letters(struct scan *s)
{
    const char *t = s->t;
    size_t n = s->n;
    for (size_t p = 0; p + 1 < n; p++) {
        if (!isupp((unsigned char)t[p]) || !isupp((unsigned char)t[p + 1]))
            continue;
        if (p > 0 && isaln((unsigned char)t[p - 1]))
            continue;
        /* passport: AA1234567 */
        size_t q = p + 2;
        while (q < n && isdig((unsigned char)t[q]))
            q++;
        if (q - p == 9 && (q >= n || !isaln((unsigned char)t[q]))) {
            if (ctx_before(t, n, p, 72) == C_PASSPORT) {
                emit(s, KURA_PII_PASSPORT, p, q, 0.95f, "jp_passport_ctx");
                p = q;
                continue;
            }
        }
        /* IBAN: CC99 + up to 30 alphanumerics, optionally in groups of four */
        if (p + 4 < n && isdig((unsigned char)t[p + 2]) && isdig((unsigned char)t[p + 3])) {
            char buf[40];
            size_t bl = 0, e = p, k = p, grp = 0;
            bool ok = true;
            while (k < n && bl < 34) {
                if (isupp((unsigned char)t[k]) || isdig((unsigned char)t[k])) {
                    buf[bl++] = t[k++];
                    grp++;
                    e = k;
                } else if (t[k] == ' ' && grp == 4 && k + 1 < n && isaln((unsigned char)t[k + 1])) {
                    grp = 0;
                    k++;
                } else {
                    break;
                }
            }
            if (e < n && isaln((unsigned char)t[e]))
                ok = false;
            if (ok && bl >= 15 && iban_ok(buf, bl)) {
                emit(s, KURA_PII_BANK_ACCOUNT, p, e, 0.97f, "iban");
                p = e;
            }
        }
    }
}

/* ---------------------------------------------------------------- dates of birth */

static size_t num_at(const char *t, size_t n, size_t p, int maxd, int *v)
{
    size_t q = p;
    *v = 0;
    while (q < n && isdig((unsigned char)t[q]) && (int)(q - p) < maxd)
        *v = *v * 10 + (t[q++] - '0');
    if (q < n && isdig((unsigned char)t[q]))
        return 0;
    return q - p;
}

static size_t skip_sp(const char *t, size_t n, size_t p)
{
    while (p < n && t[p] == ' ')
        p++;
    return p;
}

static bool md_ok(int m, int d) { return m >= 1 && m <= 12 && d >= 1 && d <= 31; }

static const char *const months[] = {"january", "february", "march", "april", "may", "june",
                                     "july", "august", "september", "october", "november",
                                     "december"};

static size_t month_at(const char *t, size_t n, size_t p, int *m)
{
    for (int k = 0; k < 12; k++) {
        size_t l = strlen(months[k]);
        if (p + l <= n && strncasecmp(t + p, months[k], l) == 0 &&
            !(p + l < n && isalp((unsigned char)t[p + l]))) {
            *m = k + 1;
            return l;
        }
        if (p + 3 <= n && strncasecmp(t + p, months[k], 3) == 0 &&
            !(p + 3 < n && isalp((unsigned char)t[p + 3]))) {
            *m = k + 1;
            return (p + 3 < n && t[p + 3] == '.') ? 4 : 3;
        }
    }
    return 0;
}

/* A date at t[p]; returns its end or 0. */
static size_t parse_date(const char *t, size_t n, size_t p)
{
    static const struct { const char *name; int max; } eras[] = {
        {"明治", 45}, {"大正", 15}, {"昭和", 64}, {"平成", 31}, {"令和", 30}};
    if (p > 0 && isaln((unsigned char)t[p - 1]))
        return 0;
    int y, m, d;
    size_t l, q;
    for (size_t k = 0; k < 5; k++) {
        if (!at(t, n, p, eras[k].name))
            continue;
        q = skip_sp(t, n, p + 6);
        if (at(t, n, q, "元")) {
            y = 1;
            q += 3;
        } else {
            l = num_at(t, n, q, 2, &y);
            if (!l)
                return 0;
            q += l;
        }
        if (y < 1 || y > eras[k].max)
            return 0;
        q = skip_sp(t, n, q);
        if (!at(t, n, q, "年"))
            return 0;
        q = skip_sp(t, n, q + 3);
        if (!(l = num_at(t, n, q, 2, &m)))
            return 0;
        q = skip_sp(t, n, q + l);
        if (!at(t, n, q, "月"))
            return 0;
        q = skip_sp(t, n, q + 3);
        if (!(l = num_at(t, n, q, 2, &d)))
            return 0;
        q = skip_sp(t, n, q + l);
        if (!at(t, n, q, "日") || !md_ok(m, d))
            return 0;
        return q + 3;
    }
    /* S60.1.2 / H2/3/4 */
    if (p + 1 < n && strchr("MTSHR", t[p]) && t[p] && isdig((unsigned char)t[p + 1])) {
        q = p + 1;
        if (!(l = num_at(t, n, q, 2, &y)))
            return 0;
        q += l;
        char sep = q < n ? t[q] : 0;
        if (sep != '.' && sep != '/')
            return 0;
        if (!(l = num_at(t, n, ++q, 2, &m)))
            return 0;
        q += l;
        if (q >= n || t[q] != sep)
            return 0;
        if (!(l = num_at(t, n, ++q, 2, &d)))
            return 0;
        q += l;
        return md_ok(m, d) && y >= 1 ? q : 0;
    }
    if (isdig((unsigned char)t[p])) {
        l = num_at(t, n, p, 4, &y);
        if (l == 4) { /* YYYY年M月D日, YYYY-MM-DD */
            if (y < 1900 || y > 2030)
                return 0;
            q = skip_sp(t, n, p + 4);
            if (at(t, n, q, "年")) {
                q = skip_sp(t, n, q + 3);
                if (!(l = num_at(t, n, q, 2, &m)))
                    return 0;
                q = skip_sp(t, n, q + l);
                if (!at(t, n, q, "月"))
                    return 0;
                q = skip_sp(t, n, q + 3);
                if (!(l = num_at(t, n, q, 2, &d)))
                    return 0;
                q = skip_sp(t, n, q + l);
                return at(t, n, q, "日") && md_ok(m, d) ? q + 3 : 0;
            }
            q = p + 4;
            char sep = q < n ? t[q] : 0;
            if (sep != '-' && sep != '/' && sep != '.')
                return 0;
            if (!(l = num_at(t, n, ++q, 2, &m)))
                return 0;
            q += l;
            if (q >= n || t[q] != sep)
                return 0;
            if (!(l = num_at(t, n, ++q, 2, &d)))
                return 0;
            q += l;
            return md_ok(m, d) ? q : 0;
        }
        if (l >= 1 && l <= 2) { /* M/D/YYYY, D.M.YYYY, D Month YYYY */
            int a1 = y, a2;
            q = p + l;
            char sep = q < n ? t[q] : 0;
            if (sep == '/' || sep == '.' || sep == '-') {
                if (!(l = num_at(t, n, ++q, 2, &a2)))
                    return 0;
                q += l;
                if (q >= n || t[q] != sep)
                    return 0;
                if (num_at(t, n, ++q, 4, &y) != 4 || y < 1900 || y > 2030)
                    return 0;
                return (md_ok(a1, a2) || md_ok(a2, a1)) ? q + 4 : 0;
            }
            /* "2 January 1985", "2nd Jan 1985" */
            q = p + l;
            if (q + 1 < n && isalp((unsigned char)t[q]) && isalp((unsigned char)t[q + 1]) &&
                (strncasecmp(t + q, "st", 2) == 0 || strncasecmp(t + q, "nd", 2) == 0 ||
                 strncasecmp(t + q, "rd", 2) == 0 || strncasecmp(t + q, "th", 2) == 0))
                q += 2;
            q = skip_sp(t, n, q);
            if (!(l = month_at(t, n, q, &m)))
                return 0;
            q = skip_sp(t, n, q + l);
            if (q < n && t[q] == ',')
                q = skip_sp(t, n, q + 1);
            if (num_at(t, n, q, 4, &y) != 4 || y < 1900 || y > 2030 || !md_ok(m, a1))
                return 0;
            return q + 4;
        }
        return 0;
    }
    if (isalp((unsigned char)t[p])) { /* "January 2, 1985" */
        if (!(l = month_at(t, n, p, &m)))
            return 0;
        q = skip_sp(t, n, p + l);
        if (!(l = num_at(t, n, q, 2, &d)))
            return 0;
        q += l;
        if (q + 1 < n && (strncasecmp(t + q, "st", 2) == 0 || strncasecmp(t + q, "nd", 2) == 0 ||
                          strncasecmp(t + q, "rd", 2) == 0 || strncasecmp(t + q, "th", 2) == 0))
            q += 2;
        if (q < n && t[q] == ',')
            q++;
        q = skip_sp(t, n, q);
        if (num_at(t, n, q, 4, &y) != 4 || y < 1900 || y > 2030 || !md_ok(m, d))
            return 0;
        return q + 4;
    }
    return 0;
}

static void scan_birth_dates(struct scan *s)
{
    const char *t = s->t;
    size_t n = s->n, done = 0;
    for (size_t p = 0; p < n; p++) {
        unsigned char c0 = (unsigned char)t[p];
        if ((c0 & 0xC0) == 0x80)
            continue;
        for (size_t qq = 0; qq < n_kw_by_byte[c0]; qq++) {
            size_t k = kw_by_byte[c0][qq];
            if (ctx_words[k].ctx != C_BIRTH)
                continue;
            if (!kw_at(t, n, p, k))
                continue;
            size_t e = p + ctx_len[k];
            bool found = false;
            /* date after the word ("生年月日: 昭和60年1月2日", "DOB 1985-01-02", "born on ...") */
            for (size_t q = e; q < n && q < e + 40 && !found; q++) {
                if (t[q] == '\n')
                    break;
                if (q < done || ((unsigned char)t[q] & 0xC0) == 0x80)
                    continue;
                size_t de = parse_date(t, n, q);
                if (de) {
                    emit(s, KURA_PII_BIRTH_DATE, q, de, 0.95f, "birth_date_ctx");
                    done = de;
                    found = true;
                }
            }
            /* date right before "生まれ" ("1985年1月2日生まれ") */
            if (!found && strcmp(ctx_words[k].s, "生まれ") == 0) {
                size_t lo = p > 48 ? p - 48 : 0;
                for (size_t q = lo; q < p; q++) {
                    if (q < done || ((unsigned char)t[q] & 0xC0) == 0x80)
                        continue;
                    size_t de = parse_date(t, n, q);
                    if (de && de <= p && p - de <= 4) {
                        emit(s, KURA_PII_BIRTH_DATE, q, de, 0.95f, "birth_date_ctx");
                        done = de;
                        break;
                    }
                }
            }
            p = e - 1;
            break;
        }
    }
}

/* ---------------------------------------------------------------- health insurance 記号・番号 */

static void scan_insurance_symbols(struct scan *s)
{
    const char *t = s->t;
    size_t n = s->n;
    for (size_t p = 0; p < n; p++) {
        size_t kl = 0;
        if (at(t, n, p, "記号"))
            kl = 6;
        else if (at(t, n, p, "番号") && !(p >= 6 && (at(t, n, p - 6, "者番") || (p >= 9 && at(t, n, p - 9, "保険者")))))
            kl = 6;
        if (!kl)
            continue;
        /* only under 保険証 / 被保険者 context in the same line */
        enum ctx c = ctx_before(t, n, p, 90);
        if (c != C_INSURANCE || (p >= 9 && at(t, n, p - 9, "保険者")))
            continue;
        size_t q = p + kl;
        while (q < n && (t[q] == ' ' || t[q] == ':'))
            q++;
        size_t a = q;
        while (q < n && (isaln((unsigned char)t[q]) || (t[q] == '-' && q + 1 < n && isaln((unsigned char)t[q + 1]))) && q - a < 16)
            q++;
        if (q == a || (q < n && isaln((unsigned char)t[q])))
            continue;
        bool has_digit = false;
        for (size_t k = a; k < q; k++)
            has_digit |= isdig((unsigned char)t[k]);
        if (!has_digit)
            continue;
        emit(s, KURA_PII_HEALTH_INSURANCE, a, q, 0.9f, "jp_insurance_card_ctx");
        p = q;
    }
}

/* ---------------------------------------------------------------- addresses (Japanese) */

static bool addr_char(uint32_t c)
{
    return is_kanji(c) || is_katakana(c) || c == 0x30F6 /* ヶ */ || c == 0x30F5 || c == 0x306E /* の */ ||
           c == 0x304C /* が */ || c == 0x30FC;
}

static bool muni_suffix(uint32_t c)
{
    return c == 0x5E02 /* 市 */ || c == 0x533A /* 区 */ || c == 0x753A /* 町 */ || c == 0x6751 /* 村 */ ||
           c == 0x90E1 /* 郡 */;
}

/* From p (just after a prefecture or an address keyword): municipality then block numbers.
 * Returns the end of the address or 0. need_muni: a municipality suffix is required. */
static size_t address_rest(const char *t, size_t n, size_t p)
{
    size_t q = p, muni_end = 0;
    int chars = 0;
    while (q < n && chars < 10) {
        uint32_t c = u8cp(t, n, q);
        if (!addr_char(c) && !(c >= 0x3041 && c <= 0x3096)) /* hiragana: さいたま市 */
            break;
        size_t l = u8len(t, n, q);
        q += l;
        chars++;
        if (muni_suffix(c) && chars >= 2)
            muni_end = q;
    }
    if (!muni_end)
        return 0;
    /* after the municipality: town names, digits, 丁目/番地/番/号, '-' */
    q = muni_end;
    size_t last = 0;
    int steps = 0;
    while (q < n && steps < 60) {
        steps++;
        unsigned char b = (unsigned char)t[q];
        if (isdig(b)) {
            while (q < n && isdig((unsigned char)t[q]))
                q++;
            last = q;
            if (at(t, n, q, "丁目"))
                last = q = q + 6;
            else if (at(t, n, q, "番地"))
                last = q = q + 6;
            else if (at(t, n, q, "番") || at(t, n, q, "号"))
                last = q = q + 3;
            continue;
        }
        if (b == '-' && q + 1 < n && isdig((unsigned char)t[q + 1])) {
            q++;
            continue;
        }
        if (b == ' ' && q + 1 < n && isdig((unsigned char)t[q + 1]) && !last) {
            q++;
            continue;
        }
        uint32_t c = u8cp(t, n, q);
        if (addr_char(c) && !last) {
            q += u8len(t, n, q);
            continue;
        }
        break;
    }
    return last;
}

static void scan_jp_address(struct scan *s)
{
    const char *t = s->t;
    size_t n = s->n;
    for (size_t p = 0; p < n; p++) {
        size_t pl = prefecture_at(t, n, p);
        size_t start = p, from = p + pl;
        float conf = 0.9f;
        if (!pl) {
            size_t kl = 0;
            if (at(t, n, p, "住所"))
                kl = 6;
            else if (at(t, n, p, "所在地"))
                kl = 9;
            if (!kl)
                continue;
            from = p + kl;
            if (at(t, n, from, "は"))
                from += 3;
            while (from < n && (t[from] == ':' || t[from] == ' '))
                from++;
            if (prefecture_at(t, n, from)) {
                p = from - 1;
                continue;
            }
            start = from;
            conf = 0.75f;
        }
        size_t e = address_rest(t, n, from);
        if (!e)
            continue;
        emit(s, KURA_PII_ADDRESS, start, e, conf, pl ? "jp_address_prefecture" : "jp_address_ctx");
        p = e - 1;
    }
}

/* ---------------------------------------------------------------- honorific names (no MeCab) */

static const char *const honorifics[] = {"さん", "様", "さま", "氏", "殿", "先生", "くん", "君", "ちゃん"};
static const char *const not_names[] = {"お客", "客", "皆", "神", "王", "奥", "患者", "担当", "皆様",
                                        "お子", "子供", "先方", "各位", "御中", "会員", "利用者",
                                        "医", "弁護", "学校", "研究", "田舎", "社長", "部長", "課長",
                                        "店長", "教授", "委員", "議員", "お母", "お父", "お姉", "お兄"};

static bool honorific_at(const char *t, size_t n, size_t p, size_t *hl)
{
    for (size_t k = 0; k < sizeof honorifics / sizeof honorifics[0]; k++)
        if (at(t, n, p, honorifics[k])) {
            *hl = strlen(honorifics[k]);
            return true;
        }
    return false;
}

static void scan_honorific_names(struct scan *s)
{
    const char *t = s->t;
    size_t n = s->n;
    for (size_t p = 3; p < n; p++) {
        size_t hl;
        if (((unsigned char)t[p] & 0xC0) == 0x80 || !honorific_at(t, n, p, &hl))
            continue;
        size_t a = p;
        int chars = 0;
        bool kata = false, kan = false;
        while (a > 0 && chars < 6) {
            size_t b = u8prev(t, a);
            uint32_t c = u8cp(t, n, b);
            if (is_kanji(c))
                kan = true;
            else if (is_katakana(c) || c == 0x30FC || c == 0x30FB)
                kata = true;
            else
                break;
            a = b;
            chars++;
        }
        if (chars == 0 || (kan && kata) || (chars == 1 && !kan))
            continue;
        bool stop = false;
        for (size_t k = 0; k < sizeof not_names / sizeof not_names[0]; k++)
            if (p - a == strlen(not_names[k]) && memcmp(t + a, not_names[k], p - a) == 0)
                stop = true;
        if (stop)
            continue;
        emit(s, KURA_PII_PERSON, a, p, 0.7f, "jp_honorific");
        p += hl - 1;
    }
}

/* ---------------------------------------------------------------- PCRE2 helpers */

static void scan_regex(struct scan *s, const pcre2_code *re, int group, enum kura_pii_type type,
                       float conf, const char *rule)
{
    if (!re)
        return;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    if (!md) {
        s->err = -1;
        return;
    }
    size_t off = 0;
    while (off <= s->n) {
        int rc = pcre2_match(re, (PCRE2_SPTR)s->t, s->n, off, off ? PCRE2_NO_UTF_CHECK : 0, md,
                             NULL);
        if (rc == PCRE2_ERROR_NOMATCH)
            break;
        if (rc < 0) { /* a limit: fail closed rather than call the rest of the text clean */
            if (!s->err) {
                s->err = rc;
                s->what = rule;
                s->at = off;
            }
            break;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t a = ov[2 * group], b = ov[2 * group + 1];
        if (a != PCRE2_UNSET && b > a)
            emit(s, type, a, b, conf, rule);
        off = ov[1] > ov[0] ? ov[1] : ov[0] + 1;
        while (off < s->n && ((unsigned char)s->t[off] & 0xC0) == 0x80)
            off++;
    }
    pcre2_match_data_free(md);
}

/* ---------------------------------------------------------------- detector */

static pcre2_code *compile(const char *pat)
{
    int ec;
    PCRE2_SIZE eo;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, PCRE2_UTF, &ec, &eo, NULL);
    if (re)
        pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
    return re;
}

enum kura_err kura_detector_create(const struct kura_detector_options *opt,
                                   struct kura_detector **out, struct kura_errbuf *eb)
{
    *out = NULL;
    struct kura_detector *d = calloc(1, sizeof *d);
    if (!d)
        return kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
    pthread_once(&ctx_once, ctx_init_once);
    static const char addr[] =
        "(?<![A-Za-z0-9])[0-9]{1,5}[A-Z]?(?: (?:N|S|E|W|North|South|East|West)\\.?)?"
        "(?: [A-Z][a-z]+){1,4} (?:Street|St|Avenue|Ave|Road|Rd|Boulevard|Blvd|Lane|Ln|Drive|Dr|"
        "Court|Ct|Way|Place|Pl|Terrace|Parkway|Pkwy|Highway|Hwy|Square|Sq)\\b\\.?"
        "(?:,? (?:Apt|Apartment|Suite|Ste|Unit|#)\\.? ?[A-Za-z0-9-]+)?"
        "(?:, [A-Z][a-z]+(?: [A-Z][a-z]+){0,2},? [A-Z]{2} [0-9]{5}(?:-[0-9]{4})?)?";
    static const char person[] =
        "(?<![A-Za-z])(?:Mr|Mrs|Ms|Miss|Mx|Dr|Prof)\\.? "
        "((?:[A-Z][a-z]+(?:[-'][A-Z][a-z]+)?|[A-Z]\\.)(?: (?:[A-Z][a-z]+(?:[-'][A-Z][a-z]+)?|[A-Z]\\.)){0,2})"
        "(?![A-Za-z])";
    static const char name_ctx[] =
        "(?<![A-Za-z])(?:[Nn]ame|NAME|Patient|Customer|Employee|Applicant|Cardholder|Holder)"
        "\\s*:\\s*([A-Z][a-z]+(?:[-'][A-Z][a-z]+)?(?: [A-Z][a-z]+(?:[-'][A-Z][a-z]+)?){1,2})(?![A-Za-z])";
    d->re_en_address = compile(addr);
    d->re_en_person = compile(person);
    d->re_en_name_ctx = compile(name_ctx);
    if (!d->re_en_address || !d->re_en_person || !d->re_en_name_ctx) {
        kura_detector_destroy(d);
        return kura_err_set(eb, KURA_ERR_INTERNAL, "built-in pattern failed to compile");
    }
    if (!(opt && opt->no_mecab)) {
        const char *dic = opt ? opt->mecab_dic : NULL;
        char why[400] = "";
        d->mecab = kura_mecab_open(dic, why, sizeof why);
        if (!d->mecab) {
            snprintf(d->warning, sizeof d->warning,
                     "MeCab unavailable (%s); person names use honorific rules only", why);
            d->has_warning = true;
        }
    } else {
        snprintf(d->warning, sizeof d->warning,
                 "MeCab disabled; person names use honorific rules only");
        d->has_warning = true;
    }
    *out = d;
    return KURA_OK;
}

void kura_detector_destroy(struct kura_detector *d)
{
    if (!d)
        return;
    kura_mecab_close(d->mecab);
    pcre2_code_free(d->re_en_address);
    pcre2_code_free(d->re_en_person);
    pcre2_code_free(d->re_en_name_ctx);
    free(d);
}

const char *kura_detector_warning(const struct kura_detector *d)
{
    return d && d->has_warning ? d->warning : NULL;
}

bool kura_detector_has_mecab(const struct kura_detector *d)
{
    return d && d->mecab;
}

static const int type_rank[KURA_PII__COUNT] = {
    [KURA_PII_MY_NUMBER] = 9, [KURA_PII_CORPORATE_NUMBER] = 8, [KURA_PII_CREDIT_CARD] = 9,
    [KURA_PII_PHONE] = 7, [KURA_PII_EMAIL] = 9, [KURA_PII_IP_ADDRESS] = 6,
    [KURA_PII_BANK_ACCOUNT] = 8, [KURA_PII_PASSPORT] = 8, [KURA_PII_DRIVERS_LICENSE] = 8,
    [KURA_PII_BIRTH_DATE] = 7, [KURA_PII_HEALTH_INSURANCE] = 8, [KURA_PII_PERSON] = 4,
    [KURA_PII_ADDRESS] = 5, [KURA_PII_POSTAL_CODE] = 6, [KURA_PII_RULE] = 5};

static int cmp_start(const void *a, const void *b)
{
    const struct kura_finding *x = a, *y = b;
    if (x->start != y->start)
        return x->start < y->start ? -1 : 1;
    if (x->end != y->end)
        return x->end > y->end ? -1 : 1;
    return 0;
}

/* Is x preferred over y when they overlap? */
static bool better(const struct kura_policy *pol, const struct kura_finding *x,
                   const struct kura_finding *y)
{
    if (pol) {
        enum kura_level lx = kura_policy_level_of(pol, x), ly = kura_policy_level_of(pol, y);
        if (lx != ly)
            return lx > ly;
    }
    bool sx = kura_pii_type_is_structured(x->type), sy = kura_pii_type_is_structured(y->type);
    if (sx != sy)
        return sx;
    size_t lx = x->end - x->start, ly = y->end - y->start;
    if (lx != ly)
        return lx > ly;
    if (type_rank[x->type] != type_rank[y->type])
        return type_rank[x->type] > type_rank[y->type];
    return x->confidence > y->confidence;
}

enum kura_err kura_detect(const struct kura_detector *d, const struct kura_policy *pol,
                          const char *text, size_t len, struct kura_findings *out,
                          struct kura_errbuf *eb)
{
    if (!d || (!text && len))
        return kura_err_set(eb, KURA_ERR_INVALID, "kura_detect: no detector or text");
    char *norm = NULL;
    uint32_t *map = NULL;
    size_t nl = 0;
    struct kura_findings tmp = {0};
    enum kura_err e = kura_policy_normalize(text ? text : "", len, &norm, &nl, &map, eb);
    if (e)
        return e;
    struct scan s = {norm, nl, &tmp, 0, NULL, 0};
    scan_digit_runs(&s);
    scan_email(&s);
    scan_ip(&s);
    scan_letters(&s);
    scan_birth_dates(&s);
    scan_insurance_symbols(&s);
    scan_jp_address(&s);
    scan_regex(&s, d->re_en_address, 0, KURA_PII_ADDRESS, 0.85f, "en_street_address");
    scan_regex(&s, d->re_en_person, 1, KURA_PII_PERSON, 0.9f, "en_title_name");
    scan_regex(&s, d->re_en_name_ctx, 1, KURA_PII_PERSON, 0.8f, "en_name_field");
    if (d->mecab) {
        if (!s.err && kura_mecab_persons(d->mecab, norm, nl, &tmp))
            s.err = -1;
    } else {
        scan_honorific_names(&s);
    }
    if (s.err) {
        if (s.err == -1) {
            e = kura_err_set(eb, KURA_ERR_NOMEM, "detection ran out of memory or findings");
        } else {
            PCRE2_UCHAR why[128];
            pcre2_get_error_message(s.err, why, sizeof why);
            e = kura_err_set(eb, KURA_ERR_BUSY,
                             "detector '%s' gave up at byte %zu of the normalised text (%s); the "
                             "text was not fully checked", s.what ? s.what : "?", s.at,
                             (const char *)why);
        }
        goto done;
    }
    if (pol && (e = kura_policy_run_rules(pol, norm, nl, &tmp, eb)))
        goto done;
    /* back to original offsets */
    for (size_t k = 0; k < tmp.n; k++) {
        size_t a = tmp.v[k].start, b = tmp.v[k].end;
        tmp.v[k].start = kura_nmap_start(map, a);
        tmp.v[k].end = kura_nmap_end(map, nl, b);
    }
    if (tmp.n > 1)
        qsort(tmp.v, tmp.n, sizeof *tmp.v, cmp_start);
    /* drop overlaps: keep the better finding of each overlapping pair */
    size_t kept = 0;
    for (size_t k = 0; k < tmp.n; k++) {
        struct kura_finding f = tmp.v[k];
        if (f.end <= f.start)
            continue;
        bool drop = false;
        while (kept > 0 && tmp.v[kept - 1].end > f.start) {
            if (better(pol, &tmp.v[kept - 1], &f)) {
                drop = true;
                break;
            }
            kept--; /* the new one wins over the previous */
        }
        if (!drop)
            tmp.v[kept++] = f;
    }
    for (size_t k = 0; k < kept; k++) {
        const struct kura_finding *f = &tmp.v[k];
        if (kura_findings_push(out, f->type, f->start, f->end, f->confidence, f->rule,
                               f->rule_index)) {
            e = kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
            goto done;
        }
    }
done:
    kura_findings_free(&tmp);
    free(norm);
    free(map);
    return e;
}
