/* SPDX-License-Identifier: Apache-2.0 */
/* json_guard.h - JSON from other services, parsed only within bounds.
 *
 * json-glib's parser recurses once per nesting level: about 100,000 levels
 * (200 KB of '[') overflow the stack and kill the process, every console
 * with it. Keystone's and Nova's answers nest a handful of levels, so
 * anything deeper, or larger than any real answer, is refused before the
 * parser sees it. Pure: no I/O, no logging.
 */
#pragma once

#include <glib.h>
#include <json-glib/json-glib.h>

/* Keystone's token with its catalog nests 6 levels; 64 leaves room. */
#define SG_JSON_MAX_DEPTH 64
/* A large cloud's catalog is a few hundred KB. */
#define SG_JSON_MAX_BYTES (4 * 1024 * 1024)

#define SG_JSON_GUARD_ERROR (sg_json_guard_error_quark())
GQuark sg_json_guard_error_quark(void);

typedef enum {
    SG_JSON_GUARD_ERROR_TOO_DEEP,
    SG_JSON_GUARD_ERROR_TOO_LARGE,
} SgJsonGuardError;

/* The deepest nesting of arrays and objects in @len bytes of @text, not
 * counting brackets inside strings; stops counting past @limit. */
guint sg_json_nesting_depth(const char *text, gsize len, guint limit);

/* json_parser_load_from_data(), after checking @len against
 * SG_JSON_MAX_BYTES and the nesting against SG_JSON_MAX_DEPTH. On failure
 * @error says which bound, or what the parser found wrong. */
gboolean sg_json_load_bounded(JsonParser *parser, const char *text, gsize len, GError **error);
