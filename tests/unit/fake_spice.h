/* SPDX-License-Identifier: Apache-2.0 */
/* fake_spice.h - a fault-injecting SPICE peer for the unit tests of the
 * core (listener, session, relay).
 *
 * This is NOT a SPICE server: it speaks no SPICE. It is a loopback TCP
 * peer that does to spicegate's upstream leg what the test scripts: echo
 * every byte, swallow them, stay silent, close or reset once something
 * arrives, flood a known byte pattern, stop reading. The real SPICE server
 * (QEMU's) is exercised by tests/integ; this peer exists for the faults
 * and the byte counts a real one cannot be made to produce on demand.
 *
 * It listens on 127.0.0.1, port 0, and runs on the default GMainContext
 * with plain GLib fd sources, on the same loop as spicegate.
 */
#pragma once

#include <stdbool.h>

#include <glib.h>

typedef enum {
    FSP_ECHO = 0,         /* send back every byte received */
    FSP_SINK,             /* keep every byte received, send nothing */
    FSP_SILENT,           /* take the connection, never read, never write */
    FSP_CLOSE,            /* close (FIN) once the first bytes arrived */
    FSP_RESET,            /* reset (RST) once the first bytes arrived */
    FSP_FLOOD,            /* once the first bytes arrived, send flood_bytes of
                           * fsp_pattern() as fast as the socket takes them, then
                           * close (flood_then_close) or stay open; keeps reading */
    FSP_NEED_SECURED,     /* once the first bytes arrived, answer with a link reply
                           * whose error is SPICE_LINK_ERR_NEED_SECURED (what
                           * spice-server sends for a channel it wants over TLS),
                           * then close; fault injection for [spice] tls = auto */
} FspMode;

typedef struct FakeSpice FakeSpice;

FakeSpice *fsp_new(void);
/* Closes every connection and the listening socket. */
void fsp_free(FakeSpice *fsp);
guint16 fsp_port(const FakeSpice *fsp);

/* What connections accepted from now on do. */
void fsp_set_mode(FakeSpice *fsp, FspMode mode);
void fsp_set_flood(FakeSpice *fsp, guint64 bytes, bool then_close);
/* SO_SNDBUF / SO_RCVBUF of connections accepted from now on (0: the
 * kernel's). Small buffers make flow control show sooner. */
void fsp_set_buffers(FakeSpice *fsp, int sndbuf, int rcvbuf);

/* Stops (false) or resumes reading on every connection. */
void fsp_set_reading(FakeSpice *fsp, bool reading);
/* Ends every open connection now: FIN, or RST with @reset. */
void fsp_close_all(FakeSpice *fsp, bool reset);
/* Sends @len bytes on the newest connection (queued if it is full). */
void fsp_send(FakeSpice *fsp, const void *data, gsize len);

/* What it saw, over all connections. */
guint fsp_n_accepted(const FakeSpice *fsp);
guint fsp_n_open(const FakeSpice *fsp);
/* Connections spicegate ended (EOF or error on read). */
guint fsp_n_peer_closed(const FakeSpice *fsp);
/* Bytes received on the newest connection, in order (FSP_ECHO and
 * FSP_SINK keep them all; FSP_FLOOD keeps them too). */
const GByteArray *fsp_received(const FakeSpice *fsp);
guint64 fsp_received_total(const FakeSpice *fsp);
/* Bytes sent on the newest connection (FSP_ECHO and FSP_FLOOD). */
guint64 fsp_sent(const FakeSpice *fsp);
/* The newest connection's last send() found its socket full. */
bool fsp_blocked(const FakeSpice *fsp);
/* The flood of the newest connection is all sent. */
bool fsp_flood_done(const FakeSpice *fsp);

/* The byte at offset @i of every flood: not periodic over any short span,
 * so a lost, doubled or swapped chunk shows. */
static inline guint8
fsp_pattern(guint64 i)
{
    return (guint8)((i * 2654435761u) >> 13) ^ (guint8)(i >> 16);
}
/* Whether @data of @len bytes is the flood from offset @from on; on a
 * mismatch *@bad is its offset. */
bool fsp_pattern_check(const guint8 *data, gsize len, guint64 from, guint64 *bad);
