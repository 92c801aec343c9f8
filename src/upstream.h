/* SPDX-License-Identifier: Apache-2.0 */
/* upstream.h - the TCP leg to the compute host's SPICE server.
 *
 * Resolves and connects asynchronously (GResolver runs getaddrinfo off the
 * main loop; each resolved address is tried in turn) under one overall
 * deadline, sets TCP_NODELAY, runs a TLS handshake when asked to (under
 * the same deadline), then hands the session a non-blocking fd and
 * a single readiness watch whose conditions the relay adjusts for flow
 * control. The session owns the upstream; sg_upstream_free() cancels a
 * connect in progress and closes the socket.
 */
#pragma once

#include <stdint.h>

#include <gio/gio.h>
#include <openssl/ssl.h>

#include "endpoint.h"
#include "endpoint_tls.h"

#include "sg_types.h"

#define SG_UPSTREAM_ERROR (sg_upstream_error_quark())
GQuark sg_upstream_error_quark(void);

typedef enum {
    SG_UPSTREAM_ERROR_UNREACHABLE = 0,  /* resolve or connect failed */
    SG_UPSTREAM_ERROR_TIMEOUT,          /* the deadline passed */
    SG_UPSTREAM_ERROR_REFUSED,          /* CONNECT to internal_access_path refused */
    SG_UPSTREAM_ERROR_TLS,              /* TLS handshake or verification failed */
} SgUpstreamError;

/* Runs once from the main loop: @error is NULL on success. */
typedef void (*SgUpstreamConnectedFunc)(SgUpstream *up, const GError *error,
                                        gpointer user_data);
/* Runs from the main loop whenever the fd is ready for what was asked. */
typedef void (*SgUpstreamIoFunc)(SgUpstream *up, GIOCondition ready, gpointer user_data);

/* Starts connecting to @host:@port. With @access_path (Nova's
 * internal_access_path; NULL for none) it then sends "CONNECT path
 * HTTP/1.1" and requires a 200 before reporting success, consuming exactly
 * the reply's header bytes. The whole sequence has one deadline. The
 * callbacks never run inside this call, nor after sg_upstream_free(). */
SgUpstream *sg_upstream_connect(const char *host, uint16_t port, const char *access_path,
                                guint timeout_s, SgUpstreamConnectedFunc on_connected,
                                SgUpstreamIoFunc on_io, gpointer user_data);

/* Right after sg_upstream_connect(): once connected (and past the
 * CONNECT), run a TLS handshake with @tls toward @host (the target's name
 * or address, which the certificate must name unless [spice]
 * host_subject is set) under the same deadline, and report success only
 * once the server's certificate is verified. */
void sg_upstream_set_tls(SgUpstream *up, SgTlsClient *tls, const char *host);

/* The TLS connection once the handshake is done, else NULL. Owned by @up. */
SSL *sg_upstream_get_ssl(const SgUpstream *up);

/* Hands the connected @up (owned from here on) to the endpoint that reads
 * and writes it: TLS when set_tls() was called, else plain TCP. */
SgEndpoint *sg_upstream_into_endpoint(SgUpstream *up);

/* Replaces the I/O callback (e.g. one given once the relay is ready). */
void sg_upstream_set_io_func(SgUpstream *up, SgUpstreamIoFunc on_io, gpointer user_data);

/* The connected socket (non-blocking), or -1 before the connection is up. */
int sg_upstream_get_fd(const SgUpstream *up);

/* Which readiness to report: G_IO_IN, G_IO_OUT, both or 0. Errors and
 * hang-ups are always reported. Only valid once connected. */
void sg_upstream_set_interest(SgUpstream *up, GIOCondition interest);
GIOCondition sg_upstream_get_interest(const SgUpstream *up);

/* "host:port" of the address actually connected, for logs. */
const char *sg_upstream_get_peer(const SgUpstream *up);

void sg_upstream_free(SgUpstream *up);

/* 4096: Nova reads the CONNECT reply headers the same way; a proxy that
 * sends more header than that is not one we talk to. */
#define SG_CONNECT_REPLY_MAX_BYTES 4096

/* Reads a proxy's reply to CONNECT from the first @len bytes received
 * (pure; fuzzed by fuzz_connect_reply). OK: a "HTTP/1.0 200" or
 * "HTTP/1.1 200" status line and the whole header within
 * SG_CONNECT_REPLY_MAX_BYTES; *@header_len is its length with the blank
 * line, and what follows is the SPICE server's. AGAIN: a valid start,
 * more needed. INVALID: *@why is a static phrase (the caller
 * logs it with the reply's first line). */
SgParseResult sg_upstream_parse_connect_reply(const char *buf, gsize len, gsize *header_len,
                                              const char **why);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SgUpstream, sg_upstream_free)
