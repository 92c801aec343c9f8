/* SPDX-License-Identifier: Apache-2.0 */
/* workers.h - several worker processes on one port, and the master that
 * supervises them ([server] workers > 1).
 *
 * Each worker is a whole spicegate: its own loop, lws context, token
 * backend and sessions. The master binds the listening socket and the
 * workers all accept from it, so a session lives and dies in one worker
 * and nothing else is shared. The master starts the workers, forwards
 * signals to them and restarts one that dies.
 */
#pragma once

#include <glib.h>

/* The most workers [server] workers accepts. */
#define SG_WORKERS_MAX 64

/* What a worker runs: it takes its connections from @listen_fd (shared,
 * not its own to close) and listens on @port. Once it serves, it writes
 * "ok\n" to @ready_fd and closes it; it returns its exit status. */
typedef int (*SgWorkerMain)(guint index, int listen_fd, guint port, int ready_fd,
                            gpointer data);

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
