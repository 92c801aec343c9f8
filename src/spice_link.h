/* SPDX-License-Identifier: Apache-2.0 */
/* spice_link.h - pure parser for the first message a SPICE client sends.
 *
 * A SPICE connection opens with SpiceLinkHeader (magic "REDQ", protocol
 * major/minor, body size) followed by SpiceLinkMess (connection id, channel
 * type and id, capability counts). spicegate reads it to refuse anything that
 * is not SPICE before a byte reaches a SPICE server, and to log which channel
 * a websocket carries. No I/O, no allocation.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "sg_types.h"

/* 4096: a link message is about 30 bytes plus capabilities; spice-server
 * itself refuses anything bigger, so more means hostile. */
#define SG_LINK_MAX_BYTES 4096

typedef struct {
    uint32_t major;
    uint32_t minor;
    uint32_t connection_id;
    uint8_t channel_type;       /* SPICE_CHANNEL_MAIN, ... */
    uint8_t channel_id;
    uint32_t num_common_caps;
    uint32_t num_channel_caps;
    uint32_t common_caps0;      /* first common capability word, 0 if none */
    gsize total_bytes;          /* header + body: the whole link message */
} SgSpiceLink;

/* Parses the link message at the start of @buf (@len bytes available).
 * OK: *out is filled and *consumed = out->total_bytes (the caller still
 * forwards those bytes; "consumed" only says where the message ends).
 * AGAIN: more bytes are needed (never returned once len >= SG_LINK_MAX_BYTES).
 * INVALID: *reason is a static string suitable for a log line. */
SgParseResult sg_spice_link_parse(const guint8 *buf, gsize len, SgSpiceLink *out,
                                  gsize *consumed, const char **reason);

/* "main", "display", ... or "unknown" for a type this build does not name. */
const char *sg_spice_channel_name(uint8_t channel_type);

/* The start of a SPICE server's answer to a link message, on any channel:
 * SpiceLinkHeader (magic, major version, size) and the first field of
 * SpiceLinkReply, its error (SPICE_LINK_ERR_OK, or e.g.
 * SPICE_LINK_ERR_NEED_SECURED from a server that wants this channel over
 * TLS). */
#define SG_LINK_REPLY_HEAD_BYTES 20

/* Reads the reply's start at @buf (@len bytes). OK: *error is the
 * server's verdict. AGAIN: fewer than SG_LINK_REPLY_HEAD_BYTES and valid
 * so far. INVALID: not a SPICE link reply; *reason says why (static). */
SgParseResult sg_spice_link_reply_error(const guint8 *buf, gsize len, uint32_t *error,
                                        const char **reason);

/* --- channel policy ([spice] channels) ------------------------------------ */

/* A set of channel types: bit T allows type T. SPICE names types 1 to 11;
 * a type above 31 can be in no set, so it is always refused. */
typedef uint32_t SgSpiceChannelSet;

/* The default of [spice] channels: the channel types spice-html5 0.3
 * implements. Its main.js, on SPICE_MSG_MAIN_CHANNELS_LIST, builds
 * SpiceDisplayConn (display 0 only), SpiceInputsConn, SpiceCursorConn,
 * SpicePlaybackConn and SpicePortConn; any other type listed gets a bare
 * SpiceConn that links and then ignores the channel ("not implemented"),
 * and a close on such a child channel does not end the console. */
#define SG_SPICE_CHANNELS_DEFAULT "main, display, inputs, cursor, playback, port"

/* The type SPICE names @name ("usbredir"; ASCII case ignored). False for
 * a name it does not know ("unknown" included). */
bool sg_spice_channel_type_of(const char *name, uint8_t *channel_type);

static inline bool
sg_spice_channel_allowed(SgSpiceChannelSet set, uint8_t channel_type)
{
    return channel_type < 32 && (set & ((SgSpiceChannelSet)1u << channel_type)) != 0;
}

/* "main, display, ..." for the types of @set that SPICE names, in type
 * order (g_free). */
char *sg_spice_channel_set_names(SgSpiceChannelSet set);

/* The SPICE server's side of a main channel, read only as far as the
 * session id it assigns: link reply, link result, then messages up to
 * SPICE_MSG_MAIN_INIT, whose first field is that id. The client puts it
 * into the link message of every other channel of the console
 * (connection_id), so it names the console in every channel's log line.
 * Fed the server's bytes as they pass, in any pieces; keeps no pointer to
 * them. 512: spice-server's link reply is 178 bytes plus a few capability
 * words; anything larger is not worth following. */
#define SG_MAIN_SCAN_REPLY_MAX 512

typedef struct {
    uint8_t stage;
    bool client_mini;           /* the client offered mini headers */
    bool mini;                  /* both sides did: 6-byte message headers */
    uint32_t need;              /* bytes to collect for this stage */
    uint32_t have;
    uint32_t skip;              /* body bytes of a message before MAIN_INIT */
    uint32_t messages;          /* messages seen before MAIN_INIT */
    uint8_t buf[SG_MAIN_SCAN_REPLY_MAX];
} SgSpiceMainScan;

/* Starts a scan for the main channel whose link message was @client_link. */
void sg_spice_main_scan_init(SgSpiceMainScan *scan, const SgSpiceLink *client_link);

/* Reads @len more bytes from the server. OK: *session_id is the id (stop
 * feeding). AGAIN: every byte was used, feed more. INVALID: the stream is
 * not what a main channel that links successfully sends (refused link or
 * ticket, SASL, an odd server); *reason says why; stop feeding. */
SgParseResult sg_spice_main_scan_feed(SgSpiceMainScan *scan, const guint8 *data, gsize len,
                                      uint32_t *session_id, const char **reason);
