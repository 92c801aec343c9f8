/* SPDX-License-Identifier: Apache-2.0 */
/* http_response.c - plain HTTP answers (text and files) for HTTP/1.1 and
 * HTTP/2 alike; see http_response.h for why everything goes through lws'
 * header API.
 *
 * Owns the file descriptor of a file being sent, from
 * sg_http_respond_file() until its last byte is handed to lws or the
 * connection closes. Files are read on the loop, one piece per writeable
 * callback: they are local, small (spice-html5 is about 500 KB in all),
 * and the kernel's page cache answers.
 */
#include "autoconfig.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>
#include <libwebsockets.h>

#include "compat.h"
#include "http_response.h"

/* One body piece per writeable callback: big enough that a page is a few
 * round trips of the loop, small enough for a stack buffer. */
#define SG_HTTP_FILE_CHUNK_BYTES (32 * 1024)
/* Room for the status and every header we add, HPACK-coded or not: the
 * Content-Security-Policy of a stock spice-html5 page, with the hashes of
 * its inline scripts, is most of it. */
#define SG_HTTP_HEADERS_BYTES 4096
/* A stock page larger than this is not scanned for inline scripts: it is
 * served under the strict policy (spice-html5's pages are about 10 KB). */
#define SG_HTTP_SCAN_MAX_BYTES (1024 * 1024)

typedef enum {
    CACHE_NONE,                 /* a generated answer: never stored */
    CACHE_REVALIDATE,           /* a file: stored, but checked each time */
} CachePolicy;

/* --- Content-Security-Policy ----------------------------------------------- */

/* The policy of every answer. Scripts and styles come only from our own
 * origin: no inline script, no eval, no plugin, no <base>. img-src allows
 * data: and blob: because spice-html5 draws JPEG images and cursors from
 * data: URLs; media-src blob: is its audio and video (MediaSource). 'self'
 * in connect-src covers ws: and wss: to the page's own host and port
 * (CSP 3, in Chromium and Firefox), so a page cannot be told to open its
 * websocket elsewhere. %s: extra script-src, extra style-src, the
 * frame-ancestors sources. */
#define SG_HTTP_CSP_FORMAT                                                          \
    "default-src 'none'; script-src 'self'%s; style-src 'self'%s; "                  \
    "img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; "       \
    "form-action 'self'; base-uri 'none'; object-src 'none'; frame-ancestors %s"

/* Built once per setting or per version of a page, not per answer. */
static struct {
    char *frame_ancestors;        /* NULL: "*" */
    char *strict;                 /* the policy of everything without inline code */
    GHashTable *pages;            /* path -> StockPolicy of each HTML file served */
} policy;

/* A file's inline pieces, as of the version of it they were read from. */
typedef struct {
    dev_t dev;
    ino_t ino;
    struct timespec mtime;
    off_t size;
    char *csp;                    /* the whole policy for this version of it */
} StockPolicy;

static void
stock_policy_free(gpointer data)
{
    StockPolicy *sp = data;

    g_free(sp->csp);
    g_free(sp);
}

static char *
format_policy(const char *script_src, const char *style_src)
{
    return g_strdup_printf(SG_HTTP_CSP_FORMAT, script_src, style_src,
                           policy.frame_ancestors ? policy.frame_ancestors : "*");
}

void
sg_http_set_policy(const char *frame_ancestors)
{
    g_free(policy.frame_ancestors);
    policy.frame_ancestors = g_strdup(frame_ancestors);
    g_free(policy.strict);
    policy.strict = format_policy("", "");
    g_clear_pointer(&policy.pages, g_hash_table_unref);
}

/* " 'sha256-BASE64'" of @len bytes at @text, appended to @out. */
static void
append_hash(GString *out, const char *text, gsize len)
{
    guint8 digest[32];
    gsize digest_len = sizeof(digest);
    g_autoptr(GChecksum) sum = g_checksum_new(G_CHECKSUM_SHA256);
    g_autofree char *b64 = NULL;
    g_autofree char *source = NULL;

    g_checksum_update(sum, (const guchar *)text, (gssize)len);
    g_checksum_get_digest(sum, digest, &digest_len);
    b64 = g_base64_encode(digest, digest_len);
    source = g_strdup_printf(" 'sha256-%s'", b64);
    if (strstr(out->str, source) == NULL)
        g_string_append(out, source);
}

/* Appends the hash of capture group 1 of every match of @pattern in @html. */
static void
hash_matches(GString *out, const char *pattern, const char *html, gsize len)
{
    g_autoptr(GRegex) re = g_regex_new(pattern, G_REGEX_CASELESS | G_REGEX_DOTALL |
                                       G_REGEX_RAW, 0, NULL);
    g_autoptr(GMatchInfo) match = NULL;

    g_regex_match_full(re, html, (gssize)len, 0, 0, &match, NULL);
    while (g_match_info_matches(match)) {
        int start, end;

        if (g_match_info_fetch_pos(match, 1, &start, &end) && start >= 0)
            append_hash(out, html + start, (gsize)(end - start));
        g_match_info_next(match, NULL);
    }
}

/* CR LF and a lone CR become LF, in place, as HTML's input stream
 * preprocessing does before the script text a hash is taken of; returns
 * the new length. */
static gsize
normalise_newlines(char *text, gsize len)
{
    gsize out = 0;

    for (gsize i = 0; i < len; i++) {
        if (text[i] == '\r') {
            text[out++] = '\n';
            if (i + 1 < len && text[i + 1] == '\n')
                i++;
        } else {
            text[out++] = text[i];
        }
    }
    if (out < len)
        text[out] = '\0';
    return out;
}

/* Every HTML file gets our policy plus the SHA-256 of each inline script,
 * inline handler and style attribute of the file as it is on disk
 * ('unsafe-hashes' for the attributes). Ours have none, so theirs is the
 * strict policy; the stock spice-html5 pages (spice_auto.html, spice.html)
 * and patched copies of them in [server] pages run exactly their own code,
 * and markup a query parameter smuggles into the page (spice_auto.html
 * writes its title with innerHTML) does not. A piece the browser sees
 * differently from these bytes (an entity in an attribute) is refused,
 * never widened. */
static StockPolicy *
stock_policy(const char *path, const struct stat *st)
{
    StockPolicy *sp;
    g_autofree char *html = NULL;
    gsize len = 0;
    GString *script = g_string_new(NULL);
    GString *style = g_string_new(NULL);

    if (policy.pages == NULL)
        policy.pages = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                             stock_policy_free);
    sp = g_hash_table_lookup(policy.pages, path);
    if (sp != NULL && sp->dev == st->st_dev && sp->ino == st->st_ino &&
        sp->mtime.tv_sec == st->st_mtim.tv_sec && sp->mtime.tv_nsec == st->st_mtim.tv_nsec &&
        sp->size == st->st_size) {
        g_string_free(script, TRUE);
        g_string_free(style, TRUE);
        return sp;
    }
    if (st->st_size <= SG_HTTP_SCAN_MAX_BYTES && g_file_get_contents(path, &html, &len, NULL)) {
        /* Browsers hash the text after HTML's newline normalisation. */
        len = normalise_newlines(html, len);
        /* An inline <script> (one with src= has no text to hash). */
        hash_matches(script, "<script\\b(?![^>]*\\ssrc\\s*=)[^>]*>(.*?)</script\\s*>", html, len);
        hash_matches(script, "\\son[a-z]+\\s*=\\s*\"([^\"]*)\"", html, len);
        hash_matches(script, "\\son[a-z]+\\s*=\\s*'([^']*)'", html, len);
        hash_matches(style, "<style\\b[^>]*>(.*?)</style\\s*>", html, len);
        hash_matches(style, "\\sstyle\\s*=\\s*\"([^\"]*)\"", html, len);
        hash_matches(style, "\\sstyle\\s*=\\s*'([^']*)'", html, len);
    }
    if (script->len > 0)
        g_string_prepend(script, " 'unsafe-hashes'");
    if (style->len > 0)
        g_string_prepend(style, " 'unsafe-hashes'");
    sp = g_new0(StockPolicy, 1);
    sp->dev = st->st_dev;
    sp->ino = st->st_ino;
    sp->mtime = st->st_mtim;
    sp->size = st->st_size;
    sp->csp = format_policy(script->str, style->str);
    g_string_free(script, TRUE);
    g_string_free(style, TRUE);
    g_hash_table_replace(policy.pages, g_strdup(path), sp);
    return sp;
}

const char *
sg_http_csp(const char *path, const char *mime_type, const struct stat *st)
{
    if (policy.strict == NULL)
        sg_http_set_policy(NULL);
    if (path != NULL && st != NULL && g_str_has_prefix(mime_type, "text/html"))
        return stock_policy(path, st)->csp;
    return policy.strict;
}

static bool
is_head(struct lws *wsi)
{
    return lws_hdr_total_length(wsi, WSI_TOKEN_HEAD_URI) > 0;
}

static int
add_header(struct lws *wsi, const char *name, const char *value, guint8 **p, guint8 *end)
{
    return lws_add_http_header_by_name(wsi, (const guint8 *)name, (const guint8 *)value,
                                       (int)strlen(value), p, end);
}

/* @extra's "name:", "value" pairs (NULL: none), then a NULL. */
static int
add_extra_headers(struct lws *wsi, const char *const *extra, guint8 **p, guint8 *end)
{
    for (gsize i = 0; extra != NULL && extra[i] != NULL && extra[i + 1] != NULL; i += 2) {
        if (add_header(wsi, extra[i], extra[i + 1], p, end))
            return 1;
    }
    return 0;
}

/* Writes the status and headers every answer of ours carries, as one
 * header block. @ends_stream: no body follows (HEAD, or an empty body), so
 * an HTTP/2 stream must end with the HEADERS frame itself. Returns -1 when
 * the connection broke. */
static int
write_headers(struct lws *wsi, unsigned int status, const char *mime_type,
              uint64_t content_length, CachePolicy cache, bool ends_stream,
              const char *csp, const char *const *extra)
{
    guint8 buf[LWS_PRE + SG_HTTP_HEADERS_BYTES];
    guint8 *start = &buf[LWS_PRE];
    guint8 *p = start;
    guint8 *end = &buf[sizeof(buf) - 1];
    int len;

    if (lws_add_http_header_status(wsi, status, &p, end) ||
        add_header(wsi, "content-type:", mime_type, &p, end) ||
        lws_add_http_header_content_length(wsi, content_length, &p, end) ||
        /* spice-html5 is ES modules: a browser that sniffed a type would
         * run, or refuse, what we did not mean. */
        add_header(wsi, "x-content-type-options:", "nosniff", &p, end) ||
        /* The console URL carries the token: never hand it to another
         * site in a Referer. */
        add_header(wsi, "referrer-policy:", "no-referrer", &p, end) ||
        add_header(wsi, "cache-control:", cache == CACHE_NONE ? "no-store" : "no-cache",
                   &p, end) ||
        (csp != NULL && add_header(wsi, "content-security-policy:", csp, &p, end)) ||
        add_extra_headers(wsi, extra, &p, end) ||
        lws_finalize_http_header(wsi, &p, end)) {
        /* Only a full buffer fails here; the connection itself is fine. */
        g_warning_once("cannot answer HTTP requests: the headers do not fit in %d bytes "
                       "(the Content-Security-Policy alone is %" G_GSIZE_FORMAT ")",
                       SG_HTTP_HEADERS_BYTES, csp != NULL ? strlen(csp) : 0);
        return -1;
    }
    len = (int)(p - start);
    if (lws_write(wsi, start, (size_t)len,
                  LWS_WRITE_HTTP_HEADERS | (ends_stream ? LWS_WRITE_H2_STREAM_END : 0)) != len)
        return -1;
    return 0;
}

/* The end of a transaction, as an lws HTTP callback returns it: -1 closes
 * the connection, 0 keeps it for the next request. */
static int
complete(struct lws *wsi)
{
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

int
sg_http_send_text(struct lws *wsi, unsigned int status, const char *body)
{
    size_t len = strlen(body);
    bool body_follows = len > 0 && !is_head(wsi);
    g_autofree guint8 *out = NULL;
    const char *csp = sg_http_csp(NULL, "text/plain", NULL);

    if (write_headers(wsi, status, "text/plain; charset=utf-8", len, CACHE_NONE,
                      !body_follows, csp, NULL) < 0)
        return -1;
    if (body_follows) {
        out = g_malloc(LWS_PRE + len);
        memcpy(out + LWS_PRE, body, len);
        if (lws_write(wsi, out + LWS_PRE, len, LWS_WRITE_HTTP_FINAL) != (int)len)
            return -1;
    }
    return 0;
}

int
sg_http_send_headers(struct lws *wsi, unsigned int status, const char *mime_type,
                     uint64_t content_length, const char *const *extra)
{
    return write_headers(wsi, status, mime_type, content_length, CACHE_NONE,
                         content_length == 0 || is_head(wsi), NULL, extra);
}

int
sg_http_respond_text(struct lws *wsi, unsigned int status, const char *body)
{
    if (sg_http_send_text(wsi, status, body) < 0)
        return -1;
    return complete(wsi);
}

int
sg_http_respond_file(struct lws *wsi, SgHttpFile *file, const char *path, const char *mime_type)
{
    struct stat st;
    int fd;
    const char *csp;

    g_return_val_if_fail(!file->open, -1);
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        g_debug("http: open %s: %s", path, g_strerror(errno));
        return sg_http_respond_text(wsi, HTTP_STATUS_NOT_FOUND, "not found\n");
    }
    /* web.c chose a regular file, but it may have been swapped since. */
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return sg_http_respond_text(wsi, HTTP_STATUS_NOT_FOUND, "not found\n");
    }
    csp = sg_http_csp(path, mime_type, &st);
    if (is_head(wsi) || st.st_size == 0) {
        close(fd);
        if (write_headers(wsi, HTTP_STATUS_OK, mime_type, (uint64_t)st.st_size,
                          CACHE_REVALIDATE, true, csp, NULL) < 0)
            return -1;
        return complete(wsi);
    }
    if (write_headers(wsi, HTTP_STATUS_OK, mime_type, (uint64_t)st.st_size, CACHE_REVALIDATE,
                      false, csp, NULL) < 0) {
        close(fd);
        return -1;
    }
    file->open = true;
    file->fd = fd;
    file->remaining = (uint64_t)st.st_size;
    lws_callback_on_writable(wsi);
    return 0;
}

int
sg_http_file_on_writeable(struct lws *wsi, SgHttpFile *file)
{
    guint8 buf[LWS_PRE + SG_HTTP_FILE_CHUNK_BYTES];
    size_t want = (size_t)MIN(file->remaining, (uint64_t)SG_HTTP_FILE_CHUNK_BYTES);
    ssize_t got;
    bool last;

    if (sg_lws_is_h2_stream(wsi)) {
        /* The stream's and the connection's send windows, the smaller. */
        lws_fileofs_t window = lws_get_peer_write_allowance(wsi);

        /* None: wait, without asking for WRITEABLE (which lws would grant
         * at once, again and again): the peer's WINDOW_UPDATE makes lws
         * call every waiting stream back. */
        if (window <= 0)
            return 0;
        want = MIN(want, (size_t)MIN(window, (lws_fileofs_t)SG_HTTP2_MAX_FRAME_BYTES));
    }
    do
        got = read(file->fd, buf + LWS_PRE, want);
    while (got < 0 && errno == EINTR);
    if (got <= 0) {
        /* The file shrank under us: the Content-Length we sent cannot be
         * kept, and only closing the connection tells the client so. */
        g_message("http: reading a served file failed (%s); connection closed",
                  got < 0 ? g_strerror(errno) : "it shrank");
        sg_http_file_close(file);
        return -1;
    }
    file->remaining -= (uint64_t)got;
    last = file->remaining == 0;
    if (lws_write(wsi, buf + LWS_PRE, (size_t)got, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) !=
        (int)got) {
        sg_http_file_close(file);
        return -1;
    }
    if (!last) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    sg_http_file_close(file);
    return complete(wsi);
}

void
sg_http_file_close(SgHttpFile *file)
{
    if (!file->open)
        return;
    close(file->fd);
    file->open = false;
    file->fd = -1;
    file->remaining = 0;
}
