/* SPDX-License-Identifier: Apache-2.0 */
/* token_nova.c - the Nova API token backend; see token_nova.h.
 *
 * Owns the HTTP client, the Keystone session, the in-flight lookups (one per
 * distinct token, shared by every websocket waiting on it; at most [nova]
 * max_concurrent_lookups asking at once, the others queued under the same
 * deadline), the short-lived answer cache (positive and "unknown token"
 * answers, bounded in size and age, keyed by the token's SHA-256) and the
 * first-use times that bound session lifetimes. Must not log a console
 * token: only its sg_log_redact() tag.
 */
#include "autoconfig.h"

#include <string.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include "admission.h"
#include "config.h"
#include "httpc.h"
#include "json_guard.h"
#include "keystone.h"
#include "log.h"
#include "shared_zone.h"
#include "compat.h"
#include "token_nova.h"

/* First-use records are pruned once there are this many, so a flood of
 * distinct tokens cannot grow the table without bound. */
#define SG_NOVA_FIRST_USE_PRUNE 1024
/* Expired cache entries are freed this often, whether or not their token
 * is ever seen again. */
#define SG_NOVA_CACHE_SWEEP_S 10
/* At most one warning per this many seconds about lookups refused while
 * queued; it carries the count since the last one. */
#define SG_NOVA_QUEUE_LOG_INTERVAL_S 10
/* Nova's instance_uuid is kept for the log when it is at most this long. */
#define SG_NOVA_MAX_INSTANCE_BYTES 64

struct SgNovaCache {
    GHashTable *entries;          /* SHA-256 hex of the token -> CacheEntry* */
    GQueue order;                 /* CacheEntry*, oldest insertion first */
    guint max_entries;
    gint64 full_sweep_us;         /* when a full cache was last swept, or 0 */
};

typedef struct {
    char *key;                    /* owned by the entry; also the hash table's key */
    SgConsoleTarget *tgt;         /* NULL: Nova said "unknown token" */
    gint64 until_us;              /* monotonic */
    GList link;                   /* in SgNovaCache.order */
} CacheEntry;

typedef struct {
    SgTokenBackend parent;
    const SgConfig *cfg;
    SgHttpc *hc;
    SgKeystone *ks;
    GHashTable *pending;          /* token -> Pending* (asking or queued) */
    GHashTable *servers;          /* instance uuid -> Pending* asking GET /servers/{id}
                                   * for re-checks (check_instance) */
    SgNovaCache *cache;
    guint sweep_id;               /* frees expired cache entries; 0 when empty */
    GHashTable *first_use;        /* SHA-256 hex of the token -> gint64* (real time, us) */
    guint asking;                 /* Pendings holding a lookup slot */
    GQueue queue;                 /* Pending* waiting for a slot, oldest first */
    guint queue_refusals;         /* refused while queued since the last warning */
    gint64 queue_log_us;          /* monotonic time of that warning; 0: none yet */
    SgKeystoneWait *probe_wait;   /* start-up check */
    SgHttpRequest *probe;
} NovaBackend;

typedef struct {
    NovaBackend *nb;
    char *token;                  /* or the instance uuid, when server */
    char *tag;                    /* sg_log_redact(token), or "instance UUID" */
    bool server;                  /* asks GET /servers/{uuid}, in nb->servers */
    GPtrArray *lookups;           /* SgTokenLookup*, not owned */
    SgKeystoneWait *ks_wait;
    SgHttpRequest *req;
    char *service_token;          /* the one the request used */
    guint deadline_id;            /* [nova] timeout after the browser asked */
    GList qlink;                  /* in NovaBackend.queue while queued */
    bool queued;
    bool was_queued;              /* had to wait for a slot at first */
    bool asking;                  /* holds a lookup slot */
    bool retried;
    bool finishing;               /* finish() is answering the lookups */
    bool background;              /* only re-checks of live consoles' tokens wait on it:
                                   * token.c sums their failures up in one line a round */
    GError *recheck_error;        /* when set, what re-checks get instead of the answer */
} Pending;

/* A warning about one lookup, or a debug line when only re-checks wait on
 * it: with Nova down, one warning per live console per round would flood
 * the log, and token.c says it once per round. */
#define nova_warn(p, ...)                                                          \
    g_log(G_LOG_DOMAIN, (p)->background ? G_LOG_LEVEL_DEBUG : G_LOG_LEVEL_WARNING,  \
          __VA_ARGS__)

static void
wipe_free(gpointer data)
{
    char *s = data;

    if (s != NULL)
        explicit_bzero(s, strlen(s));
    g_free(s);
}

/* --- the answer cache ------------------------------------------------------- */

char *
sg_token_nova_cache_key(const char *token)
{
    return g_compute_checksum_for_string(G_CHECKSUM_SHA256, token, -1);
}

static void
cache_entry_free(gpointer data)
{
    CacheEntry *ce = data;

    sg_console_target_free(ce->tgt);
    g_free(ce->key);
    g_free(ce);
}

SgNovaCache *
sg_nova_cache_new(guint max_entries)
{
    SgNovaCache *c = g_new0(SgNovaCache, 1);

    /* The entry owns its key: the table frees nothing itself. */
    c->entries = g_hash_table_new(g_str_hash, g_str_equal);
    g_queue_init(&c->order);
    c->max_entries = MAX(max_entries, 1u);
    return c;
}

static void
cache_remove(SgNovaCache *c, CacheEntry *ce)
{
    g_hash_table_remove(c->entries, ce->key);
    g_queue_unlink(&c->order, &ce->link);
    cache_entry_free(ce);
}

void
sg_nova_cache_free(SgNovaCache *c)
{
    if (c == NULL)
        return;
    while (!g_queue_is_empty(&c->order))
        cache_remove(c, c->order.head->data);
    g_hash_table_unref(c->entries);
    g_free(c);
}

guint
sg_nova_cache_sweep(SgNovaCache *c, gint64 now_us)
{
    guint removed = 0;
    GList *l = c->order.head;

    while (l != NULL) {
        GList *next = l->next;
        CacheEntry *ce = l->data;

        if (now_us >= ce->until_us) {
            cache_remove(c, ce);
            removed++;
        }
        l = next;
    }
    return removed;
}

void
sg_nova_cache_put(SgNovaCache *c, const char *token, const SgConsoleTarget *tgt,
                  gint64 until_us, gint64 now_us)
{
    g_autofree char *key = sg_token_nova_cache_key(token);
    CacheEntry *ce = g_hash_table_lookup(c->entries, key);

    if (ce != NULL)
        cache_remove(c, ce);
    /* Full: expired answers go first, but a sweep costs every entry, so a
     * flood of unknown tokens that keeps the cache full gets at most one a
     * second; between sweeps the oldest goes, in O(1). With one lifetime
     * per kind of answer, insertion order is nearly expiry order, and a
     * lost answer costs one more Nova request. */
    if (g_hash_table_size(c->entries) >= c->max_entries &&
        (c->full_sweep_us == 0 || now_us - c->full_sweep_us >= G_USEC_PER_SEC)) {
        c->full_sweep_us = now_us;
        sg_nova_cache_sweep(c, now_us);
    }
    while (g_hash_table_size(c->entries) >= c->max_entries)
        cache_remove(c, c->order.head->data);
    ce = g_new0(CacheEntry, 1);
    ce->key = g_steal_pointer(&key);
    ce->tgt = sg_console_target_copy(tgt);
    ce->until_us = until_us;
    ce->link.data = ce;
    g_hash_table_insert(c->entries, ce->key, ce);
    g_queue_push_tail_link(&c->order, &ce->link);
}

gboolean
sg_nova_cache_get(SgNovaCache *c, const char *token, gint64 now_us,
                  const SgConsoleTarget **tgt)
{
    g_autofree char *key = sg_token_nova_cache_key(token);
    CacheEntry *ce = g_hash_table_lookup(c->entries, key);

    *tgt = NULL;
    if (ce == NULL)
        return FALSE;
    if (now_us >= ce->until_us) {
        cache_remove(c, ce);
        return FALSE;
    }
    *tgt = ce->tgt;
    return TRUE;
}

guint
sg_nova_cache_size(const SgNovaCache *c)
{
    return g_hash_table_size(c->entries);
}

static gboolean
on_cache_sweep(gpointer data)
{
    NovaBackend *nb = data;

    sg_nova_cache_sweep(nb->cache, g_get_monotonic_time());
    if (sg_nova_cache_size(nb->cache) > 0)
        return G_SOURCE_CONTINUE;
    nb->sweep_id = 0;
    return G_SOURCE_REMOVE;
}

/* Caches Nova's answer for @token (@tgt NULL: unknown) for @seconds. */
static void
remember(NovaBackend *nb, const char *token, const SgConsoleTarget *tgt, guint seconds)
{
    gint64 now = g_get_monotonic_time();

    if (seconds == 0)
        return;
    sg_nova_cache_put(nb->cache, token, tgt, now + (gint64)seconds * G_USEC_PER_SEC, now);
    if (nb->sweep_id == 0)
        nb->sweep_id = g_timeout_add_seconds(SG_NOVA_CACHE_SWEEP_S, on_cache_sweep, nb);
}

/* --- lookup slots -------------------------------------------------------------- */

static GHashTable *
table_of(const Pending *p)
{
    return p->server ? p->nb->servers : p->nb->pending;
}

/* Frees @p and gives back what it held: its slot, its place in the queue.
 * The caller then calls promote() unless the whole backend goes. */
static void
pending_free(Pending *p)
{
    NovaBackend *nb = p->nb;

    if (p->queued)
        g_queue_unlink(&nb->queue, &p->qlink);
    if (p->asking)
        nb->asking--;
    g_clear_handle_id(&p->deadline_id, g_source_remove);
    sg_keystone_wait_cancel(p->ks_wait);
    sg_httpc_cancel(p->req);
    wipe_free(p->service_token);
    g_clear_error(&p->recheck_error);
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
    gint64 tls_port = 0;
    g_autoptr(SgConsoleTarget) out = NULL;

    if (!sg_json_load_bounded(parser, body, len, &local)) {
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
    /* tls_port (microversion 2.99 and up; null or absent: none): the
     * SPICE server's TLS port, for [spice] tls. */
    node = json_object_get_member(console, "tls_port");
    if (node != NULL && !JSON_NODE_HOLDS_NULL(node) &&
        (!JSON_NODE_HOLDS_VALUE(node) || json_node_get_value_type(node) != G_TYPE_INT64 ||
         (tls_port = json_node_get_int(node)) < 1 || tls_port > 65535)) {
        g_set_error(error, SG_TOKEN_ERROR, SG_TOKEN_ERROR_REFUSED,
                    "Nova's reply has an unusable console tls_port");
        return FALSE;
    }
    /* A console may have only a TLS port: then port may be null. */
    node = json_object_get_member(console, "port");
    if (tls_port != 0 && (node == NULL || JSON_NODE_HOLDS_NULL(node))) {
        port = 0;
    } else if (node == NULL || !JSON_NODE_HOLDS_VALUE(node) ||
               json_node_get_value_type(node) != G_TYPE_INT64 ||
               (port = json_node_get_int(node)) < 1 || port > 65535) {
        g_set_error(error, SG_TOKEN_ERROR, SG_TOKEN_ERROR_REFUSED,
                    "Nova's reply has no usable console port");
        return FALSE;
    }
    out = sg_console_target_new(host, (uint16_t)port);
    out->tls_port = (uint16_t)tls_port;
    node = json_object_get_member(console, "instance_uuid");
    if (node != NULL && JSON_NODE_HOLDS_VALUE(node) &&
        json_node_get_value_type(node) == G_TYPE_STRING) {
        const char *uuid = json_node_get_string(node);

        /* Only for the log lines of every session of the console, where a
         * megabyte of it would be a megabyte per line: a UUID is 36
         * characters; anything else is left out. */
        if (strlen(uuid) <= SG_NOVA_MAX_INSTANCE_BYTES && sg_ascii_all_graph(uuid))
            out->instance_uuid = g_strdup(uuid);
        else
            g_debug("nova: Nova's instance_uuid is not a UUID (%" G_GSIZE_FORMAT " bytes); "
                    "left out of the log", strlen(uuid));
    }
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

static void ask_keystone(Pending *p);

/* Gives free slots to queued lookups, oldest first. Their deadline keeps
 * running: a lookup's time counts from when a browser asked. */
static void
promote(NovaBackend *nb)
{
    while (nb->asking < nb->cfg->nova_max_lookups && !g_queue_is_empty(&nb->queue)) {
        Pending *p = g_queue_pop_head_link(&nb->queue)->data;

        p->queued = false;
        p->asking = true;
        nb->asking++;
        ask_keystone(p);
    }
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
    g_hash_table_steal(table_of(p), p->token);
    while (p->lookups->len > 0) {
        SgTokenLookup *lookup = g_ptr_array_steal_index(p->lookups, 0);

        sg_token_lookup_set_backend_data(lookup, NULL);
        if (p->recheck_error != NULL && sg_token_lookup_is_recheck(lookup))
            sg_token_lookup_complete(lookup, NULL, p->recheck_error);
        else
            sg_token_lookup_complete(lookup, tgt, error);
    }
    pending_free(p);
    promote(nb);
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
    g_autofree char *key = sg_token_nova_cache_key(token);
    gint64 *first = g_hash_table_lookup(nb->first_use, key);

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
    g_hash_table_insert(nb->first_use, g_steal_pointer(&key), first);
    return now;
}

static void
on_nova_reply(const SgHttpResponse *resp, gpointer data)
{
    Pending *p = data;
    NovaBackend *nb = p->nb;
    g_autoptr(SgConsoleTarget) tgt = NULL;
    g_autoptr(GError) error = NULL;

    p->req = NULL;
    sg_zone_note_latency(SG_ZONE_SVC_NOVA, resp->elapsed_us);
    switch (resp->status) {
    case 200:
        if (!sg_token_nova_parse_reply(resp->body, resp->body_len, &tgt, &error)) {
            nova_warn(p, "nova: %s: %s", p->tag, error->message);
            finish(p, NULL, error);
            return;
        }
        if (nb->cfg->enforce_session_timeout)
            tgt->expires_at_us = first_use_of(nb, p->token) +
                                 (gint64)nb->cfg->token_ttl_s * G_USEC_PER_SEC;
        remember(nb, p->token, tgt, nb->cfg->nova_cache_s);
        g_debug("nova: %s -> %s:%u (instance %s)", p->tag, tgt->host, tgt->port,
                tgt->instance_uuid ? tgt->instance_uuid : "?");
        finish(p, tgt, NULL);
        return;
    case 404:
        /* Remembered briefly, so that one bad token (a browser retrying, or
         * someone guessing) does not ask Nova again and again. */
        remember(nb, p->token, NULL, nb->cfg->nova_negative_cache_s);
        /* A re-check closes live consoles on a 404: only on Nova's own
         * (its JSON "itemNotFound"), not on the bare 404 of a proxy or a
         * wrong endpoint, which would otherwise close every console at
         * once. A browser's lookup is refused either way. */
        if (resp->body == NULL || strstr(resp->body, "\"itemNotFound\"") == NULL)
            p->recheck_error = g_error_new_literal(SG_TOKEN_ERROR, SG_TOKEN_ERROR_UNAVAILABLE,
                                                   "Nova answered 404 without its "
                                                   "\"itemNotFound\": is the compute "
                                                   "endpoint right?");
        finish_error(p, SG_TOKEN_ERROR_UNKNOWN, "console token invalid or expired");
        return;
    case 401:
        /* Nova says 401 for two unrelated things. Below microversion 2.31
         * it refuses SPICE console details with {"unauthorized": ...};
         * keystonemiddleware refuses a stale service token with
         * {"error": ...}. Only the second is cured by logging in again. */
        if (resp->body != NULL && strstr(resp->body, "\"unauthorized\"") != NULL) {
            nova_warn(p, "nova: Nova refuses console details at microversion %s (HTTP 401 "
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
        nova_warn(p, "nova: Nova refuses freshly issued service tokens (HTTP 401); check "
                  "[nova] api_version (2.31 or later) and Nova's keystone_authtoken");
        finish_error(p, SG_TOKEN_ERROR_UNAVAILABLE, "Nova refused the service token");
        return;
    case 403:
        nova_warn(p, "nova: Nova answered 403 to os-console-auth-tokens: the [nova] service "
                  "user needs the admin role in its project (policy "
                  "os_compute_api:os-console-auth-tokens)");
        finish_error(p, SG_TOKEN_ERROR_UNAVAILABLE, "service user not allowed to check tokens");
        return;
    case 400:
    case 406:
        nova_warn(p, "nova: Nova answered %ld to os-console-auth-tokens with microversion %s: "
                  "check [nova] api_version against Nova's supported range",
                  resp->status, nb->cfg->nova_api_version);
        finish_error(p, SG_TOKEN_ERROR_UNAVAILABLE, "Nova rejected the microversion");
        return;
    case 0:
        nova_warn(p, "nova: cannot reach Nova for %s: %s", p->tag, resp->error);
        finish_error(p, SG_TOKEN_ERROR_UNAVAILABLE, "Nova unreachable: %s", resp->error);
        return;
    default:
        nova_warn(p, "nova: Nova answered HTTP %ld for %s", resp->status, p->tag);
        finish_error(p, SG_TOKEN_ERROR_UNAVAILABLE, "Nova answered HTTP %ld", resp->status);
        return;
    }
}

char *
sg_token_nova_server_status(const char *body, gsize len)
{
    g_autoptr(JsonParser) parser = json_parser_new();
    JsonNode *root;
    JsonNode *node;

    if (body == NULL || !sg_json_load_bounded(parser, body, len, NULL))
        return NULL;
    root = json_parser_get_root(parser);
    if (root == NULL || !JSON_NODE_HOLDS_OBJECT(root))
        return NULL;
    node = json_object_get_member(json_node_get_object(root), "server");
    if (node == NULL || !JSON_NODE_HOLDS_OBJECT(node))
        return NULL;
    node = json_object_get_member(json_node_get_object(node), "status");
    if (node == NULL || !JSON_NODE_HOLDS_VALUE(node) ||
        json_node_get_value_type(node) != G_TYPE_STRING)
        return NULL;
    return g_strdup(json_node_get_string(node));
}

/* GET /servers/{uuid}, asked when a live console's token is unknown to
 * Nova (expired, reset or revoked: its 404 says no more): only a deleted
 * instance revokes the console. Only re-checks wait on it, so every
 * failure is a debug line here and one warning a round in token.c. */
static void
on_server_reply(const SgHttpResponse *resp, gpointer data)
{
    Pending *p = data;
    NovaBackend *nb = p->nb;
    g_autofree char *status = NULL;

    p->req = NULL;
    sg_zone_note_latency(SG_ZONE_SVC_NOVA, resp->elapsed_us);
    switch (resp->status) {
    case 200:
        status = sg_token_nova_server_status(resp->body, resp->body_len);
        if (status == NULL) {
            nova_warn(p, "nova: Nova's answer about %s has no server status", p->tag);
            finish_error(p, SG_TOKEN_ERROR_UNAVAILABLE, "Nova's server answer has no status");
        } else if (g_str_equal(status, "DELETED") || g_str_equal(status, "SOFT_DELETED")) {
            finish_error(p, SG_TOKEN_ERROR_UNKNOWN, "instance deleted (status %s)", status);
        } else {
            g_autoptr(SgConsoleTarget) alive = sg_console_target_new("", 0);

            alive->instance_uuid = g_strdup(p->token);
            g_debug("nova: %s exists (status %.32s)", p->tag, status);
            finish(p, alive, NULL);
        }
        return;
    case 404:
        /* Nova's own (its JSON "itemNotFound") only: a proxy's or a wrong
         * endpoint's bare 404 says nothing about the instance. */
        if (resp->body == NULL || strstr(resp->body, "\"itemNotFound\"") == NULL)
            finish_error(p, SG_TOKEN_ERROR_UNAVAILABLE, "Nova answered 404 without its "
                         "\"itemNotFound\" about an instance: is the compute endpoint right?");
        else
            finish_error(p, SG_TOKEN_ERROR_UNKNOWN, "instance deleted (not found)");
        return;
    case 401:
        if (!p->retried && (resp->body == NULL ||
                            strstr(resp->body, "\"unauthorized\"") == NULL)) {
            p->retried = true;
            sg_keystone_invalidate(nb->ks, p->service_token);
            ask_keystone(p);
            return;
        }
        finish_error(p, SG_TOKEN_ERROR_UNAVAILABLE, "Nova answered HTTP 401 about an instance");
        return;
    case 0:
        nova_warn(p, "nova: cannot reach Nova for %s: %s", p->tag, resp->error);
        finish_error(p, SG_TOKEN_ERROR_UNAVAILABLE, "Nova unreachable: %s", resp->error);
        return;
    default:
        nova_warn(p, "nova: Nova answered HTTP %ld for %s", resp->status, p->tag);
        finish_error(p, SG_TOKEN_ERROR_UNAVAILABLE, "Nova answered HTTP %ld about an instance",
                     resp->status);
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
    url = g_strdup_printf(p->server ? "%s/servers/%s" : "%s/os-console-auth-tokens/%s",
                          compute_url, escaped);
    auth = g_strdup_printf("X-Auth-Token: %s", token);
    version = g_strdup_printf("OpenStack-API-Version: compute %s", nb->cfg->nova_api_version);
    headers[0] = auth;
    headers[1] = version;
    headers[2] = "Accept: application/json";
    headers[3] = NULL;
    wipe_free(p->service_token);
    p->service_token = g_strdup(token);
    p->req = sg_httpc_request(nb->hc, "GET", url, headers, NULL,
                              p->server ? on_server_reply : on_nova_reply, p);
    explicit_bzero(auth, strlen(auth));
    explicit_bzero(url, strlen(url));
}

static void
ask_keystone(Pending *p)
{
    p->ks_wait = sg_keystone_get(p->nb->ks, on_service_token, p);
}

/* The deadline of every lookup: [nova] timeout after the browser asked,
 * whatever it waits for (a slot, Keystone, Nova, a second try after a stale
 * service token). libcurl's own timeout bounds one request only, and a
 * lookup can make up to four (login, lookup, login, lookup). */
static gboolean
on_deadline(gpointer data)
{
    Pending *p = data;
    NovaBackend *nb = p->nb;
    gint64 now = g_get_monotonic_time();
    const char *service = p->req != NULL ? "Nova" : "Keystone";

    p->deadline_id = 0;
    if (!p->was_queued) {
        /* Worded like libcurl's own timeout, which this one usually beats
         * by a few milliseconds on a lookup's only request. */
        nova_warn(p, "nova: cannot reach %s for %s: no answer within [nova] timeout = %u s",
                  service, p->tag, nb->cfg->nova_timeout_s);
        finish_error(p, SG_TOKEN_ERROR_UNAVAILABLE, "%s unreachable: no answer in time", service);
        return G_SOURCE_REMOVE;
    }
    /* These come in floods: one line per interval, with the count; each
     * one at debug level. */
    g_debug("nova: %s refused: no answer within %u s (%s)", p->tag, nb->cfg->nova_timeout_s,
            p->queued ? "still queued" : "queued first");
    nb->queue_refusals++;
    if (nb->queue_log_us == 0 ||
        now - nb->queue_log_us >= SG_NOVA_QUEUE_LOG_INTERVAL_S * G_USEC_PER_SEC) {
        g_warning("nova: %u lookup(s) refused: no answer within %u s while all %u lookup "
                  "slots were busy ([nova] max_concurrent_lookups); Nova is slow, or flooded "
                  "with unknown tokens", nb->queue_refusals, nb->cfg->nova_timeout_s,
                  nb->cfg->nova_max_lookups);
        nb->queue_refusals = 0;
        nb->queue_log_us = now;
    }
    finish_error(p, SG_TOKEN_ERROR_UNAVAILABLE, "no answer from Nova in time");
    return G_SOURCE_REMOVE;
}

/* --- the backend vtable -------------------------------------------------------- */

static void join(NovaBackend *nb, SgTokenLookup *lookup, const char *key, bool server);

static void
nova_start(SgTokenBackend *backend, SgTokenLookup *lookup)
{
    NovaBackend *nb = (NovaBackend *)backend;
    const char *token = sg_token_lookup_get_token(lookup);
    const SgConsoleTarget *cached;

    /* Refuse what cannot be a Nova token before asking Nova about it. */
    if (token[0] == '\0' || strlen(token) > SG_TOKEN_MAX_BYTES ||
        !g_utf8_validate(token, -1, NULL)) {
        g_autoptr(GError) error = g_error_new_literal(SG_TOKEN_ERROR, SG_TOKEN_ERROR_UNKNOWN,
                                                      "console token invalid or expired");

        sg_token_lookup_complete(lookup, NULL, error);
        return;
    }
    /* A re-check of a live console's token asks Nova itself: the cache
     * would answer for Nova for up to cache_time. */
    if (!sg_token_lookup_is_recheck(lookup) &&
        sg_nova_cache_get(nb->cache, token, g_get_monotonic_time(), &cached)) {
        g_autoptr(GError) error = NULL;

        if (cached == NULL)
            error = g_error_new_literal(SG_TOKEN_ERROR, SG_TOKEN_ERROR_UNKNOWN,
                                        "console token invalid or expired");
        sg_token_lookup_complete(lookup, cached, error);
        return;
    }
    join(nb, lookup, token, false);
}

/* Adds @lookup to the request for @key (a token; an instance uuid when
 * @server), starting one, or queueing it for a slot, if none is in
 * flight. */
static void
join(NovaBackend *nb, SgTokenLookup *lookup, const char *key, bool server)
{
    Pending *p;

    p = g_hash_table_lookup(server ? nb->servers : nb->pending, key);
    if (p == NULL) {
        p = g_new0(Pending, 1);
        p->nb = nb;
        p->server = server;
        p->token = g_strdup(key);
        p->tag = server ? g_strdup_printf("instance %s", key) : sg_log_redact(key);
        p->lookups = g_ptr_array_new();
        p->qlink.data = p;
        p->background = sg_token_lookup_is_recheck(lookup);
        g_hash_table_insert(table_of(p), p->token, p);
        p->deadline_id = g_timeout_add(nb->cfg->nova_timeout_s * 1000, on_deadline, p);
        if (nb->asking < nb->cfg->nova_max_lookups) {
            p->asking = true;
            nb->asking++;
            ask_keystone(p);
        } else {
            /* Every slot is taken (Nova slow, or flooded with made-up
             * tokens): wait, under the deadline a lookup has anyway. */
            p->queued = true;
            p->was_queued = true;
            g_queue_push_tail_link(&nb->queue, &p->qlink);
            g_debug("nova: %s queued: %u lookups in flight (max_concurrent_lookups), "
                    "%u queued", p->tag, nb->asking, nb->queue.length);
        }
    }
    /* A browser waits on it now: its failures are worth a warning. */
    if (!sg_token_lookup_is_recheck(lookup))
        p->background = false;
    g_ptr_array_add(p->lookups, lookup);
    sg_token_lookup_set_backend_data(lookup, p);
}

/* Re-checks only (token.h): no cache, since a round asks each instance
 * once anyway; the same slots, queue and deadline as token lookups. */
static void
nova_check_instance(SgTokenBackend *backend, SgTokenLookup *lookup)
{
    join((NovaBackend *)backend, lookup, sg_token_lookup_get_instance(lookup), true);
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
        g_hash_table_steal(table_of(p), p->token);
        pending_free(p);
        promote(nb);
    }
}

static void
nova_free(SgTokenBackend *backend)
{
    NovaBackend *nb = (NovaBackend *)backend;
    GHashTableIter iter;
    gpointer p;

    for (int i = 0; i < 2; i++) {
        g_hash_table_iter_init(&iter, i == 0 ? nb->pending : nb->servers);
        while (g_hash_table_iter_next(&iter, NULL, &p)) {
            g_hash_table_iter_steal(&iter);
            pending_free(p);
        }
    }
    sg_keystone_wait_cancel(nb->probe_wait);
    sg_httpc_cancel(nb->probe);
    g_hash_table_unref(nb->pending);
    g_hash_table_unref(nb->servers);
    g_clear_handle_id(&nb->sweep_id, g_source_remove);
    sg_nova_cache_free(nb->cache);
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
    .check_instance = nova_check_instance,
};

/* --- start-up check ------------------------------------------------------------ */

gboolean
sg_token_nova_parse_versions(const char *body, gsize len, char **min_version,
                             char **max_version, GError **error)
{
    g_autoptr(JsonParser) parser = json_parser_new();
    JsonNode *root;
    JsonObject *version = NULL;
    const char *max = NULL;
    const char *min = NULL;

    *min_version = NULL;
    *max_version = NULL;
    if (!sg_json_load_bounded(parser, body, len, error))
        return FALSE;
    if ((root = json_parser_get_root(parser)) != NULL && JSON_NODE_HOLDS_OBJECT(root)) {
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
    /* Microversions are "2.93": anything long is not one, and would only
     * make a long log line. */
    if (min != NULL && strlen(min) <= 16)
        *min_version = g_strdup(min);
    if (max != NULL && strlen(max) <= 16)
        *max_version = g_strdup(max);
    return TRUE;
}

static void
on_version_reply(const SgHttpResponse *resp, gpointer data)
{
    NovaBackend *nb = data;
    g_autofree char *max = NULL;
    g_autofree char *min = NULL;
    g_autoptr(GError) error = NULL;

    sg_zone_note_latency(SG_ZONE_SVC_NOVA, resp->elapsed_us);

    nb->probe = NULL;
    if (resp->status == 0) {
        g_warning("nova: cannot reach Nova's compute endpoint: %s; token checks may fail",
                  resp->error);
        return;
    }
    if (resp->status != 200) {
        g_warning("nova: Nova's compute endpoint answered HTTP %ld to GET /; token checks may "
                  "fail", resp->status);
        return;
    }
    if (!sg_token_nova_parse_versions(resp->body, resp->body_len, &min, &max, &error)) {
        g_warning("nova: Nova's version document is not JSON: %s; token checks may fail",
                  error->message);
        return;
    }
    if (max == NULL) {
        g_warning("nova: Nova's version document does not report its microversions");
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
    nb->servers = g_hash_table_new(g_str_hash, g_str_equal);
    nb->cache = sg_nova_cache_new(SG_NOVA_CACHE_MAX_ENTRIES);
    nb->first_use = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    g_queue_init(&nb->queue);
    nb->probe_wait = sg_keystone_get(nb->ks, on_probe_token, nb);
    /* Re-checks take at most half the lookup slots, so that browsers
     * opening consoles are not queued behind a round of them. */
    sg_token_backend_set_revalidate(&nb->parent, cfg->nova_revalidate_s,
                                    MAX(cfg->nova_max_lookups / 2, 1u));
    return &nb->parent;
}
