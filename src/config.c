/* SPDX-License-Identifier: Apache-2.0 */
/* config.c - defaults, the configuration file, and command-line overrides.
 *
 * Owns the key table: the single list of every setting, its default and its
 * parser. GKeyFile reads the values; a small scan of our own maps each key
 * to its line so that every error names file, line, group and key, which
 * GKeyFile alone cannot do. Nothing here opens sockets or reads token files.
 */
#include "autoconfig.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>
#include <spice/protocol.h>

#include "client_addr.h"
#include "config.h"
#include "endpoint_tls.h"
#include "workers.h"

G_DEFINE_QUARK(sg-config-error-quark, sg_config_error)

#define SG_DEFAULT_LISTEN "0.0.0.0:6082"

/* --- value parsers ------------------------------------------------------ */

static gboolean
parse_uint(const char *value, guint min, guint max, guint *out, GError **error)
{
    guint64 v;

    if (!g_ascii_string_to_unsigned(value, 10, min, max, &v, NULL)) {
        g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_VALUE,
                    "'%s' is not a whole number from %u to %u", value, min, max);
        return FALSE;
    }
    *out = (guint)v;
    return TRUE;
}

static gboolean
parse_bool(const char *value, bool *out, GError **error)
{
    static const char *const yes[] = { "true", "yes", "on", "1", NULL };
    static const char *const no[] = { "false", "no", "off", "0", NULL };

    for (guint i = 0; yes[i] != NULL; i++) {
        if (g_ascii_strcasecmp(value, yes[i]) == 0) {
            *out = true;
            return TRUE;
        }
        if (g_ascii_strcasecmp(value, no[i]) == 0) {
            *out = false;
            return TRUE;
        }
    }
    g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_VALUE,
                "'%s' is not a boolean (true or false)", value);
    return FALSE;
}

/* Empty means unset, for optional strings. */
static void
set_string(char **field, const char *value)
{
    g_free(*field);
    *field = (value[0] != '\0') ? g_strdup(value) : NULL;
}

static gboolean
apply_listen(SgConfig *cfg, const char *value, GError **error)
{
    return sg_config_set_listen(cfg, value, NULL, error);
}

static gboolean parse_listen(const char *value, char **host, guint *port, GError **error);

static gboolean
apply_admin_listen(SgConfig *cfg, const char *value, GError **error)
{
    char *host = NULL;
    guint port = 0;

    if (value[0] == '\0') {
        cfg->admin_enabled = false;
        g_clear_pointer(&cfg->admin_host, g_free);
        return TRUE;
    }
    if (!parse_listen(value, &host, &port, error))
        return FALSE;
    g_free(cfg->admin_host);
    cfg->admin_host = host;
    cfg->admin_port = (uint16_t)port;
    cfg->admin_enabled = true;
    return TRUE;
}

static gboolean
apply_admin_token_file(SgConfig *cfg, const char *value, GError **error)
{
    (void)error;
    set_string(&cfg->admin_token_file, value);
    return TRUE;
}

static gboolean
apply_web(SgConfig *cfg, const char *value, GError **error)
{
    set_string(&cfg->web_dir, value);
    return TRUE;
}

static gboolean
apply_pages(SgConfig *cfg, const char *value, GError **error)
{
    set_string(&cfg->pages_dir, value);
    return TRUE;
}

static gboolean
apply_allowed_origins(SgConfig *cfg, const char *value, GError **error)
{
    g_auto(GStrv) parts = g_strsplit_set(value, ", \t", -1);
    g_autoptr(GPtrArray) list = g_ptr_array_new_with_free_func(g_free);

    for (guint i = 0; parts[i] != NULL; i++) {
        if (parts[i][0] == '\0')
            continue;
        if (strchr(parts[i], '/') != NULL) {
            g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_VALUE,
                        "'%s' is not a hostname (list hostnames, not URLs)", parts[i]);
            return FALSE;
        }
        g_ptr_array_add(list, g_ascii_strdown(parts[i], -1));
    }
    g_ptr_array_add(list, NULL);
    g_strfreev(cfg->allowed_origins);
    cfg->allowed_origins = (char **)g_ptr_array_free(g_steal_pointer(&list), FALSE);
    return TRUE;
}

/* [server] trusted_proxies: parsed here, so that a typo is an error at
 * start with the file's line, not a proxy silently untrusted. */
static gboolean
apply_trusted_proxies(SgConfig *cfg, const char *value, GError **error)
{
    g_autoptr(GError) local = NULL;
    SgTrustedProxies *tp = sg_trusted_proxies_parse(value, &local);

    if (tp == NULL) {
        g_set_error_literal(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_VALUE, local->message);
        return FALSE;
    }
    sg_trusted_proxies_free(cfg->trusted_proxies);
    cfg->trusted_proxies = tp;
    return TRUE;
}

static gboolean
apply_proxy_protocol(SgConfig *cfg, const char *value, GError **error)
{
    return parse_bool(value, &cfg->proxy_protocol, error);
}

/* Sources for CSP frame-ancestors: '*' (any page may frame the console, the
 * default: Horizon frames it from wherever it runs), 'self', 'none', or
 * origins such as https://dashboard.example.org, the host may start with
 * a "*." wildcard.
 * Each is checked here because the value is copied into a header: nothing
 * that could end a directive (';', ',') or the header. */
static gboolean
frame_ancestor_ok(const char *source)
{
    const char *rest;

    if (g_str_equal(source, "*") || g_str_equal(source, "'self'") ||
        g_str_equal(source, "'none'"))
        return TRUE;
    rest = strstr(source, "://");
    if (rest == NULL || rest == source)
        return FALSE;
    for (const char *p = source; p < rest; p++) {
        if (!g_ascii_isalnum(*p) && *p != '+' && *p != '-' && *p != '.')
            return FALSE;
    }
    rest += 3;
    if (*rest == '\0')
        return FALSE;
    for (const char *p = rest; *p != '\0'; p++) {
        /* host (a leading "*." wildcard allowed), port, path */
        if (!g_ascii_isalnum(*p) && strchr("-._~*:/[]%", *p) == NULL)
            return FALSE;
    }
    return TRUE;
}

/* Longer lists would crowd the other headers out of the buffer every
 * answer's headers are written in (http_response.c). */
#define SG_FRAME_ANCESTORS_MAX_BYTES 1024

static gboolean
apply_frame_ancestors(SgConfig *cfg, const char *value, GError **error)
{
    g_auto(GStrv) parts = g_strsplit_set(value, ", \t", -1);
    g_autoptr(GPtrArray) list = g_ptr_array_new();

    for (guint i = 0; parts[i] != NULL; i++) {
        if (parts[i][0] == '\0')
            continue;
        if (g_ascii_strcasecmp(parts[i], "self") == 0 ||
            g_ascii_strcasecmp(parts[i], "none") == 0) {
            g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_VALUE,
                        "'%s': write '%s' with its single quotes", parts[i], parts[i]);
            return FALSE;
        }
        if (!frame_ancestor_ok(parts[i])) {
            g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_VALUE,
                        "'%s' is not a frame ancestor: write *, 'self', 'none' or origins "
                        "such as https://dashboard.example.org",
                        parts[i]);
            return FALSE;
        }
        g_ptr_array_add(list, parts[i]);
    }
    if (list->len == 0) {
        g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_VALUE,
                    "empty: write * to let any page frame the console, or 'none'");
        return FALSE;
    }
    if (list->len > 1 && (g_ptr_array_find_with_equal_func(list, "'none'", g_str_equal, NULL))) {
        g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_VALUE,
                    "'none' cannot be combined with other sources");
        return FALSE;
    }
    g_ptr_array_add(list, NULL);
    {
        g_autofree char *joined = g_strjoinv(" ", (char **)list->pdata);

        if (strlen(joined) > SG_FRAME_ANCESTORS_MAX_BYTES) {
            g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_VALUE,
                        "%" G_GSIZE_FORMAT " bytes of sources, more than %d: name the "
                        "dashboards' origins only", strlen(joined),
                        SG_FRAME_ANCESTORS_MAX_BYTES);
            return FALSE;
        }
        g_free(cfg->frame_ancestors);
        cfg->frame_ancestors = g_steal_pointer(&joined);
    }
    return TRUE;
}

static gboolean
apply_handshake_timeout(SgConfig *cfg, const char *value, GError **error)
{
    return parse_uint(value, 1, 300, &cfg->handshake_timeout_s, error);
}

static gboolean
apply_connect_timeout(SgConfig *cfg, const char *value, GError **error)
{
    return parse_uint(value, 1, 300, &cfg->connect_timeout_s, error);
}

static gboolean
apply_link_timeout(SgConfig *cfg, const char *value, GError **error)
{
    return parse_uint(value, 1, 300, &cfg->link_timeout_s, error);
}

/* Up to a week: longer is no different from off. */
static gboolean
apply_idle_timeout(SgConfig *cfg, const char *value, GError **error)
{
    return parse_uint(value, 0, 7 * 24 * 3600, &cfg->idle_timeout_s, error);
}

/* Up to an hour: a load balancer or NAT that cuts a quiet connection does so
 * within minutes, and a browser that vanished is found after three of them. */
static gboolean
apply_ping_interval(SgConfig *cfg, const char *value, GError **error)
{
    return parse_uint(value, 0, 3600, &cfg->ping_interval_s, error);
}

static gboolean
apply_close_timeout(SgConfig *cfg, const char *value, GError **error)
{
    return parse_uint(value, 1, 300, &cfg->close_timeout_s, error);
}

static gboolean
apply_drain_timeout(SgConfig *cfg, const char *value, GError **error)
{
    /* A day: a drain is for consoles to end by themselves, behind a load
     * balancer that sends new ones elsewhere; longer is a forgotten stop. */
    return parse_uint(value, 0, 24 * 3600, &cfg->drain_timeout_s, error);
}

static gboolean
apply_shutdown_timeout(SgConfig *cfg, const char *value, GError **error)
{
    return parse_uint(value, 1, 300, &cfg->shutdown_timeout_s, error);
}

/* "auto": one per CPU, which is what spreads a busy host's sessions over
 * every core; more would only add context switches. */
static gboolean
apply_workers(SgConfig *cfg, const char *value, GError **error)
{
    if (g_ascii_strcasecmp(value, "auto") == 0) {
        cfg->workers = (guint)CLAMP(g_get_num_processors(), 1, SG_WORKERS_MAX);
        return TRUE;
    }
    return parse_uint(value, 1, SG_WORKERS_MAX, &cfg->workers, error);
}

static gboolean
apply_log_format(SgConfig *cfg, const char *value, GError **error)
{
    if (g_str_equal(value, "text")) {
        cfg->log_format = SG_LOG_TEXT;
        return TRUE;
    }
    if (g_str_equal(value, "json")) {
        cfg->log_format = SG_LOG_JSON;
        return TRUE;
    }
    g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_VALUE,
                "'%s' is not one of text, json", value);
    return FALSE;
}

static gboolean
apply_cert(SgConfig *cfg, const char *value, GError **error)
{
    set_string(&cfg->cert, value);
    return TRUE;
}

static gboolean
apply_key(SgConfig *cfg, const char *value, GError **error)
{
    set_string(&cfg->key, value);
    return TRUE;
}

static gboolean
apply_ssl_only(SgConfig *cfg, const char *value, GError **error)
{
    return parse_bool(value, &cfg->ssl_only, error);
}

static gboolean
apply_minimum_version(SgConfig *cfg, const char *value, GError **error)
{
    /* Nova's [console] ssl_minimum_version names; tlsv1_1 and older are
     * refused on purpose rather than quietly raised. */
    if (g_str_equal(value, "tlsv1_2") || g_str_equal(value, "default")) {
        cfg->tls_min_version = SG_TLS_MIN_1_2;
        return TRUE;
    }
    if (g_str_equal(value, "tlsv1_3")) {
        cfg->tls_min_version = SG_TLS_MIN_1_3;
        return TRUE;
    }
    g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_VALUE,
                "'%s' is not one of tlsv1_2, tlsv1_3, default", value);
    return FALSE;
}

static gboolean
apply_ciphers(SgConfig *cfg, const char *value, GError **error)
{
    set_string(&cfg->ciphers, value);
    return TRUE;
}

static gboolean
apply_ciphersuites(SgConfig *cfg, const char *value, GError **error)
{
    set_string(&cfg->ciphersuites, value);
    return TRUE;
}

static gboolean
apply_token_backend(SgConfig *cfg, const char *value, GError **error)
{
    if (!g_str_equal(value, "file") && !g_str_equal(value, "nova")) {
        g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_VALUE,
                    "'%s' is not a token backend (supported: file, nova)", value);
        return FALSE;
    }
    set_string(&cfg->token_backend, value);
    return TRUE;
}

static gboolean
apply_token_file(SgConfig *cfg, const char *value, GError **error)
{
    set_string(&cfg->token_file, value);
    return TRUE;
}

static gboolean
apply_base_url(SgConfig *cfg, const char *value, GError **error)
{
    g_autoptr(GUri) uri = NULL;
    const char *scheme;

    if (value[0] == '\0') {
        g_clear_pointer(&cfg->base_url, g_free);
        g_clear_pointer(&cfg->expected_scheme, g_free);
        return TRUE;
    }
    uri = g_uri_parse(value, G_URI_FLAGS_NONE, NULL);
    scheme = uri ? g_uri_get_scheme(uri) : NULL;
    if (scheme == NULL || (g_ascii_strcasecmp(scheme, "http") != 0 &&
                           g_ascii_strcasecmp(scheme, "https") != 0)) {
        g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_VALUE,
                    "'%s' is not an http:// or https:// URL", value);
        return FALSE;
    }
    set_string(&cfg->base_url, value);
    g_free(cfg->expected_scheme);
    cfg->expected_scheme = g_ascii_strdown(scheme, -1);
    return TRUE;
}

static gboolean
apply_url(char **field, const char *value, GError **error)
{
    if (value[0] != '\0' && !g_str_has_prefix(value, "http://") &&
        !g_str_has_prefix(value, "https://")) {
        g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_VALUE,
                    "'%s' is not an http:// or https:// URL", value);
        return FALSE;
    }
    set_string(field, value);
    /* Endpoints are joined with "/path": no trailing slash. */
    while (*field != NULL && g_str_has_suffix(*field, "/") && strlen(*field) > 8)
        (*field)[strlen(*field) - 1] = '\0';
    return TRUE;
}

#define STRING_SETTER(fn, field)                                         \
    static gboolean fn(SgConfig *cfg, const char *value, GError **error) \
    {                                                                    \
        (void)error;                                                     \
        set_string(&cfg->field, value);                                  \
        return TRUE;                                                     \
    }

STRING_SETTER(apply_nova_username, nova_username)
STRING_SETTER(apply_nova_password, nova_password)
STRING_SETTER(apply_nova_user_domain, nova_user_domain_name)
STRING_SETTER(apply_nova_project, nova_project_name)
STRING_SETTER(apply_nova_project_domain, nova_project_domain_name)
STRING_SETTER(apply_nova_user_domain_id, nova_user_domain_id)
STRING_SETTER(apply_nova_project_domain_id, nova_project_domain_id)
STRING_SETTER(apply_nova_app_cred_id, nova_app_cred_id)
STRING_SETTER(apply_nova_app_cred_secret, nova_app_cred_secret)
STRING_SETTER(apply_nova_region, nova_region)
STRING_SETTER(apply_nova_ca_file, nova_ca_file)

static gboolean
apply_nova_auth_url(SgConfig *cfg, const char *value, GError **error)
{
    return apply_url(&cfg->nova_auth_url, value, error);
}

static gboolean
apply_nova_endpoint(SgConfig *cfg, const char *value, GError **error)
{
    return apply_url(&cfg->nova_endpoint, value, error);
}

static gboolean
apply_nova_interface(SgConfig *cfg, const char *value, GError **error)
{
    if (!g_str_equal(value, "internal") && !g_str_equal(value, "public") &&
        !g_str_equal(value, "admin")) {
        g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_VALUE,
                    "'%s' is not one of internal, public, admin", value);
        return FALSE;
    }
    set_string(&cfg->nova_interface, value);
    return TRUE;
}

static gboolean
apply_nova_api_version(SgConfig *cfg, const char *value, GError **error)
{
    guint64 major = 0;
    guint64 minor = 0;
    g_auto(GStrv) parts = g_strsplit(value, ".", -1);

    /* Below 2.31 Nova answers a valid SPICE token with 401, which looks
     * exactly like an expired service token: refuse such settings here. */
    if (g_strv_length(parts) != 2 ||
        !g_ascii_string_to_unsigned(parts[0], 10, 2, 2, &major, NULL) ||
        !g_ascii_string_to_unsigned(parts[1], 10, 31, 999, &minor, NULL)) {
        g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_VALUE,
                    "'%s' is not a compute microversion from 2.31 up (e.g. 2.31)", value);
        return FALSE;
    }
    set_string(&cfg->nova_api_version, value);
    return TRUE;
}

static gboolean
apply_nova_insecure(SgConfig *cfg, const char *value, GError **error)
{
    return parse_bool(value, &cfg->nova_insecure, error);
}

static gboolean
apply_nova_timeout(SgConfig *cfg, const char *value, GError **error)
{
    return parse_uint(value, 1, 300, &cfg->nova_timeout_s, error);
}

static gboolean
apply_nova_cache_time(SgConfig *cfg, const char *value, GError **error)
{
    return parse_uint(value, 0, 3600, &cfg->nova_cache_s, error);
}

static gboolean
apply_nova_negative_cache_time(SgConfig *cfg, const char *value, GError **error)
{
    return parse_uint(value, 0, 300, &cfg->nova_negative_cache_s, error);
}

static gboolean
apply_nova_revalidate_interval(SgConfig *cfg, const char *value, GError **error)
{
    return parse_uint(value, 0, 86400, &cfg->nova_revalidate_s, error);
}

static gboolean
apply_nova_max_lookups(SgConfig *cfg, const char *value, GError **error)
{
    return parse_uint(value, 1, 1024, &cfg->nova_max_lookups, error);
}

static gboolean
apply_token_ttl(SgConfig *cfg, const char *value, GError **error)
{
    return parse_uint(value, 0, 86400 * 365, &cfg->token_ttl_s, error);
}

static gboolean
apply_enforce_session_timeout(SgConfig *cfg, const char *value, GError **error)
{
    return parse_bool(value, &cfg->enforce_session_timeout, error);
}

/* [limits]: whole numbers of websockets, 0 for no limit. A million is
 * more than one host's descriptors allow. */
#define SG_LIMIT_MAX 1000000

static gboolean
apply_max_sessions(SgConfig *cfg, const char *value, GError **error)
{
    return parse_uint(value, 0, SG_LIMIT_MAX, &cfg->max_sessions, error);
}

static gboolean
apply_per_ip(SgConfig *cfg, const char *value, GError **error)
{
    return parse_uint(value, 0, SG_LIMIT_MAX, &cfg->per_ip, error);
}

/* A console opens one websocket per SPICE channel: spice-html5 opens
 * main, display, inputs and cursor at least. Below 4, no console could
 * ever open: a mistake, not a policy. */
#define SG_PER_TOKEN_MIN 4

static gboolean
apply_per_token(SgConfig *cfg, const char *value, GError **error)
{
    guint v;

    if (!parse_uint(value, 0, SG_LIMIT_MAX, &v, error))
        return FALSE;
    if (v > 0 && v < SG_PER_TOKEN_MIN) {
        g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_VALUE,
                    "'%s' would let no console open: a console opens %u websockets or more "
                    "(one per SPICE channel); use 0 (no limit) or %u and up",
                    value, SG_PER_TOKEN_MIN, SG_PER_TOKEN_MIN);
        return FALSE;
    }
    cfg->per_token = v;
    return TRUE;
}

/* --- [spice]: TLS toward the SPICE server ---------------------------------- */

static gboolean
apply_spice_tls(SgConfig *cfg, const char *value, GError **error)
{
    if (g_str_equal(value, "auto"))
        cfg->spice_tls = SG_SPICE_TLS_AUTO;
    else if (g_str_equal(value, "always"))
        cfg->spice_tls = SG_SPICE_TLS_ALWAYS;
    else if (g_str_equal(value, "never"))
        cfg->spice_tls = SG_SPICE_TLS_NEVER;
    else {
        g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_VALUE,
                    "'%s' is not one of auto, always, never", value);
        return FALSE;
    }
    return TRUE;
}

STRING_SETTER(apply_spice_ca_file, spice_ca_file)

/* spice-gtk's host-subject syntax, checked now so that a typo stops the
 * start instead of refusing every console. */
static gboolean
apply_spice_host_subject(SgConfig *cfg, const char *value, GError **error)
{
    const char *why = NULL;

    if (*value != '\0' && !sg_tls_subject_valid(value, &why)) {
        g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_VALUE,
                    "not a host subject like \"C=IL, L=Raanana, O=Red Hat, CN=my server\": %s",
                    why);
        return FALSE;
    }
    set_string(&cfg->spice_host_subject, value);
    return TRUE;
}

static gboolean
apply_spice_tls_minimum_version(SgConfig *cfg, const char *value, GError **error)
{
    if (g_str_equal(value, "tlsv1.2") || g_str_equal(value, "tlsv1_2")) {
        cfg->spice_tls_min_version = SG_TLS_MIN_1_2;
        return TRUE;
    }
    if (g_str_equal(value, "tlsv1.3") || g_str_equal(value, "tlsv1_3")) {
        cfg->spice_tls_min_version = SG_TLS_MIN_1_3;
        return TRUE;
    }
    g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_VALUE,
                "'%s' is not one of tlsv1.2, tlsv1.3", value);
    return FALSE;
}

/* [spice] channels: names as SPICE spells them, separated by commas,
 * semicolons (GKeyFile's lists) or blanks. A name SPICE does not know is
 * an error, not a channel silently left out; so is a list without main,
 * since every console starts with its main channel. */
static gboolean
apply_spice_channels(SgConfig *cfg, const char *value, GError **error)
{
    g_auto(GStrv) parts = g_strsplit_set(value, ",; \t", -1);
    SgSpiceChannelSet set = 0;

    for (guint i = 0; parts[i] != NULL; i++) {
        uint8_t type;

        if (parts[i][0] == '\0')
            continue;
        if (!sg_spice_channel_type_of(parts[i], &type)) {
            g_autofree char *all = sg_spice_channel_set_names(G_MAXUINT32);

            g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_VALUE,
                        "'%s' is not a SPICE channel type (known: %s)", parts[i], all);
            return FALSE;
        }
        set |= (SgSpiceChannelSet)1u << type;
    }
    if (set == 0) {
        g_set_error_literal(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_VALUE,
                            "an empty list would refuse every channel of every console");
        return FALSE;
    }
    if (!sg_spice_channel_allowed(set, SPICE_CHANNEL_MAIN)) {
        g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_VALUE,
                    "'%s' lacks main: every console starts with its main channel, so none "
                    "could open", value);
        return FALSE;
    }
    cfg->spice_channels = set;
    return TRUE;
}

/* --- the key table -------------------------------------------------------- */

/* The one list of settings. Defaults are applied by running each parser on
 * its default text, so the table cannot disagree with the code. */
static const SgConfigKeyInfo sg_keys[] = {
    { "server", "listen", SG_DEFAULT_LISTEN,
      "address and port to listen on; 0.0.0.0 means every IPv4 and IPv6 address",
      apply_listen },
    { "server", "web", SG_SPICE_HTML5_DIR,
      "directory of the spice-html5 client", apply_web },
    { "server", "pages", SG_PAGES_DIR,
      "directory of spicegate's own pages; they win over web", apply_pages },
    { "server", "allowed_origins", "",
      "extra hostnames allowed in the Origin header", apply_allowed_origins },
    { "server", "base_url", "",
      "the console URL users are given (Nova's html5proxy_base_url); its scheme "
      "must match the Origin's", apply_base_url },
    { "server", "frame_ancestors", "*",
      "pages that may show the console in a frame (CSP frame-ancestors): *, 'self', "
      "'none' or origins", apply_frame_ancestors },
    { "server", "trusted_proxies", "",
      "addresses and CIDR blocks of load balancers and proxies whose PROXY header, "
      "X-Forwarded-For and X-Forwarded-Proto are believed; empty: nobody's",
      apply_trusted_proxies },
    { "server", "proxy_protocol", "false",
      "every connection starts with a PROXY protocol header (v1 or v2) from a trusted "
      "proxy; others are closed", apply_proxy_protocol },
    { "server", "handshake_timeout", "10",
      "seconds a new connection has for its TLS handshake, and then for its request "
      "headers", apply_handshake_timeout },
    { "server", "connect_timeout", "10",
      "seconds to resolve and connect to a SPICE server", apply_connect_timeout },
    { "server", "link_timeout", "10",
      "seconds for the browser's SPICE link message to arrive (spicegate connects only "
      "then), and again for the SPICE server to answer it", apply_link_timeout },
    { "server", "idle_timeout", "0",
      "close a console after this many seconds without a byte either way; 0: never",
      apply_idle_timeout },
    { "server", "ping_interval", "30",
      "seconds between websocket pings to each browser (keeps load balancers and NAT from "
      "cutting quiet consoles; a browser silent for 3 is closed); 0: none",
      apply_ping_interval },
    { "server", "close_timeout", "30",
      "seconds a browser has to take the rest of a console that ended, then it is hung up on",
      apply_close_timeout },
    { "server", "drain_timeout", SG_DRAIN_TIMEOUT_DEFAULT_S,
      "seconds live consoles keep relaying after SIGTERM before they are closed with "
      "1001; 0: close them at once", apply_drain_timeout },
    { "server", "shutdown_timeout", SG_SHUTDOWN_TIMEOUT_DEFAULT_S,
      "seconds sessions get to close at stop before spicegate exits anyway",
      apply_shutdown_timeout },
    { "server", "workers", "1",
      "worker processes sharing the port: a number, or auto for one per CPU",
      apply_workers },
    { "server", "log_format", "text",
      "log lines as text, or as one JSON object per line for log pipelines",
      apply_log_format },
    { "admin", "listen", "",
      "address and port of the admin API (metrics, consoles); empty: off; never the "
      "public port", apply_admin_listen },
    { "admin", "token_file", "",
      "file holding the bearer token the admin API asks for; empty: none", apply_admin_token_file },
    { "tls", "cert", "", "certificate file (PEM); enables https and wss", apply_cert },
    { "tls", "key", "", "private key file (PEM); default: the cert file", apply_key },
    { "tls", "ssl_only", "false", "refuse plain http and ws connections", apply_ssl_only },
    { "tls", "minimum_version", "tlsv1_2", "oldest TLS version accepted",
      apply_minimum_version },
    { "tls", "ciphers", "", "OpenSSL cipher list for TLS 1.2", apply_ciphers },
    { "tls", "ciphersuites", "", "TLS 1.3 cipher suites", apply_ciphersuites },
    { "tokens", "backend", "file", "where console tokens are checked", apply_token_backend },
    { "tokens", "file", SG_SYSCONFDIR "/spicegate/tokens",
      "token file, or a directory of token files", apply_token_file },
    { "limits", "max_sessions", "0",
      "websockets open at once in all, across every worker; 0: no limit", apply_max_sessions },
    { "limits", "per_ip", "0",
      "websockets open at once from one client address; 0: no limit", apply_per_ip },
    { "limits", "per_token", "0",
      "websockets open at once for one console token (a console opens 4 to 6); 0: no limit",
      apply_per_token },
    { "spice", "tls", "auto",
      "TLS to SPICE servers: auto (the TLS port when the server asks for it), always "
      "(TLS only), never", apply_spice_tls },
    { "spice", "ca_file", "",
      "CA certificates (PEM) that sign SPICE servers' certificates; needed for TLS",
      apply_spice_ca_file },
    { "spice", "host_subject", "",
      "the SPICE server certificate's subject, as spice-gtk's host-subject; empty: check "
      "the target's name or address", apply_spice_host_subject },
    { "spice", "tls_minimum_version", "tlsv1.2",
      "oldest TLS version spoken to SPICE servers: tlsv1.2 or tlsv1.3",
      apply_spice_tls_minimum_version },
    { "nova", "auth_url", "", "Keystone URL, e.g. http://keystone:5000/v3",
      apply_nova_auth_url },
    { "nova", "username", "", "service user (needs the admin role)", apply_nova_username },
    { "nova", "password", "", "service user's password", apply_nova_password },
    { "nova", "user_domain_name", "Default", "service user's domain", apply_nova_user_domain },
    { "nova", "user_domain_id", "", "service user's domain by id; wins over user_domain_name",
      apply_nova_user_domain_id },
    { "nova", "project_name", "", "service project", apply_nova_project },
    { "nova", "project_domain_name", "Default", "service project's domain",
      apply_nova_project_domain },
    { "nova", "project_domain_id", "",
      "service project's domain by id; wins over project_domain_name",
      apply_nova_project_domain_id },
    { "nova", "application_credential_id", "", "application credential instead of a password",
      apply_nova_app_cred_id },
    { "nova", "application_credential_secret", "", "application credential secret",
      apply_nova_app_cred_secret },
    { "nova", "interface", "internal", "catalog interface: internal, public or admin",
      apply_nova_interface },
    { "nova", "region_name", "", "catalog region; empty: any", apply_nova_region },
    { "nova", "endpoint_override", "", "compute endpoint URL instead of the catalog's",
      apply_nova_endpoint },
    { "nova", "api_version", "2.31", "compute microversion for os-console-auth-tokens",
      apply_nova_api_version },
    { "nova", "cafile", "", "CA bundle for Keystone and Nova; empty: system CAs",
      apply_nova_ca_file },
    { "nova", "insecure", "false", "skip TLS certificate checks (never in production)",
      apply_nova_insecure },
    { "nova", "timeout", "10",
      "seconds for a whole token check (each Keystone or Nova request too)",
      apply_nova_timeout },
    { "nova", "cache_time", "5", "seconds a valid token's answer is reused; 0: never",
      apply_nova_cache_time },
    { "nova", "negative_cache_time", "5",
      "seconds an unknown token's answer is reused; 0: never", apply_nova_negative_cache_time },
    { "nova", "max_concurrent_lookups", "16",
      "distinct tokens asked about at once; the rest wait up to timeout",
      apply_nova_max_lookups },
    { "nova", "revalidate_interval", "60",
      "seconds between re-checks of live consoles' tokens with Nova; a console whose "
      "instance was deleted closes (4404); 0: never", apply_nova_revalidate_interval },
    { "nova", "token_ttl", "600", "Nova's [consoleauth] token_ttl in seconds",
      apply_token_ttl },
    { "nova", "enforce_session_timeout", "false",
      "close consoles token_ttl seconds after the token's first use",
      apply_enforce_session_timeout },
    { "spice", "channels", SG_SPICE_CHANNELS_DEFAULT,
      "SPICE channel types a browser may link (the default: those spice-html5 uses); "
      "others are refused with 4403", apply_spice_channels },
    { NULL, NULL, NULL, NULL, NULL },
};

const SgConfigKeyInfo *
sg_config_keys(void)
{
    return sg_keys;
}

static const SgConfigKeyInfo *
find_key(const char *group, const char *key)
{
    for (const SgConfigKeyInfo *k = sg_keys; k->key != NULL; k++) {
        if (g_str_equal(k->group, group) && g_str_equal(k->key, key))
            return k;
    }
    return NULL;
}

static gboolean
group_is_known(const char *group)
{
    for (const SgConfigKeyInfo *k = sg_keys; k->key != NULL; k++) {
        if (g_str_equal(k->group, group))
            return TRUE;
    }
    return FALSE;
}

/* --- public API ----------------------------------------------------------- */

SgConfig *
sg_config_new_default(void)
{
    SgConfig *cfg = g_new0(SgConfig, 1);

    cfg->allowed_origins = g_new0(char *, 1);
    for (const SgConfigKeyInfo *k = sg_keys; k->key != NULL; k++) {
        g_autoptr(GError) error = NULL;

        if (!k->apply(cfg, k->default_value, &error))
            g_error("built-in default of [%s] %s is invalid: %s", k->group, k->key,
                    error->message);
    }
    return cfg;
}

void
sg_config_free(SgConfig *cfg)
{
    if (cfg == NULL)
        return;
    g_free(cfg->listen_host);
    g_free(cfg->web_dir);
    g_free(cfg->pages_dir);
    g_strfreev(cfg->allowed_origins);
    g_free(cfg->frame_ancestors);
    sg_trusted_proxies_free(cfg->trusted_proxies);
    g_free(cfg->port_file);
    g_free(cfg->cert);
    g_free(cfg->key);
    g_free(cfg->ciphers);
    g_free(cfg->ciphersuites);
    g_free(cfg->token_backend);
    g_free(cfg->token_file);
    g_free(cfg->base_url);
    g_free(cfg->expected_scheme);
    g_free(cfg->nova_auth_url);
    g_free(cfg->nova_username);
    if (cfg->nova_password != NULL)
        explicit_bzero(cfg->nova_password, strlen(cfg->nova_password));
    g_free(cfg->nova_password);
    g_free(cfg->nova_user_domain_name);
    g_free(cfg->nova_user_domain_id);
    g_free(cfg->nova_project_name);
    g_free(cfg->nova_project_domain_name);
    g_free(cfg->nova_project_domain_id);
    g_free(cfg->nova_app_cred_id);
    if (cfg->nova_app_cred_secret != NULL)
        explicit_bzero(cfg->nova_app_cred_secret, strlen(cfg->nova_app_cred_secret));
    g_free(cfg->nova_app_cred_secret);
    g_free(cfg->nova_interface);
    g_free(cfg->nova_region);
    g_free(cfg->nova_endpoint);
    g_free(cfg->nova_api_version);
    g_free(cfg->nova_ca_file);
    g_free(cfg->nova_conf_files);
    g_free(cfg->nova_conf_section);
    g_free(cfg->admin_host);
    g_free(cfg->admin_token_file);
    g_free(cfg->spice_ca_file);
    g_free(cfg->spice_host_subject);
    g_free(cfg);
}

gboolean
sg_config_set_listen(SgConfig *cfg, const char *value, const char *what, GError **error)
{
    char *host = NULL;
    guint port = 0;

    (void)what;
    if (!parse_listen(value, &host, &port, error))
        return FALSE;
    g_free(cfg->listen_host);
    cfg->listen_host = host;
    cfg->listen_port = (uint16_t)port;
    return TRUE;
}

/* "ADDR:PORT" and its other forms (sg_config_set_listen()) into a host
 * (NULL: every address; newly allocated) and a port. */
static gboolean
parse_listen(const char *value, char **host_out, guint *port_out, GError **error)
{
    g_autofree char *host = NULL;
    const char *port_str;
    guint port;

    if (value[0] == '[') {
        const char *end = strchr(value, ']');

        if (end == NULL || end[1] != ':') {
            g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_VALUE,
                        "'%s' is not ADDR:PORT ([IPV6]:PORT for IPv6)", value);
            return FALSE;
        }
        host = g_strndup(value + 1, end - value - 1);
        port_str = end + 2;
    } else {
        const char *colon = strrchr(value, ':');

        if (colon == NULL) {
            port_str = value;
        } else {
            if (strchr(value, ':') != colon) {
                g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_VALUE,
                            "'%s': write IPv6 addresses in brackets, [::1]:6082", value);
                return FALSE;
            }
            host = g_strndup(value, colon - value);
            port_str = colon + 1;
        }
    }
    if (!parse_uint(port_str, 0, 65535, &port, error)) {
        g_prefix_error(error, "port: ");
        return FALSE;
    }
    if (host != NULL && (host[0] == '\0' || g_str_equal(host, "0.0.0.0") ||
                         g_str_equal(host, "::") || g_str_equal(host, "*")))
        g_clear_pointer(&host, g_free);
    if (host != NULL && !g_hostname_is_ip_address(host)) {
        g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_VALUE,
                    "'%s' is not an IP address (names are not resolved for listening)",
                    host);
        return FALSE;
    }
    *host_out = g_steal_pointer(&host);
    *port_out = port;
    return TRUE;
}

gboolean
sg_config_set(SgConfig *cfg, const char *group, const char *key, const char *value,
              const char *what, GError **error)
{
    const SgConfigKeyInfo *k = find_key(group, key);

    g_return_val_if_fail(k != NULL, FALSE);
    if (!k->apply(cfg, value, error)) {
        g_prefix_error(error, "%s: ", what);
        return FALSE;
    }
    return TRUE;
}

/* The errors found in one file, each with its line, reported together so
 * that one run shows every mistake. */
typedef struct {
    guint line;
    SgConfigError code;
    char *message;
} FileError;

static void
file_error_clear(gpointer data)
{
    g_free(((FileError *)data)->message);
}

G_GNUC_PRINTF(4, 5)
static void
add_error(GArray *errors, guint line, SgConfigError code, const char *format, ...)
{
    FileError e = { line, code, NULL };
    va_list args;

    va_start(args, format);
    e.message = g_strdup_vprintf(format, args);
    va_end(args);
    g_array_append_val(errors, e);
}

static gint
compare_lines(gconstpointer a, gconstpointer b)
{
    guint la = ((const FileError *)a)->line;
    guint lb = ((const FileError *)b)->line;

    return la < lb ? -1 : la > lb;
}

/* All of @errors as one GError, in line order, one message per line. */
static void
set_file_errors(GArray *errors, GError **error)
{
    g_autoptr(GString) text = g_string_new(NULL);

    /* g_array_sort() is a stable merge sort: same-line errors keep their
     * order. */
    g_array_sort(errors, compare_lines);
    for (guint i = 0; i < errors->len; i++) {
        if (i > 0)
            g_string_append_c(text, '\n');
        g_string_append(text, g_array_index(errors, FileError, i).message);
    }
    g_set_error_literal(error, SG_CONFIG_ERROR, g_array_index(errors, FileError, 0).code,
                        text->str);
}

/* Line numbers of groups and keys, found with GKeyFile's own rules: a line
 * is blank, a '#' comment, "[group]" or "key=value". Every line that is
 * none of these, or names an unknown group or key, is added to @errors and
 * blanked in @clean (the text GKeyFile then reads), so that the remaining
 * lines can still be checked. */
typedef struct {
    GHashTable *lines;      /* "group\nkey" or "group" -> line number */
} LineMap;

static gboolean
map_lines(const char *data, gsize len, const char *filename, LineMap *map, GArray *errors,
          GString *clean, GError **error)
{
    g_autofree char *text = g_strndup(data, len);
    g_auto(GStrv) lines = NULL;
    g_auto(GStrv) raw = NULL;
    g_autofree char *group = NULL;
    bool group_ok = false;
    bool seen_header = false;

    if (memchr(data, '\0', len) != NULL) {
        g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_SYNTAX,
                    "%s: contains a NUL byte; not a text file", filename);
        return FALSE;
    }
    if (!g_utf8_validate(text, -1, NULL)) {
        g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_SYNTAX,
                    "%s: not valid UTF-8", filename);
        return FALSE;
    }
    lines = g_strsplit(text, "\n", -1);
    raw = g_strsplit(text, "\n", -1);
    for (guint i = 0; lines[i] != NULL; i++) {
        guint lineno = i + 1;
        char *line = g_strstrip(lines[i]);
        bool keep = false;
        char *eq;

        if (line[0] == '\0' || line[0] == '#') {
            keep = true;
        } else if (line[0] == '[') {
            size_t n = strlen(line);

            g_clear_pointer(&group, g_free);
            group_ok = false;
            seen_header = true;
            if (n < 3 || line[n - 1] != ']') {
                add_error(errors, lineno, SG_CONFIG_ERROR_SYNTAX,
                          "%s:%u: '%.*s' is not a [group] header", filename, lineno,
                          sg_config_quotable_len(line), line);
            } else {
                group = g_strndup(line + 1, n - 2);
                if (!group_is_known(group)) {
                    add_error(errors, lineno, SG_CONFIG_ERROR_UNKNOWN,
                              "%s:%u: [%s]: unknown group (known: server, admin, tls, tokens, nova)",
                              filename, lineno, group);
                } else {
                    g_hash_table_replace(map->lines, g_strdup(group),
                                         GUINT_TO_POINTER(lineno));
                    group_ok = keep = true;
                }
            }
        } else if ((eq = strchr(line, '=')) == NULL || eq == line) {
            add_error(errors, lineno, SG_CONFIG_ERROR_SYNTAX,
                      "%s:%u: not a 'key = value' line, [group] header or # comment",
                      filename, lineno);
        } else if (!seen_header) {
            add_error(errors, lineno, SG_CONFIG_ERROR_SYNTAX,
                      "%s:%u: key before any [group] header", filename, lineno);
        } else if (group_ok) {
            /* (The keys of a bad or unknown group were reported with it.) */
            *eq = '\0';
            g_strchomp(line);
            if (find_key(group, line) == NULL) {
                add_error(errors, lineno, SG_CONFIG_ERROR_UNKNOWN,
                          "%s:%u: [%s] %s: unknown key", filename, lineno, group, line);
            } else {
                g_hash_table_replace(map->lines, g_strdup_printf("%s\n%s", group, line),
                                     GUINT_TO_POINTER(lineno));
                keep = true;
            }
        }
        if (keep)
            g_string_append(clean, raw[i]);
        g_string_append_c(clean, '\n');
    }
    return TRUE;
}

gboolean
sg_config_load_data(SgConfig *cfg, const char *data, gsize len, const char *filename,
                    GError **error)
{
    g_autoptr(GKeyFile) kf = g_key_file_new();
    g_autoptr(GHashTable) lines = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    g_autoptr(GArray) errors = g_array_new(FALSE, FALSE, sizeof(FileError));
    g_autoptr(GString) clean = g_string_sized_new(len + 1);
    LineMap map = { lines };
    g_autoptr(GError) local = NULL;
    g_auto(GStrv) groups = NULL;

    g_array_set_clear_func(errors, file_error_clear);
    if (!map_lines(data, len, filename, &map, errors, clean, error))
        return FALSE;
    if (!g_key_file_load_from_data(kf, clean->str, clean->len, G_KEY_FILE_NONE, &local)) {
        /* What map_lines() let through, GKeyFile accepts: belt and braces. */
        add_error(errors, G_MAXUINT, SG_CONFIG_ERROR_SYNTAX, "%s: %s", filename,
                  local->message);
        set_file_errors(errors, error);
        return FALSE;
    }
    groups = g_key_file_get_groups(kf, NULL);
    for (guint g = 0; groups[g] != NULL; g++) {
        g_auto(GStrv) keys = g_key_file_get_keys(kf, groups[g], NULL, NULL);

        for (guint i = 0; keys != NULL && keys[i] != NULL; i++) {
            g_autofree char *where = g_strdup_printf("%s\n%s", groups[g], keys[i]);
            guint lineno = GPOINTER_TO_UINT(g_hash_table_lookup(lines, where));
            const SgConfigKeyInfo *k = find_key(groups[g], keys[i]);
            g_autofree char *value = NULL;

            g_clear_error(&local);
            if (k == NULL) {
                /* map_lines() saw every key GKeyFile sees; belt and braces. */
                add_error(errors, lineno, SG_CONFIG_ERROR_UNKNOWN, "%s:%u: [%s] %s: unknown key",
                          filename, lineno, groups[g], keys[i]);
                continue;
            }
            value = g_key_file_get_string(kf, groups[g], keys[i], &local);
            if (value == NULL) {
                add_error(errors, lineno, SG_CONFIG_ERROR_VALUE, "%s:%u: [%s] %s: %s", filename,
                          lineno, groups[g], keys[i], local->message);
                continue;
            }
            g_strstrip(value);
            if (!k->apply(cfg, value, &local)) {
                add_error(errors, lineno, SG_CONFIG_ERROR_VALUE, "%s:%u: [%s] %s: %s", filename,
                          lineno, groups[g], keys[i], local->message);
                if (g_str_equal(groups[g], "nova"))
                    cfg->nova_credentials_failed = true;
            }
        }
    }
    if (errors->len > 0) {
        set_file_errors(errors, error);
        return FALSE;
    }
    return TRUE;
}

gboolean
sg_config_read_file(const char *filename, char **data, gsize *len, GError **error)
{
    g_autoptr(GError) local = NULL;

    if (!g_file_get_contents(filename, data, len, &local)) {
        g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_IO, "%s", local->message);
        return FALSE;
    }
    return TRUE;
}

gboolean
sg_config_load_file(SgConfig *cfg, const char *filename, GError **error)
{
    g_autofree char *data = NULL;
    gsize len = 0;

    if (!sg_config_read_file(filename, &data, &len, error))
        return FALSE;
    return sg_config_load_data(cfg, data, len, filename, error);
}

/* "a", "a and b", "a, b and c". */
static char *
join_keys(const char *const *keys, guint n, const char *prefix)
{
    GString *out = g_string_new(NULL);

    for (guint i = 0; i < n; i++) {
        if (i > 0)
            g_string_append(out, i + 1 == n ? " and " : ", ");
        g_string_append_printf(out, "%s%s", i == 0 ? prefix : "", keys[i]);
    }
    return g_string_free(out, FALSE);
}

/* The nova backend set up from nova.conf: say what is missing in that
 * file's terms (its sections and keys), and which [nova] key of
 * spicegate.conf could supply it instead. */
static void
validate_nova_conf_credentials(const SgConfig *cfg, GPtrArray *problems)
{
    const char *missing[4];       /* auth_url and at most three credential keys */
    guint n = 0;
    bool app_cred = cfg->nova_app_cred_id != NULL || cfg->nova_app_cred_secret != NULL;
    g_autofree char *keys = NULL;
    g_autofree char *ours = NULL;
    const char *pronoun;

    if (cfg->nova_auth_url == NULL)
        missing[n++] = "auth_url";
    if (app_cred) {
        if (cfg->nova_app_cred_id == NULL)
            missing[n++] = "application_credential_id";
        if (cfg->nova_app_cred_secret == NULL)
            missing[n++] = "application_credential_secret";
    } else {
        if (cfg->nova_username == NULL)
            missing[n++] = "username";
        if (cfg->nova_password == NULL)
            missing[n++] = "password";
        if (cfg->nova_project_name == NULL)
            missing[n++] = "project_name";
    }
    if (n == 0)
        return;
    keys = join_keys(missing, n, "");
    ours = join_keys(missing, n, "[nova] ");
    pronoun = n == 1 ? "it" : "them";
    if (cfg->nova_conf_section != NULL)
        g_ptr_array_add(problems,
                        g_strdup_printf("%s: [%s] has no %s; set %s there or %s in "
                                        "spicegate.conf", cfg->nova_conf_files,
                                        cfg->nova_conf_section, keys, pronoun, ours));
    else
        g_ptr_array_add(problems,
                        g_strdup_printf("%s: no [keystone_authtoken] or [service_user] %s; set "
                                        "%s there or %s in spicegate.conf",
                                        cfg->nova_conf_files, keys, pronoun, ours));
}

/* The same from spicegate.conf's [nova] alone. */
static void
validate_nova_credentials(const SgConfig *cfg, GPtrArray *problems)
{
    bool app_cred = cfg->nova_app_cred_id != NULL || cfg->nova_app_cred_secret != NULL;

    if (cfg->nova_auth_url == NULL)
        g_ptr_array_add(problems,
                        g_strdup("[nova] auth_url is needed when [tokens] backend = nova"));
    if (app_cred && (cfg->nova_app_cred_id == NULL || cfg->nova_app_cred_secret == NULL))
        g_ptr_array_add(problems,
                        g_strdup("[nova] application_credential_id and "
                                 "application_credential_secret go together"));
    if (!app_cred && (cfg->nova_username == NULL || cfg->nova_password == NULL ||
                      cfg->nova_project_name == NULL))
        g_ptr_array_add(problems,
                        g_strdup("[nova] needs username, password and project_name, or "
                                 "application_credential_id and application_credential_secret"));
}

gboolean
sg_config_validate(const SgConfig *cfg, GError **error)
{
    g_autoptr(GPtrArray) problems = g_ptr_array_new_with_free_func(g_free);

    /* Every check runs, so that one run shows every mistake. */
    if (cfg->key != NULL && cfg->cert == NULL)
        g_ptr_array_add(problems, g_strdup("[tls] key is set but [tls] cert is not"));
    if (cfg->ssl_only && cfg->cert == NULL)
        g_ptr_array_add(problems, g_strdup("[tls] ssl_only needs [tls] cert (and key)"));
    if (cfg->proxy_protocol && sg_trusted_proxies_count(cfg->trusted_proxies) == 0)
        g_ptr_array_add(problems,
                        g_strdup("[server] proxy_protocol needs [server] trusted_proxies: "
                                 "the load balancers whose PROXY headers are believed"));
    if (g_str_equal(cfg->token_backend, "file") && cfg->token_file == NULL)
        g_ptr_array_add(problems,
                        g_strdup("[tokens] file is empty: the file backend needs a token file"));
    /* A Keystone setting already reported wrong would only be called
     * missing here as well. */
    if (g_str_equal(cfg->token_backend, "nova") && !cfg->nova_credentials_failed) {
        if (cfg->nova_conf_files != NULL)
            validate_nova_conf_credentials(cfg, problems);
        else
            validate_nova_credentials(cfg, problems);
    }
    /* The admin API must never answer on the consoles' port: a port of 0
     * (tests) is the kernel's pick, different for each. */
    if (cfg->admin_enabled && cfg->admin_port != 0 && cfg->admin_port == cfg->listen_port &&
        (cfg->admin_host == NULL || cfg->listen_host == NULL ||
         g_str_equal(cfg->admin_host, cfg->listen_host)))
        g_ptr_array_add(problems,
                        g_strdup_printf("[admin] listen: port %u is the public port ([server] "
                                        "listen); give the admin API a port of its own",
                                        cfg->admin_port));
    if (cfg->spice_tls == SG_SPICE_TLS_ALWAYS && cfg->spice_ca_file == NULL)
        g_ptr_array_add(problems,
                        g_strdup("[spice] tls = always needs [spice] ca_file: the CA that signs "
                                 "the SPICE servers' certificates (no certificate goes unchecked)"));
    if (cfg->spice_host_subject != NULL && cfg->spice_ca_file == NULL)
        g_ptr_array_add(problems, g_strdup("[spice] host_subject is set but [spice] ca_file "
                                           "is not"));
    if (cfg->admin_token_file != NULL && !cfg->admin_enabled)
        g_ptr_array_add(problems, g_strdup("[admin] token_file is set but [admin] listen is "
                                           "not"));
    if (problems->len == 0)
        return TRUE;
    return sg_config_fail_with(problems, error);
}

gboolean
sg_config_fail_with(GPtrArray *problems, GError **error)
{
    g_autofree char *text = NULL;

    g_ptr_array_add(problems, NULL);
    text = g_strjoinv("\n", (char **)problems->pdata);
    g_ptr_array_remove_index(problems, problems->len - 1);
    g_set_error_literal(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_VALUE, text);
    return FALSE;
}

int
sg_config_quotable_len(const char *line)
{
    size_t n = strcspn(line, "]=:");

    if (line[n] == ']')
        n++;
    return (int)MIN(n, (size_t)SG_CONFIG_QUOTE_MAX_BYTES);
}
