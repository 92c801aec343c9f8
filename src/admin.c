/* SPDX-License-Identifier: Apache-2.0 */
/* admin.c - the admin listener: a small HTTP/1.1 server for the admin API.
 *
 * Owns: the admin listening socket, its connections (at most
 * SG_ADMIN_MAX_CONNS, each with a deadline), and the answers. Must not:
 * block on a client (every socket is non-blocking; only the fleet's
 * requests wait, bounded), log the bearer token or the Authorization
 * header, or serve anything but the few routes below. Why it is not
 * libwebsockets and where it runs: admin.h.
 */
#define _GNU_SOURCE 1             /* accept4(), explicit_bzero() */
#include "autoconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib.h>
#include <json-glib/json-glib.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "acceptor.h"
#include "admin.h"
#include "event_core.h"
#include "metrics.h"
#include "shared_zone.h"
#include "worker_ctl.h"

typedef struct {
    int fd;                       /* -1: free */
    char in[SG_ADMIN_MAX_REQUEST];
    gsize in_len;
    char *peer;                   /* "addr:port", for the log */
    GString *out;                 /* NULL while reading */
    gsize out_done;
    gint64 deadline_us;
    SgWatch *watch;               /* on the event core */
} AdminConn;

struct SgAdmin {
    int listen_fd;
    SgAdminContext ctx;
    char *token;
    AdminConn conns[SG_ADMIN_MAX_CONNS];
    /* Out of descriptors: not accepting until then (0: accepting). */
    gint64 accept_paused_until_us;
    SgAcceptFailures accept_failures;
    guint answered;               /* requests answered so far (sg_admin_dispatch()) */
    /* On the event core: */
    bool on_core;
    SgWatch *listen_watch;
    SgTimer *tick;
};


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

/* --- parsing -------------------------------------------------------------- */

/* A request's text holds the bearer token: its copies are wiped before
 * they are freed (g_auto(SgSecret), g_auto(SgSecretv)). */
typedef char *SgSecret;
typedef char **SgSecretv;

static void
secret_free(char *s)
{
    if (s != NULL)
        explicit_bzero(s, strlen(s));
    g_free(s);
}

static void
secretv_free(char **v)
{
    for (gsize i = 0; v != NULL && v[i] != NULL; i++)
        explicit_bzero(v[i], strlen(v[i]));
    g_strfreev(v);
}

G_DEFINE_AUTO_CLEANUP_FREE_FUNC(SgSecret, secret_free, NULL)
G_DEFINE_AUTO_CLEANUP_FREE_FUNC(SgSecretv, secretv_free, NULL)

SgParseResult
sg_admin_parse_request(const char *buf, gsize len, char **method, char **target,
                       char **authorization, const char **reason)
{
    const char *end = memmem(buf, len, "\r\n\r\n", 4);
    g_auto(SgSecret) head = NULL;
    g_auto(SgSecretv) lines = NULL;
    g_auto(GStrv) words = NULL;   /* the request line's: no secret */
    g_auto(SgSecret) auth = NULL;

    *method = *target = *authorization = NULL;
    if (end == NULL) {
        if (len >= SG_ADMIN_MAX_REQUEST) {
            *reason = "request headers too large";
            return SG_PARSE_INVALID;
        }
        return SG_PARSE_AGAIN;
    }
    head = g_strndup(buf, (gsize)(end - buf));
    if (strlen(head) != (gsize)(end - buf)) {
        *reason = "a NUL byte in the request";
        return SG_PARSE_INVALID;
    }
    lines = g_strsplit(head, "\r\n", -1);
    if (lines[0] == NULL) {       /* nothing before the blank line */
        *reason = "not an HTTP/1.x request line";
        return SG_PARSE_INVALID;
    }
    words = g_strsplit(lines[0], " ", -1);
    if (g_strv_length(words) != 3 || words[0][0] == '\0' || words[1][0] != '/' ||
        !(g_str_equal(words[2], "HTTP/1.1") || g_str_equal(words[2], "HTTP/1.0"))) {
        *reason = "not an HTTP/1.x request line";
        return SG_PARSE_INVALID;
    }
    for (guint i = 1; lines[i] != NULL; i++) {
        const char *colon = strchr(lines[i], ':');
        g_autofree char *name = NULL;
        const char *value;

        if (colon == NULL || colon == lines[i]) {
            *reason = "a malformed header line";
            return SG_PARSE_INVALID;
        }
        name = g_ascii_strdown(lines[i], colon - lines[i]);
        value = colon + 1;
        while (*value == ' ' || *value == '\t')
            value++;
        if (g_str_equal(name, "transfer-encoding") ||
            (g_str_equal(name, "content-length") && !g_str_equal(g_strchomp((char *)value),
                                                                 "0"))) {
            *reason = "a request with a body";
            return SG_PARSE_INVALID;
        }
        if (g_str_equal(name, "authorization")) {
            secret_free(auth);
            auth = g_strchomp(g_strdup(value));
        }
    }
    *method = g_strdup(words[0]);
    *target = g_strdup(words[1]);
    *authorization = g_steal_pointer(&auth);
    return SG_PARSE_OK;
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
    bool ok = sg_fleet_list(admin->ctx.fleet, SG_ADMIN_FLEET_TIMEOUT_MS, &sessions, &answered,
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
    bool ok = sg_fleet_close(admin->ctx.fleet, what, SG_ADMIN_FLEET_TIMEOUT_MS, &closed,
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

static const char *
status_text(guint status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 503: return "Service Unavailable";
    default: return "Internal Server Error";
    }
}

static GString *
reply_bytes(const SgAdminReply *reply)
{
    gsize body_len = reply->body != NULL ? strlen(reply->body) : 0;
    GString *out = g_string_sized_new(body_len + 256);

    g_string_append_printf(out, "HTTP/1.1 %u %s\r\nContent-Type: %s\r\n"
                                "Content-Length: %" G_GSIZE_FORMAT "\r\n"
                                "Cache-Control: no-store\r\nConnection: close\r\n",
                           reply->status, status_text(reply->status),
                           reply->content_type != NULL ? reply->content_type : "text/plain",
                           body_len);
    if (reply->unauthorized)
        g_string_append(out, "WWW-Authenticate: Bearer realm=\"spicegate admin\"\r\n");
    if (reply->allow != NULL)
        g_string_append_printf(out, "Allow: %s\r\n", reply->allow);
    g_string_append(out, "\r\n");
    if (!reply->head && body_len > 0)
        g_string_append_len(out, reply->body, (gssize)body_len);
    return out;
}

/* --- connections --------------------------------------------------------------- */

static void
conn_close(AdminConn *c)
{
    g_clear_pointer(&c->watch, sg_watch_remove);
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    /* A request cut short may hold the bearer token. */
    explicit_bzero(c->in, c->in_len);
    c->in_len = 0;
    g_clear_pointer(&c->peer, g_free);
    if (c->out != NULL)
        g_string_free(c->out, TRUE);
    c->out = NULL;
    c->out_done = 0;
}

static void
conn_answer(SgAdmin *admin, AdminConn *c)
{
    g_autofree char *method = NULL;
    g_autofree char *target = NULL;
    g_autofree char *authorization = NULL;
    const char *reason = NULL;
    SgAdminReply reply = { 0 };
    SgParseResult r = sg_admin_parse_request(c->in, c->in_len, &method, &target,
                                             &authorization, &reason);

    if (r == SG_PARSE_AGAIN)
        return;
    if (r == SG_PARSE_INVALID) {
        g_message("admin: %s: %s", c->peer, reason);
        reply_error(&reply, 400, reason);
    } else if (!sg_admin_token_ok(admin->token, authorization)) {
        /* Neither the header nor the token: only that it failed. */
        g_message("admin: %s: %s %s refused: %s", c->peer, method, target,
                  authorization == NULL ? "no bearer token" : "wrong bearer token");
        reply_error(&reply, 401, "a bearer token is required");
        reply.unauthorized = true;
    } else {
        sg_admin_route(admin, method, target, &reply);
        g_debug("admin: %s: %s %s -> %u", c->peer, method, target, reply.status);
    }
    c->out = reply_bytes(&reply);
    admin->answered++;
    g_free(reply.body);
    /* The request held the bearer token: leave no copy of it behind. */
    if (authorization != NULL)
        explicit_bzero(authorization, strlen(authorization));
    explicit_bzero(c->in, c->in_len);
}

/* Reads or writes what @c can now; false when it is done with. */
static bool
conn_io(SgAdmin *admin, AdminConn *c, short revents)
{
    if (c->out == NULL && (revents & (POLLIN | POLLHUP | POLLERR))) {
        ssize_t n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, MSG_DONTWAIT);

        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return true;
        if (n <= 0)
            return false;
        c->in_len += (gsize)n;
        conn_answer(admin, c);
    }
    if (c->out != NULL) {
        ssize_t n = send(c->fd, c->out->str + c->out_done, c->out->len - c->out_done,
                         MSG_DONTWAIT | MSG_NOSIGNAL);

        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return true;
        if (n < 0)
            return false;
        c->out_done += (gsize)n;
        if (c->out_done == c->out->len) {
            /* All sent: say so, then close (unread request bytes would
             * turn the close into a reset and lose the answer). */
            shutdown(c->fd, SHUT_WR);
            return false;
        }
    }
    return true;
}

static void
accept_all(SgAdmin *admin)
{
    for (;;) {
        struct sockaddr_storage ss;
        socklen_t slen = sizeof(ss);
        int fd = accept4(admin->listen_fd, (struct sockaddr *)&ss, &slen,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        AdminConn *c = NULL;
        g_autoptr(GSocketAddress) addr = NULL;

        if (fd < 0) {
            /* Out of descriptors, the connection stays in the backlog and
             * the socket readable: watching it meanwhile would spin the
             * loop (the master's, or the one that relays every console). */
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
                errno != ECONNABORTED && sg_accept_failed(&admin->accept_failures, errno)) {
                admin->accept_paused_until_us =
                    g_get_monotonic_time() + SG_ACCEPT_BACKOFF_MS * 1000;
                if (admin->listen_watch != NULL)
                    sg_watch_modify(admin->listen_watch, 0);
            }
            return;
        }
        sg_accept_worked(&admin->accept_failures);
        for (guint i = 0; i < SG_ADMIN_MAX_CONNS; i++) {
            if (admin->conns[i].fd < 0) {
                c = &admin->conns[i];
                break;
            }
        }
        if (c == NULL) {
            g_message("admin: %u connections already; one more closed", SG_ADMIN_MAX_CONNS);
            close(fd);
            continue;
        }
        c->fd = fd;
        c->deadline_us = g_get_monotonic_time() + SG_ADMIN_CONN_TIMEOUT_MS * 1000;
        addr = g_socket_address_new_from_native(&ss, slen);
        if (G_IS_INET_SOCKET_ADDRESS(addr)) {
            g_autofree char *ip = g_inet_address_to_string(
                g_inet_socket_address_get_address(G_INET_SOCKET_ADDRESS(addr)));

            c->peer = g_strdup_printf("%s:%u", ip,
                                      g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(addr)));
        } else {
            c->peer = g_strdup("?");
        }
    }
}

static void
expire(SgAdmin *admin)
{
    gint64 now = g_get_monotonic_time();

    if (admin->accept_paused_until_us != 0 && now >= admin->accept_paused_until_us) {
        admin->accept_paused_until_us = 0;
        if (admin->listen_watch != NULL)
            sg_watch_modify(admin->listen_watch, G_IO_IN);
    }

    for (guint i = 0; i < SG_ADMIN_MAX_CONNS; i++) {
        if (admin->conns[i].fd >= 0 && now >= admin->conns[i].deadline_us) {
            g_message("admin: %s: no whole request within %d ms; closed", admin->conns[i].peer,
                      SG_ADMIN_CONN_TIMEOUT_MS);
            conn_close(&admin->conns[i]);
        }
    }
}

SgAdmin *
sg_admin_new(int listen_fd, const SgAdminContext *ctx)
{
    SgAdmin *admin = g_new0(SgAdmin, 1);

    admin->listen_fd = listen_fd;
    admin->accept_failures.prefix = "admin: ";
    /* The master's poll() ends the back-off on time; the event core's
     * tick (below) within a second. */
    admin->accept_failures.retry = "within a second";
    admin->ctx = *ctx;
    admin->token = g_strdup(ctx->token);
    admin->ctx.token = NULL;
    for (guint i = 0; i < SG_ADMIN_MAX_CONNS; i++)
        admin->conns[i].fd = -1;
    return admin;
}

void
sg_admin_free(SgAdmin *admin)
{
    if (admin == NULL)
        return;
    for (guint i = 0; i < SG_ADMIN_MAX_CONNS; i++)
        conn_close(&admin->conns[i]);
    g_clear_pointer(&admin->listen_watch, sg_watch_remove);
    g_clear_pointer(&admin->tick, sg_timer_remove);
    close(admin->listen_fd);
    if (admin->token != NULL)
        explicit_bzero(admin->token, strlen(admin->token));
    g_free(admin->token);
    g_free(admin);
}

/* --- the master's poll() -------------------------------------------------------- */

guint
sg_admin_fill_pollfds(SgAdmin *admin, struct pollfd *pfds, guint max)
{
    guint n = 0;

    if (n < max && admin->accept_paused_until_us == 0)
        pfds[n++] = (struct pollfd){ .fd = admin->listen_fd, .events = POLLIN };
    for (guint i = 0; i < SG_ADMIN_MAX_CONNS && n < max; i++) {
        AdminConn *c = &admin->conns[i];

        if (c->fd >= 0)
            pfds[n++] = (struct pollfd){ .fd = c->fd,
                                         .events = c->out != NULL ? POLLOUT : POLLIN };
    }
    return n;
}

static void
handle_fd(SgAdmin *admin, int fd, short revents)
{
    if (fd == admin->listen_fd) {
        accept_all(admin);
        return;
    }
    for (guint i = 0; i < SG_ADMIN_MAX_CONNS; i++) {
        if (admin->conns[i].fd == fd && !conn_io(admin, &admin->conns[i], revents))
            conn_close(&admin->conns[i]);
    }
}

void
sg_admin_dispatch(SgAdmin *admin, const struct pollfd *pfds, guint n)
{
    for (guint i = 0; i < n; i++) {
        guint answered = admin->answered;

        if (pfds[i].revents == 0)
            continue;
        handle_fd(admin, pfds[i].fd, pfds[i].revents);
        /* One request answered per turn of the master's loop: an answer
         * may wait up to SG_ADMIN_FLEET_TIMEOUT_MS for a stuck worker, and
         * between two of them the master must reap, restart, handle
         * signals and feed the watchdog. The others are still readable:
         * the next poll() returns at once. */
        if (admin->answered != answered)
            break;
    }
    expire(admin);
}

int
sg_admin_timeout_ms(const SgAdmin *admin)
{
    gint64 now = g_get_monotonic_time(), next = G_MAXINT64;

    if (admin->accept_paused_until_us != 0)
        next = admin->accept_paused_until_us;
    for (guint i = 0; i < SG_ADMIN_MAX_CONNS; i++) {
        if (admin->conns[i].fd >= 0)
            next = MIN(next, admin->conns[i].deadline_us);
    }
    if (next == G_MAXINT64)
        return -1;
    return next <= now ? 0 : (int)MIN((next - now + 999) / 1000, G_MAXINT);
}

/* --- the event core ---------------------------------------------------------- */

static void core_sync(SgAdmin *admin);

static void
on_core_io(SgWatch *watch, int fd, GIOCondition ready, gpointer data)
{
    SgAdmin *admin = data;
    short revents = (short)(((ready & G_IO_IN) ? POLLIN : 0) | ((ready & G_IO_OUT) ? POLLOUT : 0) |
                            ((ready & G_IO_HUP) ? POLLHUP : 0) | ((ready & G_IO_ERR) ? POLLERR : 0));

    (void)watch;
    handle_fd(admin, fd, revents);
    core_sync(admin);
}

/* Watches what each connection waits for now (a handful of descriptors:
 * set again after every event). */
static void
core_sync(SgAdmin *admin)
{
    for (guint i = 0; i < SG_ADMIN_MAX_CONNS; i++) {
        AdminConn *c = &admin->conns[i];
        GIOCondition want = c->out != NULL ? G_IO_OUT : G_IO_IN;

        if (c->fd < 0)
            continue;
        if (c->watch == NULL)
            c->watch = sg_watch_fd(c->fd, want, on_core_io, admin);
        else if (sg_watch_get_events(c->watch) != want)
            sg_watch_modify(c->watch, want);
    }
}

static gboolean
on_core_tick(gpointer data)
{
    SgAdmin *admin = data;

    expire(admin);
    return G_SOURCE_CONTINUE;
}

void
sg_admin_attach_core(SgAdmin *admin)
{
    int flags = fcntl(admin->listen_fd, F_GETFL);

    if (flags >= 0)
        fcntl(admin->listen_fd, F_SETFL, flags | O_NONBLOCK);
    admin->on_core = true;
    admin->listen_watch = sg_watch_fd(admin->listen_fd, G_IO_IN, on_core_io, admin);
    /* Deadlines are checked once a second: a slow client costs a slot
     * for SG_ADMIN_CONN_TIMEOUT_MS plus at most that. */
    admin->tick = sg_timer_add(1000, on_core_tick, admin);
}
