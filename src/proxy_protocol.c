/* SPDX-License-Identifier: Apache-2.0 */
/* proxy_protocol.c - PROXY protocol v1 and v2 headers (see proxy_protocol.h). */
#include "autoconfig.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "proxy_protocol.h"

static const uint8_t v2_signature[12] = {
    0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
};
#define V1_PREFIX "PROXY "
#define V1_PREFIX_LEN (sizeof(V1_PREFIX) - 1)
#define V2_FIXED_BYTES 16

/* Whether @data[0..@len) starts like @prefix, as far as it goes. */
static bool
starts_like(const uint8_t *data, size_t len, const void *prefix, size_t prefix_len)
{
    return memcmp(data, prefix, len < prefix_len ? len : prefix_len) == 0;
}

static SgProxyStatus
bad(const char **why, const char *text)
{
    *why = text;
    return SG_PROXY_BAD;
}

/* 0..65535 in decimal, no sign, no leading zero (the specification's
 * form: anything else is a sender we do not understand). */
static bool
parse_port(const char *s, size_t len, uint16_t *port)
{
    unsigned value = 0;

    if (len == 0 || len > 5 || (s[0] == '0' && len > 1))
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        value = value * 10 + (unsigned)(s[i] - '0');
    }
    if (value > 65535)
        return false;
    *port = (uint16_t)value;
    return true;
}

/* One field of a v1 line, copied out for inet_pton(): an address is at
 * most 39 characters (IPv6, uncompressed). */
static bool
parse_v1_address(int family, const char *s, size_t len, uint16_t port,
                 struct sockaddr_storage *ss)
{
    char text[INET6_ADDRSTRLEN];

    if (len == 0 || len >= sizeof(text))
        return false;
    memcpy(text, s, len);
    text[len] = '\0';
    memset(ss, 0, sizeof(*ss));
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;

        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        return inet_pton(AF_INET, text, &sin->sin_addr) == 1;
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        return inet_pton(AF_INET6, text, &sin6->sin6_addr) == 1;
    }
}

/* "PROXY TCP4 src dst sport dport", "PROXY TCP6 ...", "PROXY UNKNOWN[ ...]":
 * @line without its CRLF. */
static SgProxyStatus
parse_v1_line(const char *line, size_t len, SgProxyHeader *hdr, const char **why)
{
    const char *field[6];
    size_t field_len[6];
    size_t n = 0;
    const char *p = line;
    const char *end = line + len;
    int family;
    uint16_t sport;
    uint16_t dport;
    struct sockaddr_storage dst;

    while (n < 6) {
        const char *sp = memchr(p, ' ', (size_t)(end - p));
        const char *fend = sp != NULL ? sp : end;

        field[n] = p;
        field_len[n] = (size_t)(fend - p);
        n++;
        if (sp == NULL)
            break;
        p = sp + 1;
        /* UNKNOWN may be followed by anything: the receiver ignores it. */
        if (n == 2 && field_len[1] == 7 && memcmp(field[1], "UNKNOWN", 7) == 0)
            break;
    }
    if (n >= 2 && field_len[1] == 7 && memcmp(field[1], "UNKNOWN", 7) == 0) {
        hdr->has_source = false;
        return SG_PROXY_DONE;
    }
    if (n != 6 || field[5] + field_len[5] != end)
        return bad(why, "PROXY v1 line without its six fields");
    if (field_len[1] == 4 && memcmp(field[1], "TCP4", 4) == 0)
        family = AF_INET;
    else if (field_len[1] == 4 && memcmp(field[1], "TCP6", 4) == 0)
        family = AF_INET6;
    else
        return bad(why, "PROXY v1 line with an unknown protocol");
    if (!parse_port(field[4], field_len[4], &sport) || !parse_port(field[5], field_len[5], &dport))
        return bad(why, "PROXY v1 line with a bad port");
    if (!parse_v1_address(family, field[2], field_len[2], sport, &hdr->source) ||
        !parse_v1_address(family, field[3], field_len[3], dport, &dst))
        return bad(why, "PROXY v1 line with a bad address");
    hdr->has_source = true;
    return SG_PROXY_DONE;
}

static SgProxyStatus
parse_v1(const uint8_t *data, size_t len, SgProxyHeader *hdr, const char **why)
{
    size_t scan = len < SG_PROXY_V1_MAX_BYTES ? len : SG_PROXY_V1_MAX_BYTES;

    for (size_t i = 0; i < scan; i++) {
        if (data[i] == '\r') {
            if (i + 2 > SG_PROXY_V1_MAX_BYTES)
                break;
            if (i + 1 == len)
                return SG_PROXY_MORE;
            if (data[i + 1] != '\n')
                return bad(why, "PROXY v1 line with a CR not followed by LF");
            hdr->version = 1;
            hdr->length = i + 2;
            return parse_v1_line((const char *)data, i, hdr, why);
        }
        if (data[i] < 0x20 || data[i] > 0x7e)
            return bad(why, "PROXY v1 line with a control or non-ASCII byte");
    }
    if (len >= SG_PROXY_V1_MAX_BYTES)
        return bad(why, "PROXY v1 line longer than 107 bytes");
    return SG_PROXY_MORE;
}

static SgProxyStatus
parse_v2(const uint8_t *data, size_t len, SgProxyHeader *hdr, const char **why)
{
    size_t addr_len;
    size_t total;
    unsigned command;
    unsigned family;
    unsigned transport;
    const uint8_t *a;

    if (len < V2_FIXED_BYTES)
        return SG_PROXY_MORE;
    if (data[12] >> 4 != 2)
        return bad(why, "PROXY v2 header of an unknown version");
    command = data[12] & 0x0f;
    if (command > 1)
        return bad(why, "PROXY v2 header with an unknown command");
    addr_len = (size_t)data[14] << 8 | data[15];
    total = V2_FIXED_BYTES + addr_len;
    if (total > SG_PROXY_MAX_BYTES)
        return bad(why, "PROXY v2 header longer than spicegate takes");
    if (len < total)
        return SG_PROXY_MORE;
    hdr->version = 2;
    hdr->length = total;
    hdr->has_source = false;
    /* LOCAL: the proxy speaking for itself (health checks); whatever
     * addresses follow are ignored, as the specification says. */
    if (command == 0)
        return SG_PROXY_DONE;
    family = data[13] >> 4;
    transport = data[13] & 0x0f;
    a = data + V2_FIXED_BYTES;
    switch (family) {
    case 0:                       /* AF_UNSPEC: keep the connection's own addresses */
    case 3:                       /* AF_UNIX: no IP address to log */
        return SG_PROXY_DONE;
    case 1: {
        struct sockaddr_in *sin = (struct sockaddr_in *)&hdr->source;

        if (transport != 1)
            return bad(why, "PROXY v2 header for a connection other than TCP");
        if (addr_len < 12)
            return bad(why, "PROXY v2 header too short for IPv4 addresses");
        memset(&hdr->source, 0, sizeof(hdr->source));
        sin->sin_family = AF_INET;
        memcpy(&sin->sin_addr, a, 4);
        memcpy(&sin->sin_port, a + 8, 2);
        hdr->has_source = true;
        return SG_PROXY_DONE;
    }
    case 2: {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&hdr->source;

        if (transport != 1)
            return bad(why, "PROXY v2 header for a connection other than TCP");
        if (addr_len < 36)
            return bad(why, "PROXY v2 header too short for IPv6 addresses");
        memset(&hdr->source, 0, sizeof(hdr->source));
        sin6->sin6_family = AF_INET6;
        memcpy(&sin6->sin6_addr, a, 16);
        memcpy(&sin6->sin6_port, a + 32, 2);
        hdr->has_source = true;
        return SG_PROXY_DONE;
    }
    default:
        return bad(why, "PROXY v2 header with an unknown address family");
    }
}

SgProxyStatus
sg_proxy_protocol_parse(const uint8_t *data, size_t len, SgProxyHeader *hdr, const char **why)
{
    if (len == 0)
        return SG_PROXY_MORE;
    if (data[0] == 'P') {
        if (!starts_like(data, len, V1_PREFIX, V1_PREFIX_LEN))
            return bad(why, "not a PROXY protocol header");
        return parse_v1(data, len, hdr, why);
    }
    if (data[0] == v2_signature[0]) {
        if (!starts_like(data, len, v2_signature, sizeof(v2_signature)))
            return bad(why, "not a PROXY protocol header");
        return parse_v2(data, len, hdr, why);
    }
    return bad(why, "not a PROXY protocol header");
}
