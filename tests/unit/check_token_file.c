/* SPDX-License-Identifier: Apache-2.0 */
/* check_token_file.c - the static token backend and the lookup handle.
 *
 * Line parsing is table-driven; loading, reloading and lookups use files in
 * a fresh temporary directory per test. Lookups run on a real GMainLoop
 * under a deadline source that fails the test instead of hanging it. Log
 * output is captured so that tests can check what an operator would see,
 * and that no token ever appears in it.
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

#include "admission.h"
#include "token.h"
#include "token_file.h"

/* 10 s: every test here finishes in milliseconds; this only catches hangs. */
#define TEST_TIMEOUT_S 10
/* 5 s: a lookup answer is one main-loop iteration away. */
#define LOOP_DEADLINE_MS 5000

/* Made by main(), removed by main() after every test ran: in CK_FORK mode
 * a failing test _exit()s before its teardown, and this still cleans up. */
static char *basedir;
static char *tmpdir;   /* this test's own directory inside basedir */
static GString *captured_log;

/* ---- helpers --------------------------------------------------------------- */

static GLogWriterOutput
capture_writer(GLogLevelFlags level, const GLogField *fields, gsize n_fields,
               gpointer user_data)
{
    (void)user_data;
    for (gsize i = 0; i < n_fields; i++) {
        if (strcmp(fields[i].key, "MESSAGE") == 0) {
            g_string_append(captured_log, fields[i].value);
            g_string_append_c(captured_log, '\n');
        }
    }
    /* Keep criticals (failed g_return_if_fail) visible; they are fatal. */
    if (level & (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_ERROR))
        return g_log_writer_default(level, fields, n_fields, user_data);
    return G_LOG_WRITER_HANDLED;
}

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
setup(void)
{
    static bool writer_set;
    g_autoptr(GError) error = NULL;

    /* The writer can be set once per process; with CK_FORK each test is a
     * fresh process, without it the first one stays. */
    if (!writer_set) {
        g_log_set_writer_func(capture_writer, NULL, NULL);
        writer_set = true;
    }
    g_log_set_always_fatal(G_LOG_LEVEL_CRITICAL);
    captured_log = g_string_new(NULL);
    tmpdir = g_build_filename(basedir, "test-XXXXXX", NULL);
    ck_assert_msg(g_mkdtemp(tmpdir) != NULL, "g_mkdtemp %s: %s", tmpdir, g_strerror(errno));
}

static void
teardown(void)
{
    remove_tree(tmpdir);
    g_clear_pointer(&tmpdir, g_free);
    g_string_free(captured_log, TRUE);
    captured_log = NULL;
}

/* Writes @contents to @name inside the test directory; returns the path. */
static char *
write_file(const char *name, const char *contents)
{
    char *path = g_build_filename(tmpdir, name, NULL);
    g_autoptr(GError) error = NULL;

    ck_assert_msg(g_file_set_contents(path, contents, -1, &error), "write %s: %s", path,
                  error ? error->message : "?");
    return path;
}

static bool
log_contains(const char *needle)
{
    return strstr(captured_log->str, needle) != NULL;
}

/* A lookup's answer, recorded by on_answer(). */
typedef struct {
    GMainLoop *loop;
    guint calls;
    guint expected;            /* quit the loop after this many answers */
    bool in_lookup;            /* set around sg_token_lookup() */
    bool ran_synchronously;
    char *host;
    uint16_t port;
    GQuark error_domain;
    int error_code;
    char *error_message;
} Answer;

static void
answer_clear(Answer *ans)
{
    g_clear_pointer(&ans->loop, g_main_loop_unref);
    g_clear_pointer(&ans->host, g_free);
    g_clear_pointer(&ans->error_message, g_free);
}

static void
on_answer(const SgConsoleTarget *tgt, const GError *error, gpointer user_data)
{
    Answer *ans = user_data;

    ck_assert_msg((tgt == NULL) != (error == NULL), "exactly one of tgt and error");
    if (ans->in_lookup)
        ans->ran_synchronously = true;
    ans->calls++;
    g_clear_pointer(&ans->host, g_free);
    g_clear_pointer(&ans->error_message, g_free);
    if (tgt != NULL) {
        ans->host = g_strdup(tgt->host);
        ans->port = tgt->port;
    } else {
        ans->error_domain = error->domain;
        ans->error_code = error->code;
        ans->error_message = g_strdup(error->message);
    }
    if (ans->calls >= ans->expected)
        g_main_loop_quit(ans->loop);
}

static gboolean
on_deadline(gpointer user_data)
{
    (void)user_data;
    ck_abort_msg("deadline: the lookup was never answered");
    return G_SOURCE_REMOVE;
}

/* Runs the default main loop until @ans->expected answers arrived, failing
 * the test after LOOP_DEADLINE_MS. */
static void
run_until_answered(Answer *ans)
{
    guint deadline = g_timeout_add(LOOP_DEADLINE_MS, on_deadline, NULL);

    g_main_loop_run(ans->loop);
    g_source_remove(deadline);
}

static SgTokenLookup *
start_lookup(SgTokenBackend *backend, const char *token, Answer *ans)
{
    SgTokenLookup *lookup;

    ans->in_lookup = true;
    lookup = sg_token_lookup(backend, token, on_answer, ans);
    ans->in_lookup = false;
    ck_assert_ptr_nonnull(lookup);
    return lookup;
}

static Answer *
answer_init(Answer *ans, guint expected)
{
    memset(ans, 0, sizeof(*ans));
    ans->loop = g_main_loop_new(NULL, FALSE);
    ans->expected = expected;
    return ans;
}

/* ---- parsing ------------------------------------------------------------- */

typedef struct {
    const char *line;
    gboolean ok;
    const char *token;   /* NULL with ok: blank or comment */
    const char *host;
    uint16_t port;
    uint16_t tls_port;   /* 0: none */
} LineCase;

static const LineCase line_cases[] = {
    /* accepted mappings */
    { "tok: host:5900", TRUE, "tok", "host", 5900, 0 },
    { "tok:\thost:5900", TRUE, "tok", "host", 5900, 0 },
    { "  tok:    host:5900  ", TRUE, "tok", "host", 5900, 0 },
    { "tok: host:5900\r", TRUE, "tok", "host", 5900, 0 },          /* CRLF file */
    { "tok: host:5900\r\n", TRUE, "tok", "host", 5900, 0 },
    { "2b1f-uuid: compute-1.example.org:5901", TRUE, "2b1f-uuid", "compute-1.example.org", 5901, 0 },
    { "tok: 192.0.2.7:1", TRUE, "tok", "192.0.2.7", 1, 0 },
    { "tok: h_1:65535", TRUE, "tok", "h_1", 65535, 0 },
    { "tok: host:05900", TRUE, "tok", "host", 5900, 0 },           /* still decimal */
    { "a:b: host:5900", TRUE, "a:b", "host", 5900, 0 },            /* first ':\s' splits */
    { "tok:: host:5900", TRUE, "tok:", "host", 5900, 0 },
    { "tok: [::1]:5900", TRUE, "tok", "::1", 5900, 0 },
    { "tok: [2001:db8::17]:5901", TRUE, "tok", "2001:db8::17", 5901, 0 },
    { "tok: [fe80::1%eth0]:5900", TRUE, "tok", "fe80::1%eth0", 5900, 0 },
    { "tok: [::ffff:192.0.2.1]:5900", TRUE, "tok", "::ffff:192.0.2.1", 5900, 0 },
    /* the TLS port: spicegate's addition */
    { "tok: host:5900 tls-port=5901", TRUE, "tok", "host", 5900, 5901 },
    { "tok: host:5900\ttls-port=5901  ", TRUE, "tok", "host", 5900, 5901 },
    { "tok: [::1]:5900 tls-port=65535", TRUE, "tok", "::1", 5900, 65535 },
    /* blank and comment lines */
    { "", TRUE, NULL, NULL, 0, 0 },
    { "   \t ", TRUE, NULL, NULL, 0, 0 },
    { "\r", TRUE, NULL, NULL, 0, 0 },
    { "# tok: host:5900", TRUE, NULL, NULL, 0, 0 },
    { "   # indented comment", TRUE, NULL, NULL, 0, 0 },
    { "#", TRUE, NULL, NULL, 0, 0 },
    /* refused */
    { "tok: host", FALSE, NULL, NULL, 0, 0 },                      /* missing port */
    { "tok: host:", FALSE, NULL, NULL, 0, 0 },
    { "tok: host:0", FALSE, NULL, NULL, 0, 0 },
    { "tok: host:65536", FALSE, NULL, NULL, 0, 0 },
    { "tok: host:99999999999999999999999", FALSE, NULL, NULL, 0, 0 },
    { "tok: host:59a0", FALSE, NULL, NULL, 0, 0 },
    { "tok: host:0x10", FALSE, NULL, NULL, 0, 0 },
    { "tok: host:+5900", FALSE, NULL, NULL, 0, 0 },
    { "tok: host:-1", FALSE, NULL, NULL, 0, 0 },
    { "tok host:5900", FALSE, NULL, NULL, 0, 0 },                  /* no colon */
    { "tok:host:5900", FALSE, NULL, NULL, 0, 0 },                  /* websockify needs ':\s' */
    { "tok:", FALSE, NULL, NULL, 0, 0 },
    { "tok: ", FALSE, NULL, NULL, 0, 0 },
    { ": host:5900", FALSE, NULL, NULL, 0, 0 },                    /* empty token */
    { "to k: host:5900", FALSE, NULL, NULL, 0, 0 },                /* space in token */
    { "tok\x01: host:5900", FALSE, NULL, NULL, 0, 0 },
    { "tok: :5900", FALSE, NULL, NULL, 0, 0 },                     /* empty host */
    { "tok: ho/st:5900", FALSE, NULL, NULL, 0, 0 },
    { "tok: host:5900:1", FALSE, NULL, NULL, 0, 0 },
    { "tok: host:5900 # comment", FALSE, NULL, NULL, 0, 0 },       /* no trailing comments */
    { "tok: host:5900 extra", FALSE, NULL, NULL, 0, 0 },
    { "tok: host: 5900", FALSE, NULL, NULL, 0, 0 },
    { "tok: ::1:5900", FALSE, NULL, NULL, 0, 0 },                  /* IPv6 needs [] */
    { "tok: fe80::1:5900", FALSE, NULL, NULL, 0, 0 },
    { "tok: [::1]5900", FALSE, NULL, NULL, 0, 0 },
    { "tok: [::1]", FALSE, NULL, NULL, 0, 0 },
    { "tok: [::1]:", FALSE, NULL, NULL, 0, 0 },
    { "tok: [::1:5900", FALSE, NULL, NULL, 0, 0 },
    { "tok: []:5900", FALSE, NULL, NULL, 0, 0 },
    { "tok: [192.0.2.1]:5900", FALSE, NULL, NULL, 0, 0 },          /* [] only for IPv6 */
    { "tok: [host]:5900", FALSE, NULL, NULL, 0, 0 },
    { "tok: [zz::1]:5900", FALSE, NULL, NULL, 0, 0 },
    { "tok: [fe80::1%]:5900", FALSE, NULL, NULL, 0, 0 },
    { "tok: [::1]:0", FALSE, NULL, NULL, 0, 0 },
    { "tok: [::1]:65536", FALSE, NULL, NULL, 0, 0 },
    { "tok: host:5900 tls-port=", FALSE, NULL, NULL, 0, 0 },
    { "tok: host:5900 tls-port=0", FALSE, NULL, NULL, 0, 0 },
    { "tok: host:5900 tls-port=65536", FALSE, NULL, NULL, 0, 0 },
    { "tok: host:5900 tls-port=59a", FALSE, NULL, NULL, 0, 0 },
    { "tok: host:5900 tls-port 5901", FALSE, NULL, NULL, 0, 0 },
    { "tok: host:5900 tls-port=5901 tls-port=5902", FALSE, NULL, NULL, 0, 0 },
    { "tok: host:5900 tls_port=5901", FALSE, NULL, NULL, 0, 0 },
    { "tok: host:5900 TLS-PORT=5901", FALSE, NULL, NULL, 0, 0 },
    { "tok: host:5900 tls-port=5901 # x", FALSE, NULL, NULL, 0, 0 },
    { "tok: tls-port=5901", FALSE, NULL, NULL, 0, 0 },
};

START_TEST(test_token_file_parse_line_table)
{
    const LineCase *c = &line_cases[_i];
    g_autofree char *token = NULL;
    g_autoptr(SgConsoleTarget) tgt = NULL;
    const char *reason = NULL;
    gboolean ok;

    ok = sg_token_file_parse_line(c->line, &token, &tgt, &reason);
    ck_assert_msg(ok == c->ok, "case %d \"%s\": got %s (%s)", _i, c->line,
                  ok ? "accepted" : "refused", reason ? reason : "-");
    if (!ok) {
        ck_assert_msg(reason != NULL && *reason != '\0', "case %d: no reason", _i);
        ck_assert_ptr_null(token);
        ck_assert_ptr_null(tgt);
        return;
    }
    ck_assert_ptr_null(reason);
    if (c->token == NULL) {
        ck_assert_ptr_null(token);
        ck_assert_ptr_null(tgt);
        return;
    }
    ck_assert_str_eq(token, c->token);
    ck_assert_ptr_nonnull(tgt);
    ck_assert_str_eq(tgt->host, c->host);
    ck_assert_uint_eq(tgt->port, c->port);
    ck_assert_uint_eq(tgt->tls_port, c->tls_port);
    ck_assert_ptr_null(tgt->instance_uuid);
    ck_assert_int_eq(tgt->expires_at_us, 0);
}
END_TEST

START_TEST(test_token_file_parse_line_token_length_limit)
{
    g_autofree char *at_cap = g_strnfill(SG_TOKEN_MAX_BYTES, 'a');
    g_autofree char *over_cap = g_strnfill(SG_TOKEN_MAX_BYTES + 1, 'a');
    g_autofree char *line_ok = g_strdup_printf("%s: host:5900", at_cap);
    g_autofree char *line_bad = g_strdup_printf("%s: host:5900", over_cap);
    g_autofree char *token = NULL;
    g_autoptr(SgConsoleTarget) tgt = NULL;
    const char *reason = NULL;

    ck_assert(sg_token_file_parse_line(line_ok, &token, &tgt, &reason));
    ck_assert_uint_eq(strlen(token), SG_TOKEN_MAX_BYTES);
    g_clear_pointer(&token, g_free);
    g_clear_pointer(&tgt, sg_console_target_free);

    ck_assert(!sg_token_file_parse_line(line_bad, &token, &tgt, &reason));
    ck_assert_ptr_nonnull(reason);
}
END_TEST

START_TEST(test_token_file_parse_line_host_length_limit)
{
    g_autofree char *at_cap = g_strnfill(253, 'h');
    g_autofree char *over_cap = g_strnfill(254, 'h');
    g_autofree char *line_ok = g_strdup_printf("tok: %s:5900", at_cap);
    g_autofree char *line_bad = g_strdup_printf("tok: %s:5900", over_cap);
    g_autofree char *token = NULL;
    g_autoptr(SgConsoleTarget) tgt = NULL;
    const char *reason = NULL;

    ck_assert(sg_token_file_parse_line(line_ok, &token, &tgt, &reason));
    ck_assert_str_eq(tgt->host, at_cap);
    g_clear_pointer(&token, g_free);
    g_clear_pointer(&tgt, sg_console_target_free);
    ck_assert(!sg_token_file_parse_line(line_bad, &token, &tgt, &reason));
}
END_TEST

/* ---- loading ------------------------------------------------------------- */

/* Looks @token up through the loop; returns the answer's host (or NULL for
 * an error) and port. */
static char *
lookup_host(SgTokenBackend *backend, const char *token, uint16_t *port)
{
    Answer ans;
    char *host;

    answer_init(&ans, 1);
    start_lookup(backend, token, &ans);
    run_until_answered(&ans);
    ck_assert_uint_eq(ans.calls, 1);
    ck_assert(!ans.ran_synchronously);
    if (port != NULL)
        *port = ans.port;
    host = g_steal_pointer(&ans.host);
    answer_clear(&ans);
    return host;
}

START_TEST(test_token_file_load_refuses_bad_lines)
{
    /* At start a file with any bad line is refused whole (the caller exits
     * 2), and every bad line is logged, not only the first. */
    g_autofree char *path = write_file("tokens",
                                       "# spicegate tokens\r\n"
                                       "good1: host-a:5900\r\n"
                                       "\r\n"
                                       "bad1: host-b\n"
                                       "bad2:host-c:5900\n"
                                       "good2: [::1]:5901\n"
                                       "bad3: host-d:0\n"
                                       "good3: 192.0.2.9:65535");   /* no final newline */
    g_autoptr(GError) error = NULL;
    g_autoptr(SgTokenBackend) backend = sg_token_file_new(path, &error);
    g_autofree char *line4 = g_strdup_printf("%s:4: missing ':PORT' in HOST:PORT", path);
    g_autofree char *line5 = g_strdup_printf("%s:5: ", path);
    g_autofree char *line7 = g_strdup_printf("%s:7: port out of range", path);
    g_autofree char *summary = g_strdup_printf("%s: 3 bad line(s)", path);

    ck_assert_ptr_null(backend);
    ck_assert_ptr_nonnull(error);
    ck_assert_msg(strstr(error->message, summary) != NULL, "%s", error->message);

    /* The operator sees file:line and why, never the token. */
    ck_assert_msg(log_contains(line4), "log:\n%s", captured_log->str);
    ck_assert_msg(log_contains(line5), "log:\n%s", captured_log->str);
    ck_assert_msg(log_contains(line7), "log:\n%s", captured_log->str);
    ck_assert(!log_contains("bad1"));
    ck_assert(!log_contains("bad2"));
    ck_assert(!log_contains("bad3"));
    ck_assert(!log_contains("good"));
    ck_assert(!log_contains("loaded from"));
}
END_TEST

START_TEST(test_token_file_load_good_lines)
{
    g_autofree char *path = write_file("tokens",
                                       "# spicegate tokens\r\n"
                                       "good1: host-a:5900\r\n"
                                       "\r\n"
                                       "good2: [::1]:5901\n"
                                       "good3: 192.0.2.9:65535");   /* no final newline */
    g_autoptr(GError) error = NULL;
    g_autoptr(SgTokenBackend) backend = sg_token_file_new(path, &error);
    g_autofree char *host = NULL;
    uint16_t port = 0;

    ck_assert_msg(backend != NULL, "%s", error ? error->message : "?");
    ck_assert_uint_eq(sg_token_file_count(backend), 3);
    host = lookup_host(backend, "good2", &port);
    ck_assert_str_eq(host, "::1");
    ck_assert_uint_eq(port, 5901);
    g_clear_pointer(&host, g_free);
    host = lookup_host(backend, "good3", &port);
    ck_assert_str_eq(host, "192.0.2.9");
    ck_assert_uint_eq(port, 65535);
    ck_assert_msg(log_contains("tokens: 3 loaded from "), "log:\n%s", captured_log->str);
}
END_TEST

START_TEST(test_token_file_load_empty_file)
{
    /* At start an empty file is no tokens, with a warning (a reload refuses
     * it: see test_token_file_reload_keeps_empty_file). */
    g_autofree char *path = write_file("tokens", "");
    g_autoptr(GError) error = NULL;
    g_autoptr(SgTokenBackend) backend = sg_token_file_new(path, &error);

    ck_assert_msg(backend != NULL, "%s", error ? error->message : "?");
    ck_assert_uint_eq(sg_token_file_count(backend), 0);
    ck_assert_msg(log_contains("empty file (0 bytes): no tokens"), "log:\n%s",
                  captured_log->str);
}
END_TEST

START_TEST(test_token_file_load_refuses_nul_line)
{
    static const char contents[] = "a: h:1\nb\0x: h:2\nc: h:3\n";
    g_autofree char *path = g_build_filename(tmpdir, "tokens", NULL);
    g_autoptr(GError) error = NULL;
    g_autoptr(SgTokenBackend) backend = NULL;

    ck_assert(g_file_set_contents(path, contents, sizeof(contents) - 1, &error));
    backend = sg_token_file_new(path, &error);
    ck_assert_ptr_null(backend);
    ck_assert(log_contains(":2: NUL byte in line"));
}
END_TEST

START_TEST(test_token_file_load_bad_lines_logged_up_to_1000)
{
    /* A binary file swapped in is thousands of bad lines: the first 1000
     * are logged, the rest as a count. */
    g_autoptr(GString) text = g_string_new(NULL);
    g_autofree char *path = NULL;
    g_autofree char *line1000 = NULL;
    g_autofree char *line1001 = NULL;
    g_autofree char *more = NULL;
    g_autoptr(GError) error = NULL;
    g_autoptr(SgTokenBackend) backend = NULL;

    for (int i = 0; i < 1500; i++)
        g_string_append(text, "garbage\n");
    path = write_file("tokens", text->str);
    backend = sg_token_file_new(path, &error);
    ck_assert_ptr_null(backend);
    ck_assert_msg(strstr(error->message, "1500 bad line(s)") != NULL, "%s", error->message);
    line1000 = g_strdup_printf("%s:1000: ", path);
    line1001 = g_strdup_printf("%s:1001: ", path);
    more = g_strdup_printf("%s: 500 more bad line(s) not shown", path);
    ck_assert(log_contains(line1000));
    ck_assert(!log_contains(line1001));
    ck_assert(log_contains(more));
}
END_TEST

START_TEST(test_token_file_load_refuses_too_big)
{
    g_autofree char *path = write_file("tokens", "tok: host:5900\n");
    g_autoptr(GError) error = NULL;
    g_autoptr(SgTokenBackend) backend = NULL;

    /* Sparse: no 16 MiB written to disk. */
    ck_assert_int_eq(truncate(path, SG_TOKEN_FILE_MAX_BYTES + 1), 0);
    backend = sg_token_file_new(path, &error);
    ck_assert_ptr_null(backend);
    ck_assert_ptr_nonnull(error);
    ck_assert_msg(strstr(error->message, "more than the 16 MiB") != NULL, "%s",
                  error->message);
    /* Exactly at the cap is read (and here refused for its NUL bytes). */
    g_clear_error(&error);
    ck_assert_int_eq(truncate(path, SG_TOKEN_FILE_MAX_BYTES), 0);
    backend = sg_token_file_new(path, &error);
    ck_assert_ptr_null(backend);
    ck_assert_msg(strstr(error->message, "bad line") != NULL, "%s", error->message);
}
END_TEST

START_TEST(test_token_file_load_strips_utf8_bom)
{
    g_autofree char *path = write_file("tokens", "\xef\xbb\xbftok: host:5900\n");
    g_autoptr(GError) error = NULL;
    g_autoptr(SgTokenBackend) backend = sg_token_file_new(path, &error);
    g_autofree char *host = NULL;

    ck_assert_ptr_nonnull(backend);
    host = lookup_host(backend, "tok", NULL);
    ck_assert_str_eq(host, "host");
}
END_TEST

START_TEST(test_token_file_load_directory)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(SgTokenBackend) backend = NULL;
    g_autofree char *dir = g_build_filename(tmpdir, "tokens.d", NULL);
    g_autofree char *sub = g_build_filename(dir, "sub", NULL);
    g_autofree char *f1 = g_build_filename(dir, "10-first", NULL);
    g_autofree char *f2 = g_build_filename(dir, "20-second", NULL);
    g_autofree char *hidden = g_build_filename(dir, ".hidden", NULL);
    g_autofree char *nested = g_build_filename(sub, "nested", NULL);
    g_autofree char *dangling = g_build_filename(dir, "15-dangling", NULL);
    g_autofree char *host = NULL;
    g_autofree char *dup_line = NULL;
    uint16_t port = 0;

    ck_assert_int_eq(g_mkdir(dir, 0700), 0);
    ck_assert_int_eq(g_mkdir(sub, 0700), 0);
    /* Written in the reverse of their sorted order. */
    ck_assert(g_file_set_contents(f2, "shared-secret: second:2\nonly2: b:2\n", -1, NULL));
    ck_assert(g_file_set_contents(f1, "shared-secret: first:1\nonly1: a:1\n", -1, NULL));
    ck_assert(g_file_set_contents(hidden, "hid: h:1\n", -1, NULL));
    ck_assert(g_file_set_contents(nested, "nest: n:1\n", -1, NULL));
    ck_assert_int_eq(symlink("absent", dangling), 0);

    backend = sg_token_file_new(dir, &error);
    ck_assert_msg(backend != NULL, "%s", error ? error->message : "?");
    ck_assert_uint_eq(sg_token_file_count(backend), 3);   /* shared, only1, only2 */

    host = lookup_host(backend, "shared-secret", &port);
    ck_assert_str_eq(host, "second");                      /* the later file wins */
    ck_assert_uint_eq(port, 2);
    g_clear_pointer(&host, g_free);
    host = lookup_host(backend, "only1", NULL);
    ck_assert_str_eq(host, "a");
    g_clear_pointer(&host, g_free);
    host = lookup_host(backend, "hid", NULL);
    ck_assert_ptr_null(host);
    host = lookup_host(backend, "nest", NULL);
    ck_assert_ptr_null(host);

    ck_assert_msg(log_contains("15-dangling: No such file or directory; file skipped"),
                  "log:\n%s", captured_log->str);
    /* The duplicate is reported with its place and tag, not its text. */
    dup_line = g_strdup_printf("%s: duplicate token tok:", f2);
    ck_assert_msg(log_contains(dup_line), "log:\n%s", captured_log->str);
    ck_assert(!log_contains("shared-secret"));
}
END_TEST

START_TEST(test_token_file_load_duplicate_in_one_file)
{
    g_autofree char *path = write_file("tokens", "dup: a:1\ndup: b:2\n");
    g_autoptr(SgTokenBackend) backend = sg_token_file_new(path, NULL);
    g_autofree char *host = NULL;

    ck_assert_ptr_nonnull(backend);
    ck_assert_uint_eq(sg_token_file_count(backend), 1);
    host = lookup_host(backend, "dup", NULL);
    ck_assert_str_eq(host, "b");
    ck_assert(log_contains(":2: duplicate token tok:"));
}
END_TEST

START_TEST(test_token_file_new_fails_on_missing_path)
{
    g_autofree char *path = g_build_filename(tmpdir, "absent", NULL);
    g_autoptr(GError) error = NULL;
    g_autoptr(SgTokenBackend) backend = sg_token_file_new(path, &error);

    ck_assert_ptr_null(backend);
    ck_assert_ptr_nonnull(error);
    ck_assert(g_error_matches(error, G_FILE_ERROR, G_FILE_ERROR_NOENT));
    ck_assert_msg(strstr(error->message, path) != NULL, "%s", error->message);
}
END_TEST

START_TEST(test_token_file_new_fails_on_fifo)
{
    g_autofree char *path = g_build_filename(tmpdir, "fifo", NULL);
    g_autoptr(GError) error = NULL;
    g_autoptr(SgTokenBackend) backend = NULL;

    ck_assert_int_eq(mkfifo(path, 0600), 0);
    backend = sg_token_file_new(path, &error);   /* must not block on open */
    ck_assert_ptr_null(backend);
    ck_assert_ptr_nonnull(error);
}
END_TEST

START_TEST(test_token_file_reload_picks_up_changes)
{
    g_autofree char *path = write_file("tokens", "tok: old-host:5900\n");
    g_autoptr(GError) error = NULL;
    g_autoptr(SgTokenBackend) backend = sg_token_file_new(path, &error);
    g_autofree char *host = NULL;
    g_autofree char *again = NULL;
    uint16_t port = 0;

    ck_assert_ptr_nonnull(backend);
    ck_assert_uint_eq(sg_token_file_count(backend), 1);

    g_free(write_file("tokens", "tok: new-host:5901\nnew: other:1\n"));
    ck_assert(sg_token_backend_reload(backend, &error));
    ck_assert_ptr_null(error);
    ck_assert_uint_eq(sg_token_file_count(backend), 2);
    host = lookup_host(backend, "tok", &port);
    ck_assert_str_eq(host, "new-host");
    ck_assert_uint_eq(port, 5901);

    /* A token dropped from the file stops working. */
    g_free(write_file("tokens", "new: other:1\n"));
    ck_assert(sg_token_backend_reload(backend, &error));
    ck_assert_uint_eq(sg_token_file_count(backend), 1);
    again = lookup_host(backend, "tok", NULL);
    ck_assert_ptr_null(again);
    ck_assert(log_contains("tokens: 1 loaded from "));
}
END_TEST

START_TEST(test_token_file_reload_keeps_table_when_path_vanished)
{
    g_autofree char *path = write_file("tokens", "tok: host:5900\n");
    g_autoptr(GError) error = NULL;
    g_autoptr(SgTokenBackend) backend = sg_token_file_new(path, &error);
    g_autofree char *host = NULL;

    ck_assert_ptr_nonnull(backend);
    ck_assert_int_eq(g_unlink(path), 0);
    ck_assert(!sg_token_backend_reload(backend, &error));
    ck_assert_ptr_nonnull(error);
    ck_assert_msg(strstr(error->message, path) != NULL, "%s", error->message);
    ck_assert_uint_eq(sg_token_file_count(backend), 1);
    host = lookup_host(backend, "tok", NULL);
    ck_assert_str_eq(host, "host");
}
END_TEST

START_TEST(test_token_file_reload_keeps_table_when_directory_vanished)
{
    g_autofree char *dir = g_build_filename(tmpdir, "tokens.d", NULL);
    g_autofree char *file = g_build_filename(dir, "a", NULL);
    g_autoptr(GError) error = NULL;
    g_autoptr(SgTokenBackend) backend = NULL;

    ck_assert_int_eq(g_mkdir(dir, 0700), 0);
    ck_assert(g_file_set_contents(file, "tok: host:5900\n", -1, NULL));
    backend = sg_token_file_new(dir, &error);
    ck_assert_ptr_nonnull(backend);
    remove_tree(dir);
    ck_assert(!sg_token_backend_reload(backend, &error));
    ck_assert_ptr_nonnull(error);
    ck_assert_uint_eq(sg_token_file_count(backend), 1);
}
END_TEST

/* Reloads @backend after @path was replaced by something bad: the reload
 * reports it, the log says so and that the old tokens stay, and "tok"
 * still leads to "host". */
static void
assert_reload_keeps(SgTokenBackend *backend, const char *path, const char *why)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *host = NULL;

    ck_assert(!sg_token_backend_reload(backend, &error));
    ck_assert_ptr_nonnull(error);
    ck_assert_msg(strstr(error->message, path) != NULL, "%s", error->message);
    ck_assert_msg(strstr(error->message, why) != NULL, "%s", error->message);
    ck_assert_msg(log_contains("keeping the 1 token(s) it had before"), "log:\n%s",
                  captured_log->str);
    ck_assert_uint_eq(sg_token_file_count(backend), 1);
    host = lookup_host(backend, "tok", NULL);
    ck_assert_str_eq(host, "host");
    ck_assert(!log_contains("tokn"));
}

START_TEST(test_token_file_reload_keeps_garbled_file)
{
    g_autofree char *path = write_file("tokens", "tok: host:5900\n");
    g_autoptr(SgTokenBackend) backend = sg_token_file_new(path, NULL);
    g_autofree char *line2 = NULL;
    g_autofree char *line3 = NULL;

    ck_assert_ptr_nonnull(backend);
    /* One good line among bad ones: the file is still refused whole. */
    g_free(write_file("tokens", "tok: other:1\n\x8b\x1f garbage tokn\ntokn:host:1\n"));
    assert_reload_keeps(backend, path, "2 bad line(s)");
    line2 = g_strdup_printf("%s:2: ", path);
    line3 = g_strdup_printf("%s:3: ", path);
    ck_assert(log_contains(line2));
    ck_assert(log_contains(line3));
}
END_TEST

START_TEST(test_token_file_reload_keeps_truncated_file)
{
    g_autofree char *path = write_file("tokens", "tok: host:5900\n");
    g_autoptr(SgTokenBackend) backend = sg_token_file_new(path, NULL);

    ck_assert_ptr_nonnull(backend);
    g_free(write_file("tokens", "tok: host:5900\ntokn: hos"));
    assert_reload_keeps(backend, path, "1 bad line(s)");
}
END_TEST

START_TEST(test_token_file_reload_keeps_empty_file)
{
    g_autofree char *path = write_file("tokens", "tok: host:5900\n");
    g_autoptr(SgTokenBackend) backend = sg_token_file_new(path, NULL);

    ck_assert_ptr_nonnull(backend);
    g_free(write_file("tokens", ""));
    assert_reload_keeps(backend, path, "empty file");
}
END_TEST

START_TEST(test_token_file_reload_keeps_too_big_file)
{
    g_autofree char *path = write_file("tokens", "tok: host:5900\n");
    g_autoptr(SgTokenBackend) backend = sg_token_file_new(path, NULL);

    ck_assert_ptr_nonnull(backend);
    ck_assert_int_eq(truncate(path, SG_TOKEN_FILE_MAX_BYTES + 1), 0);
    assert_reload_keeps(backend, path, "more than the 16 MiB");
}
END_TEST

START_TEST(test_token_file_reload_keeps_on_fifo)
{
    g_autofree char *path = write_file("tokens", "tok: host:5900\n");
    g_autoptr(SgTokenBackend) backend = sg_token_file_new(path, NULL);
    g_autoptr(GError) error = NULL;
    g_autofree char *host = NULL;

    ck_assert_ptr_nonnull(backend);
    ck_assert_int_eq(g_unlink(path), 0);
    ck_assert_int_eq(mkfifo(path, 0600), 0);
    /* Nobody writes the FIFO: a blocking open would hang the test. */
    ck_assert(!sg_token_backend_reload(backend, &error));
    ck_assert_msg(strstr(error->message, "not a regular file") != NULL, "%s", error->message);
    ck_assert_uint_eq(sg_token_file_count(backend), 1);
    host = lookup_host(backend, "tok", NULL);
    ck_assert_str_eq(host, "host");
}
END_TEST

START_TEST(test_token_file_reload_directory_per_file)
{
    g_autofree char *dir = g_build_filename(tmpdir, "tokens.d", NULL);
    g_autofree char *a = g_build_filename(dir, "a", NULL);
    g_autofree char *b = g_build_filename(dir, "b", NULL);
    g_autofree char *c = g_build_filename(dir, "c", NULL);
    g_autofree char *d = g_build_filename(dir, "d", NULL);
    g_autoptr(GError) error = NULL;
    g_autoptr(SgTokenBackend) backend = NULL;
    g_autofree char *host = NULL;

    ck_assert_int_eq(g_mkdir(dir, 0700), 0);
    ck_assert(g_file_set_contents(a, "ta: host-a:1\n", -1, NULL));
    ck_assert(g_file_set_contents(b, "tb: host-b:1\n", -1, NULL));
    ck_assert(g_file_set_contents(c, "tc: host-c:1\n", -1, NULL));
    backend = sg_token_file_new(dir, &error);
    ck_assert_ptr_nonnull(backend);
    ck_assert_uint_eq(sg_token_file_count(backend), 3);

    /* a: garbled (keeps ta); b: a good change (tb2 replaces tb); c: a FIFO
     * in its place (keeps tc); d: new and bad (adds nothing). */
    ck_assert(g_file_set_contents(a, "ta: host-a:1\nta2 host-a:2\n", -1, NULL));
    ck_assert(g_file_set_contents(b, "tb2: host-b:2\n", -1, NULL));
    ck_assert_int_eq(g_unlink(c), 0);
    ck_assert_int_eq(mkfifo(c, 0600), 0);
    ck_assert(g_file_set_contents(d, "td: host-d\n", -1, NULL));
    ck_assert(!sg_token_backend_reload(backend, &error));
    ck_assert_msg(strstr(error->message, "3 file(s) refused, 2 of them keep their previous")
                  != NULL, "%s", error->message);
    ck_assert_uint_eq(sg_token_file_count(backend), 3);   /* ta, tb2, tc */
    host = lookup_host(backend, "ta", NULL);
    ck_assert_str_eq(host, "host-a");
    g_clear_pointer(&host, g_free);
    host = lookup_host(backend, "tb2", NULL);
    ck_assert_str_eq(host, "host-b");
    g_clear_pointer(&host, g_free);
    host = lookup_host(backend, "tc", NULL);
    ck_assert_str_eq(host, "host-c");
    g_clear_pointer(&host, g_free);
    host = lookup_host(backend, "tb", NULL);
    ck_assert_ptr_null(host);
    host = lookup_host(backend, "td", NULL);
    ck_assert_ptr_null(host);
    ck_assert_msg(log_contains("none of its tokens loaded"), "log:\n%s", captured_log->str);

    /* Removing a file from the directory removes its tokens; fixing one
     * brings its new contents. */
    g_clear_error(&error);
    ck_assert_int_eq(g_unlink(c), 0);
    ck_assert_int_eq(g_unlink(d), 0);
    ck_assert(g_file_set_contents(a, "ta2: host-a:2\n", -1, NULL));
    ck_assert_msg(sg_token_backend_reload(backend, &error), "%s", error->message);
    ck_assert_uint_eq(sg_token_file_count(backend), 2);   /* ta2, tb2 */
    host = lookup_host(backend, "tc", NULL);
    ck_assert_ptr_null(host);
    host = lookup_host(backend, "ta2", NULL);
    ck_assert_str_eq(host, "host-a");
}
END_TEST

/* ---- lookups ------------------------------------------------------------- */

START_TEST(test_token_file_lookup_answers_from_the_loop)
{
    g_autofree char *path = write_file("tokens", "tok: host:5900\n");
    g_autoptr(SgTokenBackend) backend = sg_token_file_new(path, NULL);
    Answer ans;

    ck_assert_ptr_nonnull(backend);
    answer_init(&ans, 1);
    start_lookup(backend, "tok", &ans);
    /* The answer is known, yet it must wait for the loop. */
    ck_assert_uint_eq(ans.calls, 0);
    run_until_answered(&ans);
    ck_assert_uint_eq(ans.calls, 1);
    ck_assert(!ans.ran_synchronously);
    ck_assert_str_eq(ans.host, "host");
    ck_assert_uint_eq(ans.port, 5900);
    answer_clear(&ans);
}
END_TEST

START_TEST(test_token_file_lookup_unknown_token)
{
    g_autofree char *path = write_file("tokens", "tok: host:5900\n");
    g_autoptr(SgTokenBackend) backend = sg_token_file_new(path, NULL);
    Answer ans;

    answer_init(&ans, 1);
    start_lookup(backend, "nope", &ans);
    ck_assert_uint_eq(ans.calls, 0);
    run_until_answered(&ans);
    ck_assert_uint_eq(ans.calls, 1);
    ck_assert(!ans.ran_synchronously);
    ck_assert_ptr_null(ans.host);
    ck_assert_uint_eq(ans.error_domain, SG_TOKEN_ERROR);
    ck_assert_int_eq(ans.error_code, SG_TOKEN_ERROR_UNKNOWN);
    ck_assert_str_eq(ans.error_message, "console token invalid or expired");
    ck_assert(!log_contains("nope"));
    answer_clear(&ans);
}
END_TEST

START_TEST(test_token_file_lookup_cancel_prevents_callback)
{
    g_autofree char *path = write_file("tokens", "tok: host:5900\n");
    g_autoptr(SgTokenBackend) backend = sg_token_file_new(path, NULL);
    Answer cancelled;
    Answer witness;
    SgTokenLookup *lookup;

    answer_init(&cancelled, 1);
    answer_init(&witness, 1);
    lookup = start_lookup(backend, "tok", &cancelled);
    sg_token_lookup_cancel(lookup);
    /* Idle sources of one priority run in order, so once the witness,
     * started later, is answered, the cancelled one would have been too. */
    start_lookup(backend, "tok", &witness);
    run_until_answered(&witness);
    ck_assert_uint_eq(witness.calls, 1);
    ck_assert_uint_eq(cancelled.calls, 0);
    /* One more spin of the loop for good measure: still nothing. */
    while (g_main_context_iteration(NULL, FALSE))
        ;
    ck_assert_uint_eq(cancelled.calls, 0);
    answer_clear(&cancelled);
    answer_clear(&witness);
}
END_TEST

START_TEST(test_token_file_lookup_cancel_null_is_noop)
{
    sg_token_lookup_cancel(NULL);
}
END_TEST

START_TEST(test_token_file_lookup_survives_reload_and_free)
{
    g_autofree char *path = write_file("tokens", "tok: host:5900\n");
    SgTokenBackend *backend = sg_token_file_new(path, NULL);
    Answer ans;

    /* The answer is a copy: neither a reload nor freeing the backend before
     * the loop runs may touch it. */
    answer_init(&ans, 1);
    start_lookup(backend, "tok", &ans);
    g_free(write_file("tokens", "other: x:1\n"));
    ck_assert(sg_token_backend_reload(backend, NULL));
    sg_token_backend_free(backend);
    run_until_answered(&ans);
    ck_assert_str_eq(ans.host, "host");
    answer_clear(&ans);
}
END_TEST

#define MANY_LOOKUPS 200

START_TEST(test_token_file_lookup_many_concurrent)
{
    g_autofree char *path = write_file("tokens", "tok: host:5900\n");
    g_autoptr(SgTokenBackend) backend = sg_token_file_new(path, NULL);
    Answer ans;

    /* Every browser channel of one console looks the same token up within
     * a few milliseconds; each must get its own answer. */
    answer_init(&ans, MANY_LOOKUPS);
    for (int i = 0; i < MANY_LOOKUPS; i++)
        start_lookup(backend, "tok", &ans);
    ck_assert_uint_eq(ans.calls, 0);
    run_until_answered(&ans);
    ck_assert_uint_eq(ans.calls, MANY_LOOKUPS);
    ck_assert(!ans.ran_synchronously);
    answer_clear(&ans);
}
END_TEST

/* A backend that answers later, from its own idle source, to check the
 * handle's non-deferred path: complete() outside start() calls back at
 * once, and cancel() reaches the backend. */
typedef struct {
    SgTokenBackend parent;
    guint cancels;
} SlowBackend;

static gboolean
on_slow_answer(gpointer data)
{
    SgTokenLookup *lookup = data;
    g_autoptr(SgConsoleTarget) tgt = sg_console_target_new("slow-host", 1);

    sg_token_lookup_set_backend_data(lookup, NULL);
    sg_token_lookup_complete(lookup, tgt, NULL);
    return G_SOURCE_REMOVE;
}

static void
slow_start(SgTokenBackend *backend, SgTokenLookup *lookup)
{
    guint id = g_idle_add(on_slow_answer, lookup);

    (void)backend;
    sg_token_lookup_set_backend_data(lookup, GUINT_TO_POINTER(id));
}

static void
slow_cancel(SgTokenBackend *backend, SgTokenLookup *lookup)
{
    SlowBackend *slow = (SlowBackend *)backend;
    guint id = GPOINTER_TO_UINT(sg_token_lookup_get_backend_data(lookup));

    slow->cancels++;
    if (id != 0)
        g_source_remove(id);
}

static void
slow_free(SgTokenBackend *backend)
{
    g_free(backend);
}

static const SgTokenBackendVtable slow_vtable = {
    .name = "slow",
    .start = slow_start,
    .cancel = slow_cancel,
    .free = slow_free,
};

START_TEST(test_token_lookup_async_backend)
{
    SlowBackend *slow = g_new0(SlowBackend, 1);
    g_autoptr(SgTokenBackend) backend = &slow->parent;
    Answer ans;
    Answer cancelled;
    SgTokenLookup *lookup;

    slow->parent.vtable = &slow_vtable;
    answer_init(&ans, 1);
    answer_init(&cancelled, 1);

    lookup = start_lookup(backend, "tok", &cancelled);
    ck_assert_str_eq(sg_token_lookup_get_token(lookup), "tok");
    sg_token_lookup_cancel(lookup);
    ck_assert_uint_eq(slow->cancels, 1);

    start_lookup(backend, "tok", &ans);
    run_until_answered(&ans);
    ck_assert_str_eq(ans.host, "slow-host");
    ck_assert_uint_eq(cancelled.calls, 0);
    ck_assert_uint_eq(slow->cancels, 1);
    /* No reload hook: reloading is a successful no-op. */
    ck_assert(sg_token_backend_reload(backend, NULL));
    answer_clear(&ans);
    answer_clear(&cancelled);
}
END_TEST

/* Cancelling a lookup from inside its own callback (an owner freeing
 * itself on the answer) must be harmless. */
static void
on_answer_cancel_self(const SgConsoleTarget *tgt, const GError *error, gpointer user_data)
{
    SgTokenLookup **slot = user_data;

    (void)tgt;
    (void)error;
    sg_token_lookup_cancel(*slot);
    *slot = NULL;
}

static gboolean
quit_loop(gpointer loop)
{
    g_main_loop_quit(loop);
    return G_SOURCE_REMOVE;
}

START_TEST(test_token_lookup_cancel_inside_callback)
{
    g_autofree char *path = write_file("tokens", "tok: host:5900\n");
    g_autoptr(SgTokenBackend) backend = sg_token_file_new(path, NULL);
    g_autoptr(GMainLoop) loop = g_main_loop_new(NULL, FALSE);
    SgTokenLookup *lookup;
    guint deadline;

    lookup = sg_token_lookup(backend, "tok", on_answer_cancel_self, &lookup);
    ck_assert_ptr_nonnull(lookup);
    g_idle_add(quit_loop, loop);   /* queued after the answer's idle */
    deadline = g_timeout_add(LOOP_DEADLINE_MS, on_deadline, NULL);
    g_main_loop_run(loop);
    g_source_remove(deadline);
    ck_assert_ptr_null(lookup);
}
END_TEST

START_TEST(test_token_console_target_copy)
{
    g_autoptr(SgConsoleTarget) tgt = sg_console_target_new("h", 5900);
    g_autoptr(SgConsoleTarget) copy = NULL;

    tgt->instance_uuid = g_strdup("uuid");
    tgt->internal_access_path = g_strdup("path");
    tgt->expires_at_us = 42;
    copy = sg_console_target_copy(tgt);
    ck_assert_ptr_ne(copy, tgt);
    ck_assert_str_eq(copy->host, "h");
    ck_assert_uint_eq(copy->port, 5900);
    ck_assert_str_eq(copy->instance_uuid, "uuid");
    ck_assert_str_eq(copy->internal_access_path, "path");
    ck_assert_int_eq(copy->expires_at_us, 42);
    ck_assert_ptr_null(sg_console_target_copy(NULL));
    sg_console_target_free(NULL);
    sg_token_backend_free(NULL);
}
END_TEST

static Suite *
token_file_suite(void)
{
    Suite *s = suite_create("token_file");
    TCase *tc;

    tc = tcase_create("parse");
    tcase_set_timeout(tc, TEST_TIMEOUT_S);
    tcase_add_loop_test(tc, test_token_file_parse_line_table, 0, G_N_ELEMENTS(line_cases));
    tcase_add_test(tc, test_token_file_parse_line_token_length_limit);
    tcase_add_test(tc, test_token_file_parse_line_host_length_limit);
    suite_add_tcase(s, tc);

    tc = tcase_create("load");
    tcase_set_timeout(tc, TEST_TIMEOUT_S);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_token_file_load_refuses_bad_lines);
    tcase_add_test(tc, test_token_file_load_good_lines);
    tcase_add_test(tc, test_token_file_load_empty_file);
    tcase_add_test(tc, test_token_file_load_refuses_nul_line);
    tcase_add_test(tc, test_token_file_load_refuses_too_big);
    tcase_add_test(tc, test_token_file_load_bad_lines_logged_up_to_1000);
    tcase_add_test(tc, test_token_file_load_strips_utf8_bom);
    tcase_add_test(tc, test_token_file_load_directory);
    tcase_add_test(tc, test_token_file_load_duplicate_in_one_file);
    tcase_add_test(tc, test_token_file_new_fails_on_missing_path);
    tcase_add_test(tc, test_token_file_new_fails_on_fifo);
    tcase_add_test(tc, test_token_file_reload_picks_up_changes);
    tcase_add_test(tc, test_token_file_reload_keeps_table_when_path_vanished);
    tcase_add_test(tc, test_token_file_reload_keeps_table_when_directory_vanished);
    tcase_add_test(tc, test_token_file_reload_keeps_garbled_file);
    tcase_add_test(tc, test_token_file_reload_keeps_truncated_file);
    tcase_add_test(tc, test_token_file_reload_keeps_empty_file);
    tcase_add_test(tc, test_token_file_reload_keeps_too_big_file);
    tcase_add_test(tc, test_token_file_reload_keeps_on_fifo);
    tcase_add_test(tc, test_token_file_reload_directory_per_file);
    suite_add_tcase(s, tc);

    tc = tcase_create("lookup");
    tcase_set_timeout(tc, TEST_TIMEOUT_S);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_token_file_lookup_answers_from_the_loop);
    tcase_add_test(tc, test_token_file_lookup_unknown_token);
    tcase_add_test(tc, test_token_file_lookup_cancel_prevents_callback);
    tcase_add_test(tc, test_token_file_lookup_cancel_null_is_noop);
    tcase_add_test(tc, test_token_file_lookup_survives_reload_and_free);
    tcase_add_test(tc, test_token_file_lookup_many_concurrent);
    tcase_add_test(tc, test_token_lookup_async_backend);
    tcase_add_test(tc, test_token_lookup_cancel_inside_callback);
    tcase_add_test(tc, test_token_console_target_copy);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    g_autoptr(GError) error = NULL;
    SRunner *sr;
    int failed;

    basedir = g_dir_make_tmp("check_token_file-XXXXXX", &error);
    if (basedir == NULL) {
        g_printerr("g_dir_make_tmp: %s\n", error->message);
        return EXIT_FAILURE;
    }
    sr = srunner_create(token_file_suite());
    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    remove_tree(basedir);
    g_free(basedir);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
