/* SPDX-License-Identifier: Apache-2.0 */
/* check_core_drain.c - the core in-process, without QEMU or a browser
 * (core_harness.c: listener, session, upstream, relay between ws_client.c
 * and the fault-injecting fake_spice.c): the close deadlines at the end
 * of a session whose browser does not read: close_timeout in
 * DRAINING (the SPICE server gone, the browser not taking what it is
 * owed: spicegate hangs up, no close frame) and in CLOSING (a close frame
 * the browser does not read), and DRAINING delivering everything, then
 * 1000, when the browser reads in time. Every wait has a deadline;
 * nothing sleeps. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <glib.h>

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

/* --- deadlines ------------------------------------------------------------- */

/* The SPICE server is gone (reset) while the browser, which stopped
 * reading, is still owed bytes: DRAINING, and when the browser does not
 * take them within close_timeout spicegate hangs up (no close frame). */
START_TEST(test_close_timeout_draining)
{
    WsOptions opt = { .rcvbuf = 64 * 1024 };
    g_autoptr(WsClient) c = NULL;
    const HarnessClose *closed;
    guint64 bad = 0;

    h = harness_start("server.close_timeout", "1", NULL);
    fsp_set_mode(h->peer, FSP_FLOOD);
    fsp_set_flood(h->peer, 64u << 20, false);
    fsp_set_buffers(h->peer, 64 * 1024, 0);
    c = harness_open_console(h, &opt);
    wsc_wait_received(c, 1, DEADLINE_MS);
    wsc_pause_reading(c, true);
    harness_wait_relay_stuck(h);
    fsp_close_all(h->peer, true);
    /* The next upload finds the SPICE server gone. */
    wsc_send_binary(c, "x", 1);
    closed = harness_wait_closed(h, 1, DEADLINE_MS);
    ck_assert_int_eq(closed->reason, SG_CLOSE_TARGET_CLOSED);
    ck_assert_ptr_nonnull(closed->detail);
    ck_assert_ptr_nonnull(strstr(closed->detail, "hung up"));
    wsc_pause_reading(c, false);
    wsc_run_until(wsc_cond_eof, c, DEADLINE_MS);
    ck_assert(!wsc_got_close(c));
    ck_assert_msg(fsp_pattern_check(wsc_received(c)->data, wsc_received(c)->len, 0, &bad),
                  "byte %" G_GUINT64_FORMAT " differs", bad);
}
END_TEST

/* Same, but the browser reads again in time: it gets what it was owed,
 * then 1000. */
START_TEST(test_draining_delivers_then_1000)
{
    WsOptions opt = { .rcvbuf = 64 * 1024 };
    g_autoptr(WsClient) c = NULL;
    const HarnessClose *closed;
    guint64 bad = 0;

    h = harness_start("server.close_timeout", "5", NULL);
    fsp_set_mode(h->peer, FSP_FLOOD);
    fsp_set_flood(h->peer, 64u << 20, false);
    fsp_set_buffers(h->peer, 64 * 1024, 0);
    c = harness_open_console(h, &opt);
    wsc_wait_received(c, 1, DEADLINE_MS);
    wsc_pause_reading(c, true);
    harness_wait_relay_stuck(h);
    fsp_close_all(h->peer, true);
    wsc_send_binary(c, "x", 1);
    wsc_run_for(200);
    ck_assert_uint_eq(h->closed->len, 0);        /* waiting for the browser */
    wsc_pause_reading(c, false);
    harness_expect_close(c, 1000, "console closed");
    closed = harness_wait_closed(h, 1, DEADLINE_MS);
    ck_assert_int_eq(closed->reason, SG_CLOSE_TARGET_CLOSED);
    ck_assert_uint_eq(closed->bytes_down, wsc_received_total(c));
    ck_assert_msg(fsp_pattern_check(wsc_received(c)->data, wsc_received(c)->len, 0, &bad),
                  "byte %" G_GUINT64_FORMAT " differs", bad);
}
END_TEST

/* The browser stops reading and nothing moves: idle_timeout closes, the
 * close frame cannot go out, and close_timeout later spicegate hangs up. */
START_TEST(test_close_timeout_closing)
{
    WsOptions opt = { .rcvbuf = 64 * 1024 };
    g_autoptr(WsClient) c = NULL;
    const HarnessClose *closed;

    h = harness_start("server.idle_timeout", "1", "server.close_timeout", "1", NULL);
    fsp_set_mode(h->peer, FSP_FLOOD);
    fsp_set_flood(h->peer, 64u << 20, false);
    fsp_set_buffers(h->peer, 64 * 1024, 0);
    c = harness_open_console(h, &opt);
    wsc_wait_received(c, 1, DEADLINE_MS);
    wsc_pause_reading(c, true);
    closed = harness_wait_closed(h, 1, 3 * DEADLINE_MS);
    ck_assert_int_eq(closed->reason, SG_CLOSE_IDLE);
    ck_assert_ptr_nonnull(closed->detail);
    ck_assert_ptr_nonnull(strstr(closed->detail, "hung up"));
    wsc_pause_reading(c, false);
    wsc_run_until(wsc_cond_eof, c, DEADLINE_MS);
    ck_assert(!wsc_got_close(c));
}
END_TEST

static Suite *
core_drain_suite(void)
{
    Suite *s = suite_create("core_drain");
    TCase *drain = tcase_create("drain");

    tcase_set_timeout(drain, 30);
    tcase_add_checked_fixture(drain, NULL, teardown);
    tcase_add_test(drain, test_close_timeout_draining);
    tcase_add_test(drain, test_draining_delivers_then_1000);
    tcase_add_test(drain, test_close_timeout_closing);
    suite_add_tcase(s, drain);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(core_drain_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
