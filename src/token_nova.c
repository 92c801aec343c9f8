/* SPDX-License-Identifier: Apache-2.0 */
/* token_nova.c - the Nova API token backend; see token_nova.h.
 *
 * Owns the HTTP client, the Keystone session, the in-flight lookups (one per
 * distinct token, shared by every websocket waiting on it), the short-lived
 * answer cache and the first-use times that bound session lifetimes. Must
 * not log a console token: only its sg_log_redact() tag.
 */
#include "autoconfig.h"

#include <string.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include "admission.h"
#include "config.h"
#include "httpc.h"
#include "keystone.h"
#include "log.h"
#include "token_nova.h"

/* First-use records are pruned once there are this many, so a flood of
 * distinct tokens cannot grow the table without bound. */
#define SG_NOVA_FIRST_USE_PRUNE 1024

typedef struct {
    SgTokenBackend parent;
    const SgConfig *cfg;
    SgHttpc *hc;
    SgKeystone *ks;
    GHashTable *pending;          /* token -> Pending* */
    GHashTable *cache;            /* token -> CacheEntry* */
    GHashTable *first_use;        /* token -> gint64* (real time, us) */
    SgKeystoneWait *probe_wait;   /* start-up check */
    SgHttpRequest *probe;
} NovaBackend;

typedef struct {
    NovaBackend *nb;
    char *token;
    char *tag;                    /* sg_log_redact(token) */
    GPtrArray *lookups;           /* SgTokenLookup*, not owned */
    SgKeystoneWait *ks_wait;
    SgHttpRequest *req;
    char *service_token;          /* the one the request used */
    bool retried;
    bool finishing;               /* finish() is answering the lookups */
} Pending;

typedef struct {
    SgConsoleTarget *tgt;
    gint64 until_us;              /* monotonic */
} CacheEntry;

static void
wipe_free(gpointer data)
{
    char *s = data;

    if (s != NULL)
        explicit_bzero(s, strlen(s));
    g_free(s);
}

static void
cache_entry_free(gpointer data)
{
    CacheEntry *ce = data;

    sg_console_target_free(ce->tgt);
    g_free(ce);
}

static void
pending_free(Pending *p)
{
    sg_keystone_wait_cancel(p->ks_wait);
    sg_httpc_cancel(p->req);
    wipe_free(p->service_token);
    g_ptr_array_unref(p->lookups);
    g_free(p->tag);
    wipe_free(p->token);
    g_free(p);
}

/* --- parsing -------------------------------------------------------------- */

gboolean
sg_token_nova_parse_reply(const char *body, gsize len, SgConsoleTarget **tgt, GError **error)
{
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autoptr(GError) local = NULL;
    JsonNode *root;
    JsonObject *console = NULL;
    JsonNode *node;
    const char *host;
    gint64 port;
    g_autoptr(SgConsoleTarget) out = NULL;

    if (!json_parser_load_from_data(parser, body, (gssize)len, &local)) {
        g_set_error(error, SG_TOKEN_ERROR, SG_TOKEN_ERROR_UNAVAILABLE,
                    "Nova's reply is not JSON: %s", local->message);
        return FALSE;
    }
    root = json_parser_get_root(parser);
    if (root != NULL && JSON_NODE_HOLDS_OBJECT(root)) {
        node = json_object_get_member(json_node_get_object(root), "console");
        if (node != NULL && JSON_NODE_HOLDS_OBJECT(node))
            console = json_node_get_object(node);
    }
    if (console == NULL) {
        g_set_error(error, SG_TOKEN_ERROR, SG_TOKEN_ERROR_UNAVAILABLE,
                    "Nova's reply has no \"console\" object");
        return FALSE;
    }
    node = json_object_get_member(console, "host");
    if (node == NULL || !JSON_NODE_HOLDS_VALUE(node) ||
        json_node_get_value_type(node) != G_TYPE_STRING ||
        (host = json_node_get_string(node))[0] == '\0' || strlen(host) > 255 ||
        strpbrk(host, " \t\r\n/") != NULL) {
        g_set_error(error, SG_TOKEN_ERROR, SG_TOKEN_ERROR_REFUSED,
                    "Nova's reply has no usable console host");
        return FALSE;
    }
    node = json_object_get_member(console, "port");
    if (node == NULL || !JSON_NODE_HOLDS_VALUE(node) ||
        json_node_get_value_type(node) != G_TYPE_INT64 ||
        (port = json_node_get_int(node)) < 1 || port > 65535) {
        g_set_error(error, SG_TOKEN_ERROR, SG_TOKEN_ERROR_REFUSED,
                    "Nova's reply has no usable console port");
        return FALSE;
    }
    out = sg_console_target_new(host, (uint16_t)port);
    node = json_object_get_member(console, "instance_uuid");
    if (node != NULL && JSON_NODE_HOLDS_VALUE(node) &&
        json_node_get_value_type(node) == G_TYPE_STRING)
        out->instance_uuid = g_strdup(json_node_get_string(node));
    node = json_object_get_member(console, "internal_access_path");
    if (node != NULL && !JSON_NODE_HOLDS_NULL(node)) {
        const char *path;

        if (!JSON_NODE_HOLDS_VALUE(node) || json_node_get_value_type(node) != G_TYPE_STRING) {
            g_set_error(error, SG_TOKEN_ERROR, SG_TOKEN_ERROR_REFUSED,
                        "Nova's internal_access_path is not a string");
            return FALSE;
        }
        path = json_node_get_string(node);
        if (strpbrk(path, "\r\n") != NULL || strlen(path) > 1024) {
            g_set_error(error, SG_TOKEN_ERROR, SG_TOKEN_ERROR_REFUSED,
                        "Nova's internal_access_path is not usable");
            return FALSE;
        }
        if (path[0] != '\0')
            out->internal_access_path = g_strdup(path);
    }
    *tgt = g_steal_pointer(&out);
    return TRUE;
}

/* --- answering -------------------------------------------------------------- */

/* Answers and forgets every lookup waiting on @p, then frees it. A
 * callback may cancel other lookups of @p (they leave p->lookups) or start
 * new ones for the same token (they get a new Pending), so take the
 * lookups off one at a time. */
static void
finish(Pending *p, const SgConsoleTarget *tgt, const GError *error)
{
    NovaBackend *nb = p->nb;

    p->finishing = true;
    g_hash_table_steal(nb->pending, p->token);
    while (p->lookups->len > 0) {
        SgTokenLookup *lookup = g_ptr_array_steal_index(p->lookups, 0);

        sg_token_lookup_set_backend_data(lookup, NULL);
        sg_token_lookup_complete(lookup, tgt, error);
    }
    pending_free(p);
}

static void
finish_error(Pending *p, SgTokenError code, const char *fmt, ...) G_GNUC_PRINTF(3, 4);

static void
finish_error(Pending *p, SgTokenError code, const char *fmt, ...)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    error = g_error_new_literal(SG_TOKEN_ERROR, code, msg);
    finish(p, NULL, error);
}

static gint64
first_use_of(NovaBackend *nb, const char *token)
{
    gint64 now = g_get_real_time();
    gint64 *first = g_hash_table_lookup(nb->first_use, token);

    if (first != NULL)
        return *first;
    if (g_hash_table_size(nb->first_use) >= SG_NOVA_FIRST_USE_PRUNE) {
        GHashTableIter iter;
        gpointer value;

        g_hash_table_iter_init(&iter, nb->first_use);
        while (g_hash_table_iter_next(&iter, NULL, &value)) {
            if (now - *(gint64 *)value > (gint64)nb->cfg->token_ttl_s * G_USEC_PER_SEC)
                g_hash_table_iter_remove(&iter);
        }
    }
    first = g_new(gint64, 1);
    *first = now;
    g_hash_table_insert(nb->first_use, g_strdup(token), first);
    return now;
}

static void ask_keystone(Pending *p);

static void
on_nova_reply(const SgHttpResponse *resp, gpointer data)
{
    Pending *p = data;
    NovaBackend *nb = p->nb;
    g_autoptr(SgConsoleTarget) tgt = NULL;
    g_autoptr(GError) error = NULL;

    p->req = NULL;
    switch (resp->status) {
    case 200:
        if (!sg_token_nova_parse_reply(resp->body, resp->body_len, &tgt, &error)) {
            g_warning("nova: %s: %s", p->tag, error->message);
            finish(p, NULL, error);
            return;
        }
        if (nb->cfg->enforce_session_timeout)
            tgt->expires_at_us = first_use_of(nb, p->token) +
                                 (gint64)nb->cfg->token_ttl_s * G_USEC_PER_SEC;
        if (nb->cfg->nova_cache_s > 0) {
            CacheEntry *ce = g_new0(CacheEntry, 1);

            ce->tgt = sg_console_target_copy(tgt);
            ce->until_us = g_get_monotonic_time() +
                           (gint64)nb->cfg->nova_cache_s * G_USEC_PER_SEC;
            g_hash_table_replace(nb->cache, g_strdup(p->token), ce);
        }
        g_debug("nova: %s -> %s:%u (instance %s)", p->tag, tgt->host, tgt->port,
                tgt->instance_uuid ? tgt->instance_uuid : "?");
        finish(p, tgt, NULL);
        return;
    case 404:
        finish_error(p, SG_TOKEN_ERROR_UNKNOWN, "console token invalid or expired");
        return;
    case 401:
        /* Nova says 401 for two unrelated things. Below microversion 2.31
         * it refuses SPICE console details with {"unauthorized": ...};
         * keystonemiddleware refuses a stale service token with
         * {"error": ...}. Only the second is cured by logging in again. */
        if (resp->body != NULL && strstr(resp->body, "\"unauthorized\"") != NULL) {
            g_warning("nova: Nova refuses console details at microversion %s (HTTP 401 "
                      "\"unauthorized\"): use 2.31 or later", nb->cfg->nova_api_version);
            finish_error(p, SG_TOKEN_ERROR_UNAVAILABLE, "Nova rejected the microversion");
            return;
        }
        /* Our service token expired or was revoked: log in again, once. */
        if (!p->retried) {
            p->retried = true;
            sg_keystone_invalidate(nb->ks, p->service_token);
            ask_keystone(p);
            return;
        }
        g_warning("nova: Nova refuses freshly issued service tokens (HTTP 401); check "
                  "[nova] api_version (2.31 or later) and Nova's keystone_authtoken");
        finish_error(p, SG_TOKEN_ERROR_UNAVAILABLE, "Nova refused the service token");
        return;
    case 403:
        g_warning("nova: Nova answered 403 to os-console-auth-tokens: the [nova] service "
                  "user needs the admin role in its project (policy "
                  "os_compute_api:os-console-auth-tokens)");
        finish_error(p, SG_TOKEN_ERROR_UNAVAILABLE, "service user not allowed to check tokens");
        return;
    case 400:
    case 406:
        g_warning("nova: Nova answered %ld to os-console-auth-tokens with microversion %s: "
                  "check [nova] api_version against Nova's supported range",
                  resp->status, nb->cfg->nova_api_version);
        finish_error(p, SG_TOKEN_ERROR_UNAVAILABLE, "Nova rejected the microversion");
        return;
    case 0:
        g_warning("nova: cannot reach Nova for %s: %s", p->tag, resp->error);
        finish_error(p, SG_TOKEN_ERROR_UNAVAILABLE, "Nova unreachable: %s", resp->error);
        return;
    default:
        g_warning("nova: Nova answered HTTP %ld for %s", resp->status, p->tag);
        finish_error(p, SG_TOKEN_ERROR_UNAVAILABLE, "Nova answered HTTP %ld", resp->status);
        return;
    }
}

static void
on_service_token(const char *token, const char *compute_url, const GError *error,
                 gpointer data)
{
    Pending *p = data;
    NovaBackend *nb = p->nb;
    g_autofree char *escaped = NULL;
    g_autofree char *url = NULL;
    g_autofree char *auth = NULL;
    g_autofree char *version = NULL;
    const char *headers[4];

    p->ks_wait = NULL;
    if (error != NULL) {
        finish_error(p, SG_TOKEN_ERROR_UNAVAILABLE, "%s", error->message);
        return;
    }
    /* Escape everything but unreserved characters: the token lands in a
     * URL path, and "/" or "?" in it must not change which resource we ask
     * for. */
    escaped = g_uri_escape_string(p->token, NULL, FALSE);
    url = g_strdup_printf("%s/os-console-auth-tokens/%s", compute_url, escaped);
    auth = g_strdup_printf("X-Auth-Token: %s", token);
    version = g_strdup_printf("OpenStack-API-Version: compute %s", nb->cfg->nova_api_version);
    headers[0] = auth;
    headers[1] = version;
    headers[2] = "Accept: application/json";
    headers[3] = NULL;
    wipe_free(p->service_token);
    p->service_token = g_strdup(token);
    p->req = sg_httpc_request(nb->hc, "GET", url, headers, NULL, on_nova_reply, p);
    explicit_bzero(auth, strlen(auth));
    explicit_bzero(url, strlen(url));
}

static void
ask_keystone(Pending *p)
{
    p->ks_wait = sg_keystone_get(p->nb->ks, on_service_token, p);
}

/* --- the backend vtable -------------------------------------------------------- */

static void
nova_start(SgTokenBackend *backend, SgTokenLookup *lookup)
{
    NovaBackend *nb = (NovaBackend *)backend;
    const char *token = sg_token_lookup_get_token(lookup);
    CacheEntry *ce;
    Pending *p;

    /* Refuse what cannot be a Nova token before asking Nova about it. */
    if (token[0] == '\0' || strlen(token) > SG_TOKEN_MAX_BYTES ||
        !g_utf8_validate(token, -1, NULL)) {
        g_autoptr(GError) error = g_error_new_literal(SG_TOKEN_ERROR, SG_TOKEN_ERROR_UNKNOWN,
                                                      "console token invalid or expired");

        sg_token_lookup_complete(lookup, NULL, error);
        return;
    }
    ce = g_hash_table_lookup(nb->cache, token);
    if (ce != NULL) {
        if (g_get_monotonic_time() < ce->until_us) {
            sg_token_lookup_complete(lookup, ce->tgt, NULL);
            return;
        }
        g_hash_table_remove(nb->cache, token);
    }
    p = g_hash_table_lookup(nb->pending, token);
    if (p == NULL) {
        p = g_new0(Pending, 1);
        p->nb = nb;
        p->token = g_strdup(token);
        p->tag = sg_log_redact(token);
        p->lookups = g_ptr_array_new();
        g_hash_table_insert(nb->pending, p->token, p);
        ask_keystone(p);
    }
    g_ptr_array_add(p->lookups, lookup);
    sg_token_lookup_set_backend_data(lookup, p);
}

static void
nova_cancel(SgTokenBackend *backend, SgTokenLookup *lookup)
{
    NovaBackend *nb = (NovaBackend *)backend;
    Pending *p = sg_token_lookup_get_backend_data(lookup);

    if (p == NULL)
        return;
    g_ptr_array_remove_fast(p->lookups, lookup);
    sg_token_lookup_set_backend_data(lookup, NULL);
    /* The browser that asked is gone and nobody else waits: stop asking. */
    if (p->lookups->len == 0 && !p->finishing) {
        g_hash_table_steal(nb->pending, p->token);
        pending_free(p);
    }
}

static void
nova_free(SgTokenBackend *backend)
{
    NovaBackend *nb = (NovaBackend *)backend;
    GHashTableIter iter;
    gpointer p;

    g_hash_table_iter_init(&iter, nb->pending);
    while (g_hash_table_iter_next(&iter, NULL, &p)) {
        g_hash_table_iter_steal(&iter);
        pending_free(p);
    }
    sg_keystone_wait_cancel(nb->probe_wait);
    sg_httpc_cancel(nb->probe);
    g_hash_table_unref(nb->pending);
    g_hash_table_unref(nb->cache);
    g_hash_table_unref(nb->first_use);
    sg_keystone_free(nb->ks);
    sg_httpc_free(nb->hc);
    g_free(nb);
}

static const SgTokenBackendVtable nova_vtable = {
    .name = "nova",
    .start = nova_start,
    .cancel = nova_cancel,
    .reload = NULL,
    .free = nova_free,
};

/* --- start-up check ------------------------------------------------------------ */

static void
on_version_reply(const SgHttpResponse *resp, gpointer data)
{
    NovaBackend *nb = data;
    g_autoptr(JsonParser) parser = json_parser_new();
    JsonNode *root;
    JsonObject *version = NULL;
    const char *max = NULL;
    const char *min = NULL;

    nb->probe = NULL;
    if (resp->status != 200) {
        g_warning("nova: GET compute endpoint answered %ld%s%s; token checks may fail",
                  resp->status, resp->error ? ": " : "", resp->error ? resp->error : "");
        return;
    }
    if (json_parser_load_from_data(parser, resp->body, (gssize)resp->body_len, NULL) &&
        (root = json_parser_get_root(parser)) != NULL && JSON_NODE_HOLDS_OBJECT(root)) {
        JsonNode *node = json_object_get_member(json_node_get_object(root), "version");

        if (node != NULL && JSON_NODE_HOLDS_OBJECT(node))
            version = json_node_get_object(node);
    }
    if (version != NULL) {
        JsonNode *n = json_object_get_member(version, "version");

        if (n != NULL && JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_STRING)
            max = json_node_get_string(n);
        n = json_object_get_member(version, "min_version");
        if (n != NULL && JSON_NODE_HOLDS_VALUE(n) && json_node_get_value_type(n) == G_TYPE_STRING)
            min = json_node_get_string(n);
    }
    if (max == NULL) {
        g_warning("nova: the compute endpoint does not report its microversions");
        return;
    }
    {
        guint want_minor = (guint)g_ascii_strtoull(strchr(nb->cfg->nova_api_version, '.') + 1,
                                                   NULL, 10);
        const char *dot = strchr(max, '.');
        guint max_minor = dot ? (guint)g_ascii_strtoull(dot + 1, NULL, 10) : 0;

        if (!g_str_has_prefix(max, "2.") || want_minor > max_minor)
            g_warning("nova: [nova] api_version %s is above what Nova supports (%s..%s): "
                      "every token check will fail with 406", nb->cfg->nova_api_version,
                      min ? min : "?", max);
        else
            sg_message_once("nova: compute API supports %s..%s; using %s", min ? min : "?", max,
                      nb->cfg->nova_api_version);
    }
}

static void
on_probe_token(const char *token, const char *compute_url, const GError *error, gpointer data)
{
    NovaBackend *nb = data;
    g_autofree char *auth = NULL;
    g_autofree char *url = NULL;
    const char *headers[3];

    nb->probe_wait = NULL;
    if (error != NULL)
        return;                   /* keystone.c has logged why */
    auth = g_strdup_printf("X-Auth-Token: %s", token);
    url = g_strdup_printf("%s/", compute_url);
    headers[0] = auth;
    headers[1] = "Accept: application/json";
    headers[2] = NULL;
    nb->probe = sg_httpc_request(nb->hc, "GET", url, headers, NULL, on_version_reply, nb);
    explicit_bzero(auth, strlen(auth));
}

SgTokenBackend *
sg_token_nova_new(const SgConfig *cfg, GError **error)
{
    NovaBackend *nb = g_new0(NovaBackend, 1);
    SgHttpcOptions opts = {
        .ca_file = cfg->nova_ca_file,
        .insecure = cfg->nova_insecure,
        .connect_timeout_ms = MIN(cfg->nova_timeout_s, 5u) * 1000,
        .timeout_ms = cfg->nova_timeout_s * 1000,
    };

    (void)error;
    nb->parent.vtable = &nova_vtable;
    nb->cfg = cfg;
    nb->hc = sg_httpc_new(&opts);
    nb->ks = sg_keystone_new(nb->hc, cfg);
    nb->pending = g_hash_table_new(g_str_hash, g_str_equal);
    nb->cache = g_hash_table_new_full(g_str_hash, g_str_equal, wipe_free, cache_entry_free);
    nb->first_use = g_hash_table_new_full(g_str_hash, g_str_equal, wipe_free, g_free);
    nb->probe_wait = sg_keystone_get(nb->ks, on_probe_token, nb);
    return &nb->parent;
}
