/* SPDX-License-Identifier: Apache-2.0 */
/* session_state.h - a session's states and the one table of moves between
 * them.
 *
 * Pure (no I/O, no libwebsockets), so that unit tests reach it. session.c
 * moves through these states only by sg_session_state_check_move(); what
 * each state waits for, and its deadline, is drawn in session.c.
 */
#pragma once

#include <stdbool.h>

#include <glib.h>

typedef enum {
    SG_SESSION_NEW = 0,
    SG_SESSION_AUTHORISING,       /* the token backend answers, and the browser's
                                   * link message comes and passes [spice] channels */
    SG_SESSION_CONNECTING,        /* TCP connect to the SPICE server (and, with
                                   * [spice] tls, the TLS handshake) */
    SG_SESSION_LINKING,           /* the SPICE link exchange: the browser's link
                                   * message forwarded, the server's reply */
    SG_SESSION_RELAYING,
    SG_SESSION_DRAINING,          /* SPICE server gone; flushing to the browser */
    SG_SESSION_CLOSING,           /* close frame queued; waiting for lws */
    SG_SESSION_N_STATES,
} SgSessionState;

/* "new", "authorising", ...; "?" for a value out of range. */
const char *sg_session_state_name(SgSessionState state);

/* Whether @from -> @to is a move of the table. A state never moves to
 * itself. */
bool sg_session_state_can_move(SgSessionState from, SgSessionState to);

/* Checks a move session [s:@id] is about to make. An illegal move is a bug
 * in spicegate: it is logged as a GLib critical (which the tests treat as
 * a failure) and false is returned; the caller makes the move anyway, so
 * that a session in production still ends. */
bool sg_session_state_check_move(guint64 id, SgSessionState from, SgSessionState to);
