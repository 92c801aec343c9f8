/* SPDX-License-Identifier: Apache-2.0 */
/* reply_check.h - one check of sg_spice_link_reply_error() that both SPICE
 * server targets (fuzz_spice_link, fuzz_spice_server) run on the bytes
 * they give the main channel's scan. */
#pragma once

#include <stdint.h>
#include <stdlib.h>

#include <spice/protocol.h>

#include "spice_link.h"

/* The start of the server's link reply as the TLS link guard reads it
 * (sg_spice_link_reply_error(), on any channel), checked against itself
 * byte by byte and against the main channel's scan @scan_result of the
 * same bytes: the scan never takes a reply the guard refuses, and a link
 * the scan follows to MAIN_INIT was answered SPICE_LINK_ERR_OK. */
static inline void
check_reply_error(const uint8_t *reply, size_t len, SgParseResult scan_result)
{
    uint32_t error = 0xdeadbeef;
    const char *why = NULL;
    SgParseResult r = sg_spice_link_reply_error(reply, len, &error, &why);

    if ((r == SG_PARSE_INVALID) != (why != NULL))
        abort();
    if (r == SG_PARSE_AGAIN && len >= SG_LINK_REPLY_HEAD_BYTES)
        abort();
    if (r == SG_PARSE_OK && (len < SG_LINK_REPLY_HEAD_BYTES ||
                             error != ((uint32_t)reply[16] | (uint32_t)reply[17] << 8 |
                                       (uint32_t)reply[18] << 16 | (uint32_t)reply[19] << 24)))
        abort();
    /* Byte by byte: every shorter prefix AGAIN until a verdict, and the
     * verdict once reached stays (the guard reads as bytes come). */
    for (size_t i = 0; i < len && i <= SG_LINK_REPLY_HEAD_BYTES; i++) {
        SgParseResult p = sg_spice_link_reply_error(reply, i, NULL, NULL);

        if (p == SG_PARSE_OK && i < SG_LINK_REPLY_HEAD_BYTES)
            abort();
        if (p == SG_PARSE_INVALID && r != SG_PARSE_INVALID)
            abort();
    }
    if (r == SG_PARSE_INVALID && scan_result == SG_PARSE_OK)
        abort();
    if (scan_result == SG_PARSE_OK && (r != SG_PARSE_OK || error != SPICE_LINK_ERR_OK))
        abort();
}
