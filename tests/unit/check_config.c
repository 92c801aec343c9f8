/* SPDX-License-Identifier: Apache-2.0 */
/* check_config.c - defaults, file parsing, errors that name file:line and
 * key, command-line overrides, and the key table against the docs. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <glib.h>
#include <spice/protocol.h>

#include "config.h"
#include "spice_link.h"

static SgConfig *
load(const char *text, GError **error)
{
    SgConfig *cfg = sg_config_new_default();

    if (!sg_config_load_data(cfg, text, strlen(text), "test.conf", error)) {
        sg_config_free(cfg);
        return NULL;
    }
    return cfg;
}

START_TEST(test_config_defaults)
{
    g_autoptr(SgConfig) cfg = sg_config_new_default();

    ck_assert_ptr_null(cfg->listen_host);          /* every address */
    ck_assert_uint_eq(cfg->listen_port, 6082);     /* Nova's html5proxy_port */
    ck_assert_str_eq(cfg->web_dir, "/usr/share/spice-html5");
    ck_assert_ptr_nonnull(cfg->allowed_origins);
    ck_assert_ptr_null(cfg->allowed_origins[0]);
    ck_assert_str_eq(cfg->frame_ancestors, "*");   /* any dashboard may frame */
    ck_assert_uint_eq(cfg->connect_timeout_s, 10);
    /* Every waiting state's deadline. */
    ck_assert_uint_eq(cfg->handshake_timeout_s, 10);   /* lws' own before */
    ck_assert_uint_eq(cfg->link_timeout_s, 10);
    ck_assert_uint_eq(cfg->idle_timeout_s, 0);         /* off */
    ck_assert_uint_eq(cfg->ping_interval_s, 30);      /* keepalive pings */
    ck_assert_uint_eq(cfg->close_timeout_s, 30);
    ck_assert_uint_eq(cfg->shutdown_timeout_s, 3);     /* the listener's before */
    ck_assert_uint_eq(cfg->drain_timeout_s, 0);        /* SIGTERM closes at once */
    ck_assert(!cfg->ssl_only);
    ck_assert_int_eq(cfg->tls_min_version, SG_TLS_MIN_1_2);
    ck_assert_str_eq(cfg->token_backend, "file");
    ck_assert(g_str_has_suffix(cfg->token_file, "/spicegate/tokens"));
    /* [spice] channels: what spice-html5 uses, nothing else. */
    ck_assert_uint_eq(cfg->spice_channels,
                      1u << SPICE_CHANNEL_MAIN | 1u << SPICE_CHANNEL_DISPLAY |
                          1u << SPICE_CHANNEL_INPUTS | 1u << SPICE_CHANNEL_CURSOR |
                          1u << SPICE_CHANNEL_PLAYBACK | 1u << SPICE_CHANNEL_PORT);
}
END_TEST

/* [spice] channels: commas, semicolons (GKeyFile lists) or blanks, any
 * ASCII case; every name SPICE knows. */
START_TEST(test_config_spice_channels)
{
    static const struct {
        const char *value;
        SgSpiceChannelSet want;
    } good[] = {
        { "main", 1u << SPICE_CHANNEL_MAIN },
        { "main;usbredir;", 1u << SPICE_CHANNEL_MAIN | 1u << SPICE_CHANNEL_USBREDIR },
        { " MAIN ,\tDisplay  webdav", 1u << SPICE_CHANNEL_MAIN | 1u << SPICE_CHANNEL_DISPLAY |
                                          1u << SPICE_CHANNEL_WEBDAV },
        { "main, display, inputs, cursor, playback, record, tunnel, smartcard, usbredir, "
          "port, webdav", 0xffeu },
    };

    for (guint i = 0; i < G_N_ELEMENTS(good); i++) {
        g_autoptr(GError) error = NULL;
        g_autofree char *text = g_strdup_printf("[spice]\nchannels = %s\n", good[i].value);
        g_autoptr(SgConfig) cfg = load(text, &error);

        ck_assert_msg(cfg != NULL, "%s: %s", good[i].value, error ? error->message : "");
        ck_assert_uint_eq(cfg->spice_channels, good[i].want);
    }
}
END_TEST

START_TEST(test_config_file_values)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(SgConfig) cfg = load("# a comment\n"
                                   "[server]\n"
                                   "listen = 127.0.0.1:7000\n"
                                   "allowed_origins = horizon.example.com, Dash.Example.com\n"
                                   "frame_ancestors = https://horizon.example.com, "
                                   "'self' https://*.dash.example.com:8443\n"
                                   "connect_timeout=3\n"
                                   "handshake_timeout = 4\n"
                                   "idle_timeout = 900\n"
                                   "ping_interval = 0\n"
                                   "close_timeout = 5\n"
                                   "shutdown_timeout = 6\n"
                                   "drain_timeout = 600\n"
                                   "\n"
                                   "[tls]\n"
                                   "ssl_only = yes\n"
                                   "minimum_version = tlsv1_3\n"
                                   "cert = /etc/x.pem\n",
                                   &error);

    ck_assert_ptr_null(error);
    ck_assert_ptr_nonnull(cfg);
    ck_assert_str_eq(cfg->listen_host, "127.0.0.1");
    ck_assert_uint_eq(cfg->listen_port, 7000);
    ck_assert_str_eq(cfg->allowed_origins[0], "horizon.example.com");
    ck_assert_str_eq(cfg->allowed_origins[1], "dash.example.com");
    ck_assert_ptr_null(cfg->allowed_origins[2]);
    ck_assert_str_eq(cfg->frame_ancestors,
                     "https://horizon.example.com 'self' https://*.dash.example.com:8443");
    ck_assert_uint_eq(cfg->connect_timeout_s, 3);
    ck_assert_uint_eq(cfg->handshake_timeout_s, 4);
    ck_assert_uint_eq(cfg->idle_timeout_s, 900);
    ck_assert_uint_eq(cfg->ping_interval_s, 0);
    ck_assert_uint_eq(cfg->close_timeout_s, 5);
    ck_assert_uint_eq(cfg->shutdown_timeout_s, 6);
    ck_assert_uint_eq(cfg->drain_timeout_s, 600);
    ck_assert(cfg->ssl_only);
    ck_assert_int_eq(cfg->tls_min_version, SG_TLS_MIN_1_3);
    ck_assert_str_eq(cfg->cert, "/etc/x.pem");
}
END_TEST

/* Each bad file must fail with a message naming file, line and key. */
static const struct {
    const char *text;
    const char *expect;
} bad_files[] = {
    { "[server]\nlisten = 1.2.3.4:70000\n", "test.conf:2: [server] listen:" },
    { "[server]\n\nbogus = 1\n", "test.conf:3: [server] bogus: unknown key" },
    { "[nope]\nx = 1\n", "test.conf:1: [nope]: unknown group" },
    { "listen = :1\n", "test.conf:1: key before any [group]" },
    { "[server]\njust words\n", "test.conf:2: not a 'key = value' line" },
    { "[server]\n[tls\n", "test.conf:2:" },
    { "[tls]\nssl_only = maybe\n", "test.conf:2: [tls] ssl_only: 'maybe' is not a boolean" },
    { "[tls]\nminimum_version = tlsv1_1\n", "test.conf:2: [tls] minimum_version:" },
    { "[server]\nconnect_timeout = 0\n", "test.conf:2: [server] connect_timeout:" },
    { "[server]\nconnect_timeout = 301\n", "test.conf:2: [server] connect_timeout:" },
    { "[server]\nlink_timeout = ten\n", "test.conf:2: [server] link_timeout:" },
    { "[server]\nhandshake_timeout = 0\n",
      "test.conf:2: [server] handshake_timeout: '0' is not a whole number from 1 to 300" },
    { "[server]\nidle_timeout = -5\n",
      "test.conf:2: [server] idle_timeout: '-5' is not a whole number from 0 to 604800" },
    { "[server]\nidle_timeout = 604801\n", "test.conf:2: [server] idle_timeout:" },
    { "[server]\nclose_timeout = 0\n",
      "test.conf:2: [server] close_timeout: '0' is not a whole number from 1 to 300" },
    { "[server]\nshutdown_timeout = 1h\n",
      "test.conf:2: [server] shutdown_timeout: '1h' is not a whole number from 1 to 300" },
    { "[server]\ndrain_timeout = 86401\n",
      "test.conf:2: [server] drain_timeout: '86401' is not a whole number from 0 to 86400" },
    { "[server]\nlisten = host.example:80\n", "test.conf:2: [server] listen:" },
    { "[server]\nlisten = ::1:80\n", "test.conf:2: [server] listen:" },
    { "[server]\nallowed_origins = https://x.example\n", "[server] allowed_origins:" },
    { "[tokens]\nbackend = redis\n", "test.conf:2: [tokens] backend:" },
    { "[spice]\nchannels = main, usb\n",
      "test.conf:2: [spice] channels: 'usb' is not a SPICE channel type (known: main, display, "
      "inputs, cursor, playback, record, tunnel, smartcard, usbredir, port, webdav)" },
    { "[spice]\nchannels = main, unknown\n",
      "test.conf:2: [spice] channels: 'unknown' is not a SPICE channel type" },
    { "[spice]\nchannels = display, inputs\n",
      "test.conf:2: [spice] channels: 'display, inputs' lacks main" },
    { "[spice]\nchannels =\n",
      "test.conf:2: [spice] channels: an empty list would refuse every channel" },
    /* frame_ancestors goes into a header: nothing that ends a directive. */
    { "[server]\nframe_ancestors = https://a.example; script-src *\n",
      "test.conf:2: [server] frame_ancestors:" },
    { "[server]\nframe_ancestors = horizon.example\n", "[server] frame_ancestors:" },
    { "[server]\nframe_ancestors = self\n", "write 'self' with its single quotes" },
    { "[server]\nframe_ancestors = 'none' https://a.example\n", "[server] frame_ancestors:" },
    { "[server]\nframe_ancestors =\n", "[server] frame_ancestors: empty" },
    { "[server]\nframe_ancestors = 'unsafe-inline'\n", "[server] frame_ancestors:" },
    { "[limits]\nper_token = 3\n", "would let no console open" },
    { "[limits]\nper_ip = -1\n", "test.conf:2: [limits] per_ip:" },
    { "[limits]\nmax_sessions = 1000001\n", "[limits] max_sessions:" },
};

START_TEST(test_config_errors_name_file_line_key)
{
    g_autoptr(GError) error = NULL;
    SgConfig *cfg = load(bad_files[_i].text, &error);

    ck_assert_ptr_null(cfg);
    ck_assert_ptr_nonnull(error);
    ck_assert_msg(strstr(error->message, bad_files[_i].expect) != NULL,
                  "case %d: got '%s', want '%s'", _i, error->message, bad_files[_i].expect);
}
END_TEST

/* frame_ancestors ends up in every answer's headers: a list that would not
 * leave room for them is refused at start, not found out request by
 * request. */
START_TEST(test_config_frame_ancestors_bounded)
{
    g_autoptr(GString) text = g_string_new("[server]\nframe_ancestors =");
    g_autoptr(GError) error = NULL;
    SgConfig *cfg;

    /* 30 origins of 32 bytes, spaces between: 989 bytes, accepted. */
    for (int i = 0; i < 30; i++)
        g_string_append_printf(text, " https://dashboard-%02d.example.org", i);
    g_string_append_c(text, '\n');
    cfg = load(text->str, &error);
    ck_assert_msg(cfg != NULL, "%s", error ? error->message : "");
    ck_assert_uint_eq(strlen(cfg->frame_ancestors), 30 * 33 - 1);
    sg_config_free(cfg);

    /* 40: 1,319 bytes, refused with the count. */
    g_string_truncate(text, text->len - 1);
    for (int i = 30; i < 40; i++)
        g_string_append_printf(text, " https://dashboard-%02d.example.org", i);
    g_string_append_c(text, '\n');
    cfg = load(text->str, &error);
    ck_assert_ptr_null(cfg);
    ck_assert_msg(strstr(error->message, "[server] frame_ancestors: 1319 bytes of sources, "
                                         "more than 1024") != NULL, "%s", error->message);
}
END_TEST

START_TEST(test_config_nul_byte_is_an_error)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(SgConfig) cfg = sg_config_new_default();

    ck_assert(!sg_config_load_data(cfg, "[server]\0x", 10, "nul.conf", &error));
    ck_assert_ptr_nonnull(strstr(error->message, "nul.conf"));
}
END_TEST

START_TEST(test_config_every_error_is_reported)
{
    g_autoptr(GError) error = NULL;
    SgConfig *cfg = load("[server]\n"
                         "link_timeout = soon\n"
                         "bogus = 1\n"
                         "not a line\n"
                         "[nonsense]\n"
                         "x = 1\n"
                         "[tls]\n"
                         "ssl_only = perhaps\n"
                         "cert = /c.pem\n",
                         &error);

    ck_assert_ptr_null(cfg);
    /* In line order, one per line; the keys of an unknown group are not
     * reported one by one; the good key (cert) is not an error. */
    ck_assert_str_eq(error->message,
                     "test.conf:2: [server] link_timeout: 'soon' is not a whole number from 1 "
                     "to 300\n"
                     "test.conf:3: [server] bogus: unknown key\n"
                     "test.conf:4: not a 'key = value' line, [group] header or # comment\n"
                     "test.conf:5: [nonsense]: unknown group (known: server, admin, tls, tokens, nova)\n"
                     "test.conf:8: [tls] ssl_only: 'perhaps' is not a boolean (true or false)");
}
END_TEST

/* The messages the man pages show as examples, reproduced: the file the
 * examples describe, and the lines spicegate prints for it. */
START_TEST(test_config_man_page_examples_are_real)
{
    static const char *const pages[] = { "spicegate.8.in", "spicegate.conf.5.in" };
    static const char text[] = "[server]\n#\n#\n#\n#\n#\n#\n#\n#\n#\n#\n"
                               "connect_timeout = 0\n\n[tls]\nssl_only = perhaps\n";
    g_autoptr(GError) error = NULL;
    g_autoptr(SgConfig) cfg = sg_config_new_default();
    g_auto(GStrv) real = NULL;

    ck_assert(!sg_config_load_data(cfg, text, strlen(text), "spicegate.conf", &error));
    real = g_strsplit(error->message, "\n", -1);
    for (guint i = 0; real[i] != NULL; i++) {
        g_autofree char *line = g_strconcat("spicegate: ", real[i], NULL);

        g_free(real[i]);
        real[i] = g_steal_pointer(&line);
    }
    for (guint p = 0; p < G_N_ELEMENTS(pages); p++) {
        g_autofree char *path = g_build_filename(SRCDIR, "man", pages[p], NULL);
        g_autofree char *man = NULL;
        g_auto(GStrv) lines = NULL;
        guint examples = 0;

        ck_assert(g_file_get_contents(path, &man, NULL, NULL));
        lines = g_strsplit(man, "\n", -1);
        for (guint i = 0; lines[i] != NULL; i++) {
            g_autoptr(GString) plain = NULL;

            if (!g_str_has_prefix(lines[i], "spicegate: spicegate.conf:"))
                continue;
            /* The roff escapes these lines use. */
            plain = g_string_new(lines[i]);
            g_string_replace(plain, "\\(aq", "'", 0);
            g_string_replace(plain, "\\-", "-", 0);
            ck_assert_msg(g_strv_contains((const char *const *)real, plain->str),
                          "%s:%u: example '%s' is not what spicegate prints:\n%s", path, i + 1,
                          plain->str, error->message);
            examples++;
        }
        ck_assert_msg(examples >= 2, "%s: no example messages found", path);
    }
}
END_TEST

static const struct {
    const char *value;
    const char *host;     /* NULL: every address */
    guint port;
} good_listen[] = {
    { "0.0.0.0:6082", NULL, 6082 },
    { "127.0.0.1:0", "127.0.0.1", 0 },
    { "[::1]:6082", "::1", 6082 },
    { "[::]:80", NULL, 80 },
    { ":9000", NULL, 9000 },
    { "9000", NULL, 9000 },
    { "*:1", NULL, 1 },
};

START_TEST(test_config_listen_forms)
{
    g_autoptr(SgConfig) cfg = sg_config_new_default();
    g_autoptr(GError) error = NULL;

    ck_assert(sg_config_set_listen(cfg, good_listen[_i].value, "--listen", &error));
    if (good_listen[_i].host == NULL)
        ck_assert_ptr_null(cfg->listen_host);
    else
        ck_assert_str_eq(cfg->listen_host, good_listen[_i].host);
    ck_assert_uint_eq(cfg->listen_port, good_listen[_i].port);
}
END_TEST

START_TEST(test_config_command_line_names_the_flag)
{
    g_autoptr(SgConfig) cfg = sg_config_new_default();
    g_autoptr(GError) error = NULL;

    ck_assert(!sg_config_set(cfg, "server", "listen", "[::1]", "--listen", &error));
    ck_assert(g_str_has_prefix(error->message, "--listen: "));
    g_clear_error(&error);
    ck_assert(sg_config_set(cfg, "tokens", "file", "/tmp/t", "--token-file", &error));
    ck_assert_str_eq(cfg->token_file, "/tmp/t");
}
END_TEST

START_TEST(test_config_validate_cross_checks)
{
    g_autoptr(SgConfig) cfg = sg_config_new_default();
    g_autoptr(GError) error = NULL;

    ck_assert(sg_config_validate(cfg, &error));
    cfg->ssl_only = true;
    ck_assert(!sg_config_validate(cfg, &error));
    ck_assert_str_eq(error->message, "[tls] ssl_only needs [tls] cert (and key)");
    g_clear_error(&error);
    cfg->ssl_only = false;
    cfg->key = g_strdup("/k.pem");
    ck_assert(!sg_config_validate(cfg, &error));
    ck_assert_str_eq(error->message, "[tls] key is set but [tls] cert is not");
}
END_TEST

/* [server] trusted_proxies is parsed at load, so that a typo stops the
 * start with its line; proxy_protocol without it would refuse everyone. */
START_TEST(test_config_trusted_proxies)
{
    g_autoptr(GError) error = NULL;
    /* The other keys of [server] leave the list alone, in any order. */
    g_autoptr(SgConfig) cfg = load("[server]\ntrusted_proxies = 10.0.0.0/8, ::1\n"
                                   "proxy_protocol = true\nframe_ancestors = 'self'\n"
                                   "allowed_origins = a.example\n", &error);
    g_autoptr(SgConfig) bad = NULL;
    g_autoptr(SgConfig) lonely = sg_config_new_default();
    struct sockaddr_storage ss = { 0 };

    ck_assert_msg(cfg != NULL, "%s", error ? error->message : "");
    ck_assert(cfg->proxy_protocol);
    ck_assert_uint_eq(sg_trusted_proxies_count(cfg->trusted_proxies), 2);
    ss.ss_family = AF_INET;
    ((struct sockaddr_in *)&ss)->sin_addr.s_addr = htonl(0x0a010203);
    ck_assert(sg_trusted_proxies_match(cfg->trusted_proxies, &ss));
    ck_assert(sg_config_validate(cfg, &error));
    /* The default trusts nobody. */
    ck_assert_uint_eq(sg_trusted_proxies_count(lonely->trusted_proxies), 0);
    ck_assert(!lonely->proxy_protocol);
    bad = load("[server]\ntrusted_proxies = lb.example.org\n", &error);
    ck_assert_ptr_null(bad);
    ck_assert_msg(strstr(error->message, ":2: [server] trusted_proxies: 'lb.example.org' is not "
                         "an IP address") != NULL, "%s", error->message);
    g_clear_error(&error);
    lonely->proxy_protocol = true;
    ck_assert(!sg_config_validate(lonely, &error));
    ck_assert_str_eq(error->message, "[server] proxy_protocol needs [server] trusted_proxies: "
                                     "the load balancers whose PROXY headers are believed");
}
END_TEST

/* Every cross-check that fails is reported, one per line, not only the
 * first. */
START_TEST(test_config_validate_every_problem)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(SgConfig) cfg = load("[tls]\nkey = /k.pem\nssl_only = true\n"
                                   "[tokens]\nfile =\n",
                                   &error);

    ck_assert_ptr_nonnull(cfg);
    ck_assert(!sg_config_validate(cfg, &error));
    ck_assert_str_eq(error->message,
                     "[tls] key is set but [tls] cert is not\n"
                     "[tls] ssl_only needs [tls] cert (and key)\n"
                     "[tokens] file is empty: the file backend needs a token file");
    g_clear_error(&error);
    ck_assert(sg_config_set(cfg, "tokens", "backend", "nova", "test", &error));
    ck_assert(sg_config_set(cfg, "nova", "application_credential_id", "i", "test", &error));
    ck_assert(!sg_config_validate(cfg, &error));
    ck_assert_str_eq(error->message,
                     "[tls] key is set but [tls] cert is not\n"
                     "[tls] ssl_only needs [tls] cert (and key)\n"
                     "[nova] auth_url is needed when [tokens] backend = nova\n"
                     "[nova] application_credential_id and application_credential_secret go "
                     "together");
}
END_TEST

/* Keystone takes a domain by id as well as by name (OpenStack-Ansible
 * writes ids); without a nova.conf the messages name spicegate.conf's keys. */
START_TEST(test_config_nova_domain_ids_and_messages)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(SgConfig) cfg = load("[tokens]\nbackend = nova\n"
                                   "[nova]\nuser_domain_id = default\n"
                                   "project_domain_id = 3a1b\n",
                                   &error);

    ck_assert_ptr_nonnull(cfg);
    ck_assert_str_eq(cfg->nova_user_domain_id, "default");
    ck_assert_str_eq(cfg->nova_project_domain_id, "3a1b");
    ck_assert_str_eq(cfg->nova_user_domain_name, "Default");   /* kept, but the id wins */
    ck_assert(!sg_config_validate(cfg, &error));
    ck_assert_str_eq(error->message, "[nova] auth_url is needed when [tokens] backend = nova\n"
                                     "[nova] needs username, password and project_name, or "
                                     "application_credential_id and "
                                     "application_credential_secret");
    g_clear_error(&error);
    cfg->nova_auth_url = g_strdup("http://k:5000");
    ck_assert(!sg_config_validate(cfg, &error));
    ck_assert_str_eq(error->message, "[nova] needs username, password and project_name, or "
                                     "application_credential_id and "
                                     "application_credential_secret");
}
END_TEST

/* A [nova] setting reported wrong is not also called missing. */
START_TEST(test_config_nova_error_not_repeated)
{
    static const char text[] = "[tokens]\nbackend = nova\n[nova]\nauth_url = keystone:5000\n";
    g_autoptr(GError) error = NULL;
    g_autoptr(SgConfig) cfg = sg_config_new_default();

    ck_assert(!sg_config_load_data(cfg, text, strlen(text), "test.conf", &error));
    ck_assert_str_eq(error->message, "test.conf:4: [nova] auth_url: 'keystone:5000' is not an "
                                     "http:// or https:// URL");
    g_clear_error(&error);
    ck_assert(sg_config_validate(cfg, &error));
    cfg->nova_credentials_failed = false;
    ck_assert(!sg_config_validate(cfg, &error));
}
END_TEST

/* [limits]: 0 (no limit) by default, whole numbers when set. */
START_TEST(test_config_limits)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(SgConfig) defaults = sg_config_new_default();
    g_autoptr(SgConfig) cfg = load("[limits]\nmax_sessions = 5000\nper_ip = 60\n"
                                   "per_token = 4\n", &error);

    ck_assert_uint_eq(defaults->max_sessions, 0);
    ck_assert_uint_eq(defaults->per_ip, 0);
    ck_assert_uint_eq(defaults->per_token, 0);
    ck_assert_ptr_nonnull(cfg);
    ck_assert_uint_eq(cfg->max_sessions, 5000);
    ck_assert_uint_eq(cfg->per_ip, 60);
    ck_assert_uint_eq(cfg->per_token, 4);
}
END_TEST

/* [spice]: TLS toward SPICE servers. auto by default; always needs a CA;
 * host_subject is spice-gtk's syntax, checked at load. */
START_TEST(test_config_spice_tls)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(SgConfig) defaults = sg_config_new_default();
    g_autoptr(SgConfig) cfg = load("[spice]\ntls = always\nca_file = /ca.pem\n"
                                   "host_subject = C=IL, L=Raanana, O=Red Hat, CN=my server\n"
                                   "tls_minimum_version = tlsv1.3\n", &error);
    g_autoptr(SgConfig) bad = NULL;
    g_autoptr(SgConfig) no_ca = sg_config_new_default();

    ck_assert_int_eq(defaults->spice_tls, SG_SPICE_TLS_AUTO);
    ck_assert_ptr_null(defaults->spice_ca_file);
    ck_assert_int_eq(defaults->spice_tls_min_version, SG_TLS_MIN_1_2);
    ck_assert(sg_config_validate(defaults, NULL));
    ck_assert_msg(cfg != NULL, "%s", error ? error->message : "");
    ck_assert_int_eq(cfg->spice_tls, SG_SPICE_TLS_ALWAYS);
    ck_assert_str_eq(cfg->spice_ca_file, "/ca.pem");
    ck_assert_str_eq(cfg->spice_host_subject, "C=IL, L=Raanana, O=Red Hat, CN=my server");
    ck_assert_int_eq(cfg->spice_tls_min_version, SG_TLS_MIN_1_3);
    ck_assert(sg_config_validate(cfg, NULL));

    bad = load("[spice]\ntls = sometimes\n", &error);
    ck_assert_ptr_null(bad);
    ck_assert_ptr_nonnull(strstr(error->message, "auto, always, never"));
    g_clear_error(&error);
    bad = load("[spice]\nhost_subject = CN=a, O\n", &error);
    ck_assert_ptr_null(bad);
    ck_assert_ptr_nonnull(strstr(error->message, "host subject"));
    g_clear_error(&error);
    bad = load("[spice]\nhost_subject = NOTAKEY=x\n", &error);
    ck_assert_ptr_null(bad);
    g_clear_error(&error);
    bad = load("[spice]\ntls_minimum_version = tlsv1.1\n", &error);
    ck_assert_ptr_null(bad);
    g_clear_error(&error);

    /* No "trust anything": always without a CA stops the start. */
    no_ca->spice_tls = SG_SPICE_TLS_ALWAYS;
    ck_assert(!sg_config_validate(no_ca, &error));
    ck_assert_ptr_nonnull(strstr(error->message, "[spice] tls = always needs [spice] ca_file"));
}
END_TEST

START_TEST(test_config_later_value_wins)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(SgConfig) cfg = load("[server]\nlink_timeout = 5\n[server]\nlink_timeout = 7\n",
                                   &error);

    ck_assert_ptr_nonnull(cfg);
    ck_assert_uint_eq(cfg->link_timeout_s, 7);
}
END_TEST

/* The man page and the sample file document every key of the table. */
START_TEST(test_config_every_key_is_documented)
{
    g_autofree char *man = NULL;
    g_autofree char *sample = NULL;
    g_autofree char *man_path = g_build_filename(SRCDIR, "man", "spicegate.conf.5.in", NULL);
    g_autofree char *sample_path = g_build_filename(SRCDIR, "conf", "spicegate.conf.in", NULL);

    ck_assert(g_file_get_contents(man_path, &man, NULL, NULL));
    ck_assert(g_file_get_contents(sample_path, &sample, NULL, NULL));
    for (const SgConfigKeyInfo *k = sg_config_keys(); k->key != NULL; k++) {
        g_autofree char *in_man = g_strdup_printf("\n.B %s\n", k->key);
        g_autofree char *commented = g_strdup_printf("\n#%s =", k->key);
        g_autofree char *plain = g_strdup_printf("\n%s =", k->key);
        g_autofree char *group = g_strdup_printf("[%s]", k->group);

        ck_assert_msg(strstr(man, in_man) != NULL, "key %s missing from %s", k->key,
                      man_path);
        ck_assert_msg(strstr(sample, commented) != NULL || strstr(sample, plain) != NULL,
                      "key %s missing from %s", k->key, sample_path);
        ck_assert_msg(strstr(sample, group) != NULL, "group [%s] missing from %s", k->group,
                      sample_path);
    }
}
END_TEST

static Suite *
config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_config_defaults);
    tcase_add_test(tc, test_config_file_values);
    tcase_add_test(tc, test_config_spice_channels);
    tcase_add_loop_test(tc, test_config_errors_name_file_line_key, 0, G_N_ELEMENTS(bad_files));
    tcase_add_test(tc, test_config_frame_ancestors_bounded);
    tcase_add_test(tc, test_config_nul_byte_is_an_error);
    tcase_add_test(tc, test_config_every_error_is_reported);
    tcase_add_test(tc, test_config_man_page_examples_are_real);
    tcase_add_loop_test(tc, test_config_listen_forms, 0, G_N_ELEMENTS(good_listen));
    tcase_add_test(tc, test_config_command_line_names_the_flag);
    tcase_add_test(tc, test_config_validate_cross_checks);
    tcase_add_test(tc, test_config_validate_every_problem);
    tcase_add_test(tc, test_config_nova_error_not_repeated);
    tcase_add_test(tc, test_config_nova_domain_ids_and_messages);
    tcase_add_test(tc, test_config_later_value_wins);
    tcase_add_test(tc, test_config_limits);
    tcase_add_test(tc, test_config_spice_tls);
    tcase_add_test(tc, test_config_every_key_is_documented);
    tcase_add_test(tc, test_config_trusted_proxies);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(config_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
