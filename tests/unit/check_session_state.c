/* SPDX-License-Identifier: Apache-2.0 */
/* check_session_state.c - the session's table of state moves: every move
 * the design has is legal, nothing else is, and an illegal move is caught
 * (a GLib critical, which the integration tests also fail on).
 *
 * The expected moves are written out here again, from the design in
 * session.c, so that a change to the table shows up as a failing test.
 * Each test runs in its own process (CK_FORK): the log writer installed
 * below stays there.
 */
#include "autoconfig.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <glib.h>

#include "session_state.h"

static const struct {
    SgSessionState from;
    SgSessionState to;
} legal[] = {
    { SG_SESSION_NEW, SG_SESSION_AUTHORISING },        /* start */
    { SG_SESSION_NEW, SG_SESSION_CLOSING },            /* refuse: origin, no token, shutdown */
    { SG_SESSION_AUTHORISING, SG_SESSION_CONNECTING }, /* the backend named a target */
    { SG_SESSION_AUTHORISING, SG_SESSION_CLOSING },    /* bad token, backend down, bad link */
    { SG_SESSION_CONNECTING, SG_SESSION_LINKING },     /* connected */
    { SG_SESSION_CONNECTING, SG_SESSION_CLOSING },     /* unreachable, connect_timeout */
    { SG_SESSION_LINKING, SG_SESSION_RELAYING },       /* link sent and answered */
    { SG_SESSION_LINKING, SG_SESSION_DRAINING },       /* a server that spoke first, gone */
    { SG_SESSION_LINKING, SG_SESSION_CLOSING },        /* link_timeout, bad link */
    { SG_SESSION_RELAYING, SG_SESSION_DRAINING },      /* the SPICE server closed */
    { SG_SESSION_RELAYING, SG_SESSION_CLOSING },       /* idle, expiry, shutdown, text frame */
    { SG_SESSION_DRAINING, SG_SESSION_CLOSING },       /* drained, or close_timeout */
};

static bool
expected_legal(SgSessionState from, SgSessionState to)
{
    for (gsize i = 0; i < G_N_ELEMENTS(legal); i++) {
        if (legal[i].from == from && legal[i].to == to)
            return true;
    }
    return false;
}

START_TEST(test_every_legal_move_accepted)
{
    for (gsize i = 0; i < G_N_ELEMENTS(legal); i++)
        ck_assert_msg(sg_session_state_can_move(legal[i].from, legal[i].to),
                      "%s -> %s refused", sg_session_state_name(legal[i].from),
                      sg_session_state_name(legal[i].to));
}
END_TEST

/* Every other pair, including each state to itself, is refused. */
START_TEST(test_every_other_move_refused)
{
    guint refused = 0;

    for (int from = 0; from < SG_SESSION_N_STATES; from++) {
        for (int to = 0; to < SG_SESSION_N_STATES; to++) {
            if (expected_legal(from, to))
                continue;
            ck_assert_msg(!sg_session_state_can_move(from, to), "%s -> %s accepted",
                          sg_session_state_name(from), sg_session_state_name(to));
            refused++;
        }
    }
    ck_assert_uint_eq(refused, SG_SESSION_N_STATES * SG_SESSION_N_STATES -
                                   G_N_ELEMENTS(legal));
    /* Out of range on either side. */
    ck_assert(!sg_session_state_can_move(SG_SESSION_N_STATES, SG_SESSION_CLOSING));
    ck_assert(!sg_session_state_can_move(SG_SESSION_NEW, SG_SESSION_N_STATES));
    ck_assert(!sg_session_state_can_move((SgSessionState)-1, SG_SESSION_CLOSING));
}
END_TEST

/* Every state can end, and every state but CLOSING can reach CLOSING. */
START_TEST(test_closing_is_final_and_reachable)
{
    for (int s = 0; s < SG_SESSION_N_STATES; s++) {
        if (s == SG_SESSION_CLOSING)
            continue;
        ck_assert_msg(sg_session_state_can_move(s, SG_SESSION_CLOSING), "%s cannot close",
                      sg_session_state_name(s));
    }
    for (int to = 0; to < SG_SESSION_N_STATES; to++)
        ck_assert(!sg_session_state_can_move(SG_SESSION_CLOSING, to));
}
END_TEST

START_TEST(test_state_names)
{
    static const char *const names[] = {
        "new", "authorising", "connecting", "linking", "relaying", "draining", "closing",
    };

    ck_assert_uint_eq(G_N_ELEMENTS(names), SG_SESSION_N_STATES);
    for (int s = 0; s < SG_SESSION_N_STATES; s++)
        ck_assert_str_eq(sg_session_state_name(s), names[s]);
    ck_assert_str_eq(sg_session_state_name(SG_SESSION_N_STATES), "?");
}
END_TEST

/* What the writer saw: criticals, and the last message. */
static guint criticals;
static guint others;
static char last_message[512];

static GLogWriterOutput
record(GLogLevelFlags level, const GLogField *fields, gsize n_fields, gpointer data)
{
    (void)data;
    if (level & G_LOG_LEVEL_CRITICAL)
        criticals++;
    else
        others++;
    for (gsize i = 0; i < n_fields; i++) {
        if (g_str_equal(fields[i].key, "MESSAGE"))
            g_strlcpy(last_message, fields[i].value, sizeof(last_message));
    }
    return G_LOG_WRITER_HANDLED;
}

START_TEST(test_illegal_move_is_caught)
{
    g_log_set_writer_func(record, NULL, NULL);
    /* A legal move says nothing. */
    ck_assert(sg_session_state_check_move(7, SG_SESSION_LINKING, SG_SESSION_RELAYING));
    ck_assert_uint_eq(criticals + others, 0);
    /* Back from CLOSING: a bug, and loud. */
    ck_assert(!sg_session_state_check_move(7, SG_SESSION_CLOSING, SG_SESSION_RELAYING));
    ck_assert_uint_eq(criticals, 1);
    ck_assert_uint_eq(others, 0);
    ck_assert_msg(strstr(last_message, "[s:7] illegal session state move closing -> relaying") !=
                      NULL, "message: %s", last_message);
    /* Skipping the link exchange. */
    ck_assert(!sg_session_state_check_move(8, SG_SESSION_CONNECTING, SG_SESSION_RELAYING));
    ck_assert_uint_eq(criticals, 2);
    ck_assert_msg(strstr(last_message, "connecting -> relaying") != NULL, "message: %s",
                  last_message);
}
END_TEST

static Suite *
session_state_suite(void)
{
    Suite *s = suite_create("session_state");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_every_legal_move_accepted);
    tcase_add_test(tc, test_every_other_move_refused);
    tcase_add_test(tc, test_closing_is_final_and_reachable);
    tcase_add_test(tc, test_state_names);
    tcase_add_test(tc, test_illegal_move_is_caught);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(session_state_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
