/* SPDX-License-Identifier: Apache-2.0 */
/* request.c - a request's headers and peer, copied out of libwebsockets.
 *
 * Owns nothing: each function returns a new copy for the caller. Must
 * not: decide anything (web.c and admission.c do), log (headers may hold
 * tokens), or hand out a truncated value.
 */
#include "autoconfig.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include <glib.h>
#include <libwebsockets.h>

#include "compat.h"
#include "request.h"

char *
sg_request_header(struct lws *wsi, enum lws_token_indexes h)
{
    int len = lws_hdr_total_length(wsi, h);
    char *value;

    if (len <= 0 || len > SG_REQUEST_HEADER_MAX_BYTES)
        return NULL;
    value = g_malloc(len + 1);
    if (lws_hdr_copy(wsi, value, len + 1, h) < 0) {
        g_free(value);
        return NULL;
    }
    return value;
}

char *
sg_request_custom_header(struct lws *wsi, const char *name)
{
    int nlen = (int)strlen(name);
    int len = lws_hdr_custom_length(wsi, name, nlen);
    char *value;

    if (len <= 0 || len > SG_REQUEST_HEADER_MAX_BYTES)
        return NULL;
    value = g_malloc(len + 1);
    if (lws_hdr_custom_copy(wsi, value, len + 1, name, nlen) < 0) {
        g_free(value);
        return NULL;
    }
    return value;
}

/* lws_hdr_fragment_length() says 0 both for an empty fragment ("a&&b")
 * and for none: only the copy's -1 ends the list. Newer lws keeps %00 in
 * argument values, hence the 0x01. */
GPtrArray *
sg_request_fragments(struct lws *wsi, enum lws_token_indexes h)
{
    GPtrArray *frags = g_ptr_array_new_with_free_func(g_free);

    for (int i = 0;; i++) {
        int len = MAX(lws_hdr_fragment_length(wsi, h, i), 0);
        char *frag = g_malloc(len + 1);

        if (lws_hdr_copy_fragment(wsi, frag, len + 1, h, i) < 0) {
            g_free(frag);
            break;
        }
        for (int j = 0; j < len; j++) {
            if (frag[j] == '\0')
                frag[j] = '\x01';
        }
        g_ptr_array_add(frags, frag);
    }
    g_ptr_array_add(frags, NULL);
    return frags;
}

void
sg_request_wipe_fragments(GPtrArray *frags)
{
    for (guint i = 0; i + 1 < frags->len; i++)
        explicit_bzero(frags->pdata[i], strlen(frags->pdata[i]));
    g_ptr_array_unref(frags);
}

/* A client may send several Cookie fields (HTTP/2 clients split cookies
 * into one field each; RFC 9113 8.2.3), and lws_hdr_copy() glues lws'
 * fragments of this header together with no separator at all, which
 * merged the last cookie of one field with the first of the next. */
char *
sg_request_cookie(struct lws *wsi)
{
    GPtrArray *fields = sg_request_fragments(wsi, WSI_TOKEN_HTTP_COOKIE);
    char *joined = NULL;

    if (fields->len > 1) {
        joined = g_strjoinv("; ", (char **)fields->pdata);
        if (strlen(joined) > SG_REQUEST_HEADER_MAX_BYTES) {
            explicit_bzero(joined, strlen(joined));
            g_clear_pointer(&joined, g_free);
        }
    }
    sg_request_wipe_fragments(fields);
    return joined;
}

char *
sg_request_format_addr(const struct sockaddr_storage *ss)
{
    char ip[INET6_ADDRSTRLEN] = "?";

    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;

        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
        return g_strdup_printf("%s:%u", ip, ntohs(in->sin_port));
    }
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;

        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
        /* Show v4-mapped peers of a dual-stack socket as plain IPv4. */
        if (g_str_has_prefix(ip, "::ffff:") && strchr(ip + 7, '.') != NULL)
            return g_strdup_printf("%s:%u", ip + 7, ntohs(in6->sin6_port));
        return g_strdup_printf("[%s]:%u", ip, ntohs(in6->sin6_port));
    }
    return g_strdup("?");
}

char *
sg_request_peer(struct lws *wsi)
{
    struct sockaddr_storage ss;
    socklen_t slen = sizeof(ss);
    /* An HTTP/2 stream's own wsi has no socket: the connection's has. */
    int fd = sg_lws_socket_fd(wsi);

    if (fd < 0 || getpeername(fd, (struct sockaddr *)&ss, &slen) != 0)
        return g_strdup("?");
    return sg_request_format_addr(&ss);
}
