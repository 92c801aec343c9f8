/* SPDX-License-Identifier: Apache-2.0 */
/* session_state.c - the table of legal session state moves.
 *
 *   NEW -> AUTHORISING -> CONNECTING -> LINKING -> RELAYING -> DRAINING
 *                                            \______________________/
 *
 * and every state but CLOSING may go to CLOSING (a refusal, a deadline,
 * the browser's text frame, shutdown, the token's expiry). Only states
 * that read the SPICE server can owe the browser bytes when it goes, so
 * only LINKING and RELAYING go to DRAINING. CLOSING is final: the session is
 * freed from it (or from any state, when the browser goes away: that is
 * not a move).
 */
#include "autoconfig.h"

#include "session_state.h"

static const char *const state_names[SG_SESSION_N_STATES] = {
    [SG_SESSION_NEW] = "new",
    [SG_SESSION_AUTHORISING] = "authorising",
    [SG_SESSION_CONNECTING] = "connecting",
    [SG_SESSION_LINKING] = "linking",
    [SG_SESSION_RELAYING] = "relaying",
    [SG_SESSION_DRAINING] = "draining",
    [SG_SESSION_CLOSING] = "closing",
};

#define MOVE(to) (1u << (to))

/* For each state, the states it may move to. */
static const unsigned legal_moves[SG_SESSION_N_STATES] = {
    [SG_SESSION_NEW] = MOVE(SG_SESSION_AUTHORISING) | MOVE(SG_SESSION_CLOSING),
    [SG_SESSION_AUTHORISING] = MOVE(SG_SESSION_CONNECTING) | MOVE(SG_SESSION_CLOSING),
    [SG_SESSION_CONNECTING] = MOVE(SG_SESSION_LINKING) | MOVE(SG_SESSION_CLOSING),
    [SG_SESSION_LINKING] = MOVE(SG_SESSION_RELAYING) | MOVE(SG_SESSION_DRAINING) |
                           MOVE(SG_SESSION_CLOSING),
    [SG_SESSION_RELAYING] = MOVE(SG_SESSION_DRAINING) | MOVE(SG_SESSION_CLOSING),
    [SG_SESSION_DRAINING] = MOVE(SG_SESSION_CLOSING),
    [SG_SESSION_CLOSING] = 0,
};

const char *
sg_session_state_name(SgSessionState state)
{
    return (unsigned)state < SG_SESSION_N_STATES ? state_names[state] : "?";
}

bool
sg_session_state_can_move(SgSessionState from, SgSessionState to)
{
    if ((unsigned)from >= SG_SESSION_N_STATES || (unsigned)to >= SG_SESSION_N_STATES)
        return false;
    return (legal_moves[from] & MOVE(to)) != 0;
}

bool
sg_session_state_check_move(guint64 id, SgSessionState from, SgSessionState to)
{
    if (G_LIKELY(sg_session_state_can_move(from, to)))
        return true;
    g_critical("[s:%" G_GUINT64_FORMAT "] illegal session state move %s -> %s (a bug in "
               "spicegate; please report it)", id, sg_session_state_name(from),
               sg_session_state_name(to));
    return false;
}
