/* Chat templates: exact output per template, detection from Jinja sources, errors. */
#include "kura/chat.h"

#include "test.h"

static const struct kura_chat_msg conv[] = {
    {"system", "You are a helpful assistant"},
    {"user", "Hello"},
    {"assistant", "Hi there"},
    {"user", "Who are you"},
    {"assistant", "   I am an assistant   "},
    {"user", "Another question"},
};
#define N_CONV (sizeof conv / sizeof *conv)

static void expect(enum kura_chat_tmpl t, const struct kura_chat_msg *m, size_t n, bool add_gen,
                   const char *want)
{
    char *out = NULL;
    struct kura_errbuf eb = {0};
    enum kura_err e = kura_chat_format(t, m, n, add_gen, &out, &eb);
    CHECKF(e == KURA_OK, "%s: %s", kura_chat_tmpl_name(t), eb.msg);
    if (e == KURA_OK)
        CHECKF(strcmp(out, want) == 0, "%s:\n got: [%s]\nwant: [%s]", kura_chat_tmpl_name(t), out,
               want);
    free(out);
}

/* The six-message conversation with a generation prompt, as llama.cpp renders it. */
static void test_conversation(void)
{
    expect(KURA_CHAT_TMPL_CHATML, conv, N_CONV, true,
           "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n"
           "<|im_start|>user\nHello<|im_end|>\n"
           "<|im_start|>assistant\nHi there<|im_end|>\n"
           "<|im_start|>user\nWho are you<|im_end|>\n"
           "<|im_start|>assistant\n   I am an assistant   <|im_end|>\n"
           "<|im_start|>user\nAnother question<|im_end|>\n"
           "<|im_start|>assistant\n");
    expect(KURA_CHAT_TMPL_LLAMA3, conv, N_CONV, true,
           "<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant<|eot_id|>"
           "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
           "<|start_header_id|>assistant<|end_header_id|>\n\nHi there<|eot_id|>"
           "<|start_header_id|>user<|end_header_id|>\n\nWho are you<|eot_id|>"
           "<|start_header_id|>assistant<|end_header_id|>\n\nI am an assistant<|eot_id|>"
           "<|start_header_id|>user<|end_header_id|>\n\nAnother question<|eot_id|>"
           "<|start_header_id|>assistant<|end_header_id|>\n\n");
    expect(KURA_CHAT_TMPL_LLAMA2, conv, N_CONV, true,
           "[INST] You are a helpful assistant\nHello [/INST]Hi there</s>"
           "[INST] Who are you [/INST]   I am an assistant   </s>[INST] Another question [/INST]");
    expect(KURA_CHAT_TMPL_LLAMA2_SYS, conv, N_CONV, true,
           "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]Hi there</s>"
           "[INST] Who are you [/INST]   I am an assistant   </s>[INST] Another question [/INST]");
    expect(KURA_CHAT_TMPL_LLAMA2_SYS_BOS, conv, N_CONV, true,
           "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]Hi there</s>"
           "<s>[INST] Who are you [/INST]   I am an assistant   </s>"
           "<s>[INST] Another question [/INST]");
    expect(KURA_CHAT_TMPL_LLAMA2_SYS_STRIP, conv, N_CONV, true,
           "[INST] <<SYS>>\nYou are a helpful assistant\n<</SYS>>\n\nHello [/INST]Hi there</s>"
           "[INST] Who are you [/INST]I am an assistant</s>[INST] Another question [/INST]");
    expect(KURA_CHAT_TMPL_MISTRAL_V1, conv, N_CONV, true,
           " [INST] You are a helpful assistant\n\nHello [/INST] Hi there</s>"
           " [INST] Who are you [/INST]    I am an assistant   </s>"
           " [INST] Another question [/INST]");
    expect(KURA_CHAT_TMPL_MISTRAL_V3, conv, N_CONV, true,
           "[INST] You are a helpful assistant\n\nHello[/INST] Hi there</s>"
           "[INST] Who are you[/INST] I am an assistant</s>[INST] Another question[/INST]");
    expect(KURA_CHAT_TMPL_MISTRAL_V3_TEKKEN, conv, N_CONV, true,
           "[INST]You are a helpful assistant\n\nHello[/INST]Hi there</s>"
           "[INST]Who are you[/INST]   I am an assistant   </s>[INST]Another question[/INST]");
    expect(KURA_CHAT_TMPL_MISTRAL_V7, conv, N_CONV, true,
           "[SYSTEM_PROMPT] You are a helpful assistant[/SYSTEM_PROMPT][INST] Hello[/INST]"
           " Hi there</s>[INST] Who are you[/INST]    I am an assistant   </s>"
           "[INST] Another question[/INST]");
    expect(KURA_CHAT_TMPL_MISTRAL_V7_TEKKEN, conv, N_CONV, true,
           "[SYSTEM_PROMPT]You are a helpful assistant[/SYSTEM_PROMPT][INST]Hello[/INST]"
           "Hi there</s>[INST]Who are you[/INST]   I am an assistant   </s>"
           "[INST]Another question[/INST]");
    expect(KURA_CHAT_TMPL_GEMMA, conv, N_CONV, true,
           "<start_of_turn>user\nYou are a helpful assistant\n\nHello<end_of_turn>\n"
           "<start_of_turn>model\nHi there<end_of_turn>\n"
           "<start_of_turn>user\nWho are you<end_of_turn>\n"
           "<start_of_turn>model\nI am an assistant<end_of_turn>\n"
           "<start_of_turn>user\nAnother question<end_of_turn>\n"
           "<start_of_turn>model\n");
    expect(KURA_CHAT_TMPL_PHI3, conv, N_CONV, true,
           "<|system|>\nYou are a helpful assistant<|end|>\n<|user|>\nHello<|end|>\n"
           "<|assistant|>\nHi there<|end|>\n<|user|>\nWho are you<|end|>\n"
           "<|assistant|>\n   I am an assistant   <|end|>\n<|user|>\nAnother question<|end|>\n"
           "<|assistant|>\n");
    expect(KURA_CHAT_TMPL_PHI4, conv, N_CONV, true,
           "<|im_start|>system<|im_sep|>You are a helpful assistant<|im_end|>"
           "<|im_start|>user<|im_sep|>Hello<|im_end|>"
           "<|im_start|>assistant<|im_sep|>Hi there<|im_end|>"
           "<|im_start|>user<|im_sep|>Who are you<|im_end|>"
           "<|im_start|>assistant<|im_sep|>   I am an assistant   <|im_end|>"
           "<|im_start|>user<|im_sep|>Another question<|im_end|>"
           "<|im_start|>assistant<|im_sep|>");
}

static void test_generation_prompt_and_edges(void)
{
    const struct kura_chat_msg one[] = {{"user", " hi\n"}};
    expect(KURA_CHAT_TMPL_CHATML, one, 1, false, "<|im_start|>user\n hi\n<|im_end|>\n");
    expect(KURA_CHAT_TMPL_LLAMA3, one, 1, false,
           "<|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>");
    expect(KURA_CHAT_TMPL_GEMMA, one, 1, false, "<start_of_turn>user\nhi<end_of_turn>\n");
    /* llama2/mistral end a user turn with [/INST]: the flag changes nothing */
    expect(KURA_CHAT_TMPL_LLAMA2_SYS, one, 1, true, "[INST]  hi\n [/INST]");
    expect(KURA_CHAT_TMPL_LLAMA2_SYS, one, 1, false, "[INST]  hi\n [/INST]");
    expect(KURA_CHAT_TMPL_MISTRAL_V3, one, 1, true, "[INST]  hi\n[/INST]");

    /* empty chat */
    expect(KURA_CHAT_TMPL_CHATML, NULL, 0, true, "<|im_start|>assistant\n");
    expect(KURA_CHAT_TMPL_CHATML, NULL, 0, false, "");

    /* gemma: several system messages are trimmed and joined; they wait for a user turn */
    const struct kura_chat_msg gs[] = {
        {"system", " Be brief. "}, {"system", "Be kind.\n"}, {"assistant", "Hello!"},
        {"user", "Hi"},
    };
    expect(KURA_CHAT_TMPL_GEMMA, gs, 4, true,
           "<start_of_turn>model\nHello!<end_of_turn>\n"
           "<start_of_turn>user\nBe brief.Be kind.\n\nHi<end_of_turn>\n<start_of_turn>model\n");
    /* a system message with no user turn after it leaves no trace, as in llama.cpp */
    expect(KURA_CHAT_TMPL_GEMMA, gs, 2, false, "");

    /* llama2-sys: a system message after the first turn is wrapped where it stands */
    const struct kura_chat_msg ls[] = {
        {"user", "a"}, {"assistant", "b"}, {"system", "c"}, {"user", "d"},
    };
    expect(KURA_CHAT_TMPL_LLAMA2_SYS, ls, 4, true,
           "[INST] a [/INST]b</s>[INST] <<SYS>>\nc\n<</SYS>>\n\nd [/INST]");
    /* mistral-v1 multi-turn without a system message */
    expect(KURA_CHAT_TMPL_MISTRAL_V1, ls + 0, 2, true, " [INST] a [/INST] b</s>");

    /* UTF-8 and template markers in content pass through untouched */
    const struct kura_chat_msg u[] = {{"user", "日本語 <|im_end|>"}};
    expect(KURA_CHAT_TMPL_CHATML, u, 1, false, "<|im_start|>user\n日本語 <|im_end|><|im_end|>\n");
}

static void test_errors(void)
{
    char *out = (char *)1;
    struct kura_errbuf eb = {0};
    const struct kura_chat_msg bad[] = {{"user", "x"}, {"tool", "y"}};
    CHECK(kura_chat_format(KURA_CHAT_TMPL_CHATML, bad, 2, true, &out, &eb) == KURA_ERR_INVALID);
    CHECK(out == NULL);
    CHECKF(strstr(eb.msg, "'tool'") && strstr(eb.msg, "message 1"), "%s", eb.msg);

    const struct kura_chat_msg ctl[] = {{"us\ner\x01", "x"}};
    CHECK(kura_chat_format(KURA_CHAT_TMPL_LLAMA3, ctl, 1, true, &out, &eb) == KURA_ERR_INVALID);
    CHECKF(strstr(eb.msg, "'us?er?'") != NULL, "%s", eb.msg); /* no raw control bytes */

    const struct kura_chat_msg nul[] = {{"user", NULL}};
    CHECK(kura_chat_format(KURA_CHAT_TMPL_LLAMA3, nul, 1, true, &out, &eb) == KURA_ERR_INVALID);
    CHECK(strstr(eb.msg, "content") != NULL);
    const struct kura_chat_msg nulr[] = {{NULL, "x"}};
    CHECK(kura_chat_format(KURA_CHAT_TMPL_LLAMA3, nulr, 1, true, &out, &eb) == KURA_ERR_INVALID);
    const struct kura_chat_msg caps[] = {{"User", "x"}};
    CHECK(kura_chat_format(KURA_CHAT_TMPL_GEMMA, caps, 1, true, &out, &eb) == KURA_ERR_INVALID);

    CHECK(kura_chat_format(KURA_CHAT_TMPL_UNKNOWN, conv, 1, true, &out, &eb) == KURA_ERR_INVALID);
    CHECK(kura_chat_format((enum kura_chat_tmpl)999, conv, 1, true, &out, &eb) ==
          KURA_ERR_INVALID);
    CHECK(kura_chat_format(KURA_CHAT_TMPL_CHATML, NULL, 3, true, &out, &eb) == KURA_ERR_INVALID);
    CHECK(kura_chat_format(KURA_CHAT_TMPL_CHATML, conv, (size_t)1 << 20, true, &out, &eb) ==
          KURA_ERR_RANGE);
}

static void test_names(void)
{
    for (int t = 1; t < KURA_CHAT_TMPL__COUNT; t++) {
        const char *name = kura_chat_tmpl_name((enum kura_chat_tmpl)t);
        CHECK(strcmp(name, "unknown") != 0);
        CHECKF((int)kura_chat_tmpl_from_name(name) == t, "%s", name);
        CHECKF((int)kura_chat_tmpl_detect(name) == t, "%s", name); /* a bare name is an override */
    }
    CHECK(strcmp(kura_chat_tmpl_name(KURA_CHAT_TMPL_LLAMA3), "llama3") == 0);
    CHECK(strcmp(kura_chat_tmpl_name(KURA_CHAT_TMPL_CHATML), "chatml") == 0);
    CHECK(strcmp(kura_chat_tmpl_name((enum kura_chat_tmpl)-1), "unknown") == 0);
    CHECK(strcmp(kura_chat_tmpl_name(KURA_CHAT_TMPL__COUNT), "unknown") == 0);
    CHECK(kura_chat_tmpl_from_name("llama-3") == KURA_CHAT_TMPL_UNKNOWN);
    CHECK(kura_chat_tmpl_from_name(NULL) == KURA_CHAT_TMPL_UNKNOWN);
    CHECK(kura_chat_tmpl_from_name("unknown") == KURA_CHAT_TMPL_UNKNOWN);
}

/* Short Jinja sources written in the style of the templates shipped in GGUF files. */
static void test_detect(void)
{
    struct {
        const char *src;
        enum kura_chat_tmpl want;
    } cases[] = {
        {"{{- bos_token }}{%- for message in messages %}"
         "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + "
         "message['content'] | trim + '<|eot_id|>' }}{%- endfor %}"
         "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' "
         "}}{%- endif %}",
         KURA_CHAT_TMPL_LLAMA3},
        {"{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + "
         "message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}"
         "{{ '<|im_start|>assistant\\n' }}{% endif %}",
         KURA_CHAT_TMPL_CHATML},
        {"{% for message in messages %}{% if message['role'] == 'system' %}"
         "{{'<|im_start|>system<|im_sep|>' + message['content'] + '<|im_end|>'}}{% endif %}"
         "{% endfor %}",
         KURA_CHAT_TMPL_PHI4},
        {"{% if messages[0]['role'] == 'system' %}{% set system_message = '<<SYS>>\\n' + "
         "messages[0]['content'] + '\\n<</SYS>>\\n\\n' %}{% endif %}{% for message in messages %}"
         "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
         "{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'] + ' ' + eos_token "
         "}}{% endif %}{% endfor %}",
         KURA_CHAT_TMPL_LLAMA2_SYS},
        {"{% for message in messages %}{% if message['role'] == 'user' %}{{ bos_token + '[INST] ' "
         "+ message['content'] + ' [/INST]' }}{% elif message['role'] == 'system' %}"
         "{{ '<<SYS>>\\n' + message['content'] + '\\n<</SYS>>\\n\\n' }}{% endif %}{% endfor %}",
         KURA_CHAT_TMPL_LLAMA2_SYS_BOS},
        {"{% for message in messages %}{% set content = message['content'] %}"
         "{% if message['role'] == 'user' %}{{ '[INST] ' + content.strip() + ' [/INST]' }}"
         "{% elif message['role'] == 'system' %}"
         "{{ '<<SYS>>\\n' + content.strip() + '\\n<</SYS>>\\n\\n' }}{% endif %}"
         "{% endfor %}",
         KURA_CHAT_TMPL_LLAMA2_SYS_STRIP},
        /* Mistral-7B-Instruct v0.1/v0.2 style: [INST] without a system prompt */
        {"{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
         "{{ '[INST] ' + message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' "
         "%}{{ message['content'] + eos_token }}{% endif %}{% endfor %}",
         KURA_CHAT_TMPL_LLAMA2},
        {"{%- if messages[0]['role'] == 'system' %}{%- set system_message = messages[0]['content'] "
         "%}{%- endif %}{{- bos_token }}{%- for message in loop_messages %}{%- if loop.first and "
         "system_message is defined %}{{- ' [INST] ' + system_message + '\\n\\n' + "
         "message['content'] + ' [/INST]' }}{%- endif %}{%- endfor %}",
         KURA_CHAT_TMPL_MISTRAL_V1},
        {"{%- for message in loop_messages %}{%- if tools is not none %}{{- \"[AVAILABLE_TOOLS] [\" "
         "}}{%- endif %}{{- \"[INST] \" + message[\"content\"] + \"[/INST]\" }}{%- endfor %}",
         KURA_CHAT_TMPL_MISTRAL_V3},
        {"{%- for message in loop_messages %}{%- if tools is not none %}{{- \"[AVAILABLE_TOOLS][\" "
         "}}{%- endif %}{{- \"[INST]\" + message[\"content\"] + \"[/INST]\" }}{%- endfor %}",
         KURA_CHAT_TMPL_MISTRAL_V3_TEKKEN},
        {"{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}"
         "{{ '[INST] ' + message['content'] + '[/INST]' }}{% elif message['role'] == 'system' %}"
         "{{ '[SYSTEM_PROMPT] ' + message['content'] + '[/SYSTEM_PROMPT]' }}{% endif %}"
         "{% endfor %}",
         KURA_CHAT_TMPL_MISTRAL_V7},
        {"{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'assistant') %}"
         "{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}"
         "{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}"
         "{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\\n'}}{% endif %}",
         KURA_CHAT_TMPL_GEMMA},
        {"{{ bos_token }}{% for message in messages %}{{'<|' + message['role'] + '|>' + '\\n' + "
         "message['content'] + '<|end|>\\n'}}{% endfor %}{% if add_generation_prompt %}"
         "{{ '<|assistant|>\\n' }}{% endif %}",
         KURA_CHAT_TMPL_PHI3},
        {"{% for message in messages %}{{ message['role'] + ': ' + message['content'] }}"
         "{% endfor %}",
         KURA_CHAT_TMPL_UNKNOWN},
        {"", KURA_CHAT_TMPL_UNKNOWN},
        /* only one llama3 marker is not enough */
        {"{{ '<|start_header_id|>' }}", KURA_CHAT_TMPL_UNKNOWN},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        enum kura_chat_tmpl got = kura_chat_tmpl_detect(cases[i].src);
        CHECKF(got == cases[i].want, "case %zu: detected %s, want %s", i,
               kura_chat_tmpl_name(got), kura_chat_tmpl_name(cases[i].want));
    }
    CHECK(kura_chat_tmpl_detect(NULL) == KURA_CHAT_TMPL_UNKNOWN);
}

int main(void)
{
    test_conversation();
    test_generation_prompt_and_edges();
    test_errors();
    test_names();
    test_detect();
    return test_finish();
}
