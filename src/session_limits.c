/* SPDX-License-Identifier: Apache-2.0 */
/* session_limits.c - [limits] counted in the shared zone's limit tables.
 *
 * Owns nothing: the zone is the process's (main.c, workers.c) and each
 * hold is its session's. Must not log (the session logs its refusal, and
 * knows its id) and must not keep a key: the zone keeps counts only.
 */
#include "autoconfig.h"

#include <glib.h>

#include "session_limits.h"

static void
release_tables(const SgLimits *limits, SgLimitsHold *hold)
{
    for (guint t = 0; t < SG_LIMITS_TABLES; t++)
        sg_zone_limit_release(limits->zone, &hold->tickets[t]);
}

bool
sg_limits_acquire(const SgLimits *limits, const char *client_addr, const char *token_tag,
                  SgLimitsHold *hold, SgCloseReason *refusal, char **detail)
{
    /* Most specific first: the person who hit a per-console or
     * per-address limit can do something about it; a full service they
     * can only wait for. */
    const struct {
        guint table;
        guint limit;
        const char *key;
        SgCloseReason reason;
        const char *name;
    } checks[] = {
        { SG_LIMITS_TABLE_CONSOLE, limits ? limits->per_token : 0, token_tag,
          SG_CLOSE_LIMIT_CONSOLE, "per_token" },
        { SG_LIMITS_TABLE_ADDRESS, limits ? limits->per_ip : 0, client_addr,
          SG_CLOSE_LIMIT_ADDRESS, "per_ip" },
        { SG_LIMITS_TABLE_TOTAL, limits ? limits->max_sessions : 0, SG_LIMITS_TOTAL_KEY,
          SG_CLOSE_LIMIT_TOTAL, "max_sessions" },
    };

    *hold = (SgLimitsHold){ 0 };
    *detail = NULL;
    if (limits == NULL || limits->zone == NULL)
        return true;
    for (gsize i = 0; i < G_N_ELEMENTS(checks); i++) {
        if (checks[i].limit == 0)
            continue;
        /* A key we could not read (no address) still counts, under "". */
        if (!sg_zone_limit_acquire(limits->zone, checks[i].table, limits->worker,
                                   checks[i].key ? checks[i].key : "", checks[i].limit,
                                   &hold->tickets[checks[i].table])) {
            release_tables(limits, hold);
            *refusal = checks[i].reason;
            *detail = g_strdup_printf("[limits] %s = %u reached", checks[i].name,
                                      checks[i].limit);
            return false;
        }
    }
    return true;
}

void
sg_limits_release(const SgLimits *limits, SgLimitsHold *hold)
{
    if (limits == NULL || limits->zone == NULL)
        return;
    release_tables(limits, hold);
}
