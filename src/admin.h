/* SPDX-License-Identifier: Apache-2.0 */
/* admin.h - the admin listener ([admin] listen): GET /metrics,
 * GET /consoles, DELETE /consoles/{id}, DELETE /consoles?instance=UUID
 * (or ?token_tag=tok:... or ?client=ADDRESS), DELETE /sessions/{id}.
 *
 * Where it runs. With `workers`, in the master: the master has the shared
 * zone (every worker's counters) and the fleet (every worker's sessions,
 * worker_ctl.h), and it outlives the workers, so one scrape sees them
 * all. The master is single-threaded, forks, and waits with plain poll()
 * (workers.c): libwebsockets' context there would have to become the
 * master's loop (its signalfd and pipes adopted into lws, every restart
 * forked from inside an lws callback with the context inherited by the
 * worker), so the admin port is served by this small HTTP/1.1 server
 * instead, which is driven by whichever loop holds it: the master's
 * poll() (sg_admin_fill_pollfds(), sg_admin_dispatch()) or, in the only
 * process, the event core (sg_admin_attach_core()). One request per
 * connection, answered with Connection: close; requests are a few a
 * minute from a scraper or an operator, so each is answered synchronously
 * (a list or close waits at most SG_ADMIN_FLEET_TIMEOUT_MS for workers).
 *
 * Plain HTTP: bind it to loopback or a management network. With a
 * token (from [admin] token_file) every request must carry
 * "Authorization: Bearer TOKEN", compared in constant time; the token and
 * the header are never logged.
 */
#pragma once

#include <poll.h>
#include <stdbool.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include "sg_types.h"

typedef struct SgAdmin SgAdmin;

/* Connections served at once; more are closed as they arrive. */
#define SG_ADMIN_MAX_CONNS 16
/* A connection has this long to send its request and take the answer. */
#define SG_ADMIN_CONN_TIMEOUT_MS 10000
/* How long a list or a close waits for the workers. */
#define SG_ADMIN_FLEET_TIMEOUT_MS 2000
/* 8 KiB: a request line and a few headers; more is not a client of ours. */
#define SG_ADMIN_MAX_REQUEST 8192

typedef struct {
    SgZone *zone;                 /* counters (not owned) */
    SgFleet *fleet;               /* sessions (not owned) */
    const char *token;            /* bearer token (copied), or NULL: none asked */
    gint64 start_time_us;         /* g_get_real_time() at start */
    guint workers;
} SgAdminContext;

/* Reads the bearer token from @path: the file's text without its trailing
 * white space, 1 to 4096 bytes, with no white space or control character
 * inside. The error names the file, never the text. */
char *sg_admin_read_token(const char *path, GError **error);

/* Serves @listen_fd (a listening socket, owned from now on) for @ctx. */
SgAdmin *sg_admin_new(int listen_fd, const SgAdminContext *ctx);
/* Closes every descriptor (also in a forked child, which must not keep
 * the master's). NULL is a no-op. */
void sg_admin_free(SgAdmin *admin);

/* --- driven by a poll() loop (the master) --------------------------------- */

/* Fills @pfds (room for @max, at least 1 + SG_ADMIN_MAX_CONNS) with what
 * to wait for; returns how many. */
guint sg_admin_fill_pollfds(SgAdmin *admin, struct pollfd *pfds, guint max);
/* Handles what poll() said about @pfds (any of them may be ours or not:
 * others are ignored), then closes connections past their deadline. */
void sg_admin_dispatch(SgAdmin *admin, const struct pollfd *pfds, guint n);
/* Milliseconds until the next deadline, or -1. */
int sg_admin_timeout_ms(const SgAdmin *admin);

/* --- driven by the event core (the only process) ---------------------------- */

void sg_admin_attach_core(SgAdmin *admin);

/* --- the parts the unit tests hold -------------------------------------- */

typedef struct {
    guint status;
    const char *content_type;
    char *body;                   /* owned */
    bool head;                    /* HEAD: headers only */
    bool unauthorized;            /* add WWW-Authenticate */
    const char *allow;            /* 405: the Allow header */
} SgAdminReply;

/* Parses an HTTP/1.x request in @buf (@len bytes): SG_PARSE_AGAIN until
 * the blank line, SG_PARSE_INVALID (with *@reason) for anything but a
 * request line and headers without a body. *@method, *@target and
 * *@authorization (NULL when absent) are newly allocated. */
SgParseResult sg_admin_parse_request(const char *buf, gsize len, char **method, char **target,
                                     char **authorization, const char **reason);

/* Whether @authorization ("Bearer TOKEN", or NULL) carries @token, in time
 * that does not depend on where they differ. */
bool sg_admin_token_ok(const char *token, const char *authorization);

/* The answer to @method @target (what the server does once authorised). */
void sg_admin_route(SgAdmin *admin, const char *method, const char *target, SgAdminReply *reply);

/* GET /consoles' document from sg_fleet_list()'s @sessions: sessions with
 * the same SPICE connection id and target grouped into one console (its
 * channels, session ids, clients, instance, target, earliest since,
 * summed bytes); a session not linked yet is a console of its own with a
 * null id. @complete says whether every worker answered. */
JsonNode *sg_admin_consoles_json(JsonArray *sessions, bool complete);
