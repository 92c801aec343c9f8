/* SPDX-License-Identifier: Apache-2.0 */
/* check_metrics.c - unit tests for the Prometheus text of metrics.c and
 * the zone counters that feed it (shared_zone.c). `promtool check
 * metrics` runs on the real daemon's output in tests/integ/test_admin.py;
 * here each rule it checks is held on a known SgZoneStats. */
#include "autoconfig.h"

#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <glib.h>

#include "metrics.h"
#include "shared_zone.h"

static const SgMetricsInfo info = {
    .version = "1.2\"3", .start_time_us = 1700000000123456, .workers = 2,
};

static char *
render_zone(SgZone *zone)
{
    SgZoneStats st;

    sg_zone_read(zone, &st);
    return sg_metrics_render(&st, &info);
}

/* The value of the sample line that starts with @prefix (name and
 * labels), or -1. */
static double
sample(const char *text, const char *prefix)
{
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);

    for (guint i = 0; lines[i] != NULL; i++) {
        if (g_str_has_prefix(lines[i], prefix) && lines[i][strlen(prefix)] == ' ')
            return g_ascii_strtod(lines[i] + strlen(prefix) + 1, NULL);
    }
    return -1;
}

START_TEST(test_metrics_counts)
{
    g_autoptr(SgZone) zone = sg_zone_new(2, 0, 0, NULL);
    g_autofree char *text = NULL;

    /* Worker 0: two consoles' main channels and a display open, one
     * display closed by the browser; worker 1: a refusal for a bad token
     * and an administrator's close. */
    for (int i = 0; i < 3; i++) {
        sg_zone_note_opened(zone, 0);
        sg_zone_note_channel(zone, 0, i < 2 ? "main" : "display", true);
    }
    sg_zone_note_opened(zone, 0);
    sg_zone_note_channel(zone, 0, "display", true);
    sg_zone_note_bytes(zone, 0, 100, 2000);
    sg_zone_note_closed(zone, 0, SG_CLOSE_CLIENT_CLOSED, true);
    sg_zone_note_channel(zone, 0, "display", false);
    sg_zone_note_closed(zone, 1, SG_CLOSE_BAD_TOKEN, false);
    sg_zone_note_opened(zone, 1);
    sg_zone_note_channel(zone, 1, "weird", true);
    sg_zone_note_closed(zone, 1, SG_CLOSE_ADMIN, true);
    sg_zone_note_channel(zone, 1, "weird", false);
    sg_zone_note_lookup_in(zone, 0, SG_ZONE_BACKEND_FILE, SG_ZONE_LOOKUP_OK);
    sg_zone_note_lookup_in(zone, 1, SG_ZONE_BACKEND_FILE, SG_ZONE_LOOKUP_UNKNOWN);

    text = render_zone(zone);
    ck_assert_double_eq(sample(text, "spicegate_consoles_open"), 2);
    ck_assert_double_eq(sample(text, "spicegate_websockets_open{channel=\"main\"}"), 2);
    ck_assert_double_eq(sample(text, "spicegate_websockets_open{channel=\"display\"}"), 1);
    ck_assert_double_eq(sample(text, "spicegate_websockets_open{channel=\"unknown\"}"), 0);
    ck_assert_double_eq(sample(text, "spicegate_sessions_opened_total"), 5);
    ck_assert_double_eq(sample(text, "spicegate_sessions_closed_total{reason=\"client_closed\","
                                     "code=\"1000\",text=\"browser closed\"}"), 1);
    ck_assert_double_eq(sample(text, "spicegate_sessions_closed_total{reason=\"admin\","
                                     "code=\"4409\",text=\"closed by an administrator\"}"), 1);
    /* A refusal is not a closed session, and the other way round. */
    ck_assert_double_eq(sample(text, "spicegate_sessions_closed_total{reason=\"bad_token\","
                                     "code=\"4404\",text=\"console token invalid or expired\"}"),
                        0);
    ck_assert_double_eq(sample(text, "spicegate_refusals_total{reason=\"bad_token\","
                                     "code=\"4404\",text=\"console token invalid or expired\"}"),
                        1);
    ck_assert_double_eq(sample(text, "spicegate_refusals_total{reason=\"admin\","
                                     "code=\"4409\",text=\"closed by an administrator\"}"), 0);
    ck_assert_double_eq(sample(text, "spicegate_session_bytes_total{direction=\"up\"}"), 100);
    ck_assert_double_eq(sample(text, "spicegate_session_bytes_total{direction=\"down\"}"), 2000);
    ck_assert_double_eq(sample(text, "spicegate_token_lookups_total{backend=\"file\","
                                     "result=\"ok\"}"), 1);
    ck_assert_double_eq(sample(text, "spicegate_token_lookups_total{backend=\"file\","
                                     "result=\"unknown\"}"), 1);
    ck_assert_double_eq(sample(text, "spicegate_token_lookups_total{backend=\"nova\","
                                     "result=\"ok\"}"), 0);
    ck_assert_double_eq(sample(text, "spicegate_workers"), 2);
    ck_assert_double_eq(sample(text, "process_start_time_seconds"), 1700000000.123456);
    /* Label values escaped: the version's quote. */
    ck_assert_ptr_nonnull(strstr(text, "spicegate_build_info{version=\"1.2\\\"3\"} 1\n"));
}
END_TEST

START_TEST(test_metrics_histogram)
{
    g_autoptr(SgZone) zone = sg_zone_new(1, 0, 0, NULL);
    g_autofree char *text = NULL;
    const char *b = "spicegate_backend_request_duration_seconds";
    g_autofree char *le5ms = g_strdup_printf("%s_bucket{service=\"nova\",le=\"0.005\"}", b);
    g_autofree char *le1s = g_strdup_printf("%s_bucket{service=\"nova\",le=\"1\"}", b);
    g_autofree char *le10s = g_strdup_printf("%s_bucket{service=\"nova\",le=\"10\"}", b);
    g_autofree char *inf = g_strdup_printf("%s_bucket{service=\"nova\",le=\"+Inf\"}", b);
    g_autofree char *sum = g_strdup_printf("%s_sum{service=\"nova\"}", b);
    g_autofree char *count = g_strdup_printf("%s_count{service=\"nova\"}", b);
    g_autofree char *ks = g_strdup_printf("%s_count{service=\"keystone\"}", b);

    /* Exactly on a bound counts in that bucket (le is "less or equal"). */
    sg_zone_note_latency_in(zone, 0, SG_ZONE_SVC_NOVA, 5000);
    sg_zone_note_latency_in(zone, 0, SG_ZONE_SVC_NOVA, 5001);
    sg_zone_note_latency_in(zone, 0, SG_ZONE_SVC_NOVA, 800000);
    sg_zone_note_latency_in(zone, 0, SG_ZONE_SVC_NOVA, 60000000);
    sg_zone_note_latency_in(zone, 0, SG_ZONE_SVC_NOVA, -3);
    text = render_zone(zone);
    ck_assert_double_eq(sample(text, le5ms), 2);
    ck_assert_double_eq(sample(text, le1s), 4);
    ck_assert_double_eq(sample(text, le10s), 4);
    ck_assert_double_eq(sample(text, inf), 5);
    ck_assert_double_eq(sample(text, count), 5);
    ck_assert_double_eq_tol(sample(text, sum), 60.810001, 1e-9);
    ck_assert_double_eq(sample(text, ks), 0);
}
END_TEST

/* promtool's structural rules: every family once, HELP before TYPE before
 * its samples, every sample of a declared family, counters *_total. */
START_TEST(test_metrics_format)
{
    g_autoptr(SgZone) zone = sg_zone_new(1, 0, 0, NULL);
    g_autofree char *text = render_zone(zone);
    g_auto(GStrv) lines = g_strsplit(text, "\n", -1);
    g_autoptr(GHashTable) types = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    g_autofree char *family = NULL;
    guint n = g_strv_length(lines);

    ck_assert(g_str_has_suffix(text, "\n"));
    ck_assert_str_eq(lines[n - 1], "");
    for (guint i = 0; i + 1 < n; i++) {
        const char *l = lines[i];

        if (g_str_has_prefix(l, "# HELP ")) {
            g_auto(GStrv) w = g_strsplit(l, " ", 4);

            ck_assert_ptr_null(g_hash_table_lookup(types, w[2]));
            ck_assert(g_str_has_prefix(lines[i + 1], "# TYPE "));
            g_free(family);
            family = g_strdup(w[2]);
        } else if (g_str_has_prefix(l, "# TYPE ")) {
            g_auto(GStrv) w = g_strsplit(l, " ", 4);

            ck_assert_str_eq(w[2], family);
            g_hash_table_insert(types, g_strdup(w[2]), g_strdup(w[3]));
            if (g_str_equal(w[3], "counter"))
                ck_assert(g_str_has_suffix(w[2], "_total"));
        } else {
            gsize name_len = strcspn(l, "{ ");
            g_autofree char *name = g_strndup(l, name_len);

            ck_assert_msg(g_str_equal(name, family) ||
                              (g_str_has_prefix(name, family) &&
                               (g_str_equal(name + strlen(family), "_bucket") ||
                                g_str_equal(name + strlen(family), "_sum") ||
                                g_str_equal(name + strlen(family), "_count"))),
                          "sample %s outside its family %s", l, family);
            ck_assert_ptr_nonnull(strchr(l, ' '));
        }
    }
    ck_assert_str_eq(g_hash_table_lookup(types, "spicegate_backend_request_duration_seconds"),
                     "histogram");
    /* Every close reason is a label value, each once per family. */
    ck_assert_ptr_nonnull(strstr(text, "spicegate_refusals_total{reason=\"origin\",code=\"4403\""));
    ck_assert_ptr_nonnull(strstr(text, "spicegate_refusals_total{reason=\"token_refused\","
                                       "code=\"4403\""));
    ck_assert_ptr_nonnull(strstr(text, "spicegate_refusals_total{reason=\"channel_refused\","
                                       "code=\"4403\",text=\"SPICE channel not allowed here\"}"));
}
END_TEST

START_TEST(test_metrics_retire_keeps_counters_drops_gauges)
{
    g_autoptr(SgZone) zone = sg_zone_new(2, 0, 0, NULL);
    SgZoneStats st;

    sg_zone_note_opened(zone, 1);
    sg_zone_note_channel(zone, 1, "main", true);
    sg_zone_note_lookup_in(zone, 1, SG_ZONE_BACKEND_NOVA, SG_ZONE_LOOKUP_UNAVAILABLE);
    sg_zone_note_latency_in(zone, 1, SG_ZONE_SVC_KEYSTONE, 30000);
    sg_zone_retire(zone, 1);
    sg_zone_read(zone, &st);
    ck_assert_uint_eq(st.open, 0);
    ck_assert_uint_eq(st.open_channel[sg_zone_channel_index("main")], 0);
    ck_assert_uint_eq(st.lost, 1);
    ck_assert_uint_eq(st.opened, 1);
    ck_assert_uint_eq(st.lookups[SG_ZONE_BACKEND_NOVA][SG_ZONE_LOOKUP_UNAVAILABLE], 1);
    ck_assert_uint_eq(st.latency_sum_us[SG_ZONE_SVC_KEYSTONE], 30000);
}
END_TEST

START_TEST(test_metrics_current_slot)
{
    g_autoptr(SgZone) zone = sg_zone_new(2, 0, 0, NULL);
    SgZoneStats st;

    /* No slot yet: notes go nowhere (and do not crash). */
    sg_zone_note_lookup("file", SG_ZONE_LOOKUP_OK);
    sg_zone_set_current(zone, 1);
    sg_zone_note_lookup("file", SG_ZONE_LOOKUP_OK);
    sg_zone_note_lookup("nova", SG_ZONE_LOOKUP_REFUSED);
    sg_zone_note_lookup("other", SG_ZONE_LOOKUP_OK);
    sg_zone_note_latency(SG_ZONE_SVC_NOVA, 1);
    sg_zone_set_current(NULL, 0);
    sg_zone_read_worker(zone, 1, &st);
    ck_assert_uint_eq(st.lookups[SG_ZONE_BACKEND_FILE][SG_ZONE_LOOKUP_OK], 1);
    ck_assert_uint_eq(st.lookups[SG_ZONE_BACKEND_NOVA][SG_ZONE_LOOKUP_REFUSED], 1);
    ck_assert_uint_eq(st.latency_bucket[SG_ZONE_SVC_NOVA][0], 1);
}
END_TEST

static Suite *
metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_metrics_counts);
    tcase_add_test(tc, test_metrics_histogram);
    tcase_add_test(tc, test_metrics_format);
    tcase_add_test(tc, test_metrics_retire_keeps_counters_drops_gauges);
    tcase_add_test(tc, test_metrics_current_slot);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(metrics_suite());
    int failed;

    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
