/* SPDX-License-Identifier: Apache-2.0 */
/* token_file.c - the static token backend (websockify's TokenFile format).
 *
 * Owns a table from console token to SgConsoleTarget per file, read from
 * one file or from every regular file of a directory, at start and on
 * reload (SIGHUP), never per lookup, and their merge that lookups use. A
 * file is taken whole or not at all (see token_file.h). Lookups are answered from the table at once, which
 * token.c turns into an answer from the main loop. Tokens are secrets: they
 * reach a log only as sg_log_redact()'s tag, and their bytes are wiped
 * before the memory holding them is freed.
 *
 * What a line may be (websockify splits `TOKEN: TARGET` on the regex `:\s`,
 * then TARGET on its last ':'; we accept a stricter subset of its lines,
 * and check them here rather than at connect time):
 *
 *   line    = blank | comment | mapping        (surrounding whitespace and
 *   comment = "#" anything                      a CR before the LF ignored)
 *   mapping = TOKEN ":" 1*WSP TARGET [1*WSP "tls-port=" PORT]
 *   TOKEN   = everything before the first ':' that is followed by
 *             whitespace; 1..SG_TOKEN_MAX_BYTES bytes, no whitespace, no
 *             control characters (so "a:b: host:1" has the token "a:b")
 *   TARGET  = HOST ":" PORT | "[" IPV6 "]" ":" PORT, no whitespace at all
 *             (so no trailing comment: websockify has none either)
 *   tls-port= the SPICE server's TLS port ([spice] tls); spicegate's own
 *             addition: websockify, which cannot speak TLS to a SPICE
 *             server, refuses such a line, and a line without it is
 *             websockify's. With [spice] tls = always, a line without it
 *             names the TLS port in PORT.
 *   HOST    = 1..253 of [A-Za-z0-9.-_]      (name or IPv4 address)
 *   IPV6    = an IPv6 address, optionally with a %zone; brackets required
 *   PORT    = decimal digits only, 1..65535
 *
 * Refused, each with its own reason: "tok:host:5900" (no ": ", websockify
 * also refuses it), "tok: fe80::1:5900" (an unbracketed IPv6 address is
 * ambiguous), "tok: host:5900 # x" (trailing text), ports 0, 65536, "59a",
 * "+1" or missing, "tls-port" twice, without "=PORT", or any other word
 * after the target.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <glib.h>

#include "admission.h"
#include "log.h"
#include "token_file.h"

/* The one option a line may have after its target. */
#define SG_TLS_PORT_OPTION "tls-port="

/* 253: the longest DNS name; anything longer cannot resolve. */
#define SG_TOKEN_FILE_HOST_MAX_BYTES 253
/* Bad lines logged per file; past this the file is garbage (a binary
 * swapped in), and the rest is one count rather than a flood. */
#define SG_TOKEN_FILE_MAX_LOGGED_BAD_LINES 1000

typedef struct {
    SgTokenBackend parent;
    char *path;
    GHashTable *files;     /* file -> its table: token (wiped on removal) -> SgConsoleTarget */
    GHashTable *targets;   /* what lookups use: every file's, merged; borrowed from files */
} SgTokenFile;

static const SgTokenBackendVtable token_file_vtable;

/* Tokens are bearer secrets: leave no copy of one in freed heap. */
static void
wipe_free(gpointer data)
{
    char *secret = data;

    if (secret == NULL)
        return;
    explicit_bzero(secret, strlen(secret));
    g_free(secret);
}

static bool
is_host_char(char c)
{
    return g_ascii_isalnum(c) || c == '.' || c == '-' || c == '_';
}

/* @s..@end is "[v6]" with the brackets already removed. */
static bool
is_ipv6_literal(const char *s, const char *end)
{
    g_autofree char *addr = g_strndup(s, end - s);
    const char *zone = strchr(addr, '%');

    if (strchr(addr, ':') == NULL)
        return false;          /* "[1.2.3.4]" or "[host]": not IPv6 */
    if (zone != NULL) {
        if (zone[1] == '\0')
            return false;
        for (const char *p = zone + 1; *p != '\0'; p++) {
            if (!is_host_char(*p))
                return false;
        }
    }
    return g_hostname_is_ip_address(addr);
}

/* Decimal 1..65535, digits only: no sign, no spaces, no hex. */
static bool
parse_port(const char *s, const char *end, uint16_t *port, const char **reason)
{
    guint value = 0;

    if (s == end) {
        *reason = "missing port after ':'";
        return false;
    }
    for (const char *p = s; p < end; p++) {
        if (!g_ascii_isdigit(*p)) {
            *reason = "port is not a decimal number";
            return false;
        }
        value = value * 10 + (guint)(*p - '0');
        if (value > 65535) {   /* checked per digit, so no overflow */
            *reason = "port out of range 1..65535";
            return false;
        }
    }
    if (value == 0) {
        *reason = "port out of range 1..65535";
        return false;
    }
    *port = (uint16_t)value;
    return true;
}

/* TARGET (@s..@end, no whitespace in it) into a new target, or NULL. */
static SgConsoleTarget *
parse_target(const char *s, const char *end, const char **reason)
{
    const char *host;
    const char *host_end;
    const char *colon;
    uint16_t port = 0;
    g_autofree char *host_copy = NULL;

    if (*s == '[') {
        host = s + 1;
        host_end = memchr(host, ']', end - host);
        if (host_end == NULL) {
            *reason = "'[' without ']' in HOST:PORT";
            return NULL;
        }
        if (host_end + 1 == end || host_end[1] != ':') {
            *reason = "missing ':PORT' after ']'";
            return NULL;
        }
        colon = host_end + 1;
        if (!is_ipv6_literal(host, host_end)) {
            *reason = "bad IPv6 address in []";
            return NULL;
        }
    } else {
        colon = g_strrstr_len(s, end - s, ":");
        if (colon == NULL) {
            *reason = "missing ':PORT' in HOST:PORT";
            return NULL;
        }
        host = s;
        host_end = colon;
        if (memchr(host, ':', host_end - host) != NULL) {
            *reason = "IPv6 address must be written as [ADDRESS]:PORT";
            return NULL;
        }
        if (host == host_end) {
            *reason = "empty host";
            return NULL;
        }
        if (host_end - host > SG_TOKEN_FILE_HOST_MAX_BYTES) {
            *reason = "host name longer than 253 bytes";
            return NULL;
        }
        for (const char *p = host; p < host_end; p++) {
            if (!is_host_char(*p)) {
                *reason = "bad character in host name";
                return NULL;
            }
        }
    }
    if (!parse_port(colon + 1, end, &port, reason))
        return NULL;

    host_copy = g_strndup(host, host_end - host);
    return sg_console_target_new(host_copy, port);
}

gboolean
sg_token_file_parse_line(const char *line, char **token, SgConsoleTarget **tgt,
                         const char **reason)
{
    const char *start = line;
    const char *end;
    const char *sep = NULL;
    const char *target;
    const char *target_end;
    uint16_t tls_port = 0;

    g_return_val_if_fail(line != NULL && token != NULL && tgt != NULL && reason != NULL,
                         FALSE);
    *token = NULL;
    *tgt = NULL;
    *reason = NULL;

    /* Like websockify's line.strip(): this also drops the CR of a CRLF. */
    while (g_ascii_isspace(*start))
        start++;
    end = start + strlen(start);
    while (end > start && g_ascii_isspace(end[-1]))
        end--;
    if (start == end || *start == '#')
        return TRUE;

    /* websockify's re.split(r':\s', line): the first ':' followed by
     * whitespace ends the token. Stripping leaves no whitespace at @end. */
    for (const char *p = start; p + 1 < end; p++) {
        if (*p == ':' && g_ascii_isspace(p[1])) {
            sep = p;
            break;
        }
    }
    if (sep == NULL) {
        *reason = "expected 'TOKEN: HOST:PORT' (': ' after the token)";
        return FALSE;
    }
    if (sep == start) {
        *reason = "empty token";
        return FALSE;
    }
    if (sep - start > SG_TOKEN_MAX_BYTES) {
        *reason = "token longer than 512 bytes";
        return FALSE;
    }
    for (const char *p = start; p < sep; p++) {
        if (g_ascii_isspace(*p) || g_ascii_iscntrl(*p)) {
            *reason = "whitespace or control character in token";
            return FALSE;
        }
    }

    target = sep + 1;
    while (target < end && g_ascii_isspace(*target))
        target++;
    /* Not empty: @end is past a non-space and @sep + 1 is a space. */
    for (const char *p = target; p < end; p++) {
        if (g_ascii_iscntrl(*p) && !g_ascii_isspace(*p)) {
            *reason = "control character in HOST:PORT";
            return FALSE;
        }
    }
    target_end = target;
    while (target_end < end && !g_ascii_isspace(*target_end))
        target_end++;
    /* What follows the target: "tls-port=PORT", once, and nothing else. */
    for (const char *p = target_end; p < end;) {
        const char *word, *word_end;

        while (p < end && g_ascii_isspace(*p))
            p++;
        word = p;
        while (p < end && !g_ascii_isspace(*p))
            p++;
        word_end = p;
        if (word == word_end)
            break;
        if ((gsize)(word_end - word) < strlen(SG_TLS_PORT_OPTION) ||
            strncmp(word, SG_TLS_PORT_OPTION, strlen(SG_TLS_PORT_OPTION)) != 0) {
            *reason = "unexpected text after HOST:PORT (only tls-port=PORT may follow)";
            return FALSE;
        }
        if (tls_port != 0) {
            *reason = "tls-port given twice";
            return FALSE;
        }
        if (!parse_port(word + strlen(SG_TLS_PORT_OPTION), word_end, &tls_port, reason))
            return FALSE;
    }

    *tgt = parse_target(target, target_end, reason);
    if (*tgt == NULL)
        return FALSE;
    (*tgt)->tls_port = tls_port;
    *token = g_strndup(start, sep - start);
    return TRUE;
}

static GHashTable *
new_table(void)
{
    return g_hash_table_new_full(g_str_hash, g_str_equal, wipe_free,
                                 (GDestroyNotify)sg_console_target_free);
}

/* Reads all of @file, a regular file of at most SG_TOKEN_FILE_MAX_BYTES.
 * Opened without blocking and checked on the open descriptor: a FIFO or
 * device swapped in after the caller's stat() is refused, not waited on. */
static gboolean
read_regular_file(const char *file, char **contents, gsize *len, GError **error)
{
    int fd = open(file, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    struct stat st;
    char *buf;
    gsize have = 0;
    gsize cap;

    if (fd < 0) {
        int saved = errno;

        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(saved), "%s: %s", file,
                    g_strerror(saved));
        return FALSE;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL, "%s: not a regular file", file);
        close(fd);
        return FALSE;
    }
    if (st.st_size > SG_TOKEN_FILE_MAX_BYTES) {
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED,
                    "%s: %lld bytes, more than the %d MiB a token file may have", file,
                    (long long)st.st_size, SG_TOKEN_FILE_MAX_BYTES >> 20);
        close(fd);
        return FALSE;
    }
    /* The file may grow while we read it: read at most one byte past the
     * cap, which tells a file that grew too big from one that fits. */
    cap = (gsize)st.st_size + 1;
    buf = g_malloc(cap + 1);
    for (;;) {
        ssize_t n;

        if (have == cap) {
            if (cap > SG_TOKEN_FILE_MAX_BYTES)
                break;
            gsize grown = MIN(cap * 2, (gsize)SG_TOKEN_FILE_MAX_BYTES + 1);
            char *bigger = g_malloc(grown + 1);

            /* Not g_realloc(): the old block holds tokens, and freed
             * memory keeps no copy of them. */
            memcpy(bigger, buf, have);
            explicit_bzero(buf, have);
            g_free(buf);
            buf = bigger;
            cap = grown;
        }
        n = read(fd, buf + have, cap - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int saved = errno;

            g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(saved), "%s: %s", file,
                        g_strerror(saved));
            explicit_bzero(buf, have);
            g_free(buf);
            close(fd);
            return FALSE;
        }
        if (n == 0)
            break;
        have += (gsize)n;
    }
    close(fd);
    if (have > SG_TOKEN_FILE_MAX_BYTES) {
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED,
                    "%s: more than the %d MiB a token file may have", file,
                    SG_TOKEN_FILE_MAX_BYTES >> 20);
        explicit_bzero(buf, have);
        g_free(buf);
        return FALSE;
    }
    buf[have] = '\0';
    *contents = buf;
    *len = have;
    return TRUE;
}

/* Reads @file into a new table, later lines winning. All or nothing: every
 * bad line is logged (file:line and why, never the token), and a file with
 * any bad line, or that cannot be read, is refused as a whole with @error.
 * With @reloading a file of 0 bytes is refused too: it is what a write in
 * progress (or a failed one) leaves, far more often than an intent to drop
 * every console, which a comment line expresses. At start there is nothing
 * to keep, and an empty file loads (with a warning) as no tokens. */
static GHashTable *
read_token_file(const char *file, bool reloading, GError **error)
{
    g_autoptr(GHashTable) table = new_table();
    char *contents = NULL;
    gsize len = 0;
    gsize pos = 0;
    guint lineno = 0;
    guint bad = 0;

    if (!read_regular_file(file, &contents, &len, error))
        return NULL;
    if (len == 0) {
        g_free(contents);
        if (!reloading) {
            sg_warning_once("tokens: %s: empty file (0 bytes): no tokens", file);
            return g_steal_pointer(&table);
        }
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED,
                    "%s: empty file (0 bytes); a file meant to hold no tokens must hold a "
                    "comment line", file);
        return NULL;
    }
    /* A UTF-8 BOM from a Windows editor would otherwise join the first token. */
    if (len >= 3 && memcmp(contents, "\xef\xbb\xbf", 3) == 0)
        pos = 3;

    while (pos < len) {
        char *line = contents + pos;
        char *eol = memchr(line, '\n', len - pos);
        gsize line_len = eol != NULL ? (gsize)(eol - line) : len - pos;
        char *token = NULL;
        SgConsoleTarget *tgt = NULL;
        const char *reason = NULL;

        lineno++;
        pos += line_len + 1;
        line[line_len] = '\0';   /* the '\n', or the NUL read_regular_file adds */

        if (strlen(line) != line_len)
            reason = "NUL byte in line";
        else if (!sg_token_file_parse_line(line, &token, &tgt, &reason) && reason == NULL)
            reason = "bad line";
        if (reason != NULL) {
            if (++bad <= SG_TOKEN_FILE_MAX_LOGGED_BAD_LINES)
                sg_warning_once("%s:%u: %s", file, lineno, reason);
            continue;
        }
        if (token == NULL)
            continue;   /* blank or comment */
        if (g_hash_table_contains(table, token)) {
            g_autofree char *tag = sg_log_redact(token);

            sg_warning_once("%s:%u: duplicate token %s; this line wins", file, lineno, tag);
        }
        g_hash_table_replace(table, token, tgt);   /* takes both */
    }

    explicit_bzero(contents, len);
    g_free(contents);
    if (bad > SG_TOKEN_FILE_MAX_LOGGED_BAD_LINES)
        sg_warning_once("%s: %u more bad line(s) not shown", file,
                  bad - SG_TOKEN_FILE_MAX_LOGGED_BAD_LINES);
    if (bad > 0) {
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED, "%s: %u bad line(s)", file, bad);
        return NULL;
    }
    return g_steal_pointer(&table);
}

static int
compare_names(gconstpointer a, gconstpointer b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* What one load of the path found. */
typedef struct {
    GHashTable *prev;             /* file -> table of the last load; NULL at start */
    GHashTable *files;            /* file -> table, built by this load */
    guint failed;                 /* files refused by this load */
    guint kept;                   /* ...of which the previous table was kept */
    GError *first;                /* the first refusal */
} Load;

/* Adds @file to @load: @table (its new contents), or when that is NULL,
 * for the reason @why, its previous table (a reload) or nothing (at start,
 * where the error then fails the start). Takes both. */
static void
settle(Load *load, const char *file, GHashTable *table, GError *why)
{
    g_autoptr(GError) local = why;
    GHashTable *prev = load->prev != NULL ? g_hash_table_lookup(load->prev, file) : NULL;

    if (table != NULL) {
        g_hash_table_replace(load->files, g_strdup(file), table);
        return;
    }
    load->failed++;
    if (prev != NULL) {
        load->kept++;
        sg_warning_once("tokens: %s; keeping the %u token(s) it had before", local->message,
                  g_hash_table_size(prev));
        g_hash_table_replace(load->files, g_strdup(file), g_hash_table_ref(prev));
    } else if (load->prev != NULL) {
        sg_warning_once("tokens: %s; none of its tokens loaded", local->message);
    } else {
        sg_warning_once("tokens: %s", local->message);
    }
    if (load->first == NULL)
        load->first = g_steal_pointer(&local);
}

static void
load_one(Load *load, const char *file)
{
    GError *why = NULL;
    GHashTable *table = read_token_file(file, load->prev != NULL, &why);

    settle(load, file, table, why);
}

/* Reads @path (a file, or a directory of files) into @load->files. Fails
 * when @path itself cannot be read (then nothing changes), and at start
 * (@load->prev NULL) when any file has an error. */
static gboolean
load_path(const char *path, Load *load, GError **error)
{
    g_autoptr(GDir) dir = NULL;
    g_autoptr(GPtrArray) names = NULL;
    const char *name;
    struct stat st;

    load->files = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                        (GDestroyNotify)g_hash_table_unref);
    if (stat(path, &st) != 0) {
        int saved = errno;

        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(saved),
                    "token file %s: %s", path, g_strerror(saved));
        return FALSE;
    }
    if (S_ISREG(st.st_mode)) {
        load_one(load, path);
    } else if (!S_ISDIR(st.st_mode)) {
        /* A FIFO or device could block the loop or never end: not even
         * opened. Refused like a bad file, so a reload keeps its tokens. */
        settle(load, path, NULL,
               g_error_new(G_FILE_ERROR, G_FILE_ERROR_INVAL,
                           "%s: not a regular file or directory", path));
    } else {
        dir = g_dir_open(path, 0, error);
        if (dir == NULL)
            return FALSE;
        names = g_ptr_array_new_with_free_func(g_free);
        while ((name = g_dir_read_name(dir)) != NULL) {
            if (name[0] != '.')   /* editors' swap files, `.keep`, and the like */
                g_ptr_array_add(names, g_build_filename(path, name, NULL));
        }
        /* Sorted, so that which of two duplicate tokens wins does not depend
         * on the directory's order: the file sorting last does. */
        g_ptr_array_sort(names, compare_names);

        for (guint i = 0; i < names->len; i++) {
            const char *file = names->pdata[i];
            bool had = load->prev != NULL && g_hash_table_contains(load->prev, file);

            /* A name that held tokens before is read whatever it is now, so
             * that a FIFO or a dangling link in its place is an error that
             * keeps its tokens. Other names that are no regular file are
             * not token files: subdirectories, sockets, dangling links. */
            if (!had && stat(file, &st) != 0) {
                sg_warning_once("token file %s: %s; file skipped", file, g_strerror(errno));
                continue;
            }
            if (!had && !S_ISREG(st.st_mode)) {
                g_debug("token file %s: not a regular file; skipped", file);
                continue;
            }
            load_one(load, file);
        }
    }
    if (load->prev == NULL && load->failed > 0) {
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED,
                    "%s%s (every error is logged above; fix them, or move the file away)",
                    load->first->message,
                    load->failed > 1 ? ", and errors in other files" : "");
        return FALSE;
    }
    return TRUE;
}

static void
load_clear(Load *load)
{
    g_clear_pointer(&load->files, g_hash_table_unref);
    g_clear_error(&load->first);
}

/* The table lookups use: every file's entries, in file name order, later
 * files winning. Keys and values are borrowed from @files. */
static GHashTable *
merge(GHashTable *files)
{
    GHashTable *merged = g_hash_table_new(g_str_hash, g_str_equal);
    g_autofree gpointer *names = NULL;
    guint n = 0;

    names = g_hash_table_get_keys_as_array(files, &n);
    qsort(names, n, sizeof(*names), compare_names);
    for (guint i = 0; i < n; i++) {
        GHashTable *table = g_hash_table_lookup(files, names[i]);
        GHashTableIter iter;
        gpointer token, tgt;

        g_hash_table_iter_init(&iter, table);
        while (g_hash_table_iter_next(&iter, &token, &tgt)) {
            if (g_hash_table_contains(merged, token)) {
                g_autofree char *tag = sg_log_redact(token);

                sg_warning_once("%s: duplicate token %s, also in an earlier file; this file wins",
                          (const char *)names[i], tag);
            }
            g_hash_table_insert(merged, token, tgt);
        }
    }
    return merged;
}

static SgTokenFile *
token_file_of(SgTokenBackend *backend)
{
    g_return_val_if_fail(backend != NULL && backend->vtable == &token_file_vtable, NULL);
    return (SgTokenFile *)backend;
}

/* Answers at once; token.c delivers the answer from the main loop. */
static void
token_file_start(SgTokenBackend *backend, SgTokenLookup *lookup)
{
    SgTokenFile *tf = token_file_of(backend);
    const SgConsoleTarget *tgt;
    g_autoptr(GError) error = NULL;

    tgt = g_hash_table_lookup(tf->targets, sg_token_lookup_get_token(lookup));
    if (tgt != NULL) {
        sg_token_lookup_complete(lookup, tgt, NULL);
        return;
    }
    error = g_error_new_literal(SG_TOKEN_ERROR, SG_TOKEN_ERROR_UNKNOWN,
                                "console token invalid or expired");
    sg_token_lookup_complete(lookup, NULL, error);
}

/* Reload, all or nothing per file: a file with any error (a bad line, too
 * big, not a regular file, unreadable, empty) keeps the table it had;
 * files that read cleanly replace theirs; files gone from a directory take
 * their tokens with them. A path that cannot be read at all changes
 * nothing. FALSE with @error when anything was refused. */
static gboolean
token_file_reload(SgTokenBackend *backend, GError **error)
{
    SgTokenFile *tf = token_file_of(backend);
    Load load = { .prev = tf->files };
    g_autoptr(GError) local = NULL;

    if (!load_path(tf->path, &load, &local)) {
        g_set_error(error, local->domain, local->code, "%s; the previous tokens stay in use",
                    local->message);
        load_clear(&load);
        return FALSE;
    }
    g_hash_table_unref(tf->targets);   /* borrows from tf->files: first */
    g_hash_table_unref(tf->files);
    tf->files = g_steal_pointer(&load.files);
    tf->targets = merge(tf->files);
    if (load.failed == 0) {
        sg_message_once("tokens: %u loaded from %s", g_hash_table_size(tf->targets), tf->path);
        load_clear(&load);
        return TRUE;
    }
    g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_FAILED,
                "%s; %u file(s) refused, %u of them keep their previous tokens; "
                "%u token(s) in use from %s", load.first->message, load.failed, load.kept,
                g_hash_table_size(tf->targets), tf->path);
    load_clear(&load);
    return FALSE;
}

static void
token_file_free(SgTokenBackend *backend)
{
    SgTokenFile *tf = token_file_of(backend);

    g_clear_pointer(&tf->targets, g_hash_table_unref);
    g_clear_pointer(&tf->files, g_hash_table_unref);
    g_free(tf->path);
    g_free(tf);
}

static const SgTokenBackendVtable token_file_vtable = {
    .name = "file",
    .start = token_file_start,
    .cancel = NULL,   /* start() answers at once: nothing per lookup to drop */
    .reload = token_file_reload,
    .free = token_file_free,
};

SgTokenBackend *
sg_token_file_new(const char *path, GError **error)
{
    SgTokenFile *tf;
    Load load = { .prev = NULL };

    g_return_val_if_fail(path != NULL, NULL);
    if (!load_path(path, &load, error)) {
        load_clear(&load);
        return NULL;
    }

    tf = g_new0(SgTokenFile, 1);
    tf->parent.vtable = &token_file_vtable;
    tf->path = g_strdup(path);
    tf->files = g_steal_pointer(&load.files);
    tf->targets = merge(tf->files);
    load_clear(&load);
    sg_message_once("tokens: %u loaded from %s", g_hash_table_size(tf->targets), path);
    return &tf->parent;
}

guint
sg_token_file_count(SgTokenBackend *backend)
{
    SgTokenFile *tf = token_file_of(backend);

    return tf != NULL ? g_hash_table_size(tf->targets) : 0;
}
