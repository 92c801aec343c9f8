/* SPDX-License-Identifier: Apache-2.0 */
/* core_harness.c - spicegate's core in-process for unit tests; see
 * core_harness.h. Only public functions of src/, in main.c's order. */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <check.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <spice/protocol.h>

#include "config.h"
#include "core_harness.h"
#include "event_core.h"
#include "hub.h"
#include "listen_socket.h"
#include "listener.h"
#include "log.h"
#include "session_log.h"
#include "shared_zone.h"
#include "token.h"
#include "token_file.h"
#include "workers.h"
#include "ws_client.h"

#define DEADLINE_MS 5000

static void
on_closed(const SgHubSession *s, gpointer data)
{
    Harness *h = data;
    HarnessClose *c = g_new0(HarnessClose, 1);

    c->id = s->id;
    c->reason = s->facts.reason;
    c->detail = g_strdup(s->facts.detail);
    c->opened = s->opened;
    c->channel = g_strdup(s->facts.channel);
    c->has_console = s->facts.has_console;
    c->console = s->facts.console;
    c->bytes_up = s->bytes_up;
    c->bytes_down = s->bytes_down;
    g_ptr_array_add(h->closed, c);
}

static void
on_opened(const SgHubSession *s, gpointer data)
{
    (void)s;
    ((Harness *)data)->opened++;
}

static void
close_free(gpointer data)
{
    HarnessClose *c = data;

    g_free(c->detail);
    g_free(c->channel);
    g_free(c);
}

/* A loopback port nothing listens on: bound, never listening. */
static guint16
refused_port(void)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

/* --- a scripted token backend ------------------------------------------ */

/* "harness.tokens = script": a token backend written for the tests, for
 * the answers a token file never gives (the token file stays the default,
 * and is what the sessions of every other test use):
 *
 *   good, dead     as in the token file
 *   unavailable    SG_TOKEN_ERROR_UNAVAILABLE (a backend that is down)
 *   refused        SG_TOKEN_ERROR_REFUSED (a console of another kind)
 *   expired        the fake peer, its lifetime over already
 *   expiring       the fake peer, for HARNESS_EXPIRING_MS more
 *   slow           never answered (AUTHORISING until the session ends)
 *   anything else  SG_TOKEN_ERROR_UNKNOWN
 *
 * A re-check of a live console's token (token.h's watches) is counted in
 * h->rechecks and answered with h->recheck_error when h->recheck_fails,
 * else as above. */
typedef struct {
    SgTokenBackend parent;
    Harness *h;
    guint16 refused_port;
} ScriptTokens;

static void
script_start(SgTokenBackend *backend, SgTokenLookup *lookup)
{
    ScriptTokens *st = (ScriptTokens *)backend;
    const char *token = sg_token_lookup_get_token(lookup);
    g_autoptr(SgConsoleTarget) tgt = NULL;
    g_autoptr(GError) error = NULL;

    if (sg_token_lookup_is_recheck(lookup)) {
        st->h->rechecks++;
        if (st->h->recheck_fails) {
            error = g_error_new_literal(SG_TOKEN_ERROR, st->h->recheck_error,
                                        "the test's re-check answer");
            sg_token_lookup_complete(lookup, NULL, error);
            return;
        }
    }
    if (g_str_equal(token, "slow")) {
        st->h->lookups_pending++;
        return;
    }
    if (g_str_equal(token, "unavailable"))
        error = g_error_new_literal(SG_TOKEN_ERROR, SG_TOKEN_ERROR_UNAVAILABLE,
                                    "the test's backend is down");
    else if (g_str_equal(token, "refused"))
        error = g_error_new_literal(SG_TOKEN_ERROR, SG_TOKEN_ERROR_REFUSED,
                                    "not a SPICE console");
    else if (g_str_equal(token, "dead"))
        tgt = sg_console_target_new("127.0.0.1", st->refused_port);
    else if (g_str_equal(token, "good") || g_str_equal(token, "expired") ||
             g_str_equal(token, "expiring"))
        tgt = sg_console_target_new("127.0.0.1", fsp_port(st->h->peer));
    else
        error = g_error_new_literal(SG_TOKEN_ERROR, SG_TOKEN_ERROR_UNKNOWN, "unknown token");
    if (tgt != NULL) {
        tgt->instance_uuid = g_strdup("5b8e9b77-6a2c-4f6e-9d0e-2f1a3c4d5e6f");
        if (g_str_equal(token, "expired"))
            tgt->expires_at_us = g_get_real_time() - G_USEC_PER_SEC;
        else if (g_str_equal(token, "expiring"))
            tgt->expires_at_us = g_get_real_time() + HARNESS_EXPIRING_MS * 1000;
    }
    /* From inside start(): token.c answers from the loop. */
    sg_token_lookup_complete(lookup, tgt, error);
}

static void
script_cancel(SgTokenBackend *backend, SgTokenLookup *lookup)
{
    ScriptTokens *st = (ScriptTokens *)backend;

    (void)lookup;
    st->h->lookups_pending--;
    st->h->lookups_cancelled++;
}

static void
script_free(SgTokenBackend *backend)
{
    g_free(backend);
}

static const SgTokenBackendVtable script_vtable = {
    .name = "script",
    .start = script_start,
    .cancel = script_cancel,
    .free = script_free,
};

static SgTokenBackend *
script_tokens_new(Harness *h, guint16 refused_port)
{
    ScriptTokens *st = g_new0(ScriptTokens, 1);

    st->parent.vtable = &script_vtable;
    st->h = h;
    st->refused_port = refused_port;
    return &st->parent;
}

static void
write_file(const char *dir, const char *name, const char *text)
{
    g_autofree char *path = g_build_filename(dir, name, NULL);
    g_autoptr(GError) error = NULL;

    ck_assert_msg(g_file_set_contents(path, text, -1, &error), "%s", error ? error->message : "");
}

static void
set(Harness *h, const char *group_key, const char *value)
{
    g_auto(GStrv) parts = g_strsplit(group_key, ".", 2);
    g_autoptr(GError) error = NULL;

    ck_assert_msg(parts[1] != NULL, "not group.key: %s", group_key);
    if (g_str_equal(group_key, "harness.tokens")) {
        ck_assert_str_eq(value, "script");
        h->script_tokens = true;
        return;
    }
    ck_assert_msg(sg_config_set(h->cfg, parts[0], parts[1], value, group_key, &error), "%s",
                  error ? error->message : "");
}

static char *extra_tokens;

void
harness_add_tokens(const char *lines)
{
    g_free(extra_tokens);
    extra_tokens = g_strdup(lines);
}

Harness *
harness_start(const char *first_key, ...)
{
    Harness *h = g_new0(Harness, 1);
    g_autoptr(GError) error = NULL;
    g_autofree char *web = NULL;
    g_autofree char *pages = NULL;
    g_autofree char *tokens = NULL;
    g_autofree char *token_path = NULL;
    SgHubObserver observer = { .opened = on_opened, .closed = on_closed };
    guint bound = 0;
    guint16 refused;
    va_list ap;

    /* An illegal state move is a bug: fail loudly (session_state.c). */
    g_log_set_always_fatal(G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);
    signal(SIGPIPE, SIG_IGN);
    sg_log_setup_lws(false);
    sg_event_core_start();
    h->closed = g_ptr_array_new_with_free_func(close_free);
    h->peer = fsp_new();
    h->dir = g_dir_make_tmp("sg-core-XXXXXX", &error);
    ck_assert_msg(h->dir != NULL, "%s", error ? error->message : "");
    web = g_build_filename(h->dir, "web", NULL);
    pages = g_build_filename(h->dir, "pages", NULL);
    ck_assert_int_eq(g_mkdir(web, 0700), 0);
    ck_assert_int_eq(g_mkdir(pages, 0700), 0);
    write_file(web, "index.html", HARNESS_INDEX_HTML);
    write_file(web, "app.js", "console.log('spicegate');\n");
    refused = refused_port();
    {
        g_autofree char *port = g_strdup_printf("%u", fsp_port(h->peer));
        g_auto(GStrv) parts = g_strsplit(extra_tokens != NULL ? extra_tokens : "", "{fsp}", -1);
        g_autofree char *extra = g_strjoinv(port, parts);

        tokens = g_strdup_printf("# tokens of the core's unit tests\n"
                                 "good: 127.0.0.1:%u\n"
                                 "dead: 127.0.0.1:%u\n%s",
                                 fsp_port(h->peer), refused, extra);
        g_clear_pointer(&extra_tokens, g_free);
    }
    write_file(h->dir, "tokens", tokens);
    token_path = g_build_filename(h->dir, "tokens", NULL);

    h->cfg = sg_config_new_default();
    set(h, "server.listen", "127.0.0.1:0");
    set(h, "server.web", web);
    set(h, "server.pages", pages);
    set(h, "tokens.file", token_path);
    set(h, "server.shutdown_timeout", "2");
    va_start(ap, first_key);
    for (const char *key = first_key; key != NULL; key = va_arg(ap, const char *))
        set(h, key, va_arg(ap, const char *));
    va_end(ap);
    ck_assert_msg(sg_config_validate(h->cfg, &error), "%s", error ? error->message : "");

    if (h->script_tokens)
        h->tokens = script_tokens_new(h, refused);
    else
        h->tokens = sg_token_file_new(h->cfg->token_file, &error);
    ck_assert_msg(h->tokens != NULL, "%s", error ? error->message : "");
    h->listen_fd = sg_listen_socket_open(h->cfg->listen_host, h->cfg->listen_port, &bound,
                                         &error);
    ck_assert_msg(h->listen_fd >= 0, "%s", error ? error->message : "");
    h->cfg->listen_port = (guint16)bound;
    h->port = (guint16)bound;
    h->loop = g_main_loop_new(NULL, FALSE);
    h->hub = sg_hub_new(0, 1);
    sg_session_log_attach(h->hub);
    h->zone = sg_zone_new(1, SG_WORKERS_ZONE_TABLES, SG_WORKERS_ZONE_TABLE_SLOTS, &error);
    ck_assert_msg(h->zone != NULL, "%s", error ? error->message : "");
    sg_zone_observe(h->zone, 0, h->hub);
    sg_hub_add_observer(h->hub, &observer, h);
    h->listener = sg_listener_new(h->cfg, h->loop, h->tokens, h->hub, h->listen_fd, &error);
    ck_assert_msg(h->listener != NULL, "%s", error ? error->message : "");
    sg_listener_set_limits(h->listener, h->zone, 0);
    ck_assert_uint_eq(sg_listener_get_port(h->listener), h->port);
    return h;
}

static void
remove_tree(const char *dir)
{
    g_autoptr(GDir) d = g_dir_open(dir, 0, NULL);
    const char *name;

    if (d == NULL)
        return;
    while ((name = g_dir_read_name(d)) != NULL) {
        g_autofree char *path = g_build_filename(dir, name, NULL);

        if (g_file_test(path, G_FILE_TEST_IS_DIR))
            remove_tree(path);
        else
            g_unlink(path);
    }
    g_rmdir(dir);
}

void
harness_stop(Harness *h)
{
    if (h == NULL)
        return;
    /* As main.c: the listener first (its sessions leave the hub as lws
     * lets go), then the hub, the tokens, the core. */
    sg_listener_free(h->listener);
    ck_assert_uint_eq(sg_hub_count(h->hub), 0);
    sg_hub_free(h->hub);
    sg_zone_free(h->zone);
    sg_token_backend_free(h->tokens);
    close(h->listen_fd);
    fsp_free(h->peer);
    sg_event_core_stop();
    g_main_loop_unref(h->loop);
    sg_config_free(h->cfg);
    remove_tree(h->dir);
    g_free(h->dir);
    g_ptr_array_unref(h->closed);
    g_free(h);
}

static gboolean
on_shutdown_done(gpointer data)
{
    ((Harness *)data)->shutdown_done = true;
    return G_SOURCE_REMOVE;
}

void
harness_shutdown(Harness *h)
{
    sg_listener_shutdown(h->listener, on_shutdown_done, h);
}

void
harness_drain(Harness *h, guint drain_s)
{
    sg_listener_drain(h->listener, drain_s, on_shutdown_done, h);
}

typedef struct {
    Harness *h;
    guint n;
} ClosedWait;

static gboolean
closed_enough(gpointer data)
{
    ClosedWait *w = data;

    return w->h->closed->len >= w->n;
}

const HarnessClose *
harness_wait_closed(Harness *h, guint n, guint deadline_ms)
{
    ClosedWait w = { h, n };

    wsc_run_until(closed_enough, &w, deadline_ms);
    return g_ptr_array_index(h->closed, n - 1);
}

char *
harness_path(const char *token)
{
    return g_strdup_printf("/websockify?token=%s", token);
}

/* --- sessions ------------------------------------------------------------ */

static void
put_le32(guint8 *p, guint32 v)
{
    p[0] = v & 0xff;
    p[1] = (v >> 8) & 0xff;
    p[2] = (v >> 16) & 0xff;
    p[3] = (v >> 24) & 0xff;
}

/* A SPICE link message (SpiceLinkHeader + SpiceLinkMess, no caps) for
 * display channel 0 of console HARNESS_CONSOLE_ID: 34 bytes. */
GByteArray *
harness_link_message(void)
{
    return harness_link_message_for(SPICE_CHANNEL_DISPLAY, HARNESS_CONSOLE_ID);
}

GByteArray *
harness_link_message_for(guint8 channel_type, guint32 connection_id)
{
    guint8 m[16 + 18] = { 'R', 'E', 'D', 'Q' };
    GByteArray *a = g_byte_array_new();

    put_le32(m + 4, SPICE_VERSION_MAJOR);
    put_le32(m + 8, SPICE_VERSION_MINOR);
    put_le32(m + 12, 18);
    put_le32(m + 16, connection_id);
    m[20] = channel_type;
    m[21] = 0;
    put_le32(m + 22, 0);
    put_le32(m + 26, 0);
    put_le32(m + 30, 18);
    g_byte_array_append(a, m, sizeof(m));
    return a;
}

/* A websocket to spicegate with @token, upgraded. */
WsClient *
harness_open_ws(Harness *h, const char *token, const WsOptions *base)
{
    g_autofree char *path = token ? harness_path(token) : g_strdup("/websockify");
    WsOptions opt = base ? *base : (WsOptions){ 0 };
    WsClient *c;

    opt.path = opt.path ? opt.path : path;
    c = wsc_connect(h->port, &opt);
    wsc_run_until(wsc_cond_answered, c, DEADLINE_MS);
    ck_assert_int_eq(wsc_status(c), 101);
    ck_assert(wsc_upgraded(c));
    return c;
}

/* Opens a console to the fake peer and sends the link message. */
WsClient *
harness_open_console(Harness *h, const WsOptions *opt)
{
    WsClient *c = harness_open_ws(h, "good", opt);
    g_autoptr(GByteArray) link = harness_link_message();

    wsc_send_binary(c, link->data, link->len);
    return c;
}

WsClient *
harness_open_console_with(Harness *h, const char *token)
{
    WsClient *c = harness_open_ws(h, token, NULL);
    g_autoptr(GByteArray) link = harness_link_message();

    wsc_send_binary(c, link->data, link->len);
    return c;
}

/* The session ended with @code and @text: the browser saw the close frame
 * and the end of the connection. */
void
harness_expect_close(WsClient *c, guint16 code, const char *text)
{
    wsc_run_until(wsc_cond_eof, c, DEADLINE_MS);
    ck_assert_msg(wsc_got_close(c), "no close frame");
    ck_assert_uint_eq(wsc_close_code(c), code);
    ck_assert_str_eq(wsc_close_reason(c), text);
    ck_assert_ptr_null(wsc_protocol_error(c));
}

typedef struct {
    FakeSpice *peer;
    guint64 n;
} PeerWait;

static gboolean
peer_received(gpointer data)
{
    PeerWait *w = data;

    return fsp_received_total(w->peer) >= w->n;
}

void
harness_wait_peer_received(Harness *h, guint64 n)
{
    PeerWait w = { h->peer, n };

    wsc_run_until(peer_received, &w, DEADLINE_MS);
}

gboolean
harness_peer_flood_done(gpointer data)
{
    return fsp_flood_done(data);
}

/* The browser stopped reading and the fake peer floods: waits until the
 * relay has stopped, i.e. the peer's socket is full and it has sent
 * nothing more over a few turns of 150 ms (the kernel's socket buffers
 * on the way grow for a while first). */
void
harness_wait_relay_stuck(Harness *h)
{
    guint64 last = G_MAXUINT64;
    guint still = 0;

    for (int i = 0; i < 40; i++) {
        guint64 now = fsp_sent(h->peer);

        still = now == last && fsp_blocked(h->peer) ? still + 1 : 0;
        if (still == 2)
            return;
        last = now;
        wsc_run_for(150);
    }
    ck_abort_msg("the relay never stopped: the peer sent %" G_GUINT64_FORMAT " bytes",
                 fsp_sent(h->peer));
}

/* spicegate closed its connection to the SPICE server. */
gboolean
harness_peer_saw_close(gpointer data)
{
    return fsp_n_peer_closed(data) > 0;
}

