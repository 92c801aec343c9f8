/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_spice_link.c - libFuzzer target for the SPICE link message parser.
 *
 * Besides crashes, it checks the parser's promises: AGAIN never once the
 * cap is reached, OK only within the cap and the input, the same answer
 * for the message alone, and AGAIN for it one byte short. The same bytes
 * then go, as a SPICE server's side of a main channel, through the
 * session-id scan, whole and in two pieces, which must agree.
 *
 * An input may also be a whole exchange: a link message that parses, then
 * the SPICE server's answer to it (link reply, result, messages), which is
 * read as spicegate reads it: through a scan started from that link
 * message, fed whole and a byte at a time, which must agree, and through
 * sg_spice_link_reply_error() (the TLS link guard's reading of any
 * channel's reply: SPICE_LINK_ERR_NEED_SECURED), checked against the scan.
 * A new form of server answer needs a corpus file, not a new target;
 * fuzz_spice_server cuts the server's stream in random pieces.
 */
#include "autoconfig.h"

#include <stdint.h>
#include <stdlib.h>

#include <glib.h>

#include <spice/protocol.h>

#include "reply_check.h"
#include "spice_link.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The server's answer @reply to the browser's @link, whole and a byte at a
 * time: the same verdict, session id and reason. */
static void
check_exchange(const SgSpiceLink *link, const uint8_t *reply, size_t len)
{
    SgSpiceMainScan whole, bytes;
    uint32_t id_whole = 0, id_bytes = 0;
    const char *why_whole = NULL, *why_bytes = NULL;
    SgParseResult r_whole, r_bytes = SG_PARSE_AGAIN;

    sg_spice_main_scan_init(&whole, link);
    sg_spice_main_scan_init(&bytes, link);
    r_whole = sg_spice_main_scan_feed(&whole, reply, len, &id_whole, &why_whole);
    if ((r_whole == SG_PARSE_INVALID) != (why_whole != NULL))
        abort();
    for (size_t i = 0; i < len && r_bytes == SG_PARSE_AGAIN; i++)
        r_bytes = sg_spice_main_scan_feed(&bytes, reply + i, 1, &id_bytes, &why_bytes);
    if (r_bytes != r_whole || id_bytes != id_whole || g_strcmp0(why_bytes, why_whole) != 0)
        abort();
    check_reply_error(reply, len, r_whole);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    SgSpiceLink link;
    SgSpiceLink again;
    gsize consumed = 0;
    gsize consumed_again = 0;
    const char *reason = NULL;

    switch (sg_spice_link_parse(data, size, &link, &consumed, &reason)) {
    case SG_PARSE_AGAIN:
        if (size >= SG_LINK_MAX_BYTES || consumed != 0)
            abort();
        break;
    case SG_PARSE_INVALID:
        if (reason == NULL || consumed != 0)
            abort();
        break;
    case SG_PARSE_OK:
        if (consumed != link.total_bytes || consumed > size || consumed > SG_LINK_MAX_BYTES ||
            link.channel_type == 0 || sg_spice_channel_name(link.channel_type) == NULL)
            abort();
        if (sg_spice_link_parse(data, consumed, &again, &consumed_again, NULL) != SG_PARSE_OK ||
            consumed_again != consumed || again.channel_type != link.channel_type)
            abort();
        if (sg_spice_link_parse(data, consumed - 1, NULL, NULL, NULL) != SG_PARSE_AGAIN)
            abort();
        if (size - consumed <= 4096)
            check_exchange(&link, data + consumed, size - consumed);
        break;
    default:
        abort();
    }

    {
        SgSpiceLink client = { .common_caps0 = size > 0 && (data[0] & 1) ? 1u << 3 : 0 };
        SgSpiceMainScan whole, split;
        uint32_t id_whole = 0, id_split = 0;
        SgParseResult r_whole, r_split;
        gsize cut = size / 2;

        sg_spice_main_scan_init(&whole, &client);
        sg_spice_main_scan_init(&split, &client);
        r_whole = sg_spice_main_scan_feed(&whole, data, size, &id_whole, &reason);
        if (r_whole == SG_PARSE_INVALID && reason == NULL)
            abort();
        r_split = sg_spice_main_scan_feed(&split, data, cut, &id_split, NULL);
        if (r_split == SG_PARSE_AGAIN)
            r_split = sg_spice_main_scan_feed(&split, data + cut, size - cut, &id_split, NULL);
        if (r_split != r_whole || id_split != id_whole)
            abort();
    }
    return 0;
}
