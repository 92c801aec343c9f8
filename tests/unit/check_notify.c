/* SPDX-License-Identifier: Apache-2.0 */
/* check_notify.c - unit tests for what spicegate tells systemd
 * (workers.h): the stop time it asks for (drain and shutdown included),
 * the STATUS= line, and when WATCHDOG=1 is due. The messages go to a real
 * datagram socket the test binds, as systemd's $NOTIFY_SOCKET. */
#include "autoconfig.h"

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <check.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "workers.h"

static char *dir;
static char *path;
static int sock = -1;

static void
setup(void)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    struct timeval tv = { .tv_sec = 5 };

    dir = g_dir_make_tmp("check_notify-XXXXXX", NULL);
    ck_assert_ptr_nonnull(dir);
    path = g_build_filename(dir, "notify", NULL);
    ck_assert_uint_lt(strlen(path), sizeof(sun.sun_path));
    memcpy(sun.sun_path, path, strlen(path));
    sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(sock, 0);
    ck_assert_int_eq(bind(sock, (struct sockaddr *)&sun, sizeof(sun)), 0);
    setsockopt(sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    g_setenv("NOTIFY_SOCKET", path, TRUE);
}

static void
teardown(void)
{
    g_unsetenv("NOTIFY_SOCKET");
    g_unsetenv("WATCHDOG_USEC");
    g_unsetenv("WATCHDOG_PID");
    close(sock);
    g_unlink(path);
    g_rmdir(dir);
    g_clear_pointer(&path, g_free);
    g_clear_pointer(&dir, g_free);
}

/* The next datagram, as text. */
static char *
recv_message(void)
{
    char buf[4096];
    ssize_t n = recv(sock, buf, sizeof(buf) - 1, 0);

    ck_assert_msg(n >= 0, "no message on $NOTIFY_SOCKET");
    buf[n] = '\0';
    return g_strdup(buf);
}

START_TEST(test_stop_time_includes_the_drain)
{
    guint margins = SG_WORKER_STOP_MARGIN_S + SG_UNIT_STOP_MARGIN_S;
    g_autofree char *got = NULL;
    g_autofree char *want = NULL;

    ck_assert_uint_eq(sg_stop_timeout_s(0, 3), 3 + margins);
    ck_assert_uint_eq(sg_stop_timeout_s(600, 3), 603 + margins);
    /* What configure derived the unit's TimeoutStopSec from. */
    ck_assert_uint_eq(sg_stop_timeout_s(atoi(SG_DRAIN_TIMEOUT_DEFAULT_S),
                                        atoi(SG_SHUTDOWN_TIMEOUT_DEFAULT_S)),
                      atoi(SG_DRAIN_TIMEOUT_DEFAULT_S) + atoi(SG_SHUTDOWN_TIMEOUT_DEFAULT_S) +
                          margins);
    sg_notify_systemd_stopping(300, 5);
    got = recv_message();
    want = g_strdup_printf("STOPPING=1\nEXTEND_TIMEOUT_USEC=%u000000", 305 + margins);
    ck_assert_str_eq(got, want);
}
END_TEST

START_TEST(test_status_text)
{
    g_autofree char *serving = sg_notify_status_text(SG_RUN_SERVING, 12, 300);
    g_autofree char *draining = sg_notify_status_text(SG_RUN_DRAINING, 3, 300);
    g_autofree char *stopping = sg_notify_status_text(SG_RUN_STOPPING, 1, 300);

    ck_assert_str_eq(serving, "serving: 12 session(s) open");
    ck_assert_str_eq(draining, "draining: 3 session(s) open, no new ones; closed with 1001 "
                               "after drain_timeout (300 s) if still open");
    ck_assert_str_eq(stopping, "stopping: closing 1 session(s)");
}
END_TEST

START_TEST(test_enabled)
{
    ck_assert(sg_notify_systemd_enabled());
    g_setenv("NOTIFY_SOCKET", "", TRUE);
    ck_assert(!sg_notify_systemd_enabled());
    g_unsetenv("NOTIFY_SOCKET");
    ck_assert(!sg_notify_systemd_enabled());
}
END_TEST

START_TEST(test_watchdog_period)
{
    g_autofree char *mine = g_strdup_printf("%d", (int)getpid());
    g_autofree char *other = g_strdup_printf("%d", (int)getpid() + 1);

    ck_assert_uint_eq(sg_notify_watchdog_period_us(), 0);      /* no WatchdogSec */
    g_setenv("WATCHDOG_USEC", "20000000", TRUE);
    ck_assert_uint_eq(sg_notify_watchdog_period_us(), 10000000); /* half */
    g_setenv("WATCHDOG_PID", mine, TRUE);
    ck_assert_uint_eq(sg_notify_watchdog_period_us(), 10000000);
    g_setenv("WATCHDOG_PID", other, TRUE);                     /* not watched */
    ck_assert_uint_eq(sg_notify_watchdog_period_us(), 0);
    g_setenv("WATCHDOG_PID", "x", TRUE);
    ck_assert_uint_eq(sg_notify_watchdog_period_us(), 0);
    g_unsetenv("WATCHDOG_PID");
    g_setenv("WATCHDOG_USEC", "0", TRUE);
    ck_assert_uint_eq(sg_notify_watchdog_period_us(), 0);
    g_setenv("WATCHDOG_USEC", "12abc", TRUE);
    ck_assert_uint_eq(sg_notify_watchdog_period_us(), 0);
    g_setenv("WATCHDOG_USEC", "1", TRUE);
    ck_assert_uint_eq(sg_notify_watchdog_period_us(), 1);     /* never 0 once on */
}
END_TEST

static Suite *
notify_suite(void)
{
    Suite *s = suite_create("notify");
    TCase *tc = tcase_create("systemd");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_stop_time_includes_the_drain);
    tcase_add_test(tc, test_status_text);
    tcase_add_test(tc, test_enabled);
    tcase_add_test(tc, test_watchdog_period);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(notify_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
