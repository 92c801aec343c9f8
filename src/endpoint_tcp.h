/* SPDX-License-Identifier: Apache-2.0 */
/* endpoint_tcp.h - a plain TCP (or any stream socket) endpoint.
 *
 * The SPICE server's end of a session: a pull endpoint that recv()s and
 * send()s on a non-blocking socket and offers it for splice(2). It takes
 * over an SgUpstream once connected (upstream.c keeps the connect, the
 * socket and its watch in the event core), or a bare socket.
 */
#pragma once

#include "endpoint.h"

/* Takes ownership of the connected @up. */
SgEndpoint *sg_endpoint_tcp_new(SgUpstream *up);

/* Takes ownership of the non-blocking stream socket @fd (closed on free);
 * @peer names it in logs. */
SgEndpoint *sg_endpoint_tcp_new_fd(int fd, const char *peer);
