/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_spice_server.c - libFuzzer target for what a SPICE server sends on
 * a main channel, as spicegate reads it (sg_spice_main_scan_feed()): the
 * link reply (its error code, capabilities and size), the link result,
 * then messages up to SPICE_MSG_MAIN_INIT and its session id; and the
 * reply's start as the TLS link guard reads it on any channel
 * (sg_spice_link_reply_error(): NEED_SECURED), checked against the scan.
 *
 * The input: one byte of flags (bit 0: the browser's link message offered
 * mini headers), two bytes that seed the sizes of the pieces, then the
 * server's bytes. A socket hands them over in any pieces, so the scan is
 * fed the stream three ways: whole, in pieces of seeded sizes (1 to 300
 * bytes, now and then one byte), and, for short inputs, a byte at a time.
 * Besides crashes, it checks sg_spice_main_scan_feed()'s promises: the
 * same verdict, session id and reason however the stream is cut, a reason
 * with every INVALID, and a scan that is over stays over.
 */
#include "autoconfig.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include <spice/protocol.h>

#include "reply_check.h"
#include "spice_link.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    SgParseResult result;
    uint32_t session_id;
    const char *reason;
} Verdict;

/* Feeds @stream in pieces: @seed 0 is whole, 1 byte by byte, else a
 * xorshift sequence of sizes. Stops at the first answer that is not AGAIN,
 * and then checks that one more byte is refused. */
static Verdict
scan(const SgSpiceLink *client, const uint8_t *stream, size_t len, uint32_t seed)
{
    SgSpiceMainScan *s = g_new(SgSpiceMainScan, 1);   /* heap: ASan sees its bounds */
    Verdict v = { SG_PARSE_AGAIN, 0, NULL };
    size_t pos = 0;

    sg_spice_main_scan_init(s, client);
    while (pos < len) {
        size_t piece;

        if (seed == 0) {
            piece = len;
        } else if (seed == 1) {
            piece = 1;
        } else {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            piece = (seed & 7) == 0 ? 1 : 1 + (seed >> 8) % 300;
        }
        piece = MIN(piece, len - pos);
        /* An exact copy: a read past the piece is an ASan report. */
        {
            g_autofree uint8_t *copy = g_memdup2(stream + pos, piece);

            v.result = sg_spice_main_scan_feed(s, copy, piece, &v.session_id, &v.reason);
        }
        pos += piece;
        if (v.result != SG_PARSE_AGAIN)
            break;
        if (v.reason != NULL)
            abort();
    }
    if (v.result == SG_PARSE_INVALID && v.reason == NULL)
        abort();
    if (v.result != SG_PARSE_AGAIN) {
        const uint8_t more = 0;
        uint32_t id = 0;
        const char *why = NULL;

        if (sg_spice_main_scan_feed(s, &more, 1, &id, &why) != SG_PARSE_INVALID || why == NULL)
            abort();
    }
    g_free(s);
    return v;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    SgSpiceLink client = { 0 };
    Verdict whole, pieces;
    uint32_t seed;

    if (size < 3)
        return 0;
    client.channel_type = 1;
    client.common_caps0 = (data[0] & 1) ? 1u << 3 : 0;   /* SPICE_COMMON_CAP_MINI_HEADER */
    seed = 2u + ((uint32_t)data[1] << 8 | data[2]);
    data += 3;
    size -= 3;

    whole = scan(&client, data, size, 0);
    pieces = scan(&client, data, size, seed);
    if (whole.result != pieces.result || whole.session_id != pieces.session_id ||
        g_strcmp0(whole.reason, pieces.reason) != 0)
        abort();
    check_reply_error(data, size, whole.result);
    if (size <= 1024) {
        Verdict bytes = scan(&client, data, size, 1);

        if (whole.result != bytes.result || whole.session_id != bytes.session_id ||
            g_strcmp0(whole.reason, bytes.reason) != 0)
            abort();
    }
    return 0;
}
