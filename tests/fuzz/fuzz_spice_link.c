/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_spice_link.c - libFuzzer target for the SPICE link message parser.
 *
 * Besides crashes, it checks the parser's promises: AGAIN never once the
 * cap is reached, OK only within the cap and the input, the same answer
 * for the message alone, and AGAIN for it one byte short.
 */
#include "autoconfig.h"

#include <stdint.h>
#include <stdlib.h>

#include <glib.h>

#include "spice_link.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
        break;
    default:
        abort();
    }
    return 0;
}
