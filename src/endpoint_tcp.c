/* SPDX-License-Identifier: Apache-2.0 */
/* endpoint_tcp.c - SgEndpoint over a plain stream socket.
 *
 * Owns: the SgUpstream it was given (socket, watch) or the bare socket and
 * its watch. All I/O on the SPICE server's socket happens here; upstream.c
 * only connects.
 */
#include "autoconfig.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include <glib.h>

#include "endpoint_tcp.h"
#include "event_core.h"
#include "upstream.h"

typedef struct {
    SgEndpoint ep;
    SgUpstream *up;               /* or: */
    SgWatch *watch;               /* with fd, when made from a bare socket */
    int fd;
    char *peer;
    SgEndpointReady wanted;
} SgTcpEndpoint;

static GIOCondition
to_condition(SgEndpointReady wanted)
{
    return ((wanted & SG_ENDPOINT_READABLE) ? G_IO_IN : 0) |
           ((wanted & SG_ENDPOINT_WRITABLE) ? G_IO_OUT : 0);
}

/* Hang-ups and errors count as readable: the next read() says what
 * happened. */
static void
dispatch(SgTcpEndpoint *tcp, GIOCondition ready)
{
    SgEndpointReady r = 0;

    if (ready & G_IO_OUT)
        r |= SG_ENDPOINT_WRITABLE;
    if (ready & (G_IO_IN | G_IO_HUP | G_IO_ERR))
        r |= SG_ENDPOINT_READABLE;
    /* May free @tcp: event_core.c allows that. */
    sg_endpoint_report(&tcp->ep, r);
}

static void
on_upstream_io(SgUpstream *up, GIOCondition ready, gpointer data)
{
    (void)up;
    dispatch(data, ready);
}

static void
on_watch(SgWatch *watch, int fd, GIOCondition ready, gpointer data)
{
    (void)watch;
    (void)fd;
    dispatch(data, ready);
}

static gssize
tcp_read(SgEndpoint *ep, guint8 *dst, gsize len)
{
    SgTcpEndpoint *tcp = (SgTcpEndpoint *)ep;

    return recv(tcp->fd, dst, len, 0);
}

static gssize
tcp_write(SgEndpoint *ep, guint8 *bytes, gsize len)
{
    SgTcpEndpoint *tcp = (SgTcpEndpoint *)ep;
    ssize_t n = send(tcp->fd, bytes, len, MSG_NOSIGNAL);

    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    return n;
}

static void
tcp_want(SgEndpoint *ep, SgEndpointReady wanted)
{
    SgTcpEndpoint *tcp = (SgTcpEndpoint *)ep;

    tcp->wanted = wanted;
    /* Both skip an unchanged set (event_core.c), and re-arm after an
     * error. */
    if (tcp->up != NULL)
        sg_upstream_set_interest(tcp->up, to_condition(wanted));
    else
        sg_watch_modify(tcp->watch, to_condition(wanted));
}

static void
tcp_close(SgEndpoint *ep, guint16 code, const char *reason)
{
    SgTcpEndpoint *tcp = (SgTcpEndpoint *)ep;

    (void)code;
    (void)reason;
    /* No close frame in TCP: the peer reads the end of the stream. */
    shutdown(tcp->fd, SHUT_RDWR);
}

static void
tcp_abort(SgEndpoint *ep)
{
    tcp_close(ep, 0, NULL);
}

static const char *
tcp_peer(SgEndpoint *ep)
{
    SgTcpEndpoint *tcp = (SgTcpEndpoint *)ep;

    return tcp->up != NULL ? sg_upstream_get_peer(tcp->up) : tcp->peer;
}

static int
tcp_splice_source(SgEndpoint *ep)
{
    return ((SgTcpEndpoint *)ep)->fd;
}

static void
tcp_free(SgEndpoint *ep)
{
    SgTcpEndpoint *tcp = (SgTcpEndpoint *)ep;

    g_clear_pointer(&tcp->up, sg_upstream_free);
    g_clear_pointer(&tcp->watch, sg_watch_remove);   /* before the socket closes */
    if (tcp->peer != NULL && tcp->fd >= 0)
        close(tcp->fd);
    g_free(tcp->peer);
    g_free(tcp);
}

static const SgEndpointOps tcp_ops = {
    .name = "tcp",
    .read = tcp_read,
    .write = tcp_write,
    .want = tcp_want,
    .close = tcp_close,
    .abort = tcp_abort,
    .peer = tcp_peer,
    .free = tcp_free,
    .splice_source = tcp_splice_source,
};

SgEndpoint *
sg_endpoint_tcp_new(SgUpstream *up)
{
    SgTcpEndpoint *tcp = g_new0(SgTcpEndpoint, 1);

    tcp->ep.ops = &tcp_ops;
    tcp->up = up;
    tcp->fd = sg_upstream_get_fd(up);
    sg_upstream_set_io_func(up, on_upstream_io, tcp);
    return &tcp->ep;
}

SgEndpoint *
sg_endpoint_tcp_new_fd(int fd, const char *peer)
{
    SgTcpEndpoint *tcp = g_new0(SgTcpEndpoint, 1);

    tcp->ep.ops = &tcp_ops;
    tcp->fd = fd;
    tcp->peer = g_strdup(peer != NULL ? peer : "-");
    tcp->watch = sg_watch_fd(fd, 0, on_watch, tcp);
    return &tcp->ep;
}
