/* SPDX-License-Identifier: Apache-2.0 */
/* event_core.c - one libuv (epoll) loop inside GLib's main loop
 * (see event_core.h).
 *
 * The GSource waits on uv_backend_fd(), libuv's epoll descriptor, and
 * reports uv_backend_timeout() as its timeout: 0 while libuv has work
 * without waiting (an idle handle, such as lws' forced service of data
 * it already buffered; a closing handle; an interest change not yet
 * handed to the kernel, which libuv applies at its next poll), the next
 * timer otherwise. Its dispatch runs the libuv loop once without waiting:
 * timers, idle handles, epoll_wait(0) and the callbacks of the ready
 * descriptors, closes.
 */
#include "autoconfig.h"

#include <stdbool.h>

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

typedef struct {
    GSource source;
    gpointer tag;
} CoreSource;

static uv_loop_t *core_loop;
static GSource *core_source;

static gint
core_timeout(void)
{
    if (!uv_loop_alive(core_loop))
        return -1;
    uv_update_time(core_loop);
    return uv_backend_timeout(core_loop);
}

static gboolean
core_prepare(GSource *source, gint *timeout)
{
    (void)source;
    *timeout = core_timeout();
    return *timeout == 0;
}

static gboolean
core_check(GSource *source)
{
    CoreSource *cs = (CoreSource *)source;

    if (g_source_query_unix_fd(source, cs->tag) & G_IO_IN)
        return TRUE;
    return core_timeout() == 0;
}

static gboolean
core_dispatch(GSource *source, GSourceFunc callback, gpointer data)
{
    (void)source;
    (void)callback;
    (void)data;
    uv_run(core_loop, UV_RUN_NOWAIT);
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs core_funcs = {
    .prepare = core_prepare,
    .check = core_check,
    .dispatch = core_dispatch,
};

void
sg_event_core_start(void)
{
    CoreSource *cs;
    int err;

    if (core_loop != NULL)
        return;
    core_loop = g_new0(uv_loop_t, 1);
    err = uv_loop_init(core_loop);
    if (err != 0)
        g_error("cannot create the event loop: %s", uv_strerror(err));
    core_source = g_source_new(&core_funcs, sizeof(CoreSource));
    cs = (CoreSource *)core_source;
    g_source_set_static_name(core_source, "spicegate sockets");
    /* No nested loop runs from our callbacks: recursion cannot happen,
     * and a non-recursive source would be taken out of the poll set and
     * put back around each dispatch (two wakeup writes per turn). */
    g_source_set_can_recurse(core_source, TRUE);
    cs->tag = g_source_add_unix_fd(core_source, uv_backend_fd(core_loop), G_IO_IN);
    g_source_attach(core_source, NULL);
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

void
sg_event_core_stop(void)
{
    if (core_loop == NULL)
        return;
    /* What is left are closes in progress: one turn each. */
    for (int i = 0; i < 100 && uv_loop_alive(core_loop); i++)
        uv_run(core_loop, UV_RUN_NOWAIT);
    if (uv_loop_close(core_loop) != 0) {
        g_debug("event loop still has handles at exit");
        return;                   /* leave it: closing it now would be unsafe */
    }
    g_source_destroy(core_source);
    g_clear_pointer(&core_source, g_source_unref);
    g_clear_pointer(&core_loop, g_free);
}
