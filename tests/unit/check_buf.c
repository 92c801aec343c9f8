/* SPDX-License-Identifier: Apache-2.0 */
/* check_buf.c - the bounded relay buffer: bounds, compaction, lazy memory. */
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <glib.h>

#include "buf.h"

START_TEST(test_buf_append_stops_at_capacity)
{
    g_autoptr(SgBuf) buf = sg_buf_new(10);
    guint8 data[16];

    memset(data, 'x', sizeof(data));
    ck_assert_uint_eq(sg_buf_append(buf, data, 4), 4);
    ck_assert_uint_eq(sg_buf_append(buf, data, 16), 6);
    ck_assert_uint_eq(sg_buf_len(buf), 10);
    ck_assert_uint_eq(sg_buf_space(buf), 0);
    ck_assert_uint_eq(sg_buf_append(buf, data, 1), 0);
    {
        gsize avail = 99;

        ck_assert_ptr_null(sg_buf_reserve(buf, &avail));
        ck_assert_uint_eq(avail, 0);
    }
}
END_TEST

START_TEST(test_buf_keeps_order_across_compaction)
{
    g_autoptr(SgBuf) buf = sg_buf_new(8);
    const guint8 first[] = "abcdefgh";
    const guint8 second[] = "ijkl";

    ck_assert_uint_eq(sg_buf_append(buf, first, 8), 8);
    sg_buf_consume(buf, 5);                        /* "fgh" left at the end */
    ck_assert_uint_eq(sg_buf_append(buf, second, 4), 4);   /* forces a compaction */
    ck_assert_uint_eq(sg_buf_len(buf), 7);
    ck_assert_int_eq(memcmp(sg_buf_data(buf), "fghijkl", 7), 0);
}
END_TEST

START_TEST(test_buf_releases_memory_when_drained)
{
    g_autoptr(SgBuf) buf = sg_buf_new(4096);
    const guint8 data[] = "hello";
    guint8 *p;

    ck_assert(sg_buf_is_empty(buf));
    sg_buf_append(buf, data, 5);
    p = sg_buf_data(buf);
    ck_assert_int_eq(memcmp(p, "hello", 5), 0);
    sg_buf_consume(buf, 5);
    ck_assert(sg_buf_is_empty(buf));
    ck_assert_uint_eq(sg_buf_space(buf), 4096);
    /* Reusable after release. */
    ck_assert_uint_eq(sg_buf_append(buf, data, 5), 5);
    ck_assert_int_eq(memcmp(sg_buf_data(buf), "hello", 5), 0);
}
END_TEST

START_TEST(test_buf_reserve_commit)
{
    g_autoptr(SgBuf) buf = sg_buf_new(16);
    gsize avail = 0;
    guint8 *p = sg_buf_reserve(buf, &avail);

    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(avail, 16);
    memcpy(p, "0123456789", 10);
    sg_buf_commit(buf, 10);
    ck_assert_uint_eq(sg_buf_len(buf), 10);
    p = sg_buf_reserve(buf, &avail);
    ck_assert_uint_eq(avail, 6);
    sg_buf_consume(buf, 10);
    ck_assert(sg_buf_is_empty(buf));
}
END_TEST

START_TEST(test_buf_free_null_is_noop)
{
    sg_buf_free(NULL);
}
END_TEST

static Suite *
buf_suite(void)
{
    Suite *s = suite_create("buf");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_buf_append_stops_at_capacity);
    tcase_add_test(tc, test_buf_keeps_order_across_compaction);
    tcase_add_test(tc, test_buf_releases_memory_when_drained);
    tcase_add_test(tc, test_buf_reserve_commit);
    tcase_add_test(tc, test_buf_free_null_is_noop);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(buf_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
