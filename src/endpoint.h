/* SPDX-License-Identifier: Apache-2.0 */
/* endpoint.h - one end of a session, as the relay sees it.
 *
 * A session joins two endpoints: the browser's (endpoint_ws.c, a
 * websocket of libwebsockets) and the SPICE server's (endpoint_tcp.c, a
 * plain TCP socket). The relay (relay.c) moves bytes between them through
 * this interface only, so another transport (TLS toward the SPICE server,
 * a native SPICE front end) is one more file implementing SgEndpointOps,
 * with no edit to the relay. Modelled on spice-server's websocket layer
 * (read and write callbacks) and on curl's connection filters.
 *
 * Two ways to receive. A pull endpoint (a socket) has read(): it reports
 * readiness with SG_ENDPOINT_READABLE and the relay reads into its own
 * buffer. A push endpoint (libwebsockets, which reads the socket itself)
 * has no read(): it hands each chunk to sg_endpoint_deliver(). Every
 * endpoint has write() and reports SG_ENDPOINT_WRITABLE when asked to.
 *
 * Events go to one owner (the relay) through SgEndpointEvents. An
 * endpoint never calls its owner from inside one of its own operations,
 * only from its own event sources; the owner may free the endpoint from
 * inside an event callback.
 */
#pragma once

#include <stdbool.h>

#include <glib.h>

#include "splice_pipe.h"
#include "sg_types.h"

typedef struct SgEndpoint SgEndpoint;

/* What an endpoint reports to its owner. */
typedef enum {
    SG_ENDPOINT_READABLE = 1 << 0,   /* pull: read() has bytes, an end or an error */
    SG_ENDPOINT_WRITABLE = 1 << 1,   /* write() can take bytes again */
} SgEndpointReady;

typedef struct {
    /* Readiness asked for with want(), or the peer hung up (READABLE). */
    void (*ready)(SgEndpoint *ep, SgEndpointReady ready, gpointer data);
    /* Push endpoints: @len received bytes, only valid during the call. */
    void (*received)(SgEndpoint *ep, const guint8 *bytes, gsize len, gpointer data);
    /* The peer went away in a way no read or write will report (e.g. it
     * left while reads were paused); @detail says how, for the log. */
    void (*gone)(SgEndpoint *ep, const char *detail, gpointer data);
} SgEndpointEvents;

typedef struct {
    const char *name;             /* "websocket", "tcp": for logs */
    /* write() writes in front of the bytes it is given (a frame header in
     * SG_ENDPOINT_HEADROOM): the relay then only passes its own buffers,
     * never bytes another endpoint delivered. */
    bool needs_headroom;

    /* Pull endpoints: copies up to @len received bytes into @dst. Returns
     * the count, 0 at the end of the stream, or -1 with errno (EAGAIN:
     * nothing now). NULL for push endpoints. */
    gssize (*read)(SgEndpoint *ep, guint8 *dst, gsize len);
    /* Sends up to @len bytes of @bytes; at least SG_ENDPOINT_HEADROOM
     * writable bytes precede @bytes (buf.c's headroom), for a frame
     * header written in place. Returns how many it took (0: none now, ask
     * for WRITABLE), or -1 when the connection is broken (errno set, and
     * ep->error may name the failure). An endpoint may take fewer bytes
     * than offered (a frame size limit) with room left. */
    gssize (*write)(SgEndpoint *ep, guint8 *bytes, gsize len);
    /* Bytes the endpoint accepted but has not passed to the kernel yet
     * (libwebsockets' partial writes). The relay neither writes nor reads
     * toward an endpoint while it holds some. NULL: never. */
    bool (*pending)(SgEndpoint *ep);
    /* Which readiness the owner wants: READABLE (pull) or deliveries
     * (push) while asked for, and WRITABLE. Level-triggered and cheap to
     * repeat: endpoints skip what does not change. */
    void (*want)(SgEndpoint *ep, SgEndpointReady wanted);
    /* Ends the connection, with a close code and reason where the
     * transport has them (a websocket close frame); may finish later. */
    void (*close)(SgEndpoint *ep, guint16 code, const char *reason);
    /* Drops the connection at once, sending nothing more (the peer does
     * not take what it is owed). NULL: close() does. */
    void (*abort)(SgEndpoint *ep);
    /* A wrapper whose work is done hands over the endpoint it wraps, so
     * that its owner's calls stop going through it (endpoint_link_guard.c,
     * once the SPICE server's link reply has passed): returns that
     * endpoint, owned by the caller from here on (it still reports to the
     * wrapper: the caller sets its own events), and leaves the wrapper
     * empty, for the caller to free. NULL from the call while the wrapper
     * still has work; a NULL op: never. */
    SgEndpoint *(*unwrap)(SgEndpoint *ep);
    /* "addr:port" of the peer, for logs. */
    const char *(*peer)(SgEndpoint *ep);
    void (*free)(SgEndpoint *ep);

    /* Optional zero-copy capabilities; NULL when absent. Both are checked
     * at run time before each use, and the relay copies otherwise. */
    /* A socket the relay may splice(2) received bytes from, or -1 now. */
    int (*splice_source)(SgEndpoint *ep);
    /* Whether write_spliced() can be used now. */
    bool (*can_take_spliced)(SgEndpoint *ep);
    /* Sends what @pipe holds as one message. When the connection takes
     * only part of it, the rest goes to @spill (empty, with room for the
     * pipe's content and SG_ENDPOINT_FRAME_MAX bytes) and is handed on by
     * the endpoint, so the pipe is empty on return. Returns false when
     * the connection is broken. */
    bool (*write_spliced)(SgEndpoint *ep, SgPipe *pipe, SgBuf *spill);
} SgEndpointOps;

/* Headroom before write()'s bytes: libwebsockets' LWS_PRE, which buf.c
 * reserves in front of every buffer. */
#define SG_ENDPOINT_HEADROOM 16
/* The most bytes of framing an endpoint adds to a spliced message. */
#define SG_ENDPOINT_FRAME_MAX 16

/* What a push endpoint's deliveries need from the relay. */
typedef struct {
    gsize rx_chunk;               /* the most bytes one delivery carries */
    gsize rx_buffer;              /* what the relay should be able to hold from it */
    /* Deliveries cannot be paused (want() without READABLE is ignored):
     * the relay buffers up to rx_buffer and then ends the session with
     * this text for the log. NULL: they can be paused. */
    const char *unpausable;
} SgEndpointPushCaps;

struct SgEndpoint {
    const SgEndpointOps *ops;
    SgEndpointEvents events;
    gpointer events_data;
    SgEndpointPushCaps push;      /* push endpoints only */
    const char *error;            /* the last failure, static text, or NULL */
    guint64 log_id;               /* the session's id for log lines, or 0 */
};

/* Sets the owner's callbacks. */
static inline void
sg_endpoint_set_events(SgEndpoint *ep, const SgEndpointEvents *events, gpointer data)
{
    ep->events = *events;
    ep->events_data = data;
}

/* For implementations: hands received bytes to the owner. */
static inline void
sg_endpoint_deliver(SgEndpoint *ep, const guint8 *bytes, gsize len)
{
    if (ep->events.received != NULL)
        ep->events.received(ep, bytes, len, ep->events_data);
}

static inline void
sg_endpoint_report(SgEndpoint *ep, SgEndpointReady ready)
{
    if (ep->events.ready != NULL)
        ep->events.ready(ep, ready, ep->events_data);
}

static inline void
sg_endpoint_report_gone(SgEndpoint *ep, const char *detail)
{
    if (ep->events.gone != NULL)
        ep->events.gone(ep, detail, ep->events_data);
}

static inline bool
sg_endpoint_is_push(const SgEndpoint *ep)
{
    return ep->ops->read == NULL;
}

static inline bool
sg_endpoint_pending(SgEndpoint *ep)
{
    return ep->ops->pending != NULL && ep->ops->pending(ep);
}

static inline const char *
sg_endpoint_peer(SgEndpoint *ep)
{
    return ep->ops->peer(ep);
}

static inline void
sg_endpoint_close(SgEndpoint *ep, guint16 code, const char *reason)
{
    ep->ops->close(ep, code, reason);
}

static inline void
sg_endpoint_abort(SgEndpoint *ep)
{
    if (ep->ops->abort != NULL)
        ep->ops->abort(ep);
    else
        ep->ops->close(ep, 0, NULL);
}

static inline void
sg_endpoint_free(SgEndpoint *ep)
{
    if (ep != NULL)
        ep->ops->free(ep);
}
