/* SPDX-License-Identifier: Apache-2.0 */
/* endpoint_ws.h - the browser's websocket (libwebsockets) as an SgEndpoint.
 *
 * A push endpoint: lws reads the socket and parses frames, and the
 * listener passes each RECEIVE and SERVER_WRITEABLE on through the
 * session to the two calls below. Over HTTP/1.1 it can take a spliced
 * message (our own frame header, then the payload straight from a pipe
 * into lws' socket) when lws holds nothing and no extension is active;
 * on an HTTP/2 stream (RFC 8441) each message is one DATA frame, cut to
 * the frame size, and uploads cannot be paused.
 */
#pragma once

#include "endpoint.h"

struct lws;

/* The upgraded websocket @wsi of a browser at @peer ("addr:port"). Takes
 * no ownership of @wsi: lws frees it, after which the endpoint must be
 * freed before anything else touches it. */
SgEndpoint *sg_endpoint_ws_new(struct lws *wsi, const char *peer);

/* lws' RECEIVE, binary frames only (the session polices text frames). */
void sg_endpoint_ws_on_receive(SgEndpoint *ep, const void *data, size_t len);

/* lws' SERVER_WRITEABLE: returns -1 when lws must close the websocket now
 * (a close frame was sent, or a write failed), else 0. */
int sg_endpoint_ws_on_writeable(SgEndpoint *ep);

/* Keepalive. sg_endpoint_ws_ping() queues one ping frame (payload "sg"), which goes
 * out from the next WRITEABLE at a frame boundary (never inside a message
 * spicegate is writing, through lws or spliced past it); a ping already
 * queued, or a close, makes it a no-op. lws answers the browser's own
 * pings; the browser's pongs come through sg_endpoint_ws_on_pong() (lws'
 * RECEIVE_PONG). sg_endpoint_ws_heard() counts what came from the browser,
 * deliveries and pongs, one step per callback (nothing per byte): it
 * moves while the browser is alive. sg_endpoint_ws_deaf(): reads are paused
 * (flow control), so nothing can be heard now, pongs included. */
void sg_endpoint_ws_ping(SgEndpoint *ep);
void sg_endpoint_ws_on_pong(SgEndpoint *ep);
guint64 sg_endpoint_ws_heard(SgEndpoint *ep);
bool sg_endpoint_ws_deaf(SgEndpoint *ep);

/* Whether @ep is a websocket on an HTTP/2 stream. */
bool sg_endpoint_ws_is_h2(SgEndpoint *ep);
