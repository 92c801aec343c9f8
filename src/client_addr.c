/* SPDX-License-Identifier: Apache-2.0 */
/* client_addr.c - trusted proxies and the client address (see client_addr.h). */
#include "autoconfig.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include <gio/gio.h>

#include "client_addr.h"

/* An address as compared here: IPv4 in 4 bytes, IPv6 in 16; an
 * IPv4-mapped IPv6 address is its IPv4 address, as a dual-stack socket
 * reports IPv4 peers that way. */
typedef struct {
    int family;                   /* AF_INET or AF_INET6 */
    guint8 bytes[16];
} Addr;

typedef struct {
    Addr addr;
    guint prefix;                 /* bits that must match */
} Block;

struct SgTrustedProxies {
    GArray *blocks;               /* of Block */
};

static const guint8 v4_mapped_prefix[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

static bool
addr_from_sockaddr(const struct sockaddr_storage *ss, Addr *a)
{
    memset(a, 0, sizeof(*a));
    if (ss->ss_family == AF_INET) {
        a->family = AF_INET;
        memcpy(a->bytes, &((const struct sockaddr_in *)ss)->sin_addr, 4);
        return true;
    }
    if (ss->ss_family == AF_INET6) {
        const guint8 *b = ((const struct sockaddr_in6 *)ss)->sin6_addr.s6_addr;

        if (memcmp(b, v4_mapped_prefix, sizeof(v4_mapped_prefix)) == 0) {
            a->family = AF_INET;
            memcpy(a->bytes, b + 12, 4);
        } else {
            a->family = AF_INET6;
            memcpy(a->bytes, b, 16);
        }
        return true;
    }
    return false;
}

/* An address written alone (no port, no brackets), into @a; an
 * IPv4-mapped IPv6 address becomes IPv4 and *@mapped says so. */
static bool
addr_from_text(const char *text, Addr *a, bool *mapped)
{
    memset(a, 0, sizeof(*a));
    *mapped = false;
    if (inet_pton(AF_INET, text, a->bytes) == 1) {
        a->family = AF_INET;
        return true;
    }
    if (inet_pton(AF_INET6, text, a->bytes) == 1) {
        a->family = AF_INET6;
        if (memcmp(a->bytes, v4_mapped_prefix, sizeof(v4_mapped_prefix)) == 0) {
            memmove(a->bytes, a->bytes + 12, 4);
            memset(a->bytes + 4, 0, 12);
            a->family = AF_INET;
            *mapped = true;
        }
        return true;
    }
    return false;
}

static bool
block_contains(const Block *b, const Addr *a)
{
    guint full = b->prefix / 8;
    guint rest = b->prefix % 8;

    if (b->addr.family != a->family)
        return false;
    if (memcmp(b->addr.bytes, a->bytes, full) != 0)
        return false;
    if (rest == 0)
        return true;
    return ((b->addr.bytes[full] ^ a->bytes[full]) & (guint8)(0xff << (8 - rest))) == 0;
}

static bool
parse_block(const char *item, Block *block, GError **error)
{
    g_autofree char *text = g_strdup(item);
    char *slash = strchr(text, '/');
    guint max_bits;
    bool mapped;
    guint64 prefix;

    if (slash != NULL)
        *slash = '\0';
    if (!addr_from_text(text, &block->addr, &mapped)) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                    "'%s' is not an IP address or a CIDR block (names are not accepted)", item);
        return false;
    }
    max_bits = block->addr.family == AF_INET ? 32 : 128;
    if (slash == NULL) {
        block->prefix = max_bits;
        return true;
    }
    if (slash[1] == '\0' || !g_ascii_string_to_unsigned(slash + 1, 10, 0, mapped ? 128 : max_bits,
                                                        &prefix, NULL) ||
        (mapped && prefix < 96)) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                    "'%s' has a bad prefix length (0 to %u)", item, mapped ? 128 : max_bits);
        return false;
    }
    block->prefix = mapped ? (guint)prefix - 96 : (guint)prefix;
    {
        Block host = *block;

        /* Host bits under the prefix: "10.0.0.1/8" is a typo for either
         * the address or the block, and guessing which would trust the
         * wrong one. */
        for (guint bit = block->prefix; bit < max_bits; bit++)
            host.addr.bytes[bit / 8] &= (guint8)~(0x80 >> (bit % 8));
        if (memcmp(host.addr.bytes, block->addr.bytes, sizeof(host.addr.bytes)) != 0) {
            g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                        "'%s' has bits set after its prefix length", item);
            return false;
        }
    }
    return true;
}

SgTrustedProxies *
sg_trusted_proxies_parse(const char *value, GError **error)
{
    g_auto(GStrv) items = g_strsplit_set(value != NULL ? value : "", ", \t\n", -1);
    SgTrustedProxies *tp = g_new0(SgTrustedProxies, 1);

    tp->blocks = g_array_new(FALSE, TRUE, sizeof(Block));
    for (guint i = 0; items[i] != NULL; i++) {
        Block block;

        if (items[i][0] == '\0')
            continue;
        if (!parse_block(items[i], &block, error)) {
            sg_trusted_proxies_free(tp);
            return NULL;
        }
        g_array_append_val(tp->blocks, block);
    }
    return tp;
}

void
sg_trusted_proxies_free(SgTrustedProxies *tp)
{
    if (tp == NULL)
        return;
    g_array_unref(tp->blocks);
    g_free(tp);
}

guint
sg_trusted_proxies_count(const SgTrustedProxies *tp)
{
    return tp != NULL ? tp->blocks->len : 0;
}

static bool
match_addr(const SgTrustedProxies *tp, const Addr *a)
{
    for (guint i = 0; tp != NULL && i < tp->blocks->len; i++) {
        if (block_contains(&g_array_index(tp->blocks, Block, i), a))
            return true;
    }
    return false;
}

bool
sg_trusted_proxies_match(const SgTrustedProxies *tp, const struct sockaddr_storage *ss)
{
    Addr a;

    return ss != NULL && addr_from_sockaddr(ss, &a) && match_addr(tp, &a);
}

bool
sg_client_parse_forwarded_element(const char *s, gsize len, struct sockaddr_storage *ss)
{
    const char *start = s;
    const char *end = s + len;
    char text[INET6_ADDRSTRLEN];
    Addr a;
    bool mapped;

    while (start < end && (*start == ' ' || *start == '\t'))
        start++;
    while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (start < end && *start == '[') {
        const char *close = memchr(start, ']', (gsize)(end - start));

        if (close == NULL)
            return false;
        /* "[v6]" or "[v6]:port": the port is not ours to use. */
        if (close + 1 < end && close[1] != ':')
            return false;
        start++;
        end = close;
    } else {
        const char *colon = memchr(start, ':', (gsize)(end - start));

        /* One colon: "v4:port". More: a bare IPv6 address. */
        if (colon != NULL && memchr(colon + 1, ':', (gsize)(end - colon - 1)) == NULL)
            end = colon;
    }
    if (end <= start || (gsize)(end - start) >= sizeof(text))
        return false;
    memcpy(text, start, (gsize)(end - start));
    text[end - start] = '\0';
    if (!addr_from_text(text, &a, &mapped))
        return false;
    memset(ss, 0, sizeof(*ss));
    if (a.family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;

        sin->sin_family = AF_INET;
        memcpy(&sin->sin_addr, a.bytes, 4);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

        sin6->sin6_family = AF_INET6;
        memcpy(&sin6->sin6_addr, a.bytes, 16);
    }
    return true;
}

/* "192.0.2.1:5", "[2001:db8::1]:5" with @with_port, else the address
 * alone; IPv4-mapped addresses as IPv4, as request.c writes them. */
static char *
format_addr(const struct sockaddr_storage *ss, bool with_port)
{
    char text[INET6_ADDRSTRLEN];
    Addr a;
    guint16 port;

    if (!addr_from_sockaddr(ss, &a))
        return g_strdup("?");
    inet_ntop(a.family, a.bytes, text, sizeof(text));
    port = ntohs(ss->ss_family == AF_INET ? ((const struct sockaddr_in *)ss)->sin_port
                                          : ((const struct sockaddr_in6 *)ss)->sin6_port);
    if (!with_port)
        return g_strdup(text);
    if (a.family == AF_INET6)
        return g_strdup_printf("[%s]:%u", text, port);
    return g_strdup_printf("%s:%u", text, port);
}

/* Every element of every X-Forwarded-For field, in order: each field's
 * commas split it, and repeated fields are one list (RFC 9110 5.3). */
static GPtrArray *
forwarded_elements(const char *const *xff)
{
    GPtrArray *elements = g_ptr_array_new_with_free_func(g_free);

    for (gsize i = 0; xff != NULL && xff[i] != NULL; i++) {
        g_auto(GStrv) parts = g_strsplit(xff[i], ",", -1);

        for (gsize j = 0; parts[j] != NULL; j++)
            g_ptr_array_add(elements, g_steal_pointer(&parts[j]));
    }
    return elements;
}

void
sg_client_decide(const SgTrustedProxies *tp, const struct sockaddr_storage *conn,
                 const char *const *xff, const char *xfp, SgClientView *out)
{
    g_autoptr(GPtrArray) elements = NULL;
    struct sockaddr_storage hop = { 0 };
    bool found = false;
    bool sent_xff = false;

    memset(out, 0, sizeof(*out));
    out->client = conn != NULL ? format_addr(conn, true) : g_strdup("?");
    for (gsize i = 0; xff != NULL && xff[i] != NULL; i++)
        sent_xff = true;
    if (!sent_xff && xfp == NULL)
        return;
    if (conn == NULL || !sg_trusted_proxies_match(tp, conn)) {
        out->ignored_forwarded = true;
        return;
    }
    if (xfp != NULL)
        out->forwarded_proto = g_strdup(xfp);
    elements = forwarded_elements(xff);
    for (guint i = elements->len; i-- > 0;) {
        const char *e = g_ptr_array_index(elements, i);
        struct sockaddr_storage ss;

        if (!sg_client_parse_forwarded_element(e, strlen(e), &ss))
            break;
        hop = ss;
        found = true;
        if (!sg_trusted_proxies_match(tp, &ss))
            break;
    }
    if (found) {
        g_free(out->client);
        out->client = format_addr(&hop, false);
    }
}

void
sg_client_view_clear(SgClientView *view)
{
    g_clear_pointer(&view->client, g_free);
    g_clear_pointer(&view->forwarded_proto, g_free);
    view->ignored_forwarded = false;
}
