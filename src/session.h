/* SPDX-License-Identifier: Apache-2.0 */
/* session.h - one browser websocket relayed to one SPICE channel.
 *
 * A session starts when a websocket upgrade completes and is freed when
 * that websocket closes (lws' CLOSED callback); it owns everything else:
 * the token lookup, the upstream connection, both relay buffers and its
 * timers. Every refusal is a websocket close frame with a code and a
 * reason (see SgCloseReason); spicegate does not even connect to a SPICE
 * server before the token and the SPICE link message (its format, and its
 * channel type against [spice] channels) have both been accepted.
 *
 * Abbreviations used in session code: sess (session), up (upstream, while
 * it connects), ws (the browser's websocket endpoint, the relay's front),
 * tgt (console target). The bytes between the two ends are relay.c's.
 */
#pragma once

#include <stdint.h>

#include "close_code.h"
#include "config.h"
#include "session_limits.h"
#include "sg_types.h"
#include "spice_link.h"

struct lws;

/* Why a session ended; each has a websocket close code and a reason text
 * that a page can show. The table is in session.c. */
/* The largest websocket message we send toward the browser: one read from
 * the SPICE server. 256 KiB lets a large display update go out in few frames
 * and few loop turns (measured: 64 KiB capped one stream at ~450 MB/s). The
 * storage is only held while bytes are queued (buf.c), so idle sessions cost
 * nothing. */
#define SG_SESSION_DOWN_MESSAGE_BYTES (256 * 1024)

/* lws hands us websocket payload in chunks of at most this size (the
 * protocol's rx_buffer_size, listener.c), and reads the socket in reads of
 * this size: one recv() and one RECEIVE callback per chunk, so larger
 * chunks mean fewer loop turns per MB uploaded. */
#define SG_SESSION_RX_CHUNK_BYTES (64 * 1024)

uint16_t sg_close_reason_code(SgCloseReason reason);
const char *sg_close_reason_text(SgCloseReason reason);

/* What sessions share, owned by the listener and outliving every session. */
typedef struct {
    /* Every session is in the hub from sg_session_new() to
     * sg_session_free(), which also gives it its id (the "[s:N]" of log
     * lines) and tells the hub's observers what it does (hub.h). */
    SgHub *hub;
    SgTokenBackend *tokens;
    guint connect_timeout_s;
    guint link_timeout_s;
    guint idle_timeout_s;         /* 0: sessions may stay idle */
    guint ping_interval_s;        /* 0: no keepalive pings */
    guint close_timeout_s;
    /* [spice] tls, and the client context for TLS to SPICE servers
     * (endpoint_tls.h; NULL without [spice] ca_file). */
    SgSpiceTlsMode spice_tls;
    SgTlsClient *spice_tls_client;
    /* [limits]: each session holds one count of each from its start until
     * it is freed (session_limits.h). NULL: none. */
    const SgLimits *limits;
    /* [spice] channels: a link message for any other type is refused
     * (SG_CLOSE_CHANNEL_REFUSED) before spicegate connects. */
    SgSpiceChannelSet channels;
} SgSessionEnv;

/* A new session on the upgraded websocket @ws from @client ("addr:port").
 * Takes no ownership of @env or @ws. Call exactly one of
 * sg_session_start() or sg_session_refuse() next. */
SgSession *sg_session_new(const SgSessionEnv *env, struct lws *ws, const char *client);

/* Takes the session's [limits] counts (refusing it with 4429 when one is
 * reached), then looks up @token (copied) and, once it leads somewhere,
 * connects. */
void sg_session_start(SgSession *sess, const char *token);

/* Closes the websocket with @reason before anything else happens, logging
 * one "refused" line; @detail (may be NULL) adds words for the log only. */
void sg_session_refuse(SgSession *sess, SgCloseReason reason, const char *detail);

/* Closes with 1001 (shutdown); a no-op for a session already closing. */
void sg_session_shutdown(SgSession *sess);

/* Closes with @reason whatever state the session is in (an administrator's
 * request, SG_CLOSE_ADMIN; a limit). Returns false, doing nothing, for a
 * session already closing. */
bool sg_session_close(SgSession *sess, SgCloseReason reason);

/* lws events, translated by the listener. */
void sg_session_on_receive(SgSession *sess, const void *data, size_t len, bool binary);
/* Returns -1 when lws must close the websocket now, else 0. */
int sg_session_on_writeable(SgSession *sess);
/* lws' RECEIVE_PONG: the browser answered a keepalive ping. */
void sg_session_on_pong(SgSession *sess);

/* The websocket is gone (lws CLOSED): logs the close line, frees
 * everything. NULL is a no-op. */
void sg_session_free(SgSession *sess);
