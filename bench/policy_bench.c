/* Policy detector benchmark (not a test): detection time for a 4 KB mixed Japanese/English
 * prompt, with MeCab and with the honorific rules only. Goal: < 1 ms per 4 KB prompt.
 *   usage: policy_bench [iterations, default 2000] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kura/policy.h"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static const char *const parts[] = {
    "お世話になっております。山田太郎様の件でご連絡しました。",
    "電話番号は03-1234-5678、携帯は090-1234-5678です。",
    "本日の会議は午後3時から始まります。資料を事前にご確認ください。",
    "〒105-0011 東京都港区芝公園4-2-8 までお送りください。",
    "Please contact Mr. John Smith at john.smith@example.com about the renewal. ",
    "The quarterly report is attached; revenue grew 12% compared with last year. ",
    "マイナンバー 123456789018 は取り扱いに注意してください。",
    "注文番号 0312345678 の商品は明日発送予定です。",
    "カード番号 4111 1111 1111 1111 で決済済みです。",
    "サーバー 192.168.10.5 のログを確認しました。",
    "生年月日 昭和60年1月2日、口座番号 普通 1234567。",
    "He lives at 1600 Pennsylvania Avenue, Washington, DC 20500. ",
};

int main(int argc, char **argv)
{
    int iters = argc > 1 ? atoi(argv[1]) : 2000;
    if (iters <= 0)
        iters = 2000;
    char text[4096 + 256];
    size_t n = 0;
    for (size_t k = 0; n < 4096;) {
        size_t l = strlen(parts[k % (sizeof parts / sizeof parts[0])]);
        if (n + l > 4096)
            break;
        memcpy(text + n, parts[k % (sizeof parts / sizeof parts[0])], l);
        n += l;
        k++;
    }
    while (n < 4096)
        text[n++] = ' ';
    for (int mode = 0; mode < 2; mode++) {
        struct kura_detector_options o = {mode == 1, NULL};
        struct kura_detector *d;
        if (kura_detector_create(&o, &d, NULL) != KURA_OK)
            return 1;
        if (mode == 0 && !kura_detector_has_mecab(d))
            printf("(MeCab not available: %s)\n", kura_detector_warning(d));
        struct kura_findings f = {0};
        kura_detect(d, NULL, text, n, &f, NULL); /* warm up */
        size_t nf = f.n;
        kura_findings_free(&f);
        double us = 1e30; /* best of 5 rounds: the machine may be shared */
        for (int round = 0; round < 5; round++) {
            double t0 = now();
            for (int i = 0; i < iters; i++) {
                kura_detect(d, NULL, text, n, &f, NULL);
                kura_findings_free(&f);
            }
            double r = (now() - t0) / iters * 1e6;
            if (r < us)
                us = r;
        }
        printf("%-22s %zu bytes, %zu findings: %.1f us per prompt (%.0f MB/s)\n",
               mode ? "honorific rules only" : "with MeCab", n, nf, us, (double)n / us);
        kura_detector_destroy(d);
    }
    return 0;
}
