/* SPDX-License-Identifier: Apache-2.0 */
/* check_core_channels.c - [spice] channels, the core in-process
 * (core_harness.c: listener, session, upstream, relay between ws_client.c
 * and the fault-injecting fake_spice.c, which is not a SPICE server: it
 * echoes, and counts what reaches it).
 *
 * A link message of each channel type SPICE names, and of types it does
 * not: with the default list, main, display, inputs, cursor, playback and
 * port are relayed byte for byte; record, tunnel, smartcard, usbredir,
 * webdav and unknown types are closed with 4403 "SPICE channel not allowed
 * here", the refused line names the channel and the setting, the zone
 * counts the refusal, and the fake server saw no connection at all. A
 * custom list turns both ways. The connection to the SPICE server waits
 * for an allowed link (none before it, none for a websocket that never
 * sends one), and a refused link while the token is still being looked up
 * ends the lookup. QEMU's real SPICE server gets the same link messages in
 * tests/integ/test_channels.py. Every wait has a deadline; nothing sleeps. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <glib.h>
#include <spice/protocol.h>

#include "core_harness.h"
#include "fake_spice.h"
#include "shared_zone.h"
#include "ws_client.h"

#define DEADLINE_MS 5000

static Harness *h;

static void
teardown(void)
{
    g_clear_pointer(&h, harness_stop);
}

static guint64
zone_refused(SgCloseReason reason)
{
    SgZoneStats st;

    sg_zone_read(h->zone, &st);
    return st.refused[reason];
}

/* A link for @type is relayed: the fake server gets exactly it, and its
 * echo comes back. */
static void
expect_relayed(guint8 type)
{
    g_autoptr(WsClient) c = harness_open_ws(h, "good", NULL);
    g_autoptr(GByteArray) link = harness_link_message_for(type, HARNESS_CONSOLE_ID);
    guint accepted = fsp_n_accepted(h->peer);

    wsc_send_binary(c, link->data, link->len);
    wsc_wait_received(c, link->len, DEADLINE_MS);
    ck_assert_uint_eq(fsp_n_accepted(h->peer), accepted + 1);
    ck_assert_uint_eq(fsp_received(h->peer)->len, link->len);
    ck_assert(memcmp(fsp_received(h->peer)->data, link->data, link->len) == 0);
    ck_assert(memcmp(wsc_received(c)->data, link->data, link->len) == 0);
}

/* A link for @type is refused with 4403 before anything reaches the fake
 * server. @name: the channel's name in the log ("unknown" for a type
 * SPICE does not name). The link comes in two frames, the type in the
 * second, so that the check is the one on the whole message. */
static void
expect_refused(guint8 type, const char *name, guint n_closed)
{
    g_autoptr(WsClient) c = harness_open_ws(h, "good", NULL);
    g_autoptr(GByteArray) link = harness_link_message_for(type, HARNESS_CONSOLE_ID);
    g_autofree char *want = g_strdup_printf("channel %s (type %u) is not in [spice] channels",
                                            name, type);
    guint64 refused = zone_refused(SG_CLOSE_CHANNEL_REFUSED);
    const HarnessClose *closed;

    wsc_send_binary(c, link->data, 18);
    wsc_send_binary(c, link->data + 18, link->len - 18);
    harness_expect_close(c, 4403, "SPICE channel not allowed here");
    closed = harness_wait_closed(h, n_closed, DEADLINE_MS);
    ck_assert_int_eq(closed->reason, SG_CLOSE_CHANNEL_REFUSED);
    ck_assert(!closed->opened);
    ck_assert_str_eq(closed->channel, name);
    ck_assert_msg(closed->detail != NULL && strstr(closed->detail, want) != NULL,
                  "detail '%s' lacks '%s'", closed->detail ? closed->detail : "(null)", want);
    ck_assert_uint_eq(zone_refused(SG_CLOSE_CHANNEL_REFUSED), refused + 1);
    /* Not even a connection reached the SPICE server. */
    ck_assert_uint_eq(fsp_n_accepted(h->peer), 0);
    ck_assert_uint_eq(fsp_received_total(h->peer), 0);
}

static const guint8 default_allowed[] = {
    SPICE_CHANNEL_MAIN, SPICE_CHANNEL_DISPLAY, SPICE_CHANNEL_INPUTS,
    SPICE_CHANNEL_CURSOR, SPICE_CHANNEL_PLAYBACK, SPICE_CHANNEL_PORT,
};

static const struct {
    guint8 type;
    const char *name;
} default_refused[] = {
    { SPICE_CHANNEL_RECORD, "record" },
    { SPICE_CHANNEL_TUNNEL, "tunnel" },
    { SPICE_CHANNEL_SMARTCARD, "smartcard" },
    { SPICE_CHANNEL_USBREDIR, "usbredir" },
    { SPICE_CHANNEL_WEBDAV, "webdav" },
    { SPICE_END_CHANNEL, "unknown" },     /* the first type SPICE does not name */
    { 31, "unknown" },
    { 32, "unknown" },                    /* beyond any set's bits */
    { 255, "unknown" },
};

/* The default list: what spice-html5 uses is relayed. */
START_TEST(test_default_allowed_relayed)
{
    h = harness_start(NULL);
    expect_relayed(default_allowed[_i]);
}
END_TEST

/* The default list: everything else is refused, unseen by the server. */
START_TEST(test_default_refused)
{
    h = harness_start(NULL);
    expect_refused(default_refused[_i].type, default_refused[_i].name, 1);
}
END_TEST

/* A list of the operator's: usbredir allowed, display refused. */
START_TEST(test_custom_list)
{
    h = harness_start("spice.channels", "main;usbredir", NULL);
    expect_refused(SPICE_CHANNEL_DISPLAY, "display", 1);
    expect_refused(SPICE_CHANNEL_INPUTS, "inputs", 2);
    expect_relayed(SPICE_CHANNEL_USBREDIR);
    expect_relayed(SPICE_CHANNEL_MAIN);
}
END_TEST

/* The SPICE server is connected to only once an allowed link is there:
 * the token is known at once (a token file), yet nothing connects until
 * the browser's link message comes. */
START_TEST(test_connect_waits_for_the_link)
{
    g_autoptr(WsClient) c = NULL;
    g_autoptr(GByteArray) link = harness_link_message();

    h = harness_start(NULL);
    c = harness_open_ws(h, "good", NULL);
    wsc_run_for(200);
    ck_assert_uint_eq(fsp_n_accepted(h->peer), 0);
    wsc_send_binary(c, link->data, link->len);
    wsc_wait_received(c, link->len, DEADLINE_MS);
    ck_assert_uint_eq(fsp_n_accepted(h->peer), 1);
}
END_TEST

/* A refused link while the token is still being looked up: closed at
 * once, the lookup cancelled, nothing connected. An allowed one waits for
 * the lookup, still unconnected. */
START_TEST(test_refused_while_authorising)
{
    g_autoptr(WsClient) c = NULL;
    g_autoptr(WsClient) ok = NULL;
    g_autoptr(GByteArray) usb = harness_link_message_for(SPICE_CHANNEL_USBREDIR, 0);
    g_autoptr(GByteArray) link = harness_link_message();
    const HarnessClose *closed;

    h = harness_start("harness.tokens", "script", NULL);
    ok = harness_open_ws(h, "slow", NULL);
    wsc_send_binary(ok, link->data, link->len);
    c = harness_open_ws(h, "slow", NULL);
    wsc_send_binary(c, usb->data, usb->len);
    harness_expect_close(c, 4403, "SPICE channel not allowed here");
    closed = harness_wait_closed(h, 1, DEADLINE_MS);
    ck_assert_int_eq(closed->reason, SG_CLOSE_CHANNEL_REFUSED);
    ck_assert_str_eq(closed->channel, "usbredir");
    ck_assert_uint_eq(h->lookups_cancelled, 1);
    ck_assert_uint_eq(h->lookups_pending, 1);
    ck_assert_uint_eq(fsp_n_accepted(h->peer), 0);
}
END_TEST

static Suite *
channels_suite(void)
{
    Suite *s = suite_create("core_channels");
    TCase *tc = tcase_create("channels");

    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_loop_test(tc, test_default_allowed_relayed, 0, G_N_ELEMENTS(default_allowed));
    tcase_add_loop_test(tc, test_default_refused, 0, G_N_ELEMENTS(default_refused));
    tcase_add_test(tc, test_custom_list);
    tcase_add_test(tc, test_connect_waits_for_the_link);
    tcase_add_test(tc, test_refused_while_authorising);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(channels_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
