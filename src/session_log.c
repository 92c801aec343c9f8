/* SPDX-License-Identifier: Apache-2.0 */
/* session_log.c - the open, close and refused lines, from the hub's events.
 *
 * Owns nothing but the wording. Must not: log a token (only the tag the
 * session gave the hub), or add lines per byte or per state (state
 * changes are session.c's debug lines).
 */
#include "autoconfig.h"

#include <glib.h>

#include "hub.h"
#include "log.h"
#include "session_log.h"

/* " console=N instance=UUID", each part only when known. */
static char *
console_words(const SgHubFacts *f)
{
    GString *words = g_string_new(NULL);

    if (f->has_console)
        g_string_append_printf(words, " console=%" G_GUINT32_FORMAT, f->console);
    if (f->instance != NULL)
        g_string_append_printf(words, " instance=%s", f->instance);
    return g_string_free(words, FALSE);
}

static void
on_opened(const SgHubSession *s, gpointer data)
{
    const SgHubFacts *f = &s->facts;
    g_autofree char *words = console_words(f);
    SgLogSession fields = {
        .session = s->id, .event = "open", .client = s->client,
        .token_tag = f->token_tag, .target = f->target, .channel = f->channel,
        .instance = f->instance, .has_console = f->has_console, .console = f->console,
    };

    (void)data;
    sg_log_session(G_LOG_LEVEL_MESSAGE, &fields,
                   "[s:%" G_GUINT64_FORMAT "] open client=%s %s target=%s channel=%s%s",
                   s->id, s->client, f->token_tag, f->target, f->channel, words);
}

/* The one line of a session that never opened. */
static void
log_refused(const SgHubSession *s)
{
    const SgHubFacts *f = &s->facts;
    g_autofree char *full = g_strconcat(f->reason_text, f->detail ? ": " : "", f->detail, NULL);
    SgLogSession fields = {
        .session = s->id, .event = "refused", .client = s->client,
        .token_tag = f->token_tag ? f->token_tag : "tok:-", .reason = full,
    };

    /* The detail goes after the quoted reason, as it always has. */
    sg_log_session(G_LOG_LEVEL_MESSAGE, &fields, "[s:%" G_GUINT64_FORMAT "] refused client=%s %s "
                   "reason=\"%s\"%s%s", s->id, fields.client, fields.token_tag, f->reason_text,
                   f->detail ? ": " : "", f->detail ? f->detail : "");
}

static void
on_closed(const SgHubSession *s, gpointer data)
{
    const SgHubFacts *f = &s->facts;
    double secs;
    g_autofree char *words = NULL;
    g_autofree char *reason = NULL;

    (void)data;
    if (!s->opened) {
        log_refused(s);
        return;
    }
    secs = (double)(g_get_monotonic_time() - s->started_us) / G_USEC_PER_SEC;
    words = console_words(f);
    reason = g_strconcat(f->reason_text, f->detail ? ": " : "", f->detail, NULL);
    {
        SgLogSession fields = {
            .session = s->id, .event = "close", .client = s->client,
            .token_tag = f->token_tag, .target = f->target, .channel = f->channel,
            .instance = f->instance, .has_console = f->has_console,
            .console = f->console, .reason = reason, .has_totals = true,
            .duration_s = secs, .bytes_up = s->bytes_up, .bytes_down = s->bytes_down,
        };

        sg_log_session(G_LOG_LEVEL_MESSAGE, &fields,
                       "[s:%" G_GUINT64_FORMAT "] close client=%s %s target=%s channel=%s%s "
                       "duration=%.3fs up=%" G_GUINT64_FORMAT " down=%" G_GUINT64_FORMAT
                       " reason=\"%s\"%s%s",
                       s->id, s->client, f->token_tag, f->target, f->channel, words, secs,
                       s->bytes_up, s->bytes_down, f->reason_text, f->detail ? ": " : "",
                       f->detail ? f->detail : "");
    }
}

guint
sg_session_log_attach(SgHub *hub)
{
    static const SgHubObserver observer = {
        .opened = on_opened,
        .closed = on_closed,
    };

    return sg_hub_add_observer(hub, &observer, NULL);
}
