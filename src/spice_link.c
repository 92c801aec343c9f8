/* SPDX-License-Identifier: Apache-2.0 */
/* spice_link.c - parser for the SPICE link message (SpiceLinkHeader +
 * SpiceLinkMess + capability words), the first bytes of every channel.
 *
 * Owns nothing: it reads a caller's buffer and fills a caller's struct. It
 * must not allocate, log or do I/O, so that the websocket side can run it on
 * every read and the fuzzer can run it millions of times. Fields are read
 * little-endian byte by byte (the wire order), never by casting the buffer,
 * which may be unaligned and comes from the peer.
 */
#include "autoconfig.h"

#include <stdint.h>
#include <string.h>

#include <glib.h>
#include <spice/protocol.h>

#include "spice_link.h"

#define HEADER_BYTES sizeof(SpiceLinkHeader)   /* 16 */
#define MESS_BYTES sizeof(SpiceLinkMess)       /* 18 */

/* Wire offsets, spelled out from the packed structs in spice/protocol.h. */
#define OFF_MAGIC 0
#define OFF_MAJOR 4
#define OFF_MINOR 8
#define OFF_SIZE 12
#define OFF_CONNECTION_ID 0
#define OFF_CHANNEL_TYPE 4
#define OFF_CHANNEL_ID 5
#define OFF_NUM_COMMON_CAPS 6
#define OFF_NUM_CHANNEL_CAPS 10
#define OFF_CAPS_OFFSET 14

G_STATIC_ASSERT(sizeof(SpiceLinkHeader) == 16);
G_STATIC_ASSERT(sizeof(SpiceLinkMess) == 18);
G_STATIC_ASSERT(HEADER_BYTES + MESS_BYTES <= SG_LINK_MAX_BYTES);

static uint32_t
read_le32(const guint8 *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}


static SgParseResult
fail(const char **reason, const char *why)
{
    if (reason != NULL)
        *reason = why;
    return SG_PARSE_INVALID;
}

SgParseResult
sg_spice_link_parse(const guint8 *buf, gsize len, SgSpiceLink *out,
                    gsize *consumed, const char **reason)
{
    /* SPICE_MAGIC is built so that its in-memory bytes read "REDQ" on any
     * host, which are exactly the wire bytes. */
    const uint32_t magic = SPICE_MAGIC;
    guint8 magic_bytes[sizeof(magic)];
    const guint8 *mess;
    uint32_t size;
    uint32_t caps_offset;
    uint64_t caps_end;
    gsize total;
    gsize i;

    if (consumed != NULL)
        *consumed = 0;
    if (reason != NULL)
        *reason = NULL;
    if (len > 0 && buf == NULL)
        return fail(reason, "no buffer");
    memcpy(magic_bytes, &magic, sizeof(magic));

    /* Judge every byte as soon as it arrives: a browser that sends "GET /"
     * or TLS into a ws:// channel is refused at once, not at the timeout. */
    for (i = 0; i < len && i < sizeof(magic_bytes); i++) {
        if (buf[OFF_MAGIC + i] != magic_bytes[i])
            return fail(reason, "bad magic (not a SPICE link message)");
    }
    if (len >= OFF_MAJOR + 4 && read_le32(buf + OFF_MAJOR) != SPICE_VERSION_MAJOR)
        return fail(reason, "unsupported SPICE protocol major version");
    if (len < HEADER_BYTES)
        return SG_PARSE_AGAIN;

    /* Cap before waiting for the body: a header announcing 1 MB is refused
     * now instead of making us buffer toward it. */
    size = read_le32(buf + OFF_SIZE);
    if (size < MESS_BYTES)
        return fail(reason, "link message body too small");
    if (size > SG_LINK_MAX_BYTES - HEADER_BYTES)
        return fail(reason, "link message too large");
    total = HEADER_BYTES + (gsize)size;
    if (len < total)
        return SG_PARSE_AGAIN;

    mess = buf + HEADER_BYTES;
    /* caps_offset counts from the start of SpiceLinkMess, like `size`. The
     * sum is done in 64 bits: two counts near 2^32 must not wrap to "fits". */
    caps_offset = read_le32(mess + OFF_CAPS_OFFSET);
    if (caps_offset < MESS_BYTES)
        return fail(reason, "capabilities overlap the link message");
    caps_end = (uint64_t)caps_offset +
               4 * ((uint64_t)read_le32(mess + OFF_NUM_COMMON_CAPS) +
                    (uint64_t)read_le32(mess + OFF_NUM_CHANNEL_CAPS));
    if (caps_end > size)
        return fail(reason, "capabilities overrun the link message");
    if (mess[OFF_CHANNEL_TYPE] == 0)
        return fail(reason, "channel type 0");

    if (out != NULL) {
        out->major = read_le32(buf + OFF_MAJOR);
        out->minor = read_le32(buf + OFF_MINOR);
        out->connection_id = read_le32(mess + OFF_CONNECTION_ID);
        out->channel_type = mess[OFF_CHANNEL_TYPE];
        out->channel_id = mess[OFF_CHANNEL_ID];
        out->num_common_caps = read_le32(mess + OFF_NUM_COMMON_CAPS);
        out->num_channel_caps = read_le32(mess + OFF_NUM_CHANNEL_CAPS);
        out->total_bytes = total;
    }
    if (consumed != NULL)
        *consumed = total;
    return SG_PARSE_OK;
}

const char *
sg_spice_channel_name(uint8_t channel_type)
{
    switch (channel_type) {
    case SPICE_CHANNEL_MAIN:
        return "main";
    case SPICE_CHANNEL_DISPLAY:
        return "display";
    case SPICE_CHANNEL_INPUTS:
        return "inputs";
    case SPICE_CHANNEL_CURSOR:
        return "cursor";
    case SPICE_CHANNEL_PLAYBACK:
        return "playback";
    case SPICE_CHANNEL_RECORD:
        return "record";
    case SPICE_CHANNEL_TUNNEL:
        return "tunnel";
    case SPICE_CHANNEL_SMARTCARD:
        return "smartcard";
    case SPICE_CHANNEL_USBREDIR:
        return "usbredir";
    case SPICE_CHANNEL_PORT:
        return "port";
    case SPICE_CHANNEL_WEBDAV:
        return "webdav";
    default:
        return "unknown";
    }
}
