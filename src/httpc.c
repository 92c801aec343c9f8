/* SPDX-License-Identifier: Apache-2.0 */
/* httpc.c - libcurl multi driven by GLib; see httpc.h.
 *
 * Owns the multi handle, one watch per socket libcurl asks about (in the
 * one epoll set of event_core.c) and
 * exactly one timer. The socket callback creates or replaces the watch for
 * a socket (stored with curl_multi_assign()); the timer callback replaces
 * the single timer (curl's CURLMOPT_TIMERFUNCTION contract: each call
 * supersedes the last, -1 removes it). After every curl_multi_socket_action()
 * finished transfers are drained with curl_multi_info_read().
 */
#include "autoconfig.h"

#include <string.h>

#include <curl/curl.h>
#include <glib-unix.h>
#include <glib.h>

#include "event_core.h"
#include "httpc.h"

/* 4 MiB: a Keystone token with a large catalog is ~100 KiB; Nova's answer
 * is a few hundred bytes. More is a broken or hostile peer. */
#define SG_HTTP_MAX_BODY_MIB 4
#define SG_HTTP_MAX_BODY_BYTES (SG_HTTP_MAX_BODY_MIB * 1024 * 1024)
/* Keystone's and Nova's headers are a few hundred bytes. libcurl caps them
 * too (300 KiB in 7.88), but each one we keep is a hash table entry. */
#define SG_HTTP_MAX_HEADER_KIB 64
#define SG_HTTP_MAX_HEADER_BYTES (SG_HTTP_MAX_HEADER_KIB * 1024)

struct SgHttpc {
    CURLM *multi;
    guint timer_id;
    SgHttpcOptions opts;
    char *ca_file;
    GHashTable *requests;         /* SgHttpRequest* set, for free() */
    GHashTable *watches;          /* SocketWatch* set, for free() */
};

struct SgHttpRequest {
    SgHttpc *hc;
    CURL *easy;
    struct curl_slist *headers;
    char *body;
    GString *response;
    GHashTable *response_headers;
    SgHttpCallback callback;
    gpointer user_data;
    char errbuf[CURL_ERROR_SIZE];
    size_t header_bytes;          /* of the current answer's header */
    bool too_big;
    bool headers_too_big;
};

/* Per-socket state libcurl carries for us (curl_multi_assign). */
typedef struct {
    SgWatch *watch;
} SocketWatch;

static void check_finished(SgHttpc *hc);

static void
socket_watch_free(gpointer data)
{
    SocketWatch *sw = data;

    g_clear_pointer(&sw->watch, sg_watch_remove);
    g_free(sw);
}

static void
on_socket_ready(SgWatch *watch, int fd, GIOCondition cond, gpointer data)
{
    SgHttpc *hc = data;
    int action = 0;
    int running = 0;

    if (cond & G_IO_IN)
        action |= CURL_CSELECT_IN;
    if (cond & G_IO_OUT)
        action |= CURL_CSELECT_OUT;
    if (cond & (G_IO_ERR | G_IO_HUP))
        action |= CURL_CSELECT_ERR;
    (void)watch;
    /* The socket callback removes this watch when libcurl is done with the
     * socket (event_core.c allows that from here). */
    curl_multi_socket_action(hc->multi, fd, action, &running);
    check_finished(hc);
}

/* CURLMOPT_SOCKETFUNCTION */
static int
on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    SgHttpc *hc = userp;
    SocketWatch *sw = socketp;
    GIOCondition cond = 0;

    (void)easy;
    if (what == CURL_POLL_REMOVE) {
        if (sw != NULL) {
            g_hash_table_remove(hc->watches, sw);
            curl_multi_assign(hc->multi, fd, NULL);
        }
        return 0;
    }
    if (what & CURL_POLL_IN)
        cond |= G_IO_IN;
    if (what & CURL_POLL_OUT)
        cond |= G_IO_OUT;
    if (sw == NULL) {
        sw = g_new0(SocketWatch, 1);
        g_hash_table_add(hc->watches, sw);
        curl_multi_assign(hc->multi, fd, sw);
    }
    if (sw->watch == NULL)
        sw->watch = sg_watch_fd(fd, cond, on_socket_ready, hc);
    else
        sg_watch_modify(sw->watch, cond);
    return 0;
}

static gboolean
on_timeout(gpointer data)
{
    SgHttpc *hc = data;
    int running = 0;

    hc->timer_id = 0;
    curl_multi_socket_action(hc->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_finished(hc);
    return G_SOURCE_REMOVE;
}

/* CURLMOPT_TIMERFUNCTION. libcurl wants a single timer: each call replaces
 * the previous one, and -1 removes it. Never call libcurl from in here, even
 * for 0 ms (it recurses); a 0 ms timeout fires on the next loop iteration. */
static int
on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    SgHttpc *hc = userp;

    (void)multi;
    g_clear_handle_id(&hc->timer_id, g_source_remove);
    if (timeout_ms >= 0)
        hc->timer_id = g_timeout_add((guint)timeout_ms, on_timeout, hc);
    return 0;
}

static size_t
on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    SgHttpRequest *req = userdata;
    size_t n = size * nmemb;

    if (req->response->len + n > SG_HTTP_MAX_BODY_BYTES) {
        req->too_big = true;
        return 0;                 /* makes libcurl fail the transfer */
    }
    g_string_append_len(req->response, ptr, (gssize)n);
    return n;
}

static size_t
on_header(char *buffer, size_t size, size_t nitems, void *userdata)
{
    SgHttpRequest *req = userdata;
    size_t n = size * nitems;
    const char *colon = memchr(buffer, ':', n);

    /* A new status line (after a redirect or 100-continue) starts afresh. */
    if (n >= 5 && memcmp(buffer, "HTTP/", 5) == 0) {
        g_hash_table_remove_all(req->response_headers);
        req->header_bytes = n;
        return n;
    }
    req->header_bytes += n;
    if (req->header_bytes > SG_HTTP_MAX_HEADER_BYTES) {
        req->headers_too_big = true;
        return 0;                 /* makes libcurl fail the transfer */
    }
    if (colon != NULL && colon > buffer) {
        g_autofree char *name = g_ascii_strdown(buffer, colon - buffer);
        g_autofree char *value = g_strndup(colon + 1, n - (colon + 1 - buffer));

        g_strstrip(name);
        g_strstrip(value);
        g_hash_table_replace(req->response_headers, g_steal_pointer(&name),
                             g_steal_pointer(&value));
    }
    return n;
}

static void
request_free(SgHttpRequest *req)
{
    if (req->easy != NULL) {
        curl_multi_remove_handle(req->hc->multi, req->easy);
        curl_easy_cleanup(req->easy);
    }
    curl_slist_free_all(req->headers);
    if (req->body != NULL) {
        /* Request bodies carry passwords (Keystone auth). */
        explicit_bzero(req->body, strlen(req->body));
        g_free(req->body);
    }
    g_string_free(req->response, TRUE);
    g_hash_table_unref(req->response_headers);
    g_free(req);
}

static void
check_finished(SgHttpc *hc)
{
    CURLMsg *msg;
    int left = 0;

    while ((msg = curl_multi_info_read(hc->multi, &left)) != NULL) {
        SgHttpRequest *req = NULL;
        SgHttpResponse resp = { 0 };

        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&req);
        g_hash_table_remove(hc->requests, req);
        if (msg->data.result == CURLE_OK) {
            curl_easy_getinfo(req->easy, CURLINFO_RESPONSE_CODE, &resp.status);
        } else {
            resp.status = 0;
            resp.error = req->too_big ? "response body too large (over "
                                        G_STRINGIFY(SG_HTTP_MAX_BODY_MIB) " MiB)"
                         : msg->data.result == CURLE_FILESIZE_EXCEEDED
                             ? "response body too large (its Content-Length is over "
                               G_STRINGIFY(SG_HTTP_MAX_BODY_MIB) " MiB)"
                         : req->headers_too_big
                             ? "response headers too large (over " G_STRINGIFY(
                                   SG_HTTP_MAX_HEADER_KIB) " KiB)"
                         : req->errbuf[0] ? req->errbuf
                                          : curl_easy_strerror(msg->data.result);
        }
        resp.headers = req->response_headers;
        resp.body = req->response->str;
        resp.body_len = req->response->len;
        {
            curl_off_t total_us = 0;

            if (curl_easy_getinfo(req->easy, CURLINFO_TOTAL_TIME_T, &total_us) == CURLE_OK)
                resp.elapsed_us = (gint64)total_us;
        }
        req->callback(&resp, req->user_data);
        request_free(req);
    }
}

SgHttpc *
sg_httpc_new(const SgHttpcOptions *opts)
{
    SgHttpc *hc = g_new0(SgHttpc, 1);

    hc->opts = *opts;
    hc->ca_file = g_strdup(opts->ca_file);
    hc->opts.ca_file = hc->ca_file;
    hc->requests = g_hash_table_new(g_direct_hash, g_direct_equal);
    hc->watches = g_hash_table_new_full(g_direct_hash, g_direct_equal, socket_watch_free, NULL);
    hc->multi = curl_multi_init();
    curl_multi_setopt(hc->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(hc->multi, CURLMOPT_SOCKETDATA, hc);
    curl_multi_setopt(hc->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(hc->multi, CURLMOPT_TIMERDATA, hc);
    return hc;
}

SgHttpRequest *
sg_httpc_request(SgHttpc *hc, const char *method, const char *url,
                 const char *const *headers, const char *body, SgHttpCallback callback,
                 gpointer user_data)
{
    SgHttpRequest *req = g_new0(SgHttpRequest, 1);
    CURL *easy = curl_easy_init();

    req->hc = hc;
    req->easy = easy;
    req->callback = callback;
    req->user_data = user_data;
    req->response = g_string_new(NULL);
    req->response_headers = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    for (guint i = 0; headers != NULL && headers[i] != NULL; i++)
        req->headers = curl_slist_append(req->headers, headers[i]);
    /* libcurl adds "Expect: 100-continue" to POSTs; Keystone does not need
     * the extra round trip. */
    req->headers = curl_slist_append(req->headers, "Expect:");

    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, req);
    curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, req->errbuf);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, req->headers);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, req);
    curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(easy, CURLOPT_HEADERDATA, req);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, (long)hc->opts.connect_timeout_ms);
    /* A deadline on the whole request, not on inactivity: a peer sending
     * one byte a second never trips CURLOPT_LOW_SPEED_*. */
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, (long)hc->opts.timeout_ms);
    /* An answer that announces more than the cap (Content-Length) is
     * refused before its body is read; on_body() caps the others, and
     * on_header() the headers. */
    curl_easy_setopt(easy, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)SG_HTTP_MAX_BODY_BYTES);
    curl_easy_setopt(easy, CURLOPT_USERAGENT, "spicegate/" PACKAGE_VERSION);
    curl_easy_setopt(easy, CURLOPT_VERBOSE, 0L);   /* would print X-Auth-Token */
    if (hc->opts.ca_file != NULL)
        curl_easy_setopt(easy, CURLOPT_CAINFO, hc->opts.ca_file);
    if (hc->opts.insecure) {
        curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (body != NULL) {
        req->body = g_strdup(body);
        curl_easy_setopt(easy, CURLOPT_POSTFIELDS, req->body);
        curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, (long)strlen(req->body));
    }
    curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, method);
    g_hash_table_add(hc->requests, req);
    /* Adding only arms the timer (0 ms): the transfer starts from the loop,
     * so the callback can never run inside this call. */
    curl_multi_add_handle(hc->multi, easy);
    return req;
}

void
sg_httpc_cancel(SgHttpRequest *req)
{
    if (req == NULL)
        return;
    g_hash_table_remove(req->hc->requests, req);
    request_free(req);
}

void
sg_httpc_free(SgHttpc *hc)
{
    GHashTableIter iter;
    gpointer req;

    if (hc == NULL)
        return;
    g_hash_table_iter_init(&iter, hc->requests);
    while (g_hash_table_iter_next(&iter, &req, NULL)) {
        g_hash_table_iter_remove(&iter);
        request_free(req);
    }
    /* curl_multi_cleanup() may still call the socket callback, so it runs
     * before anything that callback touches goes away. */
    curl_multi_cleanup(hc->multi);
    g_clear_handle_id(&hc->timer_id, g_source_remove);
    /* Whatever watch libcurl did not release goes now. */
    g_hash_table_unref(hc->watches);
    g_hash_table_unref(hc->requests);
    g_free(hc->ca_file);
    g_free(hc);
}
