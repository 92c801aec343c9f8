/* SPDX-License-Identifier: Apache-2.0 */
/* upstream.c - asynchronous connect to a SPICE server and its fd watch.
 *
 * Owns the connect, its deadline timer, the connected socket and one watch
 * on it in the process' one epoll set (event_core.c). A target given as an
 * IP address (what Nova's server_proxyclient_address and token files
 * hold) is connected directly: a non-blocking connect() whose completion
 * the same watch reports, so setting up a console costs no more than its
 * system calls. A host name goes through GSocketClient (GIO's resolver,
 * every address in turn), cancellable. It does
 * no reading or writing itself: the session's relay does, straight into its
 * buffers, so bytes are copied once.
 */
#define _GNU_SOURCE 1             /* memmem() */
#include "autoconfig.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gio/gio.h>

#include "endpoint_tcp.h"
#include "endpoint_tls.h"
#include "event_core.h"
#include "upstream.h"

G_DEFINE_QUARK(sg-upstream-error-quark, sg_upstream_error)

typedef struct ConnectCtx ConnectCtx;

struct SgUpstream {
    ConnectCtx *connect_ctx;      /* set while a connect is in flight */
    GCancellable *cancellable;
    SgTimer *deadline;
    bool timed_out;
    GSocketConnection *conn;     /* GSocketClient's connection: it owns fd */
    int fd;                       /* ours to close when conn is NULL */
    bool connecting;              /* the direct connect() is in progress */
    int connect_errno;            /* it failed at once: reported from the loop */
    SgTimer *report_failure;
    SgWatch *watch;
    GIOCondition interest;
    char *peer;
    char *access_path;            /* CONNECT handshake still to do, or NULL */
    bool handshaking;             /* waiting for the CONNECT reply */
    SgTlsClient *tls;             /* TLS once connected, or NULL */
    char *tls_host;               /* what the certificate must name */
    SSL *ssl;                     /* from the TLS handshake on */
    bool tls_handshaking;
    SgUpstreamConnectedFunc on_connected;
    SgUpstreamIoFunc on_io;
    gpointer user_data;
};

static char *
format_hostport(const char *host, guint16 port)
{
    /* IPv6 literals get brackets so the port stays readable. */
    return strchr(host, ':') ? g_strdup_printf("[%s]:%u", host, port)
                             : g_strdup_printf("%s:%u", host, port);
}

static void
set_peer_from_socket(SgUpstream *up, GSocket *sock)
{
    g_autoptr(GSocketAddress) addr = g_socket_get_remote_address(sock, NULL);
    GInetSocketAddress *in;
    g_autofree char *ip = NULL;

    if (addr == NULL || !G_IS_INET_SOCKET_ADDRESS(addr))
        return;
    in = G_INET_SOCKET_ADDRESS(addr);
    ip = g_inet_address_to_string(g_inet_socket_address_get_address(in));
    g_free(up->peer);
    up->peer = format_hostport(ip, g_inet_socket_address_get_port(in));
}

static void read_connect_reply(SgUpstream *up);
static void tls_step(SgUpstream *up);
static void established(SgUpstream *up);
static void direct_connect_done(SgUpstream *up);
static void connected(SgUpstream *up);

static void
on_watch(SgWatch *watch, int fd, GIOCondition ready, gpointer data)
{
    SgUpstream *up = data;

    (void)watch;
    (void)fd;
    if (up->connecting) {
        direct_connect_done(up);
        return;
    }
    if (up->handshaking) {
        read_connect_reply(up);
        return;
    }
    if (up->tls_handshaking) {
        tls_step(up);
        return;
    }
    if (up->on_io == NULL)
        return;
    /* May free @up, and with it this watch: event_core.c allows that. */
    up->on_io(up, ready, up->user_data);
}

static void
fail(SgUpstream *up, SgUpstreamError code, const char *message)
{
    g_autoptr(GError) error = g_error_new_literal(SG_UPSTREAM_ERROR, code, message);

    up->handshaking = false;
    up->tls_handshaking = false;
    g_clear_pointer(&up->deadline, sg_timer_remove);
    up->on_connected(up, error, up->user_data);
}

static gboolean
on_deadline(gpointer data)
{
    SgUpstream *up = data;

    up->deadline = NULL;
    up->timed_out = true;
    if (up->handshaking) {
        fail(up, SG_UPSTREAM_ERROR_TIMEOUT, "no CONNECT reply within the connect timeout");
        return G_SOURCE_REMOVE;
    }
    if (up->tls_handshaking) {
        fail(up, SG_UPSTREAM_ERROR_TIMEOUT, "no TLS handshake within the connect timeout");
        return G_SOURCE_REMOVE;
    }
    if (up->connecting) {
        up->connecting = false;
        g_clear_pointer(&up->watch, sg_watch_remove);
        g_clear_pointer(&up->report_failure, sg_timer_remove);
        if (up->fd >= 0) {
            close(up->fd);
            up->fd = -1;
        }
        fail(up, SG_UPSTREAM_ERROR_TIMEOUT, "no connection within the connect timeout");
        return G_SOURCE_REMOVE;
    }
    g_cancellable_cancel(up->cancellable);
    return G_SOURCE_REMOVE;
}

SgParseResult
sg_upstream_parse_connect_reply(const char *buf, gsize len, gsize *header_len,
                                const char **why)
{
    const char *end;
    const char *eol;
    gsize line;

    *header_len = 0;
    *why = NULL;
    len = MIN(len, (gsize)SG_CONNECT_REPLY_MAX_BYTES);
    /* Judge the start at once: an SSH banner or a SPICE server needs no
     * wait for a blank line that may never come. */
    if (memcmp(buf, "HTTP/1.", MIN(len, (gsize)7)) != 0) {
        *why = "CONNECT refused";
        return SG_PARSE_INVALID;
    }
    end = memmem(buf, len, "\r\n\r\n", 4);
    if (end == NULL) {
        if (len >= SG_CONNECT_REPLY_MAX_BYTES) {
            *why = "CONNECT reply header too long";
            return SG_PARSE_INVALID;
        }
        return SG_PARSE_AGAIN;
    }
    if (memchr(buf, '\0', (gsize)(end - buf)) != NULL) {
        *why = "NUL byte in the CONNECT reply";
        return SG_PARSE_INVALID;
    }
    /* The status line alone: "HTTP/1.0 200" or "HTTP/1.1 200", then a
     * space and a reason, or nothing. */
    eol = memmem(buf, (gsize)(end + 2 - buf), "\r\n", 2);
    line = (gsize)(eol - buf);
    if (line < 12 || (buf[7] != '0' && buf[7] != '1') || memcmp(buf + 8, " 200", 4) != 0 ||
        (line > 12 && buf[12] != ' ')) {
        *why = "CONNECT refused";
        return SG_PARSE_INVALID;
    }
    *header_len = (gsize)(end + 4 - buf);
    return SG_PARSE_OK;
}

/* The TLS handshake advances with each readiness the watch reports; the
 * connect deadline keeps running. */
static void
tls_step(SgUpstream *up)
{
    g_autofree char *why = NULL;
    GIOCondition interest = 0;

    switch (sg_tls_handshake_step(up->tls, up->ssl, &interest, &why)) {
    case SG_PARSE_OK:
        up->tls_handshaking = false;
        g_clear_pointer(&up->deadline, sg_timer_remove);
        sg_upstream_set_interest(up, 0);
        up->on_connected(up, NULL, up->user_data);
        return;
    case SG_PARSE_AGAIN:
        sg_upstream_set_interest(up, interest);
        return;
    case SG_PARSE_INVALID:
    default:
        fail(up, SG_UPSTREAM_ERROR_TLS, why);
        return;
    }
}

/* The byte stream to the SPICE server is there (past a CONNECT): TLS on
 * it when asked for, else the session is told. */
static void
established(SgUpstream *up)
{
    if (up->tls == NULL) {
        g_clear_pointer(&up->deadline, sg_timer_remove);
        up->on_connected(up, NULL, up->user_data);
        return;
    }
    up->ssl = sg_tls_handshake_new(up->tls, up->fd, up->tls_host);
    if (up->ssl == NULL) {
        fail(up, SG_UPSTREAM_ERROR_TLS, "cannot start a TLS connection");
        return;
    }
    up->tls_handshaking = true;
    tls_step(up);                 /* sends the ClientHello */
}

/* Reads the reply to our CONNECT without consuming a byte past its
 * header: what follows belongs to the SPICE stream (Nova's fix for bug
 * 1695844 does the same with MSG_PEEK). */
static void
read_connect_reply(SgUpstream *up)
{
    char buf[SG_CONNECT_REPLY_MAX_BYTES];
    ssize_t n = recv(up->fd, buf, SG_CONNECT_REPLY_MAX_BYTES, MSG_PEEK);
    gsize header_len = 0;
    const char *why = NULL;

    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        fail(up, SG_UPSTREAM_ERROR_REFUSED, "connection closed during CONNECT");
        return;
    }
    switch (sg_upstream_parse_connect_reply(buf, (gsize)n, &header_len, &why)) {
    case SG_PARSE_AGAIN:
        return;                   /* wait for the rest */
    case SG_PARSE_INVALID: {
        /* What the proxy said, after why it is refused: its first line is
         * the proxy's, never a secret; up to 80 bytes, printable ones. */
        char line[81];
        gsize i;
        g_autofree char *message = NULL;

        for (i = 0; i < (gsize)n && i < 80 && buf[i] != '\r' && buf[i] != '\n'; i++)
            line[i] = g_ascii_isprint(buf[i]) ? buf[i] : '?';
        line[i] = '\0';
        message = g_strdup_printf("%s: %s", why, line);
        fail(up, SG_UPSTREAM_ERROR_REFUSED, message);
        return;
    }
    default:
        break;
    }
    /* Consume exactly the header; it is already in the kernel buffer. */
    if (recv(up->fd, buf, header_len, 0) != (ssize_t)header_len) {
        fail(up, SG_UPSTREAM_ERROR_REFUSED, "CONNECT reply could not be consumed");
        return;
    }
    up->handshaking = false;
    sg_upstream_set_interest(up, 0);
    established(up);
}

static void
start_connect_handshake(SgUpstream *up)
{
    g_autofree char *request = g_strdup_printf("CONNECT %s HTTP/1.1\r\n\r\n", up->access_path);
    gsize len = strlen(request);

    /* A fresh socket's send buffer takes a short request whole. */
    if (send(up->fd, request, len, MSG_NOSIGNAL) != (ssize_t)len) {
        fail(up, SG_UPSTREAM_ERROR_REFUSED, "cannot send CONNECT");
        return;
    }
    up->handshaking = true;
    sg_upstream_set_interest(up, G_IO_IN);
}

/* The connect's own reference to its session-side object. free() clears
 * @up when it cancels, so a late completion finds nobody home and only
 * cleans up after itself. */
struct ConnectCtx {
    SgUpstream *up;
};

static void
on_connect_done(GObject *source, GAsyncResult *result, gpointer data)
{
    ConnectCtx *ctx = data;
    SgUpstream *up = ctx->up;
    g_autoptr(GError) error = NULL;
    g_autoptr(GError) reported = NULL;
    GSocketConnection *conn;
    GSocket *sock;

    conn = g_socket_client_connect_to_host_finish(G_SOCKET_CLIENT(source), result, &error);
    g_free(ctx);
    if (up == NULL) {
        g_clear_object(&conn);
        return;
    }
    up->connect_ctx = NULL;
    if (conn == NULL) {
        g_clear_pointer(&up->deadline, sg_timer_remove);
        if (up->timed_out)
            reported = g_error_new(SG_UPSTREAM_ERROR, SG_UPSTREAM_ERROR_TIMEOUT,
                                   "no connection within the connect timeout");
        else
            reported = g_error_new(SG_UPSTREAM_ERROR, SG_UPSTREAM_ERROR_UNREACHABLE, "%s",
                                   error->message);
        up->on_connected(up, reported, up->user_data);
        return;
    }
    up->conn = conn;
    sock = g_socket_connection_get_socket(conn);
    up->fd = g_socket_get_fd(sock);
    set_peer_from_socket(up, sock);
    up->watch = sg_watch_fd(up->fd, 0, on_watch, up);
    connected(up);
}

/* The socket is connected (either way): Nagle off, then the CONNECT
 * handshake when the target asks for one, else the session is told. */
static void
connected(SgUpstream *up)
{
    int one = 1;

    /* SPICE is interactive: small messages (a key press) must not wait for
     * Nagle. */
    setsockopt(up->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    up->interest = 0;             /* the relay says what to watch */
    if (up->access_path != NULL) {
        start_connect_handshake(up);    /* the deadline keeps running */
        return;
    }
    established(up);
}

static void
direct_connect_failed(SgUpstream *up, int err)
{
    g_autofree char *why = g_strdup_printf("cannot connect to %s: %s", up->peer,
                                           g_strerror(err));

    up->connecting = false;
    g_clear_pointer(&up->watch, sg_watch_remove);
    if (up->fd >= 0) {
        close(up->fd);
        up->fd = -1;
    }
    fail(up, SG_UPSTREAM_ERROR_UNREACHABLE, why);
}

/* The watch saw the socket writable (or in error): the connect is over. */
static void
direct_connect_done(SgUpstream *up)
{
    int err = 0;
    socklen_t len = sizeof(err);

    if (getsockopt(up->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
        err = errno;
    if (err == EINPROGRESS || err == EALREADY)
        return;
    if (err != 0) {
        direct_connect_failed(up, err);
        return;
    }
    up->connecting = false;
    sg_watch_modify(up->watch, 0);
    connected(up);
}

static gboolean
on_report_failure(gpointer data)
{
    SgUpstream *up = data;

    up->report_failure = NULL;
    direct_connect_failed(up, up->connect_errno);
    return G_SOURCE_REMOVE;
}

/* @host is an IP address: no resolver, no GIO objects, one socket. A
 * failure at once (no route, a refused loopback) is still reported from
 * the loop, never from inside sg_upstream_connect(). */
static void
direct_connect(SgUpstream *up, const char *host, guint16 port)
{
    struct addrinfo hints = {
        .ai_socktype = SOCK_STREAM,
        .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV,
    };
    struct addrinfo *res = NULL;
    char service[8];
    int rc;

    up->connecting = true;
    g_snprintf(service, sizeof(service), "%u", port);
    rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0) {
        up->connect_errno = EINVAL;
    } else {
        up->fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (up->fd < 0)
            up->connect_errno = errno;
        else if (connect(up->fd, res->ai_addr, res->ai_addrlen) < 0 && errno != EINPROGRESS)
            up->connect_errno = errno;
        freeaddrinfo(res);
    }
    if (up->connect_errno != 0) {
        up->report_failure = sg_timer_add(0, on_report_failure, up);
        return;
    }
    up->watch = sg_watch_fd(up->fd, G_IO_OUT, on_watch, up);
}

SgUpstream *
sg_upstream_connect(const char *host, uint16_t port, const char *access_path, guint timeout_s,
                    SgUpstreamConnectedFunc on_connected, SgUpstreamIoFunc on_io,
                    gpointer user_data)
{
    g_autoptr(GSocketClient) client = NULL;
    SgUpstream *up = g_new0(SgUpstream, 1);
    ConnectCtx *ctx;

    up->fd = -1;
    up->on_connected = on_connected;
    up->on_io = on_io;
    up->user_data = user_data;
    up->peer = format_hostport(host, port);
    up->access_path = g_strdup(access_path);
    up->deadline = sg_timer_add(timeout_s * 1000, on_deadline, up);
    if (g_hostname_is_ip_address(host)) {
        direct_connect(up, host, port);
        return up;
    }

    client = g_socket_client_new();
    /* A SPICE server is reached directly, never through the HTTP proxy of
     * the environment or the desktop settings. Asking GIO's proxy resolver
     * (libproxy, where glib-networking is installed) also cost a thread
     * hand-off and a third of the CPU of every connection setup. */
    g_socket_client_set_enable_proxy(client, FALSE);
    up->cancellable = g_cancellable_new();
    ctx = g_new0(ConnectCtx, 1);
    ctx->up = up;
    up->connect_ctx = ctx;
    g_socket_client_connect_to_host_async(client, host, port, up->cancellable,
                                          on_connect_done, ctx);
    return up;
}

void
sg_upstream_set_tls(SgUpstream *up, SgTlsClient *tls, const char *host)
{
    g_return_if_fail(up->ssl == NULL && !up->tls_handshaking);
    up->tls = tls;
    g_free(up->tls_host);
    up->tls_host = g_strdup(host);
}

SSL *
sg_upstream_get_ssl(const SgUpstream *up)
{
    return up->tls_handshaking ? NULL : up->ssl;
}

SgEndpoint *
sg_upstream_into_endpoint(SgUpstream *up)
{
    return up->ssl != NULL ? sg_endpoint_tls_new(up) : sg_endpoint_tcp_new(up);
}

void
sg_upstream_set_io_func(SgUpstream *up, SgUpstreamIoFunc on_io, gpointer user_data)
{
    up->on_io = on_io;
    up->user_data = user_data;
}

int
sg_upstream_get_fd(const SgUpstream *up)
{
    /* A direct connect's socket is nobody else's business until it is
     * connected. */
    return up->connecting ? -1 : up->fd;
}

void
sg_upstream_set_interest(SgUpstream *up, GIOCondition interest)
{
    g_return_if_fail(up->watch != NULL);
    /* Even when @interest has not changed: after a socket error the watch
     * is paused (event_core.h), and asking again re-arms it. */
    up->interest = interest;
    /* epoll reports hang-ups whatever it is asked for. A relay that stops
     * reading (its buffer toward the browser is full) must not spin on a
     * hang-up it cannot act on yet, nor lose the bytes still queued in the
     * kernel: so "nothing" takes the fd out of the set entirely, and the
     * hang-up is seen once reading resumes. */
    sg_watch_modify(up->watch, interest);
}

GIOCondition
sg_upstream_get_interest(const SgUpstream *up)
{
    return up->interest;
}

const char *
sg_upstream_get_peer(const SgUpstream *up)
{
    return up->peer;
}

void
sg_upstream_free(SgUpstream *up)
{
    if (up == NULL)
        return;
    g_clear_pointer(&up->deadline, sg_timer_remove);
    g_clear_pointer(&up->report_failure, sg_timer_remove);
    if (up->connect_ctx != NULL) {
        up->connect_ctx->up = NULL;      /* on_connect_done() frees it */
        g_cancellable_cancel(up->cancellable);
    }
    g_clear_object(&up->cancellable);
    g_clear_pointer(&up->watch, sg_watch_remove);   /* before the socket closes */
    if (up->ssl != NULL)
        SSL_free(up->ssl);           /* frees no socket: SSL_set_fd() gave it none to own */
    if (up->conn != NULL)
        g_clear_object(&up->conn);   /* closes the socket */
    else if (up->fd >= 0)
        close(up->fd);               /* a direct connect's */
    g_free(up->peer);
    g_free(up->access_path);
    g_free(up->tls_host);
    g_free(up);
}
