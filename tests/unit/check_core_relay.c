/* SPDX-License-Identifier: Apache-2.0 */
/* check_core_relay.c - the core in-process, without QEMU or a browser:
 * listener.c (lws on the event core), admission, session, upstream and
 * the splice path, between a websocket client written here (ws_client.c)
 * and a fault-injecting SPICE peer (fake_spice.c, not a SPICE server).
 *
 * A console relayed byte-exact both ways, small messages and large
 * transfers (the splice path toward a plain websocket); flow control both
 * ways (a side that stops reading pauses the relay, which resumes when it
 * reads again); and the close paths that need no deadline: 4404, 4401,
 * 4403, 4400, 1003, 4502, 1000 (the SPICE server closes or resets), the
 * browser closing or vanishing, also while its uploads wait or its token
 * is checked, and with a scripted token backend 4503, 4403 (token
 * refused) and 4410 (check_core_deadlines.c has the rest). A main
 * channel's console id, named by the SPICE server. Every wait has a deadline;
 * nothing sleeps. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <glib.h>
#include <spice/protocol.h>

#include "core_harness.h"
#include "fake_spice.h"
#include "ws_client.h"

#define DEADLINE_MS 5000

static Harness *h;

static void
teardown(void)
{
    g_clear_pointer(&h, harness_stop);
}

static void
fill(guint8 *p, gsize len, guint seed)
{
    for (gsize i = 0; i < len; i++)
        p[i] = (guint8)(i * 31 + seed + (i >> 9));
}

/* --- a good session ------------------------------------------------------ */

START_TEST(test_echo_byte_exact_both_ways)
{
    g_autoptr(WsClient) c = NULL;
    g_autoptr(GByteArray) link = harness_link_message();
    g_autoptr(GByteArray) sent = g_byte_array_new();
    const gsize sizes[] = { 1, 100, 4095, 4096, 5000, 65536, 70000, 3 * 1024 * 1024 };
    const HarnessClose *closed;

    h = harness_start(NULL);
    c = harness_open_ws(h, "good", NULL);
    ck_assert_str_eq(wsc_header(c, "Sec-WebSocket-Protocol"), "binary");
    wsc_send_binary(c, link->data, link->len);
    g_byte_array_append(sent, link->data, link->len);
    /* The echo of the link is the SPICE server's first word: RELAYING. */
    wsc_wait_received(c, link->len, DEADLINE_MS);
    ck_assert_uint_eq(h->opened, 1);
    /* Small messages go straight through, 4 KiB and more are batched, the
     * last one is larger than every buffer on the way (flow control) and
     * comes back in reads large enough for the splice path. */
    for (guint i = 0; i < G_N_ELEMENTS(sizes); i++) {
        g_autofree guint8 *msg = g_malloc(sizes[i]);

        fill(msg, sizes[i], i);
        /* Uploads as a browser sends them: at most 64 KiB a frame. */
        for (gsize off = 0; off < sizes[i]; off += 65536)
            wsc_send_binary(c, msg + off, MIN(65536, sizes[i] - off));
        g_byte_array_append(sent, msg, (guint)sizes[i]);
        wsc_wait_received(c, sent->len, 10 * DEADLINE_MS);
    }
    ck_assert_uint_eq(wsc_received_total(c), sent->len);
    ck_assert(memcmp(wsc_received(c)->data, sent->data, sent->len) == 0);
    ck_assert_uint_eq(fsp_received_total(h->peer), sent->len);
    ck_assert(memcmp(fsp_received(h->peer)->data, sent->data, sent->len) == 0);
    ck_assert_uint_eq(fsp_n_accepted(h->peer), 1);

    /* The browser closes: spicegate answers its close frame and hangs up;
     * the SPICE server's connection is closed too. */
    wsc_send_close(c, 1000, "bye");
    wsc_run_until(wsc_cond_eof, c, DEADLINE_MS);
    ck_assert(wsc_got_close(c));
    ck_assert_uint_eq(wsc_close_code(c), 1000);
    closed = harness_wait_closed(h, 1, DEADLINE_MS);
    ck_assert_int_eq(closed->reason, SG_CLOSE_CLIENT_CLOSED);
    ck_assert(closed->opened);
    ck_assert_str_eq(closed->channel, "display");
    ck_assert(closed->has_console);
    ck_assert_uint_eq(closed->console, HARNESS_CONSOLE_ID);
    ck_assert_uint_eq(closed->bytes_up, sent->len);
    ck_assert_uint_eq(closed->bytes_down, sent->len);
    wsc_run_until(harness_peer_saw_close, h->peer, DEADLINE_MS);
}
END_TEST

/* The SPICE server sends 16 MiB and closes: every byte arrives, in
 * order, then 1000 "console closed". Reads this large take the splice
 * path (socket -> pipe -> websocket, our own frame headers). */
START_TEST(test_large_download_then_target_closes)
{
    const guint64 total = 16u << 20;
    g_autoptr(WsClient) c = NULL;
    const HarnessClose *closed;
    guint64 bad = 0;

    h = harness_start(NULL);
    fsp_set_mode(h->peer, FSP_FLOOD);
    fsp_set_flood(h->peer, total, true);
    c = harness_open_console(h, NULL);
    harness_expect_close(c, 1000, "console closed");
    ck_assert_uint_eq(wsc_received_total(c), total);
    ck_assert_msg(fsp_pattern_check(wsc_received(c)->data, wsc_received(c)->len, 0, &bad),
                  "byte %" G_GUINT64_FORMAT " differs", bad);
    closed = harness_wait_closed(h, 1, DEADLINE_MS);
    ck_assert_int_eq(closed->reason, SG_CLOSE_TARGET_CLOSED);
    ck_assert_uint_eq(closed->bytes_down, total);
    ck_assert_uint_eq(closed->bytes_up, 34);
}
END_TEST

/* The browser stops reading: the relay stops reading the SPICE server,
 * whose socket then fills (it cannot send any more, and nothing moves
 * while the browser waits); once the browser reads again everything
 * arrives, in order. */
START_TEST(test_download_flow_control)
{
    const guint64 total = 40u << 20;
    WsOptions opt = { .rcvbuf = 64 * 1024 };
    g_autoptr(WsClient) c = NULL;
    guint64 sent_when_blocked, got_when_blocked, bad = 0;

    h = harness_start(NULL);
    fsp_set_mode(h->peer, FSP_FLOOD);
    fsp_set_flood(h->peer, total, false);
    fsp_set_buffers(h->peer, 64 * 1024, 0);
    c = harness_open_console(h, &opt);
    wsc_wait_received(c, 1 << 20, DEADLINE_MS);
    wsc_pause_reading(c, true);
    harness_wait_relay_stuck(h);
    sent_when_blocked = fsp_sent(h->peer);
    got_when_blocked = wsc_received_total(c);
    ck_assert_uint_lt(sent_when_blocked, total);
    /* Paused: over 300 ms at most what the kernel's growing socket buffers
     * take (a relay that did not pause would move the whole flood). */
    wsc_run_for(300);
    ck_assert_uint_le(fsp_sent(h->peer) - sent_when_blocked, 1u << 20);
    ck_assert_uint_le(wsc_received_total(c), got_when_blocked);
    /* What is in flight is bounded by the buffers on the way. */
    ck_assert_uint_le(sent_when_blocked - got_when_blocked, 16u << 20);

    wsc_pause_reading(c, false);
    wsc_run_until(harness_peer_flood_done, h->peer, 10 * DEADLINE_MS);
    wsc_wait_received(c, total, 10 * DEADLINE_MS);
    ck_assert_uint_eq(wsc_received_total(c), total);
    ck_assert_msg(fsp_pattern_check(wsc_received(c)->data, wsc_received(c)->len, 0, &bad),
                  "byte %" G_GUINT64_FORMAT " differs", bad);
    ck_assert(!wsc_eof(c));
}
END_TEST

/* The SPICE server stops reading: spicegate stops reading the websocket
 * (the browser's socket fills and stays full), then takes the rest once
 * the server reads again, byte-exact. */
START_TEST(test_upload_flow_control)
{
    const gsize total = 12u << 20;
    WsOptions opt = { .sndbuf = 64 * 1024 };
    g_autoptr(WsClient) c = NULL;
    g_autoptr(GByteArray) link = harness_link_message();
    g_autofree guint8 *data = g_malloc(total);
    gsize pending;
    guint64 peer_got;

    h = harness_start(NULL);
    fsp_set_mode(h->peer, FSP_SINK);
    fsp_set_buffers(h->peer, 0, 64 * 1024);
    c = harness_open_console(h, &opt);
    harness_wait_peer_received(h, link->len);
    fsp_set_reading(h->peer, false);
    fill(data, total, 7);
    for (gsize off = 0; off < total; off += 65536)
        wsc_send_binary(c, data + off, MIN(65536, total - off));
    wsc_run_until(wsc_cond_blocked, c, DEADLINE_MS);
    /* Over a second (past the check for a browser gone while paused):
     * the browser's socket stays full. */
    wsc_run_for(1100);
    ck_assert(wsc_send_blocked(c));
    pending = wsc_out_pending(c);
    peer_got = fsp_received_total(h->peer);
    wsc_run_for(200);
    ck_assert_uint_eq(wsc_out_pending(c), pending);
    ck_assert_uint_eq(fsp_received_total(h->peer), peer_got);
    ck_assert_uint_gt(pending, 0);

    fsp_set_reading(h->peer, true);
    harness_wait_peer_received(h, link->len + total);
    ck_assert_uint_eq(fsp_received_total(h->peer), link->len + total);
    ck_assert(memcmp(fsp_received(h->peer)->data, link->data, link->len) == 0);
    ck_assert(memcmp(fsp_received(h->peer)->data + link->len, data, total) == 0);
    ck_assert_uint_eq(h->closed->len, 0);
}
END_TEST

/* A browser that leaves while its uploads wait for the SPICE server is
 * seen although spicegate does not read its socket. */
START_TEST(test_upload_paused_browser_leaves)
{
    WsOptions opt = { .sndbuf = 64 * 1024 };
    WsClient *c;
    g_autoptr(GByteArray) link = harness_link_message();
    g_autofree guint8 *data = g_malloc0(4u << 20);
    const HarnessClose *closed;

    h = harness_start(NULL);
    fsp_set_mode(h->peer, FSP_SINK);
    fsp_set_buffers(h->peer, 0, 64 * 1024);
    c = harness_open_console(h, &opt);
    harness_wait_peer_received(h, link->len);
    fsp_set_reading(h->peer, false);
    for (gsize off = 0; off < (4u << 20); off += 65536)
        wsc_send_binary(c, data + off, 65536);
    wsc_run_until(wsc_cond_blocked, c, DEADLINE_MS);
    wsc_free(c);
    closed = harness_wait_closed(h, 1, DEADLINE_MS);
    ck_assert_int_eq(closed->reason, SG_CLOSE_CLIENT_CLOSED);
}
END_TEST

START_TEST(test_token_in_cookie)
{
    WsOptions opt = { .path = "/websockify", .cookie = "lang=en; token=good" };
    g_autoptr(WsClient) c = NULL;
    g_autoptr(GByteArray) link = harness_link_message();

    h = harness_start(NULL);
    c = harness_open_ws(h, NULL, &opt);
    wsc_send_binary(c, link->data, link->len);
    wsc_wait_received(c, link->len, DEADLINE_MS);
    ck_assert(memcmp(wsc_received(c)->data, link->data, link->len) == 0);
}
END_TEST

/* The same host as Host passes; allowed_origins names another. */
START_TEST(test_origin_allowed)
{
    g_autofree char *same = NULL;
    g_autoptr(WsClient) c1 = NULL;
    g_autoptr(WsClient) c2 = NULL;
    g_autoptr(GByteArray) link = harness_link_message();
    WsOptions opt = { 0 };

    h = harness_start("server.allowed_origins", "dashboard.example", NULL);
    same = g_strdup_printf("http://127.0.0.1:%u", h->port);
    opt.origin = same;
    c1 = harness_open_ws(h, "good", &opt);
    opt.origin = "https://dashboard.example";
    c2 = harness_open_ws(h, "good", &opt);
    wsc_send_binary(c1, link->data, link->len);
    wsc_send_binary(c2, link->data, link->len);
    wsc_wait_received(c1, link->len, DEADLINE_MS);
    wsc_wait_received(c2, link->len, DEADLINE_MS);
    ck_assert(!wsc_got_close(c1) && !wsc_got_close(c2));
}
END_TEST

/* --- refusals -------------------------------------------------------------- */

START_TEST(test_bad_token_4404)
{
    g_autoptr(WsClient) c = NULL;
    const HarnessClose *closed;

    h = harness_start(NULL);
    c = harness_open_ws(h, "not-a-token", NULL);
    harness_expect_close(c, 4404, "console token invalid or expired");
    closed = harness_wait_closed(h, 1, DEADLINE_MS);
    ck_assert_int_eq(closed->reason, SG_CLOSE_BAD_TOKEN);
    ck_assert(!closed->opened);
    ck_assert_uint_eq(fsp_n_accepted(h->peer), 0);
}
END_TEST

START_TEST(test_no_token_4401)
{
    g_autoptr(WsClient) c = NULL;

    h = harness_start(NULL);
    c = harness_open_ws(h, NULL, NULL);
    harness_expect_close(c, 4401, "no console token");
    ck_assert_int_eq(harness_wait_closed(h, 1, DEADLINE_MS)->reason, SG_CLOSE_NO_TOKEN);
}
END_TEST

START_TEST(test_origin_4403)
{
    WsOptions opt = { .origin = "http://evil.example" };
    g_autoptr(WsClient) c = NULL;

    h = harness_start(NULL);
    c = harness_open_ws(h, "good", &opt);
    harness_expect_close(c, 4403, "origin not allowed");
    ck_assert_int_eq(harness_wait_closed(h, 1, DEADLINE_MS)->reason, SG_CLOSE_ORIGIN);
    ck_assert_uint_eq(fsp_n_accepted(h->peer), 0);
}
END_TEST

/* Not a SPICE link: refused, and not a byte reaches the SPICE server. */
START_TEST(test_not_a_link_4400)
{
    const char *http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    g_autoptr(WsClient) c = NULL;

    h = harness_start(NULL);
    c = harness_open_ws(h, "good", NULL);
    wsc_send_binary(c, http, strlen(http));
    harness_expect_close(c, 4400, "not a SPICE link message");
    ck_assert_int_eq(harness_wait_closed(h, 1, DEADLINE_MS)->reason, SG_CLOSE_BAD_LINK);
    ck_assert_uint_eq(fsp_received_total(h->peer), 0);
}
END_TEST

START_TEST(test_text_frame_1003)
{
    g_autoptr(WsClient) c = NULL;

    h = harness_start(NULL);
    c = harness_open_ws(h, "good", NULL);
    wsc_send_text(c, "REDQ");
    harness_expect_close(c, 1003, "text frames are not supported");
    ck_assert_int_eq(harness_wait_closed(h, 1, DEADLINE_MS)->reason, SG_CLOSE_TEXT_FRAME);
    ck_assert_uint_eq(fsp_received_total(h->peer), 0);
}
END_TEST

START_TEST(test_unreachable_4502)
{
    g_autoptr(WsClient) c = NULL;
    g_autoptr(GByteArray) link = harness_link_message();
    const HarnessClose *closed;

    h = harness_start(NULL);
    c = harness_open_ws(h, "dead", NULL);
    wsc_send_binary(c, link->data, link->len);
    harness_expect_close(c, 4502, "console unreachable");
    closed = harness_wait_closed(h, 1, DEADLINE_MS);
    ck_assert_int_eq(closed->reason, SG_CLOSE_UNREACHABLE);
    ck_assert(!closed->opened);
}
END_TEST

START_TEST(test_target_closes_1000)
{
    g_autoptr(WsClient) c = NULL;

    h = harness_start(NULL);
    fsp_set_mode(h->peer, FSP_CLOSE);
    c = harness_open_console(h, NULL);
    harness_expect_close(c, 1000, "console closed");
    ck_assert_int_eq(harness_wait_closed(h, 1, DEADLINE_MS)->reason, SG_CLOSE_TARGET_CLOSED);
}
END_TEST

START_TEST(test_target_resets_1000)
{
    g_autoptr(WsClient) c = NULL;

    h = harness_start(NULL);
    fsp_set_mode(h->peer, FSP_RESET);
    c = harness_open_console(h, NULL);
    harness_expect_close(c, 1000, "console closed");
    ck_assert_int_eq(harness_wait_closed(h, 1, DEADLINE_MS)->reason, SG_CLOSE_TARGET_CLOSED);
}
END_TEST

/* The browser half-closes without a close frame (a tab killed): the
 * session ends as the browser's doing; the SPICE server's side closes. */
START_TEST(test_browser_vanishes)
{
    g_autoptr(WsClient) c = NULL;
    g_autoptr(GByteArray) link = harness_link_message();
    const HarnessClose *closed;

    h = harness_start(NULL);
    c = harness_open_console(h, NULL);
    wsc_wait_received(c, link->len, DEADLINE_MS);
    g_clear_pointer(&c, wsc_free);
    closed = harness_wait_closed(h, 1, DEADLINE_MS);
    ck_assert_int_eq(closed->reason, SG_CLOSE_CLIENT_CLOSED);
    ck_assert(closed->opened);
    wsc_run_until(harness_peer_saw_close, h->peer, DEADLINE_MS);
}
END_TEST

/* --- answers of the token backend a file never gives --------------------- */

START_TEST(test_token_unavailable_4503)
{
    g_autoptr(WsClient) c = NULL;

    h = harness_start("harness.tokens", "script", NULL);
    c = harness_open_ws(h, "unavailable", NULL);
    harness_expect_close(c, 4503, "token check unavailable, try again");
    ck_assert_int_eq(harness_wait_closed(h, 1, DEADLINE_MS)->reason,
                     SG_CLOSE_TOKEN_UNAVAILABLE);
}
END_TEST

START_TEST(test_token_refused_4403)
{
    g_autoptr(WsClient) c = NULL;

    h = harness_start("harness.tokens", "script", NULL);
    c = harness_open_ws(h, "refused", NULL);
    harness_expect_close(c, 4403, "console token not usable here");
    ck_assert_int_eq(harness_wait_closed(h, 1, DEADLINE_MS)->reason, SG_CLOSE_TOKEN_REFUSED);
}
END_TEST

/* A token whose lifetime is over before the connection: 4410, and the
 * SPICE server is never asked. */
START_TEST(test_token_expired_4410)
{
    g_autoptr(WsClient) c = NULL;

    h = harness_start("harness.tokens", "script", NULL);
    c = harness_open_ws(h, "expired", NULL);
    harness_expect_close(c, 4410, "console session expired");
    ck_assert_int_eq(harness_wait_closed(h, 1, DEADLINE_MS)->reason,
                     SG_CLOSE_SESSION_EXPIRED);
    ck_assert_uint_eq(fsp_n_accepted(h->peer), 0);
}
END_TEST

/* The browser leaves while its token is being checked: the lookup is
 * cancelled, nothing is connected. */
START_TEST(test_browser_leaves_while_authorising)
{
    WsClient *c;
    const HarnessClose *closed;

    h = harness_start("harness.tokens", "script", NULL);
    c = harness_open_ws(h, "slow", NULL);
    wsc_run_for(100);
    ck_assert_uint_eq(h->lookups_pending, 1);
    wsc_free(c);
    closed = harness_wait_closed(h, 1, DEADLINE_MS);
    ck_assert_int_eq(closed->reason, SG_CLOSE_CLIENT_CLOSED);
    ck_assert(!closed->opened);
    ck_assert_uint_eq(h->lookups_cancelled, 1);
    ck_assert_uint_eq(fsp_n_accepted(h->peer), 0);
}
END_TEST

/* --- the main channel ---------------------------------------------------------- */

static void
put_le32(guint8 *p, guint32 v)
{
    p[0] = v & 0xff;
    p[1] = (v >> 8) & 0xff;
    p[2] = (v >> 16) & 0xff;
    p[3] = (v >> 24) & 0xff;
}

/* What a SPICE server sends on a main channel (full 18-byte headers, as
 * the link below offers no mini headers): link reply, link result, a
 * PING, then MAIN_INIT whose first field is the session id. The fake peer
 * sends these bytes; it does not speak SPICE. */
static GByteArray *
main_server_stream(guint32 session_id, gsize *head_len)
{
    GByteArray *out = g_byte_array_new();
    guint8 hdr[16], reply[178 + 4] = { 0 }, word[4] = { 0 }, msg[18] = { 0 }, init[32] = { 0 };
    guint8 ping[12] = { 0 };

    memcpy(hdr, "REDQ", 4);
    put_le32(hdr + 4, SPICE_VERSION_MAJOR);
    put_le32(hdr + 8, SPICE_VERSION_MINOR);
    put_le32(hdr + 12, sizeof(reply));
    g_byte_array_append(out, hdr, sizeof(hdr));
    put_le32(reply + 166, 1);
    put_le32(reply + 174, 178);
    put_le32(reply + 178, 1u << SPICE_COMMON_CAP_AUTH_SPICE);
    g_byte_array_append(out, reply, sizeof(reply));
    g_byte_array_append(out, word, 4);          /* SPICE_LINK_ERR_OK */
    *head_len = out->len;
    msg[0] = 1;
    msg[8] = SPICE_MSG_PING;
    put_le32(msg + 10, sizeof(ping));
    g_byte_array_append(out, msg, sizeof(msg));
    g_byte_array_append(out, ping, sizeof(ping));
    msg[0] = 2;
    msg[8] = SPICE_MSG_MAIN_INIT;
    put_le32(msg + 10, sizeof(init));
    g_byte_array_append(out, msg, sizeof(msg));
    put_le32(init, session_id);
    put_le32(init + 4, 1);
    g_byte_array_append(out, init, sizeof(init));
    return out;
}

/* A main channel's console is named by the SPICE server (MAIN_INIT):
 * the session opens once it has, and carries it. */
START_TEST(test_main_channel_console_id)
{
    g_autoptr(WsClient) c = NULL;
    g_autoptr(GByteArray) link = harness_link_message_for(SPICE_CHANNEL_MAIN, 0);
    g_autoptr(GByteArray) stream = NULL;
    const HarnessClose *closed;
    gsize head = 0;

    h = harness_start(NULL);
    fsp_set_mode(h->peer, FSP_SINK);
    c = harness_open_ws(h, "good", NULL);
    wsc_send_binary(c, link->data, link->len);
    harness_wait_peer_received(h, link->len);
    stream = main_server_stream(0x5eed, &head);
    fsp_send(h->peer, stream->data, head);
    wsc_wait_received(c, head, DEADLINE_MS);
    ck_assert_uint_eq(h->opened, 0);             /* waits for MAIN_INIT */
    fsp_send(h->peer, stream->data + head, stream->len - head);
    wsc_wait_received(c, stream->len, DEADLINE_MS);
    ck_assert_uint_eq(h->opened, 1);
    ck_assert(memcmp(wsc_received(c)->data, stream->data, stream->len) == 0);
    wsc_send_close(c, 1000, NULL);
    closed = harness_wait_closed(h, 1, DEADLINE_MS);
    ck_assert_str_eq(closed->channel, "main");
    ck_assert(closed->has_console);
    ck_assert_uint_eq(closed->console, 0x5eed);
}
END_TEST

/* A main channel that ends before MAIN_INIT still opened, without a
 * console id. */
START_TEST(test_main_channel_ends_before_init)
{
    g_autoptr(WsClient) c = NULL;
    g_autoptr(GByteArray) link = harness_link_message_for(SPICE_CHANNEL_MAIN, 0);
    g_autoptr(GByteArray) stream = NULL;
    const HarnessClose *closed;
    gsize head = 0;

    h = harness_start(NULL);
    fsp_set_mode(h->peer, FSP_SINK);
    c = harness_open_ws(h, "good", NULL);
    wsc_send_binary(c, link->data, link->len);
    harness_wait_peer_received(h, link->len);
    stream = main_server_stream(0x5eed, &head);
    fsp_send(h->peer, stream->data, head);
    wsc_wait_received(c, head, DEADLINE_MS);
    fsp_close_all(h->peer, false);
    harness_expect_close(c, 1000, "console closed");
    closed = harness_wait_closed(h, 1, DEADLINE_MS);
    ck_assert(closed->opened);
    ck_assert(!closed->has_console);
    ck_assert_uint_eq(h->opened, 1);
}
END_TEST

static Suite *
core_relay_suite(void)
{
    Suite *s = suite_create("core_relay");
    TCase *relay = tcase_create("relay");
    TCase *refusals = tcase_create("refusals");

    tcase_set_timeout(relay, 60);
    tcase_add_checked_fixture(relay, NULL, teardown);
    tcase_add_test(relay, test_echo_byte_exact_both_ways);
    tcase_add_test(relay, test_large_download_then_target_closes);
    tcase_add_test(relay, test_download_flow_control);
    tcase_add_test(relay, test_upload_flow_control);
    tcase_add_test(relay, test_upload_paused_browser_leaves);
    tcase_add_test(relay, test_token_in_cookie);
    tcase_add_test(relay, test_origin_allowed);
    tcase_add_test(relay, test_browser_vanishes);
    tcase_add_test(relay, test_main_channel_console_id);
    tcase_add_test(relay, test_main_channel_ends_before_init);
    suite_add_tcase(s, relay);

    tcase_set_timeout(refusals, 30);
    tcase_add_checked_fixture(refusals, NULL, teardown);
    tcase_add_test(refusals, test_bad_token_4404);
    tcase_add_test(refusals, test_no_token_4401);
    tcase_add_test(refusals, test_origin_4403);
    tcase_add_test(refusals, test_not_a_link_4400);
    tcase_add_test(refusals, test_text_frame_1003);
    tcase_add_test(refusals, test_unreachable_4502);
    tcase_add_test(refusals, test_target_closes_1000);
    tcase_add_test(refusals, test_target_resets_1000);
    tcase_add_test(refusals, test_token_unavailable_4503);
    tcase_add_test(refusals, test_token_refused_4403);
    tcase_add_test(refusals, test_token_expired_4410);
    tcase_add_test(refusals, test_browser_leaves_while_authorising);
    suite_add_tcase(s, refusals);

    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(core_relay_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
