/* SPDX-License-Identifier: Apache-2.0 */
/* web.h - the HTTP side: static files from two roots, nothing else.
 *
 * Our own pages (web/, installed as `pages`) win over the spice-html5 root
 * (`web`) where both have a file. Paths are decoded and normalised without
 * touching the filesystem (sg_web_normalise_path(), pure and fuzzed), then
 * resolved with realpath() so that no symlink leads out of a root. No
 * directory listings, no redirects.
 */
#pragma once

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
