/* kura serve's parts that need no model: the API-key store (apikey.h), the configuration
 * (serve.h: YAML file and dotted setters) and the OpenAI request parser (serve/api.h). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kura/apikey.h"
#include "kura/keys.h"
#include "kura/serve.h"
#include "kura/state.h"
#include "serve/api.h"
#include "test.h"

static char dir[256];

static void rm_rf(const char *d)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", d);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup of %s failed\n", d);
}

static void test_apikeys(void)
{
    struct kura_secret *pass = NULL;
    struct kura_keys *k = NULL;
    struct kura_errbuf eb = {0};
    CHECK(kura_secret_from("unit pass", 9, &pass) == KURA_OK);
    CHECK(kura_keys_init(dir, pass, NULL, &eb) == KURA_OK);
    CHECK(kura_keys_open(dir, pass, &k, &eb) == KURA_OK);
    struct kura_apikeys *ks = NULL, *ks2 = NULL;
    CHECK(kura_apikeys_open(dir, k, &ks, &eb) == KURA_OK);
    char s1[KURA_APIKEY_SECRET_LEN], s2[KURA_APIKEY_SECRET_LEN];
    struct kura_apikey_info info;
    CHECK(kura_apikeys_create(ks, "alice", KURA_APIKEY_ADMIN, s1, &info, &eb) == KURA_OK);
    CHECK(strncmp(s1, "kura_", 5) == 0 && strlen(s1) == KURA_APIKEY_SECRET_LEN - 1);
    CHECK(strcmp(info.name, "alice") == 0 && info.role == KURA_APIKEY_ADMIN && strlen(info.id) == 16);
    CHECK(kura_apikeys_create(ks, "bob", KURA_APIKEY_USER, s2, NULL, &eb) == KURA_OK);
    CHECK(strcmp(s1, s2) != 0);
    char s3[KURA_APIKEY_SECRET_LEN];
    CHECK(kura_apikeys_create(ks, "bob", KURA_APIKEY_USER, s3, NULL, &eb) == KURA_ERR_INVALID);
    CHECK(s3[0] == 0);
    CHECK(kura_apikeys_create(ks, "bad name", KURA_APIKEY_USER, s3, NULL, &eb) == KURA_ERR_INVALID);
    CHECK(kura_apikeys_create(ks, "", KURA_APIKEY_USER, s3, NULL, &eb) == KURA_ERR_INVALID);
    /* the file holds neither secret */
    char path[512], *txt = NULL;
    size_t n;
    snprintf(path, sizeof path, "%s/apikeys.json", dir);
    CHECK(kura_state_read_file(path, 1 << 20, &txt, &n, &eb) == KURA_OK);
    CHECK(txt && !strstr(txt, s1 + 5) && !strstr(txt, s2 + 5) && strstr(txt, "\"alice\""));
    free(txt);
    struct stat st;
    CHECK(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600);
    /* checks: right, wrong, truncated, extended, empty */
    CHECK(kura_apikeys_check(ks, s1, strlen(s1), &info, &eb) == KURA_OK &&
          strcmp(info.name, "alice") == 0);
    CHECK(kura_apikeys_check(ks, s2, strlen(s2), &info, &eb) == KURA_OK &&
          strcmp(info.name, "bob") == 0 && info.role == KURA_APIKEY_USER);
    CHECK(kura_apikeys_check(ks, s1, strlen(s1) - 1, &info, &eb) == KURA_ERR_CRYPTO);
    char longer[KURA_APIKEY_SECRET_LEN + 2];
    snprintf(longer, sizeof longer, "%sx", s1);
    CHECK(kura_apikeys_check(ks, longer, strlen(longer), &info, &eb) == KURA_ERR_CRYPTO);
    CHECK(kura_apikeys_check(ks, "", 0, &info, &eb) == KURA_ERR_CRYPTO);
    /* a second handle (another process) sees changes: revoke there, refused here */
    CHECK(kura_apikeys_open(dir, k, &ks2, &eb) == KURA_OK);
    CHECK(kura_apikeys_revoke(ks2, "bob", &info, &eb) == KURA_OK && strcmp(info.name, "bob") == 0);
    CHECK(kura_apikeys_revoke(ks2, "bob", NULL, &eb) == KURA_ERR_NOTFOUND);
    CHECK(kura_apikeys_check(ks, s2, strlen(s2), &info, &eb) == KURA_ERR_CRYPTO);
    CHECK(kura_apikeys_check(ks, s1, strlen(s1), &info, &eb) == KURA_OK);
    struct kura_apikey_info *all = NULL;
    CHECK(kura_apikeys_list(ks, &all, &n, &eb) == KURA_OK && n == 1 &&
          strcmp(all[0].name, "alice") == 0);
    free(all);
    /* a damaged store is an error, not an empty store (which would lock everyone out silently
     * or, worse, be overwritten) */
    CHECK(kura_state_write_atomic(path, "{\"version\":1,\"keys\":[{\"name\":\"x\"}]}", 36, &eb) ==
          KURA_OK);
    CHECK(kura_apikeys_list(ks2, &all, &n, &eb) == KURA_ERR_FORMAT);
    free(all);
    /* group-readable store refused */
    CHECK(chmod(path, 0644) == 0);
    struct kura_apikeys *ks3 = NULL;
    CHECK(kura_apikeys_open(dir, k, &ks3, &eb) == KURA_ERR_PERM && ks3 == NULL);
    kura_apikeys_destroy(ks);
    kura_apikeys_destroy(ks2);
    kura_apikeys_destroy(NULL);
    kura_keys_destroy(k);
    kura_secret_destroy(pass);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

static void test_config(void)
{
    struct kura_serve_config c;
    struct kura_errbuf eb = {0};
    char path[512];
    snprintf(path, sizeof path, "%s/kura.yaml", dir);
    kura_serve_config_init(&c);
    CHECK(strcmp(c.host, "127.0.0.1") == 0 && c.port == 8080);
    CHECK(kura_serve_config_check(&c, &eb) == KURA_ERR_INVALID); /* no model */
    write_file(path, "# comment\n"
                     "listen: {host: 0.0.0.0, port: 9000}\n"
                     "limits:\n  max_body_bytes: 2048\n  queue: 3\n"
                     "rate_limits:\n  user:\n    requests_per_min: 10\n    tokens_per_min: 500\n"
                     "  keys:\n    batch: {requests_per_min: 600}\n    slow: {tokens_per_min: 5}\n"
                     "audit: {log_prompts: yes}\n"
                     "policy: /etc/kura/policy.yaml\n"
                     "models:\n  - name: a\n    path: /m/a.gguf\n    slots: 2\n"
                     "  - path: /m/b.gguf\n    ctx: 512\n    chat_template: llama3\n");
    CHECKF(kura_serve_config_load(&c, path, &eb) == KURA_OK, "%s", eb.msg);
    CHECK(strcmp(c.host, "0.0.0.0") == 0 && c.port == 9000 && c.max_body_bytes == 2048 &&
          c.queue == 3 && c.rate_user.requests_per_min == 10 && c.rate_user.tokens_per_min == 500 &&
          c.rate_admin.requests_per_min == 0 && c.log_prompts);
    CHECK(c.policy && strcmp(c.policy, "/etc/kura/policy.yaml") == 0);
    CHECK(kura_serve_config_set(&c, "policy", "", "--policy", &eb) == KURA_ERR_INVALID);
    CHECK(kura_serve_config_set(&c, "policy", "p2.yaml", "--policy", &eb) == KURA_OK &&
          strcmp(c.policy, "p2.yaml") == 0);
    CHECK(c.n_models == 2 && strcmp(c.models[0].name, "a") == 0 && c.models[0].slots == 2 &&
          strcmp(c.models[1].name, "b.gguf") == 0 && c.models[1].ctx == 512 &&
          strcmp(c.models[1].chat_template, "llama3") == 0);
    CHECK(kura_serve_config_check(&c, &eb) == KURA_OK);
    CHECK(c.n_key_rates == 2 && strcmp(c.key_rates[0].name, "batch") == 0 &&
          c.key_rates[0].rate.requests_per_min == 600 && c.key_rates[0].rate.tokens_per_min == 0 &&
          c.key_rates[1].rate.tokens_per_min == 5);
    CHECK(kura_serve_config_key_rate_spec(&c, "batch:1:2", &eb) == KURA_OK && c.n_key_rates == 2 &&
          c.key_rates[0].rate.requests_per_min == 1 && c.key_rates[0].rate.tokens_per_min == 2);
    CHECK(kura_serve_config_key_rate_spec(&c, "batch:1", &eb) == KURA_ERR_INVALID);
    CHECK(kura_serve_config_key_rate_spec(&c, "batch:1:2x", &eb) == KURA_ERR_INVALID);
    CHECK(kura_serve_config_key_rate_spec(&c, ":1:2", &eb) == KURA_ERR_INVALID);
    /* flags override */
    CHECK(kura_serve_config_set(&c, "listen.port", "0", "--port", &eb) == KURA_OK && c.port == 0);
    CHECK(kura_serve_config_set(&c, "listen.port", "65536", "--port", &eb) == KURA_ERR_INVALID);
    CHECK(strstr(eb.msg, "--port") != NULL);
    CHECK(kura_serve_config_set(&c, "limits.queue", "1x", "--queue", &eb) == KURA_ERR_INVALID);
    CHECK(kura_serve_config_set(&c, "audit.log_prompts", "maybe", "x", &eb) == KURA_ERR_INVALID);
    CHECK(kura_serve_config_set(&c, "no.such", "1", "x", &eb) == KURA_ERR_NOTFOUND);
    CHECK(kura_serve_config_add_model(&c, "/m/a.gguf", "a", &eb) == KURA_OK);
    CHECK(kura_serve_config_check(&c, &eb) == KURA_ERR_INVALID); /* duplicate name */
    CHECK(kura_serve_config_set(&c, "tls.cert", "/c.pem", "x", &eb) == KURA_OK);
    free(c.models[2].name);
    c.models[2].name = strdup("c");
    CHECK(kura_serve_config_check(&c, &eb) == KURA_ERR_INVALID); /* cert without key */
    CHECK(kura_serve_config_set(&c, "tls.key", "/k.pem", "x", &eb) == KURA_OK);
    CHECK(kura_serve_config_check(&c, &eb) == KURA_OK);
    CHECK(kura_serve_config_set(&c, "embedding_model", "zzz", "x", &eb) == KURA_OK);
    CHECK(kura_serve_config_check(&c, &eb) == KURA_ERR_INVALID);
    CHECK(kura_serve_config_set(&c, "embedding_model", "b.gguf", "x", &eb) == KURA_OK);
    CHECK(kura_serve_config_check(&c, &eb) == KURA_OK);
    kura_serve_config_deinit(&c);
    /* errors name file and line */
    static const struct {
        const char *text, *want;
    } bad[] = {
        {"listen:\n  port: 80\n  bogus: 1\n", "kura.yaml:3: unknown key 'listen.bogus'"},
        {"engine:\n  slots: 0\n", "kura.yaml:2: engine.slots: expected an integer in 1..64"},
        {"models:\n  - name: x\n", "kura.yaml:2: models: an entry has no 'path'"},
        {"models:\n  - path: /a\n    color: red\n", "kura.yaml:3: models: unknown key: color"},
        {"models: {a: 1}\n", "kura.yaml:1: models: expected a list"},
        {"listen: [1, 2]\n", "kura.yaml:1: expected a scalar value for listen"},
        {"limits:\n  queue: [1]\n", "kura.yaml:2: expected a scalar value for limits.queue"},
        {"a: b: c\n", "kura.yaml:1:"},
        {"rate_limits:\n  keys:\n    x: {rpm: 1}\n", "kura.yaml:3: rate_limits.keys: unknown key: rpm"},
        {"rate_limits:\n  keys:\n    x: {tokens_per_min: -1}\n", "kura.yaml:3: rate_limits.keys:"},
        {"listen:\n  port: '80\n", "kura.yaml:"},
        /* a key repeated in one mapping, at every level */
        {"listen:\n  port: 80\n  port: 81\n", "kura.yaml:3: listen: key given twice: port"},
        {"listen: {port: 80}\nlisten: {host: a}\n", "kura.yaml:2: key given twice: listen"},
        {"models:\n  - path: /a\n    path: /b\n", "kura.yaml:3: models: key given twice: path"},
        {"rate_limits:\n  keys:\n    x: {requests_per_min: 1, requests_per_min: 2}\n",
         "kura.yaml:3: rate_limits.keys: key given twice: requests_per_min"},
        {"rate_limits:\n  keys:\n    x: {}\n    x: {}\n",
         "kura.yaml:4: rate_limits.keys: key given twice: x"},
        {"colour: {}\n", "kura.yaml:1: unknown section: colour"},
        {"listen:\n  tls: {}\n", "kura.yaml:2: unknown section: listen.tls"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kura_serve_config_init(&c);
        write_file(path, bad[i].text);
        memset(&eb, 0, sizeof eb);
        enum kura_err e = kura_serve_config_load(&c, path, &eb);
        CHECKF(e != KURA_OK && strstr(eb.msg, bad[i].want), "case %zu: %s", i, eb.msg);
        kura_serve_config_deinit(&c);
    }
    kura_serve_config_init(&c);
    CHECK(kura_serve_config_load(&c, "/nonexistent/kura.yaml", &eb) == KURA_ERR_IO);
    write_file(path, ""); /* an empty file changes nothing */
    CHECK(kura_serve_config_load(&c, path, &eb) == KURA_OK && c.port == 8080);
    static const char mem[] = "listen:\n  port: 81\nengine: {slots: 3}\n";
    CHECKF(kura_serve_config_load_buffer(&c, mem, strlen(mem), "mem.yaml", &eb) == KURA_OK &&
               c.port == 81 && c.slots == 3, "%s", eb.msg);
    CHECK(kura_serve_config_load_buffer(&c, "port: 1\n", 8, "mem.yaml", &eb) == KURA_ERR_INVALID &&
          strstr(eb.msg, "mem.yaml:1: unknown key 'port'"));
    kura_serve_config_deinit(&c);
    size_t nd;
    const struct kura_serve_option_doc *d = kura_serve_option_docs(&nd);
    CHECK(nd > 10 && d[0].flag[0] == '-' && d[nd - 1].help[0]);
}

static bool parse(enum api_kind k, const char *body, struct api_request *r, struct api_error *e)
{
    return api_parse(k, body, strlen(body), r, e);
}

static void test_parser(void)
{
    struct api_request r;
    struct api_error e;
    CHECK(parse(API_CHAT,
                "{\"model\":\"m\",\"messages\":[{\"role\":\"developer\",\"content\":\"s\"},"
                "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"},"
                "{\"type\":\"text\",\"text\":\"b\"}]},{\"role\":\"assistant\",\"content\":null}],"
                "\"max_completion_tokens\":7,\"temperature\":0,\"stop\":[\"x\",\"\"],"
                "\"stream\":true,\"stream_options\":{\"include_usage\":true},\"logprobs\":true,"
                "\"top_logprobs\":4,\"response_format\":{\"type\":\"json_object\"},\"seed\":5,"
                "\"unknown_field\":{\"ignored\":1}}",
                &r, &e));
    CHECK(strcmp(r.model, "m") == 0 && r.n_msgs == 3 && strcmp(r.msgs[0].role, "system") == 0 &&
          strcmp(r.msgs[1].content, "ab") == 0 && strcmp(r.msgs[2].content, "") == 0);
    CHECK(r.max_tokens == 7 && r.sample.temperature == 0 && r.n_stops == 1 &&
          strcmp(r.stops[0], "x") == 0 && r.stream && r.include_usage && r.logprobs &&
          r.top_logprobs == 4 && r.json_mode && r.sample.seed == 5);
    api_request_deinit(&r);
    /* OpenAI defaults */
    CHECK(parse(API_COMPLETION, "{\"prompt\":\"hi\"}", &r, &e));
    CHECK(r.sample.temperature == 1.0f && r.sample.top_p == 1.0f && r.max_tokens == 0 &&
          !r.model && !r.stream && !r.logprobs);
    api_request_deinit(&r);
    CHECK(parse(API_COMPLETION, "{\"prompt\":\"hi\",\"logprobs\":0}", &r, &e) && r.logprobs &&
          r.top_logprobs == 0);
    api_request_deinit(&r);
    CHECK(parse(API_EMBEDDING, "{\"input\":[\"a\",\"b\"],\"encoding_format\":\"base64\"}", &r,
                &e) && r.n_inputs == 2 && r.embed_base64);
    api_request_deinit(&r);
    static const struct {
        enum api_kind k;
        const char *body, *param;
    } bad[] = {
        {API_CHAT, "", ""},
        {API_CHAT, "{", ""},
        {API_CHAT, "null", ""},
        {API_CHAT, "{\"messages\":[]}", "messages"},
        {API_CHAT, "{\"messages\":[1]}", "messages[0]"},
        {API_CHAT, "{\"messages\":[{\"content\":\"x\"}]}", "messages[0].role"},
        {API_CHAT, "{\"messages\":[{\"role\":\"user\"}]}", "messages[0].content"},
        {API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}",
         "messages[0].content"},
        {API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":0}",
         "max_tokens"},
        {API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"max_tokens\":1.5}",
         "max_tokens"},
        {API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"top_p\":\"1\"}",
         "top_p"},
        {API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"stream\":1}", "stream"},
        {API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                   "\"stream_options\":{\"include_usage\":true}}", "stream_options"},
        {API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"logprobs\":true,"
                   "\"top_logprobs\":21}", "top_logprobs"},
        {API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                   "\"frequency_penalty\":3}", "frequency_penalty"},
        {API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"seed\":\"1\"}", "seed"},
        {API_CHAT, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"user\":[]}", "user"},
        {API_COMPLETION, "{\"prompt\":[\"a\",\"b\"]}", "prompt"},
        {API_COMPLETION, "{\"prompt\":\"a\",\"echo\":true}", "echo"},
        {API_COMPLETION, "{\"prompt\":\"a\",\"logprobs\":6}", "logprobs"},
        {API_COMPLETION, "{\"prompt\":\"a\",\"stop\":[1]}", "stop"},
        {API_COMPLETION, "{\"prompt\":\"a\\u0000b\"}", ""},
        {API_EMBEDDING, "{\"input\":[]}", "input"},
        {API_EMBEDDING, "{\"input\":[\"a\",\"\"]}", "input[1]"},
        {API_EMBEDDING, "{\"input\":\"a\",\"encoding_format\":\"hex\"}", "encoding_format"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bool okp = parse(bad[i].k, bad[i].body, &r, &e);
        CHECKF(!okp && e.status == 400 && strcmp(e.param, bad[i].param) == 0 && e.message[0],
               "case %zu (%s): param '%s' msg '%s'", i, bad[i].body, e.param, e.message);
        if (okp)
            api_request_deinit(&r);
        char *js = api_error_json(&e);
        json_t *j = js ? json_loads(js, 0, NULL) : NULL;
        json_t *err = json_object_get(j, "error");
        CHECK(j && json_is_string(json_object_get(err, "message")) &&
              json_is_string(json_object_get(err, "type")) &&
              (bad[i].param[0] ? json_is_string(json_object_get(err, "param"))
                               : json_is_null(json_object_get(err, "param"))));
        json_decref(j);
        free(js);
    }
}

int main(void)
{
    setenv("KURA_ARGON2_OPSLIMIT", "1", 1);
    setenv("KURA_ARGON2_MEMLIMIT", "8192", 1);
    snprintf(dir, sizeof dir, "/tmp/kura-test-serve-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_apikeys();
    test_config();
    test_parser();
    rm_rf(dir);
    return test_finish();
}
