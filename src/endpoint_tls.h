/* SPDX-License-Identifier: Apache-2.0 */
/* endpoint_tls.h - TLS toward a SPICE server's TLS port.
 *
 * Three parts. SgTlsClient is the one client context of the process,
 * built at start from [spice] ca_file, host_subject and
 * tls_minimum_version: only ca_file's CAs are trusted (never the system's,
 * never "anything"), and the server's certificate must name the target's
 * host name or address (X509_check_host / X509_check_ip_asc, through
 * OpenSSL's verification) or, with host_subject, carry exactly that
 * subject (spice-gtk's host-subject check). The handshake functions run a
 * client handshake over a connected non-blocking socket one step at a
 * time, for upstream.c, which owns the socket, its watch and the connect
 * deadline the handshake runs under. sg_endpoint_tls_new() then takes the
 * connected upstream over: a pull endpoint (endpoint.h) that maps
 * SSL_read/SSL_write's WANT_READ/WANT_WRITE onto the readiness it asks
 * the event core for. No zero-copy capabilities: the bytes must pass
 * through OpenSSL.
 */
#pragma once

#include <stdbool.h>

#include <gio/gio.h>
#include <openssl/ssl.h>

#include "config.h"
#include "endpoint.h"
#include "sg_types.h"

/* A client context trusting only @ca_file's certificates. @host_subject:
 * spice-gtk's host-subject text, or NULL to check the host name or
 * address each connection is given. Fails (naming the setting) when the
 * CA file cannot be read or holds no certificate. */
SgTlsClient *sg_tls_client_new(const char *ca_file, const char *host_subject,
                               SgTlsMinVersion min_version, GError **error);
void sg_tls_client_free(SgTlsClient *tls);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SgTlsClient, sg_tls_client_free)

/* Whether @subject is spice-gtk's host-subject syntax: "KEY=VALUE"
 * entries separated by ",", spaces before a key skipped, "\\," and "\\\\"
 * escapes, every KEY an X.509 attribute name OpenSSL knows (C, ST, L, O,
 * OU, CN, ...). @reason: why not, static text. */
bool sg_tls_subject_valid(const char *subject, const char **reason);

/* The same text as an X509_NAME, or NULL with @reason. */
X509_NAME *sg_tls_subject_parse(const char *subject, const char **reason);

/* Starts a client handshake on the connected socket @fd toward @host (the
 * target's name or address, for the certificate check and SNI). */
SSL *sg_tls_handshake_new(SgTlsClient *tls, int fd, const char *host);

/* Advances the handshake. OK: done and verified. AGAIN: call again once
 * the socket is ready for *@interest (G_IO_IN or G_IO_OUT). INVALID: it
 * failed; *@reason (to free) says why, for the log: OpenSSL's
 * verification error string, the subject that did not match, or the
 * protocol error. */
SgParseResult sg_tls_handshake_step(SgTlsClient *tls, SSL *ssl, GIOCondition *interest,
                                    char **reason);

/* "TLSv1.3 TLS_AES_256_GCM_SHA384", for the log. */
char *sg_tls_describe(SSL *ssl);

/* Takes ownership of @up, connected and with its handshake done
 * (sg_upstream_get_ssl() is not NULL). */
SgEndpoint *sg_endpoint_tls_new(SgUpstream *up);
