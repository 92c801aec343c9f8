/* SPDX-License-Identifier: Apache-2.0 */
/* stub_http.h - a fault-injecting HTTP/1.1 peer for the unit tests of the
 * HTTP client side (httpc.c, keystone.c, token_nova.c).
 *
 * This is a test peer, NOT a Keystone or a Nova: it answers each request
 * with whatever the test queued (or its handler returns), including what
 * no real API would send: silence, a reset, endless bodies or headers,
 * garbage. The real Keystone and Nova are exercised by tests/nova; the
 * whole daemon against the same faults by tests/integ/test_hostile_apis.py.
 *
 * It listens on 127.0.0.1, port 0, and runs on the default GMainContext
 * (plain GLib fd sources, not event_core.c), so it runs on the same loop
 * as the client under test: the tests turn that loop with deadlines.
 * Every connection gets one answer and is closed (Connection: close).
 */
#pragma once

#include <stdbool.h>

#include <glib.h>

typedef enum {
    STUB_ANSWER = 0,      /* send the reply's bytes, then end the connection */
    STUB_STALL,           /* read the request, never answer */
    STUB_RESET,           /* reset the connection (RST) once the request is in */
    STUB_ENDLESS_BODY,    /* send the reply's bytes (a head), then 'a's until the client goes */
    STUB_ENDLESS_HEADERS, /* a status line, then distinct header lines until the client goes */
} StubAction;

typedef struct {
    StubAction action;
    GBytes *bytes;        /* what STUB_ANSWER or STUB_ENDLESS_BODY sends first */
} StubReply;

typedef struct {
    char *method;
    char *path;
    GHashTable *headers;  /* lowercased name -> value */
    char *body;           /* NUL-terminated */
    gsize body_len;
} StubRequest;

typedef struct StubHttp StubHttp;

/* Returns the reply for @req (the stub frees it), or NULL to take the
 * next queued one. */
typedef StubReply *(*StubHandler)(StubHttp *stub, const StubRequest *req, gpointer data);

StubHttp *stub_http_new(void);
void stub_http_free(StubHttp *stub);
guint16 stub_http_port(const StubHttp *stub);
/* "http://127.0.0.1:PORT@path"; newly allocated. */
char *stub_http_url(const StubHttp *stub, const char *path);
void stub_http_set_handler(StubHttp *stub, StubHandler handler, gpointer data);

/* Replies, built for the queue or for a handler. @headers are whole lines
 * ("Name: value\r\n" each), or NULL. */
StubReply *stub_reply_new(int status, const char *headers, const char *body, gssize body_len);
StubReply *stub_reply_raw(StubAction action, const char *bytes, gssize len);
void stub_reply_free(StubReply *reply);

/* Queues the answer to the next request nobody's handler answered. */
void stub_http_push(StubHttp *stub, int status, const char *headers, const char *body);
void stub_http_push_reply(StubHttp *stub, StubReply *reply);
void stub_http_push_action(StubHttp *stub, StubAction action);

/* What the stub has seen. */
guint stub_http_n_requests(const StubHttp *stub);
const StubRequest *stub_http_request(const StubHttp *stub, guint i);
guint stub_http_n_open(const StubHttp *stub);         /* connections still open */
guint stub_http_n_client_closed(const StubHttp *stub); /* ended by the client */
guint64 stub_http_endless_sent(const StubHttp *stub);  /* bytes of endless answers */

/* A loopback port nothing listens on (bound, read back, closed). */
guint16 stub_http_refused_port(void);

/* Turns the default main context until @cond(@data) holds; fails the test
 * (check's ck_abort) after @deadline_ms. */
void stub_run_until(gboolean (*cond)(gpointer data), gpointer data, guint deadline_ms);
