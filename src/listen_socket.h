/* SPDX-License-Identifier: Apache-2.0 */
/* listen_socket.h - the one listening socket of spicegate.
 *
 * spicegate binds its port itself rather than letting libwebsockets do it,
 * with one process as with several workers: connections are then taken
 * off the socket by acceptor.c, which can stop accepting for a moment
 * when descriptors run out (lws' own accept loop spins on EMFILE). */
#pragma once

#include <glib.h>

/* Binds and listens on @host:@port (0: any free port), non-blocking and
 * close-on-exec, and stores the port it got in @bound_port. No host means
 * every address, IPv6 and IPv4 (a dual-stack socket), as lws did. Fails
 * with "cannot listen on HOST:PORT: REASON" and a hint where one helps. */
int sg_listen_socket_open(const char *host, guint port, guint *bound_port, GError **error);
