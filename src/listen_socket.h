/* SPDX-License-Identifier: Apache-2.0 */
/* listen_socket.h - the one listening socket of spicegate.
 *
 * spicegate binds its port itself rather than letting libwebsockets do it,
 * with one process as with several workers: connections are then taken
 * off the socket by acceptor.c, which can stop accepting for a moment
 * when descriptors run out (lws' own accept loop spins on EMFILE). */
#pragma once

#include <glib.h>

/* TCP keepalive of every accepted connection: the first probe after this
 * long without a byte from the peer, then one every interval; the socket
 * fails after that many unanswered (a vanished browser goes after about
 * 5.5 minutes, close to lws' own check before, which pinged after 300 s). */
#define SG_KEEPALIVE_IDLE_S 300
#define SG_KEEPALIVE_INTERVAL_S 10
#define SG_KEEPALIVE_PROBES 3

/* Binds and listens on @host:@port (0: any free port), non-blocking and
 * close-on-exec, and stores the port it got in @bound_port. Every
 * connection accepted from it inherits (Linux copies a listening socket's
 * options to each accepted one) no Nagle and TCP keepalive. No host means
 * every address, IPv6 and IPv4 (a dual-stack socket), as lws did. Fails
 * with "cannot listen on HOST:PORT: REASON" and a hint where one helps. */
int sg_listen_socket_open(const char *host, guint port, guint *bound_port, GError **error);
