/* SPDX-License-Identifier: Apache-2.0 */
/* check_preflight.c - the start-up checks' exact messages: web roots, the
 * libuv event plugin (with fake paths), the listen probe, the start-up line.
 * The TLS checks need real certificates: tests/integ/test_startup.py. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <check.h>

#include <glib.h>
#include <glib/gstdio.h>

#include "config.h"
#include "listen_socket.h"
#include "preflight.h"

/* A temporary directory, removed by the test's cleanup below. */
static char *tmpdir;

static void
setup(void)
{
    tmpdir = g_dir_make_tmp("sg-preflight-XXXXXX", NULL);
    ck_assert_ptr_nonnull(tmpdir);
}

static void
teardown(void)
{
    g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", tmpdir);

    ck_assert_int_eq(system(cmd), 0);
    g_clear_pointer(&tmpdir, g_free);
}

static char *
touch(const char *dir, const char *name)
{
    char *path = g_build_filename(dir, name, NULL);

    ck_assert(g_file_set_contents(path, "", 0, NULL));
    return path;
}

static SgConfig *
config_with_roots(const char *web, const char *pages)
{
    SgConfig *cfg = sg_config_new_default();

    ck_assert(sg_config_set(cfg, "server", "web", web, "--web", NULL));
    ck_assert(sg_config_set(cfg, "server", "pages", pages, "--pages", NULL));
    return cfg;
}

START_TEST(test_web_root_ok)
{
    g_autofree char *page = touch(tmpdir, "spice_auto.html");
    g_autoptr(SgConfig) cfg = config_with_roots(tmpdir, tmpdir);
    g_autoptr(SgConfig) no_pages = config_with_roots(tmpdir, "");
    g_autoptr(GError) error = NULL;

    ck_assert(sg_preflight_web_roots(cfg, &error));
    ck_assert(sg_preflight_web_roots(no_pages, &error));
}
END_TEST

START_TEST(test_web_root_missing)
{
    g_autofree char *missing = g_build_filename(tmpdir, "nope", NULL);
    g_autoptr(SgConfig) cfg = config_with_roots(missing, tmpdir);
    g_autoptr(GError) error = NULL;
    g_autofree char *want = g_strdup_printf(
        "[server] web %s: No such file or directory; install spice-html5 (Debian package "
        "spice-html5) or set [server] web (--web)", missing);

    ck_assert(!sg_preflight_web_roots(cfg, &error));
    ck_assert_str_eq(error->message, want);
}
END_TEST

START_TEST(test_web_root_without_spice_html5)
{
    g_autofree char *other = touch(tmpdir, "index.html");
    g_autoptr(SgConfig) cfg = config_with_roots(tmpdir, tmpdir);
    g_autoptr(GError) error = NULL;
    g_autofree char *want = g_strdup_printf(
        "[server] web %s holds no readable spice_auto.html, so it is not spice-html5's "
        "directory; install spice-html5 (Debian package spice-html5) or set [server] web "
        "(--web)", tmpdir);

    ck_assert(!sg_preflight_web_roots(cfg, &error));
    ck_assert_str_eq(error->message, want);
}
END_TEST

START_TEST(test_web_root_is_a_file)
{
    g_autofree char *file = touch(tmpdir, "spice_auto.html");
    g_autoptr(SgConfig) cfg = config_with_roots(file, tmpdir);
    g_autoptr(GError) error = NULL;
    g_autofree char *want = g_strdup_printf(
        "[server] web %s: not a directory; install spice-html5 (Debian package spice-html5) "
        "or set [server] web (--web)", file);

    ck_assert(!sg_preflight_web_roots(cfg, &error));
    ck_assert_str_eq(error->message, want);
}
END_TEST

START_TEST(test_pages_missing)
{
    g_autofree char *page = touch(tmpdir, "spice_auto.html");
    g_autofree char *missing = g_build_filename(tmpdir, "web", NULL);
    g_autoptr(SgConfig) cfg = config_with_roots(tmpdir, missing);
    g_autoptr(GError) error = NULL;
    g_autofree char *want = g_strdup_printf(
        "[server] pages %s: No such file or directory; set [server] pages (--pages) to "
        "spicegate's web/ directory", missing);

    ck_assert(!sg_preflight_web_roots(cfg, &error));
    ck_assert_str_eq(error->message, want);
}
END_TEST

START_TEST(test_evlib_missing)
{
    g_autofree char *path = g_build_filename(tmpdir, "libwebsockets-evlib_uv.so", NULL);
    g_autoptr(GError) error = NULL;
    g_autofree char *want = g_strdup_printf(
        "libwebsockets' libuv event library (Debian package libwebsockets-evlib-uv) could not "
        "be loaded: %s: No such file or directory", path);

    ck_assert(!sg_preflight_evlib(path, &error));
    ck_assert_str_eq(error->message, want);
}
END_TEST

START_TEST(test_evlib_not_a_library)
{
    g_autofree char *path = touch(tmpdir, "libwebsockets-evlib_uv.so");
    g_autoptr(GError) error = NULL;

    ck_assert(!sg_preflight_evlib(path, &error));
    ck_assert_msg(g_str_has_prefix(error->message,
                                   "libwebsockets' libuv event library (Debian package "
                                   "libwebsockets-evlib-uv) could not be loaded: "),
                  "%s", error->message);
    ck_assert_ptr_nonnull(strstr(error->message, path));
}
END_TEST

START_TEST(test_evlib_other_library)
{
    /* A real shared object, but not the plugin: libwebsockets itself, from
     * the plugin's directory (libwebsockets-dev's link). */
    g_autofree char *dir = g_path_get_dirname(sg_preflight_evlib_path());
    g_autofree char *path = g_build_filename(dir, "libwebsockets.so", NULL);
    g_autoptr(GError) error = NULL;
    g_autofree char *want = g_strdup_printf(
        "libwebsockets' libuv event library (Debian package libwebsockets-evlib-uv) could not "
        "be loaded: %s is not a libuv event-library plugin for this libwebsockets", path);

    ck_assert(!sg_preflight_evlib(path, &error));
    ck_assert_str_eq(error->message, want);
}
END_TEST

START_TEST(test_evlib_installed)
{
    const char *path = sg_preflight_evlib_path();
    g_autoptr(GError) error = NULL;

    /* The build machine has the plugin (the integration tests need it). */
    ck_assert_ptr_nonnull(path);
    ck_assert_msg(sg_preflight_evlib(path, &error), "%s", error ? error->message : "");
}
END_TEST

START_TEST(test_listen_in_use)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(sin);
    g_autoptr(GError) error = NULL;
    g_autofree char *want = NULL;
    guint bound = 0;

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    ck_assert_int_eq(listen(fd, 1), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    want = g_strdup_printf("cannot listen on 127.0.0.1:%u: Address already in use",
                           ntohs(sin.sin_port));
    ck_assert_int_eq(sg_listen_socket_open("127.0.0.1", ntohs(sin.sin_port), &bound, &error),
                     -1);
    ck_assert_str_eq(error->message, want);
    close(fd);
    /* Free again: now it listens there, non-blocking. */
    g_clear_error(&error);
    fd = sg_listen_socket_open("127.0.0.1", ntohs(sin.sin_port), &bound, &error);
    ck_assert_int_ge(fd, 0);
    ck_assert_uint_eq(bound, ntohs(sin.sin_port));
    ck_assert(fcntl(fd, F_GETFL) & O_NONBLOCK);
    ck_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    close(fd);
}
END_TEST

START_TEST(test_listen_not_local)
{
    g_autoptr(GError) error = NULL;
    guint bound = 0;

    /* 192.0.2.0/24 is TEST-NET-1: never an address of this host. */
    ck_assert_int_eq(sg_listen_socket_open("192.0.2.1", 0, &bound, &error), -1);
    ck_assert_str_eq(error->message,
                     "cannot listen on 192.0.2.1:0: Cannot assign requested address (not an "
                     "address of this host; see [server] listen)");
}
END_TEST

START_TEST(test_bind_hints)
{
    ck_assert_str_eq(sg_preflight_bind_hint(EACCES),
                     " (ports below 1024 need CAP_NET_BIND_SERVICE)");
    ck_assert_str_eq(sg_preflight_bind_hint(EADDRINUSE), "");
}
END_TEST

START_TEST(test_describe)
{
    g_autoptr(SgConfig) cfg = sg_config_new_default();
    g_autoptr(SgConfig) tls = sg_config_new_default();
    g_autofree char *plain = NULL;
    g_autofree char *secure = NULL;

    ck_assert(sg_config_set(cfg, "server", "web", "/w", "--web", NULL));
    ck_assert(sg_config_set(cfg, "server", "pages", "/p", "--pages", NULL));
    ck_assert(sg_config_set(cfg, "tokens", "file", "/t", "--token-file", NULL));
    plain = sg_preflight_describe(cfg, 6082, 1);
    ck_assert_str_eq(plain, "listen *:6082, TLS off (http/ws); tokens: file /t; web /w, "
                            "pages /p; base_url unset, Origin scheme check off; workers 1");

    ck_assert(sg_config_set(tls, "server", "listen", "[::1]:443", "--listen", NULL));
    ck_assert(sg_config_set(tls, "server", "web", "/w", "--web", NULL));
    ck_assert(sg_config_set(tls, "server", "pages", "", "--pages", NULL));
    ck_assert(sg_config_set(tls, "server", "base_url", "https://c.example/spice_auto.html",
                            "x", NULL));
    ck_assert(sg_config_set(tls, "tls", "cert", "/c.pem", "--cert", NULL));
    ck_assert(sg_config_set(tls, "tls", "ssl_only", "true", "x", NULL));
    ck_assert(sg_config_set(tls, "tokens", "backend", "nova", "x", NULL));
    ck_assert(sg_config_set(tls, "nova", "auth_url", "http://ks:5000/v3", "x", NULL));
    secure = sg_preflight_describe(tls, 443, 4);
    ck_assert_str_eq(secure, "listen [::1]:443, TLS on (https/wss only, cert /c.pem, key "
                             "/c.pem); tokens: nova via http://ks:5000/v3; web /w, pages "
                             "(none); base_url https://c.example/spice_auto.html, Origin "
                             "scheme check on (https); workers 4");
}
END_TEST

static Suite *
preflight_suite(void)
{
    Suite *s = suite_create("preflight");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 10);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_web_root_ok);
    tcase_add_test(tc, test_web_root_missing);
    tcase_add_test(tc, test_web_root_without_spice_html5);
    tcase_add_test(tc, test_web_root_is_a_file);
    tcase_add_test(tc, test_pages_missing);
    tcase_add_test(tc, test_evlib_missing);
    tcase_add_test(tc, test_evlib_not_a_library);
    tcase_add_test(tc, test_evlib_other_library);
    tcase_add_test(tc, test_evlib_installed);
    tcase_add_test(tc, test_listen_in_use);
    tcase_add_test(tc, test_listen_not_local);
    tcase_add_test(tc, test_bind_hints);
    tcase_add_test(tc, test_describe);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(preflight_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
