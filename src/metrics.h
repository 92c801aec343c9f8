/* SPDX-License-Identifier: Apache-2.0 */
/* metrics.h - the shared zone's counters as Prometheus' text format.
 *
 * A pure function of an SgZoneStats (what sg_zone_read() summed over
 * every worker) and a few facts about the process: the admin API's
 * GET /metrics (admin.c) sends what it returns. Label sets come from the
 * tables they describe (SG_CLOSE_CODES, the zone's channel, backend and
 * service names), so a new close code or channel shows without an edit
 * here.
 */
#pragma once

#include <glib.h>

#include "shared_zone.h"

typedef struct {
    const char *version;          /* spicegate_build_info's label */
    gint64 start_time_us;         /* g_get_real_time() when the process started */
    guint workers;                /* processes serving (1 for the only one) */
} SgMetricsInfo;

/* The exposition (text format 0.0.4), every family with HELP and TYPE;
 * newly allocated. */
char *sg_metrics_render(const SgZoneStats *st, const SgMetricsInfo *info);

/* The Content-Type that goes with it. */
#define SG_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
