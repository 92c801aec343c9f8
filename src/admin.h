/* SPDX-License-Identifier: Apache-2.0 */
/* admin.h - the admin API ([admin] listen): GET /metrics,
 * GET /consoles, DELETE /consoles/{id}, DELETE /consoles?instance=UUID
 * (or ?token_tag=tok:... or ?client=ADDRESS), DELETE /sessions/{id}.
 *
 * libwebsockets is the HTTP server, here as on the public port: a vhost
 * named "admin" (plain HTTP/1.1, keep-alive, lws' timeouts), whose
 * connections the one accept path (acceptor.c) adopts from the admin
 * listening socket, which spicegate binds itself (listen_socket.c). What
 * is ours is the routing, the bearer token check, the answers' JSON and
 * metrics text and their errors.
 *
 * Where it runs. The only process (no `workers`): the admin vhost is a
 * second vhost in the lws context of the public port (sg_admin_serve()),
 * on the same event core; the fleet is the process's own hub. With
 * `workers`, in a process of its own, the admin process, which the
 * master forks and restarts like a worker and stops after the last
 * worker has gone, so that /metrics stays visible during a drain
 * (workers.c; sg_admin_run_process()): an event core and an lws context
 * with only the admin vhost. The master cannot serve it: it stays
 * single-threaded, poll()-based and free of lws, because it forks every
 * restart (lws' context there would have to become its loop). The admin
 * process reads every worker's counters from the shared zone, mapped
 * before the fork, and asks for sessions through a relay fleet
 * (worker_ctl.h) whose one member is the master, which answers each
 * request by asking its workers. Requests are a few a minute from a
 * scraper or an operator, so each is answered synchronously: a list or a
 * close waits at most fleet_timeout_ms (the admin process waits a little
 * longer than the master waits for its workers, so that a slow worker is
 * reported as such, not the whole answer lost).
 *
 * Plain HTTP: bind it to loopback or a management network. With a
 * token (from [admin] token_file) every request must carry
 * "Authorization: Bearer TOKEN", compared in constant time; the token and
 * the header are never logged.
 */
#pragma once

#include <stdbool.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include "sg_types.h"

typedef struct SgAdmin SgAdmin;
struct lws_context;

/* Connections served at once; more are closed as they arrive. A scraper
 * keeps one alive, an operator opens one: 16 leaves room for both and
 * bounds what a stuck client can hold. */
#define SG_ADMIN_MAX_CONNS 16
/* A connection has this long to send a request's headers, to take an
 * answer, and to send its next request (keep-alive). */
#define SG_ADMIN_CONN_TIMEOUT_S 10
/* How long the master, or the only process, waits for workers on a list
 * or a close. */
#define SG_ADMIN_FLEET_TIMEOUT_MS 2000
/* How long the admin process waits for the master's answer: longer than
 * the master waits for its workers. */
#define SG_ADMIN_RELAY_TIMEOUT_MS (SG_ADMIN_FLEET_TIMEOUT_MS + 1000)
/* A request line and a few headers; more is not a client of ours. */
#define SG_ADMIN_MAX_REQUEST 8192

typedef struct {
    SgZone *zone;                 /* counters (not owned) */
    SgFleet *fleet;               /* sessions (not owned) */
    const char *token;            /* bearer token (copied), or NULL: none asked */
    gint64 start_time_us;         /* g_get_real_time() at start */
    guint workers;
    int fleet_timeout_ms;         /* 0: SG_ADMIN_FLEET_TIMEOUT_MS */
} SgAdminContext;

/* Reads the bearer token from @path: the file's text without its trailing
 * white space, 1 to 4096 bytes, with no white space or control character
 * inside. The error names the file, never the text. */
char *sg_admin_read_token(const char *path, GError **error);

/* The admin API for @ctx, not serving yet. */
SgAdmin *sg_admin_new(const SgAdminContext *ctx);
/* Serves @listen_fd (a listening socket, owned from now on) as the vhost
 * "admin" of @context (on the event core), which must outlive @admin's
 * connections: free @admin after destroying @context. */
bool sg_admin_serve(SgAdmin *admin, struct lws_context *context, int listen_fd,
                    GError **error);
/* Stops accepting and closes the listening socket (connections stay
 * until their context goes). NULL is a no-op. */
void sg_admin_stop(SgAdmin *admin);
/* Also stops. NULL is a no-op. */
void sg_admin_free(SgAdmin *admin);

/* The admin process's life (workers.c, in the forked child): an event
 * core and an lws context with only the admin vhost on @listen_fd (owned)
 * for @ctx, until SIGTERM or SIGINT (SIGHUP reopens the log file).
 * Returns the exit status. */
int sg_admin_run_process(int listen_fd, const SgAdminContext *ctx);

/* --- the parts the unit tests hold -------------------------------------- */

typedef struct {
    guint status;
    const char *content_type;
    char *body;                   /* owned */
    bool head;                    /* HEAD: headers only */
    bool unauthorized;            /* add WWW-Authenticate */
    const char *allow;            /* 405: the Allow header */
} SgAdminReply;

/* Whether @authorization ("Bearer TOKEN", or NULL) carries @token, in time
 * that does not depend on where they differ. */
bool sg_admin_token_ok(const char *token, const char *authorization);

/* The answer to @method @target (what the server does once authorised):
 * @target is the path and, after a '?', the query, its values escaped. */
void sg_admin_route(SgAdmin *admin, const char *method, const char *target, SgAdminReply *reply);

/* A request as the server hands it over: the token check
 * (sg_admin_token_ok(), logged without the token when refused), then
 * sg_admin_route(). @peer ("addr:port") is for the log. */
void sg_admin_answer(SgAdmin *admin, const char *method, const char *target,
                     const char *authorization, const char *peer, SgAdminReply *reply);

/* GET /consoles' document from sg_fleet_list()'s @sessions: sessions with
 * the same SPICE connection id and target grouped into one console (its
 * channels, session ids, clients, instance, target, earliest since,
 * summed bytes); a session not linked yet is a console of its own with a
 * null id. @complete says whether every worker answered. */
JsonNode *sg_admin_consoles_json(JsonArray *sessions, bool complete);
