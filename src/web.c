/* SPDX-License-Identifier: Apache-2.0 */
/* web.c - every plain HTTP answer: /healthz, refusals, and request paths
 * to files (normalising, MIME types, the two roots).
 *
 * Owns the list of web roots (their realpath()s) and the rules deciding
 * what a request gets (sg_web_route()) and which file a path may name. It
 * never reads or serves a file and knows nothing of lws: listener.c asks
 * it for an answer and http_response.c writes it.
 * A request is checked twice: sg_web_normalise_path() refuses anything odd
 * in the string alone (pure, fuzzed), and sg_web_resolve() refuses, after
 * following symlinks, anything that is not a regular file inside the root
 * it was found in.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <glib.h>

#include "log.h"
#include "web.h"

/* 4096: PATH_MAX on Linux; no file we serve has a longer name, so a longer
 * request path is junk and not worth decoding. */
#define SG_WEB_PATH_MAX_BYTES 4096

struct SgWeb {
    GPtrArray *roots;   /* realpath() of each usable root, in order */
};

static int
hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes @in into a new string, or returns NULL for a request we
 * refuse outright: a bad escape, or a byte that has no business in a file
 * name we serve. An encoded '/' is refused rather than kept as data: it
 * would be a separator to the filesystem, and a proxy in front of us may
 * have decoded it differently. '+' stays '+': it means space only in
 * query strings. */
static char *
percent_decode(const char *in)
{
    g_autoptr(GString) out = g_string_sized_new(strlen(in));

    for (const char *p = in; *p != '\0'; p++) {
        int c = (unsigned char)*p;

        if (c == '%') {
            int hi = hex_value(p[1]);
            int lo = hi < 0 ? -1 : hex_value(p[2]);

            if (lo < 0)
                return NULL;   /* "%zz", "%4", "%" at the end */
            c = hi * 16 + lo;
            p += 2;
            if (c == '/')
                return NULL;
        }
        /* NUL would cut the path short; '\\' is a separator on some
         * systems and in some browsers' minds; controls are never names. */
        if (c == '\0' || c == '\\' || c < 0x20 || c == 0x7f)
            return NULL;
        g_string_append_c(out, (char)c);
    }
    return g_string_free(g_steal_pointer(&out), FALSE);
}

SgWebPathResult
sg_web_normalise_path(const char *uri_path, char **relpath)
{
    g_autofree char *decoded = NULL;
    g_auto(GStrv) segments = NULL;
    g_autoptr(GPtrArray) kept = NULL;

    g_return_val_if_fail(relpath != NULL, SG_WEB_PATH_BAD_REQUEST);
    *relpath = NULL;

    if (uri_path == NULL || uri_path[0] != '/')
        return SG_WEB_PATH_BAD_REQUEST;
    /* "//evil.com" is a scheme-relative URL: Nova's open redirect
     * (OSSA-2021-002) came from letting one through. */
    if (uri_path[1] == '/')
        return SG_WEB_PATH_BAD_REQUEST;
    if (strlen(uri_path) > SG_WEB_PATH_MAX_BYTES)
        return SG_WEB_PATH_BAD_REQUEST;

    decoded = percent_decode(uri_path);
    if (decoded == NULL)
        return SG_WEB_PATH_BAD_REQUEST;

    /* Safe to split after decoding: an encoded '/' was refused above. */
    segments = g_strsplit(decoded, "/", -1);
    kept = g_ptr_array_new();
    for (char **seg = segments; *seg != NULL; seg++) {
        if (**seg == '\0' || strcmp(*seg, ".") == 0)
            continue;
        /* Refused, not clamped at the root: a path that tries to climb is
         * a probe, and answering it as if it were another file only hides
         * that. Other dot names (.git, .htpasswd) are never served. */
        if ((*seg)[0] == '.')
            return SG_WEB_PATH_FORBIDDEN;
        g_ptr_array_add(kept, *seg);
    }
    /* "/page.html/" names a directory, and the only directory we answer
     * for is the root (its index.html): a file with a trailing slash is
     * not that file. Relative links on such a page would resolve wrongly
     * too. */
    if (kept->len > 0 && g_str_has_suffix(decoded, "/"))
        return SG_WEB_PATH_FORBIDDEN;
    g_ptr_array_add(kept, NULL);
    *relpath = g_strjoinv("/", (char **)kept->pdata);
    return SG_WEB_PATH_OK;
}

const char *
sg_web_mime_type(const char *filename)
{
    /* text types carry a charset: spice-html5 and our pages are UTF-8, and
     * without it a browser guesses. .js must be a JavaScript type, or
     * browsers refuse to run spice-html5's ES modules (nosniff). */
    static const struct {
        const char *ext;
        const char *type;
    } types[] = {
        { "html", "text/html; charset=utf-8" },
        { "htm", "text/html; charset=utf-8" },
        { "js", "text/javascript; charset=utf-8" },
        { "mjs", "text/javascript; charset=utf-8" },
        { "css", "text/css; charset=utf-8" },
        { "json", "application/json" },
        { "map", "application/json" },
        { "png", "image/png" },
        { "jpg", "image/jpeg" },
        { "jpeg", "image/jpeg" },
        { "gif", "image/gif" },
        { "svg", "image/svg+xml" },
        { "ico", "image/x-icon" },
        { "woff", "font/woff" },
        { "woff2", "font/woff2" },
        { "txt", "text/plain; charset=utf-8" },
        { "wasm", "application/wasm" },
    };
    const char *base;
    const char *dot;

    if (filename == NULL)
        return "application/octet-stream";
    base = strrchr(filename, '/');
    base = base != NULL ? base + 1 : filename;
    dot = strrchr(base, '.');
    if (dot == NULL || dot == base)   /* no extension, or a dot file */
        return "application/octet-stream";
    for (gsize i = 0; i < G_N_ELEMENTS(types); i++) {
        if (g_ascii_strcasecmp(dot + 1, types[i].ext) == 0)
            return types[i].type;
    }
    return "application/octet-stream";
}

SgWeb *
sg_web_new(const char *const *roots)
{
    SgWeb *web = g_new0(SgWeb, 1);

    web->roots = g_ptr_array_new_with_free_func(free);
    for (gsize i = 0; roots != NULL && roots[i] != NULL; i++) {
        char *real = realpath(roots[i], NULL);
        struct stat st;

        if (real == NULL) {
            sg_warning_once("web root %s: %s; skipped", roots[i], g_strerror(errno));
            continue;
        }
        if (stat(real, &st) != 0 || !S_ISDIR(st.st_mode)) {
            sg_warning_once("web root %s: not a directory; skipped", roots[i]);
            free(real);
            continue;
        }
        g_ptr_array_add(web->roots, real);
    }
    return web;
}

void
sg_web_free(SgWeb *web)
{
    if (web == NULL)
        return;
    g_ptr_array_unref(web->roots);
    g_free(web);
}

/* Whether @path (a realpath) lies strictly below @root (a realpath), and
 * no part of it below the root is a dot name: a symlink may lead to
 * "root/.git/config", which the request could not have named. */
static bool
is_served_below(const char *root, const char *path)
{
    gsize len = strlen(root);
    const char *rest;

    if (strcmp(root, "/") == 0)
        len = 0;   /* every absolute path is below "/"; rest starts at its '/' */
    else if (strncmp(path, root, len) != 0)
        return false;
    rest = path + len;
    if (rest[0] != '/')
        return false;   /* "/srv/web2" is not below "/srv/web" */
    for (const char *p = rest; p != NULL; p = strchr(p + 1, '/')) {
        if (p[1] == '.')
            return false;
    }
    return true;
}

char *
sg_web_resolve(SgWeb *web, const char *relpath)
{
    guint first = 0;

    g_return_val_if_fail(web != NULL, NULL);
    if (relpath == NULL)
        return NULL;
    if (relpath[0] == '\0')
        relpath = "index.html";
    /* Our console page takes spice_auto.html's name (Nova's URL); the
     * stock page stays reachable under this one, from the spice-html5
     * root (the last) only. It sits beside spice-html5's modules, so its
     * relative imports (and our ticket.js) resolve as before. */
    if (strcmp(relpath, SG_WEB_STOCK_PAGE) == 0 && web->roots->len > 0) {
        relpath = "spice_auto.html";
        first = web->roots->len - 1;
    }

    for (guint i = first; i < web->roots->len; i++) {
        const char *root = web->roots->pdata[i];
        g_autofree char *candidate = g_build_filename(root, relpath, NULL);
        char *real = realpath(candidate, NULL);   /* follows every symlink */
        struct stat st;

        if (real == NULL)
            continue;   /* missing here: the next root may have it */
        if (is_served_below(root, real) && stat(real, &st) == 0 && S_ISREG(st.st_mode)) {
            char *result = g_strdup(real);

            free(real);
            return result;
        }
        free(real);
    }
    return NULL;
}

static void
answer_text(SgWebAnswer *answer, unsigned int status, const char *text)
{
    answer->status = status;
    answer->text = text;
}

void
sg_web_route(SgWeb *web, const SgWebRequest *req, SgWebAnswer *answer)
{
    g_autofree char *relpath = NULL;

    memset(answer, 0, sizeof(*answer));
    if (req->method != SG_WEB_GET && req->method != SG_WEB_HEAD) {
        answer_text(answer, 405, "method not allowed\n");
        return;
    }
    if (req->shutting_down) {
        answer_text(answer, 503, "shutting down\n");
        return;
    }
    /* lws decodes %00 into the path it hands us, which then ends early:
     * a stored URI longer than the string we got means an embedded NUL. */
    if (strlen(req->path) != req->stored_len) {
        answer_text(answer, 400, "bad request\n");
        return;
    }
    if (g_str_equal(req->path, "/healthz")) {
        /* A draining daemon still serves what it holds, but a load
         * balancer must send new consoles elsewhere. */
        if (req->draining)
            answer_text(answer, 503, "draining\n");
        else
            answer_text(answer, 200, "ok\n");
        return;
    }
    switch (sg_web_normalise_path(req->path, &relpath)) {
    case SG_WEB_PATH_OK:
        break;
    case SG_WEB_PATH_BAD_REQUEST:
        answer_text(answer, 400, "bad request\n");
        answer->bad_path = true;
        return;
    case SG_WEB_PATH_FORBIDDEN:
    default:
        answer_text(answer, 404, "not found\n");
        return;
    }
    answer->file = sg_web_resolve(web, relpath);
    if (answer->file == NULL) {
        answer_text(answer, 404, "not found\n");
        return;
    }
    answer->status = 200;
    answer->mime_type = sg_web_mime_type(answer->file);
}

void
sg_web_answer_clear(SgWebAnswer *answer)
{
    g_clear_pointer(&answer->file, g_free);
}
