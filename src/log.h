/* SPDX-License-Identifier: Apache-2.0 */
/* log.h - spicegate's log writer, secret redaction and the lws log bridge.
 *
 * Every GLib log line of the process goes through one writer (sg_log_init()):
 * under systemd's journal (stderr is the stream $JOURNAL_STREAM names) text
 * lines go to the journal natively, with their structured fields and
 * without a timestamp, since the journal stamps each entry (or, should the
 * journal's socket be out of reach, as "<N>" prefixed lines on the stream,
 * still without one); anywhere else (a terminal, a pipe, --log-file) each
 * line starts with an ISO 8601 time with milliseconds and the zone offset.
 * [server] log_format = json writes one JSON object per line instead, with
 * its time, wherever stderr goes ("<N>" prefixed on the journal's stream).
 *
 * Console tokens are bearer secrets: they reach a log line only as the tag
 * that sg_log_redact() makes, never in full, at any level.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

#include "sg_types.h"

typedef enum {
    SG_LOG_TEXT = 0,
    SG_LOG_JSON,
} SgLogFormat;

/* "tok:" followed by the first 8 hex digits of SHA-256(@secret): enough to
 * correlate log lines, useless for opening a console. "tok:-" for NULL.
 * Newly allocated. */
char *sg_log_redact(const char *secret);

/* Sends libwebsockets' own errors and warnings to the GLib log; with
 * @verbose, its notices and info lines too (as debug messages). */
void sg_log_setup_lws(bool verbose);

/* Turns on debug messages for our domain (--debug). */
void sg_log_enable_debug(void);

/* Installs the writer for the whole process; call once, early, after
 * sg_log_open_file() if there is a log file. Lines start in text format. */
void sg_log_init(void);

/* The format of every later line. */
void sg_log_set_format(SgLogFormat format);

/* Opens @path for appending (created 0640) and makes it standard error,
 * so that anything else writing there (sanitizers, lws before its log
 * bridge) lands in it too. Remembers @path for sg_log_reopen(). */
gboolean sg_log_open_file(const char *path, GError **error);

/* SIGHUP: opens the log file's path again, so that after logrotate moved
 * the file away new lines go to a new file at the old name. On failure
 * logs a warning and keeps writing to the old file. A no-op without
 * --log-file. */
void sg_log_reopen(void);

/* With several workers, start-up and reload messages that every worker
 * would print alike (tokens loaded, logged in to Keystone) are written by
 * one process only: sg_message_once() and sg_warning_once() are dropped
 * while @quiet is set (in every worker but the first, and in the master
 * while it only probes the configuration). */
void sg_log_set_quiet_once(bool quiet);
bool sg_log_once_wanted(void);

#define sg_message_once(...)            \
    G_STMT_START                        \
    {                                   \
        if (sg_log_once_wanted())       \
            g_message(__VA_ARGS__);     \
    }                                   \
    G_STMT_END
#define sg_warning_once(...)            \
    G_STMT_START                        \
    {                                   \
        if (sg_log_once_wanted())       \
            g_warning(__VA_ARGS__);     \
    }                                   \
    G_STMT_END

/* What a session line says besides its message; NULL strings and a zero
 * session are left out. The fields reach the journal as SESSION=, CLIENT=,
 * ... and JSON lines as "session", "client", ... */
typedef struct {
    guint64 session;
    const char *event;            /* "open", "close", "refused" */
    const char *client;           /* the browser's "addr:port" */
    const char *token_tag;        /* sg_log_redact(), never a token */
    const char *target;           /* the SPICE server's "host:port" */
    const char *channel;          /* "main", "display", ... */
    const char *instance;         /* Nova's instance UUID */
    bool has_console;
    uint32_t console;             /* SPICE connection id, shared by a console's channels */
    const char *reason;           /* close or refusal reason */
    bool has_totals;              /* close: duration and bytes below */
    double duration_s;
    guint64 bytes_up;
    guint64 bytes_down;
} SgLogSession;

/* Logs one line about a session at @level: @format is the readable text
 * (it should start with "[s:N] "), @fields its structured form. */
void sg_log_session(GLogLevelFlags level, const SgLogSession *fields, const char *format, ...)
    G_GNUC_PRINTF(3, 4);

/* The writer's parts, exposed for the unit tests. */

/* Writes @real_us (microseconds since the epoch, g_get_real_time()) as
 * local time, "2026-12-07T01:02:03.456+00:00", into @out (at least
 * SG_LOG_TIME_BYTES bytes). */
#define SG_LOG_TIME_BYTES 40
void sg_log_format_time(gint64 real_us, char *out);

/* Appends to @out one line (with its '\n') for a log entry: @timestamp
 * (NULL: none) and @pid in front in text format, a JSON object in JSON
 * format. Text escapes control characters so that a line stays one line;
 * JSON escapes quotes, backslashes, control characters and invalid UTF-8. */
void sg_log_format_line(GString *out, SgLogFormat format, const char *timestamp, int pid,
                        GLogLevelFlags level, const GLogField *fields, gsize n_fields);
