/* SPDX-License-Identifier: Apache-2.0 */
/* json_guard.c - bounds checked before json-glib parses a service's answer
 * (see json_guard.h for why). One linear scan, no allocation. */
#include "autoconfig.h"

#include <stdbool.h>

#include "json_guard.h"

G_DEFINE_QUARK(sg-json-guard-error-quark, sg_json_guard_error)

guint
sg_json_nesting_depth(const char *text, gsize len, guint limit)
{
    guint depth = 0;
    guint deepest = 0;
    bool in_string = false;
    bool escaped = false;

    for (gsize i = 0; i < len; i++) {
        char c = text[i];

        if (in_string) {
            if (escaped)
                escaped = false;
            else if (c == '\\')
                escaped = true;
            else if (c == '"')
                in_string = false;
            continue;
        }
        switch (c) {
        case '"':
            in_string = true;
            break;
        case '[':
        case '{':
            depth++;
            if (depth > deepest) {
                deepest = depth;
                if (deepest > limit)
                    return deepest;
            }
            break;
        case ']':
        case '}':
            /* Unbalanced closers are the parser's to refuse. */
            if (depth > 0)
                depth--;
            break;
        default:
            break;
        }
    }
    return deepest;
}

gboolean
sg_json_load_bounded(JsonParser *parser, const char *text, gsize len, GError **error)
{
    if (len > SG_JSON_MAX_BYTES) {
        g_set_error(error, SG_JSON_GUARD_ERROR, SG_JSON_GUARD_ERROR_TOO_LARGE,
                    "%" G_GSIZE_FORMAT " bytes, over the %d-byte limit", len,
                    SG_JSON_MAX_BYTES);
        return FALSE;
    }
    if (sg_json_nesting_depth(text, len, SG_JSON_MAX_DEPTH) > SG_JSON_MAX_DEPTH) {
        g_set_error(error, SG_JSON_GUARD_ERROR, SG_JSON_GUARD_ERROR_TOO_DEEP,
                    "nested deeper than %d levels", SG_JSON_MAX_DEPTH);
        return FALSE;
    }
    return json_parser_load_from_data(parser, text, (gssize)len, error);
}
