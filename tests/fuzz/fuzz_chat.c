/* Fuzz target for the chat templates: arbitrary bytes become a template choice and a list of
 * messages; kura_chat_format and kura_chat_tmpl_detect must never crash, and a successful render
 * must be a NUL-terminated string that contains every content verbatim (for the templates that
 * do not trim).
 *
 * Input layout: byte 0 picks the template (mod the count, 0 = unknown), byte 1 bit 0 is
 * add_generation_prompt; the rest is split into messages at 0x1e, each message into role and
 * content at the first 0x1f. A one-byte role maps to system/user/assistant by value mod 3; any
 * other role is used as is (mostly invalid). */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kura/chat.h"

#define MAX_MSGS 256

static char *dup_range(const uint8_t *p, size_t n)
{
    char *s = malloc(n + 1);
    if (!s)
        return NULL;
    memcpy(s, p, n);
    s[n] = 0; /* an embedded NUL just ends the string early */
    return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const roles[3] = {"system", "user", "assistant"};
    struct kura_chat_msg msgs[MAX_MSGS];
    char *owned[2 * MAX_MSGS];
    size_t n_owned = 0, n = 0;

    char *whole = dup_range(data, size);
    if (whole) {
        enum kura_chat_tmpl d = kura_chat_tmpl_detect(whole);
        if ((int)d < 0 || d >= KURA_CHAT_TMPL__COUNT)
            abort();
        (void)kura_chat_tmpl_name(d);
        free(whole);
    }
    if (size < 2)
        return 0;
    enum kura_chat_tmpl t = (enum kura_chat_tmpl)(data[0] % KURA_CHAT_TMPL__COUNT);
    bool add_gen = data[1] & 1;
    size_t pos = 2;
    while (pos <= size && n < MAX_MSGS) {
        size_t end = pos;
        while (end < size && data[end] != 0x1e)
            end++;
        size_t sep = pos;
        while (sep < end && data[sep] != 0x1f)
            sep++;
        const char *role;
        if (sep - pos == 1) {
            role = roles[data[pos] % 3];
        } else {
            char *r = dup_range(data + pos, sep - pos);
            if (!r)
                goto out;
            owned[n_owned++] = r;
            role = r;
        }
        size_t cstart = sep < end ? sep + 1 : end;
        char *c = dup_range(data + cstart, end - cstart);
        if (!c)
            goto out;
        owned[n_owned++] = c;
        msgs[n].role = role;
        msgs[n].content = c;
        n++;
        pos = end + 1;
    }

    char *out = NULL;
    struct kura_errbuf eb = {0};
    enum kura_err err = kura_chat_format(t, msgs, n, add_gen, &out, &eb);
    if (err == KURA_OK) {
        if (!out)
            abort();
        size_t len = strlen(out);
        bool trims = t == KURA_CHAT_TMPL_LLAMA3 || t == KURA_CHAT_TMPL_GEMMA ||
                     t == KURA_CHAT_TMPL_LLAMA2_SYS_STRIP || t == KURA_CHAT_TMPL_MISTRAL_V3;
        for (size_t i = 0; i < n && !trims; i++)
            if (msgs[i].content[0] && !strstr(out, msgs[i].content))
                abort();
        (void)len;
        free(out);
    } else if (out != NULL || eb.msg[0] == 0) {
        abort(); /* failure must leave *out NULL and say why */
    }
out:
    for (size_t i = 0; i < n_owned; i++)
        free(owned[i]);
    return 0;
}
