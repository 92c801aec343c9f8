/* SPDX-License-Identifier: Apache-2.0 */
/* workers.h - several worker processes on one port, and the master that
 * supervises them ([server] workers > 1).
 *
 * Each worker is a whole spicegate: its own loop, lws context, token
 * backend and sessions. The master binds the listening socket and the
 * workers all accept from it, so a session lives and dies in one worker.
 * The master starts the workers, forwards signals to them and restarts
 * one that dies.
 *
 * One view across workers: before forking, the master maps the shared
 * zone (shared_zone.h), where each worker's hub observer counts its
 * sessions in the worker's own slot and where limit tables hold across
 * workers; and it makes one control socketpair per worker (worker_ctl.h),
 * through which it asks every worker to close sessions by id, console or
 * instance and sums their answers. When a worker dies, the master folds
 * its slot into the zone's retired totals (its open sessions count as
 * lost), gives back its limit counts, and closes its control socket; the
 * worker that replaces it starts with a zeroed slot and a new socketpair.
 * Nothing crosses processes on the relay's path: the zone is written with
 * atomics, and the control socket is only read when the master asks.
 */
#pragma once

#include <glib.h>

#include "shared_zone.h"
#include "worker_ctl.h"

/* The most workers [server] workers accepts. */
#define SG_WORKERS_MAX 64

/* Limit tables of the shared zone, and their size (shared_zone.h): kept
 * for per-address and per-console limits. */
#define SG_WORKERS_ZONE_TABLES 2
#define SG_WORKERS_ZONE_TABLE_SLOTS 4096

/* What a worker runs: it takes its connections from @listen_fd (shared,
 * not its own to close) and listens on @port. Once it serves, it writes
 * "ok\n" to @ready_fd and closes it; it returns its exit status. It
 * writes its counters to slot @index of @zone and serves the master's
 * requests on @ctl_fd (its own: sg_ctl_server_new()). */
typedef int (*SgWorkerMain)(guint index, int listen_fd, guint port, int ready_fd,
                            SgZone *zone, int ctl_fd, gpointer data);

/* Called in the master once every worker listens on @port. */
typedef void (*SgWorkersReady)(guint port, guint count, gpointer data);

/* Listens on @host:@port (0: any port), runs @count workers on that socket
 * and supervises them until SIGTERM or SIGINT. At stop, workers that have
 * not exited SG_WORKER_STOP_MARGIN_S after their own @shutdown_timeout_s
 * are killed. Returns the master's exit
 * status: 0 after a clean stop, 1 when the address cannot be bound, else
 * the status of a worker that failed to start (1 when it died of a signal).
 * Call it before the process has threads or GLib sources: workers are
 * forked and run @worker_main from this point. */
int sg_workers_run(const char *host, guint port, guint count, guint shutdown_timeout_s,
                   SgWorkerMain worker_main, SgWorkersReady on_ready, gpointer data);

/* Called in the master on SIGHUP, with sg_workers_run()'s @data, once it
 * has passed the signal on: one line (newly allocated) that the master's
 * STATUS= adds to "reload passed to N worker(s)", or NULL. Set before
 * sg_workers_run(). */
typedef char *(*SgWorkersReloadNote)(gpointer data);
void sg_workers_set_reload_note(SgWorkersReloadNote note);

/* How long a whole stop may take with [server] shutdown_timeout
 * @shutdown_timeout_s, master included: what systemd must allow
 * (TimeoutStopSec is this for the default; see configure.ac). */
guint sg_stop_timeout_s(guint shutdown_timeout_s);

/* STOPPING=1 for systemd, with EXTEND_TIMEOUT_USEC= for a stop under
 * @shutdown_timeout_s (a unit's TimeoutStopSec below it is extended; one
 * above it stays). */
void sg_notify_systemd_stopping(guint shutdown_timeout_s);

/* Tells systemd about our state (Type=notify), without libsystemd. Workers
 * never reach systemd: the master speaks for all of them. */
void sg_notify_systemd(const char *state);
/* RELOADING=1 with MONOTONIC_USEC=, as systemd 253's Type=notify-reload
 * requires (systemd 252 ignores the second field). */
void sg_notify_systemd_reloading(void);
