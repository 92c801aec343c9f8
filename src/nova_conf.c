/* SPDX-License-Identifier: Apache-2.0 */
/* nova_conf.c - oslo.config syntax and the Nova-to-spicegate option map.
 *
 * Owns the parsed table only. The syntax follows oslo_config.iniparser:
 * '#' and ';' start comment lines, a section is "[name]", an assignment is
 * "key = value" or "key: value", a line that starts with whitespace
 * continues the previous value (joined with a newline), a value wrapped in
 * matching quotes loses them, and a repeated key's last value wins.
 */
#include "autoconfig.h"

#include <string.h>

#include <glib.h>

#include "config.h"
#include "nova_conf.h"

struct SgNovaConf {
    GHashTable *values;           /* "section\nkey" -> char* */
    GHashTable *lines;            /* "section\nkey" -> line number */
};

static char *
slot(const char *section, const char *key)
{
    return g_strdup_printf("%s\n%s", section, key);
}

static char *
unquote(char *value)
{
    size_t n = strlen(value);

    if (n >= 2 && (value[0] == '"' || value[0] == '\'') && value[n - 1] == value[0]) {
        value[n - 1] = '\0';
        memmove(value, value + 1, n - 1);
    }
    return value;
}

SgNovaConf *
sg_nova_conf_parse(const char *data, gsize len, const char *filename, GError **error)
{
    g_autoptr(SgNovaConf) nc = g_new0(SgNovaConf, 1);
    g_autofree char *text = NULL;
    g_auto(GStrv) lines = NULL;
    g_autofree char *section = NULL;
    g_autofree char *last_slot = NULL;     /* for continuation lines */

    nc->values = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    nc->lines = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    if (memchr(data, '\0', len) != NULL || !g_utf8_validate(data, (gssize)len, NULL)) {
        g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_SYNTAX,
                    "%s: not a UTF-8 text file", filename);
        return NULL;
    }
    text = g_strndup(data, len);
    lines = g_strsplit(text, "\n", -1);
    for (guint i = 0; lines[i] != NULL; i++) {
        char *raw = lines[i];
        guint lineno = i + 1;
        char *line;
        char *sep;
        size_t n = strlen(raw);

        if (n > 0 && raw[n - 1] == '\r')
            raw[n - 1] = '\0';
        line = g_strstrip(g_strdup(raw));
        if (line[0] == '\0' || line[0] == '#' || line[0] == ';') {
            g_free(line);
            continue;                       /* a blank line also ends a value */
        }
        if ((raw[0] == ' ' || raw[0] == '\t') && last_slot != NULL) {
            const char *prev = g_hash_table_lookup(nc->values, last_slot);

            g_hash_table_replace(nc->values, g_strdup(last_slot),
                                 g_strconcat(prev, "\n", line, NULL));
            g_free(line);
            continue;
        }
        if (line[0] == '[') {
            size_t m = strlen(line);

            if (m < 3 || line[m - 1] != ']') {
                g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_SYNTAX,
                            "%s:%u: '%s' is not a [section] header", filename, lineno, line);
                g_free(line);
                return NULL;
            }
            g_free(section);
            section = g_strstrip(g_strndup(line + 1, m - 2));
            g_clear_pointer(&last_slot, g_free);
            g_free(line);
            continue;
        }
        sep = strpbrk(line, "=:");
        if (sep == NULL || sep == line) {
            g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_SYNTAX,
                        "%s:%u: not a 'key = value' line, [section] or comment", filename,
                        lineno);
            g_free(line);
            return NULL;
        }
        if (section == NULL) {
            g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_SYNTAX,
                        "%s:%u: option before any [section]", filename, lineno);
            g_free(line);
            return NULL;
        }
        *sep = '\0';
        g_free(last_slot);
        last_slot = slot(section, g_strchomp(line));
        g_hash_table_replace(nc->values, g_strdup(last_slot),
                             g_strdup(unquote(g_strstrip(sep + 1))));
        g_hash_table_replace(nc->lines, g_strdup(last_slot), GUINT_TO_POINTER(lineno));
        g_free(line);
    }
    return g_steal_pointer(&nc);
}

void
sg_nova_conf_free(SgNovaConf *nc)
{
    if (nc == NULL)
        return;
    if (nc->values != NULL) {
        GHashTableIter iter;
        gpointer value;

        /* nova.conf holds passwords. */
        g_hash_table_iter_init(&iter, nc->values);
        while (g_hash_table_iter_next(&iter, NULL, &value))
            explicit_bzero(value, strlen(value));
        g_hash_table_unref(nc->values);
    }
    g_clear_pointer(&nc->lines, g_hash_table_unref);
    g_free(nc);
}

const char *
sg_nova_conf_get(const SgNovaConf *nc, const char *section, const char *key)
{
    g_autofree char *s = slot(section, key);

    return g_hash_table_lookup(nc->values, s);
}

guint
sg_nova_conf_get_line(const SgNovaConf *nc, const char *section, const char *key)
{
    g_autofree char *s = slot(section, key);

    return GPOINTER_TO_UINT(g_hash_table_lookup(nc->lines, s));
}

/* Nova option -> spicegate key, applied in this order. */
static const struct {
    const char *section, *key;        /* in nova.conf */
    const char *group, *sg_key;       /* in spicegate.conf */
} option_map[] = {
    { "spice", "html5proxy_base_url", "server", "base_url" },
    { "DEFAULT", "web", "server", "web" },
    { "DEFAULT", "cert", "tls", "cert" },
    { "DEFAULT", "key", "tls", "key" },
    { "DEFAULT", "ssl_only", "tls", "ssl_only" },
    { "console", "ssl_ciphers", "tls", "ciphers" },
    { "DEFAULT", "console_token_ttl", "nova", "token_ttl" },   /* deprecated name */
    { "consoleauth", "token_ttl", "nova", "token_ttl" },
    { "consoleauth", "enforce_session_timeout", "nova", "enforce_session_timeout" },
    { "keystone_authtoken", "auth_url", "nova", "auth_url" },
    { "keystone_authtoken", "username", "nova", "username" },
    { "keystone_authtoken", "password", "nova", "password" },
    { "keystone_authtoken", "user_domain_name", "nova", "user_domain_name" },
    { "keystone_authtoken", "project_name", "nova", "project_name" },
    { "keystone_authtoken", "project_domain_name", "nova", "project_domain_name" },
    { "keystone_authtoken", "application_credential_id", "nova", "application_credential_id" },
    { "keystone_authtoken", "application_credential_secret", "nova",
      "application_credential_secret" },
    { "keystone_authtoken", "region_name", "nova", "region_name" },
    { "keystone_authtoken", "cafile", "nova", "cafile" },
    { "keystone_authtoken", "insecure", "nova", "insecure" },
};

/* Options with no spicegate equivalent that change behaviour if set: say
 * so rather than ignore them silently. */
static const struct {
    const char *section, *key, *why;
} unsupported[] = {
    { "keystone_authtoken", "user_domain_id", "use user_domain_name" },
    { "keystone_authtoken", "project_domain_id", "use project_domain_name" },
    { "keystone_authtoken", "project_id", "use project_name" },
    { "keystone_authtoken", "user_id", "use username" },
    { "keystone_authtoken", "application_credential_name", "use application_credential_id" },
    { "DEFAULT", "record", "spicegate never records console traffic" },
    { "DEFAULT", "daemon", "spicegate runs in the foreground under systemd" },
};

static gboolean
apply_one(SgConfig *cfg, const char *group, const char *key, const char *value,
          const char *filename, guint line, const char *nova_name, GError **error)
{
    g_autofree char *what = g_strdup_printf("%s:%u: %s", filename, line, nova_name);

    if (strchr(value, '$') != NULL) {
        g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_VALUE,
                    "%s: '$' substitution of oslo.config is not supported; write the value "
                    "out", what);
        return FALSE;
    }
    if (strchr(value, '\n') != NULL) {
        g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_VALUE,
                    "%s: a multi-line value is not supported for this option", what);
        return FALSE;
    }
    return sg_config_set(cfg, group, key, value, what, error);
}

gboolean
sg_nova_conf_apply(const SgNovaConf *nc, SgConfig *cfg, const char *filename, GError **error)
{
    const char *host = sg_nova_conf_get(nc, "spice", "html5proxy_host");
    const char *port = sg_nova_conf_get(nc, "spice", "html5proxy_port");
    const char *origins = sg_nova_conf_get(nc, "console", "allowed_origins");
    const char *origins_key = "allowed_origins";
    const char *tls_min = sg_nova_conf_get(nc, "console", "ssl_minimum_version");
    const char *auth_type = sg_nova_conf_get(nc, "keystone_authtoken", "auth_type");

    for (guint i = 0; i < G_N_ELEMENTS(unsupported); i++) {
        if (sg_nova_conf_get(nc, unsupported[i].section, unsupported[i].key) != NULL)
            g_warning("%s:%u: [%s] %s is not supported and is ignored: %s", filename,
                      sg_nova_conf_get_line(nc, unsupported[i].section, unsupported[i].key),
                      unsupported[i].section, unsupported[i].key, unsupported[i].why);
    }
    if (auth_type != NULL && !g_str_equal(auth_type, "password") &&
        !g_str_equal(auth_type, "v3password") &&
        !g_str_equal(auth_type, "v3applicationcredential")) {
        g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_VALUE,
                    "%s:%u: [keystone_authtoken] auth_type = %s is not supported (password, "
                    "v3password or v3applicationcredential)",
                    filename, sg_nova_conf_get_line(nc, "keystone_authtoken", "auth_type"),
                    auth_type);
        return FALSE;
    }
    if (!sg_config_set(cfg, "tokens", "backend", "nova", filename, error))
        return FALSE;
    if (host != NULL || port != NULL) {
        g_autofree char *listen = NULL;
        const char *h = host ? host : "0.0.0.0";

        listen = strchr(h, ':') ? g_strdup_printf("[%s]:%s", h, port ? port : "6082")
                                : g_strdup_printf("%s:%s", h, port ? port : "6082");
        if (!apply_one(cfg, "server", "listen", listen, filename,
                       sg_nova_conf_get_line(nc, "spice", host ? "html5proxy_host"
                                                               : "html5proxy_port"),
                       "[spice] html5proxy_host/port", error))
            return FALSE;
    }
    if (origins == NULL) {
        /* The deprecated name Nova still reads. */
        origins = sg_nova_conf_get(nc, "DEFAULT", "console_allowed_origins");
        origins_key = "console_allowed_origins";
    }
    if (origins != NULL) {
        /* A list may continue over several lines; its items are what count. */
        g_autofree char *flat = g_strdelimit(g_strdup(origins), "\n", ' ');

        if (!apply_one(cfg, "server", "allowed_origins", flat, filename,
                   sg_nova_conf_get_line(nc, g_str_equal(origins_key, "allowed_origins")
                                                 ? "console" : "DEFAULT", origins_key),
                   "[console] allowed_origins", error))
            return FALSE;
    }
    if (tls_min != NULL) {
        /* Nova allows tlsv1_1; we never go below 1.2, and say so. */
        const char *ours = g_str_equal(tls_min, "tlsv1_3") ? "tlsv1_3" : "tlsv1_2";

        if (g_str_equal(tls_min, "tlsv1_1"))
            g_warning("%s:%u: [console] ssl_minimum_version = tlsv1_1 raised to tlsv1_2",
                      filename, sg_nova_conf_get_line(nc, "console", "ssl_minimum_version"));
        if (!apply_one(cfg, "tls", "minimum_version", ours, filename,
                       sg_nova_conf_get_line(nc, "console", "ssl_minimum_version"),
                       "[console] ssl_minimum_version", error))
            return FALSE;
    }
    for (guint i = 0; i < G_N_ELEMENTS(option_map); i++) {
        const char *value = sg_nova_conf_get(nc, option_map[i].section, option_map[i].key);
        g_autofree char *name = NULL;

        if (value == NULL)
            continue;
        name = g_strdup_printf("[%s] %s", option_map[i].section, option_map[i].key);
        if (!apply_one(cfg, option_map[i].group, option_map[i].sg_key, value, filename,
                       sg_nova_conf_get_line(nc, option_map[i].section, option_map[i].key),
                       name, error))
            return FALSE;
    }
    return TRUE;
}

gboolean
sg_nova_conf_load_file(SgConfig *cfg, const char *filename, GError **error)
{
    g_autofree char *data = NULL;
    gsize len = 0;
    g_autoptr(SgNovaConf) nc = NULL;
    gboolean ok;

    if (!sg_config_read_file(filename, &data, &len, error))
        return FALSE;
    nc = sg_nova_conf_parse(data, len, filename, error);
    explicit_bzero(data, len);
    if (nc == NULL)
        return FALSE;
    ok = sg_nova_conf_apply(nc, cfg, filename, error);
    return ok;
}
