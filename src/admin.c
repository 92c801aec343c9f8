/* SPDX-License-Identifier: Apache-2.0 */
/* admin.c - the admin API ([admin] listen) on libwebsockets.
 *
 * Owns: the routes (method, path and query to an action), the bearer
 * token check, the JSON and metrics answers and their errors, and the
 * admin vhost's glue: its acceptor (acceptor.c, the one accept path, no
 * PROXY protocol here) adopts each connection into the "admin" vhost,
 * whose callback hands the request to the routes and streams the answer
 * back through lws' header API (http_response.c). lws parses HTTP, keeps
 * connections alive and times them out. Must not: log the bearer token or
 * the Authorization header, or serve anything but the routes below. Where
 * it runs in each mode, and why: admin.h.
 */
#define _GNU_SOURCE 1             /* explicit_bzero() */
#include "autoconfig.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib-unix.h>
#include <glib.h>
#include <json-glib/json-glib.h>
#include <libwebsockets.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "acceptor.h"
#include "admin.h"
#include "event_core.h"
#include "http_response.h"
#include "log.h"
#include "metrics.h"
#include "request.h"
#include "shared_zone.h"
#include "worker_ctl.h"

/* Bytes of an answer's body handed to lws per writeable callback. */
#define SG_ADMIN_CHUNK_BYTES (32 * 1024)

struct SgAdmin {
    SgAdminContext ctx;
    char *token;
    int listen_fd;                /* -1 until sg_admin_serve() */
    struct lws_vhost *vhost;      /* "admin", in the context we were given */
    SgAcceptor *acceptor;
    guint conns;                  /* connections open */
    /* The admin process only (sg_admin_run_process()): */
    struct lws_context *context;
};

/* Per-connection storage lws allocates for us (zeroed). */
typedef struct {
    char *body;                   /* the answer's body being sent, or NULL */
    gsize len;
    gsize done;
} AdminConn;


char *
sg_admin_read_token(const char *path, GError **error)
{
    g_autofree char *text = NULL;
    gsize len = 0;

    if (!g_file_get_contents(path, &text, &len, error)) {
        g_prefix_error(error, "[admin] token_file: ");
        return NULL;
    }
    g_strchomp(text);
    len = strlen(text);
    for (gsize i = 0; i < len; i++) {
        if (g_ascii_isspace(text[i]) || g_ascii_iscntrl(text[i])) {
            explicit_bzero(text, len);
            g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                        "[admin] token_file: %s: the token holds white space or a control "
                        "character (one token, on one line)", path);
            return NULL;
        }
    }
    if (len == 0 || len > 4096) {
        explicit_bzero(text, len);
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                    "[admin] token_file: %s: %s", path,
                    len == 0 ? "empty (write the token in it)" : "over 4096 bytes");
        return NULL;
    }
    return g_steal_pointer(&text);
}

bool
sg_admin_token_ok(const char *token, const char *authorization)
{
    guchar want[SHA256_DIGEST_LENGTH], got[SHA256_DIGEST_LENGTH];
    const char *given;

    if (token == NULL)
        return true;
    if (authorization == NULL || g_ascii_strncasecmp(authorization, "Bearer ", 7) != 0)
        return false;
    given = authorization + 7;
    while (*given == ' ')
        given++;
    /* Digests of both, compared in constant time: neither where they
     * differ nor the token's length shows in the time taken. */
    SHA256((const guchar *)token, strlen(token), want);
    SHA256((const guchar *)given, strlen(given), got);
    return CRYPTO_memcmp(want, got, sizeof(want)) == 0;
}

/* --- answers ---------------------------------------------------------------- */

static char *
json_text(JsonNode *node)
{
    g_autoptr(JsonGenerator) gen = json_generator_new();
    g_autofree char *text = NULL;

    json_generator_set_root(gen, node);
    json_generator_set_pretty(gen, TRUE);
    text = json_generator_to_data(gen, NULL);
    return g_strconcat(text, "\n", NULL);
}

static void
reply_json(SgAdminReply *reply, guint status, JsonNode *node)
{
    reply->status = status;
    reply->content_type = "application/json";
    reply->body = json_text(node);
    json_node_unref(node);
}

static void
reply_error(SgAdminReply *reply, guint status, const char *message)
{
    g_autoptr(JsonBuilder) b = json_builder_new();

    json_builder_begin_object(b);
    json_builder_set_member_name(b, "error");
    json_builder_add_string_value(b, message);
    json_builder_end_object(b);
    reply_json(reply, status, json_builder_get_root(b));
}

static const char *
member_string(JsonObject *o, const char *name)
{
    JsonNode *n = json_object_get_member(o, name);

    return n != NULL && JSON_NODE_HOLDS_VALUE(n) ? json_node_get_string(n) : NULL;
}

static gint64
member_int(JsonObject *o, const char *name)
{
    JsonNode *n = json_object_get_member(o, name);

    return n != NULL && JSON_NODE_HOLDS_VALUE(n) ? json_node_get_int(n) : 0;
}

/* A copy of member @name of @o, or a null node. */
static JsonNode *
member_copy(JsonObject *o, const char *name)
{
    JsonNode *n = json_object_get_member(o, name);

    return n != NULL ? json_node_copy(n) : json_node_new(JSON_NODE_NULL);
}

static void
add_unique_string(JsonArray *arr, const char *value)
{
    if (value == NULL)
        return;
    for (guint i = 0; i < json_array_get_length(arr); i++) {
        if (g_strcmp0(json_array_get_string_element(arr, i), value) == 0)
            return;
    }
    json_array_add_string_element(arr, value);
}

JsonNode *
sg_admin_consoles_json(JsonArray *sessions, bool complete)
{
    g_autoptr(GHashTable) by_key = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    JsonArray *consoles = json_array_new();
    JsonObject *doc = json_object_new();
    JsonNode *root = json_node_new(JSON_NODE_OBJECT);

    for (guint i = 0; i < json_array_get_length(sessions); i++) {
        JsonObject *s = json_array_get_object_element(sessions, i);
        JsonNode *console_id;
        JsonObject *c = NULL;
        const char *since;

        if (s == NULL)
            continue;
        console_id = json_object_get_member(s, "console");
        if (console_id != NULL && !JSON_NODE_HOLDS_NULL(console_id)) {
            /* One SPICE server gives every channel of a console its id. */
            const char *target = member_string(s, "target");
            g_autofree char *key = g_strdup_printf("%" G_GINT64_FORMAT "@%s",
                                                   json_node_get_int(console_id),
                                                   target != NULL ? target : "");

            c = g_hash_table_lookup(by_key, key);
            if (c == NULL) {
                c = json_object_new();
                g_hash_table_insert(by_key, g_steal_pointer(&key), c);
            }
        } else {
            c = json_object_new();
        }
        if (!json_object_has_member(c, "id")) {
            json_object_set_member(c, "id", member_copy(s, "console"));
            json_object_set_member(c, "instance", member_copy(s, "instance"));
            json_object_set_member(c, "target", member_copy(s, "target"));
            json_object_set_member(c, "token_tag", member_copy(s, "token_tag"));
            json_object_set_member(c, "since", member_copy(s, "since"));
            json_object_set_int_member(c, "bytes_up", 0);
            json_object_set_int_member(c, "bytes_down", 0);
            json_object_set_array_member(c, "clients", json_array_new());
            json_object_set_array_member(c, "channel_types", json_array_new());
            json_object_set_array_member(c, "session_ids", json_array_new());
            json_object_set_array_member(c, "sessions", json_array_new());
            json_array_add_object_element(consoles, json_object_ref(c));
            json_object_unref(c);
        }
        /* RFC 3339 in UTC with fixed digits: the earliest sorts first. */
        since = member_string(s, "since");
        if (since != NULL && g_strcmp0(since, member_string(c, "since")) < 0)
            json_object_set_string_member(c, "since", since);
        if (member_string(c, "instance") == NULL && member_string(s, "instance") != NULL)
            json_object_set_string_member(c, "instance", member_string(s, "instance"));
        json_object_set_int_member(c, "bytes_up",
                                   member_int(c, "bytes_up") + member_int(s, "bytes_up"));
        json_object_set_int_member(c, "bytes_down",
                                   member_int(c, "bytes_down") + member_int(s, "bytes_down"));
        add_unique_string(json_object_get_array_member(c, "clients"),
                          member_string(s, "client_addr"));
        add_unique_string(json_object_get_array_member(c, "channel_types"),
                          member_string(s, "channel"));
        json_array_add_int_element(json_object_get_array_member(c, "session_ids"),
                                   member_int(s, "session"));
        json_array_add_element(json_object_get_array_member(c, "sessions"),
                               json_node_copy(json_array_get_element(sessions, i)));
    }
    json_object_set_int_member(doc, "count", json_array_get_length(consoles));
    json_object_set_boolean_member(doc, "complete", complete);
    json_object_set_array_member(doc, "consoles", consoles);
    json_node_take_object(root, doc);
    return root;
}

static void
route_metrics(SgAdmin *admin, SgAdminReply *reply)
{
    SgZoneStats st;
    SgMetricsInfo info = {
        .version = PACKAGE_VERSION, .start_time_us = admin->ctx.start_time_us,
        .workers = admin->ctx.workers,
    };

    sg_zone_read(admin->ctx.zone, &st);
    reply->status = 200;
    reply->content_type = SG_METRICS_CONTENT_TYPE;
    reply->body = sg_metrics_render(&st, &info);
}

static void
route_consoles(SgAdmin *admin, SgAdminReply *reply)
{
    g_autoptr(JsonArray) sessions = NULL;
    g_autoptr(GError) error = NULL;
    guint answered = 0;
    bool ok = sg_fleet_list(admin->ctx.fleet, admin->ctx.fleet_timeout_ms, &sessions, &answered,
                            &error);

    if (!ok)
        g_warning("admin: GET /consoles: %s; listing the others", error->message);
    reply_json(reply, 200, sg_admin_consoles_json(sessions, ok));
}

static void
route_close(SgAdmin *admin, const SgCtlClose *what, const char *what_text, bool not_found_404,
            SgAdminReply *reply)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(JsonBuilder) b = json_builder_new();
    guint closed = 0, answered = 0;
    bool ok = sg_fleet_close(admin->ctx.fleet, what, admin->ctx.fleet_timeout_ms, &closed,
                             &answered, &error);

    /* An administrator's act: always in the log, with what it named (ids
     * and UUIDs are no secret). */
    g_message("admin: closed %u session(s) of %s (%u of %u worker(s) answered)", closed,
              what_text, answered, admin->ctx.workers);
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "closed");
    json_builder_add_int_value(b, closed);
    json_builder_set_member_name(b, "complete");
    json_builder_add_boolean_value(b, ok);
    if (!ok) {
        json_builder_set_member_name(b, "error");
        json_builder_add_string_value(b, error->message);
    }
    json_builder_end_object(b);
    reply_json(reply, !ok ? 503 : closed == 0 && not_found_404 ? 404 : 200,
               json_builder_get_root(b));
}

/* A positive decimal id, whole. */
static bool
parse_id(const char *text, guint64 *id)
{
    char *end = NULL;

    if (!g_ascii_isdigit(text[0]))
        return false;
    errno = 0;
    *id = g_ascii_strtoull(text, &end, 10);
    return errno == 0 && *end == '\0' && *id > 0;
}

/* The value of query parameter @name in @query ("a=1&b=2"), unescaped,
 * or NULL; NULL too for a value with a control character once unescaped:
 * no instance, console or address has one, so it is a bad request. */
static char *
query_param(const char *query, const char *name)
{
    g_auto(GStrv) pairs = g_strsplit(query, "&", -1);

    for (guint i = 0; pairs[i] != NULL; i++) {
        const char *eq = strchr(pairs[i], '=');
        char *value;

        if (eq == NULL || (gsize)(eq - pairs[i]) != strlen(name) ||
            strncmp(pairs[i], name, strlen(name)) != 0)
            continue;
        value = g_uri_unescape_string(eq + 1, NULL);
        for (const char *p = value; p != NULL && *p != '\0'; p++) {
            if (g_ascii_iscntrl(*p)) {
                g_clear_pointer(&value, g_free);
                break;
            }
        }
        return value;
    }
    return NULL;
}

void
sg_admin_route(SgAdmin *admin, const char *method, const char *target, SgAdminReply *reply)
{
    g_autofree char *path = g_strdup(target);
    char *query = strchr(path, '?');
    bool get = g_str_equal(method, "GET") || g_str_equal(method, "HEAD");
    bool del = g_str_equal(method, "DELETE");

    *reply = (SgAdminReply){ .status = 500 };
    if (query != NULL)
        *query++ = '\0';
    reply->head = g_str_equal(method, "HEAD");
    if (g_str_equal(path, "/metrics")) {
        if (!get) {
            reply->allow = "GET, HEAD";
            reply_error(reply, 405, "method not allowed");
            return;
        }
        route_metrics(admin, reply);
        return;
    }
    if (g_str_equal(path, "/consoles")) {
        /* Which sessions a DELETE names: the first of these present. */
        static const struct {
            const char *param;
            SgCtlBy by;
        } keys[] = {
            { "instance", SG_CTL_BY_INSTANCE },
            { "token_tag", SG_CTL_BY_TOKEN_TAG },
            { "client", SG_CTL_BY_CLIENT_ADDR },
        };

        if (get) {
            route_consoles(admin, reply);
            return;
        }
        if (!del) {
            reply->allow = "GET, HEAD, DELETE";
            reply_error(reply, 405, "method not allowed");
            return;
        }
        for (gsize i = 0; query != NULL && i < G_N_ELEMENTS(keys); i++) {
            g_autofree char *value = query_param(query, keys[i].param);

            if (value != NULL && value[0] != '\0' && strlen(value) <= SG_CTL_VALUE_MAX) {
                SgCtlClose what = { .by = keys[i].by, .value = value,
                                    .reason = SG_CLOSE_ADMIN };
                g_autofree char *text = g_strdup_printf("%s %s", keys[i].param, value);

                route_close(admin, &what, text, false, reply);
                return;
            }
        }
        reply_error(reply, 400, "DELETE /consoles needs ?instance=UUID, ?token_tag=tok:... or "
                                "?client=ADDRESS");
        return;
    }
    if (g_str_has_prefix(path, "/consoles/") || g_str_has_prefix(path, "/sessions/")) {
        bool console = g_str_has_prefix(path, "/consoles/");
        const char *id_text = path + strlen("/consoles/");
        guint64 id = 0;

        if (!parse_id(id_text, &id)) {
            reply_error(reply, 404, console ? "no such console" : "no such session");
            return;
        }
        if (!del) {
            reply->allow = "DELETE";
            reply_error(reply, 405, "method not allowed");
            return;
        }
        {
            SgCtlClose what = { .by = console ? SG_CTL_BY_CONSOLE : SG_CTL_BY_ID, .id = id,
                                .reason = SG_CLOSE_ADMIN };
            g_autofree char *text = g_strdup_printf("%s %" G_GUINT64_FORMAT,
                                                    console ? "console" : "session", id);

            route_close(admin, &what, text, true, reply);
        }
        return;
    }
    reply_error(reply, 404, "not found");
}


void
sg_admin_answer(SgAdmin *admin, const char *method, const char *target,
                const char *authorization, const char *peer, SgAdminReply *reply)
{
    if (!sg_admin_token_ok(admin->token, authorization)) {
        /* Neither the header nor the token: only that it failed. */
        g_message("admin: %s: %s %s refused: %s", peer, method, target,
                  authorization == NULL ? "no bearer token" : "wrong bearer token");
        *reply = (SgAdminReply){ .head = g_str_equal(method, "HEAD") };
        reply_error(reply, 401, "a bearer token is required");
        reply->unauthorized = true;
        return;
    }
    sg_admin_route(admin, method, target, reply);
    g_debug("admin: %s: %s %s -> %u", peer, method, target, reply->status);
}

/* --- on libwebsockets ---------------------------------------------------------- */

/* The request's method as lws parsed it ("?" for one it has no token for:
 * the routes answer 405 or 404). */
static const char *
request_method(struct lws *wsi)
{
    static const struct {
        enum lws_token_indexes token;
        const char *name;
    } methods[] = {
        { WSI_TOKEN_GET_URI, "GET" },       { WSI_TOKEN_HEAD_URI, "HEAD" },
        { WSI_TOKEN_DELETE_URI, "DELETE" }, { WSI_TOKEN_POST_URI, "POST" },
        { WSI_TOKEN_PUT_URI, "PUT" },       { WSI_TOKEN_PATCH_URI, "PATCH" },
        { WSI_TOKEN_OPTIONS_URI, "OPTIONS" },
    };

    for (gsize i = 0; i < G_N_ELEMENTS(methods); i++) {
        if (lws_hdr_total_length(wsi, methods[i].token) > 0)
            return methods[i].name;
    }
    return "?";
}

/* @path and the query lws split into decoded arguments, as one target
 * ("/consoles?instance=..."): each value escaped again, so that the
 * routes' unescaping gives back exactly what lws decoded. */
static char *
request_target(struct lws *wsi, const char *path)
{
    GPtrArray *args = sg_request_fragments(wsi, WSI_TOKEN_HTTP_URI_ARGS);
    GString *target = g_string_new(path);

    for (guint i = 0; i + 1 < args->len; i++) {
        const char *arg = args->pdata[i];
        const char *eq = strchr(arg, '=');

        g_string_append_c(target, i == 0 ? '?' : '&');
        if (eq == NULL) {
            g_string_append_uri_escaped(target, arg, NULL, FALSE);
            continue;
        }
        g_string_append_len(target, arg, eq + 1 - arg);
        g_string_append_uri_escaped(target, eq + 1, NULL, FALSE);
    }
    sg_request_wipe_fragments(args);
    return g_string_free(target, FALSE);
}

/* Ends the transaction: lws keeps the connection for the next request
 * (HTTP/1.1 keep-alive) or closes it. */
static int
transaction_done(struct lws *wsi)
{
    return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int
serve_http(SgAdmin *admin, struct lws *wsi, AdminConn *conn, const char *path)
{
    const char *method = request_method(wsi);
    g_autofree char *target = request_target(wsi, path != NULL ? path : "/");
    g_autofree char *peer = sg_request_peer(wsi);
    char *authorization = sg_request_header(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
    SgAdminReply reply = { 0 };
    const char *extra[5] = { NULL };
    gsize n = 0, len;

    sg_admin_answer(admin, method, target, authorization, peer, &reply);
    /* The request held the bearer token: leave no copy of it behind. */
    if (authorization != NULL)
        explicit_bzero(authorization, strlen(authorization));
    g_free(authorization);
    if (reply.unauthorized) {
        extra[n++] = "www-authenticate:";
        extra[n++] = "Bearer realm=\"spicegate admin\"";
    }
    if (reply.allow != NULL) {
        extra[n++] = "allow:";
        extra[n++] = reply.allow;
    }
    len = reply.body != NULL ? strlen(reply.body) : 0;
    /* The answer must be taken within this long, or the connection goes
     * (lws' own timeouts cover reading the request and keep-alive). */
    lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_CONTENT, SG_ADMIN_CONN_TIMEOUT_S);
    if (sg_http_send_headers(wsi, reply.status,
                             reply.content_type != NULL ? reply.content_type : "text/plain",
                             len, extra) < 0) {
        g_free(reply.body);
        return -1;
    }
    if (len == 0 || lws_hdr_total_length(wsi, WSI_TOKEN_HEAD_URI) > 0) {
        g_free(reply.body);
        lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
        return transaction_done(wsi);
    }
    conn->body = g_steal_pointer(&reply.body);
    conn->len = len;
    conn->done = 0;
    lws_callback_on_writable(wsi);
    return 0;
}

/* The next piece of the body; the end of the transaction after the last. */
static int
send_body(struct lws *wsi, AdminConn *conn)
{
    gsize chunk = MIN(SG_ADMIN_CHUNK_BYTES, conn->len - conn->done);
    bool last = conn->done + chunk == conn->len;
    g_autofree guint8 *buf = g_malloc(LWS_PRE + chunk);

    memcpy(buf + LWS_PRE, conn->body + conn->done, chunk);
    if (lws_write(wsi, buf + LWS_PRE, chunk, last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP) !=
        (int)chunk)
        return -1;
    conn->done += chunk;
    if (!last) {
        lws_callback_on_writable(wsi);
        return 0;
    }
    g_clear_pointer(&conn->body, g_free);
    lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
    return transaction_done(wsi);
}

static int
on_admin_event(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
               size_t len)
{
    struct lws_vhost *vh = lws_get_vhost(wsi);
    SgAdmin *admin = vh != NULL ? lws_get_vhost_user(vh) : NULL;
    AdminConn *conn = user;

    switch (reason) {
    case LWS_CALLBACK_HTTP:
        if (admin == NULL || conn == NULL)
            return -1;
        return serve_http(admin, wsi, conn, in);

    case LWS_CALLBACK_HTTP_WRITEABLE:
        if (conn != NULL && conn->body != NULL)
            return send_body(wsi, conn);
        return 0;

    case LWS_CALLBACK_CLOSED_HTTP:
    case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
        if (conn != NULL)
            g_clear_pointer(&conn->body, g_free);
        break;

    case LWS_CALLBACK_WSI_DESTROY:
        if (admin != NULL && lws_get_network_wsi(wsi) == wsi && admin->conns > 0) {
            admin->conns--;
            /* A descriptor is free: if accept() had run out, try again. */
            sg_acceptor_resume(admin->acceptor);
        }
        break;

    default:
        break;
    }
    return lws_callback_http_dummy(wsi, reason, user, in, len);
}

static const struct lws_protocols admin_protocols[] = {
    {
        .name = "spicegate-admin",
        .callback = on_admin_event,
        .per_session_data_size = sizeof(AdminConn),
    },
    { 0 }
};

static const lws_retry_bo_t admin_no_validity_timers = { 0 };

/* A connection from the acceptor: into the admin vhost, plain HTTP. */
static void
on_accepted(int fd, const struct sockaddr_storage *proxied_source, gpointer data)
{
    SgAdmin *admin = data;
    lws_adopt_desc_t desc = {
        .vh = admin->vhost,
        .type = LWS_ADOPT_SOCKET | LWS_ADOPT_HTTP,
        .fd.sockfd = fd,
    };

    (void)proxied_source;         /* none: no PROXY protocol on this port */
    if (admin->conns >= SG_ADMIN_MAX_CONNS) {
        g_message("admin: %u connections already; one more closed", SG_ADMIN_MAX_CONNS);
        close(fd);
        return;
    }
    /* On failure lws closes @fd itself. */
    if (lws_adopt_descriptor_vhost_via_info(&desc) == NULL) {
        g_warning("admin: cannot take on a new connection (out of memory?)");
        return;
    }
    admin->conns++;
}

SgAdmin *
sg_admin_new(const SgAdminContext *ctx)
{
    SgAdmin *admin = g_new0(SgAdmin, 1);

    admin->listen_fd = -1;
    admin->ctx = *ctx;
    admin->token = g_strdup(ctx->token);
    admin->ctx.token = NULL;
    if (admin->ctx.fleet_timeout_ms <= 0)
        admin->ctx.fleet_timeout_ms = SG_ADMIN_FLEET_TIMEOUT_MS;
    return admin;
}

bool
sg_admin_serve(SgAdmin *admin, struct lws_context *context, int listen_fd, GError **error)
{
    struct lws_context_creation_info info;

    g_return_val_if_fail(admin->vhost == NULL, false);
    admin->listen_fd = listen_fd;
    memset(&info, 0, sizeof(info));
    info.vhost_name = "admin";
    /* The socket is ours (listen_socket.c, acceptor.c): lws binds none.
     * NO_LISTEN, not the public vhost's NO_LISTEN_SERVER (which only
     * matters for TLS, which this vhost has none of): lws 4.1.6 picks the
     * vhost of each HTTP/1 request again by its Host header among the
     * vhosts of the same "port" (lws_select_vhost()), falling back to the
     * first; with the same value as the public vhost, admin requests
     * would be served by it. */
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = admin_protocols;
    info.user = admin;
    /* Plain HTTP (no TLS options, no certificate), HTTP/1.1 keep-alive:
     * an idle connection goes after this long. */
    info.keepalive_timeout = SG_ADMIN_CONN_TIMEOUT_S;
    info.retry_and_idle_policy = &admin_no_validity_timers;
    admin->vhost = lws_create_vhost(context, &info);
    if (admin->vhost == NULL) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                    "[admin] listen: libwebsockets could not create the admin vhost");
        return false;
    }
    /* A scrape or an operator's request at a time: no batch needed. */
    admin->acceptor = sg_acceptor_new(listen_fd, 4, on_accepted, admin);
    sg_acceptor_set_log_prefix(admin->acceptor, "admin: ");
    return true;
}

void
sg_admin_stop(SgAdmin *admin)
{
    if (admin == NULL)
        return;
    g_clear_pointer(&admin->acceptor, sg_acceptor_free);
    if (admin->listen_fd >= 0)
        close(admin->listen_fd);
    admin->listen_fd = -1;
}

void
sg_admin_free(SgAdmin *admin)
{
    if (admin == NULL)
        return;
    sg_admin_stop(admin);
    if (admin->token != NULL)
        explicit_bzero(admin->token, strlen(admin->token));
    g_free(admin->token);
    g_free(admin);
}

/* --- the admin process ----------------------------------------------------------- */

static gboolean
on_stop_signal(gpointer data)
{
    g_main_loop_quit(data);
    return G_SOURCE_CONTINUE;
}

static gboolean
on_hup(gpointer data)
{
    (void)data;
    sg_log_reopen();
    return G_SOURCE_CONTINUE;
}

int
sg_admin_run_process(int listen_fd, const SgAdminContext *ctx)
{
    SgAdmin *admin = sg_admin_new(ctx);
    struct lws_context_creation_info info;
    void *foreign_loops[1];
    g_autoptr(GError) error = NULL;
    GMainLoop *loop = g_main_loop_new(NULL, FALSE);
    guint sig_ids[3];
    int status = 0;

    sig_ids[0] = g_unix_signal_add(SIGTERM, on_stop_signal, loop);
    sig_ids[1] = g_unix_signal_add(SIGINT, on_stop_signal, loop);
    sig_ids[2] = g_unix_signal_add(SIGHUP, on_hup, NULL);
    sg_event_core_start();
    foreign_loops[0] = sg_event_core_uv_loop();
    memset(&info, 0, sizeof(info));
    /* lws' libuv event library on the event core's loop, as a worker's;
     * the admin vhost is its only one. */
    info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_EXPLICIT_VHOSTS;
    info.foreign_loops = foreign_loops;
    info.pcontext = &admin->context;
    info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
    info.gid = -1;
    info.uid = -1;
    info.server_string = "spicegate";
    info.max_http_header_data = SG_ADMIN_MAX_REQUEST;
    /* A request's headers must be whole within this long. */
    info.timeout_secs = SG_ADMIN_CONN_TIMEOUT_S;
    info.timeout_secs_ah_idle = SG_ADMIN_CONN_TIMEOUT_S;
    admin->context = lws_create_context(&info);
    if (admin->context == NULL) {
        g_warning("admin: libwebsockets could not start; see its error line above");
        close(listen_fd);
        status = 1;
    } else if (!sg_admin_serve(admin, admin->context, listen_fd, &error)) {
        g_warning("admin: %s", error->message);
        status = 1;
    } else {
        g_debug("admin process %d serving", (int)getpid());
        g_main_loop_run(loop);
    }
    for (guint i = 0; i < G_N_ELEMENTS(sig_ids); i++)
        g_source_remove(sig_ids[i]);
    sg_admin_stop(admin);
    /* As sg_listener_free(): lws 4.1 on a foreign loop destroys in steps. */
    for (int i = 0; i < 4 && admin->context != NULL; i++) {
        lws_context_destroy(admin->context);
        sg_event_core_settle();
    }
    sg_admin_free(admin);
    sg_event_core_stop();
    g_main_loop_unref(loop);
    return status;
}
