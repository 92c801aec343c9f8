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
        out->common_caps0 = read_le32(mess + OFF_NUM_COMMON_CAPS) > 0
                                ? read_le32(mess + caps_offset)
                                : 0;
        out->total_bytes = total;
    }
    if (consumed != NULL)
        *consumed = total;
    return SG_PARSE_OK;
}

/* --- the start of any channel's link reply ------------------------------------ */

G_STATIC_ASSERT(SG_LINK_REPLY_HEAD_BYTES == HEADER_BYTES + 4);

SgParseResult
sg_spice_link_reply_error(const guint8 *buf, gsize len, uint32_t *error, const char **reason)
{
    const uint32_t magic = SPICE_MAGIC;
    guint8 magic_bytes[sizeof(magic)];

    if (reason != NULL)
        *reason = NULL;
    if (len > 0 && buf == NULL)
        return fail(reason, "no buffer");
    memcpy(magic_bytes, &magic, sizeof(magic));
    for (gsize i = 0; i < len && i < sizeof(magic_bytes); i++) {
        if (buf[OFF_MAGIC + i] != magic_bytes[i])
            return fail(reason, "link reply: bad magic");
    }
    if (len >= OFF_MAJOR + 4 && read_le32(buf + OFF_MAJOR) != SPICE_VERSION_MAJOR)
        return fail(reason, "link reply: other major version");
    /* An error reply is a whole SpiceLinkReply too (spice-server's
     * reds_send_link_error()): never less than its error field. */
    if (len >= HEADER_BYTES && read_le32(buf + OFF_SIZE) < 4)
        return fail(reason, "link reply: too small");
    if (len < SG_LINK_REPLY_HEAD_BYTES)
        return SG_PARSE_AGAIN;
    if (error != NULL)
        *error = read_le32(buf + HEADER_BYTES);
    return SG_PARSE_OK;
}

/* --- the server's side of a main channel ------------------------------------ */

#define REPLY_BYTES sizeof(SpiceLinkReply)           /* 178 */
#define OFF_REPLY_ERROR 0
#define OFF_REPLY_NUM_COMMON_CAPS (4 + SPICE_TICKET_PUBKEY_BYTES)
#define OFF_REPLY_CAPS_OFFSET (OFF_REPLY_NUM_COMMON_CAPS + 8)
#define MINI_HEADER_BYTES sizeof(SpiceMiniDataHeader)  /* 6: type, size */
#define FULL_HEADER_BYTES sizeof(SpiceDataHeader)      /* 18: serial, type, size, sub_list */
/* spice-server sends MAIN_INIT first; allow a few others before it. */
#define MAX_MESSAGES_BEFORE_INIT 8

G_STATIC_ASSERT(sizeof(SpiceLinkReply) == 178);
G_STATIC_ASSERT(sizeof(SpiceMiniDataHeader) == 6);
G_STATIC_ASSERT(sizeof(SpiceDataHeader) == 18);

enum {
    SCAN_REPLY_HEADER = 0,
    SCAN_REPLY_BODY,
    SCAN_RESULT,
    SCAN_MESSAGE_HEADER,
    SCAN_SKIP_BODY,
    SCAN_INIT_BODY,
};

static uint16_t
read_le16(const guint8 *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

void
sg_spice_main_scan_init(SgSpiceMainScan *scan, const SgSpiceLink *client_link)
{
    memset(scan, 0, sizeof(*scan));
    scan->stage = SCAN_REPLY_HEADER;
    scan->need = HEADER_BYTES;
    scan->client_mini = (client_link->common_caps0 & (1u << SPICE_COMMON_CAP_MINI_HEADER)) != 0;
}

static void
expect(SgSpiceMainScan *scan, uint8_t stage, uint32_t need)
{
    scan->stage = stage;
    scan->need = need;
    scan->have = 0;
}

/* One stage's bytes are complete in scan->buf: check them and move on. */
static SgParseResult
scan_step(SgSpiceMainScan *scan, uint32_t *session_id, const char **reason)
{
    const uint32_t magic = SPICE_MAGIC;
    uint32_t size, ncaps, caps_offset, server_caps0 = 0;
    uint16_t type;

    switch (scan->stage) {
    case SCAN_REPLY_HEADER:
        if (memcmp(scan->buf + OFF_MAGIC, &magic, sizeof(magic)) != 0)
            return fail(reason, "link reply: bad magic");
        if (read_le32(scan->buf + OFF_MAJOR) != SPICE_VERSION_MAJOR)
            return fail(reason, "link reply: other major version");
        size = read_le32(scan->buf + OFF_SIZE);
        if (size < REPLY_BYTES || size > SG_MAIN_SCAN_REPLY_MAX)
            return fail(reason, "link reply: unexpected size");
        expect(scan, SCAN_REPLY_BODY, size);
        return SG_PARSE_AGAIN;
    case SCAN_REPLY_BODY:
        if (read_le32(scan->buf + OFF_REPLY_ERROR) != SPICE_LINK_ERR_OK)
            return fail(reason, "link refused by the SPICE server");
        ncaps = read_le32(scan->buf + OFF_REPLY_NUM_COMMON_CAPS);
        caps_offset = read_le32(scan->buf + OFF_REPLY_CAPS_OFFSET);
        if (ncaps > 0 && caps_offset >= REPLY_BYTES && caps_offset <= scan->need - 4)
            server_caps0 = read_le32(scan->buf + caps_offset);
        scan->mini = scan->client_mini &&
                     (server_caps0 & (1u << SPICE_COMMON_CAP_MINI_HEADER)) != 0;
        expect(scan, SCAN_RESULT, 4);
        return SG_PARSE_AGAIN;
    case SCAN_RESULT:
        /* Anything but OK: a refused ticket, or SASL data (not followed). */
        if (read_le32(scan->buf) != SPICE_LINK_ERR_OK)
            return fail(reason, "no successful link result");
        expect(scan, SCAN_MESSAGE_HEADER, scan->mini ? MINI_HEADER_BYTES : FULL_HEADER_BYTES);
        return SG_PARSE_AGAIN;
    case SCAN_MESSAGE_HEADER:
        type = read_le16(scan->buf + (scan->mini ? 0 : 8));
        size = read_le32(scan->buf + (scan->mini ? 2 : 10));
        if (type == SPICE_MSG_MAIN_INIT) {
            if (size < 4)
                return fail(reason, "MAIN_INIT too short");
            expect(scan, SCAN_INIT_BODY, 4);
            return SG_PARSE_AGAIN;
        }
        if (++scan->messages > MAX_MESSAGES_BEFORE_INIT)
            return fail(reason, "no MAIN_INIT among the first messages");
        scan->skip = size;
        expect(scan, size > 0 ? SCAN_SKIP_BODY : SCAN_MESSAGE_HEADER,
               scan->mini ? MINI_HEADER_BYTES : FULL_HEADER_BYTES);
        return SG_PARSE_AGAIN;
    case SCAN_INIT_BODY:
        *session_id = read_le32(scan->buf);
        return SG_PARSE_OK;
    default:
        return fail(reason, "scan already over");
    }
}

SgParseResult
sg_spice_main_scan_feed(SgSpiceMainScan *scan, const guint8 *data, gsize len,
                        uint32_t *session_id, const char **reason)
{
    if (reason != NULL)
        *reason = NULL;
    while (len > 0) {
        gsize take;
        SgParseResult res;

        if (scan->stage == SCAN_SKIP_BODY) {
            take = MIN(len, (gsize)scan->skip);
            scan->skip -= (uint32_t)take;
            data += take;
            len -= take;
            if (scan->skip == 0)
                expect(scan, SCAN_MESSAGE_HEADER,
                       scan->mini ? MINI_HEADER_BYTES : FULL_HEADER_BYTES);
            continue;
        }
        take = MIN(len, (gsize)(scan->need - scan->have));
        memcpy(scan->buf + scan->have, data, take);
        scan->have += (uint32_t)take;
        data += take;
        len -= take;
        if (scan->have < scan->need)
            break;
        res = scan_step(scan, session_id, reason);
        if (res != SG_PARSE_AGAIN) {
            scan->stage = 0xff;   /* over: a later feed fails */
            return res;
        }
    }
    return SG_PARSE_AGAIN;
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

/* Every name sg_spice_channel_name() knows, tried against @name: the one
 * list of names stays the switch above. */
bool
sg_spice_channel_type_of(const char *name, uint8_t *channel_type)
{
    for (unsigned t = 1; t <= UINT8_MAX; t++) {
        const char *known = sg_spice_channel_name((uint8_t)t);

        if (!g_str_equal(known, "unknown") && g_ascii_strcasecmp(known, name) == 0) {
            *channel_type = (uint8_t)t;
            return true;
        }
    }
    return false;
}

char *
sg_spice_channel_set_names(SgSpiceChannelSet set)
{
    GString *out = g_string_new(NULL);

    for (unsigned t = 1; t < 32; t++) {
        if (sg_spice_channel_allowed(set, (uint8_t)t) &&
            !g_str_equal(sg_spice_channel_name((uint8_t)t), "unknown"))
            g_string_append_printf(out, "%s%s", out->len > 0 ? ", " : "",
                                   sg_spice_channel_name((uint8_t)t));
    }
    return g_string_free(out, FALSE);
}
