/* SPDX-License-Identifier: Apache-2.0 */
/* acceptor.c - accept() with a back-off when descriptors run out
 * (see acceptor.h). */
#define _GNU_SOURCE 1             /* accept4() */
#include "autoconfig.h"

#include <errno.h>
#include <stdbool.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <glib.h>

#include "acceptor.h"
#include "event_core.h"

struct SgAcceptor {
    int listen_fd;
    guint per_wakeup;
    SgAcceptFn on_accept;
    gpointer data;
    SgWatch *watch;               /* in the event core; watching or paused */
    guint backoff_timer;          /* accepting stopped until it fires, or 0 */
    bool stopped;                 /* for good */
    /* The current run of failures: since when, how many, and how many
     * since the last line about it. */
    gint64 failing_since_us;      /* 0: accept works */
    gint64 last_log_us;
    guint64 failures;
    guint64 failures_unlogged;
};

static void on_listen_ready(SgWatch *watch, int fd, GIOCondition condition, gpointer data);

static void
watch_socket(SgAcceptor *a)
{
    if (a->stopped)
        return;
    if (a->watch == NULL)
        a->watch = sg_watch_fd(a->listen_fd, G_IO_IN, on_listen_ready, a);
    else
        sg_watch_modify(a->watch, G_IO_IN);
}

static gboolean
on_backoff_over(gpointer data)
{
    SgAcceptor *a = data;

    a->backoff_timer = 0;
    watch_socket(a);
    return G_SOURCE_REMOVE;
}

static bool
out_of_resources(int err)
{
    return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

/* One line when a run of failures starts, then at most one per interval
 * with the count: the failure repeats at every try while it lasts. */
static void
log_failure(SgAcceptor *a, int err)
{
    gint64 now = g_get_monotonic_time();

    a->failures++;
    a->failures_unlogged++;
    if (a->failing_since_us == 0) {
        struct rlimit rl = { 0 };

        a->failing_since_us = now;
        a->last_log_us = now;
        a->failures_unlogged = 0;
        getrlimit(RLIMIT_NOFILE, &rl);
        if (out_of_resources(err))
            g_warning("cannot accept connections: %s (descriptor limit %llu); trying again "
                      "every %d ms or when a connection closes; open connections are still "
                      "served", g_strerror(err), (unsigned long long)rl.rlim_cur,
                      SG_ACCEPT_BACKOFF_MS);
        else
            g_warning("cannot accept a connection: %s", g_strerror(err));
        return;
    }
    if (now - a->last_log_us >= SG_ACCEPT_LOG_INTERVAL_S * G_USEC_PER_SEC) {
        g_warning("still cannot accept connections: %s; %" G_GUINT64_FORMAT
                  " failed attempts in the last %" G_GINT64_FORMAT " s",
                  g_strerror(err), a->failures_unlogged,
                  (now - a->last_log_us) / G_USEC_PER_SEC);
        a->last_log_us = now;
        a->failures_unlogged = 0;
    }
}

static void
log_recovery(SgAcceptor *a)
{
    if (a->failing_since_us == 0)
        return;
    g_message("accepting connections again after %.1f s (%" G_GUINT64_FORMAT
              " failed attempts)",
              (double)(g_get_monotonic_time() - a->failing_since_us) / G_USEC_PER_SEC,
              a->failures);
    a->failing_since_us = 0;
    a->failures = 0;
}

static void
on_listen_ready(SgWatch *watch, int fd, GIOCondition condition, gpointer data)
{
    SgAcceptor *a = data;

    (void)watch;
    (void)condition;
    for (guint i = 0; i < a->per_wakeup; i++) {
        int conn = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (conn < 0) {
            int err = errno;

            /* Gone before we took it, or a signal: nothing is wrong. */
            if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR || err == ECONNABORTED)
                break;
            log_failure(a, err);
            if (out_of_resources(err)) {
                /* Not watched until the back-off ends. */
                sg_watch_modify(a->watch, 0);
                a->backoff_timer = g_timeout_add(SG_ACCEPT_BACKOFF_MS, on_backoff_over, a);
                return;
            }
            break;
        }
        log_recovery(a);
        /* No Nagle and TCP keepalive come with the socket: set once on the
         * listening socket, which every accepted one inherits
         * (listen_socket.c). */
        a->on_accept(conn, a->data);
    }
}

SgAcceptor *
sg_acceptor_new(int listen_fd, guint per_wakeup, SgAcceptFn on_accept, gpointer data)
{
    SgAcceptor *a = g_new0(SgAcceptor, 1);

    a->listen_fd = listen_fd;
    a->per_wakeup = MAX(per_wakeup, 1);
    a->on_accept = on_accept;
    a->data = data;
    watch_socket(a);
    return a;
}

void
sg_acceptor_resume(SgAcceptor *acceptor)
{
    if (acceptor == NULL || acceptor->backoff_timer == 0)
        return;
    g_clear_handle_id(&acceptor->backoff_timer, g_source_remove);
    watch_socket(acceptor);
}

void
sg_acceptor_stop(SgAcceptor *acceptor)
{
    acceptor->stopped = true;
    g_clear_pointer(&acceptor->watch, sg_watch_remove);
    g_clear_handle_id(&acceptor->backoff_timer, g_source_remove);
}

void
sg_acceptor_free(SgAcceptor *acceptor)
{
    if (acceptor == NULL)
        return;
    sg_acceptor_stop(acceptor);
    g_free(acceptor);
}
