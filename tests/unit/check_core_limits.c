/* SPDX-License-Identifier: Apache-2.0 */
/* check_core_limits.c - [limits] through real sessions, in-process
 * (core_harness.c: listener, session, upstream, relay between ws_client.c
 * and the fault-injecting fake_spice.c, with one worker's shared zone as
 * main.c maps it): the websocket over per_token, per_ip or max_sessions
 * is closed with 4429 and its reason, before its token is looked up and
 * without reaching the SPICE server, counted in the zone's closed-by-
 * reason counters; one that closes frees its slot; and every way a
 * session ends gives its counts back exactly once (the browser closing or
 * vanishing, the SPICE server closing, a refused token, an unreachable
 * console, a text frame, a bad link, shutdown, the listener freed with
 * sessions open). Every wait has a deadline; nothing sleeps. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <glib.h>

#include "core_harness.h"
#include "fake_spice.h"
#include "hub.h"
#include "listener.h"
#include "log.h"
#include "session_limits.h"
#include "shared_zone.h"
#include "ws_client.h"

#define DEADLINE_MS 5000

static Harness *h;

static void
teardown(void)
{
    g_clear_pointer(&h, harness_stop);
}

/* The counts the zone holds now: for a console, a client address, in
 * all. */
static guint32
console_count(const char *token)
{
    g_autofree char *tag = sg_log_redact(token);

    return sg_zone_limit_count(h->zone, SG_LIMITS_TABLE_CONSOLE, tag);
}

static guint32
address_count(const char *addr)
{
    return sg_zone_limit_count(h->zone, SG_LIMITS_TABLE_ADDRESS, addr);
}

static guint32
total_count(void)
{
    return sg_zone_limit_count(h->zone, SG_LIMITS_TABLE_TOTAL, SG_LIMITS_TOTAL_KEY);
}

static gboolean
hub_empty(gpointer data)
{
    (void)data;
    return sg_hub_count(h->hub) == 0;
}

/* Exactly GPOINTER_TO_UINT(@data) sessions are left (the others were
 * freed: lws let go of their websockets). */
static gboolean
hub_has(gpointer data)
{
    return sg_hub_count(h->hub) == GPOINTER_TO_UINT(data);
}

/* Every session has been freed. */
static void
wait_all_gone(void)
{
    wsc_run_until(hub_empty, NULL, DEADLINE_MS);
}

/* A console to the fake peer whose link came back: relaying. */
static WsClient *
open_relaying(const WsOptions *opt)
{
    g_autoptr(GByteArray) link = harness_link_message();
    WsClient *c = harness_open_console(h, opt);

    wsc_wait_received(c, link->len, DEADLINE_MS);
    ck_assert(!wsc_got_close(c));
    return c;
}

/* The browser closes @c; waits until its session is gone. */
static void
close_and_wait(WsClient *c, guint closed_before)
{
    wsc_send_close(c, 1000, "bye");
    wsc_run_until(wsc_cond_eof, c, DEADLINE_MS);
    harness_wait_closed(h, closed_before + 1, DEADLINE_MS);
}

static guint64
zone_closed(SgCloseReason reason)
{
    SgZoneStats st;

    sg_zone_read(h->zone, &st);
    return sg_zone_closed(&st, reason);
}

/* per_token = 4: the fifth websocket of one console gets 4429 before its
 * token is looked up; another console is not affected; closing one frees
 * a slot. */
START_TEST(test_per_token_4429)
{
    WsClient *c[4];
    g_autoptr(WsClient) over = NULL;
    g_autoptr(WsClient) other = NULL;
    g_autoptr(WsClient) again = NULL;
    g_autoptr(GByteArray) link = harness_link_message();
    const HarnessClose *closed;

    h = harness_start("limits.per_token", "4", NULL);
    for (guint i = 0; i < 4; i++)
        c[i] = open_relaying(NULL);
    ck_assert_uint_eq(console_count("good"), 4);
    over = harness_open_ws(h, "good", NULL);
    harness_expect_close(over, 4429, "too many connections to this console");
    closed = harness_wait_closed(h, 1, DEADLINE_MS);
    ck_assert_int_eq(closed->reason, SG_CLOSE_LIMIT_CONSOLE);
    ck_assert(!closed->opened);
    ck_assert_str_eq(closed->detail, "[limits] per_token = 4 reached");
    /* The metric: the zone counts refusals by reason. */
    ck_assert_uint_eq(zone_closed(SG_CLOSE_LIMIT_CONSOLE), 1);
    /* It never reached the SPICE server, and took nothing. */
    ck_assert_uint_eq(fsp_n_accepted(h->peer), 4);
    wsc_run_until(hub_has, GUINT_TO_POINTER(4), DEADLINE_MS);
    ck_assert_uint_eq(console_count("good"), 4);

    /* Another console ("dead" leads nowhere, but it passes the limit;
     * spicegate connects once the link has come). */
    other = harness_open_ws(h, "dead", NULL);
    wsc_send_binary(other, link->data, link->len);
    harness_expect_close(other, 4502, "console unreachable");

    /* One of the four closes: a fifth may open. */
    close_and_wait(c[0], 2);
    ck_assert_uint_eq(console_count("good"), 3);
    again = open_relaying(NULL);
    ck_assert_uint_eq(console_count("good"), 4);
    wsc_free(c[0]);
    for (guint i = 1; i < 4; i++)
        wsc_free(c[i]);
}
END_TEST

/* per_ip = 2: the third websocket from 127.0.0.1 gets 4429, whatever the
 * console; 127.0.0.2 is another client. */
START_TEST(test_per_ip_4429)
{
    g_autoptr(WsClient) a = NULL;
    g_autoptr(WsClient) b = NULL;
    g_autoptr(WsClient) over = NULL;
    g_autoptr(WsClient) elsewhere = NULL;
    WsOptions from2 = { .source = "127.0.0.2" };

    h = harness_start("limits.per_ip", "2", NULL);
    a = open_relaying(NULL);
    b = open_relaying(NULL);
    over = harness_open_ws(h, "dead", NULL);
    harness_expect_close(over, 4429, "too many consoles from this address");
    ck_assert_int_eq(harness_wait_closed(h, 1, DEADLINE_MS)->reason, SG_CLOSE_LIMIT_ADDRESS);
    elsewhere = open_relaying(&from2);
    ck_assert_uint_eq(address_count("127.0.0.1"), 2);
    ck_assert_uint_eq(address_count("127.0.0.2"), 1);
    ck_assert_uint_eq(zone_closed(SG_CLOSE_LIMIT_ADDRESS), 1);
}
END_TEST

/* max_sessions = 2: the third websocket, from any address, gets 4429. */
START_TEST(test_max_sessions_4429)
{
    g_autoptr(WsClient) a = NULL;
    g_autoptr(WsClient) b = NULL;
    g_autoptr(WsClient) over = NULL;
    WsOptions from2 = { .source = "127.0.0.2" };
    WsOptions from3 = { .source = "127.0.0.3" };

    h = harness_start("limits.max_sessions", "2", NULL);
    a = open_relaying(NULL);
    b = open_relaying(&from2);
    over = harness_open_ws(h, "good", &from3);
    harness_expect_close(over, 4429, "too many consoles open, try again later");
    ck_assert_int_eq(harness_wait_closed(h, 1, DEADLINE_MS)->reason, SG_CLOSE_LIMIT_TOTAL);
    ck_assert_uint_eq(total_count(), 2);
    wsc_run_until(hub_has, GUINT_TO_POINTER(2), DEADLINE_MS);
}
END_TEST

/* With limits set, every way a session ends gives its counts back, and
 * only once: after each, the zone holds exactly what is still open. */
static void
expect_counts(guint32 n)
{
    ck_assert_uint_eq(total_count(), n);
    ck_assert_uint_eq(address_count("127.0.0.1"), n);
    ck_assert_uint_eq(console_count("good"), n);
}

static const char *const all_limits[] = {
    "limits.max_sessions", "100", "limits.per_ip", "100", "limits.per_token", "100",
};

#define START_WITH_LIMITS(...)                                                        \
    harness_start(all_limits[0], all_limits[1], all_limits[2], all_limits[3],         \
                  all_limits[4], all_limits[5], ##__VA_ARGS__, NULL)

START_TEST(test_release_browser_ends)
{
    g_autoptr(WsClient) keep = NULL;
    g_autoptr(WsClient) c = NULL;
    g_autoptr(WsClient) gone = NULL;

    h = START_WITH_LIMITS();
    keep = open_relaying(NULL);
    expect_counts(1);
    /* The browser closes (1000, "browser closed"). */
    c = open_relaying(NULL);
    expect_counts(2);
    close_and_wait(c, 0);
    ck_assert_int_eq(harness_wait_closed(h, 1, DEADLINE_MS)->reason, SG_CLOSE_CLIENT_CLOSED);
    expect_counts(1);
    /* The browser vanishes: the connection ends without a close frame. */
    gone = open_relaying(NULL);
    expect_counts(2);
    g_clear_pointer(&gone, wsc_free);
    harness_wait_closed(h, 2, DEADLINE_MS);
    expect_counts(1);
}
END_TEST

START_TEST(test_release_server_ends)
{
    g_autoptr(WsClient) keep = NULL;
    g_autoptr(WsClient) c = NULL;

    h = START_WITH_LIMITS();
    keep = open_relaying(NULL);
    fsp_set_mode(h->peer, FSP_CLOSE);
    /* The SPICE server closes once the link arrived: 1000. */
    c = harness_open_console(h, NULL);
    harness_expect_close(c, 1000, "console closed");
    ck_assert_int_eq(harness_wait_closed(h, 1, DEADLINE_MS)->reason, SG_CLOSE_TARGET_CLOSED);
    wsc_run_until(hub_has, GUINT_TO_POINTER(1), DEADLINE_MS);
    expect_counts(1);
}
END_TEST

/* Refusals after the counts were taken: each holds them until its
 * websocket is gone, then gives them back. */
START_TEST(test_release_refusals)
{
    g_autoptr(WsClient) keep = NULL;
    g_autoptr(WsClient) c = NULL;
    const char text[] = "hello";
    static const guint8 not_link[34] = { 'G', 'E', 'T', ' ' };
    g_autoptr(GByteArray) link = harness_link_message();

    h = START_WITH_LIMITS();
    keep = open_relaying(NULL);

    /* A token the file does not know (4404): counted under its own tag. */
    c = harness_open_ws(h, "nope", NULL);
    harness_expect_close(c, 4404, "console token invalid or expired");
    g_clear_pointer(&c, wsc_free);
    wsc_run_until(hub_has, GUINT_TO_POINTER(1), DEADLINE_MS);
    ck_assert_uint_eq(console_count("nope"), 0);
    expect_counts(1);

    /* A console that cannot be reached (4502), once its link has come. */
    c = harness_open_ws(h, "dead", NULL);
    wsc_send_binary(c, link->data, link->len);
    harness_expect_close(c, 4502, "console unreachable");
    g_clear_pointer(&c, wsc_free);
    wsc_run_until(hub_has, GUINT_TO_POINTER(1), DEADLINE_MS);
    ck_assert_uint_eq(console_count("dead"), 0);
    expect_counts(1);

    /* A text frame (1003). */
    c = harness_open_ws(h, "good", NULL);
    wsc_send_text(c, text);
    harness_expect_close(c, 1003, "text frames are not supported");
    g_clear_pointer(&c, wsc_free);
    wsc_run_until(hub_has, GUINT_TO_POINTER(1), DEADLINE_MS);
    expect_counts(1);

    /* Not a SPICE link message (4400). */
    c = harness_open_ws(h, "good", NULL);
    wsc_send_binary(c, not_link, sizeof(not_link));
    harness_expect_close(c, 4400, "not a SPICE link message");
    g_clear_pointer(&c, wsc_free);
    wsc_run_until(hub_has, GUINT_TO_POINTER(1), DEADLINE_MS);
    expect_counts(1);

    /* No token at all: refused before any count was taken. */
    c = harness_open_ws(h, NULL, NULL);
    harness_expect_close(c, 4401, "no console token");
    g_clear_pointer(&c, wsc_free);
    wsc_run_until(hub_has, GUINT_TO_POINTER(1), DEADLINE_MS);
    expect_counts(1);
}
END_TEST

/* A session refused by a limit holds nothing: when the others close, the
 * counts are 0, not -1 (a double release) or 1 (a leak). */
START_TEST(test_release_limit_refusal)
{
    g_autoptr(WsClient) a = NULL;
    g_autoptr(WsClient) over = NULL;

    h = harness_start("limits.max_sessions", "1", "limits.per_ip", "1", NULL);
    a = open_relaying(NULL);
    over = harness_open_ws(h, "good", NULL);
    harness_expect_close(over, 4429, "too many consoles from this address");
    g_clear_pointer(&over, wsc_free);
    wsc_run_until(hub_has, GUINT_TO_POINTER(1), DEADLINE_MS);
    ck_assert_uint_eq(total_count(), 1);
    ck_assert_uint_eq(address_count("127.0.0.1"), 1);
    close_and_wait(a, 1);
    g_clear_pointer(&a, wsc_free);
    wait_all_gone();
    ck_assert_uint_eq(total_count(), 0);
    ck_assert_uint_eq(address_count("127.0.0.1"), 0);
    /* And a new one opens. */
    a = open_relaying(NULL);
    ck_assert_uint_eq(total_count(), 1);
}
END_TEST

/* Shutdown (1001). */
START_TEST(test_release_shutdown)
{
    g_autoptr(WsClient) a = NULL;

    h = START_WITH_LIMITS();
    a = open_relaying(NULL);
    expect_counts(1);
    harness_shutdown(h);
    harness_expect_close(a, 1001, "spicegate shutting down");
    wait_all_gone();
    expect_counts(0);
}
END_TEST

/* The listener freed with sessions open (the end of a stop that ran out
 * of time): lws closes them as its context goes, and nothing is left
 * counted. */
START_TEST(test_release_teardown)
{
    g_autoptr(WsClient) a = NULL;
    g_autoptr(WsClient) b = NULL;

    h = START_WITH_LIMITS();
    a = open_relaying(NULL);
    b = open_relaying(NULL);
    expect_counts(2);
    g_clear_pointer(&h->listener, sg_listener_free);
    ck_assert_uint_eq(sg_hub_count(h->hub), 0);
    expect_counts(0);
}
END_TEST

static Suite *
core_limits_suite(void)
{
    Suite *s = suite_create("core_limits");
    TCase *refuse = tcase_create("refuse");
    TCase *release = tcase_create("release");

    tcase_set_timeout(refuse, 30);
    tcase_add_checked_fixture(refuse, NULL, teardown);
    tcase_add_test(refuse, test_per_token_4429);
    tcase_add_test(refuse, test_per_ip_4429);
    tcase_add_test(refuse, test_max_sessions_4429);
    suite_add_tcase(s, refuse);

    tcase_set_timeout(release, 30);
    tcase_add_checked_fixture(release, NULL, teardown);
    tcase_add_test(release, test_release_browser_ends);
    tcase_add_test(release, test_release_server_ends);
    tcase_add_test(release, test_release_refusals);
    tcase_add_test(release, test_release_limit_refusal);
    tcase_add_test(release, test_release_shutdown);
    tcase_add_test(release, test_release_teardown);
    suite_add_tcase(s, release);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(core_limits_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
