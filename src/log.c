/* SPDX-License-Identifier: Apache-2.0 */
/* log.c - redaction of secrets and the libwebsockets log bridge.
 *
 * Owns no state beyond lws' global log level. Must never format a token.
 */
#include "autoconfig.h"

#include <stdbool.h>
#include <string.h>

#include <glib.h>
#include <libwebsockets.h>

#include "log.h"

char *
sg_log_redact(const char *secret)
{
    g_autofree char *digest = NULL;

    if (secret == NULL)
        return g_strdup("tok:-");
    digest = g_compute_checksum_for_string(G_CHECKSUM_SHA256, secret, -1);
    return g_strdup_printf("tok:%.8s", digest);
}

static void
on_lws_log(int level, const char *line)
{
    g_autofree char *trimmed = g_strchomp(g_strdup(line));

    /* lws prefixes its lines with a timestamp we do not need twice. */
    if (level & LLL_ERR)
        g_warning("lws: %s", trimmed);
    else if (level & LLL_WARN)
        g_message("lws: %s", trimmed);
    else
        g_debug("lws: %s", trimmed);
}

void
sg_log_setup_lws(bool verbose)
{
    int levels = LLL_ERR | LLL_WARN;

    if (verbose)
        levels |= LLL_NOTICE | LLL_INFO;
    lws_set_log_level(levels, on_lws_log);
}

void
sg_log_enable_debug(void)
{
    const char *current = g_getenv("G_MESSAGES_DEBUG");
    g_autofree char *domains = NULL;

    /* Only our own domain: GLib's and GIO's debug output would bury ours.
     * G_MESSAGES_DEBUG=all still shows everything. */
    if (current != NULL && current[0] != '\0')
        domains = g_strconcat(current, " ", G_LOG_DOMAIN, NULL);
    else
        domains = g_strdup(G_LOG_DOMAIN);
    g_setenv("G_MESSAGES_DEBUG", domains, TRUE);
}
