/* SPDX-License-Identifier: Apache-2.0 */
/* metrics.c - Prometheus text exposition of the shared zone's counters.
 *
 * Owns nothing: it formats what it is given. Must not read the zone or
 * the hub itself (admin.c does, once per scrape), so that it stays a pure
 * function the unit tests hold to `promtool check metrics`' rules: one
 * HELP and one TYPE per family, counters named *_total, cumulative
 * histogram buckets ending in le="+Inf" equal to _count, escaped label
 * values.
 */
#include "autoconfig.h"

#include <glib.h>

#include "close_code.h"
#include "metrics.h"

typedef struct {
    const char *name;             /* the enum's, lower case: "bad_token" */
    guint code;
    const char *text;
} CloseInfo;

#define SG_METRICS_CLOSE_ENTRY(name, code, text) { #name, code, text },
static const CloseInfo close_infos[SG_CLOSE_REASONS] = { SG_CLOSE_CODES(SG_METRICS_CLOSE_ENTRY) };
#undef SG_METRICS_CLOSE_ENTRY

/* A label value: backslash, double quote and line feed escaped. */
static void
append_label_value(GString *out, const char *value)
{
    for (const char *p = value; *p != '\0'; p++) {
        if (*p == '\\')
            g_string_append(out, "\\\\");
        else if (*p == '"')
            g_string_append(out, "\\\"");
        else if (*p == '\n')
            g_string_append(out, "\\n");
        else
            g_string_append_c(out, *p);
    }
}

static void
family(GString *out, const char *name, const char *type, const char *help)
{
    g_string_append_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* name{reason="bad_token",code="4404",text="..."} value, for each reason. */
static void
by_reason(GString *out, const char *name, const guint64 *values)
{
    for (guint r = 0; r < SG_CLOSE_REASONS; r++) {
        g_autofree char *lower = g_ascii_strdown(close_infos[r].name, -1);

        g_string_append_printf(out, "%s{reason=\"%s\",code=\"%u\",text=\"", name, lower,
                               close_infos[r].code);
        append_label_value(out, close_infos[r].text);
        g_string_append_printf(out, "\"} %" G_GUINT64_FORMAT "\n", values[r]);
    }
}

/* Seconds from microseconds, exactly enough for Prometheus' floats. */
static void
append_seconds(GString *out, guint64 us)
{
    g_string_append_printf(out, "%" G_GUINT64_FORMAT ".%06" G_GUINT64_FORMAT, us / 1000000,
                           us % 1000000);
}

static void
histograms(GString *out, const SgZoneStats *st)
{
    const char *name = "spicegate_backend_request_duration_seconds";

    family(out, name, "histogram",
           "Time from the start of a request to Keystone or Nova to its answer or failure.");
    for (guint s = 0; s < SG_ZONE_SERVICES; s++) {
        guint64 cumulative = 0;

        for (guint b = 0; b <= SG_ZONE_LATENCY_BUCKETS; b++) {
            cumulative += st->latency_bucket[s][b];
            g_string_append_printf(out, "%s_bucket{service=\"%s\",le=\"", name,
                                   sg_zone_service_names[s]);
            if (b < SG_ZONE_LATENCY_BUCKETS) {
                char le[G_ASCII_DTOSTR_BUF_SIZE];

                /* "0.005", "2.5", "10": Prometheus' own bucket spelling. */
                g_string_append(out, g_ascii_formatd(le, sizeof(le), "%g",
                                                     sg_zone_latency_bounds_us[b] / 1e6));
            } else
                g_string_append(out, "+Inf");
            g_string_append_printf(out, "\"} %" G_GUINT64_FORMAT "\n", cumulative);
        }
        g_string_append_printf(out, "%s_sum{service=\"%s\"} ", name, sg_zone_service_names[s]);
        append_seconds(out, st->latency_sum_us[s]);
        g_string_append_printf(out, "\n%s_count{service=\"%s\"} %" G_GUINT64_FORMAT "\n", name,
                               sg_zone_service_names[s], cumulative);
    }
}

char *
sg_metrics_render(const SgZoneStats *st, const SgMetricsInfo *info)
{
    GString *out = g_string_sized_new(8192);

    family(out, "spicegate_build_info", "gauge", "Always 1; the version is a label.");
    g_string_append(out, "spicegate_build_info{version=\"");
    append_label_value(out, info->version);
    g_string_append(out, "\"} 1\n");

    family(out, "process_start_time_seconds", "gauge",
           "When spicegate started, in seconds since the Unix epoch.");
    g_string_append(out, "process_start_time_seconds ");
    append_seconds(out, (guint64)MAX(info->start_time_us, 0));
    g_string_append_c(out, '\n');

    family(out, "spicegate_workers", "gauge", "Processes serving consoles.");
    g_string_append_printf(out, "spicegate_workers %u\n", info->workers);

    /* Every console has exactly one main channel: its websocket stands for
     * the console, wherever the console's other channels are. */
    family(out, "spicegate_consoles_open", "gauge",
           "Consoles in use now: their main channel is relaying.");
    g_string_append_printf(out, "spicegate_consoles_open %" G_GUINT64_FORMAT "\n",
                           st->open_channel[sg_zone_channel_index("main")]);

    family(out, "spicegate_websockets_open", "gauge",
           "Websockets relaying now (link passed, not yet closed), by SPICE channel type.");
    for (guint c = 0; c < SG_ZONE_CHANNELS; c++)
        g_string_append_printf(out, "spicegate_websockets_open{channel=\"%s\"} %" G_GUINT64_FORMAT
                               "\n", sg_zone_channel_names[c], st->open_channel[c]);

    family(out, "spicegate_sessions_opened_total", "counter",
           "Websockets that started relaying (both ends up, SPICE link passed).");
    g_string_append_printf(out, "spicegate_sessions_opened_total %" G_GUINT64_FORMAT "\n",
                           st->opened);

    family(out, "spicegate_sessions_closed_total", "counter",
           "Websockets that had opened and ended, by close reason and code.");
    by_reason(out, "spicegate_sessions_closed_total", st->ended);

    family(out, "spicegate_refusals_total", "counter",
           "Websockets closed before they opened (token, origin, limits, link, connect), by "
           "close reason and code.");
    by_reason(out, "spicegate_refusals_total", st->refused);

    family(out, "spicegate_sessions_lost_total", "counter",
           "Websockets open in a worker that died.");
    g_string_append_printf(out, "spicegate_sessions_lost_total %" G_GUINT64_FORMAT "\n",
                           st->lost);

    family(out, "spicegate_session_bytes_total", "counter",
           "Bytes relayed by websockets that have ended, up (browser to SPICE server) and "
           "down; GET /consoles shows the open ones' bytes.");
    g_string_append_printf(out, "spicegate_session_bytes_total{direction=\"up\"} %"
                           G_GUINT64_FORMAT "\n", st->bytes_up);
    g_string_append_printf(out, "spicegate_session_bytes_total{direction=\"down\"} %"
                           G_GUINT64_FORMAT "\n", st->bytes_down);

    family(out, "spicegate_token_lookups_total", "counter",
           "Console token checks answered, by backend and result.");
    for (guint b = 0; b < SG_ZONE_BACKENDS; b++) {
        for (guint r = 0; r < SG_ZONE_LOOKUP_RESULTS; r++)
            g_string_append_printf(out, "spicegate_token_lookups_total{backend=\"%s\","
                                   "result=\"%s\"} %" G_GUINT64_FORMAT "\n",
                                   sg_zone_backend_names[b], sg_zone_lookup_result_names[r],
                                   st->lookups[b][r]);
    }

    histograms(out, st);
    return g_string_free(out, FALSE);
}
