/* SPDX-License-Identifier: Apache-2.0 */
/* acceptor.c - accept() with a back-off when descriptors run out, and the
 * PROXY protocol header read before a connection is handed on (see
 * acceptor.h). */
#define _GNU_SOURCE 1             /* accept4() */
#include "autoconfig.h"

#include <errno.h>
#include <stdbool.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <glib.h>

#include "acceptor.h"
#include "event_core.h"
#include "proxy_protocol.h"
#include "request.h"

struct SgAcceptor {
    int listen_fd;
    guint per_wakeup;
    SgAcceptFn on_accept;
    gpointer data;
    SgWatch *watch;               /* in the event core; watching or paused */
    guint backoff_timer;          /* accepting stopped until it fires, or 0 */
    bool stopped;                 /* for good */
    SgAcceptFailures failures;
    /* [server] proxy_protocol: NULL when off. */
    const SgTrustedProxies *proxy_trusted;
    guint proxy_timeout_s;
    GHashTable *pending;          /* of ProxyWait, owned: reading their header */
    gint64 refused_last_log_us;
    guint64 refused_unlogged;
};

/* A connection whose PROXY header is being read. */
typedef struct {
    SgAcceptor *acceptor;
    int fd;
    SgWatch *watch;
    SgTimer *deadline;
    struct sockaddr_storage peer;
    size_t have;                  /* header bytes taken off the socket so far */
    uint8_t buf[SG_PROXY_MAX_BYTES];
} ProxyWait;

static void on_listen_ready(SgWatch *watch, int fd, GIOCondition condition, gpointer data);

static void
watch_socket(SgAcceptor *a)
{
    if (a->stopped)
        return;
    if (a->watch == NULL)
        a->watch = sg_watch_fd(a->listen_fd, G_IO_IN, on_listen_ready, a);
    else
        sg_watch_modify(a->watch, G_IO_IN);
}

static gboolean
on_backoff_over(gpointer data)
{
    SgAcceptor *a = data;

    a->backoff_timer = 0;
    watch_socket(a);
    return G_SOURCE_REMOVE;
}

static bool
out_of_resources(int err)
{
    return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

bool
sg_accept_failed(SgAcceptFailures *f, int err)
{
    gint64 now = g_get_monotonic_time();

    f->failures++;
    f->unlogged++;
    if (f->since_us == 0) {
        struct rlimit rl = { 0 };

        f->since_us = now;
        f->last_log_us = now;
        f->unlogged = 0;
        getrlimit(RLIMIT_NOFILE, &rl);
        if (out_of_resources(err))
            g_warning("%scannot accept connections: %s (descriptor limit %llu); trying again "
                      "%s; open connections are still served", f->prefix, g_strerror(err),
                      (unsigned long long)rl.rlim_cur, f->retry);
        else
            g_warning("%scannot accept a connection: %s", f->prefix, g_strerror(err));
    } else if (now - f->last_log_us >= SG_ACCEPT_LOG_INTERVAL_S * G_USEC_PER_SEC) {
        g_warning("%sstill cannot accept connections: %s; %" G_GUINT64_FORMAT
                  " failed attempts in the last %" G_GINT64_FORMAT " s",
                  f->prefix, g_strerror(err), f->unlogged, (now - f->last_log_us) / G_USEC_PER_SEC);
        f->last_log_us = now;
        f->unlogged = 0;
    }
    return out_of_resources(err);
}

void
sg_accept_worked(SgAcceptFailures *f)
{
    if (f->since_us == 0)
        return;
    g_message("%saccepting connections again after %.1f s (%" G_GUINT64_FORMAT
              " failed attempts)", f->prefix,
              (double)(g_get_monotonic_time() - f->since_us) / G_USEC_PER_SEC, f->failures);
    f->since_us = 0;
    f->failures = 0;
}

/* --- the PROXY protocol header ------------------------------------------------ */

/* A connection refused for its PROXY header, or for coming from a peer
 * not trusted with one: a flood of them (a scanner, a misconfigured
 * balancer) must not flood the log, so at most one line per interval says
 * so, with how many others there were. */
static void
log_refused(SgAcceptor *a, const struct sockaddr_storage *peer, const char *why)
{
    gint64 now = g_get_monotonic_time();
    g_autofree char *from = NULL;

    if (a->refused_last_log_us != 0 &&
        now - a->refused_last_log_us < SG_ACCEPT_LOG_INTERVAL_S * G_USEC_PER_SEC) {
        a->refused_unlogged++;
        return;
    }
    from = sg_request_format_addr(peer);
    if (a->refused_unlogged > 0)
        g_message("closed a connection from %s: %s ([server] proxy_protocol); %" G_GUINT64_FORMAT
                  " more closed for their PROXY header since the last such line",
                  from, why, a->refused_unlogged);
    else
        g_message("closed a connection from %s: %s ([server] proxy_protocol)", from, why);
    a->refused_last_log_us = now;
    a->refused_unlogged = 0;
}

static void
proxy_wait_free(gpointer data)
{
    ProxyWait *w = data;

    sg_watch_remove(w->watch);
    sg_timer_remove(w->deadline);
    if (w->fd >= 0)
        close(w->fd);
    g_free(w);
}

/* Closes @w's connection; @why is logged (rate-limited) unless NULL. */
static void
proxy_wait_fail(ProxyWait *w, const char *why)
{
    if (why != NULL)
        log_refused(w->acceptor, &w->peer, why);
    g_hash_table_remove(w->acceptor->pending, w);
}

static gboolean
on_proxy_deadline(gpointer data)
{
    ProxyWait *w = data;

    w->deadline = NULL;
    proxy_wait_fail(w, w->have == 0 ? "no PROXY header within handshake_timeout"
                                    : "PROXY header not whole within handshake_timeout");
    return G_SOURCE_REMOVE;
}

/* Reads what the socket holds without taking it (MSG_PEEK), and takes
 * only header bytes: on MORE all of them are (proxy_protocol.h), on DONE
 * exactly the header's length. So the first byte lws reads is the first
 * byte after the header, TLS or HTTP alike, and the socket is never left
 * readable with bytes that we peeked and left (a busy loop). */
static void
on_proxy_readable(SgWatch *watch, int fd, GIOCondition condition, gpointer data)
{
    ProxyWait *w = data;
    SgAcceptor *a = w->acceptor;
    SgProxyHeader hdr;
    const char *why = NULL;
    SgProxyStatus status;
    ssize_t n;
    size_t take;

    (void)watch;
    (void)condition;
    n = recv(fd, w->buf + w->have, sizeof(w->buf) - w->have, MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n <= 0) {
        /* A TCP health check that connects and leaves says nothing. */
        if (n == 0 && w->have == 0)
            proxy_wait_fail(w, NULL);
        else
            proxy_wait_fail(w, n == 0 ? "closed in the middle of its PROXY header"
                                      : g_strerror(errno));
        return;
    }
    status = sg_proxy_protocol_parse(w->buf, w->have + (size_t)n, &hdr, &why);
    if (status == SG_PROXY_BAD) {
        proxy_wait_fail(w, why);
        return;
    }
    take = status == SG_PROXY_DONE ? hdr.length - w->have : (size_t)n;
    /* What was peeked is there: this takes all of it. */
    if (recv(fd, w->buf + w->have, take, 0) != (ssize_t)take) {
        proxy_wait_fail(w, "cannot read its PROXY header");
        return;
    }
    w->have += take;
    if (status == SG_PROXY_MORE)
        return;
    {
        int conn = w->fd;
        SgAcceptFn on_accept = a->on_accept;
        gpointer on_accept_data = a->data;
        struct sockaddr_storage source = hdr.source;

        w->fd = -1;               /* handed on */
        g_hash_table_remove(a->pending, w);
        on_accept(conn, hdr.has_source ? &source : NULL, on_accept_data);
    }
}

/* A new connection under proxy_protocol: from a trusted peer, its header
 * is awaited; from anyone else it is closed at once, since its header
 * could name any client. */
static void
proxy_wait_start(SgAcceptor *a, int conn, const struct sockaddr_storage *peer)
{
    ProxyWait *w;

    if (!sg_trusted_proxies_match(a->proxy_trusted, peer)) {
        log_refused(a, peer, "not in [server] trusted_proxies");
        close(conn);
        return;
    }
    w = g_new0(ProxyWait, 1);
    w->acceptor = a;
    w->fd = conn;
    w->peer = *peer;
    g_hash_table_add(a->pending, w);
    w->deadline = sg_timer_add(a->proxy_timeout_s * 1000, on_proxy_deadline, w);
    w->watch = sg_watch_fd(conn, G_IO_IN, on_proxy_readable, w);
}

/* --- accept() ------------------------------------------------------------------ */

static void
on_listen_ready(SgWatch *watch, int fd, GIOCondition condition, gpointer data)
{
    SgAcceptor *a = data;

    (void)watch;
    (void)condition;
    for (guint i = 0; i < a->per_wakeup; i++) {
        struct sockaddr_storage peer;
        socklen_t peer_len = sizeof(peer);
        int conn = accept4(fd, (struct sockaddr *)&peer, &peer_len,
                           SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (conn < 0) {
            int err = errno;

            /* Gone before we took it, or a signal: nothing is wrong. */
            if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR || err == ECONNABORTED)
                break;
            if (sg_accept_failed(&a->failures, err)) {
                /* Not watched until the back-off ends. */
                sg_watch_modify(a->watch, 0);
                a->backoff_timer = g_timeout_add(SG_ACCEPT_BACKOFF_MS, on_backoff_over, a);
                return;
            }
            break;
        }
        sg_accept_worked(&a->failures);
        /* No Nagle and TCP keepalive come with the socket: set once on the
         * listening socket, which every accepted one inherits
         * (listen_socket.c). */
        if (a->proxy_trusted != NULL)
            proxy_wait_start(a, conn, &peer);
        else
            a->on_accept(conn, NULL, a->data);
    }
}

SgAcceptor *
sg_acceptor_new(int listen_fd, guint per_wakeup, SgAcceptFn on_accept, gpointer data)
{
    SgAcceptor *a = g_new0(SgAcceptor, 1);

    a->listen_fd = listen_fd;
    a->per_wakeup = MAX(per_wakeup, 1);
    a->on_accept = on_accept;
    a->data = data;
    a->failures.prefix = "";
    a->failures.retry = "every " G_STRINGIFY(SG_ACCEPT_BACKOFF_MS) " ms or when a connection closes";
    a->pending = g_hash_table_new_full(NULL, NULL, proxy_wait_free, NULL);
    watch_socket(a);
    return a;
}

void
sg_acceptor_set_log_prefix(SgAcceptor *acceptor, const char *prefix)
{
    acceptor->failures.prefix = prefix;
}

void
sg_acceptor_expect_proxy(SgAcceptor *acceptor, const SgTrustedProxies *trusted,
                         guint timeout_s)
{
    acceptor->proxy_trusted = trusted;
    acceptor->proxy_timeout_s = MAX(timeout_s, 1);
}

guint
sg_acceptor_pending_count(const SgAcceptor *acceptor)
{
    return g_hash_table_size(acceptor->pending);
}

void
sg_acceptor_resume(SgAcceptor *acceptor)
{
    if (acceptor == NULL || acceptor->backoff_timer == 0)
        return;
    g_clear_handle_id(&acceptor->backoff_timer, g_source_remove);
    watch_socket(acceptor);
}

void
sg_acceptor_stop(SgAcceptor *acceptor)
{
    acceptor->stopped = true;
    g_clear_pointer(&acceptor->watch, sg_watch_remove);
    g_clear_handle_id(&acceptor->backoff_timer, g_source_remove);
}

void
sg_acceptor_free(SgAcceptor *acceptor)
{
    if (acceptor == NULL)
        return;
    sg_acceptor_stop(acceptor);
    g_hash_table_destroy(acceptor->pending);
    g_free(acceptor);
}
