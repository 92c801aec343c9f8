/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_client_addr.c - libFuzzer target for who the client is: the
 * [server] trusted_proxies list, X-Forwarded-For elements and the whole
 * decision (client_addr.h), and the address formatting the log shares
 * with request.c.
 *
 * The input is NUL-separated fields: trusted_proxies, the connection's
 * address (as text; a field that is no address, or absent, is an unknown
 * peer), X-Forwarded-Proto, then every X-Forwarded-For field. A field the
 * input does not reach is absent (NULL). Besides crashes, it checks
 * client_addr.h's promises: a list parses or says why, never both; an
 * element that parses is an address that parses again to itself once
 * written out; a sender that is not trusted has X-Forwarded-* ignored
 * (and said so) and stays the client, written as request.c writes peers;
 * a trusted one gives an IP address or stays the client.
 */
#include "autoconfig.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "client_addr.h"
#include "request.h"

#include "fields.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum {
    FIELD_TRUSTED = 0,
    FIELD_CONN,
    FIELD_PROTO,
    FIELD_XFF,              /* and every field after it */
};

static bool
same_address(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return false;
    if (a->ss_family == AF_INET)
        return memcmp(&((const struct sockaddr_in *)a)->sin_addr,
                      &((const struct sockaddr_in *)b)->sin_addr, 4) == 0;
    return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
                  &((const struct sockaddr_in6 *)b)->sin6_addr, 16) == 0;
}

/* One element: if it parses, its written form parses to the same. */
static void
check_element(const char *s)
{
    struct sockaddr_storage ss, again;
    char text[INET6_ADDRSTRLEN];
    const void *bytes;

    if (!sg_client_parse_forwarded_element(s, strlen(s), &ss))
        return;
    if (ss.ss_family == AF_INET) {
        if (((struct sockaddr_in *)&ss)->sin_port != 0)
            abort();
        bytes = &((struct sockaddr_in *)&ss)->sin_addr;
    } else if (ss.ss_family == AF_INET6) {
        if (((struct sockaddr_in6 *)&ss)->sin6_port != 0)
            abort();
        bytes = &((struct sockaddr_in6 *)&ss)->sin6_addr;
    } else {
        abort();
    }
    if (inet_ntop(ss.ss_family, bytes, text, sizeof(text)) == NULL)
        abort();
    if (!sg_client_parse_forwarded_element(text, strlen(text), &again) ||
        !same_address(&ss, &again))
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_autofree char *copy = g_malloc(size + 1);
    g_autoptr(GPtrArray) fields = g_ptr_array_new();
    g_autoptr(SgTrustedProxies) tp = NULL;
    g_autoptr(GError) error = NULL;
    const char *field[FIELD_XFF] = { NULL };
    const char *const *xff = NULL;
    struct sockaddr_storage conn_ss;
    const struct sockaddr_storage *conn = NULL;
    g_autofree char *conn_text = NULL;
    g_auto(SgClientView) view = { 0 };
    bool sent;

    if (size > 8192)
        return 0;
    memcpy(copy, data, size);
    copy[size] = '\0';
    split_fields(copy, size, fields);
    for (guint i = 0; i < fields->len && i < FIELD_XFF; i++)
        field[i] = fields->pdata[i];
    if (fields->len > FIELD_XFF) {
        g_ptr_array_remove_range(fields, 0, FIELD_XFF);
        g_ptr_array_add(fields, NULL);
        xff = (const char *const *)fields->pdata;
    }

    tp = sg_trusted_proxies_parse(field[FIELD_TRUSTED] ? field[FIELD_TRUSTED] : "", &error);
    if ((tp == NULL) == (error == NULL))
        abort();

    if (field[FIELD_CONN] != NULL &&
        sg_client_parse_forwarded_element(field[FIELD_CONN], strlen(field[FIELD_CONN]),
                                          &conn_ss)) {
        /* A peer's port, as getpeername() or a PROXY header gives one. */
        if (conn_ss.ss_family == AF_INET)
            ((struct sockaddr_in *)&conn_ss)->sin_port = htons(size & 0xffff);
        else
            ((struct sockaddr_in6 *)&conn_ss)->sin6_port = htons(size & 0xffff);
        conn = &conn_ss;
        conn_text = sg_request_format_addr(conn);
    }

    for (gsize i = 0; xff != NULL && xff[i] != NULL; i++) {
        g_auto(GStrv) parts = g_strsplit(xff[i], ",", -1);

        for (gsize j = 0; parts[j] != NULL; j++)
            check_element(parts[j]);
    }

    sg_client_decide(tp, conn, xff, field[FIELD_PROTO], &view);
    if (view.client == NULL)
        abort();
    sent = xff != NULL || field[FIELD_PROTO] != NULL;
    if (!sent || conn == NULL || !sg_trusted_proxies_match(tp, conn)) {
        /* Nothing believed: the connection is the client, written the way
         * request.c writes a peer; X-Forwarded-* ignored exactly when sent. */
        if (view.forwarded_proto != NULL || view.ignored_forwarded != sent)
            abort();
        if (strcmp(view.client, conn != NULL ? conn_text : "?") != 0)
            abort();
    } else {
        if (view.ignored_forwarded)
            abort();
        if (g_strcmp0(view.forwarded_proto, field[FIELD_PROTO]) != 0)
            abort();
        if (strcmp(view.client, conn_text) != 0 && !g_hostname_is_ip_address(view.client))
            abort();
    }
    return 0;
}
