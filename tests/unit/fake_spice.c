/* SPDX-License-Identifier: Apache-2.0 */
/* fake_spice.c - the fault-injecting SPICE peer of the core's unit tests;
 * see fake_spice.h. Not a SPICE server: it does what the test tells it. */
#define _GNU_SOURCE 1             /* accept4() */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <check.h>
#include <glib-unix.h>
#include <glib.h>
#include <spice/protocol.h>

#include "fake_spice.h"

#define FSP_READ_CHUNK (64 * 1024)
#define FSP_FLOOD_CHUNK (256 * 1024)
/* An echo stops reading while this much waits to go back. */
#define FSP_ECHO_BACKLOG (1024 * 1024)

typedef struct {
    FakeSpice *fsp;
    int fd;
    FspMode mode;
    guint source_id;
    GIOCondition watching;
    GByteArray *received;
    guint64 received_total;
    GByteArray *out;
    gsize out_off;
    guint64 sent;
    guint64 flood_left;
    bool flood_then_close;
    bool flooding;
    bool blocked;
    bool got_first;
} FspConn;

struct FakeSpice {
    int listen_fd;
    guint listen_id;
    guint16 port;
    FspMode mode;
    guint64 flood_bytes;
    bool flood_then_close;
    int sndbuf;
    int rcvbuf;
    bool reading;
    GList *conns;                 /* FspConn*, newest first */
    FspConn *newest;              /* may be closed already: kept until fsp_free() */
    GPtrArray *all;               /* every FspConn, for fsp_free() */
    guint accepted;
    guint peer_closed;
};

static gboolean on_conn_io(gint fd, GIOCondition cond, gpointer data);

static void
conn_rewatch(FspConn *c)
{
    GIOCondition want = 0;

    if (c->fd < 0)
        return;
    if (c->mode != FSP_SILENT && c->fsp->reading &&
        (c->mode != FSP_ECHO || c->out->len - c->out_off < FSP_ECHO_BACKLOG))
        want |= G_IO_IN;
    if (c->out->len > c->out_off || (c->flooding && c->flood_left > 0))
        want |= G_IO_OUT;
    if (want == c->watching && c->source_id != 0)
        return;
    g_clear_handle_id(&c->source_id, g_source_remove);
    c->watching = want;
    if (want != 0)
        c->source_id = g_unix_fd_add(c->fd, want, on_conn_io, c);
}

static void
conn_end(FspConn *c, bool reset)
{
    if (c->fd < 0)
        return;
    if (reset) {
        struct linger lg = { .l_onoff = 1, .l_linger = 0 };

        setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    g_clear_handle_id(&c->source_id, g_source_remove);
    close(c->fd);
    c->fd = -1;
    c->fsp->conns = g_list_remove(c->fsp->conns, c);
}

static void
conn_free(gpointer data)
{
    FspConn *c = data;

    conn_end(c, false);
    g_byte_array_unref(c->received);
    g_byte_array_unref(c->out);
    g_free(c);
}

/* Sends what is queued, then more of the flood; false once the socket is full. */
static void
conn_write(FspConn *c)
{
    for (;;) {
        if (c->out->len == c->out_off) {
            g_byte_array_set_size(c->out, 0);
            c->out_off = 0;
            if (!c->flooding || c->flood_left == 0)
                break;
            {
                gsize n = (gsize)MIN(c->flood_left, FSP_FLOOD_CHUNK);
                guint64 from = c->sent;

                g_byte_array_set_size(c->out, (guint)n);
                for (gsize i = 0; i < n; i++)
                    c->out->data[i] = fsp_pattern(from + i);
                c->flood_left -= n;
            }
        }
        {
            ssize_t n = send(c->fd, c->out->data + c->out_off, c->out->len - c->out_off,
                             MSG_NOSIGNAL | MSG_DONTWAIT);

            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) {
                    c->blocked = true;
                    return;
                }
                if (errno == EINTR)
                    continue;
                c->out_off = c->out->len;       /* spicegate is gone */
                c->flood_left = 0;
                break;
            }
            c->blocked = false;
            c->out_off += (gsize)n;
            c->sent += (guint64)n;
        }
    }
    c->blocked = false;
    if (c->flooding && c->flood_left == 0 && c->flood_then_close) {
        c->flooding = false;
        conn_end(c, false);
    }
}

static void
on_first_bytes(FspConn *c)
{
    c->got_first = true;
    switch (c->mode) {
    case FSP_CLOSE:
        conn_end(c, false);
        break;
    case FSP_RESET:
        conn_end(c, true);
        break;
    case FSP_FLOOD:
        c->flooding = true;
        conn_write(c);
        break;
    case FSP_NEED_SECURED: {
        /* SpiceLinkHeader + a zeroed SpiceLinkReply with only its error
         * set: spice-server's reds_send_link_error(). */
        guint8 reply[16 + 178] = { 'R', 'E', 'D', 'Q', 2, 0, 0, 0, 2, 0, 0, 0, 178, 0, 0, 0,
                                   SPICE_LINK_ERR_NEED_SECURED, 0, 0, 0 };

        ck_assert_int_eq(send(c->fd, reply, sizeof(reply), MSG_NOSIGNAL), sizeof(reply));
        c->sent += sizeof(reply);
        conn_end(c, false);
        break;
    }
    case FSP_ECHO:
    case FSP_SINK:
    case FSP_SILENT:
    default:
        break;
    }
}

static void
conn_read(FspConn *c)
{
    guint8 buf[FSP_READ_CHUNK];

    for (int rounds = 0; rounds < 16 && c->fd >= 0; rounds++) {
        ssize_t n = recv(c->fd, buf, sizeof(buf), 0);

        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            c->fsp->peer_closed++;
            conn_end(c, false);
            return;
        }
        g_byte_array_append(c->received, buf, (guint)n);
        c->received_total += (guint64)n;
        if (c->mode == FSP_ECHO) {
            g_byte_array_append(c->out, buf, (guint)n);
            conn_write(c);
            if (c->out->len - c->out_off >= FSP_ECHO_BACKLOG)
                return;
        }
        if (!c->got_first) {
            on_first_bytes(c);
            if (c->fd < 0)
                return;
        }
        if (!c->fsp->reading)
            return;
    }
}

static gboolean
on_conn_io(gint fd, GIOCondition cond, gpointer data)
{
    FspConn *c = data;

    (void)fd;
    c->source_id = 0;
    c->watching = 0;
    if (cond & G_IO_OUT)
        conn_write(c);
    if (c->fd >= 0 && (cond & (G_IO_IN | G_IO_HUP | G_IO_ERR)))
        conn_read(c);
    conn_rewatch(c);
    return G_SOURCE_REMOVE;
}

static gboolean
on_listen(gint fd, GIOCondition cond, gpointer data)
{
    FakeSpice *fsp = data;
    int cfd;

    (void)cond;
    while ((cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
        FspConn *c = g_new0(FspConn, 1);

        if (fsp->sndbuf > 0)
            setsockopt(cfd, SOL_SOCKET, SO_SNDBUF, &fsp->sndbuf, sizeof(fsp->sndbuf));
        if (fsp->rcvbuf > 0)
            setsockopt(cfd, SOL_SOCKET, SO_RCVBUF, &fsp->rcvbuf, sizeof(fsp->rcvbuf));
        c->fsp = fsp;
        c->fd = cfd;
        c->mode = fsp->mode;
        c->flood_left = fsp->flood_bytes;
        c->flood_then_close = fsp->flood_then_close;
        c->received = g_byte_array_new();
        c->out = g_byte_array_new();
        fsp->conns = g_list_prepend(fsp->conns, c);
        fsp->newest = c;
        g_ptr_array_add(fsp->all, c);
        fsp->accepted++;
        conn_rewatch(c);
    }
    return G_SOURCE_CONTINUE;
}

FakeSpice *
fsp_new(void)
{
    FakeSpice *fsp = g_new0(FakeSpice, 1);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(sa);

    fsp->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(fsp->listen_fd, 0);
    ck_assert_int_eq(bind(fsp->listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(fsp->listen_fd, 64), 0);
    ck_assert_int_eq(getsockname(fsp->listen_fd, (struct sockaddr *)&sa, &len), 0);
    fsp->port = ntohs(sa.sin_port);
    fsp->reading = true;
    fsp->all = g_ptr_array_new_with_free_func(conn_free);
    fsp->listen_id = g_unix_fd_add(fsp->listen_fd, G_IO_IN, on_listen, fsp);
    return fsp;
}

void
fsp_free(FakeSpice *fsp)
{
    if (fsp == NULL)
        return;
    g_clear_handle_id(&fsp->listen_id, g_source_remove);
    close(fsp->listen_fd);
    g_ptr_array_unref(fsp->all);
    g_list_free(fsp->conns);
    g_free(fsp);
}

guint16
fsp_port(const FakeSpice *fsp)
{
    return fsp->port;
}

void
fsp_set_mode(FakeSpice *fsp, FspMode mode)
{
    fsp->mode = mode;
}

void
fsp_set_flood(FakeSpice *fsp, guint64 bytes, bool then_close)
{
    fsp->flood_bytes = bytes;
    fsp->flood_then_close = then_close;
}

void
fsp_set_buffers(FakeSpice *fsp, int sndbuf, int rcvbuf)
{
    fsp->sndbuf = sndbuf;
    fsp->rcvbuf = rcvbuf;
}

void
fsp_set_reading(FakeSpice *fsp, bool reading)
{
    fsp->reading = reading;
    for (GList *l = fsp->conns; l != NULL; l = l->next)
        conn_rewatch(l->data);
}

void
fsp_close_all(FakeSpice *fsp, bool reset)
{
    while (fsp->conns != NULL)
        conn_end(fsp->conns->data, reset);
}

void
fsp_send(FakeSpice *fsp, const void *data, gsize len)
{
    FspConn *c = fsp->newest;

    ck_assert_ptr_nonnull(c);
    ck_assert_int_ge(c->fd, 0);
    g_byte_array_append(c->out, data, (guint)len);
    conn_write(c);
    conn_rewatch(c);
}

guint
fsp_n_accepted(const FakeSpice *fsp)
{
    return fsp->accepted;
}

guint
fsp_n_open(const FakeSpice *fsp)
{
    return g_list_length(fsp->conns);
}

guint
fsp_n_peer_closed(const FakeSpice *fsp)
{
    return fsp->peer_closed;
}

static const FspConn *
newest(const FakeSpice *fsp)
{
    ck_assert_msg(fsp->newest != NULL, "the fake SPICE peer has no connection");
    return fsp->newest;
}

const GByteArray *
fsp_received(const FakeSpice *fsp)
{
    return newest(fsp)->received;
}

guint64
fsp_received_total(const FakeSpice *fsp)
{
    return fsp->newest != NULL ? fsp->newest->received_total : 0;
}

guint64
fsp_sent(const FakeSpice *fsp)
{
    return newest(fsp)->sent;
}

bool
fsp_blocked(const FakeSpice *fsp)
{
    return fsp->newest != NULL && fsp->newest->blocked;
}

bool
fsp_flood_done(const FakeSpice *fsp)
{
    const FspConn *c = fsp->newest;

    return c != NULL && c->flood_left == 0 && c->out->len == c->out_off;
}

bool
fsp_pattern_check(const guint8 *data, gsize len, guint64 from, guint64 *bad)
{
    for (gsize i = 0; i < len; i++) {
        if (data[i] != fsp_pattern(from + i)) {
            *bad = from + i;
            return false;
        }
    }
    return true;
}
