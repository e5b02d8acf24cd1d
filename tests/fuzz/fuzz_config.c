/* Fuzz target: the kura serve YAML configuration reader on arbitrary bytes. A successful load
 * must leave a configuration whose strings are set and whose numbers lie in their ranges; either
 * way, deinit must free everything (leaks fail under ASan). */
#include <stdint.h>
#include <stdlib.h>

#include "kura/serve.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct kura_serve_config c;
    kura_serve_config_init(&c);
    struct kura_errbuf eb = {0};
    if (kura_serve_config_load_buffer(&c, (const char *)data, size, "fuzz", &eb) == KURA_OK) {
        if (!c.host || c.port < 0 || c.port > 65535 || c.slots < 1 || c.slots > 64 ||
            c.n_models < 0 || c.n_models > KURA_SERVE_MAX_MODELS ||
            c.n_key_rates < 0 || c.n_key_rates > KURA_SERVE_MAX_KEY_RATES)
            __builtin_trap();
        for (int i = 0; i < c.n_models; i++)
            if (!c.models[i].path || !c.models[i].name)
                __builtin_trap();
        (void)kura_serve_config_check(&c, &eb);
    } else if (!eb.msg[0]) {
        __builtin_trap(); /* every failure says why */
    }
    kura_serve_config_deinit(&c);
    return 0;
}
