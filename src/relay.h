/* SPDX-License-Identifier: Apache-2.0 */
/* relay.h - the byte pump between the two endpoints of a session.
 *
 * The front is the browser's end, the back the SPICE server's. Each
 * direction has one bounded buffer (buf.c) and flow control: a pull
 * source is read only once everything read before has left (one message
 * in flight), and a push source is paused once less than one delivery
 * would fit and resumed when half the buffer has left. The fast paths sit
 * behind the endpoint interface (endpoint.h) and are checked before each
 * use: small deliveries go straight to a destination that needs no
 * headroom when nothing is queued; large ones are batched and sent once
 * per loop turn; large reads from a source that gives a socket go through
 * a kernel pipe (splice_pipe.c) to a destination that takes spliced
 * messages.
 *
 * The relay owns both endpoints. Forwarding toward the back waits until
 * the owner releases it (sg_relay_hold()), so the owner can check what the
 * front sent first (the SPICE link message). Events reach the owner from
 * the loop, never from inside a relay call; after an event the relay does
 * nothing more in that dispatch, so the owner may drop the back or end the
 * session from its callback (but not free the relay).
 */
#pragma once

#include <stdbool.h>

#include <glib.h>

#include "endpoint.h"

typedef struct SgRelay SgRelay;

typedef enum {
    SG_RELAY_FRONT = 0,           /* the browser's end */
    SG_RELAY_BACK = 1,            /* the SPICE server's end */
} SgRelayEnd;

typedef struct {
    /* Forwarding is held and the front sent more: @bytes is all that
     * waits. Returns false when the owner ended the session. */
    bool (*held)(SgRelay *relay, const guint8 *bytes, gsize len, gpointer data);
    /* While peeking (sg_relay_peek()): bytes read from the back toward the
     * front; @next_bypasses: the next read will be spliced past the peek. */
    void (*peek)(SgRelay *relay, const guint8 *bytes, gsize len, bool next_bypasses,
                 gpointer data);
    /* @end is gone: the end of its stream (@detail NULL), a read or write
     * error (@detail says which), or its peer left. */
    void (*lost)(SgRelay *relay, SgRelayEnd end, const char *detail, gpointer data);
    /* The front sent more than the back took and the relay can hold. */
    void (*overflow)(SgRelay *relay, const char *detail, gpointer data);
    /* The back was dropped and everything owed to the front has left. */
    void (*drained)(SgRelay *relay, gpointer data);
} SgRelayEvents;

/* A relay from @front (owned from here on), held, with no back yet. */
SgRelay *sg_relay_new(SgEndpoint *front, const SgRelayEvents *events, gpointer data);

/* The session id in the relay's and its endpoints' log lines. */
void sg_relay_set_log_id(SgRelay *relay, guint64 log_id);

/* Connects @back (owned from here on) and starts relaying. */
void sg_relay_attach_back(SgRelay *relay, SgEndpoint *back);

/* Frees the back (gone, or the session ends); what the front is owed
 * still goes out, and drained() follows once it has. */
void sg_relay_drop_back(SgRelay *relay);

/* Holds or releases forwarding toward the back (held at first). Release
 * it from held(), or before sg_relay_attach_back(): what waits goes out
 * from there. */
void sg_relay_hold(SgRelay *relay, bool hold);

/* Shows the owner what comes from the back (see SgRelayEvents.peek). */
void sg_relay_peek(SgRelay *relay, bool peek);

/* Nothing is owed to the front any more, neither by us nor inside it. */
bool sg_relay_front_drained(SgRelay *relay);

/* Bytes handed to @end so far. */
guint64 sg_relay_bytes_to(SgRelay *relay, SgRelayEnd end);
/* The counter behind sg_relay_bytes_to(), valid as long as the relay: for
 * readers that only read now and then (the hub). */
const guint64 *sg_relay_bytes_counter(SgRelay *relay, SgRelayEnd end);

SgEndpoint *sg_relay_get_end(SgRelay *relay, SgRelayEnd end);

/* Frees the relay and both endpoints. NULL is a no-op. */
void sg_relay_free(SgRelay *relay);

/* Destroys what all relays share (the upload flush source) once the last
 * relay is freed: at exit, so nothing of the relay outlives the loop. */
void sg_relay_release_shared(void);
