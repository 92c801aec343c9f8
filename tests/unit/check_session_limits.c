/* SPDX-License-Identifier: Apache-2.0 */
/* check_session_limits.c - unit tests for [limits] in the shared zone
 * (session_limits.c): each limit refuses the websocket over it with its
 * own close reason, the most specific first; a refusal holds nothing, not
 * even the counts of the limits it passed; a hold is given back once;
 * max_sessions holds across workers, and a dead worker's counts come back
 * (sg_zone_retire()); with no limit set nothing is counted. The same
 * limits driven through real sessions are in check_core_limits.c.
 */
#include "autoconfig.h"

#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <glib.h>

#include "session_limits.h"
#include "shared_zone.h"

static SgZone *
zone_new(guint workers)
{
    SgZone *zone = sg_zone_new(workers, SG_LIMITS_TABLES, SG_LIMITS_TABLE_SLOTS, NULL);

    ck_assert_ptr_nonnull(zone);
    return zone;
}

static guint32
count(SgZone *zone, guint table, const char *key)
{
    return sg_zone_limit_count(zone, table, key);
}

/* Takes one websocket, expecting it taken. */
static void
take(const SgLimits *limits, const char *addr, const char *tag, SgLimitsHold *hold)
{
    SgCloseReason refusal = SG_CLOSE_INTERNAL;
    g_autofree char *detail = NULL;

    ck_assert(sg_limits_acquire(limits, addr, tag, hold, &refusal, &detail));
    ck_assert_ptr_null(detail);
}

/* Expects a refusal with @reason and a detail naming @setting. */
static void
refused(const SgLimits *limits, const char *addr, const char *tag, SgCloseReason reason,
        const char *setting)
{
    SgCloseReason refusal = SG_CLOSE_INTERNAL;
    g_autofree char *detail = NULL;
    SgLimitsHold hold;

    ck_assert(!sg_limits_acquire(limits, addr, tag, &hold, &refusal, &detail));
    ck_assert_int_eq(refusal, reason);
    ck_assert_ptr_nonnull(detail);
    ck_assert_msg(strstr(detail, setting) != NULL, "detail \"%s\" lacks %s", detail, setting);
    for (guint t = 0; t < SG_LIMITS_TABLES; t++)
        ck_assert(!hold.tickets[t].held);
}

START_TEST(test_limits_per_token)
{
    g_autoptr(SgZone) zone = zone_new(1);
    SgLimits limits = { .zone = zone, .per_token = 4 };
    SgLimitsHold hold[5];

    for (guint i = 0; i < 4; i++)
        take(&limits, "10.0.0.1", "tok:aaaaaaaa", &hold[i]);
    refused(&limits, "10.0.0.1", "tok:aaaaaaaa", SG_CLOSE_LIMIT_CONSOLE,
            "[limits] per_token = 4 reached");
    /* Another console from the same address is another count. */
    take(&limits, "10.0.0.1", "tok:bbbbbbbb", &hold[4]);
    ck_assert_uint_eq(count(zone, SG_LIMITS_TABLE_CONSOLE, "tok:aaaaaaaa"), 4);
    /* Only the limit that is set counts. */
    ck_assert_uint_eq(count(zone, SG_LIMITS_TABLE_ADDRESS, "10.0.0.1"), 0);
    ck_assert_uint_eq(count(zone, SG_LIMITS_TABLE_TOTAL, SG_LIMITS_TOTAL_KEY), 0);

    /* One closes: one more may open. */
    sg_limits_release(&limits, &hold[0]);
    ck_assert_uint_eq(count(zone, SG_LIMITS_TABLE_CONSOLE, "tok:aaaaaaaa"), 3);
    take(&limits, "10.0.0.1", "tok:aaaaaaaa", &hold[0]);
    refused(&limits, "10.0.0.1", "tok:aaaaaaaa", SG_CLOSE_LIMIT_CONSOLE, "per_token");
    for (guint i = 0; i < 5; i++)
        sg_limits_release(&limits, &hold[i]);
    ck_assert_uint_eq(count(zone, SG_LIMITS_TABLE_CONSOLE, "tok:aaaaaaaa"), 0);
    ck_assert_uint_eq(count(zone, SG_LIMITS_TABLE_CONSOLE, "tok:bbbbbbbb"), 0);
}
END_TEST

START_TEST(test_limits_per_ip)
{
    g_autoptr(SgZone) zone = zone_new(1);
    SgLimits limits = { .zone = zone, .per_ip = 2 };
    SgLimitsHold hold[3];

    take(&limits, "10.0.0.1", "tok:aaaaaaaa", &hold[0]);
    take(&limits, "10.0.0.1", "tok:bbbbbbbb", &hold[1]);
    refused(&limits, "10.0.0.1", "tok:cccccccc", SG_CLOSE_LIMIT_ADDRESS,
            "[limits] per_ip = 2 reached");
    take(&limits, "::1", "tok:cccccccc", &hold[2]);
    sg_limits_release(&limits, &hold[1]);
    take(&limits, "10.0.0.1", "tok:cccccccc", &hold[1]);
    for (guint i = 0; i < 3; i++)
        sg_limits_release(&limits, &hold[i]);
    ck_assert_uint_eq(count(zone, SG_LIMITS_TABLE_ADDRESS, "10.0.0.1"), 0);
    ck_assert_uint_eq(count(zone, SG_LIMITS_TABLE_ADDRESS, "::1"), 0);
}
END_TEST

/* A refusal by a later limit gives back what the earlier ones took, and
 * the most specific limit reached is the one named. */
START_TEST(test_limits_refusal_holds_nothing)
{
    g_autoptr(SgZone) zone = zone_new(1);
    SgLimits limits = { .zone = zone, .max_sessions = 3, .per_ip = 2, .per_token = 4 };
    SgLimitsHold hold[3];

    take(&limits, "10.0.0.1", "tok:aaaaaaaa", &hold[0]);
    take(&limits, "10.0.0.1", "tok:aaaaaaaa", &hold[1]);
    /* per_token passes (2 of 4), per_ip does not: the token's count
     * taken on the way is given back. */
    refused(&limits, "10.0.0.1", "tok:aaaaaaaa", SG_CLOSE_LIMIT_ADDRESS, "per_ip");
    ck_assert_uint_eq(count(zone, SG_LIMITS_TABLE_CONSOLE, "tok:aaaaaaaa"), 2);
    ck_assert_uint_eq(count(zone, SG_LIMITS_TABLE_ADDRESS, "10.0.0.1"), 2);
    ck_assert_uint_eq(count(zone, SG_LIMITS_TABLE_TOTAL, SG_LIMITS_TOTAL_KEY), 2);

    take(&limits, "10.0.0.2", "tok:bbbbbbbb", &hold[2]);
    /* Both per_ip and max_sessions are reached: per_ip is named. */
    refused(&limits, "10.0.0.1", "tok:cccccccc", SG_CLOSE_LIMIT_ADDRESS, "per_ip");
    /* Only max_sessions: its own reason; nothing of the others kept. */
    refused(&limits, "10.0.0.3", "tok:dddddddd", SG_CLOSE_LIMIT_TOTAL,
            "[limits] max_sessions = 3 reached");
    ck_assert_uint_eq(count(zone, SG_LIMITS_TABLE_ADDRESS, "10.0.0.3"), 0);
    ck_assert_uint_eq(count(zone, SG_LIMITS_TABLE_CONSOLE, "tok:dddddddd"), 0);
    ck_assert_uint_eq(count(zone, SG_LIMITS_TABLE_TOTAL, SG_LIMITS_TOTAL_KEY), 3);
    for (guint i = 0; i < 3; i++)
        sg_limits_release(&limits, &hold[i]);
    ck_assert_uint_eq(count(zone, SG_LIMITS_TABLE_TOTAL, SG_LIMITS_TOTAL_KEY), 0);
    ck_assert_uint_eq(count(zone, SG_LIMITS_TABLE_ADDRESS, "10.0.0.1"), 0);
    ck_assert_uint_eq(count(zone, SG_LIMITS_TABLE_CONSOLE, "tok:aaaaaaaa"), 0);
}
END_TEST

/* Given back once: a second release, or a release of a hold that took
 * nothing (a refused session, one refused before it started), changes
 * nothing. */
START_TEST(test_limits_release_once)
{
    g_autoptr(SgZone) zone = zone_new(1);
    SgLimits limits = { .zone = zone, .max_sessions = 10, .per_ip = 10, .per_token = 10 };
    SgLimitsHold a;
    SgLimitsHold b;
    SgLimitsHold never = { 0 };

    take(&limits, "10.0.0.1", "tok:aaaaaaaa", &a);
    take(&limits, "10.0.0.1", "tok:aaaaaaaa", &b);
    sg_limits_release(&limits, &a);
    sg_limits_release(&limits, &a);
    sg_limits_release(&limits, &never);
    ck_assert_uint_eq(count(zone, SG_LIMITS_TABLE_TOTAL, SG_LIMITS_TOTAL_KEY), 1);
    ck_assert_uint_eq(count(zone, SG_LIMITS_TABLE_ADDRESS, "10.0.0.1"), 1);
    ck_assert_uint_eq(count(zone, SG_LIMITS_TABLE_CONSOLE, "tok:aaaaaaaa"), 1);
    sg_limits_release(&limits, &b);
    ck_assert_uint_eq(count(zone, SG_LIMITS_TABLE_TOTAL, SG_LIMITS_TOTAL_KEY), 0);
}
END_TEST

/* max_sessions is one count for every worker; a dead worker's counts
 * come back through the master (sg_zone_retire()). */
START_TEST(test_limits_across_workers)
{
    g_autoptr(SgZone) zone = zone_new(2);
    SgLimits w0 = { .zone = zone, .worker = 0, .max_sessions = 3, .per_token = 4 };
    SgLimits w1 = { .zone = zone, .worker = 1, .max_sessions = 3, .per_token = 4 };
    SgLimitsHold hold[4];

    take(&w0, "10.0.0.1", "tok:aaaaaaaa", &hold[0]);
    take(&w0, "10.0.0.2", "tok:bbbbbbbb", &hold[1]);
    take(&w1, "10.0.0.3", "tok:aaaaaaaa", &hold[2]);
    refused(&w1, "10.0.0.4", "tok:cccccccc", SG_CLOSE_LIMIT_TOTAL, "max_sessions");
    refused(&w0, "10.0.0.4", "tok:cccccccc", SG_CLOSE_LIMIT_TOTAL, "max_sessions");
    ck_assert_uint_eq(count(zone, SG_LIMITS_TABLE_CONSOLE, "tok:aaaaaaaa"), 2);

    /* Worker 0 dies holding two: the master gives them back. */
    sg_zone_retire(zone, 0);
    ck_assert_uint_eq(count(zone, SG_LIMITS_TABLE_TOTAL, SG_LIMITS_TOTAL_KEY), 1);
    ck_assert_uint_eq(count(zone, SG_LIMITS_TABLE_CONSOLE, "tok:aaaaaaaa"), 1);
    take(&w1, "10.0.0.4", "tok:cccccccc", &hold[3]);
    sg_limits_release(&w1, &hold[2]);
    sg_limits_release(&w1, &hold[3]);
    ck_assert_uint_eq(count(zone, SG_LIMITS_TABLE_TOTAL, SG_LIMITS_TOTAL_KEY), 0);
    ck_assert_uint_eq(count(zone, SG_LIMITS_TABLE_CONSOLE, "tok:aaaaaaaa"), 0);
}
END_TEST

/* Nothing set, or no zone: every websocket passes and nothing counts. */
START_TEST(test_limits_off)
{
    g_autoptr(SgZone) zone = zone_new(1);
    SgLimits none = { .zone = zone };
    SgLimits no_zone = { .max_sessions = 1, .per_ip = 1, .per_token = 4 };
    SgLimitsHold hold;

    for (guint i = 0; i < 100; i++) {
        take(&none, "10.0.0.1", "tok:aaaaaaaa", &hold);
        take(&no_zone, "10.0.0.1", "tok:aaaaaaaa", &hold);
        take(NULL, "10.0.0.1", "tok:aaaaaaaa", &hold);
    }
    ck_assert_uint_eq(count(zone, SG_LIMITS_TABLE_TOTAL, SG_LIMITS_TOTAL_KEY), 0);
    ck_assert_uint_eq(count(zone, SG_LIMITS_TABLE_ADDRESS, "10.0.0.1"), 0);
    ck_assert_uint_eq(count(zone, SG_LIMITS_TABLE_CONSOLE, "tok:aaaaaaaa"), 0);
    sg_limits_release(NULL, &hold);
    sg_limits_release(&no_zone, &hold);
}
END_TEST

static Suite *
limits_suite(void)
{
    Suite *s = suite_create("session_limits");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_limits_per_token);
    tcase_add_test(tc, test_limits_per_ip);
    tcase_add_test(tc, test_limits_refusal_holds_nothing);
    tcase_add_test(tc, test_limits_release_once);
    tcase_add_test(tc, test_limits_across_workers);
    tcase_add_test(tc, test_limits_off);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(limits_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
