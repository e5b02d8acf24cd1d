/* State directory resolution, private files, secrets and passphrases. */
#include "kura/state.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include "core/limits.h"

static int sodium_ready(void)
{
    return sodium_init() >= 0;
}

enum kura_err kura_secret_create(size_t len, struct kura_secret **out)
{
    *out = NULL;
    if (!sodium_ready() || len > (64u << 20))
        return KURA_ERR_NOMEM;
    struct kura_secret *s = calloc(1, sizeof *s);
    if (!s)
        return KURA_ERR_NOMEM;
    /* sodium_malloc: guard pages, canary, mlock; the explicit madvise documents and enforces
     * that secrets stay out of core dumps even where libsodium was built without it. */
    s->data = sodium_malloc(len + 1);
    if (!s->data) {
        free(s);
        return KURA_ERR_NOMEM;
    }
    sodium_memzero(s->data, len + 1);
    sodium_mlock(s->data, len + 1);
#ifdef MADV_DONTDUMP
    {
        long pg = sysconf(_SC_PAGESIZE);
        if (pg > 0) {
            uintptr_t a = (uintptr_t)s->data & ~((uintptr_t)pg - 1);
            uintptr_t e = ((uintptr_t)s->data + len + 1 + (uintptr_t)pg - 1) & ~((uintptr_t)pg - 1);
            madvise((void *)a, e - a, MADV_DONTDUMP);
        }
    }
#endif
    s->len = len;
    s->cap = len;
    *out = s;
    return KURA_OK;
}

enum kura_err kura_secret_from(const void *p, size_t len, struct kura_secret **out)
{
    enum kura_err e = kura_secret_create(len, out);
    if (e)
        return e;
    if (len)
        memcpy((*out)->data, p, len);
    return KURA_OK;
}

void kura_secret_destroy(struct kura_secret *s)
{
    if (!s)
        return;
    if (s->data) {
        sodium_memzero(s->data, s->cap + 1);
        sodium_munlock(s->data, s->cap + 1);
        sodium_free(s->data);
    }
    free(s);
}

enum kura_err kura_state_resolve(const char *cli_dir, char *out, size_t out_len,
                                 struct kura_errbuf *eb)
{
    const char *d = cli_dir;
    const char *suffix = "";
    if (!d || !*d)
        d = getenv("KURA_STATE_DIR");
    if (!d || !*d) {
        d = getenv("XDG_DATA_HOME");
        suffix = "/kura";
        if (!d || !*d) {
            d = getenv("HOME");
            suffix = "/.local/share/kura";
        }
    }
    if (!d || !*d)
        return kura_err_set(eb, KURA_ERR_NOTFOUND,
                            "no state directory: use --state-dir or set KURA_STATE_DIR");
    int n = snprintf(out, out_len, "%s%s", d, suffix);
    if (n < 0 || (size_t)n >= out_len)
        return kura_err_set(eb, KURA_ERR_RANGE, "state directory path too long");
    return KURA_OK;
}

enum kura_err kura_state_path(const char *dir, const char *rel, char *out, size_t out_len,
                              struct kura_errbuf *eb)
{
    int n = snprintf(out, out_len, "%s/%s", dir, rel);
    if (n < 0 || (size_t)n >= out_len)
        return kura_err_set(eb, KURA_ERR_RANGE, "path '%s/%s' too long", dir, rel);
    return KURA_OK;
}

static enum kura_err check_dir(const char *dir, bool private_, struct kura_errbuf *eb)
{
    struct stat st;
    if (stat(dir, &st) != 0)
        return kura_err_set(eb, KURA_ERR_IO, "%s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return kura_err_set(eb, KURA_ERR_INVALID, "%s: not a directory", dir);
    if (private_ && st.st_uid != geteuid())
        return kura_err_set(eb, KURA_ERR_PERM, "%s: owned by uid %u, not by the current user",
                            dir, (unsigned)st.st_uid);
    if (private_ && (st.st_mode & 077))
        return kura_err_set(eb, KURA_ERR_PERM,
                            "%s: mode %04o lets group/others in; it must be private "
                            "(chmod 700 '%s')", dir, (unsigned)(st.st_mode & 07777), dir);
    return KURA_OK;
}

enum kura_err kura_state_mkdir(const char *dir, bool private_, struct kura_errbuf *eb)
{
    char p[KURA_MAX_PATH];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof p)
        return kura_err_set(eb, KURA_ERR_RANGE, "bad directory path");
    memcpy(p, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (p[i] != '/' && p[i] != 0)
            continue;
        char c = p[i];
        p[i] = 0;
        if (mkdir(p, 0700) != 0 && errno != EEXIST)
            return kura_err_set(eb, KURA_ERR_IO, "cannot create directory %s: %s", p,
                                strerror(errno));
        p[i] = c;
    }
    return check_dir(dir, private_, eb);
}

enum kura_err kura_state_check_private_fd(int fd, const char *path, struct kura_errbuf *eb)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return kura_err_set(eb, KURA_ERR_IO, "%s: %s", path, strerror(errno));
    if (!S_ISREG(st.st_mode))
        return kura_err_set(eb, KURA_ERR_INVALID, "%s: not a regular file", path);
    if (st.st_uid != geteuid())
        return kura_err_set(eb, KURA_ERR_PERM, "%s: owned by uid %u, not by the current user",
                            path, (unsigned)st.st_uid);
    if (st.st_mode & 077)
        return kura_err_set(eb, KURA_ERR_PERM,
                            "%s: mode %04o makes it readable or writable by group/others; "
                            "refusing to use it (fix with: chmod 600 '%s')",
                            path, (unsigned)(st.st_mode & 07777), path);
    return KURA_OK;
}

static enum kura_err read_fd_all(int fd, const char *path, size_t max_len, unsigned char *buf,
                                 size_t *len, struct kura_errbuf *eb)
{
    size_t n = 0;
    for (;;) {
        if (n == max_len) {
            char c;
            ssize_t r = read(fd, &c, 1);
            if (r == 0)
                break;
            return kura_err_set(eb, KURA_ERR_RANGE, "%s: larger than %zu bytes", path, max_len);
        }
        ssize_t r = read(fd, buf + n, max_len - n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return kura_err_set(eb, KURA_ERR_IO, "%s: read: %s", path, strerror(errno));
        if (r == 0)
            break;
        n += (size_t)r;
    }
    *len = n;
    return KURA_OK;
}

enum kura_err kura_state_read_private(const char *path, size_t max_len, struct kura_secret **out,
                                      struct kura_errbuf *eb)
{
    *out = NULL;
    struct kura_secret *s = NULL;
    enum kura_err e;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return kura_err_set(eb, errno == ENOENT ? KURA_ERR_NOTFOUND : KURA_ERR_IO, "%s: %s",
                            path, strerror(errno));
    if ((e = kura_state_check_private_fd(fd, path, eb)))
        goto fail;
    if ((e = kura_secret_create(max_len, &s)))
        goto fail;
    size_t n;
    if ((e = read_fd_all(fd, path, max_len, s->data, &n, eb)))
        goto fail;
    s->data[n] = 0;
    s->len = n;
    close(fd);
    *out = s;
    return KURA_OK;
fail:
    kura_secret_destroy(s);
    close(fd);
    return e;
}

enum kura_err kura_state_read_file(const char *path, size_t max_len, char **out, size_t *out_len,
                                   struct kura_errbuf *eb)
{
    *out = NULL;
    *out_len = 0;
    enum kura_err e;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return kura_err_set(eb, errno == ENOENT ? KURA_ERR_NOTFOUND : KURA_ERR_IO, "%s: %s",
                            path, strerror(errno));
    char *buf = malloc(max_len + 1);
    if (!buf) {
        close(fd);
        return kura_err_set(eb, KURA_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t n;
    if ((e = read_fd_all(fd, path, max_len, (unsigned char *)buf, &n, eb))) {
        free(buf);
        close(fd);
        return e;
    }
    close(fd);
    buf[n] = 0;
    *out = buf;
    *out_len = n;
    return KURA_OK;
}

enum kura_err kura_state_sync_parent(const char *path, struct kura_errbuf *eb)
{
    char d[KURA_MAX_PATH];
    size_t n = strlen(path);
    if (n >= sizeof d)
        return kura_err_set(eb, KURA_ERR_RANGE, "path too long");
    memcpy(d, path, n + 1);
    char *slash = strrchr(d, '/');
    if (slash == d)
        d[1] = 0;
    else if (slash)
        *slash = 0;
    else
        strcpy(d, ".");
    int fd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return kura_err_set(eb, KURA_ERR_IO, "%s: %s", d, strerror(errno));
    int r = fsync(fd);
    close(fd);
    if (r != 0)
        return kura_err_set(eb, KURA_ERR_IO, "fsync %s: %s", d, strerror(errno));
    return KURA_OK;
}

enum kura_err kura_state_write_atomic(const char *path, const void *data, size_t len,
                                      struct kura_errbuf *eb)
{
    char tmp[KURA_MAX_PATH];
    int n = snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (n < 0 || (size_t)n >= sizeof tmp)
        return kura_err_set(eb, KURA_ERR_RANGE, "path too long");
    unlink(tmp); /* a leftover from a crash; we own the directory */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return kura_err_set(eb, KURA_ERR_IO, "cannot create %s: %s", tmp, strerror(errno));
    const unsigned char *p = data;
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, p + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int err = errno;
            close(fd);
            unlink(tmp);
            return kura_err_set(eb, KURA_ERR_IO, "write %s: %s", tmp, strerror(err));
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0) {
        int err = errno;
        close(fd);
        unlink(tmp);
        return kura_err_set(eb, KURA_ERR_IO, "fsync %s: %s", tmp, strerror(err));
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        int err = errno;
        unlink(tmp);
        return kura_err_set(eb, KURA_ERR_IO, "rename %s: %s", tmp, strerror(err));
    }
    return kura_state_sync_parent(path, eb);
}

/* Reads one line (without newline) from fd into s; at most KURA_MAX_PASSPHRASE bytes. */
static enum kura_err read_line_fd(int fd, const char *what, struct kura_secret *s,
                                  struct kura_errbuf *eb)
{
    size_t n = 0;
    for (;;) {
        unsigned char c;
        ssize_t r = read(fd, &c, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return kura_err_set(eb, KURA_ERR_IO, "%s: read: %s", what, strerror(errno));
        if (r == 0 || c == '\n')
            break;
        if (n == KURA_MAX_PASSPHRASE)
            return kura_err_set(eb, KURA_ERR_INVALID, "%s: passphrase longer than %d bytes",
                                what, KURA_MAX_PASSPHRASE);
        s->data[n++] = c;
    }
    if (n && s->data[n - 1] == '\r')
        n--;
    s->data[n] = 0;
    s->len = n;
    return KURA_OK;
}

static enum kura_err prompt_tty(const char *prompt, struct kura_secret *s, struct kura_errbuf *eb)
{
    int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return kura_err_set(eb, KURA_ERR_NOTFOUND,
                            "no passphrase: set KURA_PASSPHRASE, use --passphrase-file or run "
                            "on a terminal");
    struct termios old, raw;
    bool restore = false;
    if (tcgetattr(fd, &old) == 0) {
        raw = old;
        raw.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
        raw.c_lflag |= ICANON;
        restore = tcsetattr(fd, TCSAFLUSH, &raw) == 0;
    }
    if (write(fd, prompt, strlen(prompt)) < 0) {
        /* the prompt is cosmetic */
    }
    enum kura_err e = read_line_fd(fd, "terminal", s, eb);
    if (restore)
        tcsetattr(fd, TCSAFLUSH, &old);
    if (write(fd, "\n", 1) < 0) {
    }
    close(fd);
    return e;
}

enum kura_err kura_state_passphrase(const struct kura_passphrase_source *src,
                                    struct kura_secret **out, struct kura_errbuf *eb)
{
    *out = NULL;
    struct kura_secret *s = NULL, *s2 = NULL;
    enum kura_err e;
    const size_t cap = KURA_MAX_PASSPHRASE;
    if ((e = kura_secret_create(cap, &s)))
        return kura_err_set(eb, e, "out of secure memory");
    const char *envname = src->env ? src->env : "KURA_PASSPHRASE";
    const char *env = getenv(envname);
    if (src->file) {
        int fd = open(src->file, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            e = kura_err_set(eb, KURA_ERR_IO, "passphrase file %s: %s", src->file,
                             strerror(errno));
            goto fail;
        }
        e = kura_state_check_private_fd(fd, src->file, eb);
        if (!e)
            e = read_line_fd(fd, src->file, s, eb);
        close(fd);
        if (e)
            goto fail;
    } else if (src->fd >= 0) {
        if ((e = read_line_fd(src->fd, "passphrase fd", s, eb)))
            goto fail;
    } else if (env) {
        size_t n = strlen(env);
        if (n > cap) {
            e = kura_err_set(eb, KURA_ERR_INVALID, "%s: passphrase longer than %zu bytes",
                             envname, cap);
            goto fail;
        }
        memcpy(s->data, env, n);
        s->data[n] = 0;
        s->len = n;
    } else if (src->allow_prompt) {
        const char *prompt = src->prompt ? src->prompt : "passphrase: ";
        if ((e = prompt_tty(prompt, s, eb)))
            goto fail;
        if (src->confirm) {
            if ((e = kura_secret_create(cap, &s2)))
                goto fail;
            if ((e = prompt_tty("repeat passphrase: ", s2, eb)))
                goto fail;
            if (s2->len != s->len || sodium_memcmp(s->data, s2->data, s->len) != 0) {
                e = kura_err_set(eb, KURA_ERR_INVALID, "passphrases do not match");
                goto fail;
            }
        }
    } else {
        e = kura_err_set(eb, KURA_ERR_NOTFOUND,
                         "no passphrase: set %s or use --passphrase-file / --passphrase-fd",
                         envname);
        goto fail;
    }
    if (s->len == 0) {
        e = kura_err_set(eb, KURA_ERR_INVALID, "empty passphrase");
        goto fail;
    }
    kura_secret_destroy(s2);
    *out = s;
    return KURA_OK;
fail:
    kura_secret_destroy(s);
    kura_secret_destroy(s2);
    return e;
}

void kura_state_no_core_dumps(void)
{
    struct rlimit rl = {0, 0};
    setrlimit(RLIMIT_CORE, &rl);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

void kura_state_local_actor(char *out, size_t out_len)
{
    uid_t uid = geteuid();
    struct passwd pw, *res = NULL;
    char buf[4096];
    if (getpwuid_r(uid, &pw, buf, sizeof buf, &res) == 0 && res && res->pw_name)
        snprintf(out, out_len, "local:%s", res->pw_name);
    else
        snprintf(out, out_len, "local:uid:%u", (unsigned)uid);
}
