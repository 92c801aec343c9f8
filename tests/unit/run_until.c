/* SPDX-License-Identifier: Apache-2.0 */
/* run_until.c - see run_until.h. */
#include "autoconfig.h"

#include <check.h>

#include "run_until.h"

static gboolean
on_deadline(gpointer data)
{
    *(gboolean *)data = TRUE;
    return G_SOURCE_REMOVE;
}

void
test_run_until(gboolean (*cond)(gpointer data), gpointer data, guint deadline_ms)
{
    gboolean expired = FALSE;
    guint id = g_timeout_add(deadline_ms, on_deadline, &expired);

    while (!cond(data) && !expired)
        g_main_context_iteration(NULL, TRUE);
    if (!expired)
        g_source_remove(id);
    ck_assert_msg(!expired, "condition not met within %u ms", deadline_ms);
}

void
test_run_for(guint ms)
{
    gboolean expired = FALSE;

    g_timeout_add(ms, on_deadline, &expired);
    while (!expired)
        g_main_context_iteration(NULL, TRUE);
}
