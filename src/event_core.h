/* SPDX-License-Identifier: Apache-2.0 */
/* event_core.h - one epoll set for every socket, waited on as GLib's poll.
 *
 * GLib's main loop polls every descriptor it watches and visits every
 * source on each turn, so a loop with one source per connection costs as
 * much per wakeup as all connections together. Here every socket of the
 * process (lws' connections, the SPICE servers', libcurl's, the listening
 * socket) sits in the epoll set of one libuv loop, which GLib's main loop
 * runs as its poll function: a turn costs one epoll_wait() and what the
 * ready sockets cost. Timers that every session holds (its deadlines) are
 * the loop's too (sg_timer_add(): a heap, not a GSource each, which GLib
 * would visit on every turn), and so are lws' own timers. Process-wide
 * timers may stay GLib's.
 *
 * Everything runs on the thread of the default GMainContext.
 */
#pragma once

#include <glib.h>

typedef struct SgWatch SgWatch;

/* @ready holds G_IO_IN and/or G_IO_OUT as asked, G_IO_HUP on a hang-up
 * and G_IO_ERR on an error (after which the watch is paused: set its
 * events again to resume). */
typedef void (*SgWatchFunc)(SgWatch *watch, int fd, GIOCondition ready, gpointer data);

/* Starts the core on the default main context, if not started yet. */
void sg_event_core_start(void);

/* The libuv loop (a uv_loop_t *), for lws' foreign_loops. */
void *sg_event_core_uv_loop(void);

/* Watches @fd (non-blocking; it must outlive the watch) for @events
 * (G_IO_IN, G_IO_OUT, both, or 0 for none yet). Never NULL. */
SgWatch *sg_watch_fd(int fd, GIOCondition events, SgWatchFunc func, gpointer data);

/* Changes what is watched: 0 takes @fd out of the set (no hang-up is
 * reported either until events are set again). */
void sg_watch_modify(SgWatch *watch, GIOCondition events);
GIOCondition sg_watch_get_events(const SgWatch *watch);

/* Stops watching before @fd is closed; the callback is not called again,
 * even from the dispatch in progress. NULL is ignored. */
void sg_watch_remove(SgWatch *watch);

typedef struct SgTimer SgTimer;

/* Calls @func(@data) after @ms milliseconds, and again every @ms for as long
 * as it returns G_SOURCE_CONTINUE, as g_timeout_add() does; when it
 * returns G_SOURCE_REMOVE the timer is gone (the owner forgets it then, as
 * it would a GLib source id). Never NULL. */
SgTimer *sg_timer_add(guint ms, GSourceFunc func, gpointer data);

/* Cancels @timer, also from its own callback. NULL is ignored. */
void sg_timer_remove(SgTimer *timer);

/* Runs the loop until every closed handle is released (lws' too, after
 * its context is destroyed) and frees the core. Watches must be removed. */
void sg_event_core_stop(void);

/* How many turns of GLib's main loop waited in libuv's epoll_wait() alone
 * (GLib watched only its own wakeups), and how many also poll()ed other
 * descriptors of GLib's (see event_core.c). For tests and benchmarks. */
void sg_event_core_turns(guint64 *epoll_only, guint64 *with_poll);

/* Turns the loop without waiting until no handle is closing any more:
 * for the steps of libwebsockets' context teardown. */
void sg_event_core_settle(void);
