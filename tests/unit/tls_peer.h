/* SPDX-License-Identifier: Apache-2.0 */
/* tls_peer.h - a TLS echo peer for the unit tests of TLS toward the SPICE
 * server ([spice] tls, endpoint_tls.c).
 *
 * NOT a SPICE server: it speaks no SPICE, only TLS (OpenSSL's server
 * side) on 127.0.0.1, port 0, and echoes every byte, or floods a known
 * pattern. It exists for the certificates a test needs on demand (a wrong
 * CA, an expired one, another host, another subject) and for byte counts;
 * QEMU's real SPICE server over TLS is exercised by tests/integ. Its
 * certificates and keys are made in memory when it starts (never stored
 * beyond its temporary directory, which tlsp_free() removes). It serves
 * from a thread of its own with blocking sockets, one connection at a
 * time.
 */
#pragma once

#include <stdbool.h>

#include <glib.h>

typedef enum {
    TLSP_GOOD = 0,        /* signed by the CA of tlsp_ca_file(), for IP 127.0.0.1 */
    TLSP_OTHER_CA,        /* the same, signed by a CA nobody trusts */
    TLSP_EXPIRED,         /* the same, expired an hour ago */
    TLSP_OTHER_HOST,      /* good CA, but for IP 127.0.0.2 and DNS other.example */
    TLSP_TLS12_ONLY,      /* good certificate; the server speaks TLS 1.2 at most */
} TlspKind;

/* The subject of every server certificate, in spice-gtk's syntax. */
#define TLSP_SUBJECT "C=IL, L=Raanana, O=Red Hat, CN=my server"

typedef struct TlsPeer TlsPeer;

TlsPeer *tlsp_new(TlspKind kind);
/* Stops the thread, closes every socket, removes the files. */
void tlsp_free(TlsPeer *p);
guint16 tlsp_port(const TlsPeer *p);
/* The trusted CA's certificate (PEM), for [spice] ca_file. */
const char *tlsp_ca_file(const TlsPeer *p);

/* Once the first bytes arrived on a connection, send @bytes of
 * fsp_pattern() (then keep echoing nothing, only reading). 0: echo. */
void tlsp_set_flood(TlsPeer *p, guint64 bytes);

/* Keep what arrives, send nothing (instead of echoing). */
void tlsp_set_sink(TlsPeer *p, bool sink);
/* Stop (true) or resume reading, between two reads. */
void tlsp_set_reading(TlsPeer *p, bool reading);

/* Completed and failed handshakes so far. */
guint tlsp_n_handshakes(TlsPeer *p);
guint tlsp_n_failed(TlsPeer *p);
/* A copy of the bytes the newest connection received, in order. */
GByteArray *tlsp_received(TlsPeer *p);
/* Bytes sent by the newest connection, and whether its flood is done. */
guint64 tlsp_sent(TlsPeer *p);
