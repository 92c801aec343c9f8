/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_admin.c - libFuzzer target for what the admin API still parses
 * itself: a request's method, target (path and query) and Authorization
 * value, as libwebsockets hands them over, through the token check and
 * the routes (sg_admin_answer()). HTTP itself is lws'.
 *
 * The input is three lines: METHOD, TARGET, AUTHORIZATION (the third line
 * absent: no header), each cut at its newline. Besides crashes, it checks
 * admin.h's promises: the bearer check true only for the right token
 * (after "Bearer" in any case), 401 for every other, and every answer a
 * real HTTP status with a body, an Allow header exactly on 405. Requests
 * are routed against a process with no sessions (a local fleet over an
 * empty hub), so that paths, queries and ids reach the code that reads
 * them.
 */
#include "autoconfig.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "admin.h"
#include "hub.h"
#include "shared_zone.h"
#include "worker_ctl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_TOKEN "s3cret-admin-token"

static bool
close_nothing(gpointer owner, SgCloseReason reason)
{
    (void)owner;
    (void)reason;
    abort();                      /* the hub is empty: nothing to close */
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static SgHub *hub;
    static SgZone *zone;
    static SgFleet *fleet;
    static SgAdmin *admin;
    g_autofree char *text = g_strndup((const char *)data, size);   /* cut at a NUL, as lws */
    g_auto(GStrv) lines = g_strsplit(text, "\n", 3);
    const char *method, *target, *authorization;
    SgAdminReply reply;
    bool allowed;

    if (admin == NULL) {
        SgAdminContext ctx = { .token = FUZZ_TOKEN, .workers = 1 };

        g_log_set_always_fatal(G_LOG_LEVEL_CRITICAL);
        hub = sg_hub_new(0, 1);
        zone = sg_zone_new(1, 0, 0, NULL);
        if (zone == NULL)
            abort();
        fleet = sg_fleet_new_local(hub, close_nothing);
        ctx.zone = zone;
        ctx.fleet = fleet;
        admin = sg_admin_new(&ctx);   /* not serving: only the routes are used */
    }
    if (lines[0] == NULL || lines[1] == NULL)
        return 0;
    method = lines[0];
    target = lines[1];
    /* lws hands over a path that starts with '/'. */
    if (target[0] != '/')
        return 0;
    authorization = lines[2];
    allowed = sg_admin_token_ok(FUZZ_TOKEN, authorization);
    if (allowed) {
        /* Only "Bearer" (any case, RFC 7235), spaces, then the token. */
        const char *given = authorization + 7;

        if (g_ascii_strncasecmp(authorization, "Bearer ", 7) != 0)
            abort();
        while (*given == ' ')
            given++;
        if (!g_str_equal(given, FUZZ_TOKEN))
            abort();
    }
    sg_admin_answer(admin, method, target, authorization, "fuzz:1", &reply);
    if (reply.status < 200 || reply.status > 599 || reply.body == NULL)
        abort();
    if (!allowed && (reply.status != 401 || !reply.unauthorized))
        abort();
    if ((reply.status == 405) != (reply.allow != NULL))
        abort();
    g_free(reply.body);
    return 0;
}
