/* SPDX-License-Identifier: Apache-2.0 */
/* endpoint_link_guard.c - NEED_SECURED caught before the browser sees it
 * (endpoint_link_guard.h).
 *
 * Owns: the inner endpoint until unwrap() hands it over (until then its
 * owner is the guard: its events come here), the copy of what was written before the server's verdict (at
 * most SG_LINK_MAX_BYTES: a link message), the verdict's bytes, and a
 * zero-delay timer for bytes it holds that no socket will announce.
 */
#include "autoconfig.h"

#include <errno.h>
#include <string.h>

#include <glib.h>
#include <spice/protocol.h>

#include "endpoint_link_guard.h"
#include "event_core.h"
#include "spice_link.h"

typedef enum {
    STAGE_REPLY = 0,              /* reading the server's verdict ourselves */
    STAGE_SWITCHING,              /* NEED_SECURED: no connection, the owner connects */
    STAGE_REPLAY,                 /* the link message goes to the new connection */
    STAGE_PASS,                   /* everything passes through */
} Stage;

typedef struct {
    SgEndpoint ep;
    SgEndpoint *inner;
    Stage stage;
    SgEndpointReady wanted;       /* the relay's */
    guint8 head[SG_LINK_REPLY_HEAD_BYTES];
    gsize head_len, head_off;     /* the verdict's bytes; handed on from head_off */
    bool ended;                   /* the inner's stream ended before the verdict ... */
    int end_errno;                /* ... with this error (0: its end) */
    const char *end_error;
    GByteArray *sent;             /* written before the verdict; NULL: too much to replay */
    gsize replayed;
    SgTimer *report;
    SgLinkGuardFunc need_secured;
    gpointer data;
} SgLinkGuard;

static SgEndpointEvents inner_events;

static void
set_inner_want(SgLinkGuard *g)
{
    SgEndpointReady w = 0;

    if (g->inner == NULL)
        return;
    switch (g->stage) {
    case STAGE_REPLY:
        w = SG_ENDPOINT_READABLE | (g->wanted & SG_ENDPOINT_WRITABLE);
        break;
    case STAGE_REPLAY:
        w = SG_ENDPOINT_WRITABLE;
        break;
    case STAGE_PASS:
        w = g->wanted;
        break;
    case STAGE_SWITCHING:
    default:
        break;
    }
    g->inner->ops->want(g->inner, w);
}

/* Bytes of ours the relay has not read: the verdict, or the end after it. */
static bool
holds_bytes(const SgLinkGuard *g)
{
    return g->stage == STAGE_PASS && (g->head_off < g->head_len || g->ended);
}

static gboolean
on_report(gpointer data)
{
    SgLinkGuard *g = data;

    g->report = NULL;
    if (holds_bytes(g) && (g->wanted & SG_ENDPOINT_READABLE))
        sg_endpoint_report(&g->ep, SG_ENDPOINT_READABLE);   /* may free @g */
    return G_SOURCE_REMOVE;
}

/* The verdict is in (or the stream ended first): from now on the guard
 * passes through. Returns what to report to the relay. */
static SgEndpointReady
pass(SgLinkGuard *g)
{
    g->stage = STAGE_PASS;
    g_clear_pointer(&g->sent, g_byte_array_unref);
    set_inner_want(g);
    return SG_ENDPOINT_READABLE;
}

/* REPLY: reads what is missing of the verdict. Returns what to report to
 * the relay, or -1 when the guard told its owner NEED_SECURED (and may be
 * gone). */
static int
read_verdict(SgLinkGuard *g)
{
    gssize n = g->inner->ops->read(g->inner, g->head + g->head_len,
                                   sizeof(g->head) - g->head_len);
    uint32_t verdict = SPICE_LINK_ERR_OK;

    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    if (n <= 0) {
        g->ended = true;
        g->end_errno = n < 0 ? errno : 0;
        g->end_error = g->inner->error;
        return pass(g);
    }
    g->head_len += (gsize)n;
    switch (sg_spice_link_reply_error(g->head, g->head_len, &verdict, NULL)) {
    case SG_PARSE_AGAIN:
        return 0;
    case SG_PARSE_OK:
        /* Once only, and only with the whole link message to replay. */
        if (verdict == SPICE_LINK_ERR_NEED_SECURED && g->sent != NULL && g->sent->len > 0) {
            g->stage = STAGE_SWITCHING;
            g->head_len = 0;
            /* Allowed from inside its event (endpoint.h). */
            g_clear_pointer(&g->inner, sg_endpoint_free);
            g->need_secured(&g->ep, g->data);   /* may free @g */
            return -1;
        }
        return pass(g);
    case SG_PARSE_INVALID:
    default:
        return pass(g);         /* not ours to judge: the session's scan and the browser do */
    }
}

/* REPLAY: the link message again, to the new connection. Returns what
 * to report to the relay. */
static SgEndpointReady
replay(SgLinkGuard *g)
{
    gssize n = g->inner->ops->write(g->inner, g->sent->data + g->replayed,
                                    g->sent->len - g->replayed);

    if (n < 0) {
        g->ended = true;
        g->end_errno = errno;
        g->end_error = g->inner->error;
        return pass(g);
    }
    g->replayed += (gsize)n;
    if (g->replayed < g->sent->len)
        return 0;
    /* The relay may write again (it was told "none now"); the reply is
     * the TLS server's, unjudged. */
    return pass(g) | SG_ENDPOINT_WRITABLE;
}

static void
on_inner_ready(SgEndpoint *inner, SgEndpointReady ready, gpointer data)
{
    SgLinkGuard *g = data;
    SgEndpointReady out = 0;

    (void)inner;
    switch (g->stage) {
    case STAGE_REPLY:
        if (ready & SG_ENDPOINT_READABLE) {
            int r = read_verdict(g);

            if (r < 0)
                return;
            out |= (SgEndpointReady)r;
        }
        if (ready & SG_ENDPOINT_WRITABLE)
            out |= SG_ENDPOINT_WRITABLE;
        break;
    case STAGE_REPLAY:
        if (ready & (SG_ENDPOINT_WRITABLE | SG_ENDPOINT_READABLE))
            out |= replay(g);
        break;
    case STAGE_PASS:
        out = ready;
        break;
    case STAGE_SWITCHING:
    default:
        return;
    }
    out &= g->wanted;
    if (out != 0) {
        sg_endpoint_report(&g->ep, out);   /* may free @g */
        return;
    }
    set_inner_want(g);
}

static void
on_inner_received(SgEndpoint *inner, const guint8 *bytes, gsize len, gpointer data)
{
    (void)inner;
    (void)bytes;
    (void)len;
    (void)data;
    g_warn_if_reached();          /* the inner endpoints are pull endpoints */
}

static void
on_inner_gone(SgEndpoint *inner, const char *detail, gpointer data)
{
    (void)inner;
    sg_endpoint_report_gone(&((SgLinkGuard *)data)->ep, detail);
}

static SgEndpointEvents inner_events = {
    .ready = on_inner_ready,
    .received = on_inner_received,
    .gone = on_inner_gone,
};

static gssize
guard_read(SgEndpoint *ep, guint8 *dst, gsize len)
{
    SgLinkGuard *g = (SgLinkGuard *)ep;

    if (g->stage != STAGE_PASS) {
        errno = EAGAIN;
        return -1;
    }
    if (g->head_off < g->head_len) {
        gsize n = MIN(len, g->head_len - g->head_off);

        memcpy(dst, g->head + g->head_off, n);
        g->head_off += n;
        return (gssize)n;
    }
    if (g->ended) {
        ep->error = g->end_error;
        errno = g->end_errno;
        return g->end_errno != 0 ? -1 : 0;
    }
    return g->inner->ops->read(g->inner, dst, len);
}

static gssize
guard_write(SgEndpoint *ep, guint8 *bytes, gsize len)
{
    SgLinkGuard *g = (SgLinkGuard *)ep;
    gssize n;

    if (g->stage == STAGE_SWITCHING || g->stage == STAGE_REPLAY)
        return 0;                 /* after the replay; WRITABLE says when */
    if (g->ended) {
        ep->error = g->end_error;
        errno = g->end_errno != 0 ? g->end_errno : EPIPE;
        return -1;
    }
    n = g->inner->ops->write(g->inner, bytes, len);
    if (n < 0)
        ep->error = g->inner->error;
    if (n > 0 && g->stage == STAGE_REPLY && g->sent != NULL) {
        if (g->sent->len + (gsize)n <= SG_LINK_MAX_BYTES)
            g_byte_array_append(g->sent, bytes, (guint)n);
        else
            g_clear_pointer(&g->sent, g_byte_array_unref);   /* not a lone link message */
    }
    return n;
}

static bool
guard_pending(SgEndpoint *ep)
{
    SgLinkGuard *g = (SgLinkGuard *)ep;

    return g->inner != NULL && (g->stage == STAGE_REPLY || g->stage == STAGE_PASS) &&
           sg_endpoint_pending(g->inner);
}

static void
guard_want(SgEndpoint *ep, SgEndpointReady wanted)
{
    SgLinkGuard *g = (SgLinkGuard *)ep;

    g->wanted = wanted;
    set_inner_want(g);
    if ((wanted & SG_ENDPOINT_READABLE) && holds_bytes(g) && g->report == NULL)
        g->report = sg_timer_add(0, on_report, g);
}

static void
guard_close(SgEndpoint *ep, guint16 code, const char *reason)
{
    SgLinkGuard *g = (SgLinkGuard *)ep;

    if (g->inner != NULL)
        sg_endpoint_close(g->inner, code, reason);
}

static void
guard_abort(SgEndpoint *ep)
{
    SgLinkGuard *g = (SgLinkGuard *)ep;

    if (g->inner != NULL)
        sg_endpoint_abort(g->inner);
}

static const char *
guard_peer(SgEndpoint *ep)
{
    SgLinkGuard *g = (SgLinkGuard *)ep;

    return g->inner != NULL ? sg_endpoint_peer(g->inner) : "-";
}

static void
guard_free(SgEndpoint *ep)
{
    SgLinkGuard *g = (SgLinkGuard *)ep;

    g_clear_pointer(&g->report, sg_timer_remove);
    g_clear_pointer(&g->inner, sg_endpoint_free);
    g_clear_pointer(&g->sent, g_byte_array_unref);
    g_free(g);
}

/* The verdict has passed and the relay has read every byte the guard
 * held: from here on the relay talks to the inner endpoint itself, and a
 * console's every read and write costs what it did without the guard. */
static SgEndpoint *
guard_unwrap(SgEndpoint *ep)
{
    SgLinkGuard *g = (SgLinkGuard *)ep;

    if (g->stage != STAGE_PASS || holds_bytes(g) || g->inner == NULL)
        return NULL;
    g_clear_pointer(&g->report, sg_timer_remove);
    return g_steal_pointer(&g->inner);
}

static const SgEndpointOps guard_ops = {
    .name = "link-guard",
    .read = guard_read,
    .write = guard_write,
    .pending = guard_pending,
    .want = guard_want,
    .close = guard_close,
    .abort = guard_abort,
    .peer = guard_peer,
    .free = guard_free,
    .unwrap = guard_unwrap,
};

SgEndpoint *
sg_endpoint_link_guard_new(SgEndpoint *inner, SgLinkGuardFunc need_secured, gpointer data)
{
    SgLinkGuard *g;

    g_return_val_if_fail(!sg_endpoint_is_push(inner), NULL);
    g = g_new0(SgLinkGuard, 1);
    g->ep.ops = &guard_ops;
    g->inner = inner;
    g->need_secured = need_secured;
    g->data = data;
    g->sent = g_byte_array_new();
    sg_endpoint_set_events(inner, &inner_events, g);
    set_inner_want(g);
    return &g->ep;
}

void
sg_endpoint_link_guard_switch(SgEndpoint *ep, SgEndpoint *inner)
{
    SgLinkGuard *g = (SgLinkGuard *)ep;

    g_return_if_fail(g->stage == STAGE_SWITCHING && g->inner == NULL);
    g->inner = inner;
    inner->log_id = ep->log_id;
    sg_endpoint_set_events(inner, &inner_events, g);
    g->stage = STAGE_REPLAY;
    g->replayed = 0;
    set_inner_want(g);
}
