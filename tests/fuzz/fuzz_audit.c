/* Fuzz target: arbitrary bytes as an audit log, through the verifier (with a fixed public key,
 * a tag key and an expected head) and the record parser. Must never crash or leak. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "audit/audit_int.h"
#include "kura/audit.h"
#include "kura/state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t pk[32] = {0x7c, 0x2e, 0xf7, 0x86, 0x77, 0xad, 0x27, 0x95,
                                   0x1d, 0x2a, 0x71, 0x03, 0x0e, 0x05, 0x59, 0x23,
                                   0xdb, 0xe3, 0xa7, 0x11, 0xdc, 0xa6, 0xdf, 0x57,
                                   0x3a, 0x19, 0xc8, 0xbf, 0xb1, 0xce, 0x7d, 0xe4};
    struct kura_secret tag = {(unsigned char *)"0123456789abcdef0123456789abcdef", 32, 32};
    struct kura_audit_verify_result r;
    struct kura_audit_verify_opts o = {.pubkey = pk};
    kura_audit_verify_buffer(data, size, &o, &r);
    o.tag_key = &tag;
    o.have_head = true;
    o.head_seq = 3;
    o.expect_min_seq = 2;
    kura_audit_verify_buffer(data, size, &o, &r);
    /* each line through the parser on its own */
    const char *p = (const char *)data, *end = p + size;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        struct arec rec;
        char why[128];
        if (arec_parse(p, n, &rec, why, sizeof why))
            arec_free(&rec);
        p += n + 1;
    }
    return 0;
}
