/* SPDX-License-Identifier: Apache-2.0 */
/* fields.h - the input form of the targets that take several strings
 * (fuzz_admission, fuzz_client_addr): NUL-separated fields. */
#pragma once

#include <string.h>

#include <glib.h>

/* Splits @copy, @size bytes followed by a NUL of its own, at every NUL:
 * each field of it, in order, goes to @fields. No input is no field; a
 * trailing NUL ends in an empty last field. */
static inline void
split_fields(char *copy, gsize size, GPtrArray *fields)
{
    gsize pos = 0;

    if (size == 0)
        return;
    while (pos <= size) {
        g_ptr_array_add(fields, copy + pos);
        pos += strlen(copy + pos) + 1;
    }
}
