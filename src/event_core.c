/* SPDX-License-Identifier: Apache-2.0 */
/* event_core.c - one libuv (epoll) loop that GLib's main loop waits in
 * (see event_core.h).
 *
 * GLib's main loop calls a poll function to wait for its own descriptors
 * until its next timeout. Ours (g_main_context_set_poll_func()) runs the
 * libuv loop once instead: GLib's timeout becomes a libuv timer, GLib's
 * descriptors sit in an epoll set of their own that is itself in the
 * loop, and one epoll_wait() waits for every socket of the process and
 * for GLib. The callbacks of what is ready (sockets, libuv timers, lws)
 * run there; then GLib learns which of its descriptors are ready and
 * dispatches its sources. A wakeup costs one epoll_wait(). (The core was
 * first a GSource on uv_backend_fd(): GLib's poll() on that descriptor,
 * then libuv's epoll_wait(0) for what was ready, two system calls and
 * GLib's whole iteration per wakeup; see the README for the figures.)
 *
 * Why GLib's descriptors are split. epoll keeps a descriptor's interest
 * from one wait to the next and forgets it when the file is closed, while
 * GLib hands over a fresh list each time, as poll() wants. A GLib source
 * that closes its descriptor, and a new one that gets the same number
 * before the next wait, look the same in that list: an epoll set would
 * keep waiting on nothing for it. So only GLib's own wakeup descriptors
 * (eventfds: the main context's and the signal sources'; GLib never
 * closes them) go into the epoll set. While GLib watches anything else (a
 * GSocketClient connecting to a SPICE server named by host name, the
 * unit tests' peers), a turn polls those descriptors with poll() beside
 * libuv's own descriptor, then runs libuv without waiting: the old two
 * calls, and always correct.
 *
 * g_main_context_iteration() says whether it dispatched anything; the
 * "spicegate core" source keeps that true for the core's own callbacks
 * (watches and timers), which run inside the poll function.
 *
 * No nested main loop may run from a callback of the core (none does):
 * libuv's loop is not re-entrant.
 */
#include "autoconfig.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <uv.h>

#include "event_core.h"

struct SgWatch {
    uv_poll_t poll;               /* first: closed with uv_close() */
    int fd;
    GIOCondition events;
    bool started;                 /* uv_poll_start() is in force */
    SgWatchFunc func;
    gpointer data;
};

/* A descriptor of GLib's, as last seen. */
typedef struct {
    int fd;
    gushort events;
    bool wakeup;                  /* an eventfd: in glib_epfd */
} GlibFd;

static uv_loop_t *core_loop;
static uv_timer_t *glib_timer;    /* GLib's timeout */
static uv_poll_t *glib_poll;      /* glib_epfd, in the loop */
static int glib_epfd = -1;        /* GLib's wakeup descriptors */
static GArray *glib_fds;          /* of GlibFd, in GLib's order */
static guint glib_others;         /* how many are not wakeups */
static struct pollfd *others_pfds;   /* room for 1 + glib_others */
static bool glib_epfd_ready;      /* readable in this turn */
static guint64 core_dispatched;   /* the core's callbacks run, ever */
static guint64 core_dispatched_seen;
static GSource *core_source;
static guint64 turns_epoll_only, turns_with_poll;
static GPollFunc glib_default_poll;

static bool
is_eventfd(int fd)
{
    char path[64], target[64];
    ssize_t n;

    snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
    n = readlink(path, target, sizeof(target) - 1);
    if (n < 0)
        return false;
    target[n] = '\0';
    return strcmp(target, "anon_inode:[eventfd]") == 0;
}

static uint32_t
epoll_events(gushort events)
{
    uint32_t e = 0;

    if (events & G_IO_IN)
        e |= EPOLLIN;
    if (events & G_IO_PRI)
        e |= EPOLLPRI;
    if (events & G_IO_OUT)
        e |= EPOLLOUT;
    return e;
}

static gushort
glib_events(uint32_t e)
{
    gushort r = 0;

    if (e & EPOLLIN)
        r |= G_IO_IN;
    if (e & EPOLLPRI)
        r |= G_IO_PRI;
    if (e & EPOLLOUT)
        r |= G_IO_OUT;
    if (e & EPOLLERR)
        r |= G_IO_ERR;
    if (e & EPOLLHUP)
        r |= G_IO_HUP;
    return r;
}

/* Follows GLib's list: usually the same as last turn, and nothing to do. */
static void
sync_glib_fds(const GPollFD *fds, guint nfds)
{
    bool same = glib_fds->len == nfds;
    g_autoptr(GArray) before = NULL;

    for (guint i = 0; same && i < nfds; i++) {
        const GlibFd *g = &g_array_index(glib_fds, GlibFd, i);

        same = g->fd == fds[i].fd && g->events == fds[i].events;
    }
    if (same)
        return;
    /* Wakeups out, then in again (with both asks for a descriptor GLib
     * lists twice); errors are for descriptors closed meanwhile. A
     * descriptor kept its kind if its number is still listed (GLib's
     * eventfds outlive their sources). */
    before = g_steal_pointer(&glib_fds);
    glib_fds = g_array_sized_new(FALSE, FALSE, sizeof(GlibFd), nfds);
    for (guint i = 0; i < before->len; i++) {
        const GlibFd *g = &g_array_index(before, GlibFd, i);

        if (g->wakeup)
            epoll_ctl(glib_epfd, EPOLL_CTL_DEL, g->fd, NULL);
    }
    glib_others = 0;
    for (guint i = 0; i < nfds; i++) {
        GlibFd g = { .fd = fds[i].fd, .events = fds[i].events };
        bool known = false;

        for (guint j = 0; j < before->len && !known; j++) {
            const GlibFd *b = &g_array_index(before, GlibFd, j);

            if (b->fd == g.fd) {
                known = true;
                g.wakeup = b->wakeup;
            }
        }
        if (!known)
            g.wakeup = is_eventfd(g.fd);
        if (g.wakeup) {
            struct epoll_event ev = { .events = epoll_events(g.events), .data.fd = g.fd };

            if (epoll_ctl(glib_epfd, EPOLL_CTL_ADD, g.fd, &ev) != 0 && errno == EEXIST) {
                for (guint j = 0; j < i; j++)
                    if (fds[j].fd == g.fd)
                        ev.events |= epoll_events(fds[j].events);
                epoll_ctl(glib_epfd, EPOLL_CTL_MOD, g.fd, &ev);
            }
        } else {
            glib_others++;
        }
        g_array_append_val(glib_fds, g);
    }
    others_pfds = g_renew(struct pollfd, others_pfds, 1 + glib_others);
}

static void
on_glib_epfd(uv_poll_t *handle, int status, int revents)
{
    (void)handle;
    (void)status;
    (void)revents;
    glib_epfd_ready = true;
}

static void
on_glib_timeout(uv_timer_t *timer)
{
    (void)timer;                  /* only wakes the loop up */
}

/* Sets @fds' revents for GLib's wakeup descriptors from glib_epfd. */
static void
collect_wakeups(GPollFD *fds, guint nfds)
{
    struct epoll_event evs[16];
    int n;

    do {
        n = epoll_wait(glib_epfd, evs, G_N_ELEMENTS(evs), 0);
        for (int k = 0; k < n; k++)
            for (guint i = 0; i < nfds; i++)
                if (fds[i].fd == evs[k].data.fd)
                    fds[i].revents = glib_events(evs[k].events) &
                                     (fds[i].events | G_IO_ERR | G_IO_HUP);
    } while (n == (int)G_N_ELEMENTS(evs));
}

/* GLib's poll function on the default context: see the top of the file.
 * GLib calls it without the context's lock, so callbacks may add and
 * remove GLib sources. */
static gint
core_poll(GPollFD *fds, guint nfds, gint timeout)
{
    gint ready = 0;
    guint n_others = 0;

    sync_glib_fds(fds, nfds);
    for (guint i = 0; i < nfds; i++)
        fds[i].revents = 0;
    glib_epfd_ready = false;
    uv_update_time(core_loop);
    if (glib_others == 0) {
        turns_epoll_only++;
        /* GLib's timeout as a timer: the loop's own wait honours it. */
        if (timeout > 0)
            uv_timer_start(glib_timer, on_glib_timeout, (guint64)timeout, 0);
        else
            uv_timer_stop(glib_timer);
        /* Waiting for GLib is this wait's work, even with nothing else. */
        uv_ref((uv_handle_t *)glib_poll);
        uv_run(core_loop, timeout == 0 ? UV_RUN_NOWAIT : UV_RUN_ONCE);
        uv_unref((uv_handle_t *)glib_poll);
    } else {
        int uv_ms = uv_loop_alive(core_loop) ? uv_backend_timeout(core_loop) : -1;
        int ms = timeout < 0 ? uv_ms : uv_ms < 0 ? timeout : MIN(timeout, uv_ms);
        int rc;

        turns_with_poll++;
        uv_timer_stop(glib_timer);
        others_pfds[n_others++] = (struct pollfd){ .fd = uv_backend_fd(core_loop),
                                                   .events = POLLIN };
        for (guint i = 0; i < nfds; i++)
            if (!g_array_index(glib_fds, GlibFd, i).wakeup)
                others_pfds[n_others++] = (struct pollfd){ .fd = fds[i].fd,
                                                           .events = fds[i].events };
        rc = poll(others_pfds, n_others, ms);
        uv_run(core_loop, UV_RUN_NOWAIT);
        for (guint i = 0, k = 1; rc > 0 && i < nfds; i++)
            if (!g_array_index(glib_fds, GlibFd, i).wakeup)
                fds[i].revents = others_pfds[k++].revents;
    }
    if (glib_epfd_ready)
        collect_wakeups(fds, nfds);
    for (guint i = 0; i < nfds; i++)
        if (fds[i].revents != 0)
            ready++;
    return ready;
}

static gboolean
core_source_check(GSource *source)
{
    (void)source;
    return core_dispatched != core_dispatched_seen;
}

static gboolean
core_source_dispatch(GSource *source, GSourceFunc callback, gpointer data)
{
    (void)source;
    (void)callback;
    (void)data;
    core_dispatched_seen = core_dispatched;
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs core_source_funcs = {
    .check = core_source_check,
    .dispatch = core_source_dispatch,
};

void
sg_event_core_start(void)
{
    GMainContext *ctx = g_main_context_default();
    int err;

    if (core_loop != NULL)
        return;
    core_loop = g_new0(uv_loop_t, 1);
    err = uv_loop_init(core_loop);
    if (err != 0)
        g_error("cannot create the event loop: %s", uv_strerror(err));
    glib_epfd = epoll_create1(EPOLL_CLOEXEC);
    if (glib_epfd < 0)
        g_error("cannot create the event loop: epoll_create1: %s", g_strerror(errno));
    glib_poll = g_new0(uv_poll_t, 1);
    uv_poll_init(core_loop, glib_poll, glib_epfd);
    uv_poll_start(glib_poll, UV_READABLE, on_glib_epfd);
    /* GLib's wakeups are the loop's work only while it waits for GLib
     * (core_poll()): otherwise the loop is alive only while it has
     * sockets, timers or closes of its own (sg_event_core_stop() relies
     * on that). */
    uv_unref((uv_handle_t *)glib_poll);
    glib_timer = g_new0(uv_timer_t, 1);
    uv_timer_init(core_loop, glib_timer);
    uv_unref((uv_handle_t *)glib_timer);
    glib_fds = g_array_new(FALSE, FALSE, sizeof(GlibFd));
    others_pfds = g_new(struct pollfd, 1);
    core_source = g_source_new(&core_source_funcs, sizeof(GSource));
    g_source_set_static_name(core_source, "spicegate core");
    g_source_attach(core_source, ctx);
    glib_default_poll = g_main_context_get_poll_func(ctx);
    g_main_context_set_poll_func(ctx, core_poll);
}

void
sg_event_core_turns(guint64 *epoll_only, guint64 *with_poll)
{
    *epoll_only = turns_epoll_only;
    *with_poll = turns_with_poll;
}

void *
sg_event_core_uv_loop(void)
{
    sg_event_core_start();
    return core_loop;
}

static void
find_closing(uv_handle_t *handle, void *arg)
{
    if (uv_is_closing(handle))
        *(bool *)arg = true;
}

void
sg_event_core_settle(void)
{
    if (core_loop == NULL)
        return;
    /* A close callback may close more handles (lws closes its timers once
     * its last connection is gone): a few turns, bounded. */
    for (int i = 0; i < 1000; i++) {
        bool closing = false;

        uv_walk(core_loop, find_closing, &closing);
        if (!closing)
            return;
        uv_run(core_loop, UV_RUN_NOWAIT);
    }
}

static void
on_poll(uv_poll_t *handle, int status, int revents)
{
    SgWatch *w = (SgWatch *)handle;
    GIOCondition ready = 0;

    if (status < 0) {
        /* An error on the socket (EPOLLERR): libuv has stopped the handle.
         * Report it as poll() would, with what was asked, so that the
         * reader meets the error itself (curl then says "Connection reset
         * by peer", not "select/poll returned error"). */
        ready = G_IO_ERR | G_IO_HUP | w->events;
        w->started = false;
        w->events = 0;
    } else {
        if (revents & UV_READABLE)
            ready |= G_IO_IN;
        if (revents & UV_WRITABLE)
            ready |= G_IO_OUT;
        if (revents & UV_DISCONNECT)
            ready |= G_IO_HUP;
    }
    core_dispatched++;
    w->func(w, w->fd, ready, w->data);
}

static void
apply(SgWatch *w)
{
    int uv_events = 0;

    if (w->events & G_IO_IN)
        uv_events |= UV_READABLE;
    if (w->events & G_IO_OUT)
        uv_events |= UV_WRITABLE;
    if (uv_events == 0) {
        if (w->started)
            uv_poll_stop(&w->poll);
        w->started = false;
        return;
    }
    uv_poll_start(&w->poll, uv_events, on_poll);
    w->started = true;
}

SgWatch *
sg_watch_fd(int fd, GIOCondition events, SgWatchFunc func, gpointer data)
{
    SgWatch *w = g_new0(SgWatch, 1);
    int err;

    sg_event_core_start();
    w->fd = fd;
    w->func = func;
    w->data = data;
    err = uv_poll_init(core_loop, &w->poll, fd);
    if (err != 0)
        g_error("cannot watch descriptor %d: %s", fd, uv_strerror(err));
    w->events = events & (G_IO_IN | G_IO_OUT);
    apply(w);
    return w;
}

void
sg_watch_modify(SgWatch *watch, GIOCondition events)
{
    events &= G_IO_IN | G_IO_OUT;
    if (events == watch->events && (watch->started || events == 0))
        return;
    watch->events = events;
    apply(watch);
}

GIOCondition
sg_watch_get_events(const SgWatch *watch)
{
    return watch->events;
}

static void
on_watch_closed(uv_handle_t *handle)
{
    g_free(handle);
}

void
sg_watch_remove(SgWatch *watch)
{
    if (watch == NULL)
        return;
    /* uv_close() takes the fd out of the loop at once (its descriptor may
     * be closed and reused right after) and stops the callback; the
     * memory goes on the loop's next turn. */
    uv_close((uv_handle_t *)&watch->poll, on_watch_closed);
}

struct SgTimer {
    uv_timer_t timer;             /* first: closed with uv_close() */
    GSourceFunc func;
    gpointer data;
    bool removed;                 /* closed; memory goes on the next turn */
};

static void
on_timer_closed(uv_handle_t *handle)
{
    g_free(handle);
}

static void
close_timer(SgTimer *t)
{
    t->removed = true;
    uv_close((uv_handle_t *)&t->timer, on_timer_closed);
}

static void
on_timer(uv_timer_t *handle)
{
    SgTimer *t = (SgTimer *)handle;

    /* The memory outlives this turn even if the callback removed the
     * timer (close callbacks run after it), so t->removed can be read. */
    core_dispatched++;
    if (t->func(t->data) == G_SOURCE_REMOVE && !t->removed)
        close_timer(t);
}

SgTimer *
sg_timer_add(guint ms, GSourceFunc func, gpointer data)
{
    SgTimer *t = g_new0(SgTimer, 1);

    sg_event_core_start();
    t->func = func;
    t->data = data;
    uv_timer_init(core_loop, &t->timer);
    /* The loop's clock was last read when it last ran; GLib's own sources
     * may have run since. */
    uv_update_time(core_loop);
    uv_timer_start(&t->timer, on_timer, ms, ms);
    return t;
}

void
sg_timer_remove(SgTimer *timer)
{
    if (timer == NULL || timer->removed)
        return;
    close_timer(timer);
}

static void
on_handle_closed(uv_handle_t *handle)
{
    g_free(handle);
}

void
sg_event_core_stop(void)
{
    if (core_loop == NULL)
        return;
    g_main_context_set_poll_func(g_main_context_default(), glib_default_poll);
    g_source_destroy(core_source);
    g_clear_pointer(&core_source, g_source_unref);
    uv_close((uv_handle_t *)glib_poll, on_handle_closed);
    uv_close((uv_handle_t *)glib_timer, on_handle_closed);
    glib_poll = NULL;
    glib_timer = NULL;
    /* What is left are closes in progress: one turn each. */
    for (int i = 0; i < 100 && uv_loop_alive(core_loop); i++)
        uv_run(core_loop, UV_RUN_NOWAIT);
    close(glib_epfd);
    glib_epfd = -1;
    g_clear_pointer(&glib_fds, g_array_unref);
    g_clear_pointer(&others_pfds, g_free);
    glib_others = 0;
    if (uv_loop_close(core_loop) != 0) {
        g_debug("event loop still has handles at exit");
        return;                   /* leave it: closing it now would be unsafe */
    }
    g_clear_pointer(&core_loop, g_free);
}
