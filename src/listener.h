/* SPDX-License-Identifier: Apache-2.0 */
/* listener.h - the libwebsockets context on the event core (event_core.h).
 *
 * Owns the lws context (one vhost: plain, TLS, or both on one port) and
 * the static web roots. It translates lws callbacks: plain HTTP goes to
 * the web roots, upgrades go through the admission checks to a new
 * session, websocket events go to that session. The live sessions are in
 * the hub (hub.h), which the caller owns.
 */
#pragma once

#include <stdbool.h>

#include "server_cert.h"

struct lws_context;
#include "sg_types.h"

/* Serves the connections it accepts from @listen_fd, a listening socket
 * bound by main.c or, shared by the workers, by their master (not owned;
 * listen_socket.c), and registers their sessions in @hub. Takes no
 * ownership of @cfg, @tokens or @hub; all must outlive the listener. Fails (exit status 1 material) when lws cannot
 * start, e.g. TLS material cannot be loaded. */
SgListener *sg_listener_new(const SgConfig *cfg, GMainLoop *loop, SgTokenBackend *tokens,
                            SgHub *hub, int listen_fd, GError **error);

/* Sessions count against [limits] in @zone's limit tables (not owned;
 * it must outlive the listener) as worker @index of it: call before the
 * loop runs. Without this call, or with every limit 0, nothing is
 * counted. */
void sg_listener_set_limits(SgListener *listener, SgZone *zone, guint index);

/* SIGHUP: with TLS, reads [tls] cert and key again for new handshakes
 * (server_cert.h), logs the outcome and sets @summary (one line, newly
 * allocated) for STATUS=; without TLS sets @summary to NULL. Open
 * connections keep their certificate. */
SgServerCertResult sg_listener_reload_cert(SgListener *listener, char **summary);

/* The lws context, for another vhost on the same event core (the admin
 * API's, admin.h); destroyed by sg_listener_free(). */
struct lws_context *sg_listener_context(const SgListener *listener);

/* The port actually bound (useful with port 0). */
guint sg_listener_get_port(const SgListener *listener);

/* Stops admitting, closes every session with 1001, and calls @done from
 * the main loop once they have all gone (or after shutdown_timeout).
 * Also ends a drain at once (a second signal): @done then replaces the
 * drain's. Later calls do nothing more. */
void sg_listener_shutdown(SgListener *listener, GSourceFunc done, gpointer user_data);

/* The graceful stop (SIGTERM): stops accepting at once (the caller may
 * then close the listening socket, so that a new instance can bind the
 * port), answers /healthz with 503 and refuses new websockets with 1001
 * on the connections still open, and lets live sessions relay for up to
 * @drain_s seconds; then, or as soon as the last session has ended by
 * itself, goes on as sg_listener_shutdown() with @done. @drain_s 0, or
 * no session: at once. Call once, before any sg_listener_shutdown(). */
void sg_listener_drain(SgListener *listener, guint drain_s, GSourceFunc done,
                       gpointer user_data);

/* Draining or stopping: what /healthz says, and what another listener of
 * the process (an admin API) reports. */
bool sg_listener_is_draining(const SgListener *listener);

void sg_listener_free(SgListener *listener);
