/* SPDX-License-Identifier: Apache-2.0 */
/* check_worker_ctl.c - unit tests for the master's requests to workers.
 *
 * The workers are real forked processes, each with its own hub on the
 * event core under a GMainLoop, serving its end of a SOCK_SEQPACKET
 * socketpair as a spicegate worker does; the parent is the master, with a
 * remote fleet. The sessions are stand-ins (no lws, no socket): what the
 * test checks is which of them each worker is asked to close, that the
 * answers add up, and what a dead, silent or confused worker does to the
 * sum. The local fleet (one process) runs the same requests in-process.
 * The relay fleet (the admin process's) asks the master, which answers
 * from its own fleet: a forked child plays the admin process there.
 */
#include "autoconfig.h"

#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>
#include <gio/gio.h>
#include <glib.h>

#include "compat.h"
#include "event_core.h"
#include "hub.h"
#include "worker_ctl.h"

#define WORKERS 2
#define TIMEOUT_MS 5000

typedef struct {
    SgHubEntry *entry;
    guint64 up;
    guint64 down;
    SgHubFacts facts;
    bool closing;
    SgCloseReason reason;
} FakeSession;

/* Three sessions per worker; ids are index + 1 + k * WORKERS:
 *   worker 0: 1 tok:aaaa inst-1 10.0.0.1 | 3 tok:bbbb inst-2 10.0.0.2
 *             5 tok:cccc inst-3 10.0.0.9
 *   worker 1: 2 tok:aaaa inst-1 10.0.0.3 | 4 tok:dddd inst-2 10.0.0.2
 *             6 tok:eeee inst-4 10.0.0.9 */
static const struct {
    const char *client;
    const char *tag;
    const char *instance;
} sessions[WORKERS][3] = {
    { { "10.0.0.1:1", "tok:aaaa", "inst-1" }, { "10.0.0.2:1", "tok:bbbb", "inst-2" },
      { "10.0.0.9:1", "tok:cccc", "inst-3" } },
    { { "10.0.0.3:1", "tok:aaaa", "inst-1" }, { "10.0.0.2:2", "tok:dddd", "inst-2" },
      { "10.0.0.9:2", "tok:eeee", "inst-4" } },
};

static void
fake_add(SgHub *hub, FakeSession *fs, guint worker, guint k)
{
    fs->entry = sg_hub_add(hub, fs, sessions[worker][k].client, &fs->up, &fs->down);
    fs->facts.state = "relaying";
    fs->facts.token_tag = sessions[worker][k].tag;
    fs->facts.instance = sessions[worker][k].instance;
    /* Console 100 + k: the same console in both workers (its channels
     * landed on either). */
    fs->facts.has_console = true;
    fs->facts.console = 100 + k;
    fs->facts.channel = k == 0 ? "main" : "display";
    fs->up = 10 * (worker + 1);
    sg_hub_note_open(fs->entry, &fs->facts);
}

static guint closes_done;
static bool wrong_reason;

/* What sg_session_close() does, as far as the request sees it. */
static bool
fake_close(gpointer owner, SgCloseReason reason)
{
    FakeSession *fs = owner;

    if (fs->closing)
        return false;
    fs->closing = true;
    fs->reason = reason;
    wrong_reason |= reason != SG_CLOSE_ADMIN;
    closes_done++;
    return true;
}

static void
on_master_gone(gpointer data)
{
    g_main_loop_quit(data);
}

/* A worker: serves @fd until the master's end closes; exits with how
 * many sessions it closed (100 + that if one had a wrong reason). */
static void
worker_main(guint index, int fd)
{
    GMainLoop *loop = g_main_loop_new(NULL, FALSE);
    SgHub *hub = sg_hub_new(index, WORKERS);
    FakeSession fs[3] = { 0 };
    SgCtlServer *server;

    sg_event_core_start();
    for (guint k = 0; k < 3; k++)
        fake_add(hub, &fs[k], index, k);
    server = sg_ctl_server_new(fd, hub, fake_close, on_master_gone, loop);
    g_main_loop_run(loop);
    sg_ctl_server_free(server);
    sg_child_exit((wrong_reason ? 100 : 0) + (int)closes_done);
}

typedef struct {
    SgFleet *fleet;
    pid_t pids[WORKERS];
} Master;

static void
master_start(Master *m)
{
    m->fleet = sg_fleet_new_remote(WORKERS);
    for (guint i = 0; i < WORKERS; i++) {
        int sv[2];

        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
        m->pids[i] = fork();
        ck_assert_int_ge(m->pids[i], 0);
        if (m->pids[i] == 0) {
            close(sv[0]);
            /* The earlier workers' ends are the master's. */
            sg_fleet_free(m->fleet);
            worker_main(i, sv[1]);
        }
        close(sv[1]);
        sg_fleet_set_fd(m->fleet, i, sv[0]);
    }
}

/* Closes the fleet (the workers see EOF and exit) and returns worker
 * @i's exit status. */
static int
master_stop(Master *m, int statuses[WORKERS])
{
    g_clear_pointer(&m->fleet, sg_fleet_free);
    for (guint i = 0; i < WORKERS; i++) {
        int status = 0;

        statuses[i] = -1;
        if (m->pids[i] <= 0)
            continue;
        ck_assert_int_eq(waitpid(m->pids[i], &status, 0), m->pids[i]);
        statuses[i] = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    }
    return 0;
}

static guint
fleet_close(SgFleet *fleet, SgCtlBy by, guint64 id, const char *value, guint expect_answered)
{
    SgCtlClose what = { .by = by, .id = id, .value = value, .reason = SG_CLOSE_ADMIN };
    g_autoptr(GError) error = NULL;
    guint closed = 99, answered = 99;

    ck_assert_msg(sg_fleet_close(fleet, &what, TIMEOUT_MS, &closed, &answered, &error),
                  "%s", error ? error->message : "");
    ck_assert_uint_eq(answered, expect_answered);
    return closed;
}

START_TEST(test_ctl_close_across_workers)
{
    Master m = { 0 };
    int statuses[WORKERS];

    master_start(&m);
    /* A console open in both workers: both close theirs, and say so. */
    ck_assert_uint_eq(fleet_close(m.fleet, SG_CTL_BY_TOKEN_TAG, 0, "tok:aaaa", 2), 2);
    /* Closing already: not counted again. */
    ck_assert_uint_eq(fleet_close(m.fleet, SG_CTL_BY_TOKEN_TAG, 0, "tok:aaaa", 2), 0);
    ck_assert_uint_eq(fleet_close(m.fleet, SG_CTL_BY_INSTANCE, 0, "inst-2", 2), 2);
    ck_assert_uint_eq(fleet_close(m.fleet, SG_CTL_BY_INSTANCE, 0, "inst-none", 2), 0);
    /* An id is in one worker only (worker 0 holds 5). */
    ck_assert_uint_eq(fleet_close(m.fleet, SG_CTL_BY_ID, 5, NULL, 2), 1);
    ck_assert_uint_eq(fleet_close(m.fleet, SG_CTL_BY_ID, 5, NULL, 2), 0);
    ck_assert_uint_eq(fleet_close(m.fleet, SG_CTL_BY_ID, 99, NULL, 2), 0);
    /* 10.0.0.9: 5 in worker 0 (closing) and 6 in worker 1. */
    ck_assert_uint_eq(fleet_close(m.fleet, SG_CTL_BY_CLIENT_ADDR, 0, "10.0.0.9", 2), 1);
    master_stop(&m, statuses);
    /* Each worker closed its three sessions, each with the reason asked. */
    ck_assert_int_eq(statuses[0], 3);
    ck_assert_int_eq(statuses[1], 3);
}
END_TEST

START_TEST(test_ctl_list_and_close_console)
{
    Master m = { 0 };
    int statuses[WORKERS];
    g_autoptr(JsonArray) list = NULL;
    g_autoptr(GError) error = NULL;
    guint answered = 0, seen = 0;

    master_start(&m);
    /* Every worker's sessions, through a memfd each, in worker order. */
    ck_assert_msg(sg_fleet_list(m.fleet, TIMEOUT_MS, &list, &answered, &error), "%s",
                  error ? error->message : "");
    ck_assert_uint_eq(answered, 2);
    ck_assert_uint_eq(json_array_get_length(list), 6);
    for (guint i = 0; i < 6; i++) {
        JsonObject *o = json_array_get_object_element(list, i);
        guint w = i / 3, k = i % 3;

        ck_assert_int_eq(json_object_get_int_member(o, "session"), w + 1 + k * WORKERS);
        ck_assert_str_eq(json_object_get_string_member(o, "client"), sessions[w][k].client);
        ck_assert_str_eq(json_object_get_string_member(o, "token_tag"), sessions[w][k].tag);
        ck_assert_str_eq(json_object_get_string_member(o, "instance"),
                         sessions[w][k].instance);
        ck_assert_int_eq(json_object_get_int_member(o, "console"), 100 + k);
        ck_assert_int_eq(json_object_get_int_member(o, "bytes_up"), 10 * (w + 1));
        ck_assert(json_object_get_null_member(o, "target"));
        ck_assert_ptr_nonnull(strstr(json_object_get_string_member(o, "since"), "T"));
        seen++;
    }
    ck_assert_uint_eq(seen, 6);
    /* A console whose channels are in both workers: both close theirs. */
    ck_assert_uint_eq(fleet_close(m.fleet, SG_CTL_BY_CONSOLE, 101, NULL, 2), 2);
    ck_assert_uint_eq(fleet_close(m.fleet, SG_CTL_BY_CONSOLE, 101, NULL, 2), 0);
    ck_assert_uint_eq(fleet_close(m.fleet, SG_CTL_BY_CONSOLE, 7, NULL, 2), 0);
    master_stop(&m, statuses);
    ck_assert_int_eq(statuses[0], 1);
    ck_assert_int_eq(statuses[1], 1);
}
END_TEST

/* A worker with many sessions: its list is far larger than a socket's
 * buffer (some 3 MB of JSON), and arrives whole, through its memfd. */
#define MANY 10000

static void
many_worker_main(int fd)
{
    GMainLoop *loop = g_main_loop_new(NULL, FALSE);
    SgHub *hub = sg_hub_new(0, 1);
    FakeSession *fs = g_new0(FakeSession, MANY);
    SgCtlServer *server;

    sg_event_core_start();
    for (guint i = 0; i < MANY; i++) {
        g_autofree char *client = g_strdup_printf("10.%u.%u.%u:4000", i >> 16, (i >> 8) & 255,
                                                  i & 255);

        fs[i].entry = sg_hub_add(hub, &fs[i], client, &fs[i].up, &fs[i].down);
        fs[i].facts.state = "relaying";
        fs[i].facts.token_tag = "tok:aaaa";
        fs[i].facts.target = "10.0.0.5:5901";
        fs[i].up = i;
        sg_hub_note_open(fs[i].entry, &fs[i].facts);
    }
    server = sg_ctl_server_new(fd, hub, fake_close, on_master_gone, loop);
    g_main_loop_run(loop);
    sg_ctl_server_free(server);
    sg_child_exit(0);
}

START_TEST(test_ctl_list_larger_than_a_socket_buffer)
{
    SgFleet *fleet = sg_fleet_new_remote(1);
    g_autoptr(JsonArray) list = NULL;
    g_autoptr(GError) error = NULL;
    guint answered = 0;
    int sv[2], status;
    pid_t pid;

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(sv[0]);
        sg_fleet_free(fleet);
        many_worker_main(sv[1]);
    }
    close(sv[1]);
    sg_fleet_set_fd(fleet, 0, sv[0]);
    ck_assert_msg(sg_fleet_list(fleet, TIMEOUT_MS, &list, &answered, &error), "%s",
                  error ? error->message : "");
    ck_assert_uint_eq(answered, 1);
    ck_assert_uint_eq(json_array_get_length(list), MANY);
    ck_assert_int_eq(json_object_get_int_member(json_array_get_object_element(list, MANY - 1),
                                                "bytes_up"), MANY - 1);
    ck_assert_str_eq(json_object_get_string_member(json_array_get_object_element(list, 258),
                                                   "client_addr"), "10.0.1.2");
    sg_fleet_free(fleet);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}
END_TEST

START_TEST(test_ctl_dead_worker)
{
    Master m = { 0 };
    int statuses[WORKERS], status;
    SgCtlClose what = { .by = SG_CTL_BY_TOKEN_TAG, .value = "tok:aaaa", .reason = SG_CLOSE_ADMIN };
    g_autoptr(GError) error = NULL;
    guint closed, answered;

    master_start(&m);
    ck_assert_int_eq(kill(m.pids[1], SIGKILL), 0);
    ck_assert_int_eq(waitpid(m.pids[1], &status, 0), m.pids[1]);
    m.pids[1] = 0;
    /* Its socket is at EOF: the others still answer, and the call says
     * one did not. */
    ck_assert(!sg_fleet_close(m.fleet, &what, TIMEOUT_MS, &closed, &answered, &error));
    ck_assert_uint_eq(closed, 1);
    ck_assert_uint_eq(answered, 1);
    ck_assert_ptr_nonnull(strstr(error->message, "1 of 2"));
    g_clear_error(&error);
    /* Once the master knows (workers.c sets -1 when it reaps it). */
    sg_fleet_set_fd(m.fleet, 1, -1);
    ck_assert(!sg_fleet_close(m.fleet, &what, TIMEOUT_MS, &closed, &answered, &error));
    ck_assert_uint_eq(closed, 0);
    ck_assert_uint_eq(answered, 1);
    master_stop(&m, statuses);
    ck_assert_int_eq(statuses[0], 1);
}
END_TEST

START_TEST(test_ctl_silent_worker)
{
    SgFleet *fleet = sg_fleet_new_remote(1);
    SgCtlClose what = { .by = SG_CTL_BY_INSTANCE, .value = "inst-1", .reason = SG_CLOSE_ADMIN };
    g_autoptr(GError) error = NULL;
    int sv[2];
    guint closed, answered;
    gint64 t0;

    /* A worker whose loop is stuck: its end is open but nobody reads it
     * (the fault injected here is the silence itself). */
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    sg_fleet_set_fd(fleet, 0, sv[0]);
    t0 = g_get_monotonic_time();
    ck_assert(!sg_fleet_close(fleet, &what, 200, &closed, &answered, &error));
    ck_assert_uint_eq(answered, 0);
    ck_assert_uint_eq(closed, 0);
    ck_assert(g_error_matches(error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT));
    /* It waited for the deadline, not much longer. */
    ck_assert_int_ge(g_get_monotonic_time() - t0, 190 * 1000);
    ck_assert_int_lt(g_get_monotonic_time() - t0, 2000 * 1000);
    close(sv[1]);
    sg_fleet_free(fleet);
}
END_TEST

START_TEST(test_ctl_malformed_request)
{
    SgFleet *fleet = sg_fleet_new_remote(1);
    char junk[17] = "not a request";
    int sv[2], status;
    pid_t pid;

    /* A datagram of the wrong size reaches the worker first (sent on the
     * master's end directly); the real request after it must still be
     * served, and its answer told from the refusal of the junk. */
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(sv[0]);
        sg_fleet_free(fleet);
        worker_main(0, sv[1]);
    }
    close(sv[1]);
    ck_assert_int_eq(send(sv[0], junk, sizeof(junk), 0), (ssize_t)sizeof(junk));
    sg_fleet_set_fd(fleet, 0, sv[0]);
    ck_assert_uint_eq(fleet_close(fleet, SG_CTL_BY_TOKEN_TAG, 0, "tok:bbbb", 1), 1);
    sg_fleet_free(fleet);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    ck_assert_int_eq(WEXITSTATUS(status), 1);
}
END_TEST

/* The admin process's side: its requests through the master, checked
 * here; the exit status says which check failed (0: none). */
static int
relay_admin_main(int fd, bool one_worker_down)
{
    SgFleet *relay = sg_fleet_new_relay(fd, WORKERS);
    g_autoptr(JsonArray) list = NULL;
    g_autoptr(GError) error = NULL;
    SgCtlClose what = { .by = SG_CTL_BY_TOKEN_TAG, .value = "tok:aaaa",
                        .reason = SG_CLOSE_ADMIN };
    guint answered = 0, closed = 0;
    bool ok;

    ok = sg_fleet_list(relay, TIMEOUT_MS, &list, &answered, &error);
    if (!one_worker_down && (!ok || answered != 2 || json_array_get_length(list) != 6))
        return 10;
    /* Worker 1 is down: the master's answer says so, with what worker 0
     * holds, counted in workers, not in the one member. */
    if (one_worker_down && (ok || answered != 1 || json_array_get_length(list) != 3 ||
                            strstr(error->message, "1 of 2 worker(s)") == NULL))
        return 11;
    g_clear_error(&error);
    ok = sg_fleet_close(relay, &what, TIMEOUT_MS, &closed, &answered, &error);
    if (!one_worker_down && (!ok || closed != 2 || answered != 2))
        return 12;
    if (one_worker_down && (ok || answered != 1))
        return 13;
    g_clear_error(&error);
    /* An id in worker 0 only: the master asks it alone. */
    what = (SgCtlClose){ .by = SG_CTL_BY_ID, .id = 3, .reason = SG_CLOSE_ADMIN };
    ok = sg_fleet_close(relay, &what, TIMEOUT_MS, &closed, &answered, &error);
    if (!one_worker_down && (!ok || closed != 1 || answered != 2))
        return 14;
    sg_fleet_free(relay);
    return 0;
}

/* Runs relay_admin_main() in a child while this process is the master,
 * serving its requests from @m's fleet until it has gone; returns its
 * exit status. */
static int
relay_run(Master *m, bool one_worker_down)
{
    int sv[2], status = -1;
    pid_t pid;

    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(sv[0]);
        sg_fleet_free(m->fleet);  /* the master's ends */
        sg_child_exit(relay_admin_main(sv[1], one_worker_down));
    }
    close(sv[1]);
    for (;;) {
        struct pollfd pfd = { .fd = sv[0], .events = POLLIN };

        ck_assert_int_eq(poll(&pfd, 1, TIMEOUT_MS * 2), 1);
        if (!sg_fleet_serve(m->fleet, sv[0], TIMEOUT_MS))
            break;
    }
    close(sv[0]);
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert(WIFEXITED(status));
    return WEXITSTATUS(status);
}

START_TEST(test_ctl_relay_through_master)
{
    Master m = { 0 };
    int statuses[WORKERS], status;

    master_start(&m);
    ck_assert_int_eq(relay_run(&m, false), 0);
    ck_assert_int_eq(kill(m.pids[1], SIGKILL), 0);
    ck_assert_int_eq(waitpid(m.pids[1], &status, 0), m.pids[1]);
    m.pids[1] = 0;
    sg_fleet_set_fd(m.fleet, 1, -1);
    ck_assert_int_eq(relay_run(&m, true), 0);
    master_stop(&m, statuses);
    /* Worker 0 closed tok:aaaa's session (1) and session 3. */
    ck_assert_int_eq(statuses[0], 2);
}
END_TEST

START_TEST(test_ctl_local_fleet)
{
    g_autoptr(SgHub) hub = sg_hub_new(0, 1);
    FakeSession fs[3] = { 0 };
    SgFleet *fleet = sg_fleet_new_local(hub, fake_close);

    for (guint k = 0; k < 3; k++)
        fake_add(hub, &fs[k], 0, k);
    ck_assert_uint_eq(fleet_close(fleet, SG_CTL_BY_TOKEN_TAG, 0, "tok:bbbb", 1), 1);
    ck_assert(fs[1].closing && fs[1].reason == SG_CLOSE_ADMIN);
    ck_assert_uint_eq(fleet_close(fleet, SG_CTL_BY_ID, 1, NULL, 1), 1);
    ck_assert(fs[0].closing);
    ck_assert_uint_eq(fleet_close(fleet, SG_CTL_BY_CLIENT_ADDR, 0, "10.0.0.9", 1), 1);
    ck_assert_uint_eq(fleet_close(fleet, SG_CTL_BY_INSTANCE, 0, "inst-3", 1), 0);
    ck_assert_uint_eq(closes_done, 3);
    {
        g_autoptr(JsonArray) list = NULL;
        guint answered = 0;

        ck_assert(sg_fleet_list(fleet, TIMEOUT_MS, &list, &answered, NULL));
        ck_assert_uint_eq(answered, 1);
        ck_assert_uint_eq(json_array_get_length(list), 3);
    }
    sg_fleet_free(fleet);
    for (guint k = 0; k < 3; k++) {
        fs[k].facts.reason = fs[k].reason;
        fs[k].facts.reason_text = "closed by an administrator";
        sg_hub_remove(fs[k].entry, &fs[k].facts);
    }
}
END_TEST

static Suite *
ctl_suite(void)
{
    Suite *s = suite_create("worker_ctl");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_ctl_close_across_workers);
    tcase_add_test(tc, test_ctl_list_and_close_console);
    tcase_add_test(tc, test_ctl_list_larger_than_a_socket_buffer);
    tcase_add_test(tc, test_ctl_dead_worker);
    tcase_add_test(tc, test_ctl_silent_worker);
    tcase_add_test(tc, test_ctl_malformed_request);
    tcase_add_test(tc, test_ctl_local_fleet);
    tcase_add_test(tc, test_ctl_relay_through_master);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(ctl_suite());
    int failed;

    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
