/* SPDX-License-Identifier: Apache-2.0 */
/* session_limits.h - [limits]: how many websockets, in all, per client
 * address and per console, across every worker (OSSN-0008).
 *
 * One count per websocket, taken in the shared zone's limit tables
 * (shared_zone.h), so that a limit holds whichever worker a websocket
 * lands on. A session takes its counts when it starts, once admission.c
 * has found its token (the console is keyed by the token's tag,
 * sg_log_redact(), never by the token), before the token is looked up:
 * a refused websocket costs no lookup and no connection. It gives them
 * back when its websocket is gone (sg_session_free()), whatever ended it;
 * a worker that dies gives back its counts through the master
 * (sg_zone_retire()).
 *
 * The zone counts keys by a hash of them: two keys that share a slot
 * count together, so a limit can trip early for a key, never late. With
 * SG_LIMITS_TABLE_SLOTS slots, N live keys put about N / 65536 of them on
 * a slot with another key.
 */
#pragma once

#include <stdbool.h>

#include <glib.h>

#include "close_code.h"
#include "shared_zone.h"
#include "sg_types.h"

/* The shared zone's limit tables, one per limit. */
enum {
    SG_LIMITS_TABLE_TOTAL = 0,    /* max_sessions: one key for every websocket */
    SG_LIMITS_TABLE_ADDRESS,      /* per_ip: keyed by the client's address */
    SG_LIMITS_TABLE_CONSOLE,      /* per_token: keyed by the token's tag */
    SG_LIMITS_TABLES
};
/* The one key of SG_LIMITS_TABLE_TOTAL. */
#define SG_LIMITS_TOTAL_KEY "*"
/* Slots of each table: 256 KiB of counts per table for the zone and for
 * each worker. 65536 keeps keys sharing a slot rare with tens of
 * thousands of live client addresses or consoles. */
#define SG_LIMITS_TABLE_SLOTS 65536

/* The limits of one process (a worker or the only process). */
typedef struct {
    SgZone *zone;                 /* not owned; NULL: no limits at all */
    guint worker;                 /* this process's slot in @zone */
    guint max_sessions;           /* 0: unlimited */
    guint per_ip;                 /* 0: unlimited */
    guint per_token;              /* 0: unlimited */
} SgLimits;

/* What one websocket holds. Zeroed: holds nothing. */
typedef struct {
    SgZoneTicket tickets[SG_LIMITS_TABLES];
} SgLimitsHold;

/* Takes one count in every limit that is set for a websocket from
 * @client_addr (the address alone, as the session records it) to the
 * console @token_tag. Checks the most specific first: per_token, per_ip,
 * then max_sessions. Returns true with *@hold holding the counts, or
 * false, holding nothing, with *@refusal (one of SG_CLOSE_LIMIT_*) and
 * *@detail (newly allocated words for the log) set. @limits NULL, or
 * with no zone: always true. */
bool sg_limits_acquire(const SgLimits *limits, const char *client_addr, const char *token_tag,
                       SgLimitsHold *hold, SgCloseReason *refusal, char **detail);

/* Gives back what *@hold holds, and empties it: a second call, or one on
 * a hold that took nothing, is a no-op. */
void sg_limits_release(const SgLimits *limits, SgLimitsHold *hold);
