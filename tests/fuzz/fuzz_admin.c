/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_admin.c - libFuzzer target for the admin API's request parser and
 * router: the bytes an admin client sends, up to the answer.
 *
 * The input is a request as it arrives on the admin port. Besides crashes,
 * it checks admin.h's promises: AGAIN only before the blank line and under
 * SG_ADMIN_MAX_REQUEST, INVALID always with a reason, a parsed request
 * always with a method and a target, the bearer check true only for the
 * right token (after "Bearer" in any case), and every answer a real HTTP
 * status. A parsed request is routed against a process with no sessions
 * (a local fleet over an empty hub), so that paths, queries and ids reach
 * the code that reads them. Its first minute of libFuzzer found a request
 * with nothing before the blank line reaching g_strsplit(NULL).
 */
#define _GNU_SOURCE 1             /* memmem() */
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
    g_autofree char *method = NULL;
    g_autofree char *target = NULL;
    g_autofree char *authorization = NULL;
    const char *reason = NULL;
    SgAdminReply reply;
    SgParseResult r;

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
        admin = sg_admin_new(-1, &ctx);   /* no socket: only the router is used */
    }
    r = sg_admin_parse_request((const char *)data, size, &method, &target, &authorization,
                               &reason);
    if (r == SG_PARSE_INVALID && reason == NULL)
        abort();
    if (r == SG_PARSE_AGAIN &&
        (size >= SG_ADMIN_MAX_REQUEST || memmem(data, size, "\r\n\r\n", 4) != NULL))
        abort();
    if (r != SG_PARSE_OK)
        return 0;
    if (method == NULL || target == NULL || target[0] != '/')
        abort();
    if (sg_admin_token_ok(FUZZ_TOKEN, authorization)) {
        /* Only "Bearer" (any case, RFC 7235), spaces, then the token. */
        const char *given = authorization + 7;

        if (g_ascii_strncasecmp(authorization, "Bearer ", 7) != 0)
            abort();
        while (*given == ' ')
            given++;
        if (!g_str_equal(given, FUZZ_TOKEN))
            abort();
    }
    sg_admin_route(admin, method, target, &reply);
    if (reply.status < 200 || reply.status > 599)
        abort();
    g_free(reply.body);
    return 0;
}
