/* SPDX-License-Identifier: Apache-2.0 */
/* ws_client.h - a small HTTP/1.1 and websocket client for the unit tests
 * that drive spicegate's core in-process (listener, session, relay).
 *
 * It plays the browser: a loopback TCP connection, an HTTP/1.1 upgrade
 * (Sec-WebSocket-Protocol: binary by default, the token in the query or a
 * cookie, an Origin if asked), masked frames out, the server's frames in
 * (binary payloads concatenated, text frames counted, pings answered, the
 * close frame's code and reason kept), or one plain HTTP request and its
 * answer. It can stop reading (to fill the socket and test flow control)
 * and shrink its socket buffers so that happens sooner.
 *
 * Everything runs on the default GMainContext with plain GLib fd sources
 * (not event_core.c: the client must not share the code under test), so
 * it runs on the same loop as spicegate; the tests turn that loop with
 * wsc_run_until(), which fails the test after a deadline. No thread, no
 * sleep.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

typedef struct WsClient WsClient;

/* How to open a websocket. Every field may be left 0/NULL. */
typedef struct {
    const char *path;             /* request target; default "/" */
    const char *host;             /* Host header; default "127.0.0.1:PORT" */
    const char *origin;           /* Origin header; NULL: none */
    const char *cookie;           /* Cookie header value; NULL: none */
    const char *protocol;         /* Sec-WebSocket-Protocol; NULL: "binary", "": none */
    const char *version;          /* Sec-WebSocket-Version; NULL: "13" */
    const char *extra_headers;    /* whole "Name: value\r\n" lines, or NULL */
    int rcvbuf;                   /* SO_RCVBUF before connecting, if > 0 */
    int sndbuf;                   /* SO_SNDBUF before connecting, if > 0 */
    const char *source;           /* connect from this IPv4 address (127.0.0.2...); NULL: any */
} WsOptions;

/* Connects to 127.0.0.1:@port and sends the upgrade request; the answer
 * comes as the loop turns (wsc_cond_answered()). */
WsClient *wsc_connect(guint16 port, const WsOptions *opt);

/* Connects to 127.0.0.1:@port and sends @request as is (one whole plain
 * HTTP request, or anything else); the answer is collected as for an
 * upgrade. */
WsClient *wsc_http(guint16 port, const char *request);

/* Connects and sends nothing yet (wsc_send_raw() later). */
WsClient *wsc_connect_raw(guint16 port);

void wsc_free(WsClient *c);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(WsClient, wsc_free)

/* --- the answer ---------------------------------------------------------- */

/* The HTTP status, 0 until the whole head is in. */
int wsc_status(const WsClient *c);
/* A header of the answer (name case-insensitive), or NULL. */
const char *wsc_header(const WsClient *c, const char *name);
/* 101 with a correct Sec-WebSocket-Accept: frames flow from here on. */
bool wsc_upgraded(const WsClient *c);
/* Forgets the answer, to read the next one on the same connection
 * (HTTP/1.1 keep-alive); wsc_connect() may follow on it as an upgrade. */
void wsc_next_answer(WsClient *c);
/* Sends an upgrade request on this connection (after a plain answer). */
void wsc_send_upgrade(WsClient *c, guint16 port, const WsOptions *opt);
/* A plain answer's body so far (after the head). */
const GByteArray *wsc_body(const WsClient *c);

/* --- websocket ---------------------------------------------------------- */

/* Every binary payload received, concatenated in order. */
const GByteArray *wsc_received(const WsClient *c);
/* Forgets what wsc_received() holds (its count of bytes goes on). */
void wsc_clear_received(WsClient *c);
/* Bytes of binary payload received in all, cleared or not. */
guint64 wsc_received_total(const WsClient *c);
guint wsc_n_binary(const WsClient *c);   /* whole binary messages */
guint wsc_n_text(const WsClient *c);     /* whole text messages */
/* The server's close frame: its code (0 before, 1005 for one without a
 * code) and reason. */
bool wsc_got_close(const WsClient *c);
guint16 wsc_close_code(const WsClient *c);
const char *wsc_close_reason(const WsClient *c);
/* The server ended the TCP connection (EOF, or an error such as a reset). */
bool wsc_eof(const WsClient *c);
/* Something the server sent broke RFC 6455 (a masked frame, a reserved
 * bit, a bad length), or NULL. */
const char *wsc_protocol_error(const WsClient *c);

/* Queues one masked frame (@opcode 0x1 text, 0x2 binary, 0x8 close, ...,
 * @fin false for a fragment). */
void wsc_send_frame(WsClient *c, guint8 opcode, bool fin, const void *data, gsize len);
void wsc_send_binary(WsClient *c, const void *data, gsize len);
void wsc_send_text(WsClient *c, const char *text);
/* A close frame with @code (0: none) and @reason (may be NULL). */
void wsc_send_close(WsClient *c, guint16 code, const char *reason);
/* Queues raw bytes (no framing). */
void wsc_send_raw(WsClient *c, const void *data, gsize len);
/* Bytes queued that the socket has not taken yet. */
gsize wsc_out_pending(const WsClient *c);
/* The last send() found the socket full and bytes still wait. */
bool wsc_send_blocked(const WsClient *c);
/* Half-closes (shutdown(SHUT_WR)) once the queue is out. */
void wsc_shutdown_write(WsClient *c);

/* Stops (true) or resumes reading the socket. */
void wsc_pause_reading(WsClient *c, bool paused);

/* Pings from the server: counted, and answered with a pong unless
 * wsc_answer_pings(c, false) (a browser that stopped answering). */
guint wsc_n_pings(const WsClient *c);
void wsc_answer_pings(WsClient *c, bool answer);

/* --- waiting ------------------------------------------------------------ */

/* Turns the default main context until @cond(@data) holds; fails the test
 * (ck_abort) when @deadline_ms pass first. */
void wsc_run_until(gboolean (*cond)(gpointer data), gpointer data, guint deadline_ms);
/* Turns it for @ms: only to see that something does NOT happen meanwhile
 * (every positive wait uses wsc_run_until()). */
void wsc_run_for(guint ms);

/* Conditions for wsc_run_until(), each on a WsClient *. */
gboolean wsc_cond_answered(gpointer c);  /* status known; a plain body complete */
gboolean wsc_cond_closed(gpointer c);    /* a close frame or the connection's end */
gboolean wsc_cond_eof(gpointer c);       /* the connection's end */
gboolean wsc_cond_sent(gpointer c);      /* nothing left to send */
gboolean wsc_cond_blocked(gpointer c);   /* the socket took no more */

/* Waits until @n bytes of binary payload have arrived in all. */
void wsc_wait_received(WsClient *c, guint64 n, guint deadline_ms);
