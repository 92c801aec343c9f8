/* SPDX-License-Identifier: Apache-2.0 */
/* request.h - what an HTTP request says, copied out of libwebsockets.
 *
 * listener.c reads a request's headers through these and hands the plain
 * strings to web.c and admission.c, which decide. Every copy is whole or
 * absent: a header longer than SG_REQUEST_HEADER_MAX_BYTES is treated as
 * missing, never truncated into something else. Nothing here decides.
 */
#pragma once

#include <sys/socket.h>

#include <glib.h>
#include <libwebsockets.h>

/* All request headers together: browsers send every cookie of the domain,
 * and a console proxy sharing one with Horizon sees its session and CSRF
 * cookies too; lws' default of 4 KiB refuses such requests outright. */
#define SG_REQUEST_HEADERS_MAX_BYTES (16 * 1024)
/* One header we read; longer values are treated as absent, not truncated. */
#define SG_REQUEST_HEADER_MAX_BYTES SG_REQUEST_HEADERS_MAX_BYTES

/* Header @h as a new string, or NULL when absent or too long. */
char *sg_request_header(struct lws *wsi, enum lws_token_indexes h);

/* A header lws has no token for, by its lowercase @name with the colon
 * ("x-forwarded-proto:"); NULL when absent or too long. */
char *sg_request_custom_header(struct lws *wsi, const char *name);

/* Each fragment lws keeps of header @h, whole, NUL-terminated, in order,
 * and a NULL at the end (a GPtrArray whose pdata is a strv): every field
 * of a repeated header, or every argument of the query
 * (WSI_TOKEN_HTTP_URI_ARGS, split and decoded). A NUL inside a fragment
 * becomes 0x01, so the parsers refuse what it was in rather than see it
 * cut short. Free with sg_request_wipe_fragments(). */
GPtrArray *sg_request_fragments(struct lws *wsi, enum lws_token_indexes h);

/* Fragments may hold tokens: zeroes each, then frees the array. */
void sg_request_wipe_fragments(GPtrArray *frags);

/* Every Cookie field of the request, joined with "; " as RFC 6265 5.4
 * writes them; NULL when there is none or all together are too long. The
 * caller wipes it (it may hold a token) and frees it. */
char *sg_request_cookie(struct lws *wsi);

/* The peer's "addr:port", without reverse DNS; "?" when unknown. */
char *sg_request_peer(struct lws *wsi);

/* The same from an address: "10.0.0.1:5", "[::1]:5"; an IPv4-mapped IPv6
 * address as plain IPv4; "?" for any other family. Pure, for tests. */
char *sg_request_format_addr(const struct sockaddr_storage *ss);
