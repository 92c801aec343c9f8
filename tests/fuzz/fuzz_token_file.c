/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_token_file.c - libFuzzer target for one line of a token file.
 *
 * The input, NUL-terminated, is handed to sg_token_file_parse_line() as
 * one line; its three outcomes are checked against token_file.h. Every
 * form a line may take goes through that one function, so a new form (a
 * TLS port, say) is fuzzed here as soon as the corpus has a line of it.
 */
#include "autoconfig.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "token.h"
#include "token_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_autofree char *line = g_malloc(size + 1);
    g_autofree char *token = NULL;
    g_autoptr(SgConsoleTarget) tgt = NULL;
    const char *reason = NULL;

    memcpy(line, data, size);
    line[size] = '\0';
    if (sg_token_file_parse_line(line, &token, &tgt, &reason)) {
        /* A mapping has both halves; a blank or comment line neither. */
        if ((token == NULL) != (tgt == NULL))
            abort();
        if (tgt != NULL && (tgt->host == NULL || token[0] == '\0'))
            abort();
        /* The token is the text before ": ", without blanks or controls. */
        for (const char *p = token; p != NULL && *p != '\0'; p++) {
            if (g_ascii_isspace(*p) || g_ascii_iscntrl(*p))
                abort();
        }
    } else if (reason == NULL) {
        abort();
    }
    return 0;
}
