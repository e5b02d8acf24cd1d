/* Keys: init/open, wrong passphrase, rotation keeps data readable, unsafe permissions refused,
 * tampered key files, passphrase sources, state directory resolution. */
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kura/keys.h"
#include "kura/state.h"
#include "test.h"

static char g_dir[256];

static struct kura_secret *pass(const char *s)
{
    struct kura_secret *p;
    kura_secret_from(s, strlen(s), &p);
    return p;
}

static void test_init_open(void)
{
    char dir[300];
    struct kura_errbuf eb = {0};
    snprintf(dir, sizeof dir, "%s/a", g_dir);
    struct kura_secret *p = pass("s3cret-passphrase"), *bad = pass("wrong-passphrase");
    CHECKF(kura_keys_init(dir, p, NULL, &eb) == KURA_OK, "%s", eb.msg);
    CHECK(kura_keys_init(dir, p, NULL, &eb) == KURA_ERR_INVALID); /* no overwrite */
    struct kura_keys *k = NULL;
    CHECKF(kura_keys_open(dir, p, &k, &eb) == KURA_OK, "%s", eb.msg);
    /* wrong passphrase: clean failure, no key, and the message holds no secret */
    struct kura_keys *k2 = (struct kura_keys *)1;
    memset(&eb, 0, sizeof eb);
    CHECK(kura_keys_open(dir, bad, &k2, &eb) == KURA_ERR_CRYPTO);
    CHECK(k2 == NULL);
    CHECK(strstr(eb.msg, "wrong passphrase") != NULL);
    CHECK(strstr(eb.msg, "s3cret") == NULL && strstr(eb.msg, "wrong-passphrase") == NULL);
    /* the key file is 0600 and the directory 0700 */
    char kp[512], kd[512];
    snprintf(kp, sizeof kp, "%s/keys/keys.json", dir);
    snprintf(kd, sizeof kd, "%s/keys", dir);
    struct stat st;
    CHECK(stat(kp, &st) == 0 && (st.st_mode & 0777) == 0600);
    CHECK(stat(kd, &st) == 0 && (st.st_mode & 0777) == 0700);
    /* nothing secret in the file: the passphrase does not appear */
    char *txt;
    size_t n;
    CHECK(kura_state_read_file(kp, 1 << 20, &txt, &n, NULL) == KURA_OK);
    CHECK(strstr(txt, "s3cret") == NULL && strstr(txt, "argon2id13") != NULL);
    free(txt);
    /* signatures */
    uint8_t pk[32], pk2[32], sig[64];
    kura_keys_public(k, pk);
    CHECK(kura_keys_read_public(dir, pk2, &eb) == KURA_OK && memcmp(pk, pk2, 32) == 0);
    kura_keys_sign(k, "hello", 5, sig);
    CHECK(kura_keys_verify(pk, "hello", 5, sig));
    CHECK(!kura_keys_verify(pk, "hellO", 5, sig));
    char text[KURA_KEYS_PUBLIC_TEXT_LEN];
    kura_keys_format_public(pk, text);
    CHECK(strncmp(text, "ed25519:", 8) == 0 && strlen(text) == 72);
    CHECK(kura_keys_parse_public(text, pk2, &eb) == KURA_OK && memcmp(pk, pk2, 32) == 0);
    CHECK(kura_keys_parse_public(text + 8, pk2, &eb) == KURA_OK && memcmp(pk, pk2, 32) == 0);
    CHECK(kura_keys_parse_public("ed25519:abcd", pk2, &eb) == KURA_ERR_INVALID);
    /* data keys */
    struct kura_secret *a = NULL, *b = NULL;
    CHECK(kura_keys_data_key(k, "audit", false, &a, &eb) == KURA_OK && a->len == 32);
    CHECK(kura_keys_data_key(k, "apikey", false, &b, &eb) == KURA_OK);
    CHECK(memcmp(a->data, b->data, 32) != 0);
    kura_secret_destroy(b);
    b = NULL;
    CHECK(kura_keys_data_key(k, "vault:none", false, &b, &eb) == KURA_ERR_NOTFOUND);
    CHECK(kura_keys_data_key(k, "Bad Purpose", true, &b, &eb) == KURA_ERR_INVALID);
    char *status = NULL;
    CHECK(kura_keys_status(dir, &status, &eb) == KURA_OK);
    CHECK(status && strstr(status, "\"audit\"") && strstr(status, text) &&
          !strstr(status, "wrapped") && !strstr(status, "salt"));
    free(status);
    kura_secret_destroy(a);
    kura_keys_destroy(k);
    kura_keys_destroy(NULL);
    kura_secret_destroy(p);
    kura_secret_destroy(bad);
}

static void test_rotation(void)
{
    char dir[300];
    struct kura_errbuf eb = {0};
    snprintf(dir, sizeof dir, "%s/rot", g_dir);
    struct kura_secret *p1 = pass("first passphrase"), *p2 = pass("second passphrase");
    CHECK(kura_keys_init(dir, p1, NULL, &eb) == KURA_OK);
    struct kura_keys *k = NULL;
    CHECK(kura_keys_open(dir, p1, &k, &eb) == KURA_OK);
    /* Encrypt data under a vault data key created on demand. */
    struct kura_secret *dk = NULL;
    CHECKF(kura_keys_data_key(k, "vault:records", true, &dk, &eb) == KURA_OK, "%s", eb.msg);
    static const char msg[] = "patient 4711: allergy to penicillin";
    uint8_t nonce[crypto_secretbox_NONCEBYTES], ct[sizeof msg + crypto_secretbox_MACBYTES];
    randombytes_buf(nonce, sizeof nonce);
    crypto_secretbox_easy(ct, (const uint8_t *)msg, sizeof msg, nonce, dk->data);
    kura_secret_destroy(dk);
    uint8_t pk_before[32], pk_after[32];
    kura_keys_public(k, pk_before);
    char master_before[KURA_KEYS_ID_LEN];
    memcpy(master_before, kura_keys_master_id(k), KURA_KEYS_ID_LEN);
    kura_keys_destroy(k);

    char old_id[KURA_KEYS_ID_LEN], new_id[KURA_KEYS_ID_LEN];
    struct kura_secret *bad = pass("not it");
    CHECK(kura_keys_rotate(dir, bad, p2, NULL, old_id, new_id, &eb) == KURA_ERR_CRYPTO);
    CHECKF(kura_keys_rotate(dir, p1, p2, NULL, old_id, new_id, &eb) == KURA_OK, "%s", eb.msg);
    CHECK(strcmp(old_id, master_before) == 0 && strcmp(new_id, old_id) != 0);
    /* The old passphrase no longer unlocks; the new one does, and the data is readable. */
    k = NULL;
    CHECK(kura_keys_open(dir, p1, &k, &eb) == KURA_ERR_CRYPTO && k == NULL);
    CHECK(kura_keys_open(dir, p2, &k, &eb) == KURA_OK);
    CHECK(strcmp(kura_keys_master_id(k), new_id) == 0);
    kura_keys_public(k, pk_after);
    CHECK(memcmp(pk_before, pk_after, 32) == 0); /* same signing key: old logs still verify */
    CHECK(kura_keys_data_key(k, "vault:records", false, &dk, &eb) == KURA_OK);
    uint8_t pt[sizeof msg];
    CHECK(dk && crypto_secretbox_open_easy(pt, ct, sizeof ct, nonce, dk->data) == 0 &&
          memcmp(pt, msg, sizeof msg) == 0);
    kura_secret_destroy(dk);
    kura_keys_destroy(k);
    /* Rotation keeping the passphrase (new salt, new master). */
    CHECK(kura_keys_rotate(dir, p2, NULL, NULL, old_id, new_id, &eb) == KURA_OK);
    CHECK(kura_keys_open(dir, p2, &k, &eb) == KURA_OK);
    /* A key handle from before a rotation refuses to create keys it could not save safely. */
    CHECK(kura_keys_rotate(dir, p2, NULL, NULL, NULL, NULL, &eb) == KURA_OK);
    CHECK(kura_keys_data_key(k, "vault:new", true, &dk, &eb) == KURA_ERR_BUSY);
    kura_keys_destroy(k);
    kura_secret_destroy(p1);
    kura_secret_destroy(p2);
    kura_secret_destroy(bad);
}

static void test_permissions_and_tamper(void)
{
    char dir[300], kp[512], kd[512];
    struct kura_errbuf eb = {0};
    snprintf(dir, sizeof dir, "%s/perm", g_dir);
    snprintf(kp, sizeof kp, "%s/keys/keys.json", dir);
    snprintf(kd, sizeof kd, "%s/keys", dir);
    struct kura_secret *p = pass("perm test");
    CHECK(kura_keys_init(dir, p, NULL, &eb) == KURA_OK);
    struct kura_keys *k = NULL;
    CHECK(chmod(kp, 0644) == 0);
    memset(&eb, 0, sizeof eb);
    CHECK(kura_keys_open(dir, p, &k, &eb) == KURA_ERR_PERM);
    CHECKF(strstr(eb.msg, "chmod 600") != NULL && strstr(eb.msg, "keys.json") != NULL, "%s",
           eb.msg);
    CHECK(chmod(kp, 0640) == 0);
    CHECK(kura_keys_open(dir, p, &k, &eb) == KURA_ERR_PERM);
    CHECK(chmod(kp, 0600) == 0);
    CHECK(chmod(kd, 0755) == 0);
    memset(&eb, 0, sizeof eb);
    CHECK(kura_keys_open(dir, p, &k, &eb) == KURA_ERR_PERM);
    CHECKF(strstr(eb.msg, "chmod 700") != NULL, "%s", eb.msg);
    CHECK(chmod(kd, 0700) == 0);
    CHECK(kura_keys_open(dir, p, &k, &eb) == KURA_OK);
    kura_keys_destroy(k);

    /* Tampering: alter the wrapped "apikey" key and the public key. */
    char *txt;
    size_t n;
    CHECK(kura_state_read_file(kp, 1 << 20, &txt, &n, NULL) == KURA_OK);
    char *ak = strstr(txt, "\"apikey\"");
    char *w = ak ? strstr(ak, "\"wrapped\": \"") : NULL;
    CHECK(w != NULL);
    if (w) {
        w[12] = w[12] == '0' ? '1' : '0';
        CHECK(kura_state_write_atomic(kp, txt, n, &eb) == KURA_OK);
        CHECK(kura_keys_open(dir, p, &k, &eb) == KURA_OK);
        struct kura_secret *dk = NULL;
        CHECK(kura_keys_data_key(k, "apikey", false, &dk, &eb) == KURA_ERR_TAMPER);
        CHECK(dk == NULL);
        kura_keys_destroy(k);
        w[12] = w[12] == '0' ? '1' : '0';
    }
    char *pub = strstr(txt, "\"public\": \"");
    CHECK(pub != NULL);
    if (pub) {
        pub[11] = pub[11] == 'a' ? 'b' : 'a';
        CHECK(kura_state_write_atomic(kp, txt, n, &eb) == KURA_OK);
        CHECK(kura_keys_open(dir, p, &k, &eb) == KURA_ERR_TAMPER);
    }
    /* garbage key file */
    CHECK(kura_state_write_atomic(kp, "{\"format\":", 10, &eb) == KURA_OK);
    CHECK(kura_keys_open(dir, p, &k, &eb) == KURA_ERR_FORMAT);
    /* a hostile key file asking for an absurd Argon2 memory cost is refused before hashing */
    static const char huge[] =
        "{\"format\":\"kura-keys-1\",\"kdf\":{\"alg\":\"argon2id13\",\"opslimit\":3,"
        "\"memlimit\":999999999999999,\"salt\":\"00112233445566778899aabbccddeeff\"},"
        "\"master\":{\"id\":\"0011223344556677\"},\"signing\":{\"public\":"
        "\"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\"}}";
    CHECK(kura_state_write_atomic(kp, huge, strlen(huge), &eb) == KURA_OK);
    CHECK(kura_keys_open(dir, p, &k, &eb) == KURA_ERR_RANGE);
    free(txt);
    kura_secret_destroy(p);
    /* not initialised */
    char none[300];
    snprintf(none, sizeof none, "%s/none", g_dir);
    CHECK(kura_keys_open(none, p = pass("x"), &k, &eb) == KURA_ERR_NOTFOUND);
    kura_secret_destroy(p);
}

static void test_passphrase_sources(void)
{
    struct kura_errbuf eb = {0};
    struct kura_secret *s = NULL;
    char f[300];
    snprintf(f, sizeof f, "%s/pass.txt", g_dir);
    int fd = open(f, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CHECK(fd >= 0 && write(fd, "from file\r\nsecond line\n", 23) == 23);
    close(fd);
    unsetenv("KURA_PASSPHRASE");
    struct kura_passphrase_source src = {.file = f, .fd = -1};
    CHECK(kura_state_passphrase(&src, &s, &eb) == KURA_OK);
    CHECK(s && s->len == 9 && memcmp(s->data, "from file", 9) == 0);
    kura_secret_destroy(s);
    CHECK(chmod(f, 0644) == 0);
    CHECK(kura_state_passphrase(&src, &s, &eb) == KURA_ERR_PERM && s == NULL);
    /* fd */
    int pfd[2];
    CHECK(pipe(pfd) == 0);
    CHECK(write(pfd[1], "piped\n", 6) == 6);
    close(pfd[1]);
    src = (struct kura_passphrase_source){.fd = pfd[0]};
    CHECK(kura_state_passphrase(&src, &s, &eb) == KURA_OK && s->len == 5);
    kura_secret_destroy(s);
    close(pfd[0]);
    /* env */
    setenv("KURA_PASSPHRASE", "from env", 1);
    src = (struct kura_passphrase_source){.fd = -1};
    CHECK(kura_state_passphrase(&src, &s, &eb) == KURA_OK && s->len == 8);
    kura_secret_destroy(s);
    setenv("KURA_PASSPHRASE", "", 1);
    CHECK(kura_state_passphrase(&src, &s, &eb) == KURA_ERR_INVALID);
    unsetenv("KURA_PASSPHRASE");
    CHECK(kura_state_passphrase(&src, &s, &eb) == KURA_ERR_NOTFOUND);
    /* state dir resolution */
    char out[512];
    setenv("KURA_STATE_DIR", "/srv/kura", 1);
    CHECK(kura_state_resolve("/cli", out, sizeof out, &eb) == KURA_OK && !strcmp(out, "/cli"));
    CHECK(kura_state_resolve(NULL, out, sizeof out, &eb) == KURA_OK && !strcmp(out, "/srv/kura"));
    unsetenv("KURA_STATE_DIR");
    setenv("XDG_DATA_HOME", "/home/x/.data", 1);
    CHECK(kura_state_resolve(NULL, out, sizeof out, &eb) == KURA_OK &&
          !strcmp(out, "/home/x/.data/kura"));
    unsetenv("XDG_DATA_HOME");
    setenv("HOME", "/home/y", 1);
    CHECK(kura_state_resolve(NULL, out, sizeof out, &eb) == KURA_OK &&
          !strcmp(out, "/home/y/.local/share/kura"));
    char actor[128];
    kura_state_local_actor(actor, sizeof actor);
    CHECK(strncmp(actor, "local:", 6) == 0 && strlen(actor) > 6);
}

int main(void)
{
    setenv("KURA_ARGON2_OPSLIMIT", "1", 1);
    setenv("KURA_ARGON2_MEMLIMIT", "8192", 1);
    snprintf(g_dir, sizeof g_dir, "/tmp/kura-test-keys-XXXXXX");
    if (!mkdtemp(g_dir))
        return 1;
    test_init_open();
    test_rotation();
    test_permissions_and_tamper();
    test_passphrase_sources();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0)
        fprintf(stderr, "cleanup failed\n");
    return test_finish();
}
