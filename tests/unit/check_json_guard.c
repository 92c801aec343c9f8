/* SPDX-License-Identifier: Apache-2.0 */
/* check_json_guard.c - unit tests for the bounds on service answers.
 *
 * The crash this guards against: about 100,000 nested '[' from Keystone or
 * Nova overflowed json-glib's stack (SIGSEGV, every console gone). Each
 * service parser must now refuse such input with an error, quickly.
 */
#include "autoconfig.h"

#include <string.h>

#include <check.h>
#include <glib.h>

#include "json_guard.h"
#include "keystone.h"
#include "token.h"
#include "token_nova.h"

static char *
nested(const char *open, const char *inner, const char *close, guint levels)
{
    GString *s = g_string_new(NULL);

    for (guint i = 0; i < levels; i++)
        g_string_append(s, open);
    g_string_append(s, inner);
    for (guint i = 0; i < levels; i++)
        g_string_append(s, close);
    return g_string_free(s, FALSE);
}

START_TEST(test_depth_counts_structure_not_strings)
{
    static const struct {
        const char *text;
        guint depth;
    } cases[] = {
        { "", 0 },
        { "1", 0 },
        { "[]", 1 },
        { "{\"a\": [1, {\"b\": []}]}", 4 },
        { "[[], [], []]", 2 },
        { "\"[[[[\"", 0 },                         /* brackets inside a string */
        { "[\"\\\"[[[\"]", 1 },                    /* an escaped quote does not end it */
        { "[\"\\\\\", [[]]]", 3 },                 /* an escaped backslash does */
        { "]]]][", 1 },                            /* stray closers do not go negative */
    };

    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++)
        ck_assert_msg(sg_json_nesting_depth(cases[i].text, strlen(cases[i].text), 100) ==
                          cases[i].depth,
                      "depth of %s", cases[i].text);
}
END_TEST

START_TEST(test_limit_is_inclusive)
{
    g_autofree char *at = nested("[", "1", "]", SG_JSON_MAX_DEPTH);
    g_autofree char *over = nested("{\"a\":", "1", "}", SG_JSON_MAX_DEPTH + 1);
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autoptr(GError) error = NULL;

    ck_assert(sg_json_load_bounded(parser, at, strlen(at), &error));
    ck_assert(!sg_json_load_bounded(parser, over, strlen(over), &error));
    ck_assert(g_error_matches(error, SG_JSON_GUARD_ERROR, SG_JSON_GUARD_ERROR_TOO_DEEP));
}
END_TEST

START_TEST(test_size_limit)
{
    gsize len = SG_JSON_MAX_BYTES + 1;
    g_autofree char *big = g_malloc(len);
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autoptr(GError) error = NULL;

    memset(big, ' ', len);
    big[0] = '1';
    ck_assert(!sg_json_load_bounded(parser, big, len, &error));
    ck_assert(g_error_matches(error, SG_JSON_GUARD_ERROR, SG_JSON_GUARD_ERROR_TOO_LARGE));
}
END_TEST

/* The crash input, through each service parser that reads it. */
START_TEST(test_service_parsers_refuse_deep_nesting)
{
    g_autofree char *deep = nested("[", "", "]", 100000);
    g_autofree char *deep_obj = nested("{\"token\":", "{}", "}", 100000);
    g_autoptr(GError) error = NULL;
    g_autoptr(SgConsoleTarget) tgt = NULL;
    g_autofree char *url = NULL;
    gint64 expires = 0;

    ck_assert(!sg_token_nova_parse_reply(deep, strlen(deep), &tgt, &error));
    ck_assert_ptr_null(tgt);
    ck_assert_msg(strstr(error->message, "nested deeper") != NULL, "%s", error->message);
    g_clear_error(&error);
    ck_assert(!sg_keystone_parse_token(deep_obj, strlen(deep_obj), "internal", NULL, &expires,
                                       &url, &error));
    ck_assert_msg(strstr(error->message, "nested deeper") != NULL, "%s", error->message);
}
END_TEST

static Suite *
json_guard_suite(void)
{
    Suite *s = suite_create("json_guard");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_depth_counts_structure_not_strings);
    tcase_add_test(tc, test_limit_is_inclusive);
    tcase_add_test(tc, test_size_limit);
    tcase_add_test(tc, test_service_parsers_refuse_deep_nesting);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(json_guard_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
