/* SPDX-License-Identifier: Apache-2.0 */
/* worker_ctl.h - the master asks every worker to act on its sessions.
 *
 * Each worker holds one end of a socketpair (SOCK_SEQPACKET) that the
 * master made before forking it, and serves requests on it from its own
 * loop (sg_ctl_server_new(), watched by the event core). A request names
 * sessions (by id, console, instance or client address) and what to do
 * with them (close them with a reason); the worker closes those it holds,
 * through its hub, and answers how many. The master sends the same request
 * to every worker and sums the answers (sg_fleet_close()). A list request
 * asks every worker for its sessions: each answers with a memfd holding
 * a JSON array (passed with SCM_RIGHTS, so that an answer of any size
 * neither blocks the worker nor needs a socket buffer to hold it), which
 * the master joins (sg_fleet_list()).
 *
 * A fleet is that view of every worker's sessions: remote (the master's
 * ends of the socketpairs) or local (the only process's own hub, with no
 * socket), behind the same call, so that what uses it (an admin API) has
 * one code path for one and for many workers.
 *
 * Messages are fixed-size records, one per datagram: a request carries a
 * sequence number that its answer repeats, so that a late answer to a
 * request that timed out is recognised and dropped.
 */
#pragma once

#include <stdbool.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include "close_code.h"
#include "sg_types.h"

/* The longest value (a console tag, an instance UUID, an address) a
 * request carries. */
#define SG_CTL_VALUE_MAX 255

/* The most workers a fleet holds (SG_WORKERS_MAX). */
#define SG_CTL_FLEET_MAX 64

typedef enum {
    SG_CTL_BY_ID = 0,             /* one session id (ids are unique among workers) */
    SG_CTL_BY_TOKEN_TAG,          /* a console: "tok:0123abcd" */
    SG_CTL_BY_INSTANCE,           /* an instance UUID */
    SG_CTL_BY_CLIENT_ADDR,        /* a browser's address */
    SG_CTL_BY_CONSOLE,            /* a SPICE connection id (in id): a console's channels */
} SgCtlBy;

/* Which sessions, and why they are closed. */
typedef struct {
    SgCtlBy by;
    guint64 id;                   /* SG_CTL_BY_ID */
    const char *value;            /* the others */
    SgCloseReason reason;
} SgCtlClose;

/* Closes one session that a request named: @owner is the hub's owner of
 * the session (the SgSession; sg_session_close() in the daemon). Returns
 * false when the session was closing already (it is not counted). */
typedef bool (*SgCtlCloseFunc)(gpointer owner, SgCloseReason reason);

/* Closes the sessions of @hub that @what names, with @close; returns how
 * many. What a worker does for a request, and a local fleet. */
guint sg_ctl_close_local(SgHub *hub, const SgCtlClose *what, SgCtlCloseFunc close);

/* Appends one JSON object per session of @hub to @out, oldest first:
 * session (id), client, client_addr, state, channel, console, instance,
 * target, token_tag (unknown ones null), since (RFC 3339, UTC), bytes_up,
 * bytes_down (live). What a worker answers to a list request, and a local
 * fleet. */
void sg_ctl_list_local(SgHub *hub, JsonArray *out);

/* --- a worker's side ------------------------------------------------------- */

/* Serves requests arriving on @fd (made non-blocking; owned from now on)
 * against @hub, on the event core. When the master's end closes, the
 * server stops watching and @on_gone (may be NULL) is called. */
typedef void (*SgCtlGoneFunc)(gpointer data);
SgCtlServer *sg_ctl_server_new(int fd, SgHub *hub, SgCtlCloseFunc close,
                               SgCtlGoneFunc on_gone, gpointer data);
/* Stops serving and closes the descriptor. NULL is a no-op. */
void sg_ctl_server_free(SgCtlServer *server);

/* --- the master's side ----------------------------------------------------- */

/* A fleet of @count workers whose ends are set with sg_fleet_set_fd(). */
SgFleet *sg_fleet_new_remote(guint count);
/* The only process: its @hub, closed with @close. */
SgFleet *sg_fleet_new_local(SgHub *hub, SgCtlCloseFunc close);
/* Closes the descriptors it holds. NULL is a no-op. */
void sg_fleet_free(SgFleet *fleet);

/* Worker @index's end (the fleet owns it and closes the one it replaces),
 * or -1 while that worker is down. */
void sg_fleet_set_fd(SgFleet *fleet, guint index, int fd);

/* Asks every worker to close the sessions @what names, waiting up to
 * @timeout_ms for all the answers (blocking: the master has nothing else
 * to do meanwhile, and a local fleet does not wait at all). *@closed is
 * the sum of the answers; *@answered how many workers answered (a worker
 * down or too slow does not: its sessions are then not counted). Returns
 * false with @error when a worker did not answer, true otherwise. */
bool sg_fleet_close(SgFleet *fleet, const SgCtlClose *what, int timeout_ms, guint *closed,
                    guint *answered, GError **error);

/* Asks every worker for its sessions (sg_ctl_list_local()'s objects),
 * waiting as sg_fleet_close() does; *@sessions (newly allocated, never
 * NULL) holds every answer's, in worker order. Returns false with @error
 * when a worker did not answer (the others' sessions are in *@sessions). */
bool sg_fleet_list(SgFleet *fleet, int timeout_ms, JsonArray **sessions, guint *answered,
                   GError **error);

/* --- the admin process (workers.c, admin.h) ------------------------------- */

/* The admin process's view: one member, the master, at the other end of
 * @fd (owned), which speaks for @workers workers: it relays each request
 * to its own fleet and answers with the sum (sg_fleet_serve()). Asked as
 * any remote fleet; *answered and the error count workers, not members. */
SgFleet *sg_fleet_new_relay(int fd, guint workers);

/* The master's side of that: answers the one request waiting on @fd (the
 * admin process's socket; non-blocking reads) by asking @fleet, waiting
 * up to @timeout_ms as sg_fleet_close() and sg_fleet_list() do, with the
 * same records a worker sends. Returns false when the peer has gone
 * (EOF or an error), true otherwise. */
bool sg_fleet_serve(SgFleet *fleet, int fd, int timeout_ms);
