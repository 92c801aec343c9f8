/* SPDX-License-Identifier: Apache-2.0 */
/* session.c - the per-websocket state machine and relay.
 *
 * Owns: the token lookup handle, the upstream (connect + socket), the two
 * bounded buffers, its timers. Must not: block, keep a pointer to anything
 * the listener frees before CLOSED, or log a token.
 *
 * Session states (the legal moves are one table, session_state.c)
 *
 *   NEW --start--> AUTHORISING --target--> CONNECTING --connected--> LINKING
 *    |                  | no/bad token          | unreachable,          | link sent and
 *    | refuse           | backend down          | timeout               | answered
 *    |                  |                       |                       v
 *    |                  |                       |                    RELAYING --idle--+
 *    |                  |                       |                       | SPICE server |
 *    |                  |                       |                       | closes       |
 *    v                  v                       v                       v              |
 *   CLOSING <-----------+-----------------------+------------------- DRAINING         |
 *    |  ^                (bad link, link timeout, text frame, shutdown, (flush what the |
 *    |  +-----------------expiry go to CLOSING from any state)           browser is owed)
 *    v
 *   free (lws CLOSED; also when the browser goes away in any state)
 *
 * The SPICE link message is checked as soon as the browser sends it, in
 * whatever state the session is (a bad one is refused at once), and waits
 * in the upload buffer; it goes to the SPICE server in LINKING, once the
 * connection is up, and nothing else goes before it. LINKING ends when
 * the server has answered. Every waiting state has a deadline:
 *
 *   AUTHORISING  the token backend's own: [nova] timeout (a file answers at once)
 *   CONNECTING   upstream.c's: connect_timeout (4504)
 *   LINKING      link_timeout for the whole exchange: no link from the browser
 *                (4408), or none answered by the SPICE server (4504)
 *   RELAYING     idle_timeout when set: no byte either way (4408, "idle")
 *   DRAINING,    close_timeout for the browser to take what it is owed, the
 *   CLOSING      close frame included; then spicegate hangs up
 *
 * Before the upgrade, lws holds the connection under handshake_timeout
 * (listener.c); at stop, the listener waits shutdown_timeout for CLOSING
 * sessions.
 */
#include "autoconfig.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>

#include <glib.h>
#include <libwebsockets.h>
#include <spice/protocol.h>

#include "buf.h"
#include "compat.h"
#include "event_core.h"
#include "hub.h"
#include "log.h"
#include "session.h"
#include "session_state.h"
#include "spice_link.h"
#include "splice_pipe.h"
#include "token.h"
#include "upstream.h"

/* Splicing costs a system call more than copying (socket -> pipe, header,
 * pipe -> socket against recv + send), which only pays off for large
 * reads: a read at least this large makes the next one a splice, a splice
 * smaller than this makes the next one a copy. */
#define SG_SPLICE_MIN_BYTES (32 * 1024)
/* SG_SESSION_DOWN_MESSAGE_BYTES (session.h) toward the browser. */
#define SG_DOWN_BUF_BYTES SG_SESSION_DOWN_MESSAGE_BYTES
/* Toward the SPICE server. We stop reading the websocket when less than
 * one lws receive chunk (SG_WS_RX_CHUNK_BYTES, listener.c) would fit, so
 * the buffer never has to refuse bytes lws already handed us. */
#define SG_UP_BUF_BYTES (4 * SG_WS_RX_CHUNK_BYTES)
#define SG_WS_RX_CHUNK_BYTES SG_SESSION_RX_CHUNK_BYTES
/* Chunks from the browser at least this large are queued and sent in one
 * go per loop turn (sg_session_on_receive()). */
#define SG_UP_BATCH_MIN_BYTES (4 * 1024)
/* Resume reading the websocket once the SPICE server has taken this much. */
#define SG_UP_RESUME_BYTES (SG_UP_BUF_BYTES / 2)
/* Uploads on an HTTP/2 stream cannot be paused: lws 4.1.6 closes a
 * websocket stream whose reads are stopped (seen under load: the session
 * ended as "browser closed" the moment it paused), and it keeps granting
 * the browser send window as it reads. So such a session buffers instead,
 * up to this much that the SPICE server has not taken (a browser's SPICE
 * uploads are keystrokes and pointer moves), then closes. Pages are only
 * touched as they fill. */
#define SG_H2_UP_BUF_BYTES (4 * 1024 * 1024)

#define SG_CLOSE_TABLE_ENTRY(name, code, text) [SG_CLOSE_##name] = { code, text },
static const struct {
    uint16_t code;
    const char *text;
} close_table[] = { SG_CLOSE_CODES(SG_CLOSE_TABLE_ENTRY) };
#undef SG_CLOSE_TABLE_ENTRY

struct SgSession {
    const SgSessionEnv *env;
    struct lws *ws;
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
    SgUpstream *up;
    SgBuf *dbuf;                  /* SPICE server -> browser */
    SgBuf *ubuf;                  /* browser -> SPICE server */
    SgPipe *dpipe;                /* zero-copy: the message in flight, or NULL */
    bool zero_copy;               /* plain websocket: splice toward the browser */
    /* A websocket on an HTTP/2 stream (RFC 8441: lws 4.1 offers it and
     * browsers take it over https). lws writes each message as one DATA
     * frame without splitting it, so messages must fit a frame and the
     * stream's send window; the TCP socket is the connection's, shared. */
    bool over_h2;
    bool splice_next;             /* the last read was large: splice the next one */
    GList flush_link;             /* in flush_queue while an upload waits */
    bool flush_queued;
    bool rx_paused;               /* websocket reads stopped for flow control */
    bool opened;                  /* the "open" line was logged */
    SgTimer *deadline;            /* the current state's (arm_deadline()) */
    gint64 drain_until_us;        /* DRAINING's deadline, which CLOSING keeps */
    guint64 idle_moved;           /* RELAYING: bytes_up + bytes_down at the last tick */
    guint idle_quiet_s;           /* RELAYING: seconds of ticks that saw none move */
    bool got_reply;               /* the SPICE server has said something */
    SgTimer *paused_check;        /* while rx_paused: is the browser gone? */
    SgTimer *expiry_timer;        /* enforce_session_timeout */
    SgCloseReason reason;
    char *detail;                 /* extra words for the close line */
    gint64 started_us;
    guint64 bytes_up;             /* browser -> SPICE server, delivered */
    guint64 bytes_down;           /* SPICE server -> browser, handed to lws */
    SgHubEntry *hub_entry;        /* our place in the hub, until sg_session_free() */
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
static void unqueue_flush(SgSession *sess);
static void arm_deadline(SgSession *sess);

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
}

static void start_relay(SgSession *sess);
static void pump_upstream(SgSession *sess);
static bool down_drained(SgSession *sess);

SgSession *
sg_session_new(const SgSessionEnv *env, struct lws *ws, const char *client)
{
    SgSession *sess = g_new0(SgSession, 1);

    sess->env = env;
    sess->ws = ws;
    sess->hub_entry = sg_hub_add(env->hub, sess, client, &sess->bytes_up, &sess->bytes_down);
    sess->id = sg_hub_entry_get_id(sess->hub_entry);
    sess->client = g_strdup(client);
    sess->started_us = g_get_monotonic_time();
    sess->over_h2 = sg_lws_is_h2_stream(ws);
    sess->dbuf = sg_buf_new(SG_DOWN_BUF_BYTES);
    sess->ubuf = sg_buf_new(sess->over_h2 ? SG_H2_UP_BUF_BYTES : SG_UP_BUF_BYTES);
    sess->state = SG_SESSION_NEW;
    return sess;
}

/* The one teardown: stops everything that could call back into @sess (the
 * token lookup, the SPICE server's connection and its watch, every timer,
 * the queued upload flush) and ends the main channel's scan, which may
 * write the open line it held back. From close_with() and
 * sg_session_free(); running it twice is harmless. */
static void
stop_activities(SgSession *sess)
{
    g_clear_pointer(&sess->lookup, sg_token_lookup_cancel);
    g_clear_pointer(&sess->up, sg_upstream_free);
    g_clear_pointer(&sess->deadline, sg_timer_remove);
    g_clear_pointer(&sess->paused_check, sg_timer_remove);
    g_clear_pointer(&sess->expiry_timer, sg_timer_remove);
    unqueue_flush(sess);
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
    set_state(sess, SG_SESSION_CLOSING);
    if (!sess->opened) {
        /* Refused before it opened: its one line goes out now (the
         * "refused" line of session_log.c), not when lws lets go. */
        SgHubFacts facts = facts_of(sess);

        sg_hub_note_close(sess->hub_entry, &facts);
    }
    lws_callback_on_writable(sess->ws);
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

/* The browser's link message has passed (it waits in ubuf until LINKING
 * sends it). */
static bool
have_link(const SgSession *sess)
{
    return sess->channel != NULL;
}

/* Bytes from the browser may go to the SPICE server: the connection is up
 * and the link message passed (it goes first: it heads ubuf). */
static bool
may_send_up(const SgSession *sess)
{
    return sess->up != NULL && have_link(sess) &&
           (sess->state == SG_SESSION_LINKING || sess->state == SG_SESSION_RELAYING);
}

/* LINKING is over once the browser's link passed (and so goes out first)
 * and the SPICE server has said something: called on either event. */
static void
end_linking(SgSession *sess)
{
    if (sess->state == SG_SESSION_LINKING && have_link(sess) && sess->got_reply)
        set_state(sess, SG_SESSION_RELAYING);
}

/* LINKING: no link message from the browser within link_timeout, or the
 * SPICE server took the connection and the link but has not answered (a
 * hung server would otherwise hold the session, two descriptors and its
 * buffers, for good). For the latter the browser hears "console connect
 * timed out": to a person the console could not be reached; the log says
 * what happened. */
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
 * second) looks whether any byte moved since the last; the session closes
 * once ticks worth idle_timeout saw none. So it closes between idle_timeout
 * and idle_timeout plus a tick (and a second of timer grouping) after the
 * last byte, and the relay itself does no bookkeeping for it. */
static guint
idle_tick_s(const SgSessionEnv *env)
{
    return MAX(env->idle_timeout_s / 4, 1);
}

static gboolean
on_idle_tick(gpointer data)
{
    SgSession *sess = data;
    guint64 moved = sess->bytes_up + sess->bytes_down;

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
    /* lws' own timeout path: the connection is dropped as unusable, with
     * no attempt to flush or to send a close frame. From outside its
     * callbacks lws 4.1.6 on libuv only sees the timer once it services
     * something (its loop re-arms its timer after I/O): wake it. */
    lws_set_timeout(sess->ws, PENDING_TIMEOUT_USER_OK, LWS_TO_KILL_ASYNC);
    lws_cancel_service(lws_get_context(sess->ws));
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
    case SG_SESSION_LINKING:
        sess->deadline = sg_timer_add(env->link_timeout_s * 1000, on_link_deadline, sess);
        break;
    case SG_SESSION_RELAYING:
        if (env->idle_timeout_s > 0) {
            sess->idle_moved = sess->bytes_up + sess->bytes_down;
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
    case SG_SESSION_AUTHORISING:
    case SG_SESSION_CONNECTING:
    case SG_SESSION_N_STATES:
    default:
        break;
    }
}

/* While reads from the browser are paused (flow control), lws does not
 * poll its socket, so a browser that leaves goes unseen: its FIN waits
 * behind unread data. TCP still knows: the socket is in CLOSE_WAIT. */
#define SG_PAUSED_CHECK_MS 1000

static gboolean
on_paused_check(gpointer data)
{
    SgSession *sess = data;
    int fd = sg_lws_socket_fd(sess->ws);
    struct tcp_info ti;
    socklen_t len = sizeof(ti);

    if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0 ||
        ti.tcpi_state != TCP_CLOSE_WAIT)
        return G_SOURCE_CONTINUE;
    sess->paused_check = NULL;
    close_with(sess, SG_CLOSE_CLIENT_CLOSED, "it left while its uploads waited for the SPICE "
                                             "server");
    return G_SOURCE_REMOVE;
}

static void
pause_browser(SgSession *sess)
{
    sess->rx_paused = true;
    lws_rx_flow_control(sess->ws, 0);
    sess_log(G_LOG_LEVEL_DEBUG, sess, "uploads paused: the SPICE server is not reading");
    if (sess->paused_check == NULL)
        sess->paused_check = sg_timer_add(SG_PAUSED_CHECK_MS, on_paused_check, sess);
}

static void
resume_browser(SgSession *sess)
{
    sess->rx_paused = false;
    g_clear_pointer(&sess->paused_check, sg_timer_remove);
    lws_rx_flow_control(sess->ws, 1);
}

static gboolean
on_session_expired(gpointer data)
{
    SgSession *sess = data;

    sess->expiry_timer = NULL;
    /* Unlike the browser-side states, a live console is cut at once: the
     * token's lifetime is the operator's policy (enforce_session_timeout). */
    g_clear_pointer(&sess->up, sg_upstream_free);
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
    set_state(sess, SG_SESSION_LINKING);
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
        sess->expiry_timer = sg_timer_add((guint)MIN(left_ms, G_MAXUINT), on_session_expired,
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
    set_state(sess, SG_SESSION_AUTHORISING);
    sess->lookup = sg_token_lookup(sess->env->tokens, token, on_target, sess);
}

/* A server's websocket frame header for a payload under 64 KiB: 4 bytes;
 * rounded up. */
#define SG_WS_HEADER_MAX_BYTES 16

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
 * SPICE server, until MAIN_INIT has passed. */
static void
scan_down(SgSession *sess, const guint8 *data, gsize len)
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
        if (sess->splice_next) {
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
    g_clear_pointer(&sess->up, sg_upstream_free);
    if (down_drained(sess)) {
        close_with(sess, reason, detail);
        return;
    }
    sess->reason = reason;
    g_free(sess->detail);
    sess->detail = g_strdup(detail);
    set_state(sess, SG_SESSION_DRAINING);
    lws_callback_on_writable(sess->ws);
}

static GIOCondition
wanted_interest(SgSession *sess)
{
    GIOCondition interest = 0;

    if (down_drained(sess))
        interest |= G_IO_IN;
    if (have_link(sess) && !sg_buf_is_empty(sess->ubuf))
        interest |= G_IO_OUT;
    return interest;
}

static void
update_interest(SgSession *sess)
{
    if (sess->up != NULL &&
        (sess->state == SG_SESSION_LINKING || sess->state == SG_SESSION_RELAYING))
        sg_upstream_set_interest(sess->up, wanted_interest(sess));
}

/* Hands what is queued toward the browser to lws, straight away rather
 * than from a WRITEABLE callback. Asking lws for WRITEABLE turns POLLOUT on
 * and off again, and every poll change cost a wakeup on GLib's poll (and
 * costs an epoll_ctl() now): that doubled the loop turns per message. A socket with room is the common
 * case. When the socket takes only part of the frame lws keeps the rest and
 * sends it before anything else on this websocket (its own pongs and close
 * frames included), so frames never interleave. While it holds such a rest
 * we neither write nor read the SPICE server (wanted_interest()), which
 * bounds what a session holds at one message plus that rest. Returns false
 * when the websocket is broken. */
static bool
flush_down(SgSession *sess)
{
    gsize len = sg_buf_len(sess->dbuf);

    /* One message is one DATA frame here (see over_h2): within the frame
     * size every peer accepts. The stream's send window is not ours to
     * see: lws 4.1.6 keeps it internal for websocket streams (the public
     * allowance is -1 there) and sends past it; browsers open windows of
     * several MB and consume as the page reads. */
    if (sess->over_h2)
        len = MIN(len, SG_HTTP2_MAX_FRAME_BYTES - SG_WS_HEADER_MAX_BYTES);
    if (len > 0 && !lws_partial_buffered(sess->ws)) {
        if (lws_write(sess->ws, sg_buf_data(sess->dbuf), len, LWS_WRITE_BINARY) < (int)len)
            return false;
        sg_buf_consume(sess->dbuf, len);
        sess->bytes_down += len;
    }
    if (lws_partial_buffered(sess->ws) || !sg_buf_is_empty(sess->dbuf))
        lws_callback_on_writable(sess->ws);
    return true;
}

/* Nothing is owed to the browser any more, neither by us nor inside lws. */
static bool
down_drained(SgSession *sess)
{
    return sg_buf_is_empty(sess->dbuf) && !lws_partial_buffered(sess->ws) &&
           (sess->dpipe == NULL || sess->dpipe->len == 0);
}

/* The header of one unmasked, final, binary websocket frame of @len bytes
 * (RFC 6455 5.2); returns its size, 2 to 10 bytes. */
static gsize
ws_binary_frame_header(guint8 hdr[10], gsize len)
{
    hdr[0] = 0x82;
    if (len < 126) {
        hdr[1] = (guint8)len;
        return 2;
    }
    if (len <= 0xffff) {
        hdr[1] = 126;
        hdr[2] = (guint8)(len >> 8);
        hdr[3] = (guint8)len;
        return 4;
    }
    hdr[1] = 127;
    for (int i = 0; i < 8; i++)
        hdr[2 + i] = (guint8)((guint64)len >> (56 - 8 * i));
    return 10;
}

/* Sends the message in the pipe as one binary frame, bypassing lws: our
 * header, then the payload spliced from the pipe straight into the socket.
 * lws writes nothing of its own meanwhile (we run to the end before it can
 * run), so frames cannot interleave. When the socket fills up mid-frame,
 * the rest is copied out of the pipe and handed to lws as raw bytes: lws
 * then sends it before anything of its own, as for any partial write.
 * Returns false when the websocket is broken. */
static bool
send_spliced(SgSession *sess)
{
    int fd = lws_get_socket_fd(sess->ws);
    guint8 hdr[10];
    gsize payload = sess->dpipe->len;
    gsize hlen = ws_binary_frame_header(hdr, payload);
    gsize hsent = 0, avail, rest;
    ssize_t n = send(fd, hdr, hlen, MSG_MORE | MSG_NOSIGNAL | MSG_DONTWAIT);
    guint8 *dst;

    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        return false;
    hsent = n > 0 ? (gsize)n : 0;
    if (hsent == hlen && sg_pipe_drain(sess->dpipe, fd) < 0 && errno != EAGAIN &&
        errno != EWOULDBLOCK)
        return false;
    if (sess->dpipe->len > 0) {
        /* Nothing sent yet: lws frames the payload itself. Else the rest
         * of our frame goes out raw. */
        enum lws_write_protocol how = hsent == 0 ? LWS_WRITE_BINARY : LWS_WRITE_RAW;

        gsize total;

        rest = hsent == 0 ? 0 : hlen - hsent;
        dst = sg_buf_reserve(sess->dbuf, &avail);
        g_assert(sg_buf_is_empty(sess->dbuf) && avail >= rest + sess->dpipe->len);
        memcpy(dst, hdr + hsent, rest);
        total = rest + sess->dpipe->len;
        if (sg_pipe_read_all(sess->dpipe, dst + rest) < 0)
            return false;
        sg_buf_commit(sess->dbuf, total);
        sess_log(G_LOG_LEVEL_DEBUG, sess, "websocket full mid-message: %" G_GSIZE_FORMAT
                 " bytes handed to lws", total);
        if (lws_write(sess->ws, sg_buf_data(sess->dbuf), total, how) < (int)total)
            return false;
        sg_buf_consume(sess->dbuf, total);
        lws_callback_on_writable(sess->ws);
    }
    sess->bytes_down += payload;
    return true;
}

/* The zero-copy read_upstream(): what the SPICE server sent goes into a
 * pipe and from there into the websocket. */
static void
splice_upstream(SgSession *sess)
{
    gssize n;

    if (sess->dpipe == NULL) {
        sess->dpipe = sg_pipe_get(SG_DOWN_BUF_BYTES);
        if (sess->dpipe == NULL) {
            /* Out of file descriptors: copy through memory from now on. */
            sess_log(G_LOG_LEVEL_DEBUG, sess, "no pipe (%s): copying instead",
                     g_strerror(errno));
            sess->zero_copy = false;
            return;
        }
    }
    /* Leave room for the frame header in dbuf, should the rest of the
     * message have to go through lws (send_spliced()). */
    n = sg_pipe_fill(sess->dpipe, sg_upstream_get_fd(sess->up), SG_DOWN_BUF_BYTES - 16);
    if (n > 0) {
        bool ok;

        sess->splice_next = n >= SG_SPLICE_MIN_BYTES;
        ok = send_spliced(sess);

        g_clear_pointer(&sess->dpipe, sg_pipe_put);
        if (!ok)
            close_with(sess, SG_CLOSE_CLIENT_CLOSED, "websocket write failed");
        return;
    }
    g_clear_pointer(&sess->dpipe, sg_pipe_put);
    if (n == 0)
        upstream_gone(sess, SG_CLOSE_TARGET_CLOSED, NULL);
    else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        upstream_gone(sess, SG_CLOSE_TARGET_CLOSED, g_strerror(errno));
}

/* Reads what the SPICE server sent and passes it on to the browser. */
static void
read_upstream(SgSession *sess)
{
    int fd = sg_upstream_get_fd(sess->up);
    gsize avail;
    guint8 *dst;
    ssize_t n;

    if (!down_drained(sess))
        return;
    if (sess->zero_copy && sess->splice_next) {
        splice_upstream(sess);
        return;
    }
    dst = sg_buf_reserve(sess->dbuf, &avail);
    n = recv(fd, dst, avail, 0);
    if (n > 0) {
        if (G_UNLIKELY(!sess->got_reply)) {
            sess->got_reply = true;
            end_linking(sess);
        }
        sess->splice_next = sess->zero_copy && n >= SG_SPLICE_MIN_BYTES;
        if (G_UNLIKELY(sess->scan != NULL))
            scan_down(sess, dst, (gsize)n);
        sg_buf_commit(sess->dbuf, (gsize)n);
        if (!flush_down(sess))
            close_with(sess, SG_CLOSE_CLIENT_CLOSED, "websocket write failed");
        return;
    }
    if (n == 0) {
        upstream_gone(sess, SG_CLOSE_TARGET_CLOSED, NULL);
        return;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
        return;
    upstream_gone(sess, SG_CLOSE_TARGET_CLOSED, g_strerror(errno));
}

/* Sends what the browser sent (once the link passed) to the SPICE server,
 * and lets the browser send more once there is room again. */
static void
pump_upstream(SgSession *sess)
{
    gsize len;

    if (!may_send_up(sess))
        return;
    len = sg_buf_len(sess->ubuf);
    if (len > 0) {
        ssize_t n = send(sg_upstream_get_fd(sess->up), sg_buf_data(sess->ubuf), len,
                         MSG_NOSIGNAL);

        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                upstream_gone(sess, SG_CLOSE_TARGET_CLOSED, g_strerror(errno));
                return;
            }
        } else {
            sg_buf_consume(sess->ubuf, (gsize)n);
            sess->bytes_up += (guint64)n;
        }
    }
    if (sess->rx_paused && sg_buf_len(sess->ubuf) <= SG_UP_RESUME_BYTES)
        resume_browser(sess);
}

static void
on_upstream_io(SgUpstream *up, GIOCondition ready, gpointer data)
{
    SgSession *sess = data;

    (void)up;
    if (ready & G_IO_OUT)
        pump_upstream(sess);
    if (sess->up != NULL && (ready & (G_IO_IN | G_IO_HUP | G_IO_ERR)))
        read_upstream(sess);
    update_interest(sess);
}

static void
start_relay(SgSession *sess)
{
    /* The upstream was created without an I/O callback so nothing could
     * fire before we were ready; install ours now. */
    sg_upstream_set_io_func(sess->up, on_upstream_io, sess);
    /* TLS needs the bytes in our memory to encrypt them; a plain websocket
     * can take them straight from the kernel (splice_pipe.h). */
    sess->zero_copy = !sess->over_h2 && !lws_is_ssl(sess->ws);
    log_open(sess);
    pump_upstream(sess);
    update_interest(sess);
}

/* Checks the first bytes from the browser: a SPICE link message, or out. */
static bool
check_link(SgSession *sess)
{
    SgSpiceLink link;
    gsize consumed = 0;
    const char *why = NULL;

    switch (sg_spice_link_parse(sg_buf_data(sess->ubuf), sg_buf_len(sess->ubuf), &link,
                                &consumed, &why)) {
    case SG_PARSE_OK:
        sess->channel = sg_spice_channel_name(link.channel_type);
        /* The console's id: other channels carry it in their link; the
         * main channel learns it from the server (scan_down()). */
        if (link.channel_type == SPICE_CHANNEL_MAIN) {
            sess->scan = g_new(SgSpiceMainScan, 1);
            sg_spice_main_scan_init(sess->scan, &link);
        } else if (link.connection_id != 0) {
            sess->console = link.connection_id;
            sess->has_console = true;
        }
        sess_log(G_LOG_LEVEL_DEBUG, sess, "link ok: channel %s id %u", sess->channel,
                 link.channel_id);
        log_open(sess);
        end_linking(sess);
        return true;
    case SG_PARSE_AGAIN:
        return true;
    case SG_PARSE_INVALID:
    default:
        close_with(sess, SG_CLOSE_BAD_LINK, why);
        return false;
    }
}

/* Uploads: lws parses one read of the websocket into several RECEIVE
 * callbacks, one per frame. Large chunks are queued and sent once per
 * loop turn, in one send(), by this single source: it is ready only while
 * sessions wait in flush_queue, and runs ahead of lws' sources (priority),
 * so before lws reads again (lws runs in event_core.c's one source). One
 * source for all sessions, so the loop's per-turn walk over its sources
 * does not grow with them; and no poll-set change. */
static GSource *flush_source;
static GQueue flush_queue = G_QUEUE_INIT;

static gboolean
flush_prepare(GSource *source, gint *timeout)
{
    (void)source;
    *timeout = -1;
    return flush_queue.length > 0;
}

static gboolean
flush_check(GSource *source)
{
    (void)source;
    return flush_queue.length > 0;
}

static gboolean
flush_dispatch(GSource *source, GSourceFunc callback, gpointer data)
{
    GList *link;

    (void)source;
    (void)callback;
    (void)data;
    while ((link = g_queue_pop_head_link(&flush_queue)) != NULL) {
        SgSession *sess = link->data;

        sess->flush_queued = false;
        pump_upstream(sess);
        update_interest(sess);
    }
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs flush_funcs = {
    .prepare = flush_prepare,
    .check = flush_check,
    .dispatch = flush_dispatch,
};

static void
queue_flush(SgSession *sess)
{
    if (sess->flush_queued)
        return;
    if (flush_source == NULL) {
        flush_source = g_source_new(&flush_funcs, sizeof(GSource));
        g_source_set_static_name(flush_source, "spicegate upload flush");
        g_source_set_priority(flush_source, G_PRIORITY_DEFAULT - 1);
        g_source_set_can_recurse(flush_source, TRUE);
        g_source_attach(flush_source, NULL);
    }
    sess->flush_link.data = sess;
    g_queue_push_tail_link(&flush_queue, &sess->flush_link);
    sess->flush_queued = true;
}

static void
unqueue_flush(SgSession *sess)
{
    if (!sess->flush_queued)
        return;
    g_queue_unlink(&flush_queue, &sess->flush_link);
    sess->flush_queued = false;
}

void
sg_session_on_receive(SgSession *sess, const void *data, size_t len, bool binary)
{
    gsize taken;
    bool batch;

    if (sess->state == SG_SESSION_CLOSING || sess->state == SG_SESSION_DRAINING)
        return;                   /* nothing more goes upstream */
    if (!binary) {
        close_with(sess, SG_CLOSE_TEXT_FRAME, NULL);
        return;
    }
    /* Small chunks (input events, acks) go straight from lws' buffer to the
     * SPICE server when nothing is queued: no copy, no wait. Large ones
     * (uploads) are queued and sent once lws has handed us everything it
     * read (queue_flush()): one send() per read of the websocket instead
     * of one per frame. */
    batch = len >= SG_UP_BATCH_MIN_BYTES;
    if (!batch && may_send_up(sess) && sg_buf_is_empty(sess->ubuf)) {
        ssize_t n = send(sg_upstream_get_fd(sess->up), data, len, MSG_NOSIGNAL);

        if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            upstream_gone(sess, SG_CLOSE_TARGET_CLOSED, g_strerror(errno));
            return;
        }
        if (n > 0) {
            sess->bytes_up += (guint64)n;
            data = (const guint8 *)data + n;
            len -= (size_t)n;
        }
        if (len == 0)
            return;
    }
    taken = sg_buf_append(sess->ubuf, data, len);
    if (taken < len) {
        /* Cannot happen while lws honours rx flow control; refuse rather
         * than drop a byte of someone's session. */
        if (sess->over_h2) {
            /* See SG_H2_UP_BUF_BYTES. */
            close_with(sess, SG_CLOSE_INTERNAL, "over HTTP/2 the browser sent 4 MiB more than "
                                                "the SPICE server took");
            return;
        }
        sess_log(G_LOG_LEVEL_WARNING, sess, "buffer toward the SPICE server overflowed");
        close_with(sess, SG_CLOSE_INTERNAL, "upstream buffer overflow");
        return;
    }
    if (!have_link(sess) && !check_link(sess))
        return;
    if (!sess->over_h2 && !sess->rx_paused && sg_buf_space(sess->ubuf) < SG_WS_RX_CHUNK_BYTES)
        pause_browser(sess);
    if (batch && may_send_up(sess)) {
        queue_flush(sess);
        return;
    }
    pump_upstream(sess);
    update_interest(sess);
}

int
sg_session_on_writeable(SgSession *sess)
{
    /* LINKING too: a server may speak before the browser's link. */
    if (sess->state == SG_SESSION_LINKING || sess->state == SG_SESSION_RELAYING ||
        sess->state == SG_SESSION_DRAINING) {
        if (!flush_down(sess)) {
            sess_log(G_LOG_LEVEL_DEBUG, sess, "websocket write failed");
            return -1;
        }
        if (sess->state != SG_SESSION_DRAINING) {
            update_interest(sess);
            return 0;
        }
        /* DRAINING: once lws has flushed the last frame, say goodbye on the
         * next WRITEABLE. */
        if (down_drained(sess))
            close_with(sess, sess->reason, sess->detail);
        return 0;
    }
    if (sess->state == SG_SESSION_CLOSING) {
        const char *text = sg_close_reason_text(sess->reason);
        guint16 code = sg_close_reason_code(sess->reason);
        /* An unmasked, final close frame (RFC 6455 5.5.1): payload of at
         * most 125 bytes, the code then the reason. */
        guint8 frame[LWS_PRE + 2 + 125];
        gsize tlen = MIN(strlen(text), 125 - 2);

        if (sess->over_h2) {
            lws_close_reason(sess->ws, (enum lws_close_status)code, (unsigned char *)text,
                             strlen(text));
            return -1;
        }
        /* We write the close frame (raw, as the splice path writes its
         * frame headers), then -1 hangs up, as lws did before. Not
         * lws_close_reason() and -1: lws would defer the close to send the
         * frame itself, but when lws 4.1.6 (as Debian builds it) closes a
         * connection of its libuv event library because a callback
         * returned -1, it calls its close a second time at once
         * ("close_and_handled uv repeat test"), which kills the deferred
         * close before the frame is out (the browser saw 1006). An HTTP/2
         * stream is closed by its connection, not by that path. The
         * socket is writable here; what it does not take lws keeps and
         * sends before it closes. */
        frame[LWS_PRE] = 0x88;
        frame[LWS_PRE + 1] = (guint8)(2 + tlen);
        frame[LWS_PRE + 2] = (guint8)(code >> 8);
        frame[LWS_PRE + 3] = (guint8)code;
        memcpy(frame + LWS_PRE + 4, text, tlen);
        lws_write(sess->ws, frame + LWS_PRE, 4 + tlen, LWS_WRITE_RAW);
        return -1;
    }
    return 0;
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
    sg_buf_free(sess->dbuf);
    sg_buf_free(sess->ubuf);
    sg_pipe_put(sess->dpipe);
    g_free(sess->client);
    g_free(sess->token_tag);
    g_free(sess->target);
    g_free(sess->instance);
    g_free(sess->detail);
    g_free(sess);
}
