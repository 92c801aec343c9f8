/* SPDX-License-Identifier: Apache-2.0 */
/* session.c - the per-websocket state machine; the bytes are relay.c's.
 *
 * Owns: the token lookup handle, the upstream while it connects, the relay
 * (relay.c: both endpoints and the bytes between them), the timers. Must
 * not: block, keep a pointer to anything the listener frees before CLOSED,
 * or log a token. The websocket's framing and flow control are in
 * endpoint_ws.c, the SPICE server's socket I/O in endpoint_tcp.c.
 *
 * Session states
 *
 *   new --start--> AUTHORISING --target--> CONNECTING --connected--> RELAYING
 *    |                  | no/bad token          | unreachable,          | SPICE server
 *    | refuse           | backend down          | timeout               | closes
 *    v                  v                       v                       v
 *   CLOSING <-----------+-----------------------+------------------- DRAINING
 *    |                   (bad link, link timeout, text frame, shutdown  (flush what the
 *    |                    go to CLOSING from any state)                  browser is owed)
 *    v
 *   free (lws CLOSED; also when the browser goes away in any state)
 *
 * The SPICE link message is checked as soon as the browser sends it, in
 * whatever state the session is; bytes flow upstream only once it passed
 * and the connection is up. Every waiting state has a timer: the token
 * backend's own deadline (AUTHORISING), the connect timeout (CONNECTING),
 * and the link timeout until the link message arrives.
 */
#include "autoconfig.h"

#include <stdbool.h>
#include <string.h>

#include <glib.h>
#include <spice/protocol.h>

#include "endpoint_tcp.h"
#include "endpoint_ws.h"
#include "log.h"
#include "relay.h"
#include "session.h"
#include "spice_link.h"
#include "token.h"
#include "upstream.h"

typedef enum {
    SG_SESSION_NEW = 0,
    SG_SESSION_AUTHORISING,       /* waiting for the token backend */
    SG_SESSION_CONNECTING,        /* TCP connect to the SPICE server */
    SG_SESSION_RELAYING,
    SG_SESSION_DRAINING,          /* SPICE server gone; flushing to the browser */
    SG_SESSION_CLOSING,           /* close frame queued; waiting for lws */
} SgSessionState;

static const char *const state_names[] = {
    "new", "authorising", "connecting", "relaying", "draining", "closing",
};

#define SG_CLOSE_TABLE_ENTRY(name, code, text) [SG_CLOSE_##name] = { code, text },
static const struct {
    uint16_t code;
    const char *text;
} close_table[] = { SG_CLOSE_CODES(SG_CLOSE_TABLE_ENTRY) };
#undef SG_CLOSE_TABLE_ENTRY

struct SgSession {
    const SgSessionEnv *env;
    guint64 id;
    SgSessionState state;
    char *client;                 /* "addr:port" of the browser */
    char *token_tag;              /* sg_log_redact() of the token */
    char *target;                 /* "host:port" once known */
    const char *channel;          /* SPICE channel name once the link parsed */
    char *instance;               /* the backend's instance UUID, or NULL */
    uint32_t console;             /* SPICE connection id (see has_console) */
    bool has_console;
    SgSpiceMainScan *scan;        /* main channel: looking for the session id */
    bool open_deferred;           /* the open line waits for the scan */
    SgTokenLookup *lookup;
    SgUpstream *up;               /* while connecting; then the relay's back end */
    SgRelay *relay;               /* browser (front) <-> SPICE server (back) */
    SgEndpoint *ws;               /* the relay's front end: the browser's websocket */
    bool link_ok;
    bool opened;                  /* the "open" line was logged */
    guint link_timer;
    guint reply_timer;            /* the SPICE server's link reply is due */
    bool got_reply;               /* the SPICE server has said something */
    guint expiry_timer;           /* enforce_session_timeout */
    SgCloseReason reason;
    char *detail;                 /* extra words for the close line */
    gint64 started_us;
};

static guint64 next_session_id = 1;
static guint64 session_id_stride = 1;

void
sg_session_set_id_space(guint index, guint count)
{
    next_session_id = (guint64)index + 1;
    session_id_stride = MAX(count, 1);
}

uint16_t
sg_close_reason_code(SgCloseReason reason)
{
    return close_table[reason].code;
}

const char *
sg_close_reason_text(SgCloseReason reason)
{
    return close_table[reason].text;
}

#define sess_log(level, sess, fmt, ...)                                               \
    sg_log_session(level, &(SgLogSession){ .session = (sess)->id },                   \
                   "[s:%" G_GUINT64_FORMAT "] " fmt, (sess)->id, ##__VA_ARGS__)

static void end_scan(SgSession *sess);

static void
set_state(SgSession *sess, SgSessionState state)
{
    sess_log(G_LOG_LEVEL_DEBUG, sess, "%s -> %s", state_names[sess->state],
             state_names[state]);
    sess->state = state;
}

static void start_relay(SgSession *sess);
static const SgRelayEvents relay_events;

SgSession *
sg_session_new(const SgSessionEnv *env, struct lws *ws, const char *client)
{
    SgSession *sess = g_new0(SgSession, 1);

    sess->env = env;
    sess->id = next_session_id;
    next_session_id += session_id_stride;
    sess->client = g_strdup(client);
    sess->started_us = g_get_monotonic_time();
    sess->ws = sg_endpoint_ws_new(ws, client);
    sess->relay = sg_relay_new(sess->ws, sess->id, &relay_events, sess);
    /* Until the SPICE server has answered and, on a main channel, named
     * the console (scan_down()). */
    sg_relay_peek(sess->relay, true);
    sess->state = SG_SESSION_NEW;
    return sess;
}

/* The one line of a session that never opened. */
static void
log_refused(SgSession *sess, const char *reason, const char *detail)
{
    g_autofree char *full = g_strconcat(reason, detail ? ": " : "", detail, NULL);
    SgLogSession f = {
        .session = sess->id, .event = "refused", .client = sess->client,
        .token_tag = sess->token_tag ? sess->token_tag : "tok:-", .reason = full,
    };

    /* The detail goes after the quoted reason, as it always has. */
    sg_log_session(G_LOG_LEVEL_MESSAGE, &f, "[s:%" G_GUINT64_FORMAT "] refused client=%s %s "
                   "reason=\"%s\"%s%s", sess->id, f.client, f.token_tag, reason,
                   detail ? ": " : "", detail ? detail : "");
}

/* Ends the session with @reason: stops everything that could call back,
 * and has lws send the close frame from the next WRITEABLE. */
static void
close_with(SgSession *sess, SgCloseReason reason, const char *detail)
{
    char *new_detail;

    if (sess->state == SG_SESSION_CLOSING)
        return;
    /* A detail that only repeats the reason adds nothing to the log. It
     * may be sess->detail itself (from DRAINING): copy before freeing. */
    new_detail = (detail && !g_str_equal(detail, sg_close_reason_text(reason)))
                     ? g_strdup(detail)
                     : NULL;
    g_free(sess->detail);
    sess->detail = new_detail;
    detail = new_detail;
    sess->reason = reason;
    g_clear_pointer(&sess->lookup, sg_token_lookup_cancel);
    g_clear_pointer(&sess->up, sg_upstream_free);
    sg_relay_drop_back(sess->relay);
    g_clear_handle_id(&sess->link_timer, g_source_remove);
    g_clear_handle_id(&sess->reply_timer, g_source_remove);
    g_clear_handle_id(&sess->expiry_timer, g_source_remove);
    end_scan(sess);
    if (!sess->opened)
        log_refused(sess, sg_close_reason_text(reason), detail);
    set_state(sess, SG_SESSION_CLOSING);
    sg_endpoint_close(sess->ws, sg_close_reason_code(reason), sg_close_reason_text(reason));
}

void
sg_session_refuse(SgSession *sess, SgCloseReason reason, const char *detail)
{
    close_with(sess, reason, detail);
}

void
sg_session_shutdown(SgSession *sess)
{
    close_with(sess, SG_CLOSE_SHUTDOWN, NULL);
}

static gboolean
on_link_timeout(gpointer data)
{
    SgSession *sess = data;

    sess->link_timer = 0;
    close_with(sess, SG_CLOSE_LINK_TIMEOUT, NULL);
    return G_SOURCE_REMOVE;
}

/* The SPICE server took the connection and the link message but has not
 * answered within link_timeout: a hung server would otherwise hold the
 * session (two descriptors and its buffers) until lws' own 5 minutes. The
 * browser hears "console connect timed out": to a person the console could
 * not be reached; the log says what happened. */
static gboolean
on_reply_timeout(gpointer data)
{
    SgSession *sess = data;
    g_autofree char *why =
        g_strdup_printf("the SPICE server did not answer the link within %u s",
                        sess->env->link_timeout_s);

    sess->reply_timer = 0;
    close_with(sess, SG_CLOSE_CONNECT_TIMEOUT, why);
    return G_SOURCE_REMOVE;
}

/* Starts the wait for the server's link reply once the link can have been
 * sent: both the link checked and the connection up, whichever came last. */
static void
arm_reply_deadline(SgSession *sess)
{
    if (sess->reply_timer == 0 && !sess->got_reply && sess->link_ok &&
        sess->state == SG_SESSION_RELAYING)
        sess->reply_timer = g_timeout_add_seconds(sess->env->link_timeout_s, on_reply_timeout,
                                                  sess);
}

static gboolean
on_session_expired(gpointer data)
{
    SgSession *sess = data;

    sess->expiry_timer = 0;
    /* Unlike the browser-side states, a live console is cut at once: the
     * token's lifetime is the operator's policy (enforce_session_timeout). */
    g_clear_pointer(&sess->up, sg_upstream_free);
    sg_relay_drop_back(sess->relay);
    close_with(sess, SG_CLOSE_SESSION_EXPIRED, NULL);
    return G_SOURCE_REMOVE;
}

/* --- connecting ------------------------------------------------------------ */

static void
on_upstream_connected(SgUpstream *up, const GError *error, gpointer data)
{
    SgSession *sess = data;

    if (error != NULL) {
        SgCloseReason reason = g_error_matches(error, SG_UPSTREAM_ERROR,
                                               SG_UPSTREAM_ERROR_TIMEOUT)
                                   ? SG_CLOSE_CONNECT_TIMEOUT
                                   : SG_CLOSE_UNREACHABLE;

        /* The failed upstream is freed by close_with(); it is @up. */
        g_autofree char *detail = g_strdup_printf("target=%s: %s", sess->target,
                                                  error->message);

        close_with(sess, reason, detail);
        return;
    }
    g_free(sess->target);
    sess->target = g_strdup(sg_upstream_get_peer(up));
    set_state(sess, SG_SESSION_RELAYING);
    start_relay(sess);
}

static void
on_target(const SgConsoleTarget *tgt, const GError *error, gpointer data)
{
    SgSession *sess = data;

    sess->lookup = NULL;          /* the handle is freed after this callback */
    if (error != NULL) {
        SgCloseReason reason = SG_CLOSE_BAD_TOKEN;

        if (g_error_matches(error, SG_TOKEN_ERROR, SG_TOKEN_ERROR_UNAVAILABLE))
            reason = SG_CLOSE_TOKEN_UNAVAILABLE;
        else if (g_error_matches(error, SG_TOKEN_ERROR, SG_TOKEN_ERROR_REFUSED))
            reason = SG_CLOSE_TOKEN_REFUSED;
        close_with(sess, reason, error->message);
        return;
    }
    sess->instance = g_strdup(tgt->instance_uuid);
    sess->target = (strchr(tgt->host, ':') != NULL)
                       ? g_strdup_printf("[%s]:%u", tgt->host, tgt->port)
                       : g_strdup_printf("%s:%u", tgt->host, tgt->port);
    set_state(sess, SG_SESSION_CONNECTING);
    if (tgt->expires_at_us > 0) {
        gint64 left_ms = (tgt->expires_at_us - g_get_real_time()) / 1000;

        if (left_ms <= 0) {
            close_with(sess, SG_CLOSE_SESSION_EXPIRED, NULL);
            return;
        }
        sess->expiry_timer = g_timeout_add((guint)MIN(left_ms, G_MAXUINT), on_session_expired,
                                           sess);
    }
    sess->up = sg_upstream_connect(tgt->host, tgt->port, tgt->internal_access_path,
                                   sess->env->connect_timeout_s, on_upstream_connected, NULL,
                                   sess);
}

void
sg_session_start(SgSession *sess, const char *token)
{
    g_return_if_fail(sess->state == SG_SESSION_NEW);

    sess->token_tag = sg_log_redact(token);
    sess->link_timer = g_timeout_add_seconds(sess->env->link_timeout_s, on_link_timeout, sess);
    set_state(sess, SG_SESSION_AUTHORISING);
    sess->lookup = sg_token_lookup(sess->env->tokens, token, on_target, sess);
}

/* --- relaying ---------------------------------------------------------------- */

/* " console=N instance=UUID", each part only when known. */
static char *
console_words(SgSession *sess)
{
    GString *words = g_string_new(NULL);

    if (sess->has_console)
        g_string_append_printf(words, " console=%" G_GUINT32_FORMAT, sess->console);
    if (sess->instance != NULL)
        g_string_append_printf(words, " instance=%s", sess->instance);
    return g_string_free(words, FALSE);
}

static void
write_open_line(SgSession *sess)
{
    g_autofree char *words = console_words(sess);
    SgLogSession f = {
        .session = sess->id, .event = "open", .client = sess->client,
        .token_tag = sess->token_tag, .target = sess->target, .channel = sess->channel,
        .instance = sess->instance, .has_console = sess->has_console, .console = sess->console,
    };

    sess->opened = true;
    sg_log_session(G_LOG_LEVEL_MESSAGE, &f,
                   "[s:%" G_GUINT64_FORMAT "] open client=%s %s target=%s channel=%s%s",
                   sess->id, sess->client, sess->token_tag, sess->target, sess->channel, words);
}

/* The open line, once both the link and the connection are there. A main
 * channel's waits until the SPICE server has named the console (end_scan()),
 * normally a few milliseconds later, so that it carries console= too. */
static void
log_open(SgSession *sess)
{
    if (sess->opened || sess->open_deferred || !sess->link_ok ||
        sess->state != SG_SESSION_RELAYING)
        return;
    if (sess->scan != NULL) {
        sess->open_deferred = true;
        return;
    }
    write_open_line(sess);
}

/* The main channel's scan is over (found, given up, or the session ends):
 * the open line may go out. */
static void
end_scan(SgSession *sess)
{
    g_clear_pointer(&sess->scan, g_free);
    if (sess->open_deferred) {
        sess->open_deferred = false;
        write_open_line(sess);
    }
}

/* Off the relay path: runs only on a main channel's first reads from the
 * SPICE server, until MAIN_INIT has passed. @next_bypasses: the relay
 * splices the next read, past us. */
static void
scan_down(SgSession *sess, const guint8 *data, gsize len, bool next_bypasses)
{
    const char *why = NULL;
    uint32_t id = 0;

    switch (sg_spice_main_scan_feed(sess->scan, data, len, &id, &why)) {
    case SG_PARSE_OK:
        sess->console = id;
        sess->has_console = true;
        end_scan(sess);
        break;
    case SG_PARSE_INVALID:
        sess_log(G_LOG_LEVEL_DEBUG, sess, "no console id: %s", why);
        end_scan(sess);
        break;
    case SG_PARSE_AGAIN:
    default:
        /* A read large enough to splice the next one: the next bytes
         * would bypass us. Not seen before MAIN_INIT in practice. */
        if (next_bypasses) {
            sess_log(G_LOG_LEVEL_DEBUG, sess, "no console id: large reads before MAIN_INIT");
            end_scan(sess);
        }
        break;
    }
}

/* The SPICE server is gone: whatever the browser is still owed goes out,
 * then the websocket closes with @reason. */
static void
upstream_gone(SgSession *sess, SgCloseReason reason, const char *detail)
{
    g_clear_handle_id(&sess->reply_timer, g_source_remove);
    sg_relay_drop_back(sess->relay);
    if (sg_relay_front_drained(sess->relay)) {
        close_with(sess, reason, detail);
        return;
    }
    sess->reason = reason;
    g_free(sess->detail);
    sess->detail = g_strdup(detail);
    set_state(sess, SG_SESSION_DRAINING);
    /* The relay goes on writing to the browser and says drained(). */
}

static void
start_relay(SgSession *sess)
{
    /* The relay takes the connected socket over: its I/O is
     * endpoint_tcp.c's from here on. */
    SgEndpoint *back = sg_endpoint_tcp_new(g_steal_pointer(&sess->up));

    log_open(sess);
    arm_reply_deadline(sess);
    sg_relay_attach_back(sess->relay, back);
}

/* Checks the first bytes from the browser: a SPICE link message, or out. */
static bool
check_link(SgSession *sess, const guint8 *data, gsize len)
{
    SgSpiceLink link;
    gsize consumed = 0;
    const char *why = NULL;

    switch (sg_spice_link_parse(data, len, &link, &consumed, &why)) {
    case SG_PARSE_OK:
        sess->link_ok = true;
        sg_relay_hold(sess->relay, false);
        sess->channel = sg_spice_channel_name(link.channel_type);
        g_clear_handle_id(&sess->link_timer, g_source_remove);
        /* The console's id: other channels carry it in their link; the
         * main channel learns it from the server (scan_down()). */
        if (link.channel_type == SPICE_CHANNEL_MAIN) {
            sess->scan = g_new(SgSpiceMainScan, 1);
            sg_spice_main_scan_init(sess->scan, &link);
            sg_relay_peek(sess->relay, true);
        } else if (link.connection_id != 0) {
            sess->console = link.connection_id;
            sess->has_console = true;
        }
        sess_log(G_LOG_LEVEL_DEBUG, sess, "link ok: channel %s id %u", sess->channel,
                 link.channel_id);
        log_open(sess);
        arm_reply_deadline(sess);
        return true;
    case SG_PARSE_AGAIN:
        return true;
    case SG_PARSE_INVALID:
    default:
        close_with(sess, SG_CLOSE_BAD_LINK, why);
        return false;
    }
}

/* --- what the relay tells us ------------------------------------------------ */

static bool
on_relay_held(SgRelay *relay, const guint8 *bytes, gsize len, gpointer data)
{
    (void)relay;
    return check_link(data, bytes, len);
}

static void
on_relay_peek(SgRelay *relay, const guint8 *bytes, gsize len, bool next_bypasses,
              gpointer data)
{
    SgSession *sess = data;

    if (G_UNLIKELY(!sess->got_reply)) {
        sess->got_reply = true;
        g_clear_handle_id(&sess->reply_timer, g_source_remove);
    }
    if (sess->scan != NULL)
        scan_down(sess, bytes, len, next_bypasses);
    if (sess->scan == NULL)
        sg_relay_peek(relay, false);
}

static void
on_relay_lost(SgRelay *relay, SgRelayEnd end, const char *detail, gpointer data)
{
    SgSession *sess = data;

    (void)relay;
    if (end == SG_RELAY_BACK)
        upstream_gone(sess, SG_CLOSE_TARGET_CLOSED, detail);
    else
        close_with(sess, SG_CLOSE_CLIENT_CLOSED, detail);
}

static void
on_relay_overflow(SgRelay *relay, const char *detail, gpointer data)
{
    (void)relay;
    close_with(data, SG_CLOSE_INTERNAL, detail);
}

/* DRAINING: lws has flushed the last frame; say goodbye on the next
 * WRITEABLE. */
static void
on_relay_drained(SgRelay *relay, gpointer data)
{
    SgSession *sess = data;

    (void)relay;
    if (sess->state == SG_SESSION_DRAINING)
        close_with(sess, sess->reason, sess->detail);
}

static const SgRelayEvents relay_events = {
    .held = on_relay_held,
    .peek = on_relay_peek,
    .lost = on_relay_lost,
    .overflow = on_relay_overflow,
    .drained = on_relay_drained,
};

/* --- lws events -------------------------------------------------------------- */

void
sg_session_on_receive(SgSession *sess, const void *data, size_t len, bool binary)
{
    if (sess->state == SG_SESSION_CLOSING || sess->state == SG_SESSION_DRAINING)
        return;                   /* nothing more goes upstream */
    if (!binary) {
        close_with(sess, SG_CLOSE_TEXT_FRAME, NULL);
        return;
    }
    sg_endpoint_ws_on_receive(sess->ws, data, len);
}

int
sg_session_on_writeable(SgSession *sess)
{
    if (sess->state == SG_SESSION_RELAYING || sess->state == SG_SESSION_DRAINING ||
        sess->state == SG_SESSION_CLOSING)
        return sg_endpoint_ws_on_writeable(sess->ws);
    return 0;
}

void
sg_session_free(SgSession *sess)
{
    if (sess == NULL)
        return;
    if (sess->state != SG_SESSION_CLOSING)
        sess->reason = SG_CLOSE_CLIENT_CLOSED;
    end_scan(sess);
    if (sess->opened) {
        double secs = (double)(g_get_monotonic_time() - sess->started_us) / G_USEC_PER_SEC;
        g_autofree char *words = console_words(sess);
        g_autofree char *reason = g_strconcat(sg_close_reason_text(sess->reason),
                                              sess->detail ? ": " : "", sess->detail, NULL);
        SgLogSession f = {
            .session = sess->id, .event = "close", .client = sess->client,
            .token_tag = sess->token_tag, .target = sess->target, .channel = sess->channel,
            .instance = sess->instance, .has_console = sess->has_console,
            .console = sess->console, .reason = reason, .has_totals = true,
            .duration_s = secs, .bytes_up = sg_relay_bytes_to(sess->relay, SG_RELAY_BACK),
            .bytes_down = sg_relay_bytes_to(sess->relay, SG_RELAY_FRONT),
        };

        sg_log_session(G_LOG_LEVEL_MESSAGE, &f,
                       "[s:%" G_GUINT64_FORMAT "] close client=%s %s target=%s channel=%s%s "
                       "duration=%.3fs up=%" G_GUINT64_FORMAT " down=%" G_GUINT64_FORMAT
                       " reason=\"%s\"%s%s",
                       sess->id, sess->client, sess->token_tag, sess->target, sess->channel,
                       words, secs, f.bytes_up, f.bytes_down,
                       sg_close_reason_text(sess->reason), sess->detail ? ": " : "",
                       sess->detail ? sess->detail : "");
    } else if (sess->state != SG_SESSION_CLOSING) {
        log_refused(sess, "browser left", NULL);
    }
    g_clear_pointer(&sess->lookup, sg_token_lookup_cancel);
    g_clear_pointer(&sess->up, sg_upstream_free);
    g_clear_handle_id(&sess->link_timer, g_source_remove);
    g_clear_handle_id(&sess->reply_timer, g_source_remove);
    g_clear_handle_id(&sess->expiry_timer, g_source_remove);
    sg_relay_free(sess->relay);
    g_free(sess->client);
    g_free(sess->token_tag);
    g_free(sess->target);
    g_free(sess->instance);
    g_free(sess->detail);
    g_free(sess);
}
