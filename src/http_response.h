/* SPDX-License-Identifier: Apache-2.0 */
/* http_response.h - every plain HTTP answer spicegate sends, through lws'
 * header API.
 *
 * Over TLS, libwebsockets negotiates HTTP/2, where headers are HPACK-coded
 * frames: a raw "Name: value\r\n" block (what lws_serve_http_file()'s
 * other_headers takes) corrupts the stream and browsers refuse the page
 * (ERR_HTTP2_COMPRESSION_ERROR). So every status line, header and body
 * goes through lws_add_http_header_*() and lws_write() here, the same for
 * HTTP/1.1 and HTTP/2, for GET and HEAD.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "sg_types.h"

struct lws;
struct stat;

/* The Content-Security-Policy of every answer (see http_response.c):
 * @frame_ancestors is [server] frame_ancestors (NULL: "*"). The inline
 * scripts and styles an HTML file holds on disk (spice-html5's stock
 * pages; ours have none) are allowed by hash. Call once per process before
 * serving. */
void sg_http_set_policy(const char *frame_ancestors);

/* The policy for the file @path (NULL: a generated answer) of @mime_type
 * with status @st. Owned here: valid until the next call for the same
 * page or sg_http_set_policy(). For tests and the answers below. */
const char *sg_http_csp(const char *path, const char *mime_type, const struct stat *st);

/* A file being sent; lives in lws' per-connection storage (zeroed by lws:
 * the all-zero value is "no file"). One per request: over HTTP/2 each
 * stream is its own wsi with its own storage. */
typedef struct {
    bool open;
    int fd;
    uint64_t remaining;         /* body bytes not yet handed to lws */
} SgHttpFile;

/* A short plain-text answer that ends the transaction (@body is not sent
 * for HEAD). Returns what an lws HTTP callback must return. */
int sg_http_respond_text(struct lws *wsi, unsigned int status, const char *body);

/* The same, for a transaction that lws ends itself (a refused upgrade):
 * returns -1 when the connection broke, else 0. */
int sg_http_send_text(struct lws *wsi, unsigned int status, const char *body);

/* The status and headers of a generated answer of @content_length body
 * bytes of @mime_type, never stored (Cache-Control: no-store), with
 * @extra's "name:", "value" pairs ("allow:", "GET, HEAD", ..., NULL; or
 * NULL), and no Content-Security-Policy (for answers no browser renders:
 * the admin API's). The caller writes the body, if any and not HEAD, and
 * ends the transaction. Returns -1 when the connection broke, else 0. */
int sg_http_send_headers(struct lws *wsi, unsigned int status, const char *mime_type,
                         uint64_t content_length, const char *const *extra);

/* Starts answering with the regular file @path as @mime_type: headers now,
 * the body from sg_http_file_on_writeable() (HEAD: headers only). A file
 * that cannot be opened is a 404. Returns what an lws HTTP callback must
 * return. */
int sg_http_respond_file(struct lws *wsi, SgHttpFile *file, const char *path,
                         const char *mime_type);

/* LWS_CALLBACK_HTTP_WRITEABLE while @file is open: the next piece of the
 * body, and the end of the transaction after the last. Returns what the
 * callback must return. */
int sg_http_file_on_writeable(struct lws *wsi, SgHttpFile *file);

/* Closes the file of a transaction that ended early (the client left). */
void sg_http_file_close(SgHttpFile *file);
