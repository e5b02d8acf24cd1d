/* One HTTP POST to an OpenAI-compatible upstream with libcurl: TLS verification always on,
 * connect and total timeouts, retries with exponential back-off on connection failures, 429 and
 * 5xx (only while nothing was handed to the caller), a hard response size limit. */
#include "kura/egress.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/limits.h"

enum kura_err kura_egress_global_init(void)
{
    return curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? KURA_OK : KURA_ERR_INTERNAL;
}

struct xfer {
    CURL *c;
    kura_egress_text_fn fn;
    void *ud;
    size_t max, got, delivered;
    bool too_big;
    enum kura_err cb_err;
    char errbody[512];
    size_t n_errbody;
};

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct xfer *x = ud;
    size_t n = size * nmemb;
    if (x->got + n > x->max) {
        x->too_big = true;
        return 0;
    }
    x->got += n;
    long status = 0;
    curl_easy_getinfo(x->c, CURLINFO_RESPONSE_CODE, &status);
    if (status < 200 || status >= 300) { /* keep a little of an error body for the message */
        size_t k = sizeof x->errbody - 1 - x->n_errbody;
        if (k > n)
            k = n;
        memcpy(x->errbody + x->n_errbody, ptr, k);
        x->n_errbody += k;
        x->errbody[x->n_errbody] = 0;
        return n;
    }
    if (x->fn) {
        enum kura_err e = x->fn(x->ud, ptr, n);
        if (e) {
            x->cb_err = e;
            return 0;
        }
    }
    x->delivered += n;
    return n;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

enum kura_err kura_upstream_post(const char *url, const char *api_key, const char *body,
                                 size_t body_len, const struct kura_upstream_opts *opt,
                                 kura_egress_text_fn on_body, void *ud, long *http_status,
                                 int *attempts, struct kura_errbuf *eb)
{
    struct kura_upstream_opts o = {0};
    if (opt)
        o = *opt;
    long connect_ms = o.connect_timeout_ms > 0 ? o.connect_timeout_ms : 10000;
    long total_ms = o.timeout_ms > 0 ? o.timeout_ms : 120000;
    int retries = o.max_retries < 0 ? 0 : o.max_retries == 0 ? 2 : o.max_retries;
    long backoff = o.backoff_ms > 0 ? o.backoff_ms : 250;
    size_t max = o.max_response ? o.max_response : KURA_EGRESS_MAX_RESPONSE;
    *http_status = 0;
    if (attempts)
        *attempts = 0;
    if (!url || (strncmp(url, "https://", 8) != 0 && strncmp(url, "http://", 7) != 0))
        return kura_err_set(eb, KURA_ERR_INVALID, "upstream URL must be http(s)");
    CURL *c = curl_easy_init();
    struct curl_slist *hdr = NULL;
    char *auth = NULL;
    enum kura_err e = KURA_OK;
    if (!c)
        return kura_err_set(eb, KURA_ERR_NOMEM, "curl_easy_init failed");
    hdr = curl_slist_append(hdr, "Content-Type: application/json");
    hdr = curl_slist_append(hdr, "Accept: application/json, text/event-stream");
    if (api_key && *api_key) {
        size_t al = strlen(api_key) + 32;
        auth = malloc(al);
        if (!auth) {
            e = kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
            goto done;
        }
        snprintf(auth, al, "Authorization: Bearer %s", api_key);
        hdr = curl_slist_append(hdr, auth);
    }
    if (!hdr) {
        e = kura_err_set(eb, KURA_ERR_NOMEM, "out of memory");
        goto done;
    }
    struct xfer x = {c, on_body, ud, max, 0, 0, false, KURA_OK, {0}, 0};
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    if (o.ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, o.ca_file);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, total_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)max);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "kura-egress/1");
    for (int attempt = 0;; attempt++) {
        x.got = 0;
        x.n_errbody = 0;
        x.too_big = false;
        if (attempts)
            *attempts = attempt + 1;
        CURLcode rc = curl_easy_perform(c);
        long status = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        *http_status = status;
        if (x.cb_err) {
            e = kura_err_set(eb, x.cb_err, "upstream answer handler failed");
            break;
        }
        if (x.too_big || rc == CURLE_FILESIZE_EXCEEDED) {
            e = kura_err_set(eb, KURA_ERR_RANGE, "upstream answer exceeds %zu bytes", max);
            break;
        }
        bool retryable = x.delivered == 0 && attempt < retries &&
                         (rc == CURLE_COULDNT_CONNECT || rc == CURLE_OPERATION_TIMEDOUT ||
                          rc == CURLE_COULDNT_RESOLVE_HOST || rc == CURLE_GOT_NOTHING ||
                          rc == CURLE_SEND_ERROR || rc == CURLE_RECV_ERROR ||
                          (rc == CURLE_OK && (status == 429 || status >= 500)));
        if (retryable) {
            sleep_ms(backoff);
            backoff *= 2;
            continue;
        }
        if (rc != CURLE_OK) {
            e = kura_err_set(eb, KURA_ERR_IO, "upstream request failed: %s", curl_easy_strerror(rc));
            break;
        }
        if (status < 200 || status >= 300) {
            /* the body may echo the request; keep only printable ASCII of it */
            for (size_t k = 0; k < x.n_errbody; k++)
                if ((unsigned char)x.errbody[k] < 0x20 || (unsigned char)x.errbody[k] > 0x7e)
                    x.errbody[k] = ' ';
            e = kura_err_set(eb, KURA_ERR_IO, "upstream returned HTTP %ld: %.200s", status, x.errbody);
        }
        break;
    }
done:
    curl_slist_free_all(hdr);
    if (auth) {
        memset(auth, 0, strlen(auth));
        free(auth);
    }
    curl_easy_cleanup(c);
    return e;
}
