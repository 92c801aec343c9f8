/* SPDX-License-Identifier: Apache-2.0 */
/* check_log.c - unit tests for the log writer: timestamps, the text and
 * JSON line formats (escaping included), session fields, the once-only
 * messages of workers and reopening --log-file.
 *
 * Each test runs in its own process (CK_FORK), so tests that install the
 * writer or move standard error cannot disturb the others.
 */
#include "autoconfig.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "log.h"

/* 2026-12-07T01:02:03.456789Z */
#define T_US (G_GINT64_CONSTANT(1796605323) * G_USEC_PER_SEC + 456789)

static void
set_tz(const char *tz)
{
    g_setenv("TZ", tz, TRUE);
    tzset();
}

START_TEST(test_log_time_utc)
{
    char out[SG_LOG_TIME_BYTES];

    set_tz("UTC");
    sg_log_format_time(T_US, out);
    ck_assert_str_eq(out, "2026-12-07T01:02:03.456+00:00");
    sg_log_format_time(0, out);
    ck_assert_str_eq(out, "1970-01-01T00:00:00.000+00:00");
}
END_TEST

static const struct {
    const char *tz;
    const char *expected;
} zones[] = {
    /* POSIX TZ: the offset is west of Greenwich, so the sign flips. */
    { "<+0530>-5:30", "2026-12-07T06:32:03.456+05:30" },
    { "<-0330>3:30", "2026-12-06T21:32:03.456-03:30" },
    { "<+14>-14", "2026-12-07T15:02:03.456+14:00" },
};

START_TEST(test_log_time_zone)
{
    char out[SG_LOG_TIME_BYTES];

    set_tz(zones[_i].tz);
    sg_log_format_time(T_US, out);
    ck_assert_str_eq(out, zones[_i].expected);
}
END_TEST

static char *
line_for(SgLogFormat format, GLogLevelFlags level, const char *domain, const char *message,
         const GLogField *extra, gsize n_extra)
{
    GLogField fields[16];
    gsize n = 0;
    GString *out = g_string_new(NULL);

    fields[n++] = (GLogField){ "PRIORITY", "5", -1 };
    fields[n++] = (GLogField){ "GLIB_DOMAIN", domain, -1 };
    fields[n++] = (GLogField){ "MESSAGE", message, -1 };
    fields[n++] = (GLogField){ "CODE_FILE", "x.c", -1 };
    for (gsize i = 0; i < n_extra; i++)
        fields[n++] = extra[i];
    sg_log_format_line(out, format, "2026-12-07T01:02:03.456+00:00", 42, level, fields, n);
    return g_string_free(out, FALSE);
}

START_TEST(test_log_text_line)
{
    g_autofree char *msg = line_for(SG_LOG_TEXT, G_LOG_LEVEL_MESSAGE, "spicegate",
                                    "[s:1] open client=1.2.3.4:5", NULL, 0);
    g_autofree char *warn = line_for(SG_LOG_TEXT, G_LOG_LEVEL_WARNING, "GLib-GIO", "oops",
                                     NULL, 0);
    g_autofree char *crit = line_for(SG_LOG_TEXT, G_LOG_LEVEL_CRITICAL, "spicegate", "bad",
                                     NULL, 0);

    ck_assert_str_eq(msg, "2026-12-07T01:02:03.456+00:00 spicegate[42] MESSAGE: "
                          "[s:1] open client=1.2.3.4:5\n");
    ck_assert_str_eq(warn, "2026-12-07T01:02:03.456+00:00 spicegate[42] WARNING: GLib-GIO: oops\n");
    ck_assert_str_eq(crit, "2026-12-07T01:02:03.456+00:00 spicegate[42] CRITICAL: bad\n");
}
END_TEST

/* A peer's text cannot start a line of its own. */
START_TEST(test_log_text_escapes_controls)
{
    g_autofree char *line = line_for(SG_LOG_TEXT, G_LOG_LEVEL_MESSAGE, "spicegate",
                                     "a\nb\rc\x01" "d\x7f" "e\tf \"q\" \\ \xc3\xa9", NULL, 0);

    ck_assert_str_eq(line, "2026-12-07T01:02:03.456+00:00 spicegate[42] MESSAGE: "
                           "a\\nb\\rc\\x01d\\x7fe\tf \"q\" \\ \xc3\xa9\n");
    ck_assert_ptr_eq(strchr(line, '\n'), line + strlen(line) - 1);
}
END_TEST

static JsonObject *
parse_json_line(const char *line)
{
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autoptr(GError) error = NULL;
    JsonNode *root;

    ck_assert_msg(g_str_has_suffix(line, "}\n"), "not one JSON line: %s", line);
    ck_assert_ptr_eq(strchr(line, '\n'), line + strlen(line) - 1);
    ck_assert_msg(json_parser_load_from_data(parser, line, -1, &error), "%s: %s", line,
                  error ? error->message : "");
    root = json_parser_get_root(parser);
    ck_assert_int_eq(json_node_get_node_type(root), JSON_NODE_OBJECT);
    return json_object_ref(json_node_get_object(root));
}

START_TEST(test_log_json_line)
{
    g_autofree char *line = line_for(SG_LOG_JSON, G_LOG_LEVEL_WARNING, "spicegate", "hello",
                                     NULL, 0);
    g_autoptr(JsonObject) obj = parse_json_line(line);

    ck_assert_str_eq(line, "{\"time\":\"2026-12-07T01:02:03.456+00:00\",\"level\":\"warning\","
                           "\"pid\":42,\"message\":\"hello\"}\n");
    ck_assert_str_eq(json_object_get_string_member(obj, "message"), "hello");
    /* GLib's bookkeeping fields stay out. */
    ck_assert(!json_object_has_member(obj, "code_file"));
    ck_assert(!json_object_has_member(obj, "priority"));
    ck_assert(!json_object_has_member(obj, "domain"));
}
END_TEST

START_TEST(test_log_json_escapes)
{
    /* Quotes, backslash, every kind of control, DEL, valid UTF-8 and two
     * bytes that are not UTF-8 (a lone continuation byte, a cut sequence). */
    const char *message = "say \"hi\" \\ a\nb\rc\td\x01" "e\x1f" "f\x7f" "g \xc3\xa9 \x80 \xe2\x82";
    g_autofree char *line = line_for(SG_LOG_JSON, G_LOG_LEVEL_MESSAGE, "Other\"domain",
                                     message, NULL, 0);
    g_autoptr(JsonObject) obj = parse_json_line(line);

    ck_assert_msg(strstr(line, "\"message\":\"say \\\"hi\\\" \\\\ a\\nb\\rc\\td\\u0001e\\u001f"
                               "f\\u007fg \xc3\xa9 \\ufffd \\ufffd\\ufffd\"") != NULL,
                  "%s", line);
    ck_assert_str_eq(json_object_get_string_member(obj, "message"),
                     "say \"hi\" \\ a\nb\rc\td\x01" "e\x1f" "f\x7f" "g \xc3\xa9 \xef\xbf\xbd "
                     "\xef\xbf\xbd\xef\xbf\xbd");
    ck_assert_str_eq(json_object_get_string_member(obj, "domain"), "Other\"domain");
}
END_TEST

START_TEST(test_log_json_fields)
{
    const GLogField extra[] = {
        { "SESSION", "12", -1 },
        { "EVENT", "close", -1 },
        { "CLIENT", "[::1]:5", -1 },
        { "CONSOLE", "1804289383", -1 },
        { "DURATION", "1.250", -1 },
        { "BYTES_UP", "0", -1 },
        { "REASON", "console \"closed\"", -1 },
        /* Not a number after all: stays a string, the line stays JSON. */
        { "BYTES_DOWN", "12,5", -1 },
        /* Binary field with its length: the NUL and what follows are kept. */
        { "INSTANCE", "ab\0cd", 5 },
    };
    g_autofree char *line = line_for(SG_LOG_JSON, G_LOG_LEVEL_MESSAGE, "spicegate",
                                     "[s:12] close", extra, G_N_ELEMENTS(extra));
    g_autoptr(JsonObject) obj = parse_json_line(line);

    ck_assert_int_eq(json_object_get_int_member(obj, "session"), 12);
    ck_assert_int_eq(json_object_get_int_member(obj, "console"), 1804289383);
    ck_assert(json_object_get_double_member(obj, "duration") == 1.25);
    ck_assert_int_eq(json_object_get_int_member(obj, "bytes_up"), 0);
    ck_assert_str_eq(json_object_get_string_member(obj, "bytes_down"), "12,5");
    ck_assert_str_eq(json_object_get_string_member(obj, "event"), "close");
    ck_assert_str_eq(json_object_get_string_member(obj, "client"), "[::1]:5");
    ck_assert_str_eq(json_object_get_string_member(obj, "reason"), "console \"closed\"");
    ck_assert_msg(strstr(line, "\"instance\":\"ab\\u0000cd\"") != NULL, "%s", line);
}
END_TEST

/* sg_log_session() hands the writer the fields it was given. */
static GPtrArray *captured;

static GLogWriterOutput
capture_writer(GLogLevelFlags level, const GLogField *fields, gsize n, gpointer data)
{
    GString *out = g_string_new(NULL);

    (void)data;
    sg_log_format_line(out, SG_LOG_JSON, NULL, 1, level, fields, n);
    g_ptr_array_add(captured, g_string_free(out, FALSE));
    return G_LOG_WRITER_HANDLED;
}

START_TEST(test_log_session_fields)
{
    SgLogSession f = {
        .session = 7, .event = "open", .client = "127.0.0.1:1", .token_tag = "tok:0123abcd",
        .target = "10.0.0.1:5900", .channel = "display", .instance = "uuid-1",
        .has_console = true, .console = 0,
    };
    g_autoptr(JsonObject) obj = NULL;

    captured = g_ptr_array_new_with_free_func(g_free);
    g_log_set_writer_func(capture_writer, NULL, NULL);
    sg_log_session(G_LOG_LEVEL_MESSAGE, &f, "[s:%d] open", 7);
    /* Debug lines are dropped before formatting unless asked for. */
    g_unsetenv("G_MESSAGES_DEBUG");
    sg_log_session(G_LOG_LEVEL_DEBUG, &f, "[s:%d] debug", 7);
    ck_assert_uint_eq(captured->len, 1);
    obj = parse_json_line(captured->pdata[0]);
    ck_assert_str_eq(json_object_get_string_member(obj, "message"), "[s:7] open");
    ck_assert_str_eq(json_object_get_string_member(obj, "level"), "message");
    ck_assert_int_eq(json_object_get_int_member(obj, "session"), 7);
    ck_assert_str_eq(json_object_get_string_member(obj, "token_tag"), "tok:0123abcd");
    ck_assert_str_eq(json_object_get_string_member(obj, "channel"), "display");
    ck_assert_str_eq(json_object_get_string_member(obj, "instance"), "uuid-1");
    /* Console 0 is a console id all the same (has_console). */
    ck_assert_int_eq(json_object_get_int_member(obj, "console"), 0);
    ck_assert(!json_object_has_member(obj, "duration"));
    ck_assert(!json_object_has_member(obj, "reason"));
    g_ptr_array_unref(captured);
}
END_TEST

START_TEST(test_log_once)
{
    captured = g_ptr_array_new_with_free_func(g_free);
    g_log_set_writer_func(capture_writer, NULL, NULL);
    sg_message_once("first");
    sg_log_set_quiet_once(true);
    sg_message_once("hidden");
    sg_warning_once("hidden too");
    g_message("always");
    sg_log_set_quiet_once(false);
    sg_warning_once("back");
    ck_assert_uint_eq(captured->len, 3);
    ck_assert_ptr_nonnull(strstr(captured->pdata[0], "\"first\""));
    ck_assert_ptr_nonnull(strstr(captured->pdata[1], "\"always\""));
    ck_assert_ptr_nonnull(strstr(captured->pdata[2], "\"back\""));
    g_ptr_array_unref(captured);
}
END_TEST

static char *
slurp(const char *path)
{
    char *text = NULL;

    ck_assert(g_file_get_contents(path, &text, NULL, NULL));
    return text;
}

/* logrotate without copytruncate: the file is renamed, then SIGHUP. */
START_TEST(test_log_reopen)
{
    g_autofree char *dir = g_dir_make_tmp("sg-check-log-XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "spicegate.log", NULL);
    g_autofree char *moved = g_build_filename(dir, "spicegate.log.1", NULL);
    g_autoptr(GError) error = NULL;
    g_autofree char *old_text = NULL, *new_text = NULL;

    set_tz("UTC");
    ck_assert(sg_log_open_file(path, &error));
    sg_log_init();
    g_message("before rotation");
    ck_assert_int_eq(g_rename(path, moved), 0);
    g_message("after rename, before reopen");
    sg_log_reopen();
    g_message("after reopen");
    sg_log_set_format(SG_LOG_JSON);
    g_message("json now");

    old_text = slurp(moved);
    new_text = slurp(path);
    ck_assert_ptr_nonnull(strstr(old_text, "before rotation"));
    ck_assert_ptr_nonnull(strstr(old_text, "after rename, before reopen"));
    ck_assert_ptr_null(strstr(old_text, "after reopen"));
    ck_assert_ptr_nonnull(strstr(new_text, "MESSAGE: after reopen\n"));
    ck_assert_ptr_null(strstr(new_text, "before"));
    /* A stamped line: date, time, milliseconds and zone. */
    ck_assert_msg(g_regex_match_simple("^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}"
                                       "\\+00:00 spicegate\\[\\d+\\] MESSAGE: after reopen$",
                                       new_text, G_REGEX_MULTILINE, 0), "%s", new_text);
    ck_assert_ptr_nonnull(strstr(new_text, "\"message\":\"json now\"}\n"));
    /* Reopening where the directory is gone keeps the old file. */
    g_unlink(moved);
    g_unlink(path);
    ck_assert_int_eq(g_rmdir(dir), 0);
    sg_log_reopen();
    g_message("still here");
}
END_TEST

START_TEST(test_log_open_file_fails)
{
    g_autoptr(GError) error = NULL;

    ck_assert(!sg_log_open_file("/nonexistent-dir/spicegate.log", &error));
    ck_assert_ptr_nonnull(strstr(error->message, "/nonexistent-dir/spicegate.log"));
    ck_assert_ptr_nonnull(strstr(error->message, "No such file"));
}
END_TEST

START_TEST(test_log_redact)
{
    g_autofree char *tag = sg_log_redact("secret-token");
    g_autofree char *none = sg_log_redact(NULL);

    ck_assert(g_str_has_prefix(tag, "tok:"));
    ck_assert_uint_eq(strlen(tag), 12);
    ck_assert_ptr_null(strstr(tag, "secret"));
    ck_assert_str_eq(none, "tok:-");
}
END_TEST

static Suite *
log_suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_log_time_utc);
    tcase_add_loop_test(tc, test_log_time_zone, 0, G_N_ELEMENTS(zones));
    tcase_add_test(tc, test_log_text_line);
    tcase_add_test(tc, test_log_text_escapes_controls);
    tcase_add_test(tc, test_log_json_line);
    tcase_add_test(tc, test_log_json_escapes);
    tcase_add_test(tc, test_log_json_fields);
    tcase_add_test(tc, test_log_session_fields);
    tcase_add_test(tc, test_log_once);
    tcase_add_test(tc, test_log_reopen);
    tcase_add_test(tc, test_log_open_file_fails);
    tcase_add_test(tc, test_log_redact);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(log_suite());
    int failed;

    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
