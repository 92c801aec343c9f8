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

#include "server_cert.h"
#include "sg_types.h"

/* Serves the connections it accepts from @listen_fd, a listening socket
 * bound by main.c or, shared by the workers, by their master (not owned;
 * listen_socket.c), and registers their sessions in @hub. Takes no
 * ownership of @cfg, @tokens or @hub; all must outlive the listener. Fails (exit status 1 material) when lws cannot
 * start, e.g. TLS material cannot be loaded. */
SgListener *sg_listener_new(const SgConfig *cfg, GMainLoop *loop, SgTokenBackend *tokens,
                            SgHub *hub, int listen_fd, GError **error);

/* SIGHUP: with TLS, reads [tls] cert and key again for new handshakes
 * (server_cert.h), logs the outcome and sets @summary (one line, newly
 * allocated) for STATUS=; without TLS sets @summary to NULL. Open
 * connections keep their certificate. */
SgServerCertResult sg_listener_reload_cert(SgListener *listener, char **summary);

/* The port actually bound (useful with port 0). */
guint sg_listener_get_port(const SgListener *listener);

/* Stops admitting, closes every session with 1001, and calls @done from
 * the main loop once they have all gone (or after a short grace period).
 * Call once. */
void sg_listener_shutdown(SgListener *listener, GSourceFunc done, gpointer user_data);

void sg_listener_free(SgListener *listener);
