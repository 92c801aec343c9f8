/* SPDX-License-Identifier: Apache-2.0 */
/* token_file.h - the static token backend: websockify's TokenFile format.
 *
 * One line per console: `TOKEN: HOST:PORT` (websockify's), optionally
 * followed by ` tls-port=PORT` (the SPICE server's TLS port), `#` comments and blank lines
 * allowed, IPv6 hosts as `[addr]:port`. The path is one file or a directory
 * whose regular files are all read. Files are read at start and on reload
 * (SIGHUP), never per lookup, only if they are regular files of at most
 * SG_TOKEN_FILE_MAX_BYTES. Every bad line is logged with file:line, and a
 * file with any error is refused as a whole: at start that fails the start
 * (the caller exits 2); on reload the file keeps the tokens it had before.
 * A reload that cannot read the path at all keeps the whole previous table.
 */
#pragma once

#include "token.h"

/* 16 MiB, about 300,000 tokens: reading and parsing happen on the main
 * loop, so a bigger file (or /dev/zero linked in by mistake) is refused. */
#define SG_TOKEN_FILE_MAX_BYTES (16 << 20)

/* Parses one line. Returns TRUE and fills @token and @tgt for a mapping,
 * TRUE with both NULL for a blank or comment line, FALSE with @reason (a
 * static string) for a bad one. */
gboolean sg_token_file_parse_line(const char *line, char **token, SgConsoleTarget **tgt,
                                  const char **reason);

/* Reads @path (file or directory). Fails when @path cannot be read, or
 * when any of its files has an error (each is logged). */
SgTokenBackend *sg_token_file_new(const char *path, GError **error);

/* Number of tokens currently loaded (for logs and tests). */
guint sg_token_file_count(SgTokenBackend *backend);
