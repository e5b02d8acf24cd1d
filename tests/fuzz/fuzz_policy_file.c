/* Fuzz target: the policy file parser and linter on arbitrary bytes. */
#include <stdint.h>
#include <stdlib.h>

#include "kura/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kura_policy *p = NULL;
    if (kura_policy_parse((const char *)data, size, "fuzz", &p, NULL) == KURA_OK) {
        if (!p || !kura_policy_auto_model(p))
            __builtin_trap();
        for (size_t i = 0; i < kura_policy_n_destinations(p); i++)
            if (!kura_policy_destination(p, i)->name)
                __builtin_trap();
    }
    kura_policy_destroy(p);
    int n = kura_policy_lint_buffer((const char *)data, size, NULL, NULL);
    if (n < -1)
        __builtin_trap();
    return 0;
}
