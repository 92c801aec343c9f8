/* SPDX-License-Identifier: Apache-2.0 */
/* check_event_core.c - the one epoll set under GLib's main loop: readiness
 * reaches the watch that is ready and no other, interest changes (0 takes
 * a socket out), removal from inside a callback, descriptor reuse, peer
 * hang-ups and resets; GLib's own sources beside it (its descriptors,
 * reused numbers, wakeups from threads and signals). Real sockets (socketpairs, loopback TCP) under a
 * GMainLoop; every wait has a deadline. */
#define _GNU_SOURCE 1             /* accept4() */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <check.h>
#include <glib.h>
#include <glib-unix.h>

#include "event_core.h"

#define DEADLINE_MS 5000

typedef struct {
    int calls;
    GIOCondition last;
    int last_fd;
    bool remove_in_callback;
    SgWatch *watch;
    GMainLoop *loop;              /* quit on the first call, if set */
} Seen;

static void
on_ready(SgWatch *watch, int fd, GIOCondition ready, gpointer data)
{
    Seen *seen = data;

    seen->calls++;
    seen->last = ready;
    seen->last_fd = fd;
    if (seen->remove_in_callback) {
        ck_assert_ptr_eq(watch, seen->watch);
        g_clear_pointer(&seen->watch, sg_watch_remove);
    }
    if (seen->loop != NULL)
        g_main_loop_quit(seen->loop);
}

static gboolean
on_deadline(gpointer data)
{
    ck_abort_msg("no event within %d ms", DEADLINE_MS);
    (void)data;
    return G_SOURCE_REMOVE;
}

/* Runs the default loop until a watch quits it, under the deadline. */
static void
run_until_called(Seen *seen)
{
    g_autoptr(GMainLoop) loop = g_main_loop_new(NULL, FALSE);
    guint deadline = g_timeout_add(DEADLINE_MS, on_deadline, NULL);

    seen->loop = loop;
    g_main_loop_run(loop);
    seen->loop = NULL;
    g_source_remove(deadline);
}

/* Turns the loop until it has nothing to do at once, so that whatever
 * readiness exists has been reported (bounded: a busy loop fails). */
static void
drain_loop(void)
{
    int turns = 0;

    while (g_main_context_iteration(NULL, FALSE))
        ck_assert_int_lt(++turns, 100);
}

static void
make_pair(int sv[2])
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
}

START_TEST(test_only_the_ready_socket_is_reported)
{
    enum { IDLE = 1000 };
    int idle[IDLE][2];
    SgWatch *idle_watch[IDLE];
    Seen idle_seen = { 0 };
    Seen seen = { 0 };
    int sv[2];
    SgWatch *w;

    for (int i = 0; i < IDLE; i++) {
        make_pair(idle[i]);
        idle_watch[i] = sg_watch_fd(idle[i][0], G_IO_IN, on_ready, &idle_seen);
    }
    make_pair(sv);
    w = sg_watch_fd(sv[0], G_IO_IN, on_ready, &seen);
    drain_loop();
    ck_assert_int_eq(seen.calls, 0);
    for (int round = 1; round <= 3; round++) {
        char c;

        ck_assert_int_eq(write(sv[1], "x", 1), 1);
        run_until_called(&seen);
        ck_assert_int_eq(seen.calls, round);
        ck_assert_int_eq(seen.last_fd, sv[0]);
        ck_assert(seen.last & G_IO_IN);
        ck_assert_int_eq(read(sv[0], &c, 1), 1);
        drain_loop();
        ck_assert_int_eq(seen.calls, round);   /* level-triggered, but read */
    }
    ck_assert_int_eq(idle_seen.calls, 0);
    sg_watch_remove(w);
    for (int i = 0; i < IDLE; i++) {
        sg_watch_remove(idle_watch[i]);
        close(idle[i][0]);
        close(idle[i][1]);
    }
    close(sv[0]);
    close(sv[1]);
    sg_event_core_stop();
}
END_TEST

START_TEST(test_no_interest_takes_the_socket_out)
{
    Seen seen = { 0 };
    int sv[2];
    SgWatch *w;

    make_pair(sv);
    w = sg_watch_fd(sv[0], 0, on_ready, &seen);
    ck_assert_int_eq(sg_watch_get_events(w), 0);
    ck_assert_int_eq(write(sv[1], "x", 1), 1);
    drain_loop();
    ck_assert_int_eq(seen.calls, 0);           /* never asked */

    sg_watch_modify(w, G_IO_IN);
    run_until_called(&seen);
    ck_assert_int_eq(seen.calls, 1);

    sg_watch_modify(w, 0);                     /* still readable: not reported */
    drain_loop();
    ck_assert_int_eq(seen.calls, 1);
    close(sv[1]);                              /* nor a hang-up */
    drain_loop();
    ck_assert_int_eq(seen.calls, 1);

    sg_watch_modify(w, G_IO_IN);               /* both show once asked again */
    run_until_called(&seen);
    ck_assert(seen.last & G_IO_IN);
    sg_watch_remove(w);
    close(sv[0]);
    sg_event_core_stop();
}
END_TEST

START_TEST(test_writable_and_modify)
{
    Seen seen = { 0 };
    int sv[2];
    SgWatch *w;

    make_pair(sv);
    w = sg_watch_fd(sv[0], G_IO_OUT, on_ready, &seen);
    run_until_called(&seen);
    ck_assert_int_eq(seen.last, G_IO_OUT);
    sg_watch_modify(w, G_IO_IN | G_IO_OUT);
    ck_assert_int_eq(sg_watch_get_events(w), G_IO_IN | G_IO_OUT);
    ck_assert_int_eq(write(sv[1], "x", 1), 1);
    seen.calls = 0;
    seen.last = 0;
    while (seen.last != (G_IO_IN | G_IO_OUT))
        run_until_called(&seen);
    sg_watch_remove(w);
    close(sv[0]);
    close(sv[1]);
    sg_event_core_stop();
}
END_TEST

START_TEST(test_remove_in_callback_and_reuse_the_descriptor)
{
    Seen seen = { .remove_in_callback = true };
    Seen again = { 0 };
    int sv[2];
    int fd;

    make_pair(sv);
    seen.watch = sg_watch_fd(sv[0], G_IO_IN, on_ready, &seen);
    ck_assert_int_eq(write(sv[1], "x", 1), 1);
    run_until_called(&seen);
    ck_assert_ptr_null(seen.watch);
    fd = sv[0];
    close(sv[0]);                              /* right after the removal */
    close(sv[1]);
    drain_loop();
    ck_assert_int_eq(seen.calls, 1);

    /* The same descriptor number, a new socket, a new watch. */
    make_pair(sv);
    ck_assert_int_eq(sv[0], fd);
    again.watch = sg_watch_fd(sv[0], G_IO_IN, on_ready, &again);
    ck_assert_int_eq(write(sv[1], "y", 1), 1);
    run_until_called(&again);
    ck_assert_int_eq(again.calls, 1);
    ck_assert_int_eq(seen.calls, 1);
    sg_watch_remove(again.watch);
    close(sv[0]);
    close(sv[1]);
    sg_event_core_stop();
}
END_TEST

START_TEST(test_hang_up_reads_as_readable)
{
    Seen seen = { 0 };
    int sv[2];
    char c;
    SgWatch *w;

    make_pair(sv);
    w = sg_watch_fd(sv[0], G_IO_IN, on_ready, &seen);
    close(sv[1]);
    run_until_called(&seen);
    ck_assert(seen.last & G_IO_IN);
    ck_assert_int_eq(read(sv[0], &c, 1), 0);  /* the reader meets the EOF */
    sg_watch_remove(w);
    close(sv[0]);
    sg_event_core_stop();
}
END_TEST

/* A reset (EPOLLERR) stops libuv's handle; it is reported with what was
 * asked, so the reader meets the error itself, and watching again works. */
START_TEST(test_reset_reports_error_and_readable)
{
    struct sockaddr_in addr = { .sin_family = AF_INET };
    socklen_t alen = sizeof(addr);
    struct linger lin = { .l_onoff = 1, .l_linger = 0 };
    Seen seen = { 0 };
    int lfd, cfd, sfd;
    char c;
    SgWatch *w;

    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(lfd, 0);
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    ck_assert_int_eq(listen(lfd, 1), 0);
    ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&addr, &alen), 0);
    cfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_eq(connect(cfd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    sfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    ck_assert_int_ge(sfd, 0);

    w = sg_watch_fd(sfd, G_IO_IN, on_ready, &seen);
    ck_assert_int_eq(setsockopt(cfd, SOL_SOCKET, SO_LINGER, &lin, sizeof(lin)), 0);
    close(cfd);                                /* RST */
    run_until_called(&seen);
    ck_assert(seen.last & G_IO_IN);
    ck_assert(seen.last & (G_IO_ERR | G_IO_HUP));
    ck_assert_int_eq(sg_watch_get_events(w), 0);   /* paused */
    /* Asking again for what was asked re-arms it (upstream.c relies on
     * that): the pending error is reported once more. */
    sg_watch_modify(w, G_IO_IN);
    run_until_called(&seen);
    ck_assert_int_eq(seen.calls, 2);
    ck_assert(seen.last & (G_IO_ERR | G_IO_HUP));
    ck_assert_int_eq(read(sfd, &c, 1), -1);
    ck_assert_int_eq(errno, ECONNRESET);
    sg_watch_remove(w);
    close(sfd);
    close(lfd);
    sg_event_core_stop();
}
END_TEST

static gboolean
on_tick(gpointer data)
{
    g_main_loop_quit(data);
    return G_SOURCE_REMOVE;
}

/* An idle core (sockets watched, none ready) lets the loop sleep: a GLib
 * timer still fires and the core reports nothing. */
START_TEST(test_glib_timers_run_beside_the_core)
{
    g_autoptr(GMainLoop) loop = g_main_loop_new(NULL, FALSE);
    Seen seen = { 0 };
    int sv[2];
    SgWatch *w;
    gint64 t0;

    make_pair(sv);
    w = sg_watch_fd(sv[0], G_IO_IN, on_ready, &seen);
    t0 = g_get_monotonic_time();
    g_timeout_add(50, on_tick, loop);
    g_main_loop_run(loop);
    ck_assert_int_ge(g_get_monotonic_time() - t0, 45 * 1000);
    ck_assert_int_eq(seen.calls, 0);
    sg_watch_remove(w);
    close(sv[0]);
    close(sv[1]);
    sg_event_core_stop();
}
END_TEST

/* --- GLib's own sources beside the core --------------------------------- */

typedef struct {
    int calls;
    int fd;                       /* the descriptor it was called for */
    GMainLoop *loop;
} FdSeen;

static gboolean
on_glib_fd(gint fd, GIOCondition cond, gpointer data)
{
    FdSeen *f = data;
    char c;

    (void)cond;
    f->calls++;
    f->fd = fd;
    ck_assert_int_eq(read(fd, &c, 1), 1);
    if (f->loop != NULL)
        g_main_loop_quit(f->loop);
    return G_SOURCE_CONTINUE;
}

typedef struct {
    guint old_source;
    int old_fd;                   /* closed, its number reused */
    int new_pair[2];
    guint new_source;
    FdSeen *seen;
} Swap;

/* In one dispatch: a GLib source and its descriptor go, and a new source
 * on a new socket with the same number comes, with the same events: the
 * list GLib hands to the poll function looks as before. */
static gboolean
on_swap(gpointer data)
{
    Swap *s = data;
    int pair[2];

    g_source_remove(s->old_source);
    close(s->old_fd);
    make_pair(pair);
    /* Same number as the old one, whatever the allocator did. */
    if (pair[0] != s->old_fd) {
        ck_assert_int_eq(dup3(pair[0], s->old_fd, O_CLOEXEC), s->old_fd);
        close(pair[0]);
        pair[0] = s->old_fd;
    }
    s->new_pair[0] = pair[0];
    s->new_pair[1] = pair[1];
    s->new_source = g_unix_fd_add(pair[0], G_IO_IN, on_glib_fd, s->seen);
    return G_SOURCE_REMOVE;
}

/* GLib's descriptors (here a g_unix_fd_add() source, as the unit tests'
 * peers and GSocketClient use) are polled correctly even when one is
 * closed and its number reused between two turns; the core's sockets are
 * served meanwhile. */
START_TEST(test_glib_descriptor_reused_between_turns)
{
    g_autoptr(GMainLoop) loop = g_main_loop_new(NULL, FALSE);
    FdSeen fseen = { .loop = loop };
    Seen seen = { 0 };
    Swap swap = { .seen = &fseen };
    int old_pair[2], sv[2];
    guint deadline;
    SgWatch *w;
    char c;

    make_pair(sv);
    w = sg_watch_fd(sv[0], G_IO_IN, on_ready, &seen);
    make_pair(old_pair);
    swap.old_fd = old_pair[0];
    swap.old_source = g_unix_fd_add(old_pair[0], G_IO_IN, on_glib_fd, &fseen);
    drain_loop();
    ck_assert_int_eq(fseen.calls, 0);
    g_idle_add(on_swap, &swap);
    drain_loop();
    ck_assert_int_ne(swap.new_source, 0);
    ck_assert_int_eq(swap.new_pair[0], swap.old_fd);
    ck_assert_int_eq(write(swap.new_pair[1], "y", 1), 1);
    deadline = g_timeout_add(DEADLINE_MS, on_deadline, NULL);
    g_main_loop_run(loop);
    g_source_remove(deadline);
    ck_assert_int_eq(fseen.calls, 1);
    ck_assert_int_eq(fseen.fd, swap.old_fd);
    /* The core's socket still works beside it. */
    ck_assert_int_eq(write(sv[1], "x", 1), 1);
    run_until_called(&seen);
    ck_assert_int_eq(seen.last_fd, sv[0]);
    ck_assert_int_eq(read(sv[0], &c, 1), 1);
    g_source_remove(swap.new_source);
    sg_watch_remove(w);
    close(swap.new_pair[0]);
    close(swap.new_pair[1]);
    close(old_pair[1]);
    close(sv[0]);
    close(sv[1]);
    sg_event_core_stop();
}
END_TEST

/* With only GLib's wakeups to watch (timers and idle sources have none),
 * a turn is one epoll_wait(); a GLib source on a socket makes turns poll()
 * it as well, and once it is gone they are epoll_wait() alone again. */
START_TEST(test_epoll_alone_unless_glib_watches_a_socket)
{
    g_autoptr(GMainLoop) loop = g_main_loop_new(NULL, FALSE);
    FdSeen fseen = { .loop = loop };
    Seen seen = { 0 };
    guint64 fast0, slow0, fast1, slow1, fast2, slow2;
    int sv[2], gv[2];
    guint deadline, src;
    SgWatch *w;
    char c;

    make_pair(sv);
    w = sg_watch_fd(sv[0], G_IO_IN, on_ready, &seen);
    drain_loop();
    sg_event_core_turns(&fast0, &slow0);
    ck_assert_int_eq(write(sv[1], "x", 1), 1);
    run_until_called(&seen);
    ck_assert_int_eq(read(sv[0], &c, 1), 1);
    sg_event_core_turns(&fast1, &slow1);
    ck_assert_uint_gt(fast1, fast0);
    ck_assert_uint_eq(slow1, slow0);

    make_pair(gv);
    src = g_unix_fd_add(gv[0], G_IO_IN, on_glib_fd, &fseen);
    ck_assert_int_eq(write(gv[1], "y", 1), 1);
    deadline = g_timeout_add(DEADLINE_MS, on_deadline, NULL);
    g_main_loop_run(loop);
    g_source_remove(deadline);
    ck_assert_int_eq(fseen.calls, 1);
    sg_event_core_turns(&fast2, &slow2);
    ck_assert_uint_gt(slow2, slow1);

    g_source_remove(src);
    drain_loop();
    sg_event_core_turns(&fast1, &slow1);
    ck_assert_int_eq(write(sv[1], "x", 1), 1);
    run_until_called(&seen);
    ck_assert_int_eq(read(sv[0], &c, 1), 1);
    sg_event_core_turns(&fast2, &slow2);
    ck_assert_uint_gt(fast2, fast1);
    ck_assert_uint_eq(slow2, slow1);
    sg_watch_remove(w);
    close(gv[0]);
    close(gv[1]);
    close(sv[0]);
    close(sv[1]);
    sg_event_core_stop();
}
END_TEST

static gpointer
add_idle_from_thread(gpointer data)
{
    g_idle_add(on_tick, data);
    return NULL;
}

static gboolean
on_signal(gpointer data)
{
    g_main_loop_quit(data);
    return G_SOURCE_REMOVE;
}

/* GLib's wakeups reach the loop asleep in epoll_wait(): a source added
 * from another thread, a Unix signal; and an iteration that ran only a
 * core callback says it dispatched something. */
START_TEST(test_glib_wakeups_and_iteration_result)
{
    g_autoptr(GMainLoop) loop = g_main_loop_new(NULL, FALSE);
    Seen seen = { 0 };
    GThread *thread;
    guint deadline;
    int sv[2];
    SgWatch *w;
    char c;

    make_pair(sv);
    w = sg_watch_fd(sv[0], G_IO_IN, on_ready, &seen);
    drain_loop();
    deadline = g_timeout_add(DEADLINE_MS, on_deadline, NULL);
    thread = g_thread_new("adder", add_idle_from_thread, loop);
    g_main_loop_run(loop);
    g_thread_join(thread);

    g_unix_signal_add(SIGUSR1, on_signal, loop);
    ck_assert_int_eq(raise(SIGUSR1), 0);
    g_main_loop_run(loop);
    g_source_remove(deadline);

    drain_loop();
    ck_assert_int_eq(write(sv[1], "x", 1), 1);
    ck_assert(g_main_context_iteration(NULL, TRUE));
    ck_assert_int_eq(seen.calls, 1);
    ck_assert_int_eq(read(sv[0], &c, 1), 1);
    sg_watch_remove(w);
    close(sv[0]);
    close(sv[1]);
    sg_event_core_stop();
}
END_TEST

/* --- timers ------------------------------------------------------------ */

typedef struct {
    int calls;
    int stop_after;               /* G_SOURCE_REMOVE on this call */
    bool remove_self;             /* sg_timer_remove() from the callback */
    SgTimer **slot;               /* the owner's pointer, forgotten at the end */
    GMainLoop *loop;              /* quit on the last call */
    gint64 first_us;
} Ticks;

static gboolean
on_timer_tick(gpointer data)
{
    Ticks *t = data;

    if (t->calls++ == 0)
        t->first_us = g_get_monotonic_time();
    if (t->calls < t->stop_after)
        return G_SOURCE_CONTINUE;
    if (t->remove_self)
        sg_timer_remove(*t->slot);
    *t->slot = NULL;
    g_main_loop_quit(t->loop);
    return G_SOURCE_REMOVE;
}

/* A one-shot timer fires once, not before its time; a repeating one fires
 * until its callback says stop; removing itself from the callback and
 * returning G_SOURCE_REMOVE as well is harmless (ASan checks the memory). */
START_TEST(test_timer_fires_on_time_and_repeats)
{
    g_autoptr(GMainLoop) loop = g_main_loop_new(NULL, FALSE);
    guint deadline = g_timeout_add(DEADLINE_MS, on_deadline, NULL);
    SgTimer *timer;
    Ticks ticks = { .stop_after = _i == 0 ? 1 : 3, .remove_self = _i == 2, .slot = &timer,
                    .loop = loop };
    gint64 t0 = g_get_monotonic_time();

    timer = sg_timer_add(40, on_timer_tick, &ticks);
    g_main_loop_run(loop);
    ck_assert_ptr_null(timer);
    ck_assert_int_eq(ticks.calls, ticks.stop_after);
    ck_assert_int_ge(ticks.first_us - t0, 39 * 1000);
    ck_assert_int_ge(g_get_monotonic_time() - t0, (gint64)ticks.stop_after * 39 * 1000);
    /* Nothing fires any more. */
    drain_loop();
    ck_assert_int_eq(ticks.calls, ticks.stop_after);
    g_source_remove(deadline);
    sg_event_core_stop();
}
END_TEST

/* A timer removed before its time never fires, and a later one still does. */
START_TEST(test_timer_removed_never_fires)
{
    g_autoptr(GMainLoop) loop = g_main_loop_new(NULL, FALSE);
    guint deadline = g_timeout_add(DEADLINE_MS, on_deadline, NULL);
    SgTimer *cancelled, *later;
    Ticks never = { .stop_after = 1, .slot = &cancelled, .loop = loop };
    Ticks fires = { .stop_after = 1, .slot = &later, .loop = loop };

    cancelled = sg_timer_add(20, on_timer_tick, &never);
    later = sg_timer_add(60, on_timer_tick, &fires);
    g_clear_pointer(&cancelled, sg_timer_remove);
    sg_timer_remove(NULL);
    g_main_loop_run(loop);
    ck_assert_int_eq(never.calls, 0);
    ck_assert_int_eq(fires.calls, 1);
    g_source_remove(deadline);
    sg_event_core_stop();
}
END_TEST

static gboolean
on_count(gpointer data)
{
    (*(int *)data)++;
    return G_SOURCE_CONTINUE;
}

/* 10,000 pending timers (what 10,000 sessions' deadlines would be): a
 * ready socket is still reported, none fires early, and all go cleanly. */
START_TEST(test_many_pending_timers_do_not_fire_early)
{
    enum { N = 10000 };
    SgTimer **timers = g_new0(SgTimer *, N);
    Seen seen = { 0 };
    int fired = 0, sv[2];
    SgWatch *w;

    for (int i = 0; i < N; i++)
        timers[i] = sg_timer_add(60 * 1000, on_count, &fired);
    make_pair(sv);
    w = sg_watch_fd(sv[0], G_IO_IN, on_ready, &seen);
    ck_assert_int_eq(write(sv[1], "x", 1), 1);
    run_until_called(&seen);
    ck_assert_int_eq(seen.calls, 1);
    ck_assert_int_eq(fired, 0);
    for (int i = 0; i < N; i++)
        sg_timer_remove(timers[i]);
    g_free(timers);
    sg_watch_remove(w);
    close(sv[0]);
    close(sv[1]);
    sg_event_core_stop();
}
END_TEST

static Suite *
event_core_suite(void)
{
    Suite *s = suite_create("event_core");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 20);
    tcase_add_test(tc, test_only_the_ready_socket_is_reported);
    tcase_add_test(tc, test_no_interest_takes_the_socket_out);
    tcase_add_test(tc, test_writable_and_modify);
    tcase_add_test(tc, test_remove_in_callback_and_reuse_the_descriptor);
    tcase_add_test(tc, test_hang_up_reads_as_readable);
    tcase_add_test(tc, test_reset_reports_error_and_readable);
    tcase_add_test(tc, test_glib_timers_run_beside_the_core);
    tcase_add_test(tc, test_glib_descriptor_reused_between_turns);
    tcase_add_test(tc, test_epoll_alone_unless_glib_watches_a_socket);
    tcase_add_test(tc, test_glib_wakeups_and_iteration_result);
    tcase_add_loop_test(tc, test_timer_fires_on_time_and_repeats, 0, 3);
    tcase_add_test(tc, test_timer_removed_never_fires);
    tcase_add_test(tc, test_many_pending_timers_do_not_fire_early);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(event_core_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
