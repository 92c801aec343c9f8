/* SPDX-License-Identifier: Apache-2.0 */
/* web.h - the HTTP side: every plain HTTP request's answer, and the
 * static files from two roots it serves.
 *
 * sg_web_route() decides the answer to each request (405, 503 while
 * shutting down, 400, /healthz (503 while draining), a file or 404); listener.c reads the
 * request out of lws and http_response.c writes the answer.
 *
 * Our own pages (web/, installed as `pages`) win over the spice-html5 root
 * (`web`) where both have a file. Paths are decoded and normalised without
 * touching the filesystem (sg_web_normalise_path(), pure and fuzzed), then
 * resolved with realpath() so that no symlink leads out of a root. No
 * directory listings, no redirects.
 */
#pragma once

#include <stdbool.h>

#include "sg_types.h"

typedef enum {
    SG_WEB_PATH_OK = 0,
    SG_WEB_PATH_BAD_REQUEST,    /* 400: starts with //, bad escape, NUL, not absolute */
    SG_WEB_PATH_FORBIDDEN,      /* 404 to the client: climbs out with .., or a dot file */
} SgWebPathResult;

/* Turns the path part of a request URI (@uri_path, no query string) into a
 * relative path with no "." or ".." segments and no empty segments, e.g.
 * "/a/./b%20c" -> "a/b c"; "/" -> "" (the index). @relpath is newly
 * allocated on OK. */
SgWebPathResult sg_web_normalise_path(const char *uri_path, char **relpath);

/* The Content-Type for a file name, by extension; "application/octet-stream"
 * when unknown. Static string. */
const char *sg_web_mime_type(const char *filename);

/* @roots: NULL-terminated list of directories, first wins. Missing roots are
 * skipped with a warning (the daemon does not start with one: preflight.c
 * checks them first). */
SgWeb *sg_web_new(const char *const *roots);
void sg_web_free(SgWeb *web);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SgWeb, sg_web_free)

/* The name under which spice-html5's own spice_auto.html stays reachable
 * once our console page answers for spice_auto.html. */
#define SG_WEB_STOCK_PAGE "spice_auto_stock.html"

/* The absolute path of the regular file that @relpath names, searching
 * the roots in order ("" is index.html; SG_WEB_STOCK_PAGE is the last
 * root's spice_auto.html), or NULL (404). Symlinks are
 * followed only while they stay inside the root they were found in. */
char *sg_web_resolve(SgWeb *web, const char *relpath);

typedef enum {
    SG_WEB_GET = 0,
    SG_WEB_HEAD,
    SG_WEB_OTHER_METHOD,
} SgWebMethod;

/* A plain HTTP request, as listener.c read it. */
typedef struct {
    SgWebMethod method;
    const char *path;             /* the URI's path as lws decoded it */
    gsize stored_len;             /* the length lws stored for it: longer than
                                   * @path means lws decoded a %00 into it */
    bool shutting_down;           /* the daemon is stopping */
    bool draining;                /* the daemon is draining: /healthz says 503 */
} SgWebRequest;

/* The answer to one: a short text, or a file. */
typedef struct {
    unsigned int status;          /* HTTP status code */
    const char *text;             /* body of a text answer (static), or NULL */
    char *file;                   /* absolute path of the file to send, or NULL */
    const char *mime_type;        /* the file's Content-Type */
    bool bad_path;                /* a 400 for the path itself (worth a debug line) */
} SgWebAnswer;

/* Decides the answer to @req: 405 for a method other than GET or HEAD,
 * 503 while shutting down, 400 for an embedded NUL or a path that
 * sg_web_normalise_path() refuses, "ok" for /healthz ("draining" and 503
 * while draining, when files are still served), the file the path
 * names in @web's roots, else 404, in that order. Free @answer's file with
 * sg_web_answer_clear(). */
void sg_web_route(SgWeb *web, const SgWebRequest *req, SgWebAnswer *answer);
void sg_web_answer_clear(SgWebAnswer *answer);
