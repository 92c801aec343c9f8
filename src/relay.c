/* SPDX-License-Identifier: Apache-2.0 */
/* relay.c - the byte pump between two endpoints (relay.h).
 *
 * Owns: both endpoints, one bounded buffer per direction, the pipe of a
 * spliced message in flight, and the relay's place in the upload flush
 * queue. Must not: block, or touch an endpoint after reporting an event
 * (the owner may have dropped it).
 */
#include "autoconfig.h"

#include <errno.h>
#include <string.h>

#include <glib.h>

#include "buf.h"
#include "log.h"
#include "relay.h"
#include "session.h"
#include "splice_pipe.h"

/* Splicing costs a system call more than copying (socket -> pipe, header,
 * pipe -> socket against recv + send), which only pays off for large
 * reads: a read at least this large makes the next one a splice, a splice
 * smaller than this makes the next one a copy. */
#define SG_SPLICE_MIN_BYTES (32 * 1024)
/* What the relay holds from a pull source: one read, one message
 * (SG_SESSION_DOWN_MESSAGE_BYTES toward the browser). */
#define SG_PULL_BUF_BYTES SG_SESSION_DOWN_MESSAGE_BYTES
/* Deliveries from a push source at least this large are queued and sent
 * in one go per loop turn (on_received()). */
#define SG_BATCH_MIN_BYTES (4 * 1024)

typedef enum { TO_BACK = 0, TO_FRONT = 1 } DirId;

typedef struct {
    SgEndpoint *src, *dst;        /* NULL while that end is absent */
    SgBuf *buf;
    SgPipe *pipe;                 /* zero-copy: the message in flight, or NULL */
    bool zero_copy;               /* src gives a socket and dst takes spliced messages */
    bool splice_next;             /* the last read was large: splice the next one */
    bool paused;                  /* push source: deliveries stopped */
    bool batched;                 /* a batch waits for the flush source */
    guint64 bytes;                /* handed to dst */
} Dir;

struct SgRelay {
    SgEndpoint *ends[2];
    Dir dir[2];                   /* TO_BACK: front -> back; TO_FRONT: back -> front */
    bool held;
    bool peek;
    bool back_dropped;
    GList flush_link;             /* in flush_queue while a batch waits */
    bool flush_queued;
    guint64 log_id;
    SgRelayEvents events;
    gpointer data;
};

#define relay_log(level, r, fmt, ...)                                                 \
    sg_log_session(level, &(SgLogSession){ .session = (r)->log_id },                  \
                   "[s:%" G_GUINT64_FORMAT "] " fmt, (r)->log_id, ##__VA_ARGS__)

static void update_interest(SgRelay *r);

static SgEndpointEvents endpoint_events;

static Dir *
dir_from(SgRelay *r, SgRelayEnd end)
{
    return &r->dir[end == SG_RELAY_FRONT ? TO_BACK : TO_FRONT];
}

static Dir *
dir_to(SgRelay *r, SgRelayEnd end)
{
    return &r->dir[end == SG_RELAY_FRONT ? TO_FRONT : TO_BACK];
}

static SgRelayEnd
end_of(SgRelay *r, SgEndpoint *ep)
{
    return ep == r->ends[SG_RELAY_FRONT] ? SG_RELAY_FRONT : SG_RELAY_BACK;
}

/* The bytes of @d can go out: its destination is there and, toward the
 * back, forwarding is released. */
static bool
dir_open(SgRelay *r, Dir *d)
{
    return d->dst != NULL && !(d == &r->dir[TO_BACK] && r->held);
}

/* Nothing of @d is owed to its destination, neither by us nor inside it. */
static bool
dir_drained(Dir *d)
{
    return sg_buf_is_empty(d->buf) && (d->dst == NULL || !sg_endpoint_pending(d->dst)) &&
           (d->pipe == NULL || d->pipe->len == 0);
}

/* A pull source may be read: one message at a time, except that while
 * forwarding is held it is read until the buffer is full, so the owner
 * sees as much as it needs to decide. */
static bool
may_pull(SgRelay *r, Dir *d)
{
    if (G_UNLIKELY(r->held) && d == &r->dir[TO_BACK])
        return sg_buf_space(d->buf) > 0;
    return dir_drained(d);
}

static void
lost(SgRelay *r, SgRelayEnd end, const char *detail)
{
    if (r->events.lost != NULL)
        r->events.lost(r, end, detail, r->data);
}

/* Reports a failed write or read on @ep with what it says, or errno. */
static void
lost_on_error(SgRelay *r, SgEndpoint *ep, int err)
{
    lost(r, end_of(r, ep), ep->error != NULL ? ep->error : g_strerror(err));
}

static bool
is_transient(int err)
{
    return err == EAGAIN || err == EWOULDBLOCK || err == EINTR;
}

/* Hands what @d holds to its destination. A push source gets going again
 * once half its buffer has left. Returns false (errno set) when the
 * destination is broken. */
static bool
flush(SgRelay *r, Dir *d)
{
    gsize len;

    if (d->buf == NULL || !dir_open(r, d))
        return true;
    len = sg_buf_len(d->buf);
    if (len > 0 && !sg_endpoint_pending(d->dst)) {
        gssize n = d->dst->ops->write(d->dst, sg_buf_data(d->buf), len);

        if (n < 0)
            return false;
        sg_buf_consume(d->buf, (gsize)n);
        d->bytes += (guint64)n;
    }
    if (d->paused && d->src != NULL && sg_buf_len(d->buf) <= d->src->push.rx_buffer / 2)
        d->paused = false;        /* update_interest() tells the source */
    return true;
}

/* The zero-copy pull(): what the source has goes into a pipe and from
 * there into the destination. */
static void
splice_through(SgRelay *r, Dir *d, int fd)
{
    gssize n;
    int err;

    if (d->pipe == NULL) {
        d->pipe = sg_pipe_get(SG_PULL_BUF_BYTES);
        if (d->pipe == NULL) {
            /* Out of file descriptors: copy through memory from now on. */
            relay_log(G_LOG_LEVEL_DEBUG, r, "no pipe (%s): copying instead", g_strerror(errno));
            d->zero_copy = false;
            update_interest(r);
            return;
        }
    }
    /* Leave room for a frame header in the buffer, should the rest of the
     * message have to go through it (write_spliced()). */
    n = sg_pipe_fill(d->pipe, fd, SG_PULL_BUF_BYTES - SG_ENDPOINT_FRAME_MAX);
    err = errno;
    if (n > 0) {
        d->splice_next = n >= SG_SPLICE_MIN_BYTES;
        if (!d->dst->ops->write_spliced(d->dst, d->pipe, d->buf)) {
            g_clear_pointer(&d->pipe, sg_pipe_put);
            lost_on_error(r, d->dst, EPIPE);
            return;
        }
        g_clear_pointer(&d->pipe, sg_pipe_put);
        d->bytes += (guint64)n;
        update_interest(r);
        return;
    }
    g_clear_pointer(&d->pipe, sg_pipe_put);
    if (n == 0)
        lost(r, end_of(r, d->src), NULL);
    else if (!is_transient(err))
        lost(r, end_of(r, d->src), g_strerror(err));
    else
        update_interest(r);
}

static void unwrap_end(SgRelay *r, SgRelayEnd end);

/* Reads what a pull source has and passes it on: one message at a time.
 * Always ends with update_interest() or an event. */
static void
pull(SgRelay *r, Dir *d)
{
    gsize avail;
    guint8 *dst;
    gssize n;
    int fd;

    if (G_UNLIKELY(d->src->ops->unwrap != NULL))
        unwrap_end(r, end_of(r, d->src));
    if (!may_pull(r, d)) {
        update_interest(r);
        return;
    }
    if (d->zero_copy && d->splice_next && d->dst != NULL && d->dst->ops->can_take_spliced(d->dst) &&
        (fd = d->src->ops->splice_source(d->src)) >= 0) {
        splice_through(r, d, fd);
        return;
    }
    dst = sg_buf_reserve(d->buf, &avail);
    n = d->src->ops->read(d->src, dst, avail);
    if (n > 0) {
        d->splice_next = d->zero_copy && n >= SG_SPLICE_MIN_BYTES;
        if (G_UNLIKELY(r->peek) && d == &r->dir[TO_FRONT] && r->events.peek != NULL)
            r->events.peek(r, dst, (gsize)n, d->splice_next, r->data);
        sg_buf_commit(d->buf, (gsize)n);
        if (r->held && d == &r->dir[TO_BACK] && r->events.held != NULL &&
            !r->events.held(r, sg_buf_data(d->buf), sg_buf_len(d->buf), r->data))
            return;
        if (!flush(r, d)) {
            lost_on_error(r, d->dst, errno);
            return;
        }
        update_interest(r);
        return;
    }
    if (n == 0) {
        lost(r, end_of(r, d->src), NULL);
        return;
    }
    if (is_transient(errno)) {
        update_interest(r);
        return;
    }
    lost(r, end_of(r, d->src), g_strerror(errno));
}

/* What @end should report: readable (or deliveries) while its direction
 * out can take more, writable while something waits for it. */
static SgEndpointReady
wanted(SgRelay *r, SgRelayEnd end)
{
    SgEndpoint *ep = r->ends[end];
    Dir *in = dir_from(r, end), *out = dir_to(r, end);
    SgEndpointReady w = 0;

    if (sg_endpoint_is_push(ep) ? !in->paused : may_pull(r, in))
        w |= SG_ENDPOINT_READABLE;
    if (out->buf != NULL && dir_open(r, out) &&
        (!sg_buf_is_empty(out->buf) || sg_endpoint_pending(ep)))
        w |= SG_ENDPOINT_WRITABLE;
    return w;
}

static void
update_interest(SgRelay *r)
{
    for (int e = SG_RELAY_FRONT; e <= SG_RELAY_BACK; e++) {
        SgEndpoint *ep = r->ends[e];

        if (ep != NULL)
            ep->ops->want(ep, wanted(r, (SgRelayEnd)e));
    }
}

/* Uploads: lws parses one read of the websocket into several RECEIVE
 * callbacks, one per frame. Large deliveries are queued and sent once per
 * loop turn, in one send(), by this single source: it is ready only while
 * relays wait in flush_queue, and runs ahead of lws' sources (priority),
 * so before lws reads again (lws runs in event_core.c's one source). One
 * source for all relays, so the loop's per-turn walk over its sources
 * does not grow with them; and no poll-set change. */
static GSource *flush_source;
static GQueue flush_queue = G_QUEUE_INIT;

static gboolean
flush_prepare(GSource *source, gint *timeout)
{
    (void)source;
    *timeout = -1;
    return flush_queue.length > 0;
}

static gboolean
flush_check(GSource *source)
{
    (void)source;
    return flush_queue.length > 0;
}

static gboolean
flush_dispatch(GSource *source, GSourceFunc callback, gpointer data)
{
    GList *link;

    (void)source;
    (void)callback;
    (void)data;
    while ((link = g_queue_pop_head_link(&flush_queue)) != NULL) {
        SgRelay *r = link->data;
        bool ok = true;

        r->flush_queued = false;
        for (int i = 0; i < 2 && ok; i++) {
            Dir *d = &r->dir[i];

            if (!d->batched)
                continue;
            d->batched = false;
            ok = flush(r, d);
            if (!ok)
                lost_on_error(r, d->dst, errno);
        }
        if (ok)
            update_interest(r);
    }
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs flush_funcs = {
    .prepare = flush_prepare,
    .check = flush_check,
    .dispatch = flush_dispatch,
};

void
sg_relay_release_shared(void)
{
    g_warn_if_fail(g_queue_is_empty(&flush_queue));
    if (flush_source != NULL) {
        g_source_destroy(flush_source);
        g_clear_pointer(&flush_source, g_source_unref);
    }
}

static void
queue_flush(SgRelay *r, Dir *d)
{
    d->batched = true;
    if (r->flush_queued)
        return;
    if (flush_source == NULL) {
        flush_source = g_source_new(&flush_funcs, sizeof(GSource));
        g_source_set_static_name(flush_source, "spicegate upload flush");
        g_source_set_priority(flush_source, G_PRIORITY_DEFAULT - 1);
        g_source_set_can_recurse(flush_source, TRUE);
        g_source_attach(flush_source, NULL);
    }
    r->flush_link.data = r;
    g_queue_push_tail_link(&flush_queue, &r->flush_link);
    r->flush_queued = true;
}

static void
unqueue_flush(SgRelay *r)
{
    if (!r->flush_queued)
        return;
    g_queue_unlink(&flush_queue, &r->flush_link);
    r->flush_queued = false;
    r->dir[TO_BACK].batched = r->dir[TO_FRONT].batched = false;
}

/* A push source delivered @len bytes. */
static void
on_received(SgEndpoint *ep, const guint8 *bytes, gsize len, gpointer data)
{
    SgRelay *r = data;
    Dir *d = dir_from(r, end_of(r, ep));
    bool batch = len >= SG_BATCH_MIN_BYTES;
    gsize taken;

    /* Small deliveries (input events, acks) go straight from the source's
     * memory to the destination when nothing is queued: no copy, no wait.
     * Large ones (uploads) are queued and sent once the source has
     * delivered everything it read (queue_flush()): one write per read
     * instead of one per frame. */
    if (!batch && dir_open(r, d) && sg_buf_is_empty(d->buf) &&
        !d->dst->ops->needs_headroom && !sg_endpoint_pending(d->dst)) {
        gssize n = d->dst->ops->write(d->dst, (guint8 *)bytes, len);

        if (n < 0) {
            lost_on_error(r, d->dst, errno);
            return;
        }
        d->bytes += (guint64)n;
        bytes += n;
        len -= (gsize)n;
        if (len == 0)
            return;
    }
    taken = sg_buf_append(d->buf, bytes, len);
    if (taken < len) {
        /* Cannot happen while the source honours flow control; refuse
         * rather than drop a byte of someone's session. */
        const char *detail = ep->push.unpausable;

        if (detail == NULL) {
            relay_log(G_LOG_LEVEL_WARNING, r, "buffer toward the SPICE server overflowed");
            detail = "upstream buffer overflow";
        }
        if (r->events.overflow != NULL)
            r->events.overflow(r, detail, r->data);
        return;
    }
    if (r->held && d == &r->dir[TO_BACK] && r->events.held != NULL &&
        !r->events.held(r, sg_buf_data(d->buf), sg_buf_len(d->buf), r->data))
        return;
    if (ep->push.unpausable == NULL && !d->paused && sg_buf_space(d->buf) < ep->push.rx_chunk) {
        d->paused = true;
        ep->ops->want(ep, wanted(r, end_of(r, ep)));
    }
    if (batch && dir_open(r, d)) {
        queue_flush(r, d);
        return;
    }
    if (!flush(r, d)) {
        lost_on_error(r, d->dst, errno);
        return;
    }
    update_interest(r);
}

static void
on_ready(SgEndpoint *ep, SgEndpointReady ready, gpointer data)
{
    SgRelay *r = data;
    SgRelayEnd end = end_of(r, ep);

    if (ready & SG_ENDPOINT_WRITABLE) {
        Dir *out = dir_to(r, end);

        if (!flush(r, out)) {
            lost_on_error(r, ep, errno);
            return;
        }
        if (end == SG_RELAY_FRONT && r->back_dropped && dir_drained(out)) {
            if (r->events.drained != NULL)
                r->events.drained(r, r->data);
            return;
        }
    }
    if ((ready & SG_ENDPOINT_READABLE) && !sg_endpoint_is_push(ep)) {
        pull(r, dir_from(r, end));
        return;
    }
    update_interest(r);
}

static void
on_gone(SgEndpoint *ep, const char *detail, gpointer data)
{
    SgRelay *r = data;

    lost(r, end_of(r, ep), detail);
}

static SgEndpointEvents endpoint_events = {
    .ready = on_ready,
    .received = on_received,
    .gone = on_gone,
};

static gsize
buffer_for(SgEndpoint *src)
{
    return sg_endpoint_is_push(src) ? src->push.rx_buffer : SG_PULL_BUF_BYTES;
}

static bool
can_splice(SgEndpoint *src, SgEndpoint *dst)
{
    return src->ops->splice_source != NULL && dst->ops->can_take_spliced != NULL &&
           dst->ops->write_spliced != NULL;
}

/* Makes @ep the relay's @end: its events come here, and once both ends
 * are there, each direction's zero-copy path is chosen for the pair. */
static void
set_end(SgRelay *r, SgRelayEnd end, SgEndpoint *ep)
{
    SgEndpoint *front, *back;

    r->ends[end] = ep;
    ep->log_id = r->log_id;
    sg_endpoint_set_events(ep, &endpoint_events, r);
    dir_from(r, end)->src = ep;
    dir_to(r, end)->dst = ep;
    front = r->ends[SG_RELAY_FRONT];
    back = r->ends[SG_RELAY_BACK];
    if (front != NULL && back != NULL) {
        r->dir[TO_BACK].zero_copy = can_splice(front, back);
        r->dir[TO_FRONT].zero_copy = can_splice(back, front);
    }
}

/* A wrapper at @end whose work is done (endpoint.h's unwrap()) gives way
 * to the endpoint it wraps: every call after this one goes to that
 * endpoint directly, with nothing in between. Called before a read, so
 * that the read is the inner endpoint's. */
static void
unwrap_end(SgRelay *r, SgRelayEnd end)
{
    SgEndpoint *outer = r->ends[end];
    SgEndpoint *inner = outer->ops->unwrap(outer);

    if (inner == NULL)
        return;
    relay_log(G_LOG_LEVEL_DEBUG, r, "%s end: %s done, %s from here on",
              end == SG_RELAY_FRONT ? "front" : "back", outer->ops->name, inner->ops->name);
    set_end(r, end, inner);
    sg_endpoint_free(outer);
}

SgRelay *
sg_relay_new(SgEndpoint *front, const SgRelayEvents *events, gpointer data)
{
    SgRelay *r = g_new0(SgRelay, 1);

    r->events = *events;
    r->data = data;
    r->held = true;
    set_end(r, SG_RELAY_FRONT, front);
    r->dir[TO_BACK].buf = sg_buf_new(buffer_for(front));
    update_interest(r);
    return r;
}

void
sg_relay_attach_back(SgRelay *r, SgEndpoint *back)
{
    g_return_if_fail(r->ends[SG_RELAY_BACK] == NULL && !r->back_dropped);

    set_end(r, SG_RELAY_BACK, back);
    r->dir[TO_FRONT].buf = sg_buf_new(buffer_for(back));
    if (!flush(r, &r->dir[TO_BACK])) {
        lost_on_error(r, back, errno);
        return;
    }
    update_interest(r);
}

static void
free_back(SgRelay *r)
{
    SgEndpoint *back = r->ends[SG_RELAY_BACK];

    if (back == NULL)
        return;
    r->back_dropped = true;
    r->ends[SG_RELAY_BACK] = NULL;
    r->dir[TO_BACK].dst = NULL;
    r->dir[TO_FRONT].src = NULL;
    g_clear_pointer(&r->dir[TO_FRONT].pipe, sg_pipe_put);
    unqueue_flush(r);
    sg_endpoint_free(back);
}

void
sg_relay_drop_back(SgRelay *r)
{
    if (r->ends[SG_RELAY_BACK] == NULL)
        return;
    free_back(r);
    /* Whatever the front is still owed goes out. */
    update_interest(r);
}

void
sg_relay_hold(SgRelay *r, bool hold)
{
    r->held = hold;
}

void
sg_relay_peek(SgRelay *r, bool peek)
{
    r->peek = peek;
}

bool
sg_relay_front_drained(SgRelay *r)
{
    Dir *d = &r->dir[TO_FRONT];

    return (d->buf == NULL || sg_buf_is_empty(d->buf)) &&
           !sg_endpoint_pending(r->ends[SG_RELAY_FRONT]) &&
           (d->pipe == NULL || d->pipe->len == 0);
}

void
sg_relay_set_log_id(SgRelay *r, guint64 log_id)
{
    r->log_id = log_id;
    for (int e = SG_RELAY_FRONT; e <= SG_RELAY_BACK; e++) {
        if (r->ends[e] != NULL)
            r->ends[e]->log_id = log_id;
    }
}

guint64
sg_relay_bytes_to(SgRelay *r, SgRelayEnd end)
{
    return dir_to(r, end)->bytes;
}

const guint64 *
sg_relay_bytes_counter(SgRelay *r, SgRelayEnd end)
{
    return &dir_to(r, end)->bytes;
}

SgEndpoint *
sg_relay_get_end(SgRelay *r, SgRelayEnd end)
{
    return r->ends[end];
}

void
sg_relay_free(SgRelay *r)
{
    if (r == NULL)
        return;
    unqueue_flush(r);
    free_back(r);                 /* no word to the front: it may be going */
    sg_endpoint_free(r->ends[SG_RELAY_FRONT]);
    for (int i = 0; i < 2; i++) {
        sg_buf_free(r->dir[i].buf);
        sg_pipe_put(r->dir[i].pipe);
    }
    g_free(r);
}
