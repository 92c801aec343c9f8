/* SPDX-License-Identifier: Apache-2.0 */
/* check_nova.c - the pure parts of the Nova backend: nova.conf syntax and
 * mapping, Keystone's token reply and auth body, Nova's console reply. */
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <glib.h>
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
    { "[keystone_authtoken]\nauth_type = token\n", "auth_type = token is not supported" },
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

static Suite *
nova_suite(void)
{
    Suite *s = suite_create("nova");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_nova_conf_syntax);
    tcase_add_test(tc, test_nova_conf_maps_onto_spicegate);
    tcase_add_loop_test(tc, test_nova_conf_errors_name_line_and_option, 0,
                        G_N_ELEMENTS(bad_nova));
    tcase_add_test(tc, test_keystone_parse_token_and_catalog);
    tcase_add_loop_test(tc, test_keystone_parse_token_rejects_garbage, 0,
                        G_N_ELEMENTS(bad_token_replies));
    tcase_add_test(tc, test_keystone_auth_body_shapes);
    tcase_add_test(tc, test_nova_reply_parsed);
    tcase_add_loop_test(tc, test_nova_reply_validated, 0, G_N_ELEMENTS(bad_nova_replies));
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
