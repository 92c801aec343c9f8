/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_proxy_protocol.c - libFuzzer target for the PROXY protocol parser and
 * the X-Forwarded-For walk: the two places where a peer's bytes name the
 * client.
 *
 * The input is the start of a connection. Besides crashes, it checks
 * proxy_protocol.h's promises, on which the acceptor relies not to take a
 * byte of TLS or HTTP: every prefix of a header is MORE, a DONE header is
 * no longer than the input and as long for every longer input, and MORE
 * never covers more than SG_PROXY_MAX_BYTES. The same bytes, as an
 * X-Forwarded-For value from a trusted proxy, must give a client that is
 * an address.
 */
#include "autoconfig.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "client_addr.h"
#include "proxy_protocol.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_header(const uint8_t *data, size_t size)
{
    SgProxyHeader hdr;
    const char *why = NULL;
    SgProxyStatus status = sg_proxy_protocol_parse(data, size, &hdr, &why);

    if (status == SG_PROXY_BAD && why == NULL)
        abort();
    if (status == SG_PROXY_MORE && size >= SG_PROXY_MAX_BYTES)
        abort();
    if (status != SG_PROXY_DONE)
        return;
    if (hdr.length > size || hdr.length < SG_PROXY_MIN_BYTES || hdr.length > SG_PROXY_MAX_BYTES)
        abort();
    if (hdr.version == 1 && hdr.length > SG_PROXY_V1_MAX_BYTES)
        abort();
    if (hdr.has_source && hdr.source.ss_family != AF_INET && hdr.source.ss_family != AF_INET6)
        abort();
    /* Every shorter prefix was MORE (so the acceptor consumed only header
     * bytes), and the header alone parses the same. */
    for (size_t i = 0; i < hdr.length; i++) {
        SgProxyHeader h;
        const char *w = NULL;

        if (sg_proxy_protocol_parse(data, i, &h, &w) != SG_PROXY_MORE)
            abort();
    }
    {
        SgProxyHeader h;
        const char *w = NULL;

        if (sg_proxy_protocol_parse(data, hdr.length, &h, &w) != SG_PROXY_DONE ||
            h.length != hdr.length || h.has_source != hdr.has_source)
            abort();
    }
}

static void
check_forwarded_for(const uint8_t *data, size_t size)
{
    static SgTrustedProxies *tp;
    g_autofree char *value = g_strndup((const char *)data, size);
    const char *const xff[] = { value, NULL };
    struct sockaddr_storage conn = { 0 };
    SgClientView view;

    if (tp == NULL)
        tp = sg_trusted_proxies_parse("10.0.0.0/8 2001:db8::/32 192.0.2.1", NULL);
    conn.ss_family = AF_INET;
    ((struct sockaddr_in *)&conn)->sin_addr.s_addr = htonl(0x0a000001);
    sg_client_decide(tp, &conn, xff, value, &view);
    /* An address, or the connection's own: never the input's text. */
    if (view.client == NULL || view.ignored_forwarded ||
        (!g_hostname_is_ip_address(view.client) && strcmp(view.client, "10.0.0.1:0") != 0))
        abort();
    sg_client_view_clear(&view);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_header(data, size);
    if (size <= 4096)
        check_forwarded_for(data, size);
    return 0;
}
