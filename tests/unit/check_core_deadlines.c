/* SPDX-License-Identifier: Apache-2.0 */
/* check_core_deadlines.c - the core in-process, without QEMU or a browser
 * (core_harness.c: listener, session, upstream, relay between ws_client.c
 * and the fault-injecting fake_spice.c): every session deadline, with
 * small configured values: handshake_timeout before any websocket (half
 * a request, or nothing); link_timeout with no link from the browser
 * (4408) and with a SPICE server that takes the link and never answers
 * (4504); idle_timeout (4408 "idle"; not while bytes move on any channel
 * of the console); a token's lifetime ending mid-session (4410); a live
 * console's token revoked (4404 "revoked"; one re-check for its
 * websockets; a failed re-check keeps them); ping_interval's keepalive (a
 * ping each interval; a browser that answers, or sends data, stays; one
 * that sends nothing back for 3 intervals is closed, 4408 "no answer to
 * pings", and its SPICE connection with it; none with 0). The close
 * deadlines are in check_core_drain.c. Every wait has a deadline;
 * nothing sleeps. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <glib.h>

#include "core_harness.h"
#include "fake_spice.h"
#include "token.h"
#include "ws_client.h"

#define DEADLINE_MS 5000

static Harness *h;

static void
teardown(void)
{
    g_clear_pointer(&h, harness_stop);
}

/* --- deadlines ------------------------------------------------------------- */

/* No link message within link_timeout. */
START_TEST(test_link_timeout_4408)
{
    g_autoptr(WsClient) c = NULL;
    gint64 start;

    h = harness_start("server.link_timeout", "1", NULL);
    c = harness_open_ws(h, "good", NULL);
    start = g_get_monotonic_time();
    harness_expect_close(c, 4408, "timed out waiting for the SPICE link message");
    ck_assert_int_ge(g_get_monotonic_time() - start, 900 * 1000);
    ck_assert_int_eq(harness_wait_closed(h, 1, DEADLINE_MS)->reason, SG_CLOSE_LINK_TIMEOUT);
    /* spicegate connects only for a link: the SPICE server saw nothing. */
    ck_assert_uint_eq(fsp_n_accepted(h->peer), 0);
}
END_TEST

/* The SPICE server takes the link and never answers: 4504. */
START_TEST(test_link_unanswered_4504)
{
    g_autoptr(WsClient) c = NULL;
    const HarnessClose *closed;

    h = harness_start("server.link_timeout", "1", NULL);
    fsp_set_mode(h->peer, FSP_SINK);
    c = harness_open_console(h, NULL);
    harness_expect_close(c, 4504, "console connect timed out");
    closed = harness_wait_closed(h, 1, DEADLINE_MS);
    ck_assert_int_eq(closed->reason, SG_CLOSE_CONNECT_TIMEOUT);
    ck_assert_ptr_nonnull(strstr(closed->detail, "did not answer the link"));
    ck_assert_uint_eq(fsp_received_total(h->peer), 34);
}
END_TEST

/* No byte either way for idle_timeout: 4408 "idle". */
START_TEST(test_idle_timeout_4408)
{
    g_autoptr(WsClient) c = NULL;
    g_autoptr(GByteArray) link = harness_link_message();
    gint64 start;

    h = harness_start("server.idle_timeout", "1", NULL);
    c = harness_open_console(h, NULL);
    wsc_wait_received(c, link->len, DEADLINE_MS);
    start = g_get_monotonic_time();
    harness_expect_close(c, 4408, "console idle for too long");
    ck_assert_int_ge(g_get_monotonic_time() - start, 900 * 1000);
    ck_assert_int_eq(harness_wait_closed(h, 1, DEADLINE_MS)->reason, SG_CLOSE_IDLE);
}
END_TEST

/* handshake_timeout: lws' hold on a connection before any websocket
 * exists. Half a request, then nothing: the connection is dropped after
 * handshake_timeout, with no answer, and no session ever existed. */
static void
expect_dropped_after_handshake_timeout(WsClient *c)
{
    gint64 start = g_get_monotonic_time();

    wsc_run_until(wsc_cond_eof, c, DEADLINE_MS);
    ck_assert_int_ge(g_get_monotonic_time() - start, 800 * 1000);
    ck_assert_int_eq(wsc_status(c), 0);
    ck_assert_uint_eq(wsc_received_total(c), 0);
    ck_assert_uint_eq(h->closed->len, 0);
}

START_TEST(test_handshake_timeout_half_request)
{
    g_autoptr(WsClient) c = NULL;
    static const char half[] = "GET /index.html HTTP/1.1\r\nHo";

    h = harness_start("server.handshake_timeout", "1", NULL);
    c = wsc_connect_raw(h->port);
    wsc_send_raw(c, half, sizeof(half) - 1);
    expect_dropped_after_handshake_timeout(c);
}
END_TEST

START_TEST(test_handshake_timeout_silent)
{
    g_autoptr(WsClient) c = NULL;

    h = harness_start("server.handshake_timeout", "1", NULL);
    c = wsc_connect_raw(h->port);
    expect_dropped_after_handshake_timeout(c);
}
END_TEST

/* Traffic keeps an idle_timeout session open. */
START_TEST(test_idle_timeout_not_while_busy)
{
    g_autoptr(WsClient) c = NULL;
    g_autoptr(GByteArray) link = harness_link_message();
    guint64 want = link->len;

    h = harness_start("server.idle_timeout", "1", NULL);
    c = harness_open_console(h, NULL);
    wsc_wait_received(c, want, DEADLINE_MS);
    /* Over two of its ticks: an idle session would have closed by then. */
    for (int i = 0; i < 9; i++) {
        wsc_run_for(250);
        wsc_send_binary(c, "x", 1);
        wsc_wait_received(c, ++want, DEADLINE_MS);
    }
    ck_assert(!wsc_got_close(c));
    ck_assert_uint_eq(h->closed->len, 0);
}
END_TEST

/* idle_timeout is the console's: a quiet channel (a display nobody
 * changes) stays open while another channel of the same console (the
 * inputs someone types into) moves bytes; once the whole console is
 * quiet, both close with 4408 "idle". */
START_TEST(test_idle_timeout_is_the_consoles)
{
    g_autoptr(WsClient) quiet = NULL;
    g_autoptr(WsClient) busy = NULL;
    g_autoptr(GByteArray) link = harness_link_message();
    guint64 want = link->len;
    gint64 start;

    h = harness_start("server.idle_timeout", "1", NULL);
    quiet = harness_open_console(h, NULL);
    wsc_wait_received(quiet, link->len, DEADLINE_MS);
    busy = harness_open_console(h, NULL);
    wsc_wait_received(busy, want, DEADLINE_MS);
    /* Over two of the quiet one's ticks: alone, it would have closed. */
    for (int i = 0; i < 9; i++) {
        wsc_run_for(250);
        wsc_send_binary(busy, "x", 1);
        wsc_wait_received(busy, ++want, DEADLINE_MS);
    }
    ck_assert(!wsc_got_close(quiet));
    ck_assert_uint_eq(h->closed->len, 0);
    start = g_get_monotonic_time();
    harness_expect_close(quiet, 4408, "console idle for too long");
    harness_expect_close(busy, 4408, "console idle for too long");
    ck_assert_int_ge(g_get_monotonic_time() - start, 900 * 1000);
    ck_assert_int_eq(harness_wait_closed(h, 2, DEADLINE_MS)->reason, SG_CLOSE_IDLE);
}
END_TEST

/* A token with a lifetime (Nova's, with enforce_session_timeout): the
 * console is cut when it ends, mid-session. */
START_TEST(test_session_expires_4410)
{
    g_autoptr(WsClient) c = NULL;
    g_autoptr(GByteArray) link = harness_link_message();
    gint64 start = g_get_monotonic_time();

    h = harness_start("harness.tokens", "script", NULL);
    c = harness_open_ws(h, "expiring", NULL);
    wsc_send_binary(c, link->data, link->len);
    wsc_wait_received(c, link->len, DEADLINE_MS);
    harness_expect_close(c, 4410, "console session expired");
    ck_assert_int_ge(g_get_monotonic_time() - start, (HARNESS_EXPIRING_MS - 100) * 1000);
    ck_assert_int_eq(harness_wait_closed(h, 1, DEADLINE_MS)->reason,
                     SG_CLOSE_SESSION_EXPIRED);
    wsc_run_until(harness_peer_saw_close, h->peer, DEADLINE_MS);
}
END_TEST

static gboolean
round_over(gpointer data)
{
    (void)data;
    return !sg_token_backend_revalidating(h->tokens);
}

/* Token revocation (token.h's watches; in the daemon, Nova's
 * revalidate_interval starts the rounds): two websockets of one console
 * cost one re-check a round; a re-check the backend cannot answer keeps
 * them relaying; one that says the token is unknown closes both with 4404
 * "console token revoked". */
START_TEST(test_token_revoked_4404)
{
    g_autoptr(WsClient) a = NULL;
    g_autoptr(WsClient) b = NULL;
    g_autoptr(GByteArray) link = harness_link_message();
    const HarnessClose *closed;

    h = harness_start("harness.tokens", "script", NULL);
    a = harness_open_console(h, NULL);
    b = harness_open_console(h, NULL);
    wsc_wait_received(a, link->len, DEADLINE_MS);
    wsc_wait_received(b, link->len, DEADLINE_MS);
    ck_assert_uint_eq(sg_token_backend_n_watched(h->tokens), 1);

    h->recheck_fails = true;
    h->recheck_error = SG_TOKEN_ERROR_UNAVAILABLE;
    sg_token_backend_revalidate_now(h->tokens);
    ck_assert(sg_token_backend_revalidating(h->tokens));
    wsc_run_until(round_over, NULL, DEADLINE_MS);
    /* Still relaying both ways, both of them. */
    wsc_send_binary(a, link->data, link->len);
    wsc_send_binary(b, link->data, link->len);
    wsc_wait_received(a, 2 * link->len, DEADLINE_MS);
    wsc_wait_received(b, 2 * link->len, DEADLINE_MS);
    ck_assert_uint_eq(h->closed->len, 0);
    ck_assert_uint_eq(h->rechecks, 1);

    h->recheck_error = SG_TOKEN_ERROR_UNKNOWN;
    sg_token_backend_revalidate_now(h->tokens);
    harness_expect_close(a, 4404, "console token revoked");
    harness_expect_close(b, 4404, "console token revoked");
    ck_assert_uint_eq(h->rechecks, 2);
    closed = harness_wait_closed(h, 2, DEADLINE_MS);
    ck_assert_int_eq(closed->reason, SG_CLOSE_TOKEN_REVOKED);
    ck_assert_int_eq(((HarnessClose *)g_ptr_array_index(h->closed, 0))->reason,
                     SG_CLOSE_TOKEN_REVOKED);
    ck_assert_ptr_nonnull(closed->detail);
    ck_assert_ptr_nonnull(strstr(closed->detail, "script no longer knows it"));
    ck_assert_uint_eq(sg_token_backend_n_watched(h->tokens), 0);
    wsc_run_until(harness_peer_saw_close, h->peer, DEADLINE_MS);
}
END_TEST

/* --- keepalive ---------------------------------------------------------------- */

static gboolean
pings_at_least(gpointer data)
{
    const struct { WsClient *c; guint n; } *want = data;

    return wsc_n_pings(want->c) >= want->n;
}

static void
wait_pings(WsClient *c, guint n, guint deadline_ms)
{
    struct { WsClient *c; guint n; } want = { c, n };

    wsc_run_until(pings_at_least, &want, deadline_ms);
}

/* A quiet console whose browser answers: a ping every interval, and it
 * stays open. */
START_TEST(test_keepalive_answered_stays)
{
    g_autoptr(WsClient) c = NULL;
    g_autoptr(GByteArray) link = harness_link_message();
    gint64 start;

    h = harness_start("server.ping_interval", "1", NULL);
    c = harness_open_console(h, NULL);
    wsc_wait_received(c, link->len, DEADLINE_MS);
    start = g_get_monotonic_time();
    wait_pings(c, 5, 8000);
    /* Five ticks of one second, the first a second after LINKING: not
     * sooner (one per interval), and not much later. */
    ck_assert_int_ge(g_get_monotonic_time() - start, 3900 * 1000);
    ck_assert_int_lt(g_get_monotonic_time() - start, 6500 * 1000);
    ck_assert(!wsc_got_close(c));
    ck_assert_uint_eq(h->closed->len, 0);
    /* And it still relays. */
    wsc_send_binary(c, "k", 1);
    wsc_wait_received(c, link->len + 1, DEADLINE_MS);
}
END_TEST

/* A browser that answers no ping and sends nothing: closed after 3
 * intervals that heard nothing (3 to 4 s here), with its SPICE connection. */
START_TEST(test_keepalive_unanswered_4408)
{
    g_autoptr(WsClient) c = NULL;
    g_autoptr(GByteArray) link = harness_link_message();
    const HarnessClose *closed;
    gint64 start, took;

    h = harness_start("server.ping_interval", "1", NULL);
    c = harness_open_ws(h, "good", NULL);
    wsc_answer_pings(c, false);
    wsc_send_binary(c, link->data, link->len);
    wsc_wait_received(c, link->len, DEADLINE_MS);
    start = g_get_monotonic_time();
    wsc_run_until(wsc_cond_closed, c, 8000);
    took = g_get_monotonic_time() - start;
    harness_expect_close(c, 4408, "no answer to pings");
    ck_assert_int_ge(took, 2900 * 1000);
    ck_assert_int_lt(took, 5000 * 1000);
    ck_assert_uint_ge(wsc_n_pings(c), 2);
    closed = harness_wait_closed(h, 1, DEADLINE_MS);
    ck_assert_int_eq(closed->reason, SG_CLOSE_PING_TIMEOUT);
    ck_assert_ptr_nonnull(closed->detail);
    ck_assert_ptr_nonnull(strstr(closed->detail, "nothing from the browser for 3 pings, 1 s apart"));
    ck_assert(closed->opened);
    wsc_run_until(harness_peer_saw_close, h->peer, DEADLINE_MS);
}
END_TEST

/* Data from the browser is as good as a pong: one that answers no ping
 * but types stays. */
START_TEST(test_keepalive_data_counts)
{
    g_autoptr(WsClient) c = NULL;
    g_autoptr(GByteArray) link = harness_link_message();
    guint64 want = link->len;

    h = harness_start("server.ping_interval", "1", NULL);
    c = harness_open_ws(h, "good", NULL);
    wsc_answer_pings(c, false);
    wsc_send_binary(c, link->data, link->len);
    wsc_wait_received(c, want, DEADLINE_MS);
    /* Past 5 intervals: 3 silent ones would have closed it. */
    for (int i = 0; i < 11; i++) {
        wsc_run_for(500);
        wsc_send_binary(c, "x", 1);
        wsc_wait_received(c, ++want, DEADLINE_MS);
    }
    ck_assert_uint_ge(wsc_n_pings(c), 3);
    ck_assert(!wsc_got_close(c));
    ck_assert_uint_eq(h->closed->len, 0);
}
END_TEST

/* ping_interval = 0: no ping, and a silent browser is not closed for it. */
START_TEST(test_keepalive_off)
{
    g_autoptr(WsClient) c = NULL;
    g_autoptr(GByteArray) link = harness_link_message();

    h = harness_start("server.ping_interval", "0", NULL);
    c = harness_open_ws(h, "good", NULL);
    wsc_answer_pings(c, false);
    wsc_send_binary(c, link->data, link->len);
    wsc_wait_received(c, link->len, DEADLINE_MS);
    wsc_run_for(2500);
    ck_assert_uint_eq(wsc_n_pings(c), 0);
    ck_assert(!wsc_got_close(c));
    ck_assert_uint_eq(h->closed->len, 0);
}
END_TEST

static Suite *
core_deadlines_suite(void)
{
    Suite *s = suite_create("core_deadlines");
    TCase *deadlines = tcase_create("deadlines");

    tcase_set_timeout(deadlines, 30);
    tcase_add_checked_fixture(deadlines, NULL, teardown);
    tcase_add_test(deadlines, test_handshake_timeout_half_request);
    tcase_add_test(deadlines, test_handshake_timeout_silent);
    tcase_add_test(deadlines, test_link_timeout_4408);
    tcase_add_test(deadlines, test_link_unanswered_4504);
    tcase_add_test(deadlines, test_idle_timeout_4408);
    tcase_add_test(deadlines, test_idle_timeout_not_while_busy);
    tcase_add_test(deadlines, test_idle_timeout_is_the_consoles);
    tcase_add_test(deadlines, test_session_expires_4410);
    tcase_add_test(deadlines, test_token_revoked_4404);
    tcase_add_test(deadlines, test_keepalive_answered_stays);
    tcase_add_test(deadlines, test_keepalive_unanswered_4408);
    tcase_add_test(deadlines, test_keepalive_data_counts);
    tcase_add_test(deadlines, test_keepalive_off);
    suite_add_tcase(s, deadlines);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(core_deadlines_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
