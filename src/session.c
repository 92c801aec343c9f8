/* SPDX-License-Identifier: Apache-2.0 */
/* session.c - the per-websocket state machine; the bytes are relay.c's.
 *
 * Owns: the token lookup handle, the upstream while it connects, the relay
 * (relay.c: both endpoints and the bytes between them), its timers. Must
 * not: block, keep a pointer to anything the listener frees before CLOSED,
 * or log a token. The websocket's framing and flow control are in
 * endpoint_ws.c, the SPICE server's socket I/O in endpoint_tcp.c (or
 * endpoint_tls.c: [spice] tls).
 *
 * Session states (the legal moves are one table, session_state.c)
 *
 *   NEW --start--> AUTHORISING --target and link--> CONNECTING --connected--> LINKING
 *    |                  | no/bad token,                 | unreachable,          | link sent
 *    | refuse           | backend down,                 | timeout               | and answered
 *    |                  | channel refused               |                       v
 *    |                  |                               |                    RELAYING --idle--+
 *    |                  |                               |                       | SPICE server |
 *    |                  |                               |                       | closes       |
 *    v                  v                               v                       v              |
 *   CLOSING <-----------+-------------------------------+------------------- DRAINING         |
 *    |  ^                (bad link, link timeout, text frame, shutdown,       (flush what the |
 *    |  +-----------------expiry go to CLOSING from any state)                 browser is owed)
 *    v
 *   free (lws CLOSED; also when the browser goes away in any state)
 *
 * A token that its backend revokes once it has led somewhere (token.h's
 * watches: Nova no longer knows it) goes to CLOSING from any state too.
 *
 * The SPICE link message is checked as soon as the browser sends it (a
 * bad one is refused at once, and so is a channel type that [spice]
 * channels does not allow: 4403) and waits in the upload buffer. The
 * connection to the SPICE server is opened only once both the token's
 * target and an allowed link are there (connect_when_ready()): a refused
 * channel, or a websocket that never sends a link, costs the SPICE server
 * nothing, not even a TCP connection, so its log and QEMU's events show
 * nothing of it (spice-server reports every accepted connection to QEMU,
 * SPICE_CONNECTED). The price is the connect's round trip after the link
 * instead of beside it: on the network between proxy and compute hosts,
 * well under a millisecond, against the browser's own round trip that
 * brings the link. The link goes to the SPICE server in LINKING, and
 * nothing else goes before it. LINKING ends when the server has answered.
 * Every waiting state has a deadline:
 *
 *   AUTHORISING  the token backend's own: [nova] timeout (a file answers at
 *                once); and link_timeout for the browser's link (4408)
 *   CONNECTING   upstream.c's: connect_timeout (4504), the TLS handshake and
 *                certificate check included ([spice] tls)
 *   LINKING      link_timeout for the SPICE server to answer the link (4504);
 *                with [spice] tls = auto, a NEED_SECURED answer's reconnect to
 *                the TLS port happens inside it (its connect under
 *                connect_timeout too)
 *   RELAYING     idle_timeout when set: no byte either way on any channel of
 *                the console (4408, "idle")
 *   DRAINING,    close_timeout for the browser to take what it is owed, the
 *   CLOSING      close frame included; then spicegate hangs up
 *
 * At start, before the token lookup, the session takes its [limits]
 * counts (session_limits.h) or is refused with 4429; it gives them back
 * in sg_session_free(), whatever ended it.
 * Across LINKING and RELAYING, with ping_interval set, a keepalive tick
 * sends the browser a ping every interval (a load balancer or NAT that
 * cuts quiet connections sees traffic both ways: the ping and its pong)
 * and closes the session (4408, "no answer to pings") once
 * SG_PING_MISSES ticks in a row heard nothing from the browser, neither
 * data nor a pong.
 *
 * Before the upgrade, lws holds the connection under handshake_timeout
 * (listener.c); at stop, the listener waits shutdown_timeout for CLOSING
 * sessions.
 */
#include "autoconfig.h"

#include <stdbool.h>
#include <string.h>

#include <glib.h>
#include <spice/protocol.h>

#include "endpoint_link_guard.h"
#include "endpoint_tls.h"
#include "endpoint_ws.h"
#include "event_core.h"
#include "hub.h"
#include "log.h"
#include "relay.h"
#include "session.h"
#include "session_state.h"
#include "spice_link.h"
#include "token.h"
#include "upstream.h"

/* Keepalive ticks in a row that heard nothing from the browser before its
 * session is closed: a browser that vanished (no FIN: its machine slept,
 * its network went) is let go between 3 and 4 ping intervals after it was
 * last heard, and a single pong lost or late (a busy tab, a slow network)
 * closes nothing. */
#define SG_PING_MISSES 3

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
    SgTokenWatch *watch;          /* from the token's lookup until the end: revocation */
    SgUpstream *up;               /* while connecting; then the relay's back end */
    SgConsoleTarget *tgt;         /* where the token leads: ports for TLS ([spice] tls) */
    SgEndpoint *guard;            /* auto: the guard that asked for the TLS port
                                   * (endpoint_link_guard.h), while reconnecting;
                                   * the relay owns it */
    bool reconnecting;            /* auto: connecting to the TLS port for the guard */
    SgRelay *relay;               /* browser (front) <-> SPICE server (back) */
    SgEndpoint *ws;               /* the relay's front end: the browser's websocket */
    bool opened;                  /* the "open" line was logged */
    SgTimer *deadline;            /* the current state's (arm_deadline()) */
    gint64 drain_until_us;        /* DRAINING's deadline, which CLOSING keeps */
    guint64 idle_moved;           /* RELAYING: bytes_up + bytes_down at the last tick */
    guint idle_quiet_s;           /* RELAYING: seconds of ticks that saw none move */
    bool got_reply;               /* the SPICE server has said something */
    SgTimer *keepalive;           /* LINKING, RELAYING: ping_interval's tick */
    guint64 ka_heard;             /* the websocket's heard count at the last tick */
    guint ka_missed;              /* ticks in a row that heard nothing */
    SgTimer *expiry_timer;        /* enforce_session_timeout */
    SgCloseReason reason;
    char *detail;                 /* extra words for the close line */
    gint64 started_us;
    SgHubEntry *hub_entry;        /* our place in the hub, until sg_session_free() */
    SgLimitsHold limits_hold;     /* [limits] counts, from start until sg_session_free() */
};

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

/* The relay frees its back end (the guard with it, if any). */
static void
drop_back(SgSession *sess)
{
    sess->guard = NULL;
    sg_relay_drop_back(sess->relay);
}
static void arm_deadline(SgSession *sess);
static void keep_alive(SgSession *sess, SgSessionState state);
static guint64 bytes_moved(const SgSession *sess);

/* What the hub (and through it the log and every other observer) knows
 * of the session: filled afresh at each turning point. */
static SgHubFacts
facts_of(const SgSession *sess)
{
    return (SgHubFacts){
        .state = sg_session_state_name(sess->state), .token_tag = sess->token_tag,
        .instance = sess->instance, .target = sess->target, .channel = sess->channel,
        .has_console = sess->has_console, .console = sess->console,
        .reason = sess->reason, .reason_text = sg_close_reason_text(sess->reason),
        .detail = sess->detail,
    };
}

/* Every move goes through the table (session_state.c): an illegal one is
 * logged as a bug and made anyway, so that the session still ends. */
static void
set_state(SgSession *sess, SgSessionState state)
{
    SgSessionState from = sess->state;
    SgHubFacts facts;

    sg_session_state_check_move(sess->id, from, state);
    sess_log(G_LOG_LEVEL_DEBUG, sess, "%s -> %s", sg_session_state_name(from),
             sg_session_state_name(state));
    sess->state = state;
    facts = facts_of(sess);
    sg_hub_note_state(sess->hub_entry, &facts, sg_session_state_name(from));
    arm_deadline(sess);
    keep_alive(sess, state);
}

static void start_relay(SgSession *sess);
static const SgRelayEvents relay_events;

SgSession *
sg_session_new(const SgSessionEnv *env, struct lws *ws, const char *client)
{
    SgSession *sess = g_new0(SgSession, 1);

    sess->env = env;
    sess->ws = sg_endpoint_ws_new(ws, client);
    sess->relay = sg_relay_new(sess->ws, &relay_events, sess);
    /* The hub reads the relay's byte counters, which live as long as we do. */
    sess->hub_entry = sg_hub_add(env->hub, sess, client,
                                 sg_relay_bytes_counter(sess->relay, SG_RELAY_BACK),
                                 sg_relay_bytes_counter(sess->relay, SG_RELAY_FRONT));
    sess->id = sg_hub_entry_get_id(sess->hub_entry);
    sg_relay_set_log_id(sess->relay, sess->id);
    /* Until the SPICE server has answered and, on a main channel, named
     * the console (scan_down()). */
    sg_relay_peek(sess->relay, true);
    sess->client = g_strdup(client);
    sess->started_us = g_get_monotonic_time();
    sess->state = SG_SESSION_NEW;
    return sess;
}

/* The one teardown: stops everything that could call back into @sess (the
 * token lookup, the SPICE server's connection while it connects, every
 * timer) and ends the main channel's scan, which may write the open line
 * it held back. The relay's back end (the SPICE server's connection, its
 * watch, a queued upload flush) goes in close_with(), and everything of
 * the relay in sg_session_free(). Running it twice is harmless. */
static void
stop_activities(SgSession *sess)
{
    g_clear_pointer(&sess->lookup, sg_token_lookup_cancel);
    g_clear_pointer(&sess->watch, sg_token_watch_cancel);
    g_clear_pointer(&sess->up, sg_upstream_free);
    g_clear_pointer(&sess->deadline, sg_timer_remove);
    g_clear_pointer(&sess->keepalive, sg_timer_remove);
    g_clear_pointer(&sess->expiry_timer, sg_timer_remove);
    end_scan(sess);
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
    stop_activities(sess);
    drop_back(sess);
    set_state(sess, SG_SESSION_CLOSING);
    if (!sess->opened) {
        /* Refused before it opened: its one line goes out now (the
         * "refused" line of session_log.c), not when lws lets go. */
        SgHubFacts facts = facts_of(sess);

        sg_hub_note_close(sess->hub_entry, &facts);
    }
    /* The close frame goes out from the next WRITEABLE. */
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

bool
sg_session_close(SgSession *sess, SgCloseReason reason)
{
    if (sess->state == SG_SESSION_CLOSING)
        return false;
    close_with(sess, reason, NULL);
    return true;
}

/* --- deadlines ------------------------------------------------------------- */

/* The browser's link message has passed (it waits in the relay, held,
 * until LINKING sends it). */
static bool
have_link(const SgSession *sess)
{
    return sess->channel != NULL;
}

/* LINKING is over once the browser's link passed (and so goes out first)
 * and the SPICE server has said something: called on either event. */
static void
end_linking(SgSession *sess)
{
    if (sess->state == SG_SESSION_LINKING && have_link(sess) && sess->got_reply)
        set_state(sess, SG_SESSION_RELAYING);
}

/* AUTHORISING: no link message from the browser within link_timeout of
 * the websocket's start. LINKING: the SPICE server took the connection
 * and the link but has not answered within link_timeout (a hung server
 * would otherwise hold the session, two descriptors and its buffers, for
 * good); the browser hears "console connect timed out": to a person the
 * console could not be reached; the log says what happened. */
static gboolean
on_link_deadline(gpointer data)
{
    SgSession *sess = data;

    sess->deadline = NULL;
    if (!have_link(sess)) {
        close_with(sess, SG_CLOSE_LINK_TIMEOUT, NULL);
    } else {
        g_autofree char *why =
            g_strdup_printf("the SPICE server did not answer the link within %u s",
                            sess->env->link_timeout_s);

        close_with(sess, SG_CLOSE_CONNECT_TIMEOUT, why);
    }
    return G_SOURCE_REMOVE;
}

/* RELAYING with idle_timeout: a tick of a quarter of it (at least a
 * second) looks whether any byte of the console moved since the last
 * (console_bytes_moved()); the session closes once ticks worth
 * idle_timeout saw none. So it closes between idle_timeout and
 * idle_timeout plus a tick (and a second of timer grouping) after the
 * console's last byte, and the relay itself does no bookkeeping for it. */
static guint
idle_tick_s(const SgSessionEnv *env)
{
    return MAX(env->idle_timeout_s / 4, 1);
}

static void
add_bytes(const SgHubSession *s, gpointer data)
{
    guint64 *sum = data;

    *sum += s->bytes_up + s->bytes_down;
}

/* idle_timeout is about the console, not one of its channels: someone
 * watching a video moves no byte on the inputs channel, someone typing
 * into a still screen none on the display's. So a channel is idle only
 * while every websocket of its console (its token's tag, as the hub finds
 * a console) is: what the tick compares is their sum. A channel that
 * comes or goes changes the sum, and counts as activity. */
static guint64
console_bytes_moved(const SgSession *sess)
{
    guint64 sum = 0;

    if (sess->token_tag == NULL ||
        sg_hub_find_by(sess->env->hub, SG_HUB_BY_TOKEN_TAG, sess->token_tag, add_bytes,
                       &sum) == 0)
        return bytes_moved(sess);
    return sum;
}

static gboolean
on_idle_tick(gpointer data)
{
    SgSession *sess = data;
    guint64 moved = console_bytes_moved(sess);

    if (moved != sess->idle_moved) {
        sess->idle_moved = moved;
        sess->idle_quiet_s = 0;
        return G_SOURCE_CONTINUE;
    }
    sess->idle_quiet_s += idle_tick_s(sess->env);
    if (sess->idle_quiet_s < sess->env->idle_timeout_s)
        return G_SOURCE_CONTINUE;
    sess->deadline = NULL;
    {
        g_autofree char *why = g_strdup_printf("no byte either way for %u s (idle_timeout)",
                                               sess->env->idle_timeout_s);

        close_with(sess, SG_CLOSE_IDLE, why);
    }
    return G_SOURCE_REMOVE;
}

/* ping_interval's tick (one timer per session, one wakeup per interval;
 * the relay does no bookkeeping for it): a ping every interval, whatever
 * else moves, so that the longest silence a load balancer sees is one
 * interval (pinging only sessions that were quiet for a whole interval
 * would let silences of up to two through); and the session ends once
 * SG_PING_MISSES ticks in a row heard nothing from the browser. While its
 * reads are paused (the SPICE server does not take its uploads) nothing
 * can be heard, pongs included: that counts as heard, and the paused
 * reads have a check of their own (endpoint_ws.c). */
static gboolean
on_keepalive_tick(gpointer data)
{
    SgSession *sess = data;
    guint64 heard = sg_endpoint_ws_heard(sess->ws);

    if (heard != sess->ka_heard || sg_endpoint_ws_deaf(sess->ws)) {
        sess->ka_heard = heard;
        sess->ka_missed = 0;
    } else if (++sess->ka_missed >= SG_PING_MISSES) {
        g_autofree char *why =
            g_strdup_printf("nothing from the browser for %u pings, %u s apart (ping_interval)",
                            SG_PING_MISSES, sess->env->ping_interval_s);

        sess->keepalive = NULL;
        close_with(sess, SG_CLOSE_PING_TIMEOUT, why);
        return G_SOURCE_REMOVE;
    }
    sg_endpoint_ws_ping(sess->ws);
    return G_SOURCE_CONTINUE;
}

/* The keepalive runs while the session relays or links (the browser's
 * websocket and the SPICE server's connection are both up), from the
 * move to LINKING until the move out of RELAYING; the waits before it are
 * short and have deadlines of their own. */
static void
keep_alive(SgSession *sess, SgSessionState state)
{
    const SgSessionEnv *env = sess->env;

    if (state != SG_SESSION_LINKING && state != SG_SESSION_RELAYING) {
        g_clear_pointer(&sess->keepalive, sg_timer_remove);
        return;
    }
    if (sess->keepalive != NULL || env->ping_interval_s == 0)
        return;
    sess->ka_heard = sg_endpoint_ws_heard(sess->ws);
    sess->ka_missed = 0;
    sess->keepalive = sg_timer_add(env->ping_interval_s * 1000, on_keepalive_tick, sess);
}

/* DRAINING or CLOSING past close_timeout: the browser does not take what
 * it is owed, the close frame included (it stopped reading, or its network
 * did). Neither can go out, so spicegate hangs up: lws drops the
 * connection at once, without a close frame (the browser sees 1006), and
 * the close line keeps the session's reason. */
static gboolean
on_drain_deadline(gpointer data)
{
    SgSession *sess = data;
    g_autofree char *why = g_strdup_printf("%s%shung up: the browser did not take the rest "
                                           "within %u s (close_timeout)",
                                           sess->detail ? sess->detail : "",
                                           sess->detail ? "; " : "",
                                           sess->env->close_timeout_s);

    sess->deadline = NULL;
    sess_log(G_LOG_LEVEL_DEBUG, sess, "hanging up in %s: the browser is not reading",
             sg_session_state_name(sess->state));
    if (sess->state != SG_SESSION_CLOSING) {
        close_with(sess, sess->reason, why);
    } else {
        g_free(sess->detail);
        sess->detail = g_steal_pointer(&why);
    }
    g_clear_pointer(&sess->deadline, sg_timer_remove);
    sg_endpoint_abort(sess->ws);
    return G_SOURCE_REMOVE;
}

/* Arms the deadline of the state just entered (see the table at the top).
 * AUTHORISING and CONNECTING have theirs in the token backend and in
 * upstream.c, which own those waits. */
static void
arm_deadline(SgSession *sess)
{
    const SgSessionEnv *env = sess->env;

    g_clear_pointer(&sess->deadline, sg_timer_remove);
    switch (sess->state) {
    case SG_SESSION_AUTHORISING:
        /* The browser's link; the token backend's wait has its own. */
        if (!have_link(sess))
            sess->deadline = sg_timer_add(env->link_timeout_s * 1000, on_link_deadline, sess);
        break;
    case SG_SESSION_LINKING:
        sess->deadline = sg_timer_add(env->link_timeout_s * 1000, on_link_deadline, sess);
        break;
    case SG_SESSION_RELAYING:
        if (env->idle_timeout_s > 0) {
            sess->idle_moved = console_bytes_moved(sess);
            sess->idle_quiet_s = 0;
            sess->deadline = sg_timer_add(idle_tick_s(env) * 1000, on_idle_tick, sess);
        }
        break;
    case SG_SESSION_DRAINING:
        sess->drain_until_us = g_get_monotonic_time() + env->close_timeout_s * G_USEC_PER_SEC;
        /* fall through */
    case SG_SESSION_CLOSING: {
        /* From DRAINING, the close frame gets what is left of its time. */
        gint64 left_us = sess->drain_until_us != 0
                             ? MAX(sess->drain_until_us - g_get_monotonic_time(), 0)
                             : (gint64)env->close_timeout_s * G_USEC_PER_SEC;

        sess->deadline = sg_timer_add((guint)(left_us / 1000), on_drain_deadline, sess);
        break;
    }
    case SG_SESSION_NEW:
    case SG_SESSION_CONNECTING:
    case SG_SESSION_N_STATES:
    default:
        break;
    }
}

static gboolean
on_session_expired(gpointer data)
{
    SgSession *sess = data;

    sess->expiry_timer = NULL;
    /* Unlike the browser-side states, a live console is cut at once: the
     * token's lifetime is the operator's policy (enforce_session_timeout). */
    g_clear_pointer(&sess->up, sg_upstream_free);
    drop_back(sess);
    close_with(sess, SG_CLOSE_SESSION_EXPIRED, NULL);
    return G_SOURCE_REMOVE;
}

/* The token backend revoked our token (with Nova: the console's instance
 * was deleted; [nova] revalidate_interval): like an expiry, the console
 * is cut at once, in whatever state the session is. */
static void
on_token_revoked(SgTokenWatch *watch, const char *detail, gpointer data)
{
    SgSession *sess = data;

    (void)watch;
    sess->watch = NULL;           /* freed when we return */
    close_with(sess, SG_CLOSE_TOKEN_REVOKED, detail);
}

/* --- connecting ------------------------------------------------------------ */

static void
on_upstream_connected(SgUpstream *up, const GError *error, gpointer data)
{
    SgSession *sess = data;

    if (error != NULL) {
        SgCloseReason reason = SG_CLOSE_UNREACHABLE;

        if (g_error_matches(error, SG_UPSTREAM_ERROR, SG_UPSTREAM_ERROR_TIMEOUT))
            reason = SG_CLOSE_CONNECT_TIMEOUT;
        else if (g_error_matches(error, SG_UPSTREAM_ERROR, SG_UPSTREAM_ERROR_TLS))
            reason = SG_CLOSE_UPSTREAM_TLS;
        /* The failed upstream is freed by close_with(); it is @up. */
        g_autofree char *detail = g_strdup_printf("target=%s: %s", sess->target,
                                                  error->message);

        close_with(sess, reason, detail);
        return;
    }
    g_free(sess->target);
    sess->target = g_strdup(sg_upstream_get_peer(up));
    if (sess->reconnecting) {
        /* auto: the TLS port takes over from the plain one, in LINKING. */
        g_autofree char *how = sg_tls_describe(sg_upstream_get_ssl(up));

        sess->reconnecting = false;
        sess_log(G_LOG_LEVEL_DEBUG, sess, "TLS to %s: %s, certificate verified; replaying "
                 "the link", sess->target, how);
        sg_endpoint_link_guard_switch(g_steal_pointer(&sess->guard),
                                      sg_upstream_into_endpoint(g_steal_pointer(&sess->up)));
        return;
    }
    if (sg_upstream_get_ssl(up) != NULL) {
        g_autofree char *how = sg_tls_describe(sg_upstream_get_ssl(up));

        sess_log(G_LOG_LEVEL_DEBUG, sess, "TLS to %s: %s, certificate verified", sess->target,
                 how);
    }
    set_state(sess, SG_SESSION_LINKING);
    start_relay(sess);
}

static char *
format_target(const char *host, guint16 port)
{
    return strchr(host, ':') != NULL ? g_strdup_printf("[%s]:%u", host, port)
                                     : g_strdup_printf("%s:%u", host, port);
}

/* Connects to @port of the target, over TLS when @tls. Returns false
 * when the session was closed instead. */
static bool
connect_to(SgSession *sess, guint16 port, bool tls)
{
    const SgConsoleTarget *tgt = sess->tgt;

    g_free(sess->target);
    sess->target = format_target(tgt->host, port);
    if (tls && sess->env->spice_tls_client == NULL) {
        /* Never "trust anything": no CA, no TLS. */
        close_with(sess, SG_CLOSE_UPSTREAM_TLS,
                   "the SPICE server needs TLS and [spice] ca_file is not set");
        return false;
    }
    sess->up = sg_upstream_connect(tgt->host, port, tgt->internal_access_path,
                                   sess->env->connect_timeout_s, on_upstream_connected, NULL,
                                   sess);
    if (tls)
        sg_upstream_set_tls(sess->up, sess->env->spice_tls_client, tgt->host);
    return true;
}

/* auto: the plain port answered the link with NEED_SECURED (the guard
 * holds the browser's link message, and the browser has seen nothing):
 * the TLS port, if the target names one. */
static void
on_need_secured(SgEndpoint *guard, gpointer data)
{
    SgSession *sess = data;

    if (sess->tgt->tls_port == 0) {
        g_autofree char *why =
            g_strdup_printf("target=%s: the SPICE server requires TLS on this channel "
                            "(SPICE_LINK_ERR_NEED_SECURED) and the console's target has no "
                            "TLS port", sess->target);

        close_with(sess, SG_CLOSE_TLS_PORT_UNKNOWN, why);
        return;
    }
    sess_log(G_LOG_LEVEL_DEBUG, sess, "%s needs TLS on this channel: connecting to its TLS "
             "port %u", sess->target, sess->tgt->tls_port);
    /* Until the switch the guard cannot step aside (unwrap()), so the
     * relay keeps it. */
    sess->guard = guard;
    sess->reconnecting = true;
    connect_to(sess, sess->tgt->tls_port, true);
}

/* The first connection of a session, as [spice] tls says: never, the
 * plain port; always, the TLS port (a target with one port names it);
 * auto, the plain port, or the TLS port of a target that has no other. */
static void
connect_first(SgSession *sess)
{
    const SgConsoleTarget *tgt = sess->tgt;

    switch (sess->env->spice_tls) {
    case SG_SPICE_TLS_NEVER:
        if (tgt->port == 0) {
            close_with(sess, SG_CLOSE_TLS_PORT_UNKNOWN,
                       "the target has only a TLS port and [spice] tls = never");
            return;
        }
        connect_to(sess, tgt->port, false);
        return;
    case SG_SPICE_TLS_ALWAYS:
        connect_to(sess, tgt->tls_port != 0 ? tgt->tls_port : tgt->port, true);
        return;
    case SG_SPICE_TLS_AUTO:
    default:
        if (tgt->port != 0)
            connect_to(sess, tgt->port, false);
        else
            connect_to(sess, tgt->tls_port, true);
        return;
    }
}

/* Connects once the token's target is known and the browser's link has
 * passed the channel policy, whichever comes last (why this order: see
 * the top of this file). */
static void
connect_when_ready(SgSession *sess)
{
    if (sess->tgt == NULL || !have_link(sess) || sess->state != SG_SESSION_AUTHORISING)
        return;
    set_state(sess, SG_SESSION_CONNECTING);
    connect_first(sess);
}

static void
on_target(const SgConsoleTarget *tgt, const GError *error, gpointer data)
{
    SgSession *sess = data;
    SgTokenLookup *lookup = g_steal_pointer(&sess->lookup);   /* freed after this callback */

    if (error != NULL) {
        SgCloseReason reason = SG_CLOSE_BAD_TOKEN;

        if (g_error_matches(error, SG_TOKEN_ERROR, SG_TOKEN_ERROR_UNAVAILABLE))
            reason = SG_CLOSE_TOKEN_UNAVAILABLE;
        else if (g_error_matches(error, SG_TOKEN_ERROR, SG_TOKEN_ERROR_REFUSED))
            reason = SG_CLOSE_TOKEN_REFUSED;
        close_with(sess, reason, error->message);
        return;
    }
    /* From now until the session ends, the backend may tell us that the
     * token was revoked. */
    sess->watch = sg_token_lookup_watch(lookup, on_token_revoked, sess);
    sess->instance = g_strdup(tgt->instance_uuid);
    sess->tgt = sg_console_target_copy(tgt);
    sess->target = format_target(tgt->host, tgt->port != 0 ? tgt->port : tgt->tls_port);
    if (tgt->expires_at_us > 0) {
        gint64 left_ms = (tgt->expires_at_us - g_get_real_time()) / 1000;

        if (left_ms <= 0) {
            close_with(sess, SG_CLOSE_SESSION_EXPIRED, NULL);
            return;
        }
        sess->expiry_timer = sg_timer_add((guint)MIN(left_ms, G_MAXUINT), on_session_expired,
                                           sess);
    }
    connect_when_ready(sess);
}

/* The browser's address as the hub records it (what the log, the
 * metrics and the limits all show): the address part of the client
 * the listener gave sg_session_new(). */
static char *
client_addr_of(const SgSession *sess)
{
    const SgHubSession *hs = sg_hub_find(sess->env->hub, sess->id);

    return hs != NULL ? g_strdup(hs->client_addr) : sg_hub_client_addr(sess->client);
}

void
sg_session_start(SgSession *sess, const char *token)
{
    g_return_if_fail(sess->state == SG_SESSION_NEW);

    sess->token_tag = sg_log_redact(token);
    /* Before the lookup: a websocket over a limit costs no token check
     * and no connection. The console is keyed by its tag, never the
     * token. */
    if (sess->env->limits != NULL) {
        g_autofree char *addr = client_addr_of(sess);
        g_autofree char *detail = NULL;
        SgCloseReason refusal = SG_CLOSE_INTERNAL;

        if (!sg_limits_acquire(sess->env->limits, addr, sess->token_tag, &sess->limits_hold,
                               &refusal, &detail)) {
            close_with(sess, refusal, detail);
            return;
        }
    }
    set_state(sess, SG_SESSION_AUTHORISING);
    sess->lookup = sg_token_lookup(sess->env->tokens, token, on_target, sess);
}

/* --- relaying ---------------------------------------------------------------- */

/* The session opened: the hub tells its observers (the "open" line of
 * session_log.c among them). */
static void
write_open_line(SgSession *sess)
{
    SgHubFacts facts = facts_of(sess);

    sess->opened = true;
    sg_hub_note_open(sess->hub_entry, &facts);
}

/* The open line, once both the link and the connection are there. A main
 * channel's waits until the SPICE server has named the console (end_scan()),
 * normally a few milliseconds later, so that it carries console= too. */
static void
log_open(SgSession *sess)
{
    if (sess->opened || sess->open_deferred || !have_link(sess) ||
        (sess->state != SG_SESSION_LINKING && sess->state != SG_SESSION_RELAYING))
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
    drop_back(sess);
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
    bool plain = sg_upstream_get_ssl(sess->up) == NULL;
    SgEndpoint *back = sg_upstream_into_endpoint(g_steal_pointer(&sess->up));

    /* auto, on a plain connection: the guard keeps NEED_SECURED from the
     * browser and reconnects over TLS; with any other reply it steps aside
     * once the relay has read it. */
    if (sess->env->spice_tls == SG_SPICE_TLS_AUTO && plain)
        back = sg_endpoint_link_guard_new(back, on_need_secured, sess);

    log_open(sess);
    sg_relay_attach_back(sess->relay, back);
}

/* A link for a channel type that [spice] channels leaves out: refused
 * before anything of it reaches the SPICE server (the session has not
 * connected: connect_when_ready() waits for the link to pass). */
static void
refuse_channel(SgSession *sess, const SgSpiceLink *link)
{
    g_autofree char *allowed = sg_spice_channel_set_names(sess->env->channels);
    g_autofree char *detail =
        g_strdup_printf("channel %s (type %u) is not in [spice] channels (%s)", sess->channel,
                        link->channel_type, allowed);

    close_with(sess, SG_CLOSE_CHANNEL_REFUSED, detail);
}

/* Checks the first bytes from the browser: a SPICE link message of an
 * allowed channel type, or out. */
static bool
check_link(SgSession *sess, const guint8 *data, gsize len)
{
    SgSpiceLink link;
    gsize consumed = 0;
    const char *why = NULL;

    switch (sg_spice_link_parse(data, len, &link, &consumed, &why)) {
    case SG_PARSE_OK:
        sess->channel = sg_spice_channel_name(link.channel_type);
        if (!sg_spice_channel_allowed(sess->env->channels, link.channel_type)) {
            refuse_channel(sess, &link);
            return false;
        }
        /* The link heads what the relay holds: it goes first, in LINKING. */
        sg_relay_hold(sess->relay, false);
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
        /* The link's own deadline is over; the token backend's is not. */
        if (sess->state == SG_SESSION_AUTHORISING)
            g_clear_pointer(&sess->deadline, sg_timer_remove);
        connect_when_ready(sess);
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

static guint64
bytes_moved(const SgSession *sess)
{
    return sg_relay_bytes_to(sess->relay, SG_RELAY_BACK) +
           sg_relay_bytes_to(sess->relay, SG_RELAY_FRONT);
}

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
        end_linking(sess);
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
    /* LINKING too: a server may speak before the browser's link. */
    if (sess->state == SG_SESSION_LINKING || sess->state == SG_SESSION_RELAYING ||
        sess->state == SG_SESSION_DRAINING || sess->state == SG_SESSION_CLOSING)
        return sg_endpoint_ws_on_writeable(sess->ws);
    return 0;
}

void
sg_session_on_pong(SgSession *sess)
{
    sg_endpoint_ws_on_pong(sess->ws);
}

void
sg_session_free(SgSession *sess)
{
    if (sess == NULL)
        return;
    if (sess->state != SG_SESSION_CLOSING)
        sess->reason = SG_CLOSE_CLIENT_CLOSED;
    /* First, as close_with() does: it may write the open line the main
     * channel's scan held back. */
    stop_activities(sess);
    /* Once, whatever ended the session, and before the close line: a
     * console that saw it may open another at once, on any worker. */
    sg_limits_release(sess->env->limits, &sess->limits_hold);
    {
        /* Leaves the hub: observers hear closed now unless they already
         * did (a refusal), so the log's close line, or the refused line
         * of a browser that left before its session opened. */
        SgHubFacts facts = facts_of(sess);

        if (!sess->opened)
            facts.reason_text = "browser left";
        sg_hub_remove(sess->hub_entry, &facts);
        sess->hub_entry = NULL;
    }
    sg_relay_free(sess->relay);   /* after the hub: it read the relay's counters */
    g_free(sess->client);
    g_free(sess->token_tag);
    g_free(sess->target);
    g_free(sess->instance);
    g_free(sess->detail);
    sg_console_target_free(sess->tgt);
    g_free(sess);
}
