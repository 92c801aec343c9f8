/* SPDX-License-Identifier: Apache-2.0 */
/* run_until.h - the unit tests' one way to wait: turn the default
 * GMainContext until a condition holds, under a deadline (never a sleep).
 * stub_http.c and ws_client.c wait through it. */
#pragma once

#include <glib.h>

/* Runs the default main context until @cond(@data) is true; fails the
 * running check test if @deadline_ms pass first. */
void test_run_until(gboolean (*cond)(gpointer data), gpointer data, guint deadline_ms);

/* Runs the default main context for @ms: for checking that something does
 * NOT happen within a while. */
void test_run_for(guint ms);
