/* SPDX-License-Identifier: Apache-2.0 */
/* check_shared_zone.c - unit tests for the shared zone: counters written
 * by real forked processes, each in its own slot, summed by the parent;
 * a dead worker's slot retired (totals kept, open sessions lost, limit
 * counts given back); limits that hold exactly across processes racing
 * for the same key; and the hub observer that feeds a slot.
 */
#include "autoconfig.h"

#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>
#include <glib.h>

#include "compat.h"
#include "hub.h"
#include "shared_zone.h"

/* Runs @func(@zone, index) in @n forked children and waits for them all;
 * each must exit 0. They start together: each waits until the parent has
 * forked them all (the end of a pipe), so they really race. */
static void
run_children(SgZone *zone, guint n, void (*func)(SgZone *zone, guint index))
{
    pid_t pids[8];
    int gate[2];

    ck_assert_uint_le(n, G_N_ELEMENTS(pids));
    ck_assert_int_eq(pipe(gate), 0);
    for (guint i = 0; i < n; i++) {
        pids[i] = fork();
        ck_assert_int_ge(pids[i], 0);
        if (pids[i] == 0) {
            char c;

            close(gate[1]);
            while (read(gate[0], &c, 1) < 0) {
            }
            func(zone, i);
            sg_child_exit(0);
        }
    }
    close(gate[0]);
    close(gate[1]);               /* the gate opens: every child reads EOF */
    for (guint i = 0; i < n; i++) {
        int status;

        ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
}

#define PER_CHILD 1000

/* Worker @index opens PER_CHILD * (index + 1) sessions and closes all but
 * index + 1 of them, moving bytes. */
static void
child_counts(SgZone *zone, guint index)
{
    guint opened = PER_CHILD * (index + 1);

    for (guint i = 0; i < opened; i++) {
        sg_zone_note_opened(zone, index);
        sg_zone_note_bytes(zone, index, 10, 100);
        if (i > index)
            sg_zone_note_closed(zone, index, SG_CLOSE_TARGET_CLOSED, true);
    }
    /* Refused before opening: a close without an open. */
    sg_zone_note_closed(zone, index, SG_CLOSE_BAD_TOKEN, false);
}

START_TEST(test_zone_counters_across_processes)
{
    g_autoptr(SgZone) zone = sg_zone_new(3, 0, 0, NULL);
    SgZoneStats all, one;

    ck_assert_ptr_nonnull(zone);
    ck_assert_uint_eq(sg_zone_workers(zone), 3);
    run_children(zone, 3, child_counts);
    sg_zone_read(zone, &all);
    /* 1000 + 2000 + 3000 opened; 1 + 2 + 3 still open. */
    ck_assert_uint_eq(all.opened, 6000);
    ck_assert_uint_eq(all.open, 6);
    ck_assert_uint_eq(sg_zone_closed(&all, SG_CLOSE_TARGET_CLOSED), 6000 - 6);
    ck_assert_uint_eq(sg_zone_closed(&all, SG_CLOSE_BAD_TOKEN), 3);
    ck_assert_uint_eq(sg_zone_closed(&all, SG_CLOSE_ADMIN), 0);
    ck_assert_uint_eq(all.bytes_up, 60000);
    ck_assert_uint_eq(all.bytes_down, 600000);
    ck_assert_uint_eq(all.lost, 0);
    sg_zone_read_worker(zone, 1, &one);
    ck_assert_uint_eq(one.opened, 2000);
    ck_assert_uint_eq(one.open, 2);
}
END_TEST

START_TEST(test_zone_retire_keeps_totals)
{
    g_autoptr(SgZone) zone = sg_zone_new(3, 0, 0, NULL);
    SgZoneStats before, after, slot;

    run_children(zone, 3, child_counts);
    sg_zone_read(zone, &before);
    /* Worker 2 died with 3 sessions open. */
    sg_zone_retire(zone, 2);
    sg_zone_read(zone, &after);
    ck_assert_uint_eq(after.opened, before.opened);
    ck_assert_uint_eq(sg_zone_closed(&after, SG_CLOSE_TARGET_CLOSED),
                      sg_zone_closed(&before, SG_CLOSE_TARGET_CLOSED));
    ck_assert_uint_eq(after.bytes_down, before.bytes_down);
    ck_assert_uint_eq(after.open, before.open - 3);
    ck_assert_uint_eq(after.lost, 3);
    /* Every session that opened is open, closed after opening, or lost. */
    ck_assert_uint_eq(after.opened,
                      after.open + after.lost + sg_zone_closed(&after, SG_CLOSE_TARGET_CLOSED));
    sg_zone_read_worker(zone, 2, &slot);
    ck_assert_uint_eq(slot.opened, 0);
    ck_assert_uint_eq(slot.open, 0);
    ck_assert_uint_eq(slot.bytes_up, 0);

    /* Its replacement starts from zero and adds to the totals. */
    sg_zone_note_opened(zone, 2);
    sg_zone_read(zone, &after);
    ck_assert_uint_eq(after.opened, before.opened + 1);
    ck_assert_uint_eq(after.open, before.open - 3 + 1);
}
END_TEST

/* --- limit tables --------------------------------------------------------- */

#define LIMIT 37
#define TRIES 200
#define CHURN 2000

/* Tries TRIES times to take "10.0.0.1" in table 1 under LIMIT, and
 * notes each success as an opened session in its slot, for the parent to
 * count. Never releases: it exits holding them, as a crashed worker. */
static void
child_acquire(SgZone *zone, guint index)
{
    /* First churn, all children at once: the limit must hold at every
     * moment, not only at the end. */
    for (guint i = 0; i < CHURN; i++) {
        SgZoneTicket t;

        if (!sg_zone_limit_acquire(zone, 1, index, "10.0.0.1", LIMIT, &t))
            continue;
        if (sg_zone_limit_count(zone, 1, "10.0.0.1") > LIMIT)
            sg_child_exit(4);
        sg_zone_limit_release(zone, &t);
    }
    for (guint i = 0; i < TRIES; i++) {
        SgZoneTicket t;

        if (sg_zone_limit_acquire(zone, 1, index, "10.0.0.1", LIMIT, &t))
            sg_zone_note_opened(zone, index);
        else if (t.held)
            sg_child_exit(3);
    }
}

START_TEST(test_zone_limit_exact_across_processes)
{
    g_autoptr(SgZone) zone = sg_zone_new(4, 2, 1024, NULL);
    SgZoneStats all;

    ck_assert_ptr_nonnull(zone);
    run_children(zone, 4, child_acquire);
    sg_zone_read(zone, &all);
    /* 800 tries racing for 37 places: exactly 37 won. */
    ck_assert_uint_eq(all.opened, LIMIT);
    ck_assert_uint_eq(sg_zone_limit_count(zone, 1, "10.0.0.1"), LIMIT);
    /* Another table, and (unless the hash collides) another key, are
     * untouched. */
    ck_assert_uint_eq(sg_zone_limit_count(zone, 0, "10.0.0.1"), 0);
    if (sg_zone_limit_slot(zone, "10.0.0.2") != sg_zone_limit_slot(zone, "10.0.0.1"))
        ck_assert_uint_eq(sg_zone_limit_count(zone, 1, "10.0.0.2"), 0);

    /* The children died holding them: retiring each gives them back. */
    for (guint i = 0; i < 4; i++)
        sg_zone_retire(zone, i);
    ck_assert_uint_eq(sg_zone_limit_count(zone, 1, "10.0.0.1"), 0);
}
END_TEST

START_TEST(test_zone_limit_release)
{
    g_autoptr(SgZone) zone = sg_zone_new(1, 1, 64, NULL);
    SgZoneTicket t[3];

    ck_assert(sg_zone_limit_acquire(zone, 0, 0, "tok:aa", 2, &t[0]));
    ck_assert(sg_zone_limit_acquire(zone, 0, 0, "tok:aa", 2, &t[1]));
    ck_assert(!sg_zone_limit_acquire(zone, 0, 0, "tok:aa", 2, &t[2]));
    ck_assert_uint_eq(sg_zone_limit_count(zone, 0, "tok:aa"), 2);
    sg_zone_limit_release(zone, &t[0]);
    ck_assert(!t[0].held);
    sg_zone_limit_release(zone, &t[0]);       /* twice: a no-op */
    sg_zone_limit_release(zone, &t[2]);       /* never held: a no-op */
    ck_assert_uint_eq(sg_zone_limit_count(zone, 0, "tok:aa"), 1);
    ck_assert(sg_zone_limit_acquire(zone, 0, 0, "tok:aa", 2, &t[2]));
    sg_zone_limit_release(zone, &t[1]);
    sg_zone_limit_release(zone, &t[2]);
    ck_assert_uint_eq(sg_zone_limit_count(zone, 0, "tok:aa"), 0);
    /* A limit of 0 takes nothing. */
    ck_assert(!sg_zone_limit_acquire(zone, 0, 0, "tok:aa", 0, &t[0]));
}
END_TEST

START_TEST(test_zone_limit_slots_spread)
{
    g_autoptr(SgZone) zone = sg_zone_new(1, 1, 4096, NULL);
    g_autoptr(GHashTable) used = g_hash_table_new(g_direct_hash, g_direct_equal);

    /* 1000 addresses in 4096 slots: a hash that spreads them keeps
     * collisions to a few dozen (about 115 expected; a broken one, all
     * in a handful of slots, fails). */
    for (guint i = 0; i < 1000; i++) {
        g_autofree char *key = g_strdup_printf("10.0.%u.%u", i / 256, i % 256);
        guint32 slot = sg_zone_limit_slot(zone, key);

        ck_assert_uint_lt(slot, 4096);
        g_hash_table_add(used, GUINT_TO_POINTER(slot + 1));
    }
    ck_assert_uint_gt(g_hash_table_size(used), 800);
}
END_TEST

/* --- the hub's observer ---------------------------------------------------- */

typedef struct {
    SgHubEntry *entry;
    guint64 up;
    guint64 down;
    SgHubFacts facts;
} FakeSession;

START_TEST(test_zone_observes_hub)
{
    g_autoptr(SgZone) zone = sg_zone_new(2, 0, 0, NULL);
    g_autoptr(SgHub) hub = sg_hub_new(1, 2);
    FakeSession a = { 0 }, b = { 0 };
    SgZoneStats st;

    sg_zone_observe(zone, 1, hub);
    a.entry = sg_hub_add(hub, &a, "10.0.0.1:1000", &a.up, &a.down);
    b.entry = sg_hub_add(hub, &b, "10.0.0.2:1000", &b.up, &b.down);
    a.facts.state = b.facts.state = "relaying";
    sg_hub_note_open(a.entry, &a.facts);
    sg_zone_read_worker(zone, 1, &st);
    ck_assert_uint_eq(st.opened, 1);
    ck_assert_uint_eq(st.open, 1);

    /* a relays, then closes; its bytes reach the zone with the close. */
    a.up = 1234;
    a.down = 56789;
    a.facts.reason = SG_CLOSE_ADMIN;
    a.facts.reason_text = "closed by an administrator";
    sg_hub_remove(a.entry, &a.facts);
    /* b is refused before it opens. */
    b.facts.reason = SG_CLOSE_BAD_TOKEN;
    b.facts.reason_text = "console token invalid or expired";
    sg_hub_remove(b.entry, &b.facts);

    sg_zone_read(zone, &st);
    ck_assert_uint_eq(st.opened, 1);
    ck_assert_uint_eq(st.open, 0);
    ck_assert_uint_eq(sg_zone_closed(&st, SG_CLOSE_ADMIN), 1);
    ck_assert_uint_eq(sg_zone_closed(&st, SG_CLOSE_BAD_TOKEN), 1);
    ck_assert_uint_eq(st.bytes_up, 1234);
    ck_assert_uint_eq(st.bytes_down, 56789);
    sg_zone_read_worker(zone, 0, &st);
    ck_assert_uint_eq(st.opened, 0);
}
END_TEST

static Suite *
zone_suite(void)
{
    Suite *s = suite_create("shared_zone");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_zone_counters_across_processes);
    tcase_add_test(tc, test_zone_retire_keeps_totals);
    tcase_add_test(tc, test_zone_limit_exact_across_processes);
    tcase_add_test(tc, test_zone_limit_release);
    tcase_add_test(tc, test_zone_limit_slots_spread);
    tcase_add_test(tc, test_zone_observes_hub);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(zone_suite());
    int failed;

    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
