/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_connect_reply.c - libFuzzer target for an HTTP proxy's reply to
 * CONNECT (Nova's internal_access_path), as upstream.c reads it before the
 * SPICE stream: sg_upstream_parse_connect_reply().
 *
 * The input is the first bytes the proxy sends. Besides crashes, it
 * checks upstream.h's promises, on which the relay relies not to lose or
 * take a byte of SPICE: OK only for a 1.x 200 status line, with a header
 * that ends in the first blank line and within SG_CONNECT_REPLY_MAX_BYTES;
 * shorter prefixes of it AGAIN; AGAIN never at the limit; a reason
 * exactly with INVALID.
 */
#include "autoconfig.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "upstream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *buf = (const char *)data;
    gsize header_len = 0;
    const char *why = NULL;

    if (size > 2 * SG_CONNECT_REPLY_MAX_BYTES)
        return 0;
    switch (sg_upstream_parse_connect_reply(buf, size, &header_len, &why)) {
    case SG_PARSE_AGAIN:
        if (why != NULL || header_len != 0 || size >= SG_CONNECT_REPLY_MAX_BYTES)
            abort();
        break;
    case SG_PARSE_INVALID:
        if (why == NULL || header_len != 0)
            abort();
        break;
    case SG_PARSE_OK:
        if (why != NULL || header_len < 16 || header_len > size ||
            header_len > SG_CONNECT_REPLY_MAX_BYTES ||
            memcmp(buf + header_len - 4, "\r\n\r\n", 4) != 0 ||
            (memcmp(buf, "HTTP/1.0 200", 12) != 0 && memcmp(buf, "HTTP/1.1 200", 12) != 0) ||
            (buf[12] != ' ' && buf[12] != '\r') || memchr(buf, '\0', header_len) != NULL)
            abort();
        /* Every prefix of a short header; of a long one the first bytes,
         * a middle one and the last few (each call reads its prefix). */
        for (gsize i = 0; i < header_len; i = (header_len > 64 && i == 15) ? header_len / 2
                                            : (header_len > 64 && i == header_len / 2)
                                                ? header_len - 5 : i + 1) {
            gsize h = 0;
            const char *w = NULL;

            if (sg_upstream_parse_connect_reply(buf, i, &h, &w) != SG_PARSE_AGAIN)
                abort();
        }
        break;
    default:
        abort();
    }
    return 0;
}
