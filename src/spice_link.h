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
