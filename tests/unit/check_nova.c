/* SPDX-License-Identifier: Apache-2.0 */
/* check_nova.c - the pure parts of the Nova backend: nova.conf syntax and
 * mapping, Keystone's token reply and auth body, Nova's console reply. */
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "config.h"
#include "keystone.h"
#include "nova_conf.h"
#include "token.h"
#include "token_nova.h"

static const char nova_conf_text[] =
    "[DEFAULT]\n"
    "; semicolon comment\n"
    "# hash comment\n"
    "web = /srv/spice\n"
    "cert = /etc/ssl/c.pem\n"
    "key: /etc/ssl/k.pem\n"
    "ssl_only = False\n"
    "\n"
    "[spice]\n"
    "html5proxy_host = ::1\n"
    "html5proxy_port = 16082\n"
    "html5proxy_base_url = \"https://console.example.com:6082/spice_auto.html\"\n"
    "[console]\n"
    "allowed_origins = horizon.example.com,\n"
    "    dash.example.com\n"
    "ssl_minimum_version = tlsv1_3\n"
    "[consoleauth]\n"
    "token_ttl = 120\n"
    "token_ttl = 300\n"
    "enforce_session_timeout = true\n"
    "[keystone_authtoken]\n"
    "auth_type = password\n"
    "auth_url = http://keystone.example:5000/v3\n"
    "username = nova\n"
    "password = 's3cret;#'\n"
    "project_name = service\n"
    "user_domain_name = Default\n"
    "project_domain_name = Default\n"
    "[database]\n"
    "connection = mysql+pymysql://nova:x@db/nova\n";

START_TEST(test_nova_conf_syntax)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(SgNovaConf) nc = sg_nova_conf_parse(nova_conf_text, strlen(nova_conf_text),
                                                  "nova.conf", &error);

    ck_assert_ptr_null(error);
    ck_assert_str_eq(sg_nova_conf_get(nc, "DEFAULT", "key"), "/etc/ssl/k.pem");
    ck_assert_str_eq(sg_nova_conf_get(nc, "console", "allowed_origins"),
                     "horizon.example.com,\ndash.example.com");
    ck_assert_str_eq(sg_nova_conf_get(nc, "consoleauth", "token_ttl"), "300"); /* last wins */
    ck_assert_uint_eq(sg_nova_conf_get_line(nc, "consoleauth", "token_ttl"), 19);
    ck_assert_str_eq(sg_nova_conf_get(nc, "keystone_authtoken", "password"), "s3cret;#");
    ck_assert_str_eq(sg_nova_conf_get(nc, "spice", "html5proxy_base_url"),
                     "https://console.example.com:6082/spice_auto.html");
    ck_assert_ptr_null(sg_nova_conf_get(nc, "spice", "web"));   /* no DEFAULT fallback */
}
END_TEST

/* oslo.config's parser rules that deployers' files lean on: a blank line
 * or a comment at the start of a line ends a multi-line value, an indented
 * line continues it, and "$$" is a literal '$' (a password may hold one). */
START_TEST(test_nova_conf_oslo_value_rules)
{
    static const char text[] =
        "[console]\n"
        "allowed_origins = a.example\n"
        "  b.example\n"
        "  # indented: still the value\n"
        "\n"
        "[keystone_authtoken]\n"
        "auth_url = http://k:5000/v3\n"
        "# a comment ends it\n"
        "username = nova\n"
        "password = pa$$word\n"
        "project_name = service\n";
    g_autoptr(GError) error = NULL;
    g_autoptr(SgNovaConf) nc = sg_nova_conf_parse(text, strlen(text), "nova.conf", &error);
    g_autoptr(SgConfig) cfg = sg_config_new_default();

    ck_assert_ptr_null(error);
    ck_assert_str_eq(sg_nova_conf_get(nc, "console", "allowed_origins"),
                     "a.example\nb.example\n# indented: still the value");
    ck_assert_str_eq(sg_nova_conf_get(nc, "keystone_authtoken", "auth_url"),
                     "http://k:5000/v3");
    ck_assert_str_eq(sg_nova_conf_get(nc, "keystone_authtoken", "password"), "pa$$word");
    ck_assert(sg_nova_conf_apply(nc, cfg, "nova.conf", &error) || error != NULL);
    g_clear_error(&error);
    ck_assert_str_eq(cfg->nova_password, "pa$word");
}
END_TEST

/* An error quotes a bad header line only up to its ']' or '=': what comes
 * after may be a secret. */
START_TEST(test_nova_conf_error_quotes_no_value)
{
    static const char text[] = "[database] connection = mysql://nova:Pw0rd@db/nova\n";
    g_autoptr(GError) error = NULL;
    g_autoptr(SgNovaConf) nc = sg_nova_conf_parse(text, strlen(text), "nova.conf", &error);

    ck_assert_ptr_null(nc);
    ck_assert_ptr_nonnull(error);
    ck_assert_msg(strstr(error->message, "Pw0rd") == NULL, "%s", error->message);
    ck_assert_msg(strstr(error->message, "'[database]'") != NULL, "%s", error->message);
}
END_TEST

START_TEST(test_nova_conf_maps_onto_spicegate)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(SgNovaConf) nc = sg_nova_conf_parse(nova_conf_text, strlen(nova_conf_text),
                                                  "nova.conf", &error);
    g_autoptr(SgConfig) cfg = sg_config_new_default();

    ck_assert(sg_nova_conf_apply(nc, cfg, "nova.conf", &error));
    ck_assert_str_eq(cfg->token_backend, "nova");
    ck_assert_str_eq(cfg->listen_host, "::1");
    ck_assert_uint_eq(cfg->listen_port, 16082);
    ck_assert_str_eq(cfg->web_dir, "/srv/spice");
    ck_assert_str_eq(cfg->cert, "/etc/ssl/c.pem");
    ck_assert_str_eq(cfg->key, "/etc/ssl/k.pem");
    ck_assert(!cfg->ssl_only);
    ck_assert_str_eq(cfg->expected_scheme, "https");
    ck_assert_str_eq(cfg->allowed_origins[0], "horizon.example.com");
    ck_assert_str_eq(cfg->allowed_origins[1], "dash.example.com");
    ck_assert_int_eq(cfg->tls_min_version, SG_TLS_MIN_1_3);
    ck_assert_uint_eq(cfg->token_ttl_s, 300);
    ck_assert(cfg->enforce_session_timeout);
    ck_assert_str_eq(cfg->nova_auth_url, "http://keystone.example:5000/v3");
    ck_assert_str_eq(cfg->nova_username, "nova");
    ck_assert_str_eq(cfg->nova_password, "s3cret;#");
    ck_assert_str_eq(cfg->nova_project_name, "service");
    ck_assert(sg_config_validate(cfg, &error));
}
END_TEST

static const struct {
    const char *text;
    const char *expect;
} bad_nova[] = {
    { "key = value\n", "nova.conf:1: option before any [section]" },
    { "[spice\n", "nova.conf:1:" },
    { "[DEFAULT]\njust words\n", "nova.conf:2:" },
    { "[spice]\nhtml5proxy_port = 99999\n", "nova.conf:2: [spice] html5proxy_host/port" },
    { "[console]\nallowed_origins = http://x/\n", "[console] allowed_origins" },
    { "[consoleauth]\ntoken_ttl = -1\n", "nova.conf:2: [consoleauth] token_ttl" },
    { "[keystone_authtoken]\nauth_url = $auth_host/v3\n", "'$' substitution" },
    { "[keystone_authtoken]\nauth_url = http://k:5000\nauth_type = token\n",
      "auth_type = token is not supported" },
    { "[service_user]\nauth_url = http://k:5000\n\nauth_type = v3token\n",
      "nova.conf:4: [service_user] auth_type = v3token is not supported (password, v3password "
      "or v3applicationcredential)" },
    { "[spice]\nhtml5proxy_base_url = ftp://x/\n", "[spice] html5proxy_base_url" },
};

START_TEST(test_nova_conf_errors_name_line_and_option)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(SgConfig) cfg = sg_config_new_default();
    g_autoptr(SgNovaConf) nc = sg_nova_conf_parse(bad_nova[_i].text, strlen(bad_nova[_i].text),
                                                  "nova.conf", &error);

    if (nc != NULL)
        ck_assert(!sg_nova_conf_apply(nc, cfg, "nova.conf", &error));
    ck_assert_ptr_nonnull(error);
    ck_assert_msg(strstr(error->message, bad_nova[_i].expect) != NULL, "case %d: '%s'", _i,
                  error->message);
}
END_TEST


/* What kolla-ansible writes for nova-spicehtml5proxy: no [keystone_authtoken]. */
static const char kolla_conf[] =
    "[DEFAULT]\n"
    "debug = False\n"
    "[spice]\n"
    "enabled = true\n"
    "html5proxy_host = 192.0.2.10\n"
    "html5proxy_port = 6082\n"
    "html5proxy_base_url = https://cloud.example.com:6082/spice_auto.html\n"
    "[service_user]\n"
    "send_service_user_token = true\n"
    "auth_url = http://keystone-internal:5000\n"
    "auth_type = password\n"
    "project_domain_name = Default\n"
    "user_domain_name = Default\n"
    "project_name = service\n"
    "username = nova\n"
    "password = k0lla\n";

/* What OpenStack-Ansible writes: domains by id. */
static const char osa_conf[] =
    "[keystone_authtoken]\n"
    "insecure = False\n"
    "auth_type = password\n"
    "auth_url = http://172.29.236.9:5000\n"
    "www_authenticate_uri = http://172.29.236.9:5000\n"
    "project_domain_id = default\n"
    "user_domain_id = default\n"
    "project_name = service\n"
    "username = nova\n"
    "password = 0sa\n"
    "region_name = RegionOne\n"
    "memcached_servers = 172.29.236.9:11211\n";

/* Collects warnings, to show that nothing is reported as unsupported. */
static GString *logged;

static GLogWriterOutput
collect_log(GLogLevelFlags level, const GLogField *fields, gsize n, gpointer data)
{
    (void)level;
    (void)data;
    for (gsize i = 0; i < n; i++) {
        if (g_str_equal(fields[i].key, "MESSAGE"))
            g_string_append_printf(logged, "%s\n", (const char *)fields[i].value);
    }
    return G_LOG_WRITER_HANDLED;
}

static SgConfig *
apply_text(const char *text, const char *filename, GError **error)
{
    g_autoptr(SgConfig) cfg = sg_config_new_default();
    g_autoptr(SgNovaConf) nc = sg_nova_conf_parse(text, strlen(text), filename, error);

    if (nc == NULL || !sg_nova_conf_apply(nc, cfg, filename, error))
        return NULL;
    return g_steal_pointer(&cfg);
}

static JsonObject *
member(JsonObject *obj, const char *path)
{
    g_auto(GStrv) names = g_strsplit(path, ".", -1);

    for (guint i = 0; names[i] != NULL && obj != NULL; i++)
        obj = json_object_has_member(obj, names[i]) ? json_object_get_object_member(obj, names[i])
                                                     : NULL;
    return obj;
}

START_TEST(test_nova_conf_kolla_service_user)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(SgConfig) cfg = apply_text(kolla_conf, "/etc/kolla/nova.conf", &error);

    ck_assert_ptr_null(error);
    ck_assert_str_eq(cfg->token_backend, "nova");
    ck_assert_str_eq(cfg->nova_auth_url, "http://keystone-internal:5000");
    ck_assert_str_eq(cfg->nova_username, "nova");
    ck_assert_str_eq(cfg->nova_password, "k0lla");
    ck_assert_str_eq(cfg->nova_project_name, "service");
    ck_assert_str_eq(cfg->nova_user_domain_name, "Default");
    ck_assert_ptr_null(cfg->nova_user_domain_id);
    ck_assert_str_eq(cfg->nova_conf_section, "service_user");
    ck_assert_str_eq(cfg->nova_conf_files, "/etc/kolla/nova.conf");
    ck_assert_str_eq(cfg->listen_host, "192.0.2.10");
    ck_assert(sg_config_validate(cfg, &error));
}
END_TEST

START_TEST(test_nova_conf_osa_domain_ids)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(SgConfig) cfg = NULL;
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autofree char *body = NULL;
    JsonObject *auth;

    logged = g_string_new(NULL);
    g_log_set_writer_func(collect_log, NULL, NULL);
    cfg = apply_text(osa_conf, "/etc/nova/nova.conf", &error);
    ck_assert_ptr_null(error);
    ck_assert_str_eq(logged->str, "");                  /* no "not supported" warnings */
    ck_assert_str_eq(cfg->nova_user_domain_id, "default");
    ck_assert_str_eq(cfg->nova_project_domain_id, "default");
    ck_assert_str_eq(cfg->nova_region, "RegionOne");
    ck_assert_str_eq(cfg->nova_conf_section, "keystone_authtoken");
    ck_assert(sg_config_validate(cfg, &error));

    body = sg_keystone_auth_body(cfg);
    ck_assert(json_parser_load_from_data(parser, body, -1, NULL));
    auth = member(json_node_get_object(json_parser_get_root(parser)), "auth");
    ck_assert_str_eq(json_object_get_string_member(
                         member(auth, "identity.password.user.domain"), "id"), "default");
    ck_assert(!json_object_has_member(member(auth, "identity.password.user.domain"), "name"));
    ck_assert_str_eq(json_object_get_string_member(member(auth, "scope.project.domain"), "id"),
                     "default");
    ck_assert(!json_object_has_member(member(auth, "scope.project.domain"), "name"));
}
END_TEST

/* One section, whole: [keystone_authtoken] wins if it has credentials, and
 * nothing of [service_user] leaks in; without them, [service_user]. */
START_TEST(test_nova_conf_credentials_section_choice)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(SgConfig) both = NULL;
    g_autoptr(SgConfig) fallback = NULL;

    both = apply_text("[keystone_authtoken]\n"
                      "auth_url = http://k1:5000/v3\nusername = a\npassword = pa\n"
                      "project_name = pa\n"
                      "[service_user]\n"
                      "auth_url = http://k2:5000/v3\nusername = b\npassword = pb\n"
                      "project_name = pb\nregion_name = R2\nuser_domain_id = d2\n",
                      "nova.conf", &error);
    ck_assert_ptr_null(error);
    ck_assert_str_eq(both->nova_auth_url, "http://k1:5000/v3");
    ck_assert_str_eq(both->nova_username, "a");
    ck_assert_ptr_null(both->nova_region);
    ck_assert_ptr_null(both->nova_user_domain_id);
    ck_assert_str_eq(both->nova_conf_section, "keystone_authtoken");

    /* Only middleware settings in [keystone_authtoken]: not credentials. */
    fallback = apply_text("[keystone_authtoken]\n"
                          "www_authenticate_uri = http://k1:5000\n"
                          "memcached_servers = m:11211\n"
                          "[service_user]\n"
                          "auth_url = http://k2:5000/v3\nusername = b\npassword = pb\n"
                          "project_name = pb\n",
                          "nova.conf", &error);
    ck_assert_ptr_null(error);
    ck_assert_str_eq(fallback->nova_auth_url, "http://k2:5000/v3");
    ck_assert_str_eq(fallback->nova_conf_section, "service_user");
}
END_TEST

/* A domain name written in nova.conf beats an id from spicegate.conf. */
START_TEST(test_nova_conf_domain_name_replaces_id)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(SgConfig) cfg = sg_config_new_default();
    static const char text[] = "[service_user]\nauth_url = http://k:5000\n"
                               "user_domain_name = Users\nproject_domain_id = p1\n";
    g_autoptr(SgNovaConf) nc = sg_nova_conf_parse(text, strlen(text), "nova.conf", &error);

    ck_assert(sg_config_set(cfg, "nova", "user_domain_id", "from-spicegate", "test", &error));
    ck_assert(sg_nova_conf_apply(nc, cfg, "nova.conf", &error));
    ck_assert_ptr_null(cfg->nova_user_domain_id);
    ck_assert_str_eq(cfg->nova_user_domain_name, "Users");
    ck_assert_str_eq(cfg->nova_project_domain_id, "p1");
}
END_TEST

/* Several files merge into one nova.conf before the section is chosen;
 * an option's error names its own file and line. */
START_TEST(test_nova_conf_files_merge)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(SgConfig) cfg = sg_config_new_default();
    static const char first[] = "[keystone_authtoken]\nauth_url = http://k:5000\n"
                                "username = nova\nproject_name = service\n";
    static const char second[] = "[DEFAULT]\n\n[keystone_authtoken]\npassword = secret\n"
                                 "insecure = maybe\n";
    g_autoptr(SgNovaConf) a = sg_nova_conf_parse(first, strlen(first), "a.conf", &error);
    g_autoptr(SgNovaConf) b = sg_nova_conf_parse(second, strlen(second), "b.conf", &error);

    sg_nova_conf_merge(a, b);
    ck_assert_str_eq(sg_nova_conf_get(a, "keystone_authtoken", "password"), "secret");
    ck_assert(!sg_nova_conf_apply(a, cfg, "a.conf, b.conf", &error));
    ck_assert_str_eq(error->message, "b.conf:5: [keystone_authtoken] insecure: 'maybe' is "
                                     "not a boolean (true or false)");
}
END_TEST

/* Every syntax error of a file is reported, in line order; the lines
 * under a bad header are not reported again, and the good options around
 * the bad lines are still read. */
START_TEST(test_nova_conf_every_syntax_error)
{
    g_autoptr(GError) error = NULL;
    static const char text[] = "web = /w\n"
                               "[DEFAULT]\n"
                               "just words\n"
                               "cert = /c.pem\n"
                               "[spice\n"
                               "html5proxy_port = 1\n"
                               "[console]\n"
                               "= x\n";
    g_autoptr(SgNovaConf) nc = sg_nova_conf_parse(text, strlen(text), "nova.conf", &error);

    ck_assert_ptr_null(nc);
    ck_assert_str_eq(error->message,
                     "nova.conf:1: option before any [section]\n"
                     "nova.conf:3: not a 'key = value' line, [section] or comment\n"
                     "nova.conf:5: '[spice' is not a [section] header\n"
                     "nova.conf:8: not a 'key = value' line, [section] or comment");
}
END_TEST

/* Every option that cannot be used is reported with its file, line,
 * section and key, in line order (not the order they are mapped in). */
START_TEST(test_nova_conf_every_option_error)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(SgConfig) cfg = sg_config_new_default();
    static const char text[] = "[keystone_authtoken]\n"
                               "auth_type = token\n"
                               "auth_url = http://k:5000/v3\n"
                               "insecure = maybe\n"
                               "[DEFAULT]\n"
                               "ssl_only = sometimes\n"
                               "[spice]\n"
                               "html5proxy_port = 99999\n"
                               "[consoleauth]\n"
                               "token_ttl = -1\n";
    g_autoptr(SgNovaConf) nc = sg_nova_conf_parse(text, strlen(text), "nova.conf", &error);

    ck_assert_ptr_nonnull(nc);
    ck_assert(!sg_nova_conf_apply(nc, cfg, "nova.conf", &error));
    ck_assert_str_eq(error->message,
                     "nova.conf:2: [keystone_authtoken] auth_type = token is not supported "
                     "(password, v3password or v3applicationcredential)\n"
                     "nova.conf:4: [keystone_authtoken] insecure: 'maybe' is not a boolean "
                     "(true or false)\n"
                     "nova.conf:6: [DEFAULT] ssl_only: 'sometimes' is not a boolean (true or "
                     "false)\n"
                     "nova.conf:8: [spice] html5proxy_host/port: port: '99999' is not a whole "
                     "number from 0 to 65535\n"
                     "nova.conf:10: [consoleauth] token_ttl: '-1' is not a whole number from 0 "
                     "to 31536000");
    /* The good options were still applied. */
    ck_assert_str_eq(cfg->nova_auth_url, "http://k:5000/v3");
}
END_TEST

/* A Keystone option reported wrong is not also called missing; a missing
 * one still is when only other options are wrong. */
START_TEST(test_nova_conf_credentials_not_called_missing_when_wrong)
{
    g_autoptr(GError) error = NULL;
    static const char wrong[] = "[service_user]\nauth_url = $keystone/v3\nusername = nova\n";
    static const char other[] = "[DEFAULT]\nssl_only = maybe\n"
                                "[service_user]\nauth_url = http://k:5000/v3\n"
                                "username = nova\nproject_name = service\n";
    g_autoptr(SgConfig) cfg = sg_config_new_default();
    g_autoptr(SgConfig) cfg2 = sg_config_new_default();
    g_autoptr(SgNovaConf) nc = sg_nova_conf_parse(wrong, strlen(wrong), "nova.conf", &error);
    g_autoptr(SgNovaConf) nc2 = sg_nova_conf_parse(other, strlen(other), "nova.conf", &error);

    ck_assert(!sg_nova_conf_apply(nc, cfg, "nova.conf", &error));
    ck_assert_str_eq(error->message, "nova.conf:2: [service_user] auth_url: '$' substitution "
                                     "of oslo.config is not supported; write the value out");
    g_clear_error(&error);
    ck_assert(sg_config_validate(cfg, &error));

    ck_assert(!sg_nova_conf_apply(nc2, cfg2, "nova.conf", &error));
    ck_assert_str_eq(error->message, "nova.conf:2: [DEFAULT] ssl_only: 'maybe' is not a "
                                     "boolean (true or false)");
    g_clear_error(&error);
    ck_assert(!sg_config_validate(cfg2, &error));
    ck_assert_str_eq(error->message, "nova.conf: [service_user] has no password; set it there "
                                     "or [nova] password in spicegate.conf");
}
END_TEST

static char *
write_file(const char *dir, const char *name, const char *text)
{
    char *path = g_build_filename(dir, name, NULL);

    ck_assert(g_file_set_contents(path, text, -1, NULL));
    return path;
}

/* Several files (--config-file twice, --config-dir): one that cannot be
 * read does not hide the others' errors; syntax and option errors of every
 * file come in file order, then line order. */
START_TEST(test_nova_conf_every_error_of_every_file)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(SgConfig) cfg = sg_config_new_default();
    g_autofree char *dir = g_dir_make_tmp("check_nova-XXXXXX", NULL);
    g_autofree char *a = NULL;
    g_autofree char *b = NULL;
    g_autofree char *missing = NULL;
    g_autofree char *expect = NULL;
    const char *files[4];

    ck_assert_ptr_nonnull(dir);
    a = write_file(dir, "a.conf", "[consoleauth]\ntoken_ttl = soon\nnot a line\n");
    b = write_file(dir, "b.conf", "[DEFAULT]\nssl_only = maybe\n[spice\n");
    missing = g_build_filename(dir, "missing.conf", NULL);
    files[0] = b;
    files[1] = missing;
    files[2] = a;
    files[3] = NULL;
    ck_assert(!sg_nova_conf_load_files(cfg, files, &error));
    expect = g_strdup_printf("%s:2: [DEFAULT] ssl_only: 'maybe' is not a boolean (true or "
                             "false)\n"
                             "%s:3: '[spice' is not a [section] header\n"
                             "Failed to open file \u201c%s\u201d: No such file or directory\n"
                             "%s:2: [consoleauth] token_ttl: 'soon' is not a whole number from "
                             "0 to 31536000\n"
                             "%s:3: not a 'key = value' line, [section] or comment",
                             b, b, missing, a, a);
    ck_assert_str_eq(error->message, expect);
    ck_assert_int_eq(g_unlink(a), 0);
    ck_assert_int_eq(g_unlink(b), 0);
    ck_assert_int_eq(g_rmdir(dir), 0);
}
END_TEST

/* Errors about missing Keystone settings speak nova.conf's language and
 * name the spicegate.conf key that could be set instead. */
static const struct {
    const char *spicegate;        /* [nova] settings from spicegate.conf first */
    const char *nova;
    const char *expect;           /* exact message */
} missing_cases[] = {
    { "", "[spice]\nhtml5proxy_port = 6082\n",
      "/etc/nova/nova.conf: no [keystone_authtoken] or [service_user] auth_url, username, "
      "password and project_name; set them there or [nova] auth_url, username, password and "
      "project_name in spicegate.conf" },
    { "username=u\npassword=p\nproject_name=s\n", "[DEFAULT]\nweb = /w\n",
      "/etc/nova/nova.conf: no [keystone_authtoken] or [service_user] auth_url; set it there "
      "or [nova] auth_url in spicegate.conf" },
    { "", "[service_user]\nauth_url = http://k:5000\nusername = nova\nproject_name = s\n",
      "/etc/nova/nova.conf: [service_user] has no password; set it there or [nova] password "
      "in spicegate.conf" },
    { "", "[keystone_authtoken]\nusername = nova\npassword = x\n",
      "/etc/nova/nova.conf: [keystone_authtoken] has no auth_url and project_name; set them "
      "there or [nova] auth_url and project_name in spicegate.conf" },
    { "", "[keystone_authtoken]\nauth_url = http://k:5000\napplication_credential_id = i\n",
      "/etc/nova/nova.conf: [keystone_authtoken] has no application_credential_secret; set it "
      "there or [nova] application_credential_secret in spicegate.conf" },
    { "auth_url = http://k:5000\n", "[service_user]\nusername = nova\npassword = x\n"
      "project_name = s\n", NULL },
};

START_TEST(test_nova_conf_missing_credentials_messages)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(SgConfig) cfg = sg_config_new_default();
    g_autofree char *ours = g_strdup_printf("[nova]\n%s", missing_cases[_i].spicegate);
    const char *text = missing_cases[_i].nova;
    g_autoptr(SgNovaConf) nc = sg_nova_conf_parse(text, strlen(text), "/etc/nova/nova.conf",
                                                  &error);

    ck_assert(sg_config_load_data(cfg, ours, strlen(ours), "spicegate.conf", &error));
    ck_assert(sg_nova_conf_apply(nc, cfg, "/etc/nova/nova.conf", &error));
    if (missing_cases[_i].expect == NULL) {
        ck_assert(sg_config_validate(cfg, &error));
        return;
    }
    ck_assert(!sg_config_validate(cfg, &error));
    ck_assert_str_eq(error->message, missing_cases[_i].expect);
}
END_TEST

static const char token_reply[] =
    "{\"token\": {\"expires_at\": \"2030-01-02T03:04:05.000000Z\", \"methods\": [\"password\"],"
    " \"catalog\": ["
    "  {\"type\": \"identity\", \"endpoints\": [{\"interface\": \"internal\", \"region\":"
    "   \"RegionOne\", \"url\": \"http://k:5000/v3\"}]},"
    "  {\"type\": \"compute\", \"name\": \"nova\", \"endpoints\": ["
    "    {\"interface\": \"public\", \"region\": \"RegionOne\", \"url\": \"https://pub/v2.1\"},"
    "    {\"interface\": \"internal\", \"region\": \"RegionTwo\", \"url\": \"http://int2/v2.1/\"},"
    "    {\"interface\": \"internal\", \"region\": \"RegionOne\", \"region_id\": \"RegionOne\","
    "     \"url\": \"http://int1/v2.1/\"}]}]}}";

START_TEST(test_keystone_parse_token_and_catalog)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *url = NULL;
    gint64 expires = 0;

    ck_assert(sg_keystone_parse_token(token_reply, strlen(token_reply), "internal", "RegionOne",
                                      &expires, &url, &error));
    ck_assert_str_eq(url, "http://int1/v2.1");           /* trailing slash dropped */
    ck_assert_int_eq(expires, (gint64)1893553445 * G_USEC_PER_SEC);
    g_clear_pointer(&url, g_free);
    ck_assert(sg_keystone_parse_token(token_reply, strlen(token_reply), "public", NULL,
                                      &expires, &url, &error));
    ck_assert_str_eq(url, "https://pub/v2.1");
    g_clear_pointer(&url, g_free);
    ck_assert(!sg_keystone_parse_token(token_reply, strlen(token_reply), "admin", NULL,
                                       &expires, &url, &error));
    ck_assert_ptr_nonnull(strstr(error->message, "no compute endpoint"));
}
END_TEST

static const char *const bad_token_replies[] = {
    "", "not json", "[]", "{\"token\": 1}", "{\"token\": {}}",
    "{\"token\": {\"expires_at\": 5}}", "{\"token\": {\"expires_at\": \"tomorrow\"}}",
};

START_TEST(test_keystone_parse_token_rejects_garbage)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *url = NULL;
    gint64 expires = 0;

    ck_assert(!sg_keystone_parse_token(bad_token_replies[_i], strlen(bad_token_replies[_i]),
                                       "internal", NULL, &expires, &url, &error));
    ck_assert_ptr_nonnull(error);
}
END_TEST

START_TEST(test_keystone_auth_body_shapes)
{
    g_autoptr(SgConfig) cfg = sg_config_new_default();
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autofree char *body = NULL;
    JsonObject *auth;

    cfg->nova_username = g_strdup("nova");
    cfg->nova_password = g_strdup("pa\"ss");
    cfg->nova_project_name = g_strdup("service");
    body = sg_keystone_auth_body(cfg);
    ck_assert(json_parser_load_from_data(parser, body, -1, NULL));
    auth = json_object_get_object_member(json_node_get_object(json_parser_get_root(parser)),
                                         "auth");
    ck_assert_str_eq(json_object_get_string_member(
                         json_object_get_object_member(
                             json_object_get_object_member(
                                 json_object_get_object_member(auth, "identity"), "password"),
                             "user"),
                         "password"),
                     "pa\"ss");
    ck_assert(json_object_has_member(auth, "scope"));
    g_clear_pointer(&body, g_free);

    cfg->nova_app_cred_id = g_strdup("abc");
    cfg->nova_app_cred_secret = g_strdup("def");
    body = sg_keystone_auth_body(cfg);
    ck_assert(json_parser_load_from_data(parser, body, -1, NULL));
    auth = json_object_get_object_member(json_node_get_object(json_parser_get_root(parser)),
                                         "auth");
    ck_assert(!json_object_has_member(auth, "scope"));
    ck_assert_ptr_nonnull(strstr(body, "\"application_credential\""));
}
END_TEST

START_TEST(test_nova_reply_parsed)
{
    const char *reply = "{\"console\": {\"instance_uuid\": \"b48316c5\", \"host\": \"cmp1\","
                        " \"port\": 5901, \"internal_access_path\": null, \"tls_port\": 5902}}";
    g_autoptr(SgConsoleTarget) tgt = NULL;
    g_autoptr(GError) error = NULL;

    ck_assert(sg_token_nova_parse_reply(reply, strlen(reply), &tgt, &error));
    ck_assert_str_eq(tgt->host, "cmp1");
    ck_assert_uint_eq(tgt->port, 5901);
    ck_assert_str_eq(tgt->instance_uuid, "b48316c5");
    ck_assert_ptr_null(tgt->internal_access_path);
    ck_assert_uint_eq(tgt->tls_port, 5902);
}
END_TEST

/* tls_port ([spice] tls): absent or null is none; a console with only a
 * TLS port may have a null port. */
START_TEST(test_nova_reply_tls_port)
{
    const struct {
        const char *reply;
        guint16 port, tls_port;
    } cases[] = {
        { "{\"console\": {\"host\": \"h\", \"port\": 5900}}", 5900, 0 },
        { "{\"console\": {\"host\": \"h\", \"port\": 5900, \"tls_port\": null}}", 5900, 0 },
        { "{\"console\": {\"host\": \"h\", \"port\": null, \"tls_port\": 5901}}", 0, 5901 },
        { "{\"console\": {\"host\": \"h\", \"tls_port\": 65535}}", 0, 65535 },
    };

    for (guint i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autoptr(SgConsoleTarget) tgt = NULL;
        g_autoptr(GError) error = NULL;

        ck_assert_msg(sg_token_nova_parse_reply(cases[i].reply, strlen(cases[i].reply), &tgt,
                                                &error), "case %u: %s", i,
                      error ? error->message : "-");
        ck_assert_uint_eq(tgt->port, cases[i].port);
        ck_assert_uint_eq(tgt->tls_port, cases[i].tls_port);
    }
}
END_TEST

/* instance_uuid only reaches the log: anything but a short printable
 * string is left out, and the console still opens. */
START_TEST(test_nova_reply_instance_uuid_bounded)
{
    const char *replies[] = {
        "{\"console\": {\"instance_uuid\": \"a\\nb\", \"host\": \"h\", \"port\": 1}}",
        "{\"console\": {\"instance_uuid\": \"a b\", \"host\": \"h\", \"port\": 1}}",
        "{\"console\": {\"instance_uuid\": \"0123456789012345678901234567890123456789"
        "01234567890123456789012345\", \"host\": \"h\", \"port\": 1}}",
    };

    for (guint i = 0; i < G_N_ELEMENTS(replies); i++) {
        g_autoptr(SgConsoleTarget) tgt = NULL;
        g_autoptr(GError) error = NULL;

        ck_assert_msg(sg_token_nova_parse_reply(replies[i], strlen(replies[i]), &tgt, &error),
                      "case %u refused", i);
        ck_assert_str_eq(tgt->host, "h");
        ck_assert_ptr_null(tgt->instance_uuid);
    }
}
END_TEST

static const char *const bad_nova_replies[] = {
    "", "{}", "{\"console\": []}",
    "{\"console\": {\"host\": \"h\"}}",
    "{\"console\": {\"host\": \"h\", \"port\": \"5900\"}}",
    "{\"console\": {\"host\": \"h\", \"port\": 0}}",
    "{\"console\": {\"host\": \"h\", \"port\": 65536}}",
    "{\"console\": {\"host\": \"h\", \"port\": 5900.5}}",
    "{\"console\": {\"host\": null, \"port\": 5900}}",
    "{\"console\": {\"host\": \"\", \"port\": 5900}}",
    "{\"console\": {\"host\": \"a b\", \"port\": 5900}}",
    "{\"console\": {\"host\": \"h\", \"port\": 5900, \"internal_access_path\": 7}}",
    "{\"console\": {\"host\": \"h\", \"port\": 5900, \"internal_access_path\": \"a\\r\\nb\"}}",
    "{\"console\": {\"host\": \"h\", \"port\": 5900, \"tls_port\": 0}}",
    "{\"console\": {\"host\": \"h\", \"port\": 5900, \"tls_port\": 65536}}",
    "{\"console\": {\"host\": \"h\", \"port\": 5900, \"tls_port\": \"5901\"}}",
    "{\"console\": {\"host\": \"h\", \"port\": null, \"tls_port\": null}}",
    "{\"console\": {\"host\": \"h\", \"port\": null}}",
    "{\"console\": {\"host\": \"h\", \"port\": 0, \"tls_port\": 5901}}",
};

START_TEST(test_nova_reply_validated)
{
    g_autoptr(SgConsoleTarget) tgt = NULL;
    g_autoptr(GError) error = NULL;

    ck_assert_msg(!sg_token_nova_parse_reply(bad_nova_replies[_i], strlen(bad_nova_replies[_i]),
                                             &tgt, &error),
                  "case %d accepted", _i);
    ck_assert_ptr_null(tgt);
    ck_assert(error->domain == SG_TOKEN_ERROR);
}
END_TEST

/* The instance's status (GET /servers/{uuid}) and the version document
 * (GET /), read by the pure helpers that fuzz_nova also calls. */
START_TEST(test_nova_server_status_and_versions)
{
    static const char active[] = "{\"server\": {\"id\": \"x\", \"status\": \"ACTIVE\"}}";
    static const char versions[] =
        "{\"version\": {\"version\": \"2.95\", \"min_version\": \"2.1\"}}";
    static const char long_min[] =
        "{\"version\": {\"version\": \"2.93\", \"min_version\": \"2.11111111111111111111\"}}";
    g_autofree char *status = sg_token_nova_server_status(active, strlen(active));
    g_autofree char *min = NULL;
    g_autofree char *max = NULL;
    g_autoptr(GError) error = NULL;

    ck_assert_str_eq(status, "ACTIVE");
    ck_assert_ptr_null(sg_token_nova_server_status("{\"server\": {\"status\": 1}}", 25));
    ck_assert_ptr_null(sg_token_nova_server_status("[", 1));
    ck_assert_ptr_null(sg_token_nova_server_status(NULL, 0));

    ck_assert(sg_token_nova_parse_versions(versions, strlen(versions), &min, &max, &error));
    ck_assert_str_eq(min, "2.1");
    ck_assert_str_eq(max, "2.95");
    g_clear_pointer(&min, g_free);
    g_clear_pointer(&max, g_free);
    /* A minimum too long to be a microversion is left out, not cut. */
    ck_assert(sg_token_nova_parse_versions(long_min, strlen(long_min), &min, &max, &error));
    ck_assert_ptr_null(min);
    ck_assert_str_eq(max, "2.93");
    g_clear_pointer(&max, g_free);
    ck_assert(sg_token_nova_parse_versions("{}", 2, &min, &max, &error));
    ck_assert_ptr_null(min);
    ck_assert_ptr_null(max);
    ck_assert(!sg_token_nova_parse_versions("{\"version\":", 11, &min, &max, &error));
    ck_assert_ptr_nonnull(error);
    ck_assert_ptr_null(max);
}
END_TEST

/* ---- the answer cache ------------------------------------------------------ */

#define SEC G_USEC_PER_SEC

START_TEST(test_nova_cache_key_is_sha256)
{
    g_autofree char *key = sg_token_nova_cache_key("abc");

    ck_assert_str_eq(key, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}
END_TEST

START_TEST(test_nova_cache_positive_and_negative)
{
    SgNovaCache *c = sg_nova_cache_new(16);
    g_autoptr(SgConsoleTarget) tgt = sg_console_target_new("host", 5900);
    const SgConsoleTarget *got = NULL;

    sg_nova_cache_put(c, "good", tgt, 5 * SEC, 0);
    sg_nova_cache_put(c, "bad", NULL, 3 * SEC, 0);
    ck_assert(sg_nova_cache_get(c, "good", 1 * SEC, &got));
    ck_assert_ptr_nonnull(got);
    ck_assert_ptr_ne(got, tgt);                  /* a copy */
    ck_assert_str_eq(got->host, "host");
    ck_assert(sg_nova_cache_get(c, "bad", 1 * SEC, &got));
    ck_assert_ptr_null(got);                     /* "unknown token" */
    ck_assert(!sg_nova_cache_get(c, "other", 1 * SEC, &got));
    /* Expiry is exclusive, and a lookup frees an expired answer. */
    ck_assert(!sg_nova_cache_get(c, "bad", 3 * SEC, &got));
    ck_assert_uint_eq(sg_nova_cache_size(c), 1);
    ck_assert(sg_nova_cache_get(c, "good", 5 * SEC - 1, &got));
    ck_assert(!sg_nova_cache_get(c, "good", 5 * SEC, &got));
    ck_assert_uint_eq(sg_nova_cache_size(c), 0);
    /* A new answer replaces the old one. */
    sg_nova_cache_put(c, "t", NULL, 5 * SEC, 0);
    sg_nova_cache_put(c, "t", tgt, 9 * SEC, 1 * SEC);
    ck_assert_uint_eq(sg_nova_cache_size(c), 1);
    ck_assert(sg_nova_cache_get(c, "t", 6 * SEC, &got));
    ck_assert_ptr_nonnull(got);
    sg_nova_cache_free(c);
}
END_TEST

START_TEST(test_nova_cache_sweep_frees_unasked)
{
    /* Tokens never seen again must not stay: the sweep frees them. */
    SgNovaCache *c = sg_nova_cache_new(1000);

    for (int i = 0; i < 100; i++) {
        g_autofree char *token = g_strdup_printf("made-up-%d", i);

        sg_nova_cache_put(c, token, NULL, (i < 60 ? 5 : 50) * SEC, 0);
    }
    ck_assert_uint_eq(sg_nova_cache_size(c), 100);
    ck_assert_uint_eq(sg_nova_cache_sweep(c, 4 * SEC), 0);
    ck_assert_uint_eq(sg_nova_cache_sweep(c, 5 * SEC), 60);
    ck_assert_uint_eq(sg_nova_cache_size(c), 40);
    ck_assert_uint_eq(sg_nova_cache_sweep(c, 60 * SEC), 40);
    ck_assert_uint_eq(sg_nova_cache_size(c), 0);
    sg_nova_cache_free(c);
}
END_TEST

START_TEST(test_nova_cache_bounded)
{
    SgNovaCache *c = sg_nova_cache_new(3);
    const SgConsoleTarget *got = NULL;

    sg_nova_cache_put(c, "a", NULL, 10 * SEC, 0);
    sg_nova_cache_put(c, "b", NULL, 2 * SEC, 0);
    sg_nova_cache_put(c, "c", NULL, 10 * SEC, 0);
    /* Full; "b" has expired by now: it goes, not the oldest. */
    sg_nova_cache_put(c, "d", NULL, 10 * SEC, 3 * SEC);
    ck_assert_uint_eq(sg_nova_cache_size(c), 3);
    ck_assert(sg_nova_cache_get(c, "a", 3 * SEC, &got));
    ck_assert(!sg_nova_cache_get(c, "b", 3 * SEC, &got));
    /* Full of live answers: the oldest ("a") goes. */
    sg_nova_cache_put(c, "e", NULL, 10 * SEC, 3 * SEC);
    ck_assert_uint_eq(sg_nova_cache_size(c), 3);
    ck_assert(!sg_nova_cache_get(c, "a", 3 * SEC, &got));
    ck_assert(sg_nova_cache_get(c, "c", 3 * SEC, &got));
    ck_assert(sg_nova_cache_get(c, "d", 3 * SEC, &got));
    ck_assert(sg_nova_cache_get(c, "e", 3 * SEC, &got));
    /* A flood of distinct tokens never grows it past its cap. */
    for (int i = 0; i < 10000; i++) {
        g_autofree char *token = g_strdup_printf("flood-%d", i);

        sg_nova_cache_put(c, token, NULL, 10 * SEC, 4 * SEC);
        ck_assert_uint_le(sg_nova_cache_size(c), 3);
    }
    sg_nova_cache_free(c);
}
END_TEST

START_TEST(test_nova_cache_config_keys)
{
    g_autoptr(SgConfig) cfg = sg_config_new_default();
    g_autoptr(GError) error = NULL;

    ck_assert_uint_eq(cfg->nova_max_lookups, 16);
    ck_assert_uint_eq(cfg->nova_negative_cache_s, 5);
    ck_assert(sg_config_set(cfg, "nova", "max_concurrent_lookups", "1", "test", &error));
    ck_assert_uint_eq(cfg->nova_max_lookups, 1);
    ck_assert(!sg_config_set(cfg, "nova", "max_concurrent_lookups", "0", "test", &error));
    g_clear_error(&error);
    ck_assert(sg_config_set(cfg, "nova", "negative_cache_time", "0", "test", &error));
    ck_assert_uint_eq(cfg->nova_negative_cache_s, 0);
    ck_assert(!sg_config_set(cfg, "nova", "negative_cache_time", "301", "test", &error));
}
END_TEST

static Suite *
nova_suite(void)
{
    Suite *s = suite_create("nova");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_nova_conf_syntax);
    tcase_add_test(tc, test_nova_server_status_and_versions);
    tcase_add_test(tc, test_nova_conf_oslo_value_rules);
    tcase_add_test(tc, test_nova_conf_error_quotes_no_value);
    tcase_add_test(tc, test_nova_conf_maps_onto_spicegate);
    tcase_add_loop_test(tc, test_nova_conf_errors_name_line_and_option, 0,
                        G_N_ELEMENTS(bad_nova));
    tcase_add_test(tc, test_nova_conf_kolla_service_user);
    tcase_add_test(tc, test_nova_conf_osa_domain_ids);
    tcase_add_test(tc, test_nova_conf_credentials_section_choice);
    tcase_add_test(tc, test_nova_conf_domain_name_replaces_id);
    tcase_add_test(tc, test_nova_conf_files_merge);
    tcase_add_test(tc, test_nova_conf_every_syntax_error);
    tcase_add_test(tc, test_nova_conf_every_option_error);
    tcase_add_test(tc, test_nova_conf_every_error_of_every_file);
    tcase_add_test(tc, test_nova_conf_credentials_not_called_missing_when_wrong);
    tcase_add_loop_test(tc, test_nova_conf_missing_credentials_messages, 0,
                        G_N_ELEMENTS(missing_cases));
    tcase_add_test(tc, test_keystone_parse_token_and_catalog);
    tcase_add_loop_test(tc, test_keystone_parse_token_rejects_garbage, 0,
                        G_N_ELEMENTS(bad_token_replies));
    tcase_add_test(tc, test_keystone_auth_body_shapes);
    tcase_add_test(tc, test_nova_reply_parsed);
    tcase_add_test(tc, test_nova_reply_tls_port);
    tcase_add_test(tc, test_nova_reply_instance_uuid_bounded);
    tcase_add_loop_test(tc, test_nova_reply_validated, 0, G_N_ELEMENTS(bad_nova_replies));
    tcase_add_test(tc, test_nova_cache_key_is_sha256);
    tcase_add_test(tc, test_nova_cache_positive_and_negative);
    tcase_add_test(tc, test_nova_cache_sweep_frees_unasked);
    tcase_add_test(tc, test_nova_cache_bounded);
    tcase_add_test(tc, test_nova_cache_config_keys);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(nova_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
