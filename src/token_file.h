/* SPDX-License-Identifier: Apache-2.0 */
/* token_file.h - the static token backend: websockify's TokenFile format.
 *
 * One line per console: `TOKEN: HOST:PORT`, `#` comments and blank lines
 * allowed, IPv6 hosts as `[addr]:port`. The path is one file or a directory
 * whose regular files are all read. Files are read at start and on reload
 * (SIGHUP), never per lookup. A bad line is reported with file:line and
 * skipped; the others keep working. A reload that cannot read the path at
 * all keeps the previous table.
 */
#pragma once

#include "token.h"

/* Parses one line. Returns TRUE and fills @token and @tgt for a mapping,
 * TRUE with both NULL for a blank or comment line, FALSE with @reason (a
 * static string) for a bad one. */
gboolean sg_token_file_parse_line(const char *line, char **token, SgConsoleTarget **tgt,
                                  const char **reason);

/* Reads @path (file or directory). Fails only when @path cannot be read at
 * all; bad lines are logged and skipped. */
SgTokenBackend *sg_token_file_new(const char *path, GError **error);

/* Number of tokens currently loaded (for logs and tests). */
guint sg_token_file_count(SgTokenBackend *backend);
