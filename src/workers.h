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
 * With [admin] listen, the master also forks the admin process (admin.h),
 * which reads the zone and asks for sessions through the master: its
 * control socket is watched in the master's poll loop, and each request
 * is answered by asking the fleet.
 * Nothing crosses processes on the relay's path: the zone is written with
 * atomics, and the control socket is only read when the master asks.
 */
#pragma once

#include <stdbool.h>

#include <glib.h>

#include "session_limits.h"
#include "shared_zone.h"
#include "worker_ctl.h"

/* The most workers [server] workers accepts. */
#define SG_WORKERS_MAX 64

/* Limit tables of the shared zone, and their size (shared_zone.h): those
 * of [limits] (session_limits.h). */
#define SG_WORKERS_ZONE_TABLES SG_LIMITS_TABLES
#define SG_WORKERS_ZONE_TABLE_SLOTS SG_LIMITS_TABLE_SLOTS

/* What a worker runs: it takes its connections from @listen_fd (its copy
 * of the master's socket: it closes it when it stops, so that a new
 * instance can bind the port during a drain) and listens on @port. Once it serves, it writes
 * "ok\n" to @ready_fd and closes it; it returns its exit status. It
 * writes its counters to slot @index of @zone and serves the master's
 * requests on @ctl_fd (its own: sg_ctl_server_new()). */
typedef int (*SgWorkerMain)(guint index, int listen_fd, guint port, int ready_fd,
                            SgZone *zone, int ctl_fd, gpointer data);

/* Called in the master once every worker listens on @port. */
typedef void (*SgWorkersReady)(guint port, guint count, gpointer data);

/* The admin listener the admin process serves (admin.h), or none. */
typedef struct {
    int fd;                       /* a listening socket (owned from now on), or -1: none */
    const char *token;            /* bearer token, or NULL */
    gint64 start_time_us;         /* when spicegate started (g_get_real_time()) */
} SgWorkersAdmin;

/* Listens on @host:@port (0: any port), runs @count workers on that socket
 * and supervises them until SIGTERM or SIGINT. SIGTERM drains: the master
 * closes its copy of the listening socket and passes SIGTERM on (each
 * worker closes its own and lets its consoles relay for up to
 * @drain_timeout_s). SIGINT, or a second SIGTERM, stops at once: the
 * master passes SIGINT on. Workers that have not exited
 * SG_WORKER_STOP_MARGIN_S after their own drain and @shutdown_timeout_s
 * are killed. While $NOTIFY_SOCKET is set, the master tells systemd
 * STATUS= (sessions open across workers, draining) and, under
 * WatchdogSec=, WATCHDOG=1 from its own loop. Returns the master's exit
 * status: 0 after a clean stop, 1 when the address cannot be bound, else
 * the status of a worker that failed to start (1 when it died of a signal).
 * Call it before the process has threads or GLib sources: workers are
 * forked and run @worker_main from this point. */
int sg_workers_run(const char *host, guint port, guint count, guint drain_timeout_s,
                   guint shutdown_timeout_s, const SgWorkersAdmin *admin,
                   SgWorkerMain worker_main, SgWorkersReady on_ready, gpointer data);

/* Called in the master on SIGHUP, with sg_workers_run()'s @data, once it
 * has passed the signal on: one line (newly allocated) that the master's
 * STATUS= adds to "reload passed to N worker(s)", or NULL. Set before
 * sg_workers_run(). */
typedef char *(*SgWorkersReloadNote)(gpointer data);
void sg_workers_set_reload_note(SgWorkersReloadNote note);


/* How long a whole stop may take with [server] drain_timeout
 * @drain_timeout_s and shutdown_timeout @shutdown_timeout_s, master
 * included: what systemd must allow (TimeoutStopSec is this for the
 * defaults; see configure.ac). */
guint sg_stop_timeout_s(guint drain_timeout_s, guint shutdown_timeout_s);

/* STOPPING=1 for systemd, with EXTEND_TIMEOUT_USEC= for a stop under
 * @drain_timeout_s and @shutdown_timeout_s (a unit's TimeoutStopSec below
 * it is extended; one above it stays). */
void sg_notify_systemd_stopping(guint drain_timeout_s, guint shutdown_timeout_s);

/* What STATUS= says, and how often at most it is sent again: */
typedef enum {
    SG_RUN_SERVING = 0,
    SG_RUN_DRAINING,              /* SIGTERM: no new consoles, live ones relay */
    SG_RUN_STOPPING,              /* sessions are being closed with 1001 */
} SgRunState;
#define SG_NOTIFY_STATUS_PERIOD_MS 1000

/* The STATUS= line for @open sessions (websockets: one per SPICE channel,
 * several per console) in @state; @drain_timeout_s is quoted while
 * draining. Newly allocated, without "STATUS=". */
char *sg_notify_status_text(SgRunState state, guint64 open, guint drain_timeout_s);

/* Whether $NOTIFY_SOCKET is set: without it no STATUS= is worth computing. */
bool sg_notify_systemd_enabled(void);

/* Half of $WATCHDOG_USEC, in microseconds, when systemd's watchdog is on
 * for this process ($WATCHDOG_PID unset or ours), else 0: how often to
 * send WATCHDOG=1. */
guint64 sg_notify_watchdog_period_us(void);

/* Tells systemd about our state (Type=notify), without libsystemd. Workers
 * never reach systemd: the master speaks for all of them. */
void sg_notify_systemd(const char *state);
/* RELOADING=1 with MONOTONIC_USEC=, as systemd 253's Type=notify-reload
 * requires (systemd 252 ignores the second field). */
void sg_notify_systemd_reloading(void);
