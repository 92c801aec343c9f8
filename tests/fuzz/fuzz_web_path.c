/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_web_path.c - libFuzzer target for request path normalisation.
 *
 * The input is the path part of a request URI. Besides crashes, it checks
 * web.h's promise for OK: a relative path with no ".", ".." or empty
 * segment, which is what keeps requests inside the web roots.
 */
#include "autoconfig.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "web.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_relpath(const char *relpath)
{
    g_auto(GStrv) segments = NULL;

    if (relpath == NULL)
        abort();
    if (relpath[0] == '\0')
        return;                 /* "/": the index */
    segments = g_strsplit(relpath, "/", -1);
    for (guint i = 0; segments[i] != NULL; i++) {
        if (segments[i][0] == '\0' || strcmp(segments[i], ".") == 0 ||
            strcmp(segments[i], "..") == 0)
            abort();
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_autofree char *path = g_malloc(size + 1);
    g_autofree char *relpath = NULL;

    memcpy(path, data, size);
    path[size] = '\0';
    if (sg_web_normalise_path(path, &relpath) == SG_WEB_PATH_OK) {
        check_relpath(relpath);
        if (sg_web_mime_type(relpath) == NULL)
            abort();
    }
    if (sg_web_mime_type(path) == NULL)
        abort();
    return 0;
}
