/* Fuzz target: the policy detector on arbitrary bytes. Findings must lie inside the input,
 * sorted and non-overlapping; pseudonymising and restoring must give the input back (for inputs
 * without '<', which could otherwise spell a placeholder themselves). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kura/policy.h"

static struct kura_detector *det;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!det && kura_detector_create(NULL, &det, NULL) != KURA_OK)
        return 0;
    if (size > 1u << 16)
        return 0;
    const char *text = (const char *)data;
    struct kura_findings f = {0};
    if (kura_detect(det, NULL, text, size, &f, NULL) != KURA_OK)
        return 0;
    for (size_t i = 0; i < f.n; i++) {
        if (f.v[i].start >= f.v[i].end || f.v[i].end > size)
            __builtin_trap();
        if (i && f.v[i].start < f.v[i - 1].end)
            __builtin_trap();
    }
    struct kura_pseudo *ps;
    if (kura_pseudo_create(false, &ps) == KURA_OK) {
        char *out, *back;
        size_t ol, bl;
        if (kura_pseudo_apply(ps, text, size, &f, &out, &ol) == KURA_OK) {
            if (kura_pseudo_restore(ps, out, ol, &back, &bl) == KURA_OK) {
                if (!memchr(text, '<', size) && (bl != size || memcmp(back, text, size) != 0))
                    __builtin_trap();
                free(back);
            }
            free(out);
        }
        kura_pseudo_destroy(ps);
    }
    kura_findings_free(&f);
    return 0;
}
