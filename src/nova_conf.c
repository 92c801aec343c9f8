/* SPDX-License-Identifier: Apache-2.0 */
/* nova_conf.c - oslo.config syntax and the Nova-to-spicegate option map.
 *
 * Owns the parsed table only. The syntax follows oslo_config.iniparser:
 * '#' and ';' start comment lines, a section is "[name]", an assignment is
 * "key = value" or "key: value", a line that starts with whitespace
 * continues the previous value (joined with a newline), a value wrapped in
 * matching quotes loses them, and a repeated key's last value wins.
 * Several files (--config-file twice, --config-dir) merge into one table,
 * as oslo.config merges them, before anything is mapped.
 *
 * The Keystone credentials come from one section, whole: [keystone_authtoken]
 * if it sets auth_url or a credential, else [service_user] (what
 * kolla-ansible writes for the console proxies). Mixing the two would log in
 * as nobody in particular.
 */
#include "autoconfig.h"

#include <stdarg.h>
#include <stdbool.h>
#include <string.h>

#include <glib.h>

#include "config.h"
#include "nova_conf.h"

struct SgNovaConf {
    GHashTable *values;           /* "section\nkey" -> char* */
    GHashTable *lines;            /* "section\nkey" -> line number */
    GHashTable *files;            /* "section\nkey" -> char* file it was set in */
    GPtrArray *read;              /* the files parsed or merged in, in order,
                                   * NULL-terminated: the order of errors */
};

static char *
slot(const char *section, const char *key)
{
    return g_strdup_printf("%s\n%s", section, key);
}

/* --- every error, not only the first ------------------------------------- */

/* One error; all of them are reported together, by file (in the order the
 * files were read) and line, so that one run shows every mistake. */
typedef struct {
    char *file;                   /* NULL: about no one file (sorts last) */
    guint line;                   /* 0: about the whole file (sorts first) */
    SgConfigError code;
    char *message;                /* the whole text, location included */
} NovaError;

static void
nova_error_clear(gpointer data)
{
    NovaError *e = data;

    g_free(e->file);
    g_free(e->message);
}

static GArray *
errors_new(void)
{
    GArray *errors = g_array_new(FALSE, FALSE, sizeof(NovaError));

    g_array_set_clear_func(errors, nova_error_clear);
    return errors;
}

static void
add_error_literal(GArray *errors, const char *file, guint line, SgConfigError code,
                  const char *message)
{
    NovaError e = { g_strdup(file), line, code, g_strdup(message) };

    g_array_append_val(errors, e);
}

G_GNUC_PRINTF(5, 6)
static void
add_error(GArray *errors, const char *file, guint line, SgConfigError code,
          const char *format, ...)
{
    NovaError e = { g_strdup(file), line, code, NULL };
    va_list args;

    va_start(args, format);
    e.message = g_strdup_vprintf(format, args);
    va_end(args);
    g_array_append_val(errors, e);
}

/* An option's error, placed at the file and line that set it. */
static void
add_option_error(GArray *errors, const SgNovaConf *nc, const char *section, const char *key,
                 const GError *error)
{
    g_autofree char *s = slot(section, key);

    add_error_literal(errors, g_hash_table_lookup(nc->files, s),
                      GPOINTER_TO_UINT(g_hash_table_lookup(nc->lines, s)), error->code,
                      error->message);
}

static guint
file_rank(const char *const *order, const char *file)
{
    if (file == NULL)
        return G_MAXUINT;
    for (guint i = 0; order[i] != NULL; i++) {
        if (g_str_equal(order[i], file))
            return i;
    }
    return G_MAXUINT - 1;
}

static gint
compare_errors(gconstpointer a, gconstpointer b, gpointer order)
{
    const NovaError *ea = a;
    const NovaError *eb = b;
    guint ra = file_rank(order, ea->file);
    guint rb = file_rank(order, eb->file);

    if (ra != rb)
        return ra < rb ? -1 : 1;
    return ea->line < eb->line ? -1 : ea->line > eb->line;
}

/* All of @errors as one GError, one per line, sorted by file (in @order)
 * and line; g_array_sort_with_data() is stable, so errors of one line keep
 * the order they were found in. FALSE if there were any. */
static gboolean
take_errors(GArray *errors, const char *const *order, GError **error)
{
    g_autoptr(GString) text = g_string_new(NULL);

    if (errors->len == 0)
        return TRUE;
    g_array_sort_with_data(errors, compare_errors, (gpointer)order);
    for (guint i = 0; i < errors->len; i++) {
        if (i > 0)
            g_string_append_c(text, '\n');
        g_string_append(text, g_array_index(errors, NovaError, i).message);
    }
    g_set_error_literal(error, SG_CONFIG_ERROR, g_array_index(errors, NovaError, 0).code,
                        text->str);
    return FALSE;
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

static SgNovaConf *
nova_conf_new(void)
{
    SgNovaConf *nc = g_new0(SgNovaConf, 1);

    nc->values = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    nc->lines = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    nc->files = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    nc->read = g_ptr_array_new_with_free_func(g_free);
    g_ptr_array_add(nc->read, NULL);
    return nc;
}

/* Adds @file to the files read, if new. */
static void
note_file(SgNovaConf *nc, const char *file)
{
    for (guint i = 0; i + 1 < nc->read->len; i++) {
        if (g_str_equal(g_ptr_array_index(nc->read, i), file))
            return;
    }
    g_ptr_array_insert(nc->read, (gint)nc->read->len - 1, g_strdup(file));
}

/* Parses @data into a table; every line that is not a comment, a section
 * header or an option is added to @errors and skipped, so that the rest of
 * the file can still be checked. NULL (and one error) for a file that is
 * not text at all. */
static SgNovaConf *
parse(const char *data, gsize len, const char *filename, GArray *errors)
{
    g_autoptr(SgNovaConf) nc = nova_conf_new();
    g_autofree char *text = NULL;
    g_auto(GStrv) lines = NULL;
    g_autofree char *section = NULL;
    g_autofree char *last_slot = NULL;     /* for continuation lines */
    bool seen_header = false;

    note_file(nc, filename);
    if (memchr(data, '\0', len) != NULL || !g_utf8_validate(data, (gssize)len, NULL)) {
        add_error(errors, filename, 0, SG_CONFIG_ERROR_SYNTAX, "%s: not a UTF-8 text file",
                  filename);
        return NULL;
    }
    text = g_strndup(data, len);
    lines = g_strsplit(text, "\n", -1);
    explicit_bzero(text, len);
    for (guint i = 0; lines[i] != NULL; i++) {
        char *raw = lines[i];
        guint lineno = i + 1;
        g_autofree char *line = NULL;
        char *sep;
        size_t n = strlen(raw);

        if (n > 0 && raw[n - 1] == '\r')
            raw[n - 1] = '\0';
        line = g_strstrip(g_strdup(raw));
        /* oslo.config's parser: a blank line ends a multi-line value, an
         * indented line (even "# ...") continues it, and a comment at the
         * start of a line ends it too. */
        if (line[0] == '\0') {
            g_clear_pointer(&last_slot, g_free);
            continue;
        }
        if ((raw[0] == ' ' || raw[0] == '\t') && last_slot != NULL) {
            const char *prev = g_hash_table_lookup(nc->values, last_slot);

            g_hash_table_replace(nc->values, g_strdup(last_slot),
                                 g_strconcat(prev, "\n", line, NULL));
            continue;
        }
        /* A bad line ends the value before it: what follows it indented
         * is not taken for that value's continuation. */
        g_clear_pointer(&last_slot, g_free);
        if (line[0] == '#' || line[0] == ';')
            continue;
        if (line[0] == '[') {
            size_t m = strlen(line);

            /* A bad header leaves no section: its options are not taken
             * for the previous section's (and are not reported again). */
            g_clear_pointer(&section, g_free);
            seen_header = true;
            if (m < 3 || line[m - 1] != ']')
                add_error(errors, filename, lineno, SG_CONFIG_ERROR_SYNTAX,
                          "%s:%u: '%.*s' is not a [section] header", filename, lineno,
                          sg_config_quotable_len(line), line);
            else
                section = g_strstrip(g_strndup(line + 1, m - 2));
            continue;
        }
        sep = strpbrk(line, "=:");
        if (sep == NULL || sep == line) {
            add_error(errors, filename, lineno, SG_CONFIG_ERROR_SYNTAX,
                      "%s:%u: not a 'key = value' line, [section] or comment", filename,
                      lineno);
            continue;
        }
        if (section == NULL) {
            /* Under a bad header, that header was the error. */
            if (!seen_header)
                add_error(errors, filename, lineno, SG_CONFIG_ERROR_SYNTAX,
                          "%s:%u: option before any [section]", filename, lineno);
            continue;
        }
        *sep = '\0';
        last_slot = slot(section, g_strchomp(line));
        g_hash_table_replace(nc->values, g_strdup(last_slot),
                             g_strdup(unquote(g_strstrip(sep + 1))));
        g_hash_table_replace(nc->lines, g_strdup(last_slot), GUINT_TO_POINTER(lineno));
        g_hash_table_replace(nc->files, g_strdup(last_slot), g_strdup(filename));
    }
    /* nova.conf holds passwords: no copy of it outlives the parse. */
    for (guint i = 0; lines[i] != NULL; i++)
        explicit_bzero(lines[i], strlen(lines[i]));
    return g_steal_pointer(&nc);
}

SgNovaConf *
sg_nova_conf_parse(const char *data, gsize len, const char *filename, GError **error)
{
    g_autoptr(GArray) errors = errors_new();
    g_autoptr(SgNovaConf) nc = parse(data, len, filename, errors);
    const char *const order[] = { filename, NULL };

    if (!take_errors(errors, order, error))
        return NULL;
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
    g_clear_pointer(&nc->files, g_hash_table_unref);
    g_clear_pointer(&nc->read, g_ptr_array_unref);
    g_free(nc);
}

void
sg_nova_conf_merge(SgNovaConf *into, const SgNovaConf *from)
{
    GHashTableIter iter;
    gpointer slot_name;
    gpointer value;

    g_hash_table_iter_init(&iter, from->values);
    while (g_hash_table_iter_next(&iter, &slot_name, &value)) {
        g_hash_table_replace(into->values, g_strdup(slot_name), g_strdup(value));
        g_hash_table_replace(into->lines, g_strdup(slot_name),
                             g_hash_table_lookup(from->lines, slot_name));
        g_hash_table_replace(into->files, g_strdup(slot_name),
                             g_strdup(g_hash_table_lookup(from->files, slot_name)));
    }
    for (guint i = 0; i + 1 < from->read->len; i++)
        note_file(into, g_ptr_array_index(from->read, i));
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

/* "FILE:LINE" of [@section] @key, for messages; @fallback when unset. */
static char *
where(const SgNovaConf *nc, const char *section, const char *key, const char *fallback)
{
    g_autofree char *s = slot(section, key);
    const char *file = g_hash_table_lookup(nc->files, s);

    if (file == NULL)
        return g_strdup(fallback);
    return g_strdup_printf("%s:%u", file, GPOINTER_TO_UINT(g_hash_table_lookup(nc->lines, s)));
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
};

/* The sections the Keystone credentials may come from, in order of
 * preference (keystoneauth's option names in both). */
static const char *const auth_sections[] = { "keystone_authtoken", "service_user" };

/* A section "has credentials" if it sets one of these. */
static const char *const auth_markers[] = {
    "auth_url", "username", "user_id", "password", "application_credential_id",
    "application_credential_secret", "application_credential_name",
};

/* Keystone option -> [nova] key, read from the chosen section. The domain
 * names and ids are handled apart: one of each pair wins. */
static const char *const auth_keys[] = {
    "auth_url", "username", "password", "project_name", "application_credential_id",
    "application_credential_secret", "region_name", "cafile", "insecure",
};

/* Options with no spicegate equivalent that change behaviour if set: say
 * so rather than ignore them silently. An empty section means the chosen
 * credentials section. */
static const struct {
    const char *section, *key, *why;
} unsupported[] = {
    { "", "project_id", "use project_name" },
    { "", "user_id", "use username" },
    { "", "application_credential_name", "use application_credential_id" },
    { "DEFAULT", "record", "spicegate never records console traffic" },
    { "DEFAULT", "daemon", "spicegate runs in the foreground under systemd" },
};

static bool
has_credentials(const SgNovaConf *nc, const char *section)
{
    for (guint i = 0; i < G_N_ELEMENTS(auth_markers); i++) {
        if (sg_nova_conf_get(nc, section, auth_markers[i]) != NULL)
            return true;
    }
    return false;
}

static const char *
credentials_section(const SgNovaConf *nc)
{
    for (guint i = 0; i < G_N_ELEMENTS(auth_sections); i++) {
        if (has_credentials(nc, auth_sections[i]))
            return auth_sections[i];
    }
    return NULL;
}

/* Whether @value uses oslo.config's "$name" / "${name}" substitution. "$$"
 * is its escape for a literal '$' (a password such as "pa$$word" is one of
 * those), handled by unescape_dollars(). */
static bool
has_substitution(const char *value)
{
    for (const char *p = strchr(value, '$'); p != NULL; p = strchr(p, '$')) {
        if (p[1] != '$')
            return true;
        p += 2;
    }
    return false;
}

static gboolean
apply_one(SgConfig *cfg, const char *group, const char *key, const char *value,
          const char *location, const char *nova_name, GError **error)
{
    g_autofree char *what = g_strdup_printf("%s: %s", location, nova_name);

    if (has_substitution(value)) {
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
    if (strstr(value, "$$") != NULL) {
        g_auto(GStrv) parts = g_strsplit(value, "$$", -1);
        g_autofree char *plain = g_strjoinv("$", parts);
        gboolean ok = sg_config_set(cfg, group, key, plain, what, error);

        explicit_bzero(plain, strlen(plain));   /* it may be a password */
        return ok;
    }
    return sg_config_set(cfg, group, key, value, what, error);
}

/* A value that cannot be wrong (a fixed text of ours). */
static void
set_string_option(SgConfig *cfg, const char *group, const char *key, const char *value)
{
    gboolean ok = sg_config_set(cfg, group, key, value, group, NULL);

    g_warn_if_fail(ok);
}

/* [@section] @key onto [@group] @sg_key, if set; an error goes to @errors. */
static void
map_option(const SgNovaConf *nc, SgConfig *cfg, const char *section, const char *key,
           const char *group, const char *sg_key, const char *filename, GArray *errors)
{
    const char *value = sg_nova_conf_get(nc, section, key);
    g_autofree char *location = NULL;
    g_autofree char *name = NULL;
    g_autoptr(GError) local = NULL;

    if (value == NULL)
        return;
    location = where(nc, section, key, filename);
    name = g_strdup_printf("[%s] %s", section, key);
    if (!apply_one(cfg, group, sg_key, value, location, name, &local))
        add_option_error(errors, nc, section, key, local);
}

/* A domain by id or by name (Keystone v3 takes either). The one nova.conf
 * sets replaces both, so an id from spicegate.conf cannot outvote a name
 * written in nova.conf. */
static void
map_domain(const SgNovaConf *nc, SgConfig *cfg, const char *section, const char *who,
           const char *filename, GArray *errors)
{
    g_autofree char *id_key = g_strdup_printf("%s_domain_id", who);
    g_autofree char *name_key = g_strdup_printf("%s_domain_name", who);
    bool has_id = sg_nova_conf_get(nc, section, id_key) != NULL;
    bool has_name = sg_nova_conf_get(nc, section, name_key) != NULL;

    if (!has_id && !has_name)
        return;
    if (!has_id)
        set_string_option(cfg, "nova", id_key, "");
    map_option(nc, cfg, section, name_key, "nova", name_key, filename, errors);
    map_option(nc, cfg, section, id_key, "nova", id_key, filename, errors);
}

static void
apply_credentials(const SgNovaConf *nc, SgConfig *cfg, const char *filename, GArray *errors)
{
    const char *section = credentials_section(nc);
    const char *auth_type;
    guint before = errors->len;

    g_clear_pointer(&cfg->nova_conf_section, g_free);
    if (section == NULL)
        return;                   /* sg_config_validate() says what is missing */
    auth_type = sg_nova_conf_get(nc, section, "auth_type");
    if (auth_type != NULL && !g_str_equal(auth_type, "password") &&
        !g_str_equal(auth_type, "v3password") &&
        !g_str_equal(auth_type, "v3applicationcredential")) {
        g_autofree char *location = where(nc, section, "auth_type", filename);
        g_autoptr(GError) local =
            g_error_new(SG_CONFIG_ERROR, SG_CONFIG_ERROR_VALUE,
                        "%s: [%s] auth_type = %s is not supported (password, v3password or "
                        "v3applicationcredential)", location, section, auth_type);

        /* The options below are still checked: one run, every mistake. */
        add_option_error(errors, nc, section, "auth_type", local);
    }
    for (guint i = 0; i < G_N_ELEMENTS(auth_sections); i++) {
        if (!g_str_equal(auth_sections[i], section) && has_credentials(nc, auth_sections[i]))
            g_message("%s: Keystone credentials from [%s]; [%s] is not used", filename,
                      section, auth_sections[i]);
    }
    for (guint i = 0; i < G_N_ELEMENTS(auth_keys); i++)
        map_option(nc, cfg, section, auth_keys[i], "nova", auth_keys[i], filename, errors);
    map_domain(nc, cfg, section, "user", filename, errors);
    map_domain(nc, cfg, section, "project", filename, errors);
    cfg->nova_conf_section = g_strdup(section);
    if (errors->len > before)
        cfg->nova_credentials_failed = true;
}

/* Every option of @nc onto @cfg; every error goes to @errors, and the other
 * options are still applied and checked. */
static void
apply_all(const SgNovaConf *nc, SgConfig *cfg, const char *filename, GArray *errors)
{
    const char *host = sg_nova_conf_get(nc, "spice", "html5proxy_host");
    const char *port = sg_nova_conf_get(nc, "spice", "html5proxy_port");
    const char *origins = sg_nova_conf_get(nc, "console", "allowed_origins");
    const char *origins_key = "allowed_origins";
    const char *tls_min = sg_nova_conf_get(nc, "console", "ssl_minimum_version");
    const char *auth_section = credentials_section(nc);
    g_autoptr(GError) local = NULL;

    for (guint i = 0; i < G_N_ELEMENTS(unsupported); i++) {
        const char *section = unsupported[i].section[0] != '\0' ? unsupported[i].section
                                                                : auth_section;
        g_autofree char *location = NULL;

        if (section == NULL || sg_nova_conf_get(nc, section, unsupported[i].key) == NULL)
            continue;
        location = where(nc, section, unsupported[i].key, filename);
        g_warning("%s: [%s] %s is not supported and is ignored: %s", location, section,
                  unsupported[i].key, unsupported[i].why);
    }
    g_free(cfg->nova_conf_files);
    cfg->nova_conf_files = g_strdup(filename);
    set_string_option(cfg, "tokens", "backend", "nova");
    if (host != NULL || port != NULL) {
        g_autofree char *listen = NULL;
        const char *key = host ? "html5proxy_host" : "html5proxy_port";
        g_autofree char *location = where(nc, "spice", key, filename);
        const char *h = host ? host : "0.0.0.0";

        listen = strchr(h, ':') ? g_strdup_printf("[%s]:%s", h, port ? port : "6082")
                                : g_strdup_printf("%s:%s", h, port ? port : "6082");
        if (!apply_one(cfg, "server", "listen", listen, location,
                       "[spice] html5proxy_host/port", &local))
            add_option_error(errors, nc, "spice", key, local);
        g_clear_error(&local);
    }
    if (origins == NULL) {
        /* The deprecated name Nova still reads. */
        origins = sg_nova_conf_get(nc, "DEFAULT", "console_allowed_origins");
        origins_key = "console_allowed_origins";
    }
    if (origins != NULL) {
        /* A list may continue over several lines; its items are what count. */
        g_autofree char *flat = g_strdelimit(g_strdup(origins), "\n", ' ');
        const char *section = g_str_equal(origins_key, "allowed_origins") ? "console"
                                                                         : "DEFAULT";
        g_autofree char *location = where(nc, section, origins_key, filename);

        if (!apply_one(cfg, "server", "allowed_origins", flat, location,
                       "[console] allowed_origins", &local))
            add_option_error(errors, nc, section, origins_key, local);
        g_clear_error(&local);
    }
    if (tls_min != NULL) {
        /* Nova allows tlsv1_1; we never go below 1.2, and say so. */
        const char *ours = g_str_equal(tls_min, "tlsv1_3") ? "tlsv1_3" : "tlsv1_2";
        g_autofree char *location = where(nc, "console", "ssl_minimum_version", filename);

        if (g_str_equal(tls_min, "tlsv1_1"))
            g_warning("%s: [console] ssl_minimum_version = tlsv1_1 raised to tlsv1_2",
                      location);
        if (!apply_one(cfg, "tls", "minimum_version", ours, location,
                       "[console] ssl_minimum_version", &local))
            add_option_error(errors, nc, "console", "ssl_minimum_version", local);
        g_clear_error(&local);
    }
    for (guint i = 0; i < G_N_ELEMENTS(option_map); i++)
        map_option(nc, cfg, option_map[i].section, option_map[i].key, option_map[i].group,
                   option_map[i].sg_key, filename, errors);
    apply_credentials(nc, cfg, filename, errors);
}

gboolean
sg_nova_conf_apply(const SgNovaConf *nc, SgConfig *cfg, const char *filename, GError **error)
{
    g_autoptr(GArray) errors = errors_new();

    apply_all(nc, cfg, filename, errors);
    return take_errors(errors, (const char *const *)nc->read->pdata, error);
}

gboolean
sg_nova_conf_load_files(SgConfig *cfg, const char *const *filenames, GError **error)
{
    g_autoptr(SgNovaConf) all = NULL;
    g_autoptr(GArray) errors = errors_new();
    g_autofree char *names = NULL;

    /* A file that cannot be read or parsed does not stop the others: every
     * error of every file is reported at once. */
    for (guint i = 0; filenames[i] != NULL; i++) {
        g_autofree char *data = NULL;
        gsize len = 0;
        g_autoptr(SgNovaConf) nc = NULL;
        g_autoptr(GError) local = NULL;

        if (!sg_config_read_file(filenames[i], &data, &len, &local)) {
            add_error_literal(errors, filenames[i], 0, local->code, local->message);
            continue;
        }
        nc = parse(data, len, filenames[i], errors);
        explicit_bzero(data, len);
        if (nc == NULL)
            continue;
        if (all == NULL)
            all = g_steal_pointer(&nc);
        else
            sg_nova_conf_merge(all, nc);
    }
    if (filenames[0] == NULL)
        return TRUE;
    /* A line or file not read may have held the credentials. */
    if (errors->len > 0)
        cfg->nova_credentials_failed = true;
    names = g_strjoinv(", ", (char **)filenames);
    if (all != NULL)
        apply_all(all, cfg, names, errors);
    return take_errors(errors, filenames, error);
}
