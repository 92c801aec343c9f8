/* SPDX-License-Identifier: Apache-2.0 */
/* client_addr.h - who the client is: [server] trusted_proxies, and the one
 * decision of a connection's client address.
 *
 * A console's client address is what the log, the hub (and so limits,
 * metrics and /consoles) record. It is decided in one place,
 * sg_client_decide(), from what the connection says and what the operator
 * trusts:
 *
 * 1. The connection's address: the PROXY protocol header's source when
 *    one was read (acceptor.c reads one only from a trusted peer), else
 *    the TCP peer. This is the party that sent the HTTP request.
 * 2. If, and only if, that address is in trusted_proxies, its
 *    X-Forwarded-For and X-Forwarded-Proto are believed. X-Forwarded-For
 *    is walked from the right (nginx's real_ip_recursive on): each
 *    address that is itself trusted is a proxy and is skipped; the first
 *    one that is not is the client. If every one is trusted, the leftmost
 *    is. An element that is not an IP address ends the walk: the client is
 *    then the last trusted hop, since nothing it forwarded can be read.
 *    X-Forwarded-Proto's first element is the scheme the browser used.
 * 3. From anyone else, X-Forwarded-* are ignored, and the caller logs
 *    once that they were (SgClientView.ignored_forwarded).
 *
 * Pure: no socket, no log; unit-tested in check_client_addr.
 */
#pragma once

#include <stdbool.h>
#include <sys/socket.h>

#include <glib.h>

typedef struct SgTrustedProxies SgTrustedProxies;

/* Parses a list of IPv4 and IPv6 addresses and CIDR blocks ("10.0.0.0/8",
 * "192.0.2.7", "2001:db8::/32", "::1"), separated by commas and/or
 * blanks; "" is the empty list, which trusts nobody. Host bits set under
 * the prefix are an error (a typo, not a block). NULL with @error naming
 * the element that is wrong. */
SgTrustedProxies *sg_trusted_proxies_parse(const char *value, GError **error);
void sg_trusted_proxies_free(SgTrustedProxies *tp);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SgTrustedProxies, sg_trusted_proxies_free)

/* How many addresses and blocks are listed; 0 for NULL. */
guint sg_trusted_proxies_count(const SgTrustedProxies *tp);

/* Whether @ss (AF_INET or AF_INET6; an IPv4-mapped IPv6 address counts as
 * its IPv4 address) is listed. FALSE for NULL lists and other families. */
bool sg_trusted_proxies_match(const SgTrustedProxies *tp, const struct sockaddr_storage *ss);

/* Parses one X-Forwarded-For element into @ss (port 0): "192.0.2.1",
 * "192.0.2.1:80", "2001:db8::1", "[2001:db8::1]", "[2001:db8::1]:80",
 * blanks around it allowed. FALSE for anything else ("unknown", names,
 * obfuscated identifiers of RFC 7239). */
bool sg_client_parse_forwarded_element(const char *s, gsize len, struct sockaddr_storage *ss);

/* What sg_client_decide() found. */
typedef struct {
    /* The client: "addr:port" when the port is known (the TCP peer, a
     * PROXY header), "addr" when it came from X-Forwarded-For. Never NULL. */
    char *client;
    /* X-Forwarded-Proto when believed, else NULL. */
    char *forwarded_proto;
    /* X-Forwarded-For or -Proto was sent but not believed: the sender is
     * not in trusted_proxies. */
    bool ignored_forwarded;
} SgClientView;

/* Decides the client of a request from @conn (the PROXY header's source,
 * or the TCP peer; NULL if unknown), the X-Forwarded-For fields @xff
 * (NULL-terminated, each field possibly a comma-separated list, in the
 * order received; NULL for none) and X-Forwarded-Proto @xfp (NULL if
 * absent), under @tp (NULL: trust nobody). See the rule above. */
void sg_client_decide(const SgTrustedProxies *tp, const struct sockaddr_storage *conn,
                      const char *const *xff, const char *xfp, SgClientView *out);
void sg_client_view_clear(SgClientView *view);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(SgClientView, sg_client_view_clear)
