/* SPDX-License-Identifier: Apache-2.0 */
/* core_harness.h - spicegate's core, started in-process for unit tests.
 *
 * What main.c does for one process, through the same public functions:
 * an SgConfig from defaults plus the test's settings (config.c), the
 * listening socket on 127.0.0.1:0 (listen_socket.c), the hub with the
 * log's observer, the token file backend and the listener (lws on the
 * event core, with its acceptor). Its console tokens lead to a
 * fault-injecting SPICE peer (fake_spice.h) the harness runs:
 *
 *   good   -> the fake peer
 *   dead   -> a loopback port nothing listens on
 *
 * (or, with "harness.tokens", "script", a token backend written for the
 * tests with the answers a token file never gives: see core_harness.c)
 *
 * The web root holds index.html and app.js. Everything runs on the
 * default GMainContext; drive it with ws_client.h's wsc_run_until().
 * An observer of the hub records every session that closes.
 */
#pragma once

#include <stdbool.h>

#include <glib.h>

#include "close_code.h"
#include "fake_spice.h"
#include "sg_types.h"
#include "ws_client.h"

/* The console of harness_link_message(): a display channel's link names it. */
#define HARNESS_CONSOLE_ID 0x1234abcdu
/* The lifetime of the scripted backend's "expiring" token. */
#define HARNESS_EXPIRING_MS 1200
#define HARNESS_INDEX_HTML "<html><body>spicegate test page</body></html>\n"

typedef struct {
    guint64 id;
    SgCloseReason reason;
    char *detail;                 /* may be NULL */
    bool opened;
    char *channel;                /* may be NULL */
    bool has_console;
    guint32 console;
    guint64 bytes_up;
    guint64 bytes_down;
} HarnessClose;

typedef struct {
    SgConfig *cfg;
    SgTokenBackend *tokens;
    SgHub *hub;
    SgZone *zone;                 /* one worker's, as main.c maps it: counts and [limits] */
    SgListener *listener;
    GMainLoop *loop;
    int listen_fd;
    guint16 port;
    char *dir;                    /* temporary: token file, web root */
    FakeSpice *peer;
    GPtrArray *closed;            /* HarnessClose*, in the order they closed */
    guint opened;                 /* sessions that opened */
    bool shutdown_done;           /* sg_listener_shutdown()'s callback ran */
    bool script_tokens;           /* the scripted token backend */
    guint lookups_pending;        /* its lookups not answered */
    guint lookups_cancelled;      /* and cancelled */
    guint rechecks;               /* its re-checks of live consoles' tokens */
    bool recheck_fails;           /* answer them with recheck_error, */
    int recheck_error;            /* an SgTokenError; else as any lookup */
} Harness;

/* Lines the next harness_start() adds to its token file, "{fsp}"
 * standing for the fake peer's port (e.g. "tls: 127.0.0.1:{fsp}
 * tls-port=N\n"). Used once, then forgotten. */
void harness_add_tokens(const char *lines);

/* Starts spicegate with the defaults, then each "group.key", "value" pair
 * (NULL-terminated), e.g. harness_start("server.link_timeout", "1", NULL). */
Harness *harness_start(const char *first_key, ...);
/* Frees the listener (closing what is open), the hub, the tokens, the
 * peer and the event core, and removes the temporary files. */
void harness_stop(Harness *h);

/* Stops admitting and closes every session with 1001, as SIGTERM does;
 * h->shutdown_done once the listener says it is done. */
void harness_shutdown(Harness *h);
/* SIGTERM's drain (sg_listener_drain()) for up to @drain_s seconds; then
 * as harness_shutdown(). */
void harness_drain(Harness *h, guint drain_s);

/* Waits until @n sessions in all have closed; returns the @n-th. */
const HarnessClose *harness_wait_closed(Harness *h, guint n, guint deadline_ms);
/* The websocket path with @token in its query. */
char *harness_path(const char *token);

/* --- sessions ------------------------------------------------------------ */

/* A SPICE link message (SpiceLinkHeader + SpiceLinkMess, no capabilities)
 * for display channel 0 of console HARNESS_CONSOLE_ID: 34 bytes. */
GByteArray *harness_link_message(void);
/* The same for another channel type and connection id. */
GByteArray *harness_link_message_for(guint8 channel_type, guint32 connection_id);
/* A websocket to spicegate with @token in the query (NULL: none), @opt
 * (may be NULL) for the rest; asserts the upgrade. */
WsClient *harness_open_ws(Harness *h, const char *token, const WsOptions *opt);
/* A websocket with the "good" token that has sent its link message. */
WsClient *harness_open_console(Harness *h, const WsOptions *opt);
/* The same with another token of the token file. */
WsClient *harness_open_console_with(Harness *h, const char *token);
/* The session ended with @code and @text: the client saw the close frame
 * and the end of the connection. */
void harness_expect_close(WsClient *c, guint16 code, const char *text);
/* Waits until the fake peer's newest connection received @n bytes. */
void harness_wait_peer_received(Harness *h, guint64 n);
/* The client stopped reading and the fake peer floods: waits until the
 * relay has stopped (the peer's socket full, nothing more sent over two
 * turns of 150 ms: the kernel's buffers on the way grow for a while). */
void harness_wait_relay_stuck(Harness *h);
/* Conditions for wsc_run_until() on a FakeSpice *: its flood is all sent;
 * spicegate closed a connection to it. */
gboolean harness_peer_flood_done(gpointer fsp);
gboolean harness_peer_saw_close(gpointer fsp);
