/* SPDX-License-Identifier: Apache-2.0 */
/* standalone.c - runs a libFuzzer target over files, without libFuzzer.
 *
 * Linked into every fuzz target unless configure has --enable-fuzzing (as
 * curl-fuzzer does), so `make check` replays the corpora with the plain
 * compiler, sanitizers or not. Each argument is a file, or a directory whose
 * entries are each run once (not recursively; dot files skipped). Arguments
 * starting with '-' are libFuzzer options and ignored, so one command line
 * (`fuzz_x -runs=0 corpus/x`) replays a corpus with either engine. Owns
 * only the copy of the current input, sized exactly so that ASan catches a
 * target reading one byte past it.
 */
#include "autoconfig.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool
run_file(const char *path, guint *count)
{
    g_autofree char *contents = NULL;
    g_autofree uint8_t *copy = NULL;
    g_autoptr(GError) error = NULL;
    gsize len = 0;

    if (!g_file_get_contents(path, &contents, &len, &error)) {
        fprintf(stderr, "standalone: %s\n", error->message);
        return false;
    }
    /* g_file_get_contents() adds a NUL the target must not rely on. */
    copy = g_malloc(MAX(len, 1));
    memcpy(copy, contents, len);
    LLVMFuzzerTestOneInput(copy, len);
    (*count)++;
    return true;
}

static gint
compare_names(gconstpointer a, gconstpointer b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Runs every entry of @dir, in name order so that runs are repeatable. */
static bool
run_dir(const char *dir, guint *count)
{
    g_autoptr(GError) error = NULL;
    g_autoptr(GDir) d = g_dir_open(dir, 0, &error);
    g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
    const char *name;
    bool ok = true;

    if (d == NULL) {
        fprintf(stderr, "standalone: %s\n", error->message);
        return false;
    }
    while ((name = g_dir_read_name(d)) != NULL) {
        if (name[0] != '.')
            g_ptr_array_add(names, g_strdup(name));
    }
    g_ptr_array_sort(names, compare_names);
    for (guint i = 0; i < names->len; i++) {
        g_autofree char *path = g_build_filename(dir, names->pdata[i], NULL);

        if (!run_file(path, count))
            ok = false;
    }
    return ok;
}

int
main(int argc, char **argv)
{
    guint count = 0;
    bool ok = true;

    for (int i = 1; i < argc; i++) {
        if (argv[i][0] == '-')
            continue;
        if (g_file_test(argv[i], G_FILE_TEST_IS_DIR)) {
            if (!run_dir(argv[i], &count))
                ok = false;
        } else if (!run_file(argv[i], &count)) {
            ok = false;
        }
    }
    printf("%s: ran %u inputs\n", argc > 0 ? argv[0] : "standalone", count);
    return ok ? EXIT_SUCCESS : EXIT_FAILURE;
}
