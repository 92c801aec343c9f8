/* SPDX-License-Identifier: Apache-2.0 */
/* check_web.c - request path normalising, MIME types and root resolution.
 *
 * Normalising and MIME types are table-driven. Resolution runs against two
 * web roots and an "outside" directory built fresh in a temporary directory
 * for each test, with the symlinks an attacker would hope for.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <check.h>
#include <glib.h>
#include <glib/gstdio.h>

#include "http_response.h"
#include "web.h"

/* 10 s: every test here finishes in milliseconds; this only catches hangs. */
#define TEST_TIMEOUT_S 10

/* ---- normalising ----------------------------------------------------------- */

typedef struct {
    const char *in;
    SgWebPathResult result;
    const char *out;   /* on OK */
} PathCase;

static const PathCase path_cases[] = {
    { "/", SG_WEB_PATH_OK, "" },
    { "/spice_auto.html", SG_WEB_PATH_OK, "spice_auto.html" },
    { "/thirdparty/sha1.js", SG_WEB_PATH_OK, "thirdparty/sha1.js" },
    { "/a//b", SG_WEB_PATH_OK, "a/b" },                     /* inner empty segments dropped */
    { "/a/./b", SG_WEB_PATH_OK, "a/b" },
    { "/./a", SG_WEB_PATH_OK, "a" },
    { "/.", SG_WEB_PATH_OK, "" },
    { "/%2e", SG_WEB_PATH_OK, "" },                          /* an encoded "." is still "." */
    { "/a/b%20c", SG_WEB_PATH_OK, "a/b c" },
    { "/%41%62c", SG_WEB_PATH_OK, "Abc" },
    { "/a+b", SG_WEB_PATH_OK, "a+b" },                       /* '+' is not a space here */
    { "/a.b.c", SG_WEB_PATH_OK, "a.b.c" },
    { "/a..b", SG_WEB_PATH_OK, "a..b" },                     /* dots inside a name are fine */
    { "/caf%C3%A9", SG_WEB_PATH_OK, "caf\xc3\xa9" },
    /* 400 */
    { "", SG_WEB_PATH_BAD_REQUEST, NULL },
    { "spice.html", SG_WEB_PATH_BAD_REQUEST, NULL },         /* not absolute */
    { "//evil.com", SG_WEB_PATH_BAD_REQUEST, NULL },         /* OSSA-2021-002 */
    { "///x", SG_WEB_PATH_BAD_REQUEST, NULL },
    { "//", SG_WEB_PATH_BAD_REQUEST, NULL },
    { "/..%2f", SG_WEB_PATH_BAD_REQUEST, NULL },             /* encoded '/' refused first */
    { "/a%2Fb", SG_WEB_PATH_BAD_REQUEST, NULL },
    { "/a%2fb", SG_WEB_PATH_BAD_REQUEST, NULL },
    { "/%2F%2Fevil.com", SG_WEB_PATH_BAD_REQUEST, NULL },
    { "/%00", SG_WEB_PATH_BAD_REQUEST, NULL },
    { "/a%00.html", SG_WEB_PATH_BAD_REQUEST, NULL },
    { "/%zz", SG_WEB_PATH_BAD_REQUEST, NULL },
    { "/%4", SG_WEB_PATH_BAD_REQUEST, NULL },
    { "/%", SG_WEB_PATH_BAD_REQUEST, NULL },
    { "/%g0", SG_WEB_PATH_BAD_REQUEST, NULL },
    { "/a\\b", SG_WEB_PATH_BAD_REQUEST, NULL },
    { "/..\\..\\etc", SG_WEB_PATH_BAD_REQUEST, NULL },
    { "/a%5cb", SG_WEB_PATH_BAD_REQUEST, NULL },
    { "/a%0ab", SG_WEB_PATH_BAD_REQUEST, NULL },             /* control characters */
    { "/a\tb", SG_WEB_PATH_BAD_REQUEST, NULL },
    { "/a%7fb", SG_WEB_PATH_BAD_REQUEST, NULL },
    /* 404 */
    { "/foo/", SG_WEB_PATH_FORBIDDEN, NULL },                /* no directories but the root */
    { "/spice_auto.html/", SG_WEB_PATH_FORBIDDEN, NULL },    /* a file is not a directory */
    { "/a/b.js//", SG_WEB_PATH_FORBIDDEN, NULL },
    { "/a/./", SG_WEB_PATH_FORBIDDEN, NULL },
    { "/a/../b", SG_WEB_PATH_FORBIDDEN, NULL },
    { "/..", SG_WEB_PATH_FORBIDDEN, NULL },
    { "/../etc/passwd", SG_WEB_PATH_FORBIDDEN, NULL },
    { "/a/..", SG_WEB_PATH_FORBIDDEN, NULL },                /* refused, not clamped */
    { "/%2e%2e/etc/passwd", SG_WEB_PATH_FORBIDDEN, NULL },
    { "/%2E%2E", SG_WEB_PATH_FORBIDDEN, NULL },
    { "/.%2e/x", SG_WEB_PATH_FORBIDDEN, NULL },
    { "/.hidden", SG_WEB_PATH_FORBIDDEN, NULL },
    { "/a/.git/config", SG_WEB_PATH_FORBIDDEN, NULL },
    { "/%2ehtpasswd", SG_WEB_PATH_FORBIDDEN, NULL },
    { "/...", SG_WEB_PATH_FORBIDDEN, NULL },
};

START_TEST(test_web_normalise_path_table)
{
    const PathCase *c = &path_cases[_i];
    g_autofree char *rel = NULL;
    SgWebPathResult r = sg_web_normalise_path(c->in, &rel);

    ck_assert_msg(r == c->result, "case %d \"%s\": got %d, want %d", _i, c->in, r, c->result);
    if (r == SG_WEB_PATH_OK)
        ck_assert_str_eq(rel, c->out);
    else
        ck_assert_ptr_null(rel);
}
END_TEST

START_TEST(test_web_normalise_path_null)
{
    char *rel = (char *)"untouched";

    ck_assert_int_eq(sg_web_normalise_path(NULL, &rel), SG_WEB_PATH_BAD_REQUEST);
    ck_assert_ptr_null(rel);
}
END_TEST

START_TEST(test_web_normalise_path_length_limit)
{
    /* 4096 bytes in all, then one more. */
    g_autofree char *name_ok = g_strnfill(4095, 'a');
    g_autofree char *name_long = g_strnfill(4096, 'a');
    g_autofree char *at_cap = g_strconcat("/", name_ok, NULL);
    g_autofree char *over_cap = g_strconcat("/", name_long, NULL);
    g_autofree char *rel = NULL;

    ck_assert_int_eq(sg_web_normalise_path(at_cap, &rel), SG_WEB_PATH_OK);
    ck_assert_str_eq(rel, name_ok);
    g_clear_pointer(&rel, g_free);
    ck_assert_int_eq(sg_web_normalise_path(over_cap, &rel), SG_WEB_PATH_BAD_REQUEST);
}
END_TEST

/* ---- MIME types -------------------------------------------------------------- */

typedef struct {
    const char *name;
    const char *type;
} MimeCase;

static const MimeCase mime_cases[] = {
    { "spice_auto.html", "text/html; charset=utf-8" },
    { "INDEX.HTM", "text/html; charset=utf-8" },
    { "main.js", "text/javascript; charset=utf-8" },
    { "thirdparty/sha1.js", "text/javascript; charset=utf-8" },
    { "module.mjs", "text/javascript; charset=utf-8" },
    { "spice.css", "text/css; charset=utf-8" },
    { "a.json", "application/json" },
    { "main.js.map", "application/json" },
    { "a.png", "image/png" },
    { "a.jpg", "image/jpeg" },
    { "a.JPEG", "image/jpeg" },
    { "a.gif", "image/gif" },
    { "a.svg", "image/svg+xml" },
    { "favicon.ico", "image/x-icon" },
    { "f.woff", "font/woff" },
    { "f.woff2", "font/woff2" },
    { "README.txt", "text/plain; charset=utf-8" },
    { "a.wasm", "application/wasm" },
    { "a.exe", "application/octet-stream" },
    { "Makefile", "application/octet-stream" },
    { "a.", "application/octet-stream" },
    { ".js", "application/octet-stream" },                  /* a dot file, not a .js */
    { "dir.js/file", "application/octet-stream" },
    { "a.jsx", "application/octet-stream" },
    { "", "application/octet-stream" },
};

START_TEST(test_web_mime_type_table)
{
    const MimeCase *c = &mime_cases[_i];

    ck_assert_str_eq(sg_web_mime_type(c->name), c->type);
}
END_TEST

START_TEST(test_web_mime_type_null)
{
    ck_assert_str_eq(sg_web_mime_type(NULL), "application/octet-stream");
}
END_TEST

/* ---- resolving ------------------------------------------------------------ */

/* Made by main(), removed by main() after every test ran: in CK_FORK mode
 * a failing test _exit()s before its teardown, and this still cleans up. */
static char *basedir;
static char *tmpdir;   /* this test's own directory inside basedir */
static char *root1;     /* our pages */
static char *root2;     /* spice-html5 */
static char *outside;   /* never served */

static void
remove_tree(const char *path)
{
    GStatBuf st;

    if (g_lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        g_autoptr(GDir) dir = g_dir_open(path, 0, NULL);
        const char *name;

        while (dir != NULL && (name = g_dir_read_name(dir)) != NULL) {
            g_autofree char *child = g_build_filename(path, name, NULL);

            remove_tree(child);
        }
        g_rmdir(path);
    } else {
        g_unlink(path);
    }
}

static void
put_file(const char *dir, const char *name, const char *contents)
{
    g_autofree char *path = g_build_filename(dir, name, NULL);

    ck_assert_msg(g_file_set_contents(path, contents, -1, NULL), "write %s", path);
}

static void
put_dir(const char *dir, const char *name)
{
    g_autofree char *path = g_build_filename(dir, name, NULL);

    ck_assert_int_eq(g_mkdir(path, 0700), 0);
}

static void
put_link(const char *dir, const char *name, const char *target)
{
    g_autofree char *path = g_build_filename(dir, name, NULL);

    ck_assert_msg(symlink(target, path) == 0, "symlink %s", path);
}

/* The file's realpath, as sg_web_resolve() should return it. */
static char *
real(const char *dir, const char *name)
{
    g_autofree char *path = g_build_filename(dir, name, NULL);
    char *r = realpath(path, NULL);
    char *copy;

    ck_assert_msg(r != NULL, "realpath %s", path);
    copy = g_strdup(r);
    free(r);
    return copy;
}

static void
setup(void)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *secret = NULL;

    g_log_set_always_fatal(G_LOG_LEVEL_CRITICAL);
    tmpdir = g_build_filename(basedir, "test-XXXXXX", NULL);
    ck_assert_msg(g_mkdtemp(tmpdir) != NULL, "g_mkdtemp %s: %s", tmpdir, g_strerror(errno));
    root1 = g_build_filename(tmpdir, "web", NULL);
    root2 = g_build_filename(tmpdir, "web2", NULL);   /* shares root1's prefix */
    outside = g_build_filename(tmpdir, "outside", NULL);
    ck_assert_int_eq(g_mkdir(root1, 0700), 0);
    ck_assert_int_eq(g_mkdir(root2, 0700), 0);
    ck_assert_int_eq(g_mkdir(outside, 0700), 0);

    put_file(outside, "secret.txt", "secret\n");
    secret = g_build_filename(outside, "secret.txt", NULL);

    put_file(root1, "index.html", "ours\n");
    put_file(root1, "both.html", "ours\n");
    put_file(root1, "a.js", "a\n");
    put_file(root1, ".secret", "dot\n");
    put_dir(root1, "sub");
    put_file(root1, "sub/x.css", "x\n");
    put_dir(root1, "dironly");
    put_link(root1, "link_in", "a.js");
    put_link(root1, "link_in_sub", "sub/x.css");
    put_link(root1, "link_out", secret);                     /* absolute, out */
    put_link(root1, "link_out_rel", "../outside/secret.txt");
    put_link(root1, "link_sibling", "../web2/only2.js");     /* into a prefix-sharing sibling */
    put_link(root1, "link_dot", ".secret");
    put_link(root1, "link_dir", "sub");
    put_link(root1, "link_dangling", "nowhere.js");
    put_link(root1, "link_loop", "link_loop");
    put_link(root1, "link_root", "/");

    put_file(root1, "spice_auto.html", "our console\n");
    put_file(root2, "spice_auto.html", "stock console\n");
    put_file(root2, "both.html", "theirs\n");
    put_file(root2, "only2.js", "2\n");
    put_file(root2, "dironly", "a file in the second root\n");
}

static void
teardown(void)
{
    remove_tree(tmpdir);
    g_clear_pointer(&tmpdir, g_free);
    g_clear_pointer(&root1, g_free);
    g_clear_pointer(&root2, g_free);
    g_clear_pointer(&outside, g_free);
}

static SgWeb *
new_web(void)
{
    const char *roots[] = { root1, root2, NULL };

    return sg_web_new(roots);
}

START_TEST(test_web_resolve_first_root_wins)
{
    g_autoptr(SgWeb) web = new_web();
    g_autofree char *got = sg_web_resolve(web, "both.html");
    g_autofree char *want = real(root1, "both.html");

    ck_assert_str_eq(got, want);
}
END_TEST

START_TEST(test_web_resolve_falls_back_to_second_root)
{
    g_autoptr(SgWeb) web = new_web();
    g_autofree char *got = sg_web_resolve(web, "only2.js");
    g_autofree char *want = real(root2, "only2.js");

    ck_assert_str_eq(got, want);
}
END_TEST

/* Our console page answers for spice_auto.html; the stock one stays
 * reachable under SG_WEB_STOCK_PAGE, from the last root only. */
START_TEST(test_web_resolve_stock_page_alias)
{
    g_autoptr(SgWeb) web = new_web();
    g_autofree char *ours = sg_web_resolve(web, "spice_auto.html");
    g_autofree char *stock = sg_web_resolve(web, SG_WEB_STOCK_PAGE);
    g_autofree char *want_ours = real(root1, "spice_auto.html");
    g_autofree char *want_stock = real(root2, "spice_auto.html");

    ck_assert_str_eq(ours, want_ours);
    ck_assert_str_eq(stock, want_stock);
}
END_TEST

/* ---- the Content-Security-Policy of a page (http_response.c) -------------- */

/* openssl dgst -sha256 -binary of "\nb()" (the CR LF made LF), base64. */
#define CRLF_SCRIPT_HASH "w3yLWLUkl5XPuPEx8bjPobiVq2wTDUiBrthwgSQlwXE="

/* A page may run exactly its own inline pieces, wherever it lies (a stock
 * spice-html5 page, or a patched copy in our pages): the policy lists
 * their SHA-256 (openssl dgst -sha256 -binary | base64), and nothing
 * wider. A page without any, as ours are, gets the strict policy. A page
 * changed on disk is read again. */
START_TEST(test_csp_stock_page_hashes)
{
    static const char html[] =
        "<html><head><script type=\"module\">alert(1)</script>\n"
        "<script src=\"main.js\"></script></head>\n"
        "<body><p onclick=\"go()\" style=\"color: red\">x</p></body></html>\n";
    static const char html_crlf[] =
        "<html><head><script type=\"module\">alert(1)</script>\r\n"
        "<script>\r\nb()</script></head></html>\r\n";
    static const char plain[] =
        "<html><head><script type=\"module\" src=\"ours.js\"></script></head></html>\n";
    g_autofree char *stock_path = NULL;
    g_autofree char *patched_path = NULL;
    g_autofree char *ours_path = NULL;
    g_autofree char *stock = NULL;
    g_autofree char *patched = NULL;
    g_autofree char *ours = NULL;
    g_autofree char *changed = NULL;
    g_autofree char *text = NULL;
    struct stat st;

    put_file(root2, "stock.html", html);
    put_file(root1, "patched.html", html);
    put_file(root1, "ours.html", plain);
    stock_path = real(root2, "stock.html");
    patched_path = real(root1, "patched.html");
    ours_path = real(root1, "ours.html");
    sg_http_set_policy("https://dash.example");

    ck_assert_int_eq(stat(stock_path, &st), 0);
    stock = g_strdup(sg_http_csp(stock_path, "text/html; charset=utf-8", &st));
    ck_assert_msg(strstr(stock, "script-src 'self' 'unsafe-hashes' "
                                "'sha256-bhHHL3z2vDgxUt0W3dWQOrprscmda2Y5pLsLg4GF+pI=' "
                                "'sha256-5KYv+PUboo5h+0+YAtGRPbwv5d/QxzHslP4YGnUaxRw=';") != NULL,
                  "%s", stock);
    ck_assert_msg(strstr(stock, "style-src 'self' 'unsafe-hashes' "
                                "'sha256-NerDAUWfwD31YdZHveMrq0GLjsNFMwxLpZl0dPUeCcw=';") != NULL,
                  "%s", stock);
    ck_assert_msg(g_str_has_suffix(stock, "; frame-ancestors https://dash.example"), "%s", stock);
    ck_assert_ptr_null(strstr(stock, "unsafe-inline"));

    /* A patched copy in our pages runs its own code just the same. */
    ck_assert_int_eq(stat(patched_path, &st), 0);
    patched = g_strdup(sg_http_csp(patched_path, "text/html; charset=utf-8", &st));
    ck_assert_str_eq(patched, stock);

    ck_assert_int_eq(stat(ours_path, &st), 0);
    ours = g_strdup(sg_http_csp(ours_path, "text/html; charset=utf-8", &st));
    ck_assert_msg(strstr(ours, "script-src 'self'; style-src 'self';") != NULL, "%s", ours);
    /* Not a page: the strict policy too. */
    text = g_strdup(sg_http_csp(NULL, "text/plain", NULL));
    ck_assert_str_eq(text, ours);
    ck_assert_msg(strstr(ours, "object-src 'none'") && strstr(ours, "base-uri 'none'") &&
                  strstr(ours, "connect-src 'self'"), "%s", ours);

    /* Rewritten with CR LF line ends (and another size): read again, and
     * hashed as the browser sees it, "\nb()" for the second script. */
    put_file(root1, "patched.html", html_crlf);
    ck_assert_int_eq(stat(patched_path, &st), 0);
    changed = g_strdup(sg_http_csp(patched_path, "text/html; charset=utf-8", &st));
    ck_assert_msg(strstr(changed, "script-src 'self' 'unsafe-hashes' "
                                  "'sha256-bhHHL3z2vDgxUt0W3dWQOrprscmda2Y5pLsLg4GF+pI=' "
                                  "'sha256-" CRLF_SCRIPT_HASH "'; style-src 'self';") != NULL,
                  "%s", changed);
    sg_http_set_policy(NULL);
}
END_TEST

START_TEST(test_web_resolve_empty_is_index)
{
    g_autoptr(SgWeb) web = new_web();
    g_autofree char *got = sg_web_resolve(web, "");
    g_autofree char *want = real(root1, "index.html");

    ck_assert_str_eq(got, want);
}
END_TEST

START_TEST(test_web_resolve_subdirectory_file)
{
    g_autoptr(SgWeb) web = new_web();
    g_autofree char *got = sg_web_resolve(web, "sub/x.css");
    g_autofree char *want = real(root1, "sub/x.css");

    ck_assert_str_eq(got, want);
}
END_TEST

START_TEST(test_web_resolve_symlink_inside_root)
{
    g_autoptr(SgWeb) web = new_web();
    g_autofree char *got = sg_web_resolve(web, "link_in");
    g_autofree char *got_sub = sg_web_resolve(web, "link_in_sub");
    g_autofree char *want = real(root1, "a.js");
    g_autofree char *want_sub = real(root1, "sub/x.css");

    ck_assert_str_eq(got, want);          /* the target's path, not the link's */
    ck_assert_str_eq(got_sub, want_sub);
}
END_TEST

START_TEST(test_web_resolve_symlink_out_of_root_refused)
{
    g_autoptr(SgWeb) web = new_web();
    const char *names[] = {
        "link_out", "link_out_rel", "link_sibling", "link_root",
    };

    for (gsize i = 0; i < G_N_ELEMENTS(names); i++) {
        g_autofree char *got = sg_web_resolve(web, names[i]);

        ck_assert_msg(got == NULL, "%s resolved to %s", names[i], got);
    }
}
END_TEST

START_TEST(test_web_resolve_symlink_to_dot_file_refused)
{
    g_autoptr(SgWeb) web = new_web();
    g_autofree char *got = sg_web_resolve(web, "link_dot");

    ck_assert_ptr_null(got);
}
END_TEST

START_TEST(test_web_resolve_directory_refused)
{
    g_autoptr(SgWeb) web = new_web();
    g_autofree char *sub = sg_web_resolve(web, "sub");
    g_autofree char *link = sg_web_resolve(web, "link_dir");

    ck_assert_ptr_null(sub);
    ck_assert_ptr_null(link);
}
END_TEST

START_TEST(test_web_resolve_directory_falls_through_to_file)
{
    /* A directory in the first root does not hide a file in the second. */
    g_autoptr(SgWeb) web = new_web();
    g_autofree char *got = sg_web_resolve(web, "dironly");
    g_autofree char *want = real(root2, "dironly");

    ck_assert_str_eq(got, want);
}
END_TEST

START_TEST(test_web_resolve_missing)
{
    g_autoptr(SgWeb) web = new_web();
    const char *names[] = { "nope.js", "sub/nope.css", "a.js/x", "link_dangling", "link_loop" };

    for (gsize i = 0; i < G_N_ELEMENTS(names); i++) {
        g_autofree char *got = sg_web_resolve(web, names[i]);

        ck_assert_msg(got == NULL, "%s resolved to %s", names[i], got);
    }
    ck_assert_ptr_null(sg_web_resolve(web, NULL));
}
END_TEST

START_TEST(test_web_resolve_never_leaves_roots_on_raw_input)
{
    /* sg_web_resolve() gets normalised paths, but must be safe without. */
    g_autoptr(SgWeb) web = new_web();
    const char *names[] = { "../outside/secret.txt", "../web2/only2.js", ".secret" };

    for (gsize i = 0; i < G_N_ELEMENTS(names); i++) {
        g_autofree char *got = sg_web_resolve(web, names[i]);

        /* "../web2/only2.js" from root2 is root2/../web2/only2.js: inside. */
        if (g_str_has_prefix(names[i], "../web2/")) {
            g_autofree char *want = real(root2, "only2.js");

            ck_assert_str_eq(got, want);
        } else {
            ck_assert_msg(got == NULL, "%s resolved to %s", names[i], got);
        }
    }
}
END_TEST

START_TEST(test_web_new_skips_missing_root)
{
    g_autofree char *missing = g_build_filename(tmpdir, "absent", NULL);
    g_autofree char *file_root = g_build_filename(root2, "only2.js", NULL);
    const char *roots[] = { missing, file_root, root2, NULL };
    g_autoptr(SgWeb) web = NULL;
    g_autofree char *got = NULL;
    g_autofree char *want = real(root2, "both.html");

    /* Two warnings expected; they are not fatal. */
    web = sg_web_new(roots);
    ck_assert_ptr_nonnull(web);
    got = sg_web_resolve(web, "both.html");
    ck_assert_str_eq(got, want);
}
END_TEST

START_TEST(test_web_new_no_roots)
{
    g_autoptr(SgWeb) web = sg_web_new(NULL);

    ck_assert_ptr_null(sg_web_resolve(web, "index.html"));
    sg_web_free(NULL);
}
END_TEST

START_TEST(test_web_resolve_through_symlinked_root)
{
    /* A root given through a symlink (e.g. /usr/share/spice-html5 -> ...)
     * still serves its files. */
    g_autofree char *alias = g_build_filename(tmpdir, "alias", NULL);
    const char *roots[] = { alias, NULL };
    g_autoptr(SgWeb) web = NULL;
    g_autofree char *got = NULL;
    g_autofree char *want = real(root1, "a.js");

    ck_assert_int_eq(symlink(root1, alias), 0);
    web = sg_web_new(roots);
    got = sg_web_resolve(web, "a.js");
    ck_assert_str_eq(got, want);
}
END_TEST

START_TEST(test_web_resolve_root_is_filesystem_root)
{
    /* "/" as a root: every path is below it; dot names still are not. */
    const char *roots[] = { "/", NULL };
    g_autoptr(SgWeb) web = sg_web_new(roots);
    g_autofree char *rel = g_strdup(root1 + 1);   /* root1 without its leading '/' */
    g_autofree char *file = g_build_filename(rel, "a.js", NULL);
    g_autofree char *dot = g_build_filename(rel, ".secret", NULL);
    g_autofree char *got = NULL;
    g_autofree char *want = real(root1, "a.js");

    /* Only meaningful when the temporary directory has no dot names. */
    if (strstr(root1, "/.") != NULL)
        return;
    got = sg_web_resolve(web, file);
    ck_assert_ptr_nonnull(got);
    ck_assert_str_eq(got, want);
    ck_assert_ptr_null(sg_web_resolve(web, dot));
}
END_TEST

/* --- sg_web_route(): every plain HTTP request's answer ------------------------ */

typedef struct {
    SgWebMethod method;
    const char *path;
    gsize extra_stored;           /* lws stored this much more: a decoded %00 */
    bool shutting_down;
    unsigned int status;
    const char *text;             /* NULL: a file */
    const char *file;             /* in root1, when a file */
    bool bad_path;
    bool draining;
} RouteCase;

static const RouteCase route_cases[] = {
    /* The method first: even /healthz and a stopping daemon say 405. */
    { SG_WEB_OTHER_METHOD, "/healthz", 0, false, 405, "method not allowed\n", NULL, false, false },
    { SG_WEB_OTHER_METHOD, "/a.js", 0, true, 405, "method not allowed\n", NULL, false, false },
    /* Then shutdown, /healthz included: a load balancer drains us. */
    { SG_WEB_GET, "/healthz", 0, true, 503, "shutting down\n", NULL, false, false },
    { SG_WEB_HEAD, "/a.js", 0, true, 503, "shutting down\n", NULL, false, false },
    /* Then an embedded NUL, before any name is looked at. */
    { SG_WEB_GET, "/healthz", 3, false, 400, "bad request\n", NULL, false, false },
    { SG_WEB_GET, "/a.js", 1, false, 400, "bad request\n", NULL, false, false },
    { SG_WEB_GET, "/healthz", 0, false, 200, "ok\n", NULL, false, false },
    { SG_WEB_HEAD, "/healthz", 0, false, 200, "ok\n", NULL, false, false },
    { SG_WEB_GET, "/healthz/", 0, false, 404, "not found\n", NULL, false, false },
    /* Paths: refused by the normaliser (400, logged), hidden (404). */
    { SG_WEB_GET, "//a.js", 0, false, 400, "bad request\n", NULL, true, false },
    { SG_WEB_GET, "/%zz", 0, false, 400, "bad request\n", NULL, true, false },
    { SG_WEB_GET, "/../outside/secret.txt", 0, false, 404, "not found\n", NULL, false, false },
    { SG_WEB_GET, "/.secret", 0, false, 404, "not found\n", NULL, false, false },
    { SG_WEB_GET, "/nowhere.js", 0, false, 404, "not found\n", NULL, false, false },
    { SG_WEB_GET, "/a.js", 0, false, 200, NULL, "a.js", false, false },
    { SG_WEB_HEAD, "/sub/x.css", 0, false, 200, NULL, "sub/x.css", false, false },
    { SG_WEB_GET, "/", 0, false, 200, NULL, "index.html", false, false },
    /* Draining: /healthz alone says 503 (the load balancer sends new
     * consoles elsewhere); the rest is still served. */
    { SG_WEB_GET, "/healthz", 0, false, 503, "draining\n", NULL, false, true },
    { SG_WEB_HEAD, "/healthz", 0, false, 503, "draining\n", NULL, false, true },
    { SG_WEB_GET, "/a.js", 0, false, 200, NULL, "a.js", false, true },
    { SG_WEB_GET, "/healthz", 0, true, 503, "shutting down\n", NULL, false, true },
};

START_TEST(test_web_route_table)
{
    const RouteCase *c = &route_cases[_i];
    g_autoptr(SgWeb) web = new_web();
    SgWebRequest req = {
        .method = c->method, .path = c->path, .stored_len = strlen(c->path) + c->extra_stored,
        .shutting_down = c->shutting_down, .draining = c->draining,
    };
    SgWebAnswer answer;

    sg_web_route(web, &req, &answer);
    ck_assert_msg(answer.status == c->status, "row %d (%s): status %u, expected %u", _i,
                  c->path, answer.status, c->status);
    ck_assert_msg(g_strcmp0(answer.text, c->text) == 0, "row %d (%s): text %s", _i, c->path,
                  answer.text);
    ck_assert_msg(answer.bad_path == c->bad_path, "row %d (%s): bad_path", _i, c->path);
    if (c->file == NULL) {
        ck_assert_ptr_null(answer.file);
    } else {
        g_autofree char *want = real(root1, c->file);

        ck_assert_str_eq(answer.file, want);
        ck_assert_str_eq(answer.mime_type, sg_web_mime_type(want));
    }
    sg_web_answer_clear(&answer);
    ck_assert_ptr_null(answer.file);
}
END_TEST

static Suite *
web_suite(void)
{
    Suite *s = suite_create("web");
    TCase *tc;

    tc = tcase_create("normalise");
    tcase_set_timeout(tc, TEST_TIMEOUT_S);
    tcase_add_loop_test(tc, test_web_normalise_path_table, 0, G_N_ELEMENTS(path_cases));
    tcase_add_test(tc, test_web_normalise_path_null);
    tcase_add_test(tc, test_web_normalise_path_length_limit);
    suite_add_tcase(s, tc);

    tc = tcase_create("mime");
    tcase_set_timeout(tc, TEST_TIMEOUT_S);
    tcase_add_loop_test(tc, test_web_mime_type_table, 0, G_N_ELEMENTS(mime_cases));
    tcase_add_test(tc, test_web_mime_type_null);
    suite_add_tcase(s, tc);

    tc = tcase_create("resolve");
    tcase_set_timeout(tc, TEST_TIMEOUT_S);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_web_resolve_first_root_wins);
    tcase_add_test(tc, test_web_resolve_falls_back_to_second_root);
    tcase_add_test(tc, test_web_resolve_empty_is_index);
    tcase_add_test(tc, test_web_resolve_stock_page_alias);
    tcase_add_test(tc, test_csp_stock_page_hashes);
    tcase_add_test(tc, test_web_resolve_subdirectory_file);
    tcase_add_test(tc, test_web_resolve_symlink_inside_root);
    tcase_add_test(tc, test_web_resolve_symlink_out_of_root_refused);
    tcase_add_test(tc, test_web_resolve_symlink_to_dot_file_refused);
    tcase_add_test(tc, test_web_resolve_directory_refused);
    tcase_add_test(tc, test_web_resolve_directory_falls_through_to_file);
    tcase_add_test(tc, test_web_resolve_missing);
    tcase_add_test(tc, test_web_resolve_never_leaves_roots_on_raw_input);
    tcase_add_test(tc, test_web_new_skips_missing_root);
    tcase_add_test(tc, test_web_new_no_roots);
    tcase_add_test(tc, test_web_resolve_through_symlinked_root);
    tcase_add_test(tc, test_web_resolve_root_is_filesystem_root);
    tcase_add_loop_test(tc, test_web_route_table, 0, G_N_ELEMENTS(route_cases));
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    g_autoptr(GError) error = NULL;
    SRunner *sr;
    int failed;

    basedir = g_dir_make_tmp("check_web-XXXXXX", &error);
    if (basedir == NULL) {
        g_printerr("g_dir_make_tmp: %s\n", error->message);
        return EXIT_FAILURE;
    }
    sr = srunner_create(web_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    remove_tree(basedir);
    g_free(basedir);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
