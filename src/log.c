/* SPDX-License-Identifier: Apache-2.0 */
/* log.c - the process's log writer, redaction of secrets and the
 * libwebsockets log bridge.
 *
 * Owns the writer's settings (format, journal or not, the --log-file path)
 * and lws' global log level. Every line is written with one write() on
 * standard error, so that workers appending to the same file never
 * interleave within a line. Must never format a token.
 */
#include "autoconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <glib.h>
#include <libwebsockets.h>

#include "log.h"

static SgLogFormat log_format = SG_LOG_TEXT;
static bool log_to_journal;       /* stderr is systemd's journal stream */
static char *log_path;            /* --log-file, for sg_log_reopen() */
static bool log_quiet_once;

char *
sg_log_redact(const char *secret)
{
    g_autofree char *digest = NULL;

    if (secret == NULL)
        return g_strdup("tok:-");
    digest = g_compute_checksum_for_string(G_CHECKSUM_SHA256, secret, -1);
    return g_strdup_printf("tok:%.8s", digest);
}

/* libwebsockets logs from inside loops that a fault can spin (accept()
 * failing with EMFILE logs once per wakeup: 27 MB of "accept: errno 24" in
 * 23 s). At most this many of its lines a second reach the log; then one
 * line says how many were dropped. */
#define SG_LWS_LINES_PER_SECOND 20

static struct {
    gint64 second;                /* monotonic second of the current window */
    guint lines;                  /* lines of lws in that second */
    guint dropped;                /* lines over the limit in that second */
} lws_budget;

/* Whether one more lws line may go out now; says what was dropped when a
 * new second begins. */
static bool
lws_line_allowed(void)
{
    gint64 now = g_get_monotonic_time() / G_USEC_PER_SEC;

    if (now != lws_budget.second) {
        if (lws_budget.dropped > 0)
            g_warning("lws: %u more line(s) dropped in one second (at most %d a second)",
                      lws_budget.dropped, SG_LWS_LINES_PER_SECOND);
        lws_budget.second = now;
        lws_budget.lines = 0;
        lws_budget.dropped = 0;
    }
    if (lws_budget.lines >= SG_LWS_LINES_PER_SECOND) {
        lws_budget.dropped++;
        return false;
    }
    lws_budget.lines++;
    return true;
}

static void
on_lws_log(int level, const char *line)
{
    g_autofree char *trimmed = NULL;

    if (!lws_line_allowed())
        return;
    trimmed = g_strchomp(g_strdup(line));
    /* lws prefixes its lines with a timestamp we do not need twice. */
    if (level & LLL_ERR)
        g_warning("lws: %s", trimmed);
    else if (level & LLL_WARN)
        g_message("lws: %s", trimmed);
    else
        g_debug("lws: %s", trimmed);
}

void
sg_log_setup_lws(bool verbose)
{
    int levels = LLL_ERR | LLL_WARN;

    /* lws' notice and info lines print request headers as they come
     * (HTTP/2 ones under 256 bytes, query and cookie included): console
     * tokens in full. --debug alone never turns them on; a developer who
     * wants them says so in the environment, knowing that. */
    if (verbose && g_strcmp0(g_getenv("SPICEGATE_LWS_DEBUG"), "1") == 0)
        levels |= LLL_NOTICE | LLL_INFO;
    lws_set_log_level(levels, on_lws_log);
}

void
sg_log_enable_debug(void)
{
    const char *current = g_getenv("G_MESSAGES_DEBUG");
    g_autofree char *domains = NULL;

    /* Only our own domain: GLib's and GIO's debug output would bury ours.
     * G_MESSAGES_DEBUG=all still shows everything. */
    if (current != NULL && current[0] != '\0')
        domains = g_strconcat(current, " ", G_LOG_DOMAIN, NULL);
    else
        domains = g_strdup(G_LOG_DOMAIN);
    g_setenv("G_MESSAGES_DEBUG", domains, TRUE);
}

/* --- formatting ------------------------------------------------------------ */

void
sg_log_format_time(gint64 real_us, char *out)
{
    time_t secs = (time_t)(real_us / G_USEC_PER_SEC);
    int ms = (int)((real_us % G_USEC_PER_SEC) / 1000);
    struct tm tm;
    long off;
    size_t n;

    if (localtime_r(&secs, &tm) == NULL) {
        g_strlcpy(out, "1970-01-01T00:00:00.000+00:00", SG_LOG_TIME_BYTES);
        return;
    }
    n = strftime(out, SG_LOG_TIME_BYTES, "%Y-%m-%dT%H:%M:%S", &tm);
    off = tm.tm_gmtoff / 60;
    g_snprintf(out + n, SG_LOG_TIME_BYTES - n, ".%03d%c%02ld:%02ld", ms, off < 0 ? '-' : '+',
               ABS(off) / 60, ABS(off) % 60);
}

static const char *
level_name(GLogLevelFlags level, bool upper)
{
    static const struct {
        GLogLevelFlags level;
        const char *upper, *lower;
    } names[] = {
        { G_LOG_LEVEL_ERROR, "ERROR", "error" },
        { G_LOG_LEVEL_CRITICAL, "CRITICAL", "critical" },
        { G_LOG_LEVEL_WARNING, "WARNING", "warning" },
        { G_LOG_LEVEL_MESSAGE, "MESSAGE", "message" },
        { G_LOG_LEVEL_INFO, "INFO", "info" },
        { G_LOG_LEVEL_DEBUG, "DEBUG", "debug" },
    };

    for (guint i = 0; i < G_N_ELEMENTS(names); i++) {
        if (level & names[i].level)
            return upper ? names[i].upper : names[i].lower;
    }
    return upper ? "LOG" : "log";
}

/* The syslog priority of @level, as GLib's journald writer maps it. */
static int
level_priority(GLogLevelFlags level)
{
    if (level & G_LOG_LEVEL_ERROR)
        return 3;
    if (level & G_LOG_LEVEL_CRITICAL)
        return 4;
    if (level & G_LOG_LEVEL_WARNING)
        return 4;
    if (level & G_LOG_LEVEL_MESSAGE)
        return 5;
    if (level & G_LOG_LEVEL_INFO)
        return 6;
    return 7;
}

/* One line stays one line: a peer's text with a newline in it cannot
 * forge a log line. */
static void
append_text_escaped(GString *out, const char *s, gssize len)
{
    gsize n = len < 0 ? strlen(s) : (gsize)len;

    for (gsize i = 0; i < n; i++) {
        guchar c = (guchar)s[i];

        if (c == '\n')
            g_string_append(out, "\\n");
        else if (c == '\r')
            g_string_append(out, "\\r");
        else if ((c < 0x20 && c != '\t') || c == 0x7f)
            g_string_append_printf(out, "\\x%02x", c);
        else
            g_string_append_c(out, (char)c);
    }
}

/* A JSON string body (RFC 8259): quotes, backslashes and control
 * characters escaped, bytes that are not UTF-8 replaced by U+FFFD, so that
 * every line is valid JSON whatever a peer put in it. */
static void
append_json_escaped(GString *out, const char *s, gssize len)
{
    gsize n = len < 0 ? strlen(s) : (gsize)len;
    gsize i = 0;

    while (i < n) {
        guchar c = (guchar)s[i];

        if (c >= 0x80) {
            gunichar u = g_utf8_get_char_validated(s + i, (gssize)(n - i));

            if (u == (gunichar)-1 || u == (gunichar)-2) {
                g_string_append(out, "\\ufffd");
                i++;
            } else {
                gsize clen = (gsize)(g_utf8_next_char(s + i) - (s + i));

                g_string_append_len(out, s + i, (gssize)clen);
                i += clen;
            }
            continue;
        }
        switch (c) {
        case '"':
            g_string_append(out, "\\\"");
            break;
        case '\\':
            g_string_append(out, "\\\\");
            break;
        case '\n':
            g_string_append(out, "\\n");
            break;
        case '\r':
            g_string_append(out, "\\r");
            break;
        case '\t':
            g_string_append(out, "\\t");
            break;
        default:
            if (c < 0x20 || c == 0x7f)
                g_string_append_printf(out, "\\u%04x", c);
            else
                g_string_append_c(out, (char)c);
            break;
        }
        i++;
    }
}

/* Fields the writer renders itself, or that only GLib cares about. */
static bool
field_is_internal(const char *key)
{
    return g_str_equal(key, "MESSAGE") || g_str_equal(key, "PRIORITY") ||
           g_str_has_prefix(key, "GLIB_") || g_str_has_prefix(key, "CODE_");
}

/* Fields written as JSON numbers (sg_log_session() formats them). */
static bool
field_is_number(const char *key, const char *value, gssize len)
{
    static const char *const numeric[] = {
        "SESSION", "CONSOLE", "DURATION", "BYTES_UP", "BYTES_DOWN",
    };
    gsize n = len < 0 ? strlen(value) : (gsize)len;
    bool known = false;

    for (guint i = 0; i < G_N_ELEMENTS(numeric); i++)
        known = known || g_str_equal(key, numeric[i]);
    if (!known || n == 0 || value[0] == '.')
        return false;
    for (gsize i = 0; i < n; i++) {
        if (!g_ascii_isdigit(value[i]) && value[i] != '.')
            return false;
    }
    return true;
}

void
sg_log_format_line(GString *out, SgLogFormat format, const char *timestamp, int pid,
                   GLogLevelFlags level, const GLogField *fields, gsize n_fields)
{
    const char *domain = NULL;
    const char *message = "";
    gssize message_len = -1;

    for (gsize i = 0; i < n_fields; i++) {
        if (g_str_equal(fields[i].key, "GLIB_DOMAIN") && fields[i].length < 0)
            domain = fields[i].value;
        else if (g_str_equal(fields[i].key, "MESSAGE")) {
            message = fields[i].value;
            message_len = fields[i].length;
        }
    }
    if (domain != NULL && g_str_equal(domain, G_LOG_DOMAIN))
        domain = NULL;            /* ours: not worth repeating on every line */

    if (format == SG_LOG_TEXT) {
        if (timestamp != NULL)
            g_string_append_printf(out, "%s ", timestamp);
        g_string_append_printf(out, "spicegate[%d] %s: ", pid, level_name(level, true));
        if (domain != NULL) {
            append_text_escaped(out, domain, -1);
            g_string_append(out, ": ");
        }
        append_text_escaped(out, message, message_len);
        g_string_append_c(out, '\n');
        return;
    }

    g_string_append_c(out, '{');
    if (timestamp != NULL)
        g_string_append_printf(out, "\"time\":\"%s\",", timestamp);
    g_string_append_printf(out, "\"level\":\"%s\",\"pid\":%d,", level_name(level, false), pid);
    if (domain != NULL) {
        g_string_append(out, "\"domain\":\"");
        append_json_escaped(out, domain, -1);
        g_string_append(out, "\",");
    }
    g_string_append(out, "\"message\":\"");
    append_json_escaped(out, message, message_len);
    g_string_append_c(out, '"');
    for (gsize i = 0; i < n_fields; i++) {
        const char *key = fields[i].key;
        const char *value = fields[i].value;

        if (field_is_internal(key) || value == NULL)
            continue;
        g_string_append(out, ",\"");
        for (const char *k = key; *k != '\0'; k++)
            g_string_append_c(out, g_ascii_tolower(*k));
        g_string_append(out, "\":");
        if (field_is_number(key, value, fields[i].length)) {
            g_string_append_len(out, value, fields[i].length);
            continue;
        }
        g_string_append_c(out, '"');
        append_json_escaped(out, value, fields[i].length);
        g_string_append_c(out, '"');
    }
    g_string_append(out, "}\n");
}

/* --- the writer ------------------------------------------------------------ */

static void
write_all(int fd, const char *data, gsize len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;               /* nowhere left to complain */
        data += n;
        len -= (gsize)n;
    }
}

static GLogWriterOutput
sg_log_writer(GLogLevelFlags level, const GLogField *fields, gsize n_fields, gpointer data)
{
    const char *domain = NULL;
    char timestamp[SG_LOG_TIME_BYTES];
    GString *line;

    for (gsize i = 0; i < n_fields; i++) {
        if (g_str_equal(fields[i].key, "GLIB_DOMAIN") && fields[i].length < 0)
            domain = fields[i].value;
    }
    /* G_MESSAGES_DEBUG (--debug) decides about debug and info lines. */
    if (g_log_writer_default_would_drop(level, domain))
        return G_LOG_WRITER_HANDLED;
    /* The journal keeps the fields and stamps the time itself. */
    if (log_to_journal && log_format == SG_LOG_TEXT &&
        g_log_writer_journald(level, fields, n_fields, data) == G_LOG_WRITER_HANDLED)
        return G_LOG_WRITER_HANDLED;

    line = g_string_sized_new(256);
    /* Lines on the journal's stream: journald reads the priority from a
     * "<N>" prefix and stamps the time itself (JSON keeps its "time"). */
    if (log_to_journal)
        g_string_append_printf(line, "<%d>", level_priority(level));
    sg_log_format_time(g_get_real_time(), timestamp);
    sg_log_format_line(line, log_format,
                       log_to_journal && log_format == SG_LOG_TEXT ? NULL : timestamp,
                       (int)getpid(), level, fields, n_fields);
    write_all(STDERR_FILENO, line->str, line->len);
    g_string_free(line, TRUE);
    return G_LOG_WRITER_HANDLED;
}

/* systemd's documented test (systemd.exec(5), $JOURNAL_STREAM): stderr is
 * the journal when its device and inode are the ones the variable names.
 * GLib's own test only knows a socket connected to journald's path. */
static bool
stderr_is_journal(void)
{
    const char *env = g_getenv("JOURNAL_STREAM");
    const char *colon = env ? strchr(env, ':') : NULL;
    struct stat st;
    guint64 dev, ino;

    if (colon != NULL && fstat(STDERR_FILENO, &st) == 0) {
        g_autofree char *dev_text = g_strndup(env, (gsize)(colon - env));

        if (g_ascii_string_to_unsigned(dev_text, 10, 0, G_MAXUINT64, &dev, NULL) &&
            g_ascii_string_to_unsigned(colon + 1, 10, 0, G_MAXUINT64, &ino, NULL) &&
            (guint64)st.st_dev == dev && (guint64)st.st_ino == ino)
            return true;
    }
    return g_log_writer_is_journald(STDERR_FILENO);
}

void
sg_log_init(void)
{
    log_to_journal = log_path == NULL && stderr_is_journal();
    g_log_set_writer_func(sg_log_writer, NULL, NULL);
}

void
sg_log_set_format(SgLogFormat format)
{
    log_format = format;
}

static gboolean
open_on_stderr(const char *path, GError **error)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    int saved;

    if (fd < 0) {
        saved = errno;
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(saved), "%s: %s", path,
                    g_strerror(saved));
        return FALSE;
    }
    /* dup2() swaps the file in atomically: a line is written to the old
     * file or to the new one, never lost. */
    if (fd != STDERR_FILENO && dup2(fd, STDERR_FILENO) < 0) {
        saved = errno;
        close(fd);
        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(saved), "%s: %s", path,
                    g_strerror(saved));
        return FALSE;
    }
    if (fd != STDERR_FILENO)
        close(fd);
    return TRUE;
}

gboolean
sg_log_open_file(const char *path, GError **error)
{
    if (!open_on_stderr(path, error))
        return FALSE;
    g_free(log_path);
    log_path = g_strdup(path);
    log_to_journal = false;
    return TRUE;
}

void
sg_log_reopen(void)
{
    g_autoptr(GError) error = NULL;

    if (log_path == NULL)
        return;
    if (!open_on_stderr(log_path, &error))
        g_warning("--log-file: cannot reopen %s; still writing to the old file", error->message);
}

void
sg_log_set_quiet_once(bool quiet)
{
    log_quiet_once = quiet;
}

bool
sg_log_once_wanted(void)
{
    return !log_quiet_once;
}

/* --- session lines ------------------------------------------------------------ */

void
sg_log_session(GLogLevelFlags level, const SgLogSession *f, const char *format, ...)
{
    char priority[4], session[24], console[16], duration[32], up[24], down[24];
    g_autofree char *message = NULL;
    GLogField fields[16];
    gsize n = 0;
    va_list args;

    /* Debug lines are the common case and mostly dropped: cost nothing
     * more than GLib would before the check. */
    if ((level & (G_LOG_LEVEL_DEBUG | G_LOG_LEVEL_INFO)) &&
        g_log_writer_default_would_drop(level, G_LOG_DOMAIN))
        return;
    va_start(args, format);
    message = g_strdup_vprintf(format, args);
    va_end(args);

#define ADD_FIELD(k, v)                                                   \
    G_STMT_START                                                          \
    {                                                                     \
        fields[n++] = (GLogField){ .key = (k), .value = (v), .length = -1 }; \
    }                                                                     \
    G_STMT_END
    g_snprintf(priority, sizeof(priority), "%d", level_priority(level));
    ADD_FIELD("PRIORITY", priority);
    ADD_FIELD("GLIB_DOMAIN", G_LOG_DOMAIN);
    ADD_FIELD("MESSAGE", message);
    if (f->session != 0) {
        g_snprintf(session, sizeof(session), "%" G_GUINT64_FORMAT, f->session);
        ADD_FIELD("SESSION", session);
    }
    if (f->event != NULL)
        ADD_FIELD("EVENT", f->event);
    if (f->client != NULL)
        ADD_FIELD("CLIENT", f->client);
    if (f->token_tag != NULL)
        ADD_FIELD("TOKEN_TAG", f->token_tag);
    if (f->target != NULL)
        ADD_FIELD("TARGET", f->target);
    if (f->channel != NULL)
        ADD_FIELD("CHANNEL", f->channel);
    if (f->has_console) {
        g_snprintf(console, sizeof(console), "%" G_GUINT32_FORMAT, f->console);
        ADD_FIELD("CONSOLE", console);
    }
    if (f->instance != NULL)
        ADD_FIELD("INSTANCE", f->instance);
    if (f->has_totals) {
        g_ascii_formatd(duration, sizeof(duration), "%.3f", f->duration_s);
        g_snprintf(up, sizeof(up), "%" G_GUINT64_FORMAT, f->bytes_up);
        g_snprintf(down, sizeof(down), "%" G_GUINT64_FORMAT, f->bytes_down);
        ADD_FIELD("DURATION", duration);
        ADD_FIELD("BYTES_UP", up);
        ADD_FIELD("BYTES_DOWN", down);
    }
    if (f->reason != NULL)
        ADD_FIELD("REASON", f->reason);
#undef ADD_FIELD
    g_assert(n <= G_N_ELEMENTS(fields));
    g_log_structured_array(level, fields, n);
}
