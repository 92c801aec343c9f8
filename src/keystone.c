/* SPDX-License-Identifier: Apache-2.0 */
/* keystone.c - Keystone v3 login, token cache and catalog lookup.
 *
 * Owns the current service token (and its expiry), the compute endpoint,
 * the one login request in flight and the queue of waiters. Must not log a
 * password, an application credential secret or a token.
 */
#include "autoconfig.h"

#include <string.h>

#include <glib.h>
#include <json-glib/json-glib.h>

#include "config.h"
#include "json_guard.h"
#include "compat.h"
#include "keystone.h"
#include "shared_zone.h"
#include "log.h"

G_DEFINE_QUARK(sg-keystone-error-quark, sg_keystone_error)

/* Renew this long before expiry, so a lookup never races the deadline;
 * capped at half the token's life for short-lived test tokens. */
#define SG_KEYSTONE_RENEW_MARGIN_US (300 * G_USEC_PER_SEC)
/* After a failed renewal, keep the old token while it has this much life
 * left, and try to renew again after SG_KEYSTONE_RETRY_US. */
#define SG_KEYSTONE_MIN_LEFT_US (2 * G_USEC_PER_SEC)
#define SG_KEYSTONE_RETRY_US (10 * G_USEC_PER_SEC)
/* The longest service token taken from Keystone (see usable_token()). */
#define SG_KEYSTONE_MAX_TOKEN_BYTES 8192

struct SgKeystone {
    SgHttpc *hc;
    const SgConfig *cfg;
    char *token;
    char *compute_url;
    gint64 renew_at_us;           /* wall clock: log in again from here on */
    gint64 expires_at_us;         /* wall clock: Keystone's expiry */
    SgHttpRequest *login;         /* in flight, at most one */
    GQueue waiters;               /* SgKeystoneWait* */
};

struct SgKeystoneWait {
    SgKeystone *ks;
    SgKeystoneCallback callback;
    gpointer user_data;
    guint idle_id;                /* answering from the cache, deferred */
    GList *link;                  /* in ks->waiters while waiting for a login */
};

/* --- pure helpers ---------------------------------------------------------- */

/* "domain": {"id": ...} or {"name": ...}: Keystone v3 takes either, and an
 * id (OpenStack-Ansible writes user_domain_id = default) wins. */
static void
add_domain(JsonBuilder *b, const char *id, const char *name)
{
    json_builder_set_member_name(b, "domain");
    json_builder_begin_object(b);
    json_builder_set_member_name(b, id != NULL ? "id" : "name");
    json_builder_add_string_value(b, id != NULL ? id : name);
    json_builder_end_object(b);
}

/* Where the credentials Keystone judged were written, for its messages. */
static char *
credentials_origin(const SgConfig *cfg)
{
    if (cfg->nova_conf_section != NULL)
        return g_strdup_printf("[%s] of %s", cfg->nova_conf_section, cfg->nova_conf_files);
    return g_strdup("[nova] of spicegate.conf");
}

char *
sg_keystone_auth_body(const SgConfig *cfg)
{
    g_autoptr(JsonBuilder) b = json_builder_new();
    g_autoptr(JsonGenerator) gen = json_generator_new();
    g_autoptr(JsonNode) root = NULL;
    bool app_cred = cfg->nova_app_cred_id != NULL;

    json_builder_begin_object(b);
    json_builder_set_member_name(b, "auth");
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "identity");
    json_builder_begin_object(b);
    json_builder_set_member_name(b, "methods");
    json_builder_begin_array(b);
    json_builder_add_string_value(b, app_cred ? "application_credential" : "password");
    json_builder_end_array(b);
    if (app_cred) {
        json_builder_set_member_name(b, "application_credential");
        json_builder_begin_object(b);
        json_builder_set_member_name(b, "id");
        json_builder_add_string_value(b, cfg->nova_app_cred_id);
        json_builder_set_member_name(b, "secret");
        json_builder_add_string_value(b, cfg->nova_app_cred_secret);
        json_builder_end_object(b);
    } else {
        json_builder_set_member_name(b, "password");
        json_builder_begin_object(b);
        json_builder_set_member_name(b, "user");
        json_builder_begin_object(b);
        json_builder_set_member_name(b, "name");
        json_builder_add_string_value(b, cfg->nova_username);
        add_domain(b, cfg->nova_user_domain_id, cfg->nova_user_domain_name);
        json_builder_set_member_name(b, "password");
        json_builder_add_string_value(b, cfg->nova_password);
        json_builder_end_object(b);
        json_builder_end_object(b);
    }
    json_builder_end_object(b);   /* identity */
    if (!app_cred) {
        /* An application credential carries its own project scope. */
        json_builder_set_member_name(b, "scope");
        json_builder_begin_object(b);
        json_builder_set_member_name(b, "project");
        json_builder_begin_object(b);
        json_builder_set_member_name(b, "name");
        json_builder_add_string_value(b, cfg->nova_project_name);
        add_domain(b, cfg->nova_project_domain_id, cfg->nova_project_domain_name);
        json_builder_end_object(b);
        json_builder_end_object(b);
    }
    json_builder_end_object(b);   /* auth */
    json_builder_end_object(b);
    root = json_builder_get_root(b);
    json_generator_set_root(gen, root);
    return json_generator_to_data(gen, NULL);
}

static const char *
member_string(JsonObject *obj, const char *name)
{
    JsonNode *node = obj ? json_object_get_member(obj, name) : NULL;

    if (node == NULL || !JSON_NODE_HOLDS_VALUE(node) ||
        json_node_get_value_type(node) != G_TYPE_STRING)
        return NULL;
    return json_node_get_string(node);
}

static JsonObject *
member_object(JsonObject *obj, const char *name)
{
    JsonNode *node = obj ? json_object_get_member(obj, name) : NULL;

    return (node != NULL && JSON_NODE_HOLDS_OBJECT(node)) ? json_node_get_object(node) : NULL;
}

static JsonArray *
member_array(JsonObject *obj, const char *name)
{
    JsonNode *node = obj ? json_object_get_member(obj, name) : NULL;

    return (node != NULL && JSON_NODE_HOLDS_ARRAY(node)) ? json_node_get_array(node) : NULL;
}

static char *
find_compute_url(JsonArray *catalog, const char *interface, const char *region)
{
    for (guint i = 0; catalog != NULL && i < json_array_get_length(catalog); i++) {
        JsonNode *svc_node = json_array_get_element(catalog, i);
        JsonObject *svc = JSON_NODE_HOLDS_OBJECT(svc_node) ? json_node_get_object(svc_node)
                                                            : NULL;
        const char *type = member_string(svc, "type");
        JsonArray *endpoints = member_array(svc, "endpoints");

        if (type == NULL || !g_str_equal(type, "compute") || endpoints == NULL)
            continue;
        for (guint j = 0; j < json_array_get_length(endpoints); j++) {
            JsonNode *ep_node = json_array_get_element(endpoints, j);
            JsonObject *ep = JSON_NODE_HOLDS_OBJECT(ep_node) ? json_node_get_object(ep_node)
                                                              : NULL;
            const char *iface = member_string(ep, "interface");
            const char *url = member_string(ep, "url");
            const char *reg = member_string(ep, "region");
            const char *reg_id = member_string(ep, "region_id");
            g_autofree char *trimmed = NULL;

            if (iface == NULL || url == NULL || !g_str_equal(iface, interface))
                continue;
            if (region != NULL && g_strcmp0(reg, region) != 0 && g_strcmp0(reg_id, region) != 0)
                continue;
            if (!g_str_has_prefix(url, "http://") && !g_str_has_prefix(url, "https://"))
                continue;
            trimmed = g_strdup(url);
            while (g_str_has_suffix(trimmed, "/"))
                trimmed[strlen(trimmed) - 1] = '\0';
            return g_steal_pointer(&trimmed);
        }
    }
    return NULL;
}

gboolean
sg_keystone_parse_token(const char *body, gsize len, const char *interface,
                        const char *region, gint64 *expires_at_us, char **compute_url,
                        GError **error)
{
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autoptr(GError) local = NULL;
    g_autoptr(GDateTime) expires = NULL;
    g_autoptr(GTimeZone) utc = g_time_zone_new_utc();
    JsonNode *root;
    JsonObject *token;
    const char *expires_at;

    if (!sg_json_load_bounded(parser, body, len, &local)) {
        g_set_error(error, SG_KEYSTONE_ERROR, SG_KEYSTONE_ERROR_BAD_REPLY,
                    "Keystone's login reply is not JSON: %s", local->message);
        return FALSE;
    }
    root = json_parser_get_root(parser);
    token = (root && JSON_NODE_HOLDS_OBJECT(root))
                ? member_object(json_node_get_object(root), "token")
                : NULL;
    expires_at = member_string(token, "expires_at");
    if (expires_at == NULL) {
        g_set_error(error, SG_KEYSTONE_ERROR, SG_KEYSTONE_ERROR_BAD_REPLY,
                    "Keystone's login reply has no token.expires_at");
        return FALSE;
    }
    expires = g_date_time_new_from_iso8601(expires_at, utc);
    if (expires == NULL) {
        g_set_error(error, SG_KEYSTONE_ERROR, SG_KEYSTONE_ERROR_BAD_REPLY,
                    "Keystone's token.expires_at is not an ISO 8601 time");
        return FALSE;
    }
    *expires_at_us = g_date_time_to_unix(expires) * G_USEC_PER_SEC +
                     g_date_time_get_microsecond(expires);
    if (compute_url != NULL) {
        *compute_url = find_compute_url(member_array(token, "catalog"), interface, region);
        if (*compute_url == NULL) {
            g_set_error(error, SG_KEYSTONE_ERROR, SG_KEYSTONE_ERROR_BAD_REPLY,
                        "the catalog in Keystone's login reply has no compute endpoint "
                        "for interface %s%s%s "
                        "(set [nova] endpoint_override, interface or region_name)",
                        interface, region ? " in region " : "", region ? region : "");
            return FALSE;
        }
    }
    return TRUE;
}

/* --- the service token ------------------------------------------------------- */

static void
forget_token(SgKeystone *ks)
{
    if (ks->token != NULL)
        explicit_bzero(ks->token, strlen(ks->token));
    g_clear_pointer(&ks->token, g_free);
    g_clear_pointer(&ks->compute_url, g_free);
    ks->renew_at_us = 0;
    ks->expires_at_us = 0;
}

static void
wait_free(SgKeystoneWait *wait)
{
    g_clear_handle_id(&wait->idle_id, g_source_remove);
    g_free(wait);
}

/* Answers every waiter; each callback may cancel other waiters, so take
 * them off the queue one at a time. */
static void
answer_waiters(SgKeystone *ks, const GError *error)
{
    SgKeystoneWait *wait;

    while ((wait = g_queue_pop_head(&ks->waiters)) != NULL) {
        wait->link = NULL;
        if (error != NULL)
            wait->callback(NULL, NULL, error, wait->user_data);
        else
            wait->callback(ks->token, ks->compute_url, NULL, wait->user_data);
        wait_free(wait);
    }
}

/* The service token goes into an X-Auth-Token header of every Nova
 * request: a bare CR or a control character there would let whoever
 * answers for Keystone add headers to them. Fernet tokens are ~200 bytes
 * of URL-safe base64, JWS tokens under 1 KiB. */
static bool
usable_token(const char *token)
{
    return strlen(token) <= SG_KEYSTONE_MAX_TOKEN_BYTES && sg_ascii_all_graph(token);
}

static void
on_login_done(const SgHttpResponse *resp, gpointer data)
{
    SgKeystone *ks = data;
    g_autoptr(GError) error = NULL;
    const char *subject = NULL;
    gint64 expires_at_us = 0;
    g_autofree char *compute_url = NULL;
    g_autofree char *origin = credentials_origin(ks->cfg);

    sg_zone_note_latency(SG_ZONE_SVC_KEYSTONE, resp->elapsed_us);

    ks->login = NULL;
    if (resp->status == 0) {
        error = g_error_new(SG_KEYSTONE_ERROR, SG_KEYSTONE_ERROR_UNAVAILABLE,
                            "Keystone unreachable at %s: %s", ks->cfg->nova_auth_url,
                            resp->error);
    } else if (resp->status == 401 || resp->status == 403) {
        error = g_error_new(SG_KEYSTONE_ERROR, SG_KEYSTONE_ERROR_AUTH,
                            "Keystone refused the credentials in %s (HTTP %ld): check "
                            "username, password, project_name and the domains there, or the "
                            "application credential", origin, resp->status);
    } else if (resp->status != 201 && resp->status != 200) {
        error = g_error_new(SG_KEYSTONE_ERROR, SG_KEYSTONE_ERROR_UNAVAILABLE,
                            "Keystone answered HTTP %ld to the login", resp->status);
    } else if ((subject = g_hash_table_lookup(resp->headers, "x-subject-token")) == NULL ||
               subject[0] == '\0') {
        error = g_error_new(SG_KEYSTONE_ERROR, SG_KEYSTONE_ERROR_BAD_REPLY,
                            "Keystone's login reply has no X-Subject-Token header");
    } else if (!usable_token(subject)) {
        error = g_error_new(SG_KEYSTONE_ERROR, SG_KEYSTONE_ERROR_BAD_REPLY,
                            "Keystone's login reply has an unusable X-Subject-Token header "
                            "(%" G_GSIZE_FORMAT " bytes; not printable ASCII, or over %d)",
                            strlen(subject), SG_KEYSTONE_MAX_TOKEN_BYTES);
    } else if (sg_keystone_parse_token(resp->body, resp->body_len, ks->cfg->nova_interface,
                                       ks->cfg->nova_region, &expires_at_us,
                                       ks->cfg->nova_endpoint ? NULL : &compute_url, &error)) {
        gint64 now = g_get_real_time();
        gint64 margin = MIN(SG_KEYSTONE_RENEW_MARGIN_US, (expires_at_us - now) / 2);

        forget_token(ks);
        ks->token = g_strdup(subject);
        ks->compute_url = compute_url ? g_steal_pointer(&compute_url)
                                      : g_strdup(ks->cfg->nova_endpoint);
        ks->renew_at_us = expires_at_us - MAX(margin, 0);
        ks->expires_at_us = expires_at_us;
        sg_message_once("nova: logged in to Keystone; token valid for %" G_GINT64_FORMAT
                  " s, compute endpoint %s",
                  (expires_at_us - now) / G_USEC_PER_SEC, ks->compute_url);
    }
    if (error != NULL)
        g_warning("nova: %s", error->message);
    /* A renewal that fails before the current token expires is no reason
     * to refuse consoles: keep using it, and try again a little later. */
    if (error != NULL && ks->token != NULL &&
        g_get_real_time() < ks->expires_at_us - SG_KEYSTONE_MIN_LEFT_US) {
        ks->renew_at_us = MIN(g_get_real_time() + SG_KEYSTONE_RETRY_US,
                              ks->expires_at_us - SG_KEYSTONE_MIN_LEFT_US);
        g_message("nova: renewal failed; the current service token is valid for %" G_GINT64_FORMAT
                  " s more and stays in use", (ks->expires_at_us - g_get_real_time()) / G_USEC_PER_SEC);
        g_clear_error(&error);
    }
    answer_waiters(ks, error);
}

static void
start_login(SgKeystone *ks)
{
    g_autofree char *url = g_strdup_printf("%s/auth/tokens", ks->cfg->nova_auth_url);
    g_autofree char *body = sg_keystone_auth_body(ks->cfg);
    const char *headers[] = { "Content-Type: application/json", "Accept: application/json",
                              NULL };

    /* auth_url may be given with or without its /v3 suffix. */
    if (!g_str_has_suffix(ks->cfg->nova_auth_url, "/v3")) {
        g_free(url);
        url = g_strdup_printf("%s/v3/auth/tokens", ks->cfg->nova_auth_url);
    }
    ks->login = sg_httpc_request(ks->hc, "POST", url, headers, body, on_login_done, ks);
    explicit_bzero(body, strlen(body));
}

SgKeystone *
sg_keystone_new(SgHttpc *hc, const SgConfig *cfg)
{
    SgKeystone *ks = g_new0(SgKeystone, 1);

    ks->hc = hc;
    ks->cfg = cfg;
    g_queue_init(&ks->waiters);
    return ks;
}

static gboolean
on_cached_answer(gpointer data)
{
    SgKeystoneWait *wait = data;
    SgKeystone *ks = wait->ks;

    wait->idle_id = 0;
    /* The token may have been invalidated since: then wait for a login. */
    if (ks->token == NULL) {
        wait->link = g_list_alloc();
        wait->link->data = wait;
        g_queue_push_tail_link(&ks->waiters, wait->link);
        if (ks->login == NULL)
            start_login(ks);
        return G_SOURCE_REMOVE;
    }
    wait->callback(ks->token, ks->compute_url, NULL, wait->user_data);
    wait_free(wait);
    return G_SOURCE_REMOVE;
}

SgKeystoneWait *
sg_keystone_get(SgKeystone *ks, SgKeystoneCallback callback, gpointer user_data)
{
    SgKeystoneWait *wait = g_new0(SgKeystoneWait, 1);

    wait->ks = ks;
    wait->callback = callback;
    wait->user_data = user_data;
    if (ks->token != NULL && g_get_real_time() < ks->expires_at_us - SG_KEYSTONE_MIN_LEFT_US) {
        /* Time to renew, but the token still works: renew in the
         * background, so no console waits on Keystone. */
        if (g_get_real_time() >= ks->renew_at_us && ks->login == NULL)
            start_login(ks);
        wait->idle_id = g_idle_add(on_cached_answer, wait);
        return wait;
    }
    wait->link = g_list_alloc();
    wait->link->data = wait;
    g_queue_push_tail_link(&ks->waiters, wait->link);
    if (ks->login == NULL)
        start_login(ks);
    return wait;
}

void
sg_keystone_wait_cancel(SgKeystoneWait *wait)
{
    if (wait == NULL)
        return;
    if (wait->link != NULL) {
        g_queue_delete_link(&wait->ks->waiters, wait->link);
        wait->link = NULL;
    }
    wait_free(wait);
}

void
sg_keystone_invalidate(SgKeystone *ks, const char *token)
{
    if (ks->token != NULL && token != NULL && g_str_equal(ks->token, token)) {
        g_message("nova: the service token was refused; logging in again");
        forget_token(ks);
    }
}

void
sg_keystone_free(SgKeystone *ks)
{
    SgKeystoneWait *wait;

    if (ks == NULL)
        return;
    g_clear_pointer(&ks->login, sg_httpc_cancel);
    while ((wait = g_queue_pop_head(&ks->waiters)) != NULL)
        wait_free(wait);
    forget_token(ks);
    g_free(ks);
}
