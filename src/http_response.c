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
/* Room for the status and every header we add, HPACK-coded or not. */
#define SG_HTTP_HEADERS_BYTES 1024

typedef enum {
    CACHE_NONE,                 /* a generated answer: never stored */
    CACHE_REVALIDATE,           /* a file: stored, but checked each time */
} CachePolicy;

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

/* Writes the status and headers every answer of ours carries, as one
 * header block. @ends_stream: no body follows (HEAD, or an empty body), so
 * an HTTP/2 stream must end with the HEADERS frame itself. Returns -1 when
 * the connection broke. */
static int
write_headers(struct lws *wsi, unsigned int status, const char *mime_type,
              uint64_t content_length, CachePolicy cache, bool ends_stream)
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
        lws_finalize_http_header(wsi, &p, end))
        return -1;
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

    if (write_headers(wsi, status, "text/plain; charset=utf-8", len, CACHE_NONE,
                      !body_follows) < 0)
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
    if (is_head(wsi) || st.st_size == 0) {
        close(fd);
        if (write_headers(wsi, HTTP_STATUS_OK, mime_type, (uint64_t)st.st_size,
                          CACHE_REVALIDATE, true) < 0)
            return -1;
        return complete(wsi);
    }
    if (write_headers(wsi, HTTP_STATUS_OK, mime_type, (uint64_t)st.st_size, CACHE_REVALIDATE,
                      false) < 0) {
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
