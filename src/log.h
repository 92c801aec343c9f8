/* SPDX-License-Identifier: Apache-2.0 */
/* log.h - logging helpers: secret redaction and the lws log bridge.
 *
 * spicegate logs through GLib (journald under systemd, stderr otherwise).
 * Console tokens are bearer secrets: they reach a log line only as the tag
 * that sg_log_redact() makes, never in full, at any level.
 */
#pragma once

#include <stdbool.h>

#include "sg_types.h"

/* "tok:" followed by the first 8 hex digits of SHA-256(@secret): enough to
 * correlate log lines, useless for opening a console. "tok:-" for NULL.
 * Newly allocated. */
char *sg_log_redact(const char *secret);

/* Sends libwebsockets' own errors and warnings to the GLib log; with
 * @verbose, its notices and info lines too (as debug messages). */
void sg_log_setup_lws(bool verbose);

/* Turns on debug messages for our domain (--debug). */
void sg_log_enable_debug(void);
