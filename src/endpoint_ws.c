/* SPDX-License-Identifier: Apache-2.0 */
/* endpoint_ws.c - SgEndpoint over a libwebsockets websocket.
 *
 * Owns: its paused-upload check timer. Every libwebsockets call about the
 * browser's data (writes, flow control, partial writes, the close frame,
 * keepalive pings) is here; the wsi itself belongs to lws.
 */
#include "autoconfig.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <glib.h>
#include <libwebsockets.h>

#include "buf.h"
#include "compat.h"
#include "endpoint_ws.h"
#include "event_core.h"
#include "log.h"
#include "session.h"

G_STATIC_ASSERT(LWS_PRE <= SG_ENDPOINT_HEADROOM);

/* A server's websocket frame header for a payload under 64 KiB: 4 bytes;
 * rounded up. */
#define SG_WS_HEADER_MAX_BYTES SG_ENDPOINT_FRAME_MAX

/* Toward the SPICE server the relay holds this much from a websocket: we
 * stop reading the websocket when less than one lws receive chunk would
 * fit, so the buffer never has to refuse bytes lws already handed us. */
#define SG_WS_UP_BUF_BYTES (4 * SG_SESSION_RX_CHUNK_BYTES)
/* Uploads on an HTTP/2 stream cannot be paused: lws 4.1.6 closes a
 * websocket stream whose reads are stopped (seen under load: the session
 * ended as "browser closed" the moment it paused), and it keeps granting
 * the browser send window as it reads. So such a session buffers instead,
 * up to this much that the SPICE server has not taken (a browser's SPICE
 * uploads are keystrokes and pointer moves), then closes. Pages are only
 * touched as they fill. */
#define SG_H2_UP_BUF_BYTES (4 * 1024 * 1024)

/* While reads from the browser are paused (flow control), lws does not
 * poll its socket, so a browser that leaves goes unseen: its FIN waits
 * behind unread data. TCP still knows: the socket is in CLOSE_WAIT. */
#define SG_PAUSED_CHECK_MS 1000

typedef struct {
    SgEndpoint ep;
    struct lws *wsi;
    char *peer;
    /* A websocket on an HTTP/2 stream (RFC 8441: lws 4.1 offers it and
     * browsers take it over https). lws writes each message as one DATA
     * frame without splitting it, so messages must fit a frame and the
     * stream's send window; the TCP socket is the connection's, shared. */
    bool over_h2;
    bool rx_paused;               /* lws reads stopped for flow control */
    bool out_requested;           /* a WRITEABLE is asked for and not yet seen */
    bool closing;                 /* the close frame goes out at the next WRITEABLE */
    bool broken;                  /* a write failed */
    bool ping_due;                /* a keepalive ping goes out at the next WRITEABLE */
    bool relay_waits;             /* the relay asked for WRITABLE and has not had it */
    guint64 heard;                /* deliveries and pongs from the browser */
    guint16 close_code;
    char *close_text;
    SgTimer *paused_check;        /* while rx_paused: is the browser gone? */
} SgWsEndpoint;

#define ep_log(level, ep, fmt, ...)                                                   \
    sg_log_session(level, &(SgLogSession){ .session = (ep)->log_id },                 \
                   "[s:%" G_GUINT64_FORMAT "] " fmt, (ep)->log_id, ##__VA_ARGS__)

static gssize
ws_write(SgEndpoint *ep, guint8 *bytes, gsize len)
{
    SgWsEndpoint *ws = (SgWsEndpoint *)ep;

    /* One message is one DATA frame here (see over_h2): within the frame
     * size every peer accepts. The stream's send window is not ours to
     * see: lws 4.1.6 keeps it internal for websocket streams (the public
     * allowance is -1 there) and sends past it; browsers open windows of
     * several MB and consume as the page reads. */
    if (ws->over_h2)
        len = MIN(len, SG_HTTP2_MAX_FRAME_BYTES - SG_WS_HEADER_MAX_BYTES);
    if (lws_partial_buffered(ws->wsi))
        return 0;
    /* What the socket does not take lws keeps and sends before anything
     * else on this websocket (its own pongs and close frames included),
     * so frames never interleave; pending() says so meanwhile. */
    if (lws_write(ws->wsi, bytes, len, LWS_WRITE_BINARY) < (int)len) {
        ws->broken = true;
        ep->error = "websocket write failed";
        errno = EPIPE;
        return -1;
    }
    return (gssize)len;
}

static bool
ws_pending(SgEndpoint *ep)
{
    return lws_partial_buffered(((SgWsEndpoint *)ep)->wsi) != 0;
}

static gboolean
on_paused_check(gpointer data)
{
    SgWsEndpoint *ws = data;
    int fd = sg_lws_socket_fd(ws->wsi);
    struct tcp_info ti;
    socklen_t len = sizeof(ti);

    if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 ||
        ti.tcpi_state != TCP_CLOSE_WAIT)
        return G_SOURCE_CONTINUE;
    ws->paused_check = NULL;
    sg_endpoint_report_gone(&ws->ep, "it left while its uploads waited for the SPICE server");
    return G_SOURCE_REMOVE;
}

static void
ws_want(SgEndpoint *ep, SgEndpointReady wanted)
{
    SgWsEndpoint *ws = (SgWsEndpoint *)ep;
    bool read = (wanted & SG_ENDPOINT_READABLE) != 0;

    if (read == ws->rx_paused && !ws->over_h2) {   /* see SG_H2_UP_BUF_BYTES */
        ws->rx_paused = !read;
        lws_rx_flow_control(ws->wsi, read ? 1 : 0);
        if (read) {
            g_clear_pointer(&ws->paused_check, sg_timer_remove);
        } else {
            ep_log(G_LOG_LEVEL_DEBUG, ep, "uploads paused: the SPICE server is not reading");
            if (ws->paused_check == NULL)
                ws->paused_check = sg_timer_add(SG_PAUSED_CHECK_MS, on_paused_check, ws);
        }
    }
    /* Asking lws for WRITEABLE turns POLLOUT on until the callback: ask
     * once per callback. */
    if (wanted & SG_ENDPOINT_WRITABLE)
        ws->relay_waits = true;
    if ((wanted & SG_ENDPOINT_WRITABLE) && !ws->out_requested) {
        ws->out_requested = true;
        lws_callback_on_writable(ws->wsi);
    }
}

static void
ws_close(SgEndpoint *ep, guint16 code, const char *reason)
{
    SgWsEndpoint *ws = (SgWsEndpoint *)ep;

    ws->closing = true;
    ws->close_code = code;
    g_free(ws->close_text);
    ws->close_text = g_strdup(reason);
    g_clear_pointer(&ws->paused_check, sg_timer_remove);
    lws_callback_on_writable(ws->wsi);
}

/* lws' own timeout path: the connection is dropped as unusable, with no
 * attempt to flush or to send a close frame. From outside its callbacks
 * lws 4.1.6 on libuv only sees the timer once it services something (its
 * loop re-arms its timer after I/O): wake it. */
static void
ws_abort(SgEndpoint *ep)
{
    SgWsEndpoint *ws = (SgWsEndpoint *)ep;

    g_clear_pointer(&ws->paused_check, sg_timer_remove);
    lws_set_timeout(ws->wsi, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    lws_cancel_service(lws_get_context(ws->wsi));
}

static const char *
ws_peer(SgEndpoint *ep)
{
    return ((SgWsEndpoint *)ep)->peer;
}

/* The one lws extension (permessage-deflate) rewrites payloads, so bytes
 * written past lws would be wrong. spicegate offers none (listener.c), but
 * this is checked on the connection itself: lws_set_extension_option()
 * fails exactly when the extension is not active on it. The option named
 * is none of the extension's, so nothing is changed if it is. */
static bool
ws_extension_active(SgWsEndpoint *ws)
{
    return lws_set_extension_option(ws->wsi, "permessage-deflate", "sg-probe", "") != -1;
}

static bool
ws_can_take_spliced(SgEndpoint *ep)
{
    SgWsEndpoint *ws = (SgWsEndpoint *)ep;

    /* TLS needs the bytes in our memory to encrypt them; an HTTP/2 stream
     * frames them in DATA frames; bytes lws still holds must go first. */
    return !ws->over_h2 && !lws_is_ssl(ws->wsi) && !lws_partial_buffered(ws->wsi) &&
           !ws_extension_active(ws);
}

static int
ws_splice_source(SgEndpoint *ep)
{
    (void)ep;
    return -1;
}

/* The header of one unmasked, final, binary websocket frame of @len bytes
 * (RFC 6455 5.2); returns its size, 2 to 10 bytes. */
static gsize
ws_binary_frame_header(guint8 hdr[10], gsize len)
{
    hdr[0] = 0x82;
    if (len < 126) {
        hdr[1] = (guint8)len;
        return 2;
    }
    if (len <= 0xffff) {
        hdr[1] = 126;
        hdr[2] = (guint8)(len >> 8);
        hdr[3] = (guint8)len;
        return 4;
    }
    hdr[1] = 127;
    for (int i = 0; i < 8; i++)
        hdr[2 + i] = (guint8)((guint64)len >> (56 - 8 * i));
    return 10;
}

/* Sends the message in the pipe as one binary frame, bypassing lws: our
 * header, then the payload spliced from the pipe straight into the socket.
 * lws writes nothing of its own meanwhile (we run to the end before it can
 * run), so frames cannot interleave. When the socket fills up mid-frame,
 * the rest is copied out of the pipe and handed to lws as raw bytes: lws
 * then sends it before anything of its own, as for any partial write.
 * Returns false when the websocket is broken. */
static bool
ws_write_spliced_inner(SgWsEndpoint *ws, SgPipe *pipe_, SgBuf *spill)
{
    int fd = lws_get_socket_fd(ws->wsi);
    guint8 hdr[10];
    gsize payload = pipe_->len;
    gsize hlen = ws_binary_frame_header(hdr, payload);
    gsize hsent = 0, avail, rest;
    ssize_t n = send(fd, hdr, hlen, MSG_MORE | MSG_NOSIGNAL | MSG_DONTWAIT);
    guint8 *dst;

    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        return false;
    hsent = n > 0 ? (gsize)n : 0;
    if (hsent == hlen && sg_pipe_drain(pipe_, fd) < 0 && errno != EAGAIN &&
        errno != EWOULDBLOCK)
        return false;
    if (pipe_->len > 0) {
        /* Nothing sent yet: lws frames the payload itself. Else the rest
         * of our frame goes out raw. */
        enum lws_write_protocol how = hsent == 0 ? LWS_WRITE_BINARY : LWS_WRITE_RAW;
        gsize total;

        rest = hsent == 0 ? 0 : hlen - hsent;
        dst = sg_buf_reserve(spill, &avail);
        g_assert(sg_buf_is_empty(spill) && avail >= rest + pipe_->len);
        memcpy(dst, hdr + hsent, rest);
        total = rest + pipe_->len;
        if (sg_pipe_read_all(pipe_, dst + rest) < 0)
            return false;
        sg_buf_commit(spill, total);
        ep_log(G_LOG_LEVEL_DEBUG, &ws->ep, "websocket full mid-message: %" G_GSIZE_FORMAT
               " bytes handed to lws", total);
        if (lws_write(ws->wsi, sg_buf_data(spill), total, how) < (int)total)
            return false;
        sg_buf_consume(spill, total);
        ws->relay_waits = true;
        ws->out_requested = true;
        lws_callback_on_writable(ws->wsi);
    }
    return true;
}

static bool
ws_write_spliced(SgEndpoint *ep, SgPipe *pipe_, SgBuf *spill)
{
    SgWsEndpoint *ws = (SgWsEndpoint *)ep;

    if (ws_write_spliced_inner(ws, pipe_, spill))
        return true;
    ws->broken = true;
    ep->error = "websocket write failed";
    return false;
}

static void
ws_free(SgEndpoint *ep)
{
    SgWsEndpoint *ws = (SgWsEndpoint *)ep;

    g_clear_pointer(&ws->paused_check, sg_timer_remove);
    g_free(ws->close_text);
    g_free(ws->peer);
    g_free(ws);
}

static const SgEndpointOps ws_ops = {
    .name = "websocket",
    .needs_headroom = true,
    .read = NULL,                 /* a push endpoint: sg_endpoint_ws_on_receive() */
    .write = ws_write,
    .pending = ws_pending,
    .want = ws_want,
    .close = ws_close,
    .abort = ws_abort,
    .peer = ws_peer,
    .free = ws_free,
    .splice_source = ws_splice_source,
    .can_take_spliced = ws_can_take_spliced,
    .write_spliced = ws_write_spliced,
};

SgEndpoint *
sg_endpoint_ws_new(struct lws *wsi, const char *peer)
{
    SgWsEndpoint *ws = g_new0(SgWsEndpoint, 1);

    ws->ep.ops = &ws_ops;
    ws->wsi = wsi;
    ws->peer = g_strdup(peer);
    ws->over_h2 = sg_lws_is_h2_stream(wsi);
    ws->ep.push.rx_chunk = SG_SESSION_RX_CHUNK_BYTES;
    ws->ep.push.rx_buffer = ws->over_h2 ? SG_H2_UP_BUF_BYTES : SG_WS_UP_BUF_BYTES;
    ws->ep.push.unpausable =
        ws->over_h2 ? "over HTTP/2 the browser sent 4 MiB more than the SPICE server took"
                    : NULL;
    return &ws->ep;
}

void
sg_endpoint_ws_on_receive(SgEndpoint *ep, const void *data, size_t len)
{
    ((SgWsEndpoint *)ep)->heard++;
    sg_endpoint_deliver(ep, data, len);
}

void
sg_endpoint_ws_on_pong(SgEndpoint *ep)
{
    ((SgWsEndpoint *)ep)->heard++;
}

guint64
sg_endpoint_ws_heard(SgEndpoint *ep)
{
    return ((SgWsEndpoint *)ep)->heard;
}

bool
sg_endpoint_ws_deaf(SgEndpoint *ep)
{
    return ((SgWsEndpoint *)ep)->rx_paused;
}

void
sg_endpoint_ws_ping(SgEndpoint *ep)
{
    SgWsEndpoint *ws = (SgWsEndpoint *)ep;

    if (ws->closing || ws->ping_due)
        return;
    ws->ping_due = true;
    if (!ws->out_requested) {
        ws->out_requested = true;
        lws_callback_on_writable(ws->wsi);
    }
}

/* The keepalive ping's payload. Not empty: lws 4.1.6 gives no RECEIVE_PONG
 * callback for an empty pong, so the answer to an empty ping would go
 * unheard. */
#define SG_WS_PING_PAYLOAD "sg"

/* The keepalive ping, from a WRITEABLE: a frame of its own, through
 * lws. Every frame spicegate writes, through lws or past it (the splice
 * path), is whole by the time we return to the loop: either in the kernel
 * or, when the socket filled, its rest held by lws, which then sends that
 * rest before anything else and calls no WRITEABLE until it has. So with
 * nothing held the stream is at a frame boundary, and the ping cannot land
 * inside a message. On an HTTP/2 stream lws frames it as a DATA frame of
 * its own, as it does every message. Returns false when the write failed. */
static bool
send_ping(SgWsEndpoint *ws)
{
    guint8 frame[LWS_PRE + sizeof(SG_WS_PING_PAYLOAD)];
    gsize len = sizeof(SG_WS_PING_PAYLOAD) - 1;

    ws->ping_due = false;
    memcpy(frame + LWS_PRE, SG_WS_PING_PAYLOAD, len);
    if (lws_write(ws->wsi, frame + LWS_PRE, len, LWS_WRITE_PING) < 0) {
        ws->broken = true;
        ws->ep.error = "websocket write failed (ping)";
        return false;
    }
    return true;
}

int
sg_endpoint_ws_on_writeable(SgEndpoint *ep)
{
    SgWsEndpoint *ws = (SgWsEndpoint *)ep;

    ws->out_requested = false;
    if (ws->ping_due && !ws->closing) {
        if (lws_partial_buffered(ws->wsi)) {
            /* Not at a frame boundary yet: once lws has sent the rest. */
            ws->out_requested = true;
            lws_callback_on_writable(ws->wsi);
            return 0;
        }
        if (!send_ping(ws))
            return -1;
        /* One write per WRITEABLE (an HTTP/2 stream requires it): the
         * relay's turn, if it is waiting for one, comes at the next. */
        if (ws->relay_waits) {
            ws->out_requested = true;
            lws_callback_on_writable(ws->wsi);
        }
        return 0;
    }
    if (!ws->closing) {
        ws->relay_waits = false;
        /* A close asked for from in here goes out at the next WRITEABLE,
         * once lws has flushed what it holds. */
        sg_endpoint_report(ep, SG_ENDPOINT_WRITABLE);
        return ws->broken ? -1 : 0;
    }
    {
        const char *text = ws->close_text != NULL ? ws->close_text : "";
        guint16 code = ws->close_code;
        /* An unmasked, final close frame (RFC 6455 5.5.1): payload of at
         * most 125 bytes, the code then the reason. */
        guint8 frame[LWS_PRE + 2 + 125];
        gsize tlen = MIN(strlen(text), 125 - 2);

        if (ws->over_h2) {
            lws_close_reason(ws->wsi, (enum lws_close_status)code, (unsigned char *)text,
                             strlen(text));
            return -1;
        }
        /* We write the close frame (raw, as the splice path writes its
         * frame headers), then -1 hangs up, as lws did before. Not
         * lws_close_reason() and -1: lws would defer the close to send the
         * frame itself, but when lws 4.1.6 (as Debian builds it) closes a
         * connection of its libuv event library because a callback
         * returned -1, it calls its close a second time at once
         * ("close_and_handled uv repeat test"), which kills the deferred
         * close before the frame is out (the browser saw 1006). An HTTP/2
         * stream is closed by its connection, not by that path. The
         * socket is writable here; what it does not take lws keeps and
         * sends before it closes. */
        frame[LWS_PRE] = 0x88;
        frame[LWS_PRE + 1] = (guint8)(2 + tlen);
        frame[LWS_PRE + 2] = (guint8)(code >> 8);
        frame[LWS_PRE + 3] = (guint8)code;
        memcpy(frame + LWS_PRE + 4, text, tlen);
        lws_write(ws->wsi, frame + LWS_PRE, 4 + tlen, LWS_WRITE_RAW);
        return -1;
    }
}

bool
sg_endpoint_ws_is_h2(SgEndpoint *ep)
{
    return ((SgWsEndpoint *)ep)->over_h2;
}
