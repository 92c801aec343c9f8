/* SPDX-License-Identifier: Apache-2.0 */
/* listener.c - lws on the event core: HTTP files, upgrades, websocket events.
 *
 * Owns the lws context and the web roots; the live sessions are in the
 * hub (hub.c), which main.c owns. Each lws callback only translates: it
 * reads what the request says (request.c) and hands it to web.c (every
 * plain HTTP answer), admission.c (every upgrade decision) or session.c,
 * then carries out what they decided. Nothing here decides, and nothing
 * blocks: file bodies are streamed by lws in WRITEABLE callbacks, and the
 * token lookup and upstream connect are asynchronous in session.c.
 */
#include "autoconfig.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <glib.h>
#include <libwebsockets.h>
#include <openssl/ssl.h>

#include "acceptor.h"
#include "admission.h"
#include "client_addr.h"
#include "compat.h"
#include "config.h"
#include "endpoint_tls.h"
#include "http_response.h"
#include "hub.h"
#include "event_core.h"
#include "listener.h"
#include "log.h"
#include "preflight.h"
#include "relay.h"
#include "request.h"
#include "server_cert.h"
#include "session.h"
#include "splice_pipe.h"
#include "token.h"
#include "web.h"

/* lws hands us websocket payload in chunks of at most this size; session.c
 * sizes its flow-control headroom to match (SG_WS_RX_CHUNK_BYTES). */
#define SG_WS_RX_BUFFER_BYTES SG_SESSION_RX_CHUNK_BYTES
/* See pt_serv_buf_size below; shared by every connection of the thread. */
#define SG_PT_SERV_BUF_BYTES (SG_SESSION_RX_CHUNK_BYTES + 4096)
/* Connections one process accepts per wakeup of the listening socket: a
 * burst needs fewer turns of the loop, and the sessions already open
 * still get theirs between batches. */
#define SG_ACCEPT_BATCH 256

struct SgListener {
    const SgConfig *cfg;
    struct lws_context *context;
    struct lws_vhost *vhost;
    SgWeb *web;
    SgSessionEnv env;
    SgLimits limits;              /* env.limits once set (sg_listener_set_limits()) */
    SgHub *hub;                   /* not ours: every live session, each owned by its wsi */
    bool draining;                /* SIGTERM: no new consoles; live ones relay on */
    bool shutting_down;
    bool destroying;
    GSourceFunc on_shutdown_done;
    gpointer shutdown_data;
    guint shutdown_timer;
    guint drain_timer;            /* drain_timeout, or the idle that ends an empty drain */
    int listen_fd;                /* not ours: main.c's or the workers' master's */
    SgAcceptor *acceptor;
    /* The clients that PROXY headers named, one per connection that had
     * one, each its connection's lws opaque user data; freed with the
     * connection (LWS_CALLBACK_WSI_DESTROY) or the listener. */
    GHashTable *proxied;
    bool told_untrusted_forwarded; /* the hint about X-Forwarded-* is logged once */
    SgServerCert *cert;           /* with TLS: what new handshakes get (SIGHUP) */
};

/* Per-connection storage lws allocates for us. */
typedef struct {
    SgHttpFile file;              /* a static file being sent */
    SgSession *sess;
} SgConnData;

/* --- who the client is -------------------------------------------------------- */

/* The one place that decides a request's client (client_addr.h): the
 * connection's address (a PROXY header's source, else the TCP peer), and
 * X-Forwarded-For and -Proto only when that address is a trusted proxy.
 * The session records view->client, so the log, the hub, limits, metrics
 * and /consoles all see the same address. */
static void
decide_client(SgListener *listener, struct lws *wsi, SgClientView *view)
{
    /* An HTTP/2 stream's connection is its network wsi's. */
    const struct sockaddr_storage *conn = lws_get_opaque_user_data(lws_get_network_wsi(wsi));
    struct sockaddr_storage peer;
    socklen_t peer_len = sizeof(peer);
    GPtrArray *xff = sg_request_fragments(wsi, WSI_TOKEN_X_FORWARDED_FOR);
    g_autofree char *xfp = sg_request_custom_header(wsi, "x-forwarded-proto:");

    if (conn == NULL) {
        int fd = sg_lws_socket_fd(wsi);

        if (fd >= 0 && getpeername(fd, (struct sockaddr *)&peer, &peer_len) == 0)
            conn = &peer;
    }
    sg_client_decide(listener->cfg->trusted_proxies, conn, (const char *const *)xff->pdata,
                     xfp, view);
    sg_request_wipe_fragments(xff);
    if (view->ignored_forwarded && !listener->told_untrusted_forwarded) {
        listener->told_untrusted_forwarded = true;
        g_message("ignored X-Forwarded-For/X-Forwarded-Proto from %s, which is not in "
                  "[server] trusted_proxies; if it is your load balancer or proxy, list it "
                  "there (said once)", view->client);
    }
}

/* --- HTTP ------------------------------------------------------------------ */

/* A plain HTTP request: web.c decides the answer, http_response.c writes
 * it. */
static int
serve_http(SgListener *listener, struct lws *wsi, SgConnData *conn, const char *uri)
{
    bool is_get = lws_hdr_total_length(wsi, WSI_TOKEN_GET_URI) > 0;
    bool is_head = lws_hdr_total_length(wsi, WSI_TOKEN_HEAD_URI) > 0;
    int stored = lws_hdr_total_length(wsi, is_get ? WSI_TOKEN_GET_URI : WSI_TOKEN_HEAD_URI);
    SgWebRequest req = {
        .method = is_get ? SG_WEB_GET : is_head ? SG_WEB_HEAD : SG_WEB_OTHER_METHOD,
        .path = uri,
        .stored_len = (gsize)MAX(stored, 0),
        .shutting_down = listener->shutting_down,
        .draining = listener->draining,
    };
    SgWebAnswer answer;
    int ret;

    sg_web_route(listener->web, &req, &answer);
    if (answer.bad_path) {
        SgClientView client;

        decide_client(listener, wsi, &client);
        g_debug("http 400 for %s: bad path", client.client);
        sg_client_view_clear(&client);
    }
    if (answer.file != NULL)
        ret = sg_http_respond_file(wsi, &conn->file, answer.file, answer.mime_type);
    else
        ret = sg_http_respond_text(wsi, answer.status, answer.text);
    sg_web_answer_clear(&answer);
    return ret;
}

/* --- websocket upgrades ------------------------------------------------------ */

/* The handshake, before lws answers 101: admission.c says whether it is
 * one spice-html5 could have sent; anything else gets a 400 here, before
 * lws would just hang up. Returns what LWS_CALLBACK_HTTP_CONFIRM_UPGRADE
 * must return. */
static int
confirm_upgrade(SgListener *listener, struct lws *wsi, const char *upgrade)
{
    g_autofree char *protocols = sg_request_header(wsi, WSI_TOKEN_PROTOCOL);
    g_autofree char *version = sg_request_header(wsi, WSI_TOKEN_VERSION);
    SgHandshake hs = {
        .upgrade = upgrade,
        .has_key = lws_hdr_total_length(wsi, WSI_TOKEN_KEY) > 0,
        .version = version,
        .has_protocols = lws_hdr_total_length(wsi, WSI_TOKEN_PROTOCOL) > 0,
        .protocols = protocols,
    };
    const char *why = sg_admission_check_handshake(&hs);

    if (why == NULL)
        return 0;
    {
        SgClientView client;

        decide_client(listener, wsi, &client);
        g_message("refused upgrade from %s: %.*s", client.client, (int)strcspn(why, "\n"),
                  why);
        sg_client_view_clear(&client);
    }
    return sg_http_send_text(wsi, HTTP_STATUS_BAD_REQUEST, why) < 0 ? -1 : 1;
}

/* The websocket is up: a session from here on, which starts with the
 * token admission.c found or ends with the refusal it decided. */
static void
admit(SgListener *listener, struct lws *wsi, SgConnData *conn)
{
    g_auto(SgClientView) client = { 0 };
    g_autofree char *origin = sg_request_header(wsi, WSI_TOKEN_ORIGIN);
    g_autofree char *host = sg_request_header(wsi, WSI_TOKEN_HOST);
    g_autofree char *authority = sg_request_header(wsi, WSI_TOKEN_HTTP_COLON_AUTHORITY);
    GPtrArray *args = sg_request_fragments(wsi, WSI_TOKEN_HTTP_URI_ARGS);
    char *cookie = sg_request_cookie(wsi);
    SgUpgradeRequest req = {
        /* A draining process takes no new console (it would be cut at the
         * drain's end): 1001 sends the page back through the load
         * balancer, to a healthy instance. */
        .shutting_down = listener->shutting_down || listener->draining,
        .origin = origin,
        .host = host,
        .authority = authority,
        .forwarded_proto = NULL,  /* below: believed only from a trusted proxy */
        .query_args = (const char *const *)args->pdata,
        .cookie = cookie,
    };
    SgAdmissionPolicy policy = {
        .allowed_origins = (const char *const *)listener->cfg->allowed_origins,
        .expected_scheme = listener->cfg->expected_scheme,
    };
    SgCloseReason refusal = SG_CLOSE_INTERNAL;
    const char *detail = NULL;
    char *token;

    decide_client(listener, wsi, &client);
    req.forwarded_proto = client.forwarded_proto;
    conn->sess = sg_session_new(&listener->env, wsi, client.client);
    token = sg_admission_decide(&req, &policy, &refusal, &detail);
    /* Bearer secrets: not left lying around in freed memory
     * (explicit_bzero, unlike memset, is never optimised away). */
    sg_request_wipe_fragments(args);
    if (cookie != NULL) {
        explicit_bzero(cookie, strlen(cookie));
        g_free(cookie);
    }
    if (token == NULL) {
        sg_session_refuse(conn->sess, refusal, detail);
        return;
    }
    sg_session_start(conn->sess, token);
    explicit_bzero(token, strlen(token));
    g_free(token);
}

/* A connection from the acceptor: lws serves it from here on, TLS
 * included, exactly as if its own listening socket had accepted it. */
static void
on_accepted(int fd, const struct sockaddr_storage *proxied_source, gpointer data)
{
    SgListener *listener = data;
    /* What lws_adopt_socket_vhost() does, with the PROXY header's client
     * as the connection's opaque user data (decide_client() reads it). */
    lws_adopt_desc_t desc = {
        .vh = listener->vhost,
        .type = LWS_ADOPT_SOCKET | LWS_ADOPT_HTTP | LWS_ADOPT_ALLOW_SSL,
        .fd.sockfd = fd,
    };

    if (proxied_source != NULL) {
        desc.opaque = g_memdup2(proxied_source, sizeof(*proxied_source));
        g_hash_table_add(listener->proxied, desc.opaque);
    }
    /* On failure lws closes @fd itself. */
    if (lws_adopt_descriptor_vhost_via_info(&desc) == NULL) {
        /* Whether lws destroyed a wsi on the way or not, it is gone. */
        if (desc.opaque != NULL)
            g_hash_table_remove(listener->proxied, desc.opaque);
        g_warning("cannot take on a new connection (out of memory?)");
    }
}

/* Every session has gone, or the grace period is over. */
static gboolean
on_shutdown_complete(gpointer data)
{
    SgListener *listener = data;

    listener->shutdown_timer = 0;
    listener->on_shutdown_done(listener->shutdown_data);
    return G_SOURCE_REMOVE;
}

static void begin_shutdown(SgListener *listener);

/* drain_timeout is over, or the last session of a drain is gone. */
static gboolean
on_drain_over(gpointer data)
{
    SgListener *listener = data;

    listener->drain_timer = 0;
    if (sg_hub_count(listener->hub) > 0)
        g_message("drain over: closing %u session(s)", sg_hub_count(listener->hub));
    begin_shutdown(listener);
    return G_SOURCE_REMOVE;
}

/* --- the one protocol ------------------------------------------------------------ */

static int
on_lws_event(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
             size_t len)
{
    struct lws_vhost *vh = lws_get_vhost(wsi);
    SgListener *listener = vh ? lws_get_vhost_user(vh) : NULL;
    SgConnData *conn = user;

    switch (reason) {
    case LWS_CALLBACK_HTTP:
        return serve_http(listener, wsi, conn, (const char *)in);

    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (conn != NULL && conn->file.open)
            return sg_http_file_on_writeable(wsi, &conn->file);
        return 0;

    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        /* The client left in the middle of a file. */
        if (conn != NULL)
            sg_http_file_close(&conn->file);
        break;

    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
        return confirm_upgrade(listener, wsi, (const char *)in);

    case LWS_CALLBACK_ESTABLISHED:
        admit(listener, wsi, conn);
        return 0;

    case LWS_CALLBACK_RECEIVE:
        if (conn->sess != NULL)
            sg_session_on_receive(conn->sess, in, len, lws_frame_is_binary(wsi));
        return 0;

    case LWS_CALLBACK_RECEIVE_PONG:
        if (conn->sess != NULL)
            sg_session_on_pong(conn->sess);
        return 0;

    case LWS_CALLBACK_SERVER_WRITEABLE:
        return conn->sess != NULL ? sg_session_on_writeable(conn->sess) : 0;

    case LWS_CALLBACK_WSI_DESTROY:
        /* A descriptor is free: if accept() had run out, try again now. */
        sg_acceptor_resume(listener->acceptor);
        /* The connection's own wsi (not an HTTP/2 stream of it) takes
         * its PROXY header's client along. */
        if (lws_get_network_wsi(wsi) == wsi && lws_get_opaque_user_data(wsi) != NULL) {
            g_hash_table_remove(listener->proxied, lws_get_opaque_user_data(wsi));
            lws_set_opaque_user_data(wsi, NULL);
        }
        break;

    case LWS_CALLBACK_OPENSSL_LOAD_EXTRA_SERVER_VERIFY_CERTS:
        /* Creating the vhost: @user is its server SSL_CTX, which a
         * reload gives new certificates (server_cert.c). */
        if (listener != NULL && listener->cert != NULL)
            sg_server_cert_attach(listener->cert, user);
        return 0;

    case LWS_CALLBACK_CLOSED:
        if (conn->sess != NULL) {
            /* The session leaves the hub as it goes. */
            g_clear_pointer(&conn->sess, sg_session_free);
            if (listener->shutting_down && !listener->destroying &&
                sg_hub_count(listener->hub) == 0 && listener->shutdown_timer != 0) {
                /* Last one out: finish the shutdown from the loop, not from
                 * inside an lws callback. */
                g_source_remove(listener->shutdown_timer);
                listener->shutdown_timer = g_idle_add(on_shutdown_complete, listener);
            } else if (listener->draining && !listener->shutting_down &&
                       !listener->destroying && sg_hub_count(listener->hub) == 0 &&
                       listener->drain_timer != 0) {
                /* The last console of a drain ended by itself: nothing is
                 * left to wait for. From the loop, as above. */
                g_source_remove(listener->drain_timer);
                listener->drain_timer = g_idle_add(on_drain_over, listener);
            }
        }
        return 0;

    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

/* The protocol is named "binary": lws echoes a matching name in
 * Sec-WebSocket-Protocol, which spice-html5's `new WebSocket(uri,
 * 'binary')` requires; clients that offer no subprotocol get the first
 * (and only) protocol without the header. */
static const struct lws_protocols protocols[] = {
    {
        .name = "binary",
        .callback = on_lws_event,
        .per_session_data_size = sizeof(SgConnData),
        .rx_buffer_size = SG_WS_RX_BUFFER_BYTES,
        /* Without this lws passes at most rx_buffer_size bytes to each
         * send(), copies the rest of a message aside and needs a loop turn
         * per 16 KiB to send it. Room for one whole message and its header. */
        .tx_packet_size = SG_SESSION_DOWN_MESSAGE_BYTES + 16,
    },
    { 0 }
};

static const lws_retry_bo_t no_validity_timers = {
    .secs_since_valid_ping = 0,
    .secs_since_valid_hangup = 0,
};

SgListener *
sg_listener_new(const SgConfig *cfg, GMainLoop *loop, SgTokenBackend *tokens, SgHub *hub,
                int listen_fd, GError **error)
{
    SgListener *listener = g_new0(SgListener, 1);
    struct lws_context_creation_info info;
    /* lws' libuv event library on the event core's loop: every
     * connection in the one epoll set that a single GSource waits on. */
    void *foreign_loops[1] = { sg_event_core_uv_loop() };
    const char *roots[3] = { cfg->pages_dir, cfg->web_dir, NULL };

    (void)loop;                   /* the event core runs on the default context */
    listener->cfg = cfg;
    listener->listen_fd = listen_fd;
    listener->env.tokens = tokens;
    listener->env.connect_timeout_s = cfg->connect_timeout_s;
    listener->env.link_timeout_s = cfg->link_timeout_s;
    listener->env.idle_timeout_s = cfg->idle_timeout_s;
    listener->env.ping_interval_s = cfg->ping_interval_s;
    listener->env.close_timeout_s = cfg->close_timeout_s;
    listener->env.channels = cfg->spice_channels;
    listener->env.spice_tls = cfg->spice_tls;
    if (cfg->spice_ca_file != NULL) {
        /* Each worker builds its own, and a bad CA file stops it. */
        listener->env.spice_tls_client =
            sg_tls_client_new(cfg->spice_ca_file, cfg->spice_host_subject,
                              cfg->spice_tls_min_version, error);
        if (listener->env.spice_tls_client == NULL) {
            sg_listener_free(listener);
            return NULL;
        }
    }
    listener->hub = hub;
    listener->env.hub = hub;
    listener->proxied = g_hash_table_new_full(NULL, NULL, g_free, NULL);
    if (cfg->pages_dir == NULL) {
        roots[0] = cfg->web_dir;
        roots[1] = NULL;
    }
    listener->web = sg_web_new(roots);
    sg_http_set_policy(cfg->frame_ancestors);

    memset(&info, 0, sizeof(info));
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_VALIDATE_UTF8;
    info.foreign_loops = foreign_loops;
    info.pcontext = &listener->context;
    info.protocols = protocols;
    info.vhost_name = "spicegate";
    /* The socket is ours (listen_socket.c, acceptor.c): lws binds none.
     * NO_LISTEN_SERVER, not NO_LISTEN: the vhost still serves, TLS
     * included, the connections handed to it. */
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    info.user = listener;
    info.gid = -1;
    info.uid = -1;
    info.server_string = "spicegate";
    /* No lws "validity" timers (its default: a ping after 300 s without
     * traffic, a hang-up 10 s later). lws 4.1.6 keeps every connection's
     * timer in one list sorted by deadline and inserts a new one by walking
     * that list from its start, so each websocket opened walked past every
     * idle one: with 10,000 held, new connections ran at 0.37x the rate
     * with none. A browser that vanished is found by TCP keepalive instead
     * (acceptor.c), which the kernel keeps per socket. */
    info.retry_and_idle_policy = &no_validity_timers;
    info.max_http_header_data = SG_REQUEST_HEADERS_MAX_BYTES;
    /* handshake_timeout: lws' TLS accept (timeout_secs), then its hold on
     * a connection's request headers until they are whole (ah_idle). */
    info.timeout_secs = cfg->handshake_timeout_s;
    info.timeout_secs_ah_idle = cfg->handshake_timeout_s;
    /* lws reads the socket into this one per-thread buffer before parsing
     * frames: its 4 KiB default cut a 16 KiB upload frame into five
     * receive callbacks and five sends to the SPICE server. */
    info.pt_serv_buf_size = SG_PT_SERV_BUF_BYTES;
    /* Keepalive pings are session.c's ([server] ping_interval), on the
     * event core's timers: lws' would be the validity timers above. */
    if (cfg->cert != NULL) {
        info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
        /* Like websockify (and so Nova), TLS and plain on one port unless
         * ssl_only: lws peeks at the first byte to tell them apart. */
        if (!cfg->ssl_only)
            info.options |= LWS_SERVER_OPTION_ALLOW_NON_SSL_ON_SSL_PORT |
                            LWS_SERVER_OPTION_ALLOW_HTTP_ON_HTTPS_LISTENER;
        listener->cert = sg_server_cert_new(cfg);
        info.ssl_cert_filepath = cfg->cert;
        info.ssl_private_key_filepath = cfg->key ? cfg->key : cfg->cert;
        info.ssl_cipher_list = cfg->ciphers;
        info.tls1_3_plus_cipher_list = cfg->ciphersuites;
        info.ssl_options_set = SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1 |
                               SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION;
        if (cfg->tls_min_version == SG_TLS_MIN_1_3)
            info.ssl_options_set |= SSL_OP_NO_TLSv1_2;
    }

    /* The event-loop plugin was checked at start (main.c, preflight.c),
     * and so were the TLS files; but a worker the master restarts later
     * reads them anew, and lws takes a key that does not match its
     * certificate without a word (a context that fails every handshake):
     * that worker does not start, and the master tries again. */
    if (cfg->cert != NULL && !sg_preflight_tls(cfg, error)) {
        sg_listener_free(listener);
        return NULL;
    }
    listener->context = lws_create_context(&info);
    if (listener->context == NULL) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                    "libwebsockets could not start on %s%s%s:%u%s; see its error line above",
                    cfg->listen_host && strchr(cfg->listen_host, ':') ? "[" : "",
                    cfg->listen_host ? cfg->listen_host : "*",
                    cfg->listen_host && strchr(cfg->listen_host, ':') ? "]" : "",
                    cfg->listen_port, cfg->cert ? " with TLS" : "");
        sg_listener_free(listener);
        return NULL;
    }
    listener->vhost = lws_get_vhost_by_name(listener->context, "spicegate");
    /* One process takes what is ready; a worker of several takes one
     * connection per wakeup, so that a burst spreads over the workers
     * instead of landing on the first one awake. */
    listener->acceptor = sg_acceptor_new(listen_fd, cfg->workers > 1 ? 1 : SG_ACCEPT_BATCH,
                                         on_accepted, listener);
    /* The PROXY header comes first, before TLS: handshake_timeout covers
     * it too. */
    if (cfg->proxy_protocol)
        sg_acceptor_expect_proxy(listener->acceptor, cfg->trusted_proxies,
                                 cfg->handshake_timeout_s);
    return listener;
}

void
sg_listener_set_limits(SgListener *listener, SgZone *zone, guint index)
{
    const SgConfig *cfg = listener->cfg;

    listener->limits = (SgLimits){
        .zone = zone, .worker = index, .max_sessions = cfg->max_sessions,
        .per_ip = cfg->per_ip, .per_token = cfg->per_token,
    };
    /* No limit set: sessions pay nothing, not even the zone's atomics. */
    listener->env.limits = (cfg->max_sessions > 0 || cfg->per_ip > 0 || cfg->per_token > 0)
                               ? &listener->limits
                               : NULL;
}

SgServerCertResult
sg_listener_reload_cert(SgListener *listener, char **summary)
{
    if (listener == NULL || listener->cert == NULL) {
        *summary = NULL;
        return SG_SERVER_CERT_UNCHANGED;
    }
    return sg_server_cert_reload(listener->cert, summary);
}

struct lws_context *
sg_listener_context(const SgListener *listener)
{
    return listener->context;
}

guint
sg_listener_get_port(const SgListener *listener)
{
    return listener->cfg->listen_port;
}


static void
shutdown_session(const SgHubSession *s, gpointer data)
{
    (void)data;
    sg_session_shutdown(s->owner);
}

static void
begin_shutdown(SgListener *listener)
{
    if (listener->shutting_down)
        return;
    listener->shutting_down = true;
    g_clear_handle_id(&listener->drain_timer, g_source_remove);
    /* A stopping worker takes no more connections; the others may. */
    sg_acceptor_stop(listener->acceptor);
    sg_hub_foreach(listener->hub, shutdown_session, NULL);
    if (sg_hub_count(listener->hub) == 0)
        listener->shutdown_timer = g_idle_add(on_shutdown_complete, listener);
    else
        /* [server] shutdown_timeout: how long the sessions get to send
         * their close frames. */
        listener->shutdown_timer = g_timeout_add(listener->cfg->shutdown_timeout_s * 1000,
                                                 on_shutdown_complete, listener);
}

void
sg_listener_shutdown(SgListener *listener, GSourceFunc done, gpointer user_data)
{
    /* A drain's @done, or this one: the same for both. */
    listener->on_shutdown_done = done;
    listener->shutdown_data = user_data;
    begin_shutdown(listener);
}

void
sg_listener_drain(SgListener *listener, guint drain_s, GSourceFunc done, gpointer user_data)
{
    g_return_if_fail(!listener->draining && !listener->shutting_down);
    listener->draining = true;
    listener->on_shutdown_done = done;
    listener->shutdown_data = user_data;
    /* Before main.c closes the listening socket that it watches. */
    sg_acceptor_stop(listener->acceptor);
    if (drain_s == 0 || sg_hub_count(listener->hub) == 0) {
        begin_shutdown(listener);
        return;
    }
    /* Milliseconds: g_timeout_add_seconds() may fire up to a second late. */
    listener->drain_timer = g_timeout_add(drain_s * 1000, on_drain_over, listener);
}

bool
sg_listener_is_draining(const SgListener *listener)
{
    return listener->draining || listener->shutting_down;
}

void
sg_listener_free(SgListener *listener)
{
    if (listener == NULL)
        return;
    g_clear_handle_id(&listener->shutdown_timer, g_source_remove);
    g_clear_handle_id(&listener->drain_timer, g_source_remove);
    g_clear_pointer(&listener->acceptor, sg_acceptor_free);
    listener->destroying = true;
    /* Destroying the context closes every wsi; their CLOSED callbacks free
     * the sessions, which leave the hub as they go. On a foreign libuv loop
     * lws 4.1 destroys in steps: the first call closes the connections,
     * the loop then completes the closes of lws' handles, and the later
     * calls free what is left. */
    for (int i = 0; i < 4 && listener->context != NULL; i++) {
        /* lws clears listener->context (info.pcontext) once it is freed. */
        lws_context_destroy(listener->context);
        sg_event_core_settle();
    }
    if (listener->context != NULL)
        g_warning("libwebsockets did not finish its shutdown");
    /* The last relay is gone with the last session: what relays share
     * goes too, so nothing of ours outlives the listener. */
    sg_relay_release_shared();
    sg_pipe_pool_clear();
    /* After the context: its SSL_CTX calls back into this. */
    g_clear_pointer(&listener->cert, sg_server_cert_free);
    g_clear_pointer(&listener->web, sg_web_free);
    g_clear_pointer(&listener->proxied, g_hash_table_destroy);
    g_clear_pointer(&listener->env.spice_tls_client, sg_tls_client_free);
    g_free(listener);
}
