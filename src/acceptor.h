/* SPDX-License-Identifier: Apache-2.0 */
/* acceptor.h - takes connections off the listening socket, and stops for a
 * moment when the process runs out of descriptors.
 *
 * accept() failing with EMFILE leaves the connection in the kernel's
 * backlog, so the listening socket stays readable: a loop that simply
 * retries spins at full CPU and serves nobody (lws 4.1.6 does this, and
 * logs every attempt). Like nginx, the acceptor then stops watching the
 * socket for a short while; open connections are served meanwhile, and as
 * soon as one closes (sg_acceptor_resume) accepting starts again. */
#pragma once

#include <stdbool.h>
#include <sys/socket.h>

#include <glib.h>

#include "client_addr.h"

typedef struct SgAcceptor SgAcceptor;

/* Given each accepted connection: non-blocking, close-on-exec, Nagle off,
 * TCP keepalive on. The callee owns @fd. @proxied_source: the client a
 * PROXY protocol header named (valid during the call), or NULL when there
 * was none or it named none (v2 LOCAL): the socket's own peer stands. */
typedef void (*SgAcceptFn)(int fd, const struct sockaddr_storage *proxied_source,
                           gpointer data);

/* How long accepting stops after EMFILE, ENFILE, ENOBUFS or ENOMEM, unless
 * a descriptor is freed sooner. */
#define SG_ACCEPT_BACKOFF_MS 250
/* At most one line per this long says accepting still fails, with a count. */
#define SG_ACCEPT_LOG_INTERVAL_S 10

/* A run of accept() failures on one listening socket: told once when it
 * starts, then at most once per SG_ACCEPT_LOG_INTERVAL_S with a count,
 * and once when it ends. Every listening socket does this when
 * descriptors run out: the public port's and the admin API's, both
 * through an SgAcceptor. Zero it, then set @prefix
 * ("" or "admin: ") and @retry (when it tries again, for the first line). */
typedef struct {
    const char *prefix;
    const char *retry;
    gint64 since_us;              /* 0: accept works */
    gint64 last_log_us;
    guint64 failures;
    guint64 unlogged;
} SgAcceptFailures;

/* accept() failed with @err (not EAGAIN, EINTR or ECONNABORTED). Returns
 * true when descriptors or memory ran out: stop watching the socket for
 * SG_ACCEPT_BACKOFF_MS, since the connection stays in the backlog and the
 * socket stays readable. */
bool sg_accept_failed(SgAcceptFailures *f, int err);
/* accept() worked: ends a run of failures, with a line if there was one. */
void sg_accept_worked(SgAcceptFailures *f);

/* Watches @listen_fd (not owned) on the default main context and accepts
 * up to @per_wakeup connections each time it is readable: 1 for a worker
 * of several, so that a burst spreads over the workers. */
SgAcceptor *sg_acceptor_new(int listen_fd, guint per_wakeup, SgAcceptFn on_accept,
                            gpointer data);

/* Starts its log lines about accept() failures with @prefix (static;
 * "admin: " for the admin API's socket) instead of nothing. */
void sg_acceptor_set_log_prefix(SgAcceptor *acceptor, const char *prefix);

/* [server] proxy_protocol: from now on every connection must come from a
 * peer in @trusted (not owned; it outlives the acceptor) and start with a
 * PROXY protocol header (v1 or v2, proxy_protocol.h), whole within
 * @timeout_s seconds. The acceptor reads it off the socket on the event
 * core, without blocking and without taking a byte past it, before
 * @on_accept sees the connection: TLS and HTTP after it are untouched.
 * Anything else is closed, with at most one log line per
 * SG_ACCEPT_LOG_INTERVAL_S (and a count of the others). */
void sg_acceptor_expect_proxy(SgAcceptor *acceptor, const SgTrustedProxies *trusted,
                              guint timeout_s);

/* Connections still waiting for their PROXY header (tests). */
guint sg_acceptor_pending_count(const SgAcceptor *acceptor);

/* A descriptor was freed: while stopped for lack of them, accept again now
 * rather than at the end of the back-off. Cheap; call on every close. */
void sg_acceptor_resume(SgAcceptor *acceptor);

/* Stops accepting for good (shutdown); the socket stays open. Connections
 * still reading their PROXY header finish (or time out) as usual. */
void sg_acceptor_stop(SgAcceptor *acceptor);

/* Closes the connections still waiting for a PROXY header. */
void sg_acceptor_free(SgAcceptor *acceptor);
