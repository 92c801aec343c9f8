/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_config.c - libFuzzer target for the configuration file parser.
 *
 * The input is a whole file's text, passed with its length and no NUL
 * terminator, as sg_config_load_data() allows, then cross-checked when it
 * loaded. Errors are expected; only crashes, leaks and sanitizer reports
 * are failures.
 */
#include "autoconfig.h"

#include <stdint.h>
#include <stdlib.h>

#include <glib.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    g_autoptr(SgConfig) cfg = sg_config_new_default();
    g_autoptr(GError) error = NULL;

    if (sg_config_load_data(cfg, (const char *)data, size, "fuzz.conf", &error)) {
        if (!sg_config_validate(cfg, &error) && error == NULL)
            abort();
    } else if (error == NULL) {
        abort();
    }
    g_clear_error(&error);
    return 0;
}
