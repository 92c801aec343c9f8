/* SPDX-License-Identifier: Apache-2.0 */
/* check_spice_link.c - unit tests for the SPICE link message parser.
 *
 * Messages are built byte by byte here, independently of the parser, from
 * a small spec table; each row of a table is one check loop iteration so a
 * failure names its row.
 */
#include "autoconfig.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <glib.h>
#include <spice/protocol.h>

#include "spice_link.h"

#define HDR 16
#define MESS 18

/* What to put in a link message; build() derives the bytes. */
typedef struct {
    const char *magic;          /* 4 bytes */
    uint32_t major;
    uint32_t minor;
    int64_t size;               /* header.size; AUTO = computed from the caps */
    uint32_t connection_id;
    uint8_t channel_type;
    uint8_t channel_id;
    uint32_t num_common_caps;
    uint32_t num_channel_caps;
    int64_t caps_offset;        /* AUTO = right after SpiceLinkMess */
} LinkSpec;

#define AUTO (-1)

/* Every field of a table row, so no row silently inherits a default. */
#define LINK(magic_, major_, size_, type_, common_, channel_, caps_offset_) \
    { .magic = (magic_), .major = (major_), .minor = SPICE_VERSION_MINOR, .size = (size_), \
      .connection_id = 7, .channel_type = (type_), .channel_id = 0, \
      .num_common_caps = (common_), .num_channel_caps = (channel_), \
      .caps_offset = (caps_offset_) }

static void
put_le32(guint8 *p, uint32_t v)
{
    p[0] = v & 0xff;
    p[1] = (v >> 8) & 0xff;
    p[2] = (v >> 16) & 0xff;
    p[3] = (v >> 24) & 0xff;
}

static LinkSpec
valid_spec(uint8_t channel_type)
{
    LinkSpec spec = {
        .magic = "REDQ",
        .major = SPICE_VERSION_MAJOR,
        .minor = SPICE_VERSION_MINOR,
        .connection_id = 0x12345678,
        .channel_type = channel_type,
        .channel_id = 3,
        .num_common_caps = 1,
        .num_channel_caps = 2,
        .size = AUTO,
        .caps_offset = AUTO,
    };
    return spec;
}

/* Writes the message into a new buffer of header + size bytes (at most
 * @max_body body bytes are materialised, so a huge announced size only
 * costs the header) and returns its length. Caps words are 0xaa-filled. */
static guint8 *
build(const LinkSpec *spec, gsize max_body, gsize *len)
{
    uint32_t caps_offset = spec->caps_offset != AUTO ? (uint32_t)spec->caps_offset : MESS;
    uint64_t natural = (uint64_t)caps_offset +
                       4 * ((uint64_t)spec->num_common_caps + spec->num_channel_caps);
    uint32_t size = spec->size != AUTO ? (uint32_t)spec->size : (uint32_t)natural;
    gsize body = MIN((gsize)size, max_body);
    guint8 *buf = g_malloc0(HDR + MAX(body, MESS));

    memcpy(buf, spec->magic, 4);
    put_le32(buf + 4, spec->major);
    put_le32(buf + 8, spec->minor);
    put_le32(buf + 12, size);
    put_le32(buf + HDR + 0, spec->connection_id);
    buf[HDR + 4] = spec->channel_type;
    buf[HDR + 5] = spec->channel_id;
    put_le32(buf + HDR + 6, spec->num_common_caps);
    put_le32(buf + HDR + 10, spec->num_channel_caps);
    put_le32(buf + HDR + 14, caps_offset);
    if (body > MESS)
        memset(buf + HDR + MESS, 0xaa, body - MESS);
    *len = HDR + body;
    return buf;
}

START_TEST(test_spice_link_parses_valid_main)
{
    LinkSpec spec = valid_spec(SPICE_CHANNEL_MAIN);
    g_autofree guint8 *buf = NULL;
    SgSpiceLink link;
    gsize len;
    gsize consumed = 99;
    const char *reason = "unset";

    buf = build(&spec, SG_LINK_MAX_BYTES, &len);
    ck_assert_uint_eq(len, HDR + MESS + 12);
    ck_assert_int_eq(sg_spice_link_parse(buf, len, &link, &consumed, &reason), SG_PARSE_OK);
    ck_assert_uint_eq(consumed, len);
    ck_assert_uint_eq(link.total_bytes, len);
    ck_assert_uint_eq(link.major, SPICE_VERSION_MAJOR);
    ck_assert_uint_eq(link.minor, SPICE_VERSION_MINOR);
    ck_assert_uint_eq(link.connection_id, 0x12345678);
    ck_assert_uint_eq(link.channel_type, SPICE_CHANNEL_MAIN);
    ck_assert_uint_eq(link.channel_id, 3);
    ck_assert_uint_eq(link.num_common_caps, 1);
    ck_assert_uint_eq(link.num_channel_caps, 2);
    ck_assert_str_eq(sg_spice_channel_name(link.channel_type), "main");
}
END_TEST

/* The browser may send the link message and the next SPICE message in one
 * frame: the parser says where the link message ends and ignores the rest. */
START_TEST(test_spice_link_stops_at_message_end)
{
    LinkSpec spec = valid_spec(SPICE_CHANNEL_DISPLAY);
    g_autofree guint8 *buf = NULL;
    guint8 more[256];
    SgSpiceLink link;
    gsize len;
    gsize consumed = 0;

    buf = build(&spec, SG_LINK_MAX_BYTES, &len);
    memset(more, 0x55, sizeof(more));
    memcpy(more, buf, len);
    ck_assert_int_eq(sg_spice_link_parse(more, sizeof(more), &link, &consumed, NULL),
                     SG_PARSE_OK);
    ck_assert_uint_eq(consumed, len);
    ck_assert_uint_eq(link.total_bytes, len);
}
END_TEST

START_TEST(test_spice_link_again_for_every_prefix)
{
    LinkSpec spec = valid_spec(SPICE_CHANNEL_INPUTS);
    g_autofree guint8 *buf = NULL;
    gsize len;

    spec.num_common_caps = 3;
    buf = build(&spec, SG_LINK_MAX_BYTES, &len);
    for (gsize prefix = 0; prefix < len; prefix++) {
        SgSpiceLink link;
        gsize consumed = 99;
        const char *reason = "unset";
        /* A fresh copy of exactly @prefix bytes, so ASan sees any over-read. */
        g_autofree guint8 *part = g_memdup2(buf, prefix);

        ck_assert_msg(sg_spice_link_parse(part, prefix, &link, &consumed, &reason) ==
                          SG_PARSE_AGAIN,
                      "prefix of %zu bytes", prefix);
        ck_assert_uint_eq(consumed, 0);
    }
    ck_assert_int_eq(sg_spice_link_parse(buf, len, NULL, NULL, NULL), SG_PARSE_OK);
}
END_TEST

START_TEST(test_spice_link_again_for_empty_input)
{
    gsize consumed = 99;

    ck_assert_int_eq(sg_spice_link_parse(NULL, 0, NULL, &consumed, NULL), SG_PARSE_AGAIN);
    ck_assert_uint_eq(consumed, 0);
}
END_TEST

/* Rows that must be INVALID. @avail: how many bytes of the built message
 * the parser gets (0 = all), to show it refuses without waiting. */
typedef struct {
    const char *what;
    LinkSpec spec;
    gsize avail;
} InvalidCase;

#define MAIN SPICE_CHANNEL_MAIN
#define MAJOR SPICE_VERSION_MAJOR
#define CAP_BODY (SG_LINK_MAX_BYTES - HDR)

static const InvalidCase invalid_cases[] = {
    { "http request", LINK("GET ", MAJOR, AUTO, MAIN, 0, 0, AUTO), 4 },
    { "http, first byte only", LINK("GET ", MAJOR, AUTO, MAIN, 0, 0, AUTO), 1 },
    { "tls hello", LINK("\x16\x03\x01\x02", MAJOR, AUTO, MAIN, 0, 0, AUTO), 3 },
    { "magic last byte", LINK("REDX", MAJOR, AUTO, MAIN, 0, 0, AUTO), 0 },
    { "magic lower case", LINK("redq", MAJOR, AUTO, MAIN, 0, 0, AUTO), 0 },
    { "magic big-endian", LINK("QDER", MAJOR, AUTO, MAIN, 0, 0, AUTO), 0 },
    { "major 1", LINK("REDQ", 1, AUTO, MAIN, 0, 0, AUTO), 0 },
    { "major 3, seen at 8 bytes", LINK("REDQ", 3, AUTO, MAIN, 0, 0, AUTO), 8 },
    { "major 0", LINK("REDQ", 0, AUTO, MAIN, 0, 0, AUTO), 8 },
    { "major 2 big-endian", LINK("REDQ", 0x02000000, AUTO, MAIN, 0, 0, AUTO), 0 },
    { "size 0, header only", LINK("REDQ", MAJOR, 0, MAIN, 0, 0, AUTO), 16 },
    { "size one below SpiceLinkMess", LINK("REDQ", MAJOR, MESS - 1, MAIN, 0, 0, AUTO), 0 },
    { "size 1 MB, header only", LINK("REDQ", MAJOR, 1024 * 1024, MAIN, 0, 0, AUTO), 16 },
    { "size cap + 1, header only", LINK("REDQ", MAJOR, CAP_BODY + 1, MAIN, 0, 0, AUTO), 16 },
    { "size cap + 1, all of it", LINK("REDQ", MAJOR, CAP_BODY + 1, MAIN, 0, 0, AUTO), 0 },
    { "size 2^32-16 (wraps total)", LINK("REDQ", MAJOR, 0xfffffff0, MAIN, 0, 0, AUTO), 16 },
    { "size 2^32-1", LINK("REDQ", MAJOR, 0xffffffff, MAIN, 0, 0, AUTO), 16 },
    { "caps_offset 0", LINK("REDQ", MAJOR, 64, MAIN, 0, 0, 0), 0 },
    { "caps_offset 1 below SpiceLinkMess", LINK("REDQ", MAJOR, 64, MAIN, 0, 0, MESS - 1), 0 },
    { "caps_offset past size", LINK("REDQ", MAJOR, 64, MAIN, 0, 0, 65), 0 },
    { "caps_offset 2^32-1", LINK("REDQ", MAJOR, 64, MAIN, 0, 0, 0xffffffff), 0 },
    { "one common cap too many", LINK("REDQ", MAJOR, MESS + 4, MAIN, 2, 0, AUTO), 0 },
    { "one channel cap too many", LINK("REDQ", MAJOR, MESS, MAIN, 0, 1, AUTO), 0 },
    { "4 * common caps wraps 32 bits", LINK("REDQ", MAJOR, MESS, MAIN, 0x40000000, 0, AUTO), 0 },
    { "4 * channel caps wraps 32 bits", LINK("REDQ", MAJOR, MESS, MAIN, 0, 0x40000000, AUTO), 0 },
    { "common + channel caps wrap 32 bits",
      LINK("REDQ", MAJOR, MESS, MAIN, 0x80000000, 0x80000000, AUTO), 0 },
    { "caps_offset + caps wrap 32 bits", LINK("REDQ", MAJOR, MESS, MAIN, 1, 0, 0xfffffffc), 0 },
    { "both counts maximal", LINK("REDQ", MAJOR, 64, MAIN, 0xffffffff, 0xffffffff, AUTO), 0 },
    { "channel type 0", LINK("REDQ", MAJOR, AUTO, 0, 0, 0, AUTO), 0 },
};

START_TEST(test_spice_link_rejects_invalid)
{
    const InvalidCase *c = &invalid_cases[_i];
    LinkSpec spec = c->spec;
    g_autofree guint8 *buf = NULL;
    g_autofree guint8 *part = NULL;
    SgSpiceLink link;
    gsize len;
    gsize avail;
    gsize consumed = 99;
    const char *reason = NULL;

    buf = build(&spec, SG_LINK_MAX_BYTES, &len);
    avail = c->avail != 0 ? c->avail : len;
    ck_assert_uint_le(avail, len);
    part = g_memdup2(buf, avail);
    ck_assert_msg(sg_spice_link_parse(part, avail, &link, &consumed, &reason) ==
                      SG_PARSE_INVALID,
                  "%s: not INVALID", c->what);
    ck_assert_msg(reason != NULL && reason[0] != '\0', "%s: no reason", c->what);
    ck_assert_uint_eq(consumed, 0);
}
END_TEST

/* Boundaries of the size cap and of the caps area, which must pass. */
typedef struct {
    const char *what;
    LinkSpec spec;
    gsize total;
} ValidCase;

static const ValidCase valid_cases[] = {
    { "no caps at all", LINK("REDQ", MAJOR, AUTO, MAIN, 0, 0, AUTO), HDR + MESS },
    { "caps end exactly at size", LINK("REDQ", MAJOR, AUTO, MAIN, 2, 1, AUTO), HDR + MESS + 12 },
    { "slack after the caps", LINK("REDQ", MAJOR, MESS + 10, MAIN, 1, 0, AUTO), HDR + MESS + 10 },
    { "caps after a gap", LINK("REDQ", MAJOR, AUTO, MAIN, 0, 1, MESS + 6), HDR + MESS + 10 },
    { "caps_offset == size, no caps", LINK("REDQ", MAJOR, 40, MAIN, 0, 0, 40), HDR + 40 },
    { "whole message == cap", LINK("REDQ", MAJOR, CAP_BODY, MAIN, 0, 0, AUTO), SG_LINK_MAX_BYTES },
    /* 1015 caps of 4 bytes after a 2-byte gap end exactly at the cap. */
    { "caps fill the cap", LINK("REDQ", MAJOR, AUTO, MAIN, 1014, 1, MESS + 2), SG_LINK_MAX_BYTES },
    { "channel type 255 (unnamed)", LINK("REDQ", MAJOR, AUTO, 255, 1, 2, AUTO), HDR + MESS + 12 },
    { "minor anything", { .magic = "REDQ", .major = MAJOR, .minor = 0xffffffff, .size = AUTO,
                          .channel_type = MAIN, .caps_offset = AUTO }, HDR + MESS },
};

START_TEST(test_spice_link_accepts_boundaries)
{
    const ValidCase *c = &valid_cases[_i];
    g_autofree guint8 *buf = NULL;
    g_autofree guint8 *part = NULL;
    SgSpiceLink link;
    gsize len;
    gsize consumed = 0;
    const char *reason = NULL;

    buf = build(&c->spec, SG_LINK_MAX_BYTES, &len);
    ck_assert_msg(len == c->total, "%s: built %zu bytes", c->what, len);
    ck_assert_msg(sg_spice_link_parse(buf, len, &link, &consumed, &reason) == SG_PARSE_OK,
                  "%s: %s", c->what, reason);
    ck_assert_uint_eq(consumed, c->total);
    ck_assert_uint_eq(link.total_bytes, c->total);
    /* One byte short is still only "not yet". */
    part = g_memdup2(buf, len - 1);
    ck_assert_msg(sg_spice_link_parse(part, len - 1, &link, &consumed, &reason) ==
                      SG_PARSE_AGAIN,
                  "%s: one byte short", c->what);
}
END_TEST

/* AGAIN is never the answer once SG_LINK_MAX_BYTES bytes are there. */
START_TEST(test_spice_link_never_again_at_cap)
{
    g_autofree guint8 *buf = g_malloc0(SG_LINK_MAX_BYTES + 1);
    LinkSpec spec = valid_spec(SPICE_CHANNEL_MAIN);
    g_autofree guint8 *msg = NULL;
    gsize len;

    for (uint32_t size = MESS; size <= SG_LINK_MAX_BYTES; size++) {
        spec.size = size;
        g_free(msg);
        msg = build(&spec, 0, &len);
        memcpy(buf, msg, HDR + MESS);
        for (gsize avail = SG_LINK_MAX_BYTES; avail <= SG_LINK_MAX_BYTES + 1; avail++) {
            ck_assert_msg(sg_spice_link_parse(buf, avail, NULL, NULL, NULL) != SG_PARSE_AGAIN,
                          "size %u, %zu bytes available", size, avail);
        }
    }
}
END_TEST

typedef struct {
    uint8_t type;
    const char *name;
} ChannelName;

static const ChannelName channel_names[] = {
    { 0, "unknown" },
    { SPICE_CHANNEL_MAIN, "main" },
    { SPICE_CHANNEL_DISPLAY, "display" },
    { SPICE_CHANNEL_INPUTS, "inputs" },
    { SPICE_CHANNEL_CURSOR, "cursor" },
    { SPICE_CHANNEL_PLAYBACK, "playback" },
    { SPICE_CHANNEL_RECORD, "record" },
    { SPICE_CHANNEL_TUNNEL, "tunnel" },
    { SPICE_CHANNEL_SMARTCARD, "smartcard" },
    { SPICE_CHANNEL_USBREDIR, "usbredir" },
    { SPICE_CHANNEL_PORT, "port" },
    { SPICE_CHANNEL_WEBDAV, "webdav" },
    { SPICE_END_CHANNEL, "unknown" },
    { 255, "unknown" },
};

START_TEST(test_spice_link_names_channels)
{
    const ChannelName *c = &channel_names[_i];
    LinkSpec spec = valid_spec(c->type);
    g_autofree guint8 *buf = NULL;
    SgSpiceLink link;
    gsize len;

    ck_assert_str_eq(sg_spice_channel_name(c->type), c->name);
    if (c->type == 0)
        return;
    /* And the parser carries the type through unchanged. */
    buf = build(&spec, SG_LINK_MAX_BYTES, &len);
    ck_assert_int_eq(sg_spice_link_parse(buf, len, &link, NULL, NULL), SG_PARSE_OK);
    ck_assert_uint_eq(link.channel_type, c->type);
}
END_TEST

/* --- the server's side of a main channel (sg_spice_main_scan_feed) -------- */

/* What a SPICE server sends on a main channel, built here from the spec:
 * link header + SpiceLinkReply (+ one common caps word), the link result,
 * @n_before other messages, then MAIN_INIT with @session_id. */
typedef struct {
    uint32_t reply_error;
    bool server_mini;           /* SPICE_COMMON_CAP_MINI_HEADER in the reply */
    uint32_t result;
    guint n_before;             /* messages before MAIN_INIT */
    uint32_t before_size;       /* body size of each */
    bool mini;                  /* headers the stream uses */
} ServerSpec;

static void
put_le16(guint8 *p, uint16_t v)
{
    p[0] = v & 0xff;
    p[1] = (v >> 8) & 0xff;
}

static void
append_message(GByteArray *out, bool mini, uint16_t type, const guint8 *body, uint32_t size)
{
    guint8 hdr[18] = { 0 };

    if (mini) {
        put_le16(hdr, type);
        put_le32(hdr + 2, size);
        g_byte_array_append(out, hdr, 6);
    } else {
        hdr[0] = 1;             /* serial */
        put_le16(hdr + 8, type);
        put_le32(hdr + 10, size);
        g_byte_array_append(out, hdr, 18);
    }
    if (size > 0)
        g_byte_array_append(out, body, size);
}

static GByteArray *
server_stream(const ServerSpec *spec, uint32_t session_id)
{
    GByteArray *out = g_byte_array_new();
    guint8 hdr[16], reply[178 + 4] = { 0 }, word[4], init[32] = { 0 };
    g_autofree guint8 *filler = g_malloc0(MAX(spec->before_size, 1));

    memcpy(hdr, "REDQ", 4);
    put_le32(hdr + 4, SPICE_VERSION_MAJOR);
    put_le32(hdr + 8, SPICE_VERSION_MINOR);
    put_le32(hdr + 12, sizeof(reply));
    g_byte_array_append(out, hdr, sizeof(hdr));
    put_le32(reply, spec->reply_error);
    reply[4] = 0x30;            /* a public key's first byte; never read */
    put_le32(reply + 166, 1);   /* one common caps word */
    put_le32(reply + 170, 0);
    put_le32(reply + 174, 178); /* caps right after SpiceLinkReply */
    put_le32(reply + 178, (1u << SPICE_COMMON_CAP_AUTH_SPICE) |
                              (spec->server_mini ? 1u << SPICE_COMMON_CAP_MINI_HEADER : 0));
    g_byte_array_append(out, reply, sizeof(reply));
    put_le32(word, spec->result);
    g_byte_array_append(out, word, 4);
    for (guint i = 0; i < spec->n_before; i++)
        append_message(out, spec->mini, SPICE_MSG_PING, filler, spec->before_size);
    put_le32(init, session_id);
    put_le32(init + 4, 1);      /* display_channels_hint, so the id is not alone */
    append_message(out, spec->mini, SPICE_MSG_MAIN_INIT, init, sizeof(init));
    return out;
}

static void
scan_init_for(SgSpiceMainScan *scan, bool client_mini)
{
    SgSpiceLink client = { .channel_type = SPICE_CHANNEL_MAIN,
                           .common_caps0 = client_mini ? 1u << SPICE_COMMON_CAP_MINI_HEADER : 0 };

    sg_spice_main_scan_init(scan, &client);
}

static const struct {
    const char *name;
    bool client_mini;
    ServerSpec server;
} scan_found[] = {
    { "mini headers", true, { .server_mini = true, .mini = true } },
    { "client without mini headers", false, { .server_mini = true, .mini = false } },
    { "server without mini headers", true, { .server_mini = false, .mini = false } },
    { "messages before MAIN_INIT", true,
      { .server_mini = true, .mini = true, .n_before = 3, .before_size = 1000 } },
    { "empty messages before MAIN_INIT", false,
      { .server_mini = true, .mini = false, .n_before = 8, .before_size = 0 } },
};

/* Whole stream at once, then in two pieces cut anywhere, then byte by
 * byte: the same id each time, found as soon as its 4 bytes are in (the
 * 28 bytes after them in MAIN_INIT are not needed). */
START_TEST(test_spice_main_scan_finds_session_id)
{
    g_autoptr(GByteArray) stream = server_stream(&scan_found[_i].server, 0xdeadbeef);
    guint id_end = stream->len - 28;
    SgSpiceMainScan scan;
    uint32_t id = 0;
    const char *why = NULL;

    scan_init_for(&scan, scan_found[_i].client_mini);
    ck_assert_msg(sg_spice_main_scan_feed(&scan, stream->data, stream->len, &id, &why) ==
                  SG_PARSE_OK, "%s: %s", scan_found[_i].name, why ? why : "AGAIN");
    ck_assert_uint_eq(id, 0xdeadbeef);

    for (guint cut = 1; cut < id_end; cut++) {
        id = 0;
        scan_init_for(&scan, scan_found[_i].client_mini);
        ck_assert_int_eq(sg_spice_main_scan_feed(&scan, stream->data, cut, &id, &why),
                         SG_PARSE_AGAIN);
        ck_assert_int_eq(sg_spice_main_scan_feed(&scan, stream->data + cut, stream->len - cut,
                                                 &id, &why), SG_PARSE_OK);
        ck_assert_uint_eq(id, 0xdeadbeef);
    }

    id = 0;
    scan_init_for(&scan, scan_found[_i].client_mini);
    for (guint i = 0; i + 1 < id_end; i++)
        ck_assert_int_eq(sg_spice_main_scan_feed(&scan, stream->data + i, 1, &id, &why),
                         SG_PARSE_AGAIN);
    ck_assert_int_eq(sg_spice_main_scan_feed(&scan, stream->data + id_end - 1, 1, &id, &why),
                     SG_PARSE_OK);
    ck_assert_uint_eq(id, 0xdeadbeef);
}
END_TEST

static const struct {
    const char *name;
    bool client_mini;
    ServerSpec server;
    gssize patch_at;            /* >= 0: overwrite the byte there */
    guint8 patch;
} scan_given_up[] = {
    { "link refused", true, { .reply_error = SPICE_LINK_ERR_BAD_CONNECTION_ID,
                              .server_mini = true, .mini = true }, -1, 0 },
    { "ticket refused", true, { .result = SPICE_LINK_ERR_PERMISSION_DENIED,
                                .server_mini = true, .mini = true }, -1, 0 },
    { "too many messages first", true,
      { .server_mini = true, .mini = true, .n_before = 9, .before_size = 4 }, -1, 0 },
    { "bad magic", true, { .server_mini = true, .mini = true }, 0, 'X' },
    { "other major version", true, { .server_mini = true, .mini = true }, 4, 3 },
    { "reply larger than the cap", true, { .server_mini = true, .mini = true }, 13, 0x10 },
    { "reply smaller than SpiceLinkReply", true, { .server_mini = true, .mini = true }, 12, 10 },
};

START_TEST(test_spice_main_scan_gives_up)
{
    g_autoptr(GByteArray) stream = server_stream(&scan_given_up[_i].server, 42);
    SgSpiceMainScan scan;
    uint32_t id = 0;
    const char *why = NULL;

    if (scan_given_up[_i].patch_at >= 0)
        stream->data[scan_given_up[_i].patch_at] = scan_given_up[_i].patch;
    scan_init_for(&scan, scan_given_up[_i].client_mini);
    ck_assert_msg(sg_spice_main_scan_feed(&scan, stream->data, stream->len, &id, &why) ==
                  SG_PARSE_INVALID, "%s: not given up", scan_given_up[_i].name);
    ck_assert_ptr_nonnull(why);
    ck_assert_uint_eq(id, 0);
    /* Over is over: more bytes do not revive it. */
    ck_assert_int_eq(sg_spice_main_scan_feed(&scan, stream->data, stream->len, &id, &why),
                     SG_PARSE_INVALID);
}
END_TEST

/* A MAIN_INIT whose header says 3 bytes cannot hold the id. */
START_TEST(test_spice_main_scan_short_init)
{
    ServerSpec spec = { .server_mini = true, .mini = true };
    g_autoptr(GByteArray) stream = server_stream(&spec, 42);
    SgSpiceMainScan scan;
    uint32_t id = 0;
    const char *why = NULL;

    /* The MAIN_INIT header is the 6 bytes before its 32-byte body. */
    put_le32(stream->data + stream->len - 32 - 4, 3);
    scan_init_for(&scan, true);
    ck_assert_int_eq(sg_spice_main_scan_feed(&scan, stream->data, stream->len, &id, &why),
                     SG_PARSE_INVALID);
}
END_TEST

/* The client's first common caps word, which decides mini headers. */
/* The start of any channel's link reply: the server's verdict, judged
 * byte by byte as it arrives. */
START_TEST(test_spice_link_reply_error)
{
    guint8 reply[16 + 178] = { 'R', 'E', 'D', 'Q', 2, 0, 0, 0, 2, 0, 0, 0, 178, 0, 0, 0,
                               SPICE_LINK_ERR_NEED_SECURED, 0, 0, 0 };
    uint32_t error = 0;
    const char *why = NULL;

    for (gsize len = 0; len < SG_LINK_REPLY_HEAD_BYTES; len++)
        ck_assert_int_eq(sg_spice_link_reply_error(reply, len, &error, &why), SG_PARSE_AGAIN);
    ck_assert_int_eq(sg_spice_link_reply_error(reply, sizeof(reply), &error, &why),
                     SG_PARSE_OK);
    ck_assert_uint_eq(error, SPICE_LINK_ERR_NEED_SECURED);
    reply[16] = SPICE_LINK_ERR_OK;
    ck_assert_int_eq(sg_spice_link_reply_error(reply, SG_LINK_REPLY_HEAD_BYTES, &error, &why),
                     SG_PARSE_OK);
    ck_assert_uint_eq(error, SPICE_LINK_ERR_OK);
    /* Not a link reply: refused at the first wrong byte. */
    reply[0] = 'X';
    ck_assert_int_eq(sg_spice_link_reply_error(reply, 1, &error, &why), SG_PARSE_INVALID);
    ck_assert_ptr_nonnull(why);
    reply[0] = 'R';
    reply[4] = 1;
    ck_assert_int_eq(sg_spice_link_reply_error(reply, 8, &error, &why), SG_PARSE_INVALID);
    reply[4] = 2;
    reply[12] = 3;
    ck_assert_int_eq(sg_spice_link_reply_error(reply, 16, &error, &why), SG_PARSE_INVALID);
}
END_TEST

START_TEST(test_spice_link_reports_common_caps)
{
    LinkSpec spec = valid_spec(SPICE_CHANNEL_MAIN);
    gsize len;
    g_autofree guint8 *buf = build(&spec, 4096, &len);
    SgSpiceLink link;

    ck_assert_int_eq(sg_spice_link_parse(buf, len, &link, NULL, NULL), SG_PARSE_OK);
    ck_assert_uint_eq(link.common_caps0, 0xaaaaaaaa);
    spec.num_common_caps = 0;
    g_free(buf);
    buf = build(&spec, 4096, &len);
    ck_assert_int_eq(sg_spice_link_parse(buf, len, &link, NULL, NULL), SG_PARSE_OK);
    ck_assert_uint_eq(link.common_caps0, 0);
}
END_TEST

/* [spice] channels' names: every type SPICE names, both ways; sets. */
START_TEST(test_spice_channel_names_and_sets)
{
    uint8_t type = 0;
    g_autofree char *all = sg_spice_channel_set_names(G_MAXUINT32);
    g_autofree char *some = sg_spice_channel_set_names(1u << SPICE_CHANNEL_MAIN |
                                                       1u << SPICE_CHANNEL_WEBDAV);

    for (unsigned t = SPICE_CHANNEL_MAIN; t < SPICE_END_CHANNEL; t++) {
        ck_assert(sg_spice_channel_type_of(sg_spice_channel_name((uint8_t)t), &type));
        ck_assert_uint_eq(type, t);
    }
    ck_assert(sg_spice_channel_type_of("UsbRedir", &type));
    ck_assert_uint_eq(type, SPICE_CHANNEL_USBREDIR);
    ck_assert(!sg_spice_channel_type_of("unknown", &type));
    ck_assert(!sg_spice_channel_type_of("usb", &type));
    ck_assert(!sg_spice_channel_type_of("", &type));
    ck_assert_str_eq(all, "main, display, inputs, cursor, playback, record, tunnel, "
                          "smartcard, usbredir, port, webdav");
    ck_assert_str_eq(some, "main, webdav");
    ck_assert(sg_spice_channel_allowed(1u << 9, SPICE_CHANNEL_USBREDIR));
    ck_assert(!sg_spice_channel_allowed(G_MAXUINT32, 32));
    ck_assert(!sg_spice_channel_allowed(G_MAXUINT32, 255));
}
END_TEST

static Suite *
spice_link_suite(void)
{
    Suite *s = suite_create("spice_link");
    TCase *tc = tcase_create("parse");
    TCase *names = tcase_create("names");

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_spice_link_parses_valid_main);
    tcase_add_test(tc, test_spice_link_stops_at_message_end);
    tcase_add_test(tc, test_spice_link_again_for_every_prefix);
    tcase_add_test(tc, test_spice_link_again_for_empty_input);
    tcase_add_loop_test(tc, test_spice_link_rejects_invalid, 0, G_N_ELEMENTS(invalid_cases));
    tcase_add_loop_test(tc, test_spice_link_accepts_boundaries, 0, G_N_ELEMENTS(valid_cases));
    tcase_add_test(tc, test_spice_link_never_again_at_cap);
    tcase_add_loop_test(tc, test_spice_main_scan_finds_session_id, 0, G_N_ELEMENTS(scan_found));
    tcase_add_loop_test(tc, test_spice_main_scan_gives_up, 0, G_N_ELEMENTS(scan_given_up));
    tcase_add_test(tc, test_spice_main_scan_short_init);
    tcase_add_test(tc, test_spice_link_reports_common_caps);
    tcase_add_test(tc, test_spice_link_reply_error);
    suite_add_tcase(s, tc);

    tcase_set_timeout(names, 10);
    tcase_add_loop_test(names, test_spice_link_names_channels, 0, G_N_ELEMENTS(channel_names));
    tcase_add_test(names, test_spice_channel_names_and_sets);
    suite_add_tcase(s, names);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(spice_link_suite());
    int failed;

    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
