/* SPDX-License-Identifier: Apache-2.0 */
/* server_cert.h - the certificate new TLS handshakes get, and its reload.
 *
 * At start libwebsockets loads [tls] cert and key into its server SSL_CTX
 * itself. On SIGHUP the files are read again into a scratch SSL_CTX and
 * checked whole (readable, PEM, unencrypted key, key matching the
 * certificate, within its validity period, accepted by OpenSSL's security
 * level); only a pair that passes every check replaces the one in use.
 * From then on OpenSSL's certificate callback gives every new handshake
 * that pair (and nothing else: a key type change from RSA to ECDSA does
 * not leave the old RSA certificate on offer). Connections already up
 * (wss consoles, HTTP/2 connections) keep the certificate they were
 * opened with, and live on. A refused pair is logged with its reason and
 * the one in use stays.
 */
#pragma once

#include "sg_types.h"

typedef struct SgServerCert SgServerCert;

typedef enum {
    SG_SERVER_CERT_RELOADED = 0,  /* a new certificate for new handshakes */
    SG_SERVER_CERT_UNCHANGED,     /* the files hold the certificate in use */
    SG_SERVER_CERT_KEPT,          /* the files were refused; the old one stays */
} SgServerCertResult;

/* For the listener's vhost with [tls] cert set in @cfg (not owned; must
 * outlive the object). */
SgServerCert *sg_server_cert_new(const SgConfig *cfg);

/* lws' server SSL_CTX (LWS_CALLBACK_OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS):
 * notes the certificate lws loaded (a warning if it has expired or is not
 * valid yet: served all the same, since it is all there is) and installs
 * the certificate callback.
 * @ssl_ctx must outlive @sc's use by handshakes (lws frees it with its
 * context, before the listener frees @sc). */
void sg_server_cert_attach(SgServerCert *sc, void *ssl_ctx);

/* SIGHUP: reads and checks the files again; on success new handshakes
 * get the new pair. Logs the outcome (once with workers) and sets
 * @summary (newly allocated, one line) for systemd's STATUS=. */
SgServerCertResult sg_server_cert_reload(SgServerCert *sc, char **summary);

/* The same checks on @cfg's files without serving them (the master of
 * several workers, which has no TLS context). Returns one line for
 * STATUS=: what a reload takes, or why it refuses the files. */
char *sg_server_cert_check(const SgConfig *cfg);

void sg_server_cert_free(SgServerCert *sc);
