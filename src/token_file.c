/* SPDX-License-Identifier: Apache-2.0 */
/* token_file.c - the static token backend (websockify's TokenFile format).
 *
 * Owns a table from console token to SgConsoleTarget, read from one file or
 * from every regular file of a directory, at start and on reload (SIGHUP),
 * never per lookup. Lookups are answered from the table at once, which
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
 *   mapping = TOKEN ":" 1*WSP TARGET
 *   TOKEN   = everything before the first ':' that is followed by
 *             whitespace; 1..SG_TOKEN_MAX_BYTES bytes, no whitespace, no
 *             control characters (so "a:b: host:1" has the token "a:b")
 *   TARGET  = HOST ":" PORT | "[" IPV6 "]" ":" PORT, no whitespace at all
 *             (so no trailing comment: websockify has none either)
 *   HOST    = 1..253 of [A-Za-z0-9.-_]      (name or IPv4 address)
 *   IPV6    = an IPv6 address, optionally with a %zone; brackets required
 *   PORT    = decimal digits only, 1..65535
 *
 * Refused, each with its own reason: "tok:host:5900" (no ": ", websockify
 * also refuses it), "tok: fe80::1:5900" (an unbracketed IPv6 address is
 * ambiguous), "tok: host:5900 # x" (trailing text), ports 0, 65536, "59a",
 * "+1" or missing.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/stat.h>

#include <glib.h>

#include "admission.h"
#include "log.h"
#include "token_file.h"

/* 253: the longest DNS name; anything longer cannot resolve. */
#define SG_TOKEN_FILE_HOST_MAX_BYTES 253

typedef struct {
    SgTokenBackend parent;
    char *path;
    GHashTable *targets;   /* token (wiped on removal) -> SgConsoleTarget */
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
        if (g_ascii_isspace(*p)) {
            *reason = "unexpected text after HOST:PORT";
            return FALSE;
        }
        if (g_ascii_iscntrl(*p)) {
            *reason = "control character in HOST:PORT";
            return FALSE;
        }
    }

    *tgt = parse_target(target, end, reason);
    if (*tgt == NULL)
        return FALSE;
    *token = g_strndup(start, sep - start);
    return TRUE;
}

static GHashTable *
new_table(void)
{
    return g_hash_table_new_full(g_str_hash, g_str_equal, wipe_free,
                                 (GDestroyNotify)sg_console_target_free);
}

/* Adds the mappings of @file to @table, later lines winning. Fails only
 * when @file cannot be read; bad lines are logged and skipped. */
static gboolean
load_file(GHashTable *table, const char *file, GError **error)
{
    char *contents = NULL;
    gsize len = 0;
    gsize pos = 0;
    guint lineno = 0;
    g_autoptr(GError) local = NULL;

    if (!g_file_get_contents(file, &contents, &len, &local)) {
        /* GLib's message already names the file. */
        g_propagate_prefixed_error(error, g_steal_pointer(&local), "tokens: ");
        return FALSE;
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
        line[line_len] = '\0';   /* the '\n', or the NUL g_file_get_contents adds */

        if (strlen(line) != line_len) {
            sg_warning_once("%s:%u: %s; line skipped", file, lineno, "NUL byte in line");
            continue;
        }
        if (!sg_token_file_parse_line(line, &token, &tgt, &reason)) {
            sg_warning_once("%s:%u: %s; line skipped", file, lineno, reason);
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
    return TRUE;
}

static int
compare_names(gconstpointer a, gconstpointer b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Reads @path (a file, or a directory of files) into a new table. Fails
 * only when @path itself cannot be read. */
static GHashTable *
load_path(const char *path, GError **error)
{
    g_autoptr(GHashTable) table = new_table();
    g_autoptr(GDir) dir = NULL;
    g_autoptr(GPtrArray) names = NULL;
    const char *name;
    struct stat st;

    if (stat(path, &st) != 0) {
        int saved = errno;

        g_set_error(error, G_FILE_ERROR, g_file_error_from_errno(saved),
                    "token file %s: %s", path, g_strerror(saved));
        return NULL;
    }
    if (S_ISREG(st.st_mode)) {
        if (!load_file(table, path, error))
            return NULL;
        return g_steal_pointer(&table);
    }
    if (!S_ISDIR(st.st_mode)) {
        /* A FIFO or device could block the loop or never end. */
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL,
                    "token file %s: not a regular file or directory", path);
        return NULL;
    }

    dir = g_dir_open(path, 0, error);
    if (dir == NULL)
        return NULL;
    names = g_ptr_array_new_with_free_func(g_free);
    while ((name = g_dir_read_name(dir)) != NULL) {
        if (name[0] != '.')   /* editors' swap files, `.keep`, and the like */
            g_ptr_array_add(names, g_strdup(name));
    }
    /* Sorted, so that which of two duplicate tokens wins does not depend
     * on the directory's order: the file sorting last does. */
    g_ptr_array_sort(names, compare_names);

    for (guint i = 0; i < names->len; i++) {
        g_autofree char *file = g_build_filename(path, names->pdata[i], NULL);
        g_autoptr(GError) local = NULL;

        if (stat(file, &st) != 0) {
            /* A dangling symlink, most likely: the operator should know. */
            sg_warning_once("token file %s: %s; file skipped", file, g_strerror(errno));
            continue;
        }
        if (!S_ISREG(st.st_mode)) {
            g_debug("token file %s: not a regular file; skipped", file);
            continue;
        }
        /* One unreadable file must not take the others' consoles away. */
        if (!load_file(table, file, &local))
            sg_warning_once("%s; file skipped", local->message);
    }
    return g_steal_pointer(&table);
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

static gboolean
token_file_reload(SgTokenBackend *backend, GError **error)
{
    SgTokenFile *tf = token_file_of(backend);
    GHashTable *table = load_path(tf->path, error);

    if (table == NULL)
        return FALSE;   /* the old table keeps serving */
    g_hash_table_unref(tf->targets);
    tf->targets = table;
    sg_message_once("tokens: %u loaded from %s", g_hash_table_size(table), tf->path);
    return TRUE;
}

static void
token_file_free(SgTokenBackend *backend)
{
    SgTokenFile *tf = token_file_of(backend);

    g_clear_pointer(&tf->targets, g_hash_table_unref);
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
    GHashTable *table;

    g_return_val_if_fail(path != NULL, NULL);
    table = load_path(path, error);
    if (table == NULL)
        return NULL;

    tf = g_new0(SgTokenFile, 1);
    tf->parent.vtable = &token_file_vtable;
    tf->path = g_strdup(path);
    tf->targets = table;
    sg_message_once("tokens: %u loaded from %s", g_hash_table_size(table), path);
    return &tf->parent;
}

guint
sg_token_file_count(SgTokenBackend *backend)
{
    SgTokenFile *tf = token_file_of(backend);

    return tf != NULL ? g_hash_table_size(tf->targets) : 0;
}
