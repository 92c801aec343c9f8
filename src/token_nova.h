/* SPDX-License-Identifier: Apache-2.0 */
/* token_nova.h - console tokens checked through Nova's API.
 *
 * GET {compute}/os-console-auth-tokens/{token} with the configured compute
 * microversion (2.31 or later), authenticated with a Keystone service token
 * (keystone.c), over the shared libcurl multi handle (httpc.c). Lookups of
 * the same token that are in flight together share one request; a positive
 * answer may be reused for [nova] cache_time seconds. Nova's reply has no
 * expiry, so with enforce_session_timeout a session ends token_ttl seconds
 * after the token's first successful lookup here.
 */
#pragma once

#include "token.h"

/* Takes no ownership of @cfg, which must outlive the backend. Checks the
 * credentials and the microversion in the background at once and logs
 * what it finds, so a misconfiguration shows at start-up. */
SgTokenBackend *sg_token_nova_new(const SgConfig *cfg, GError **error);

/* Parses Nova's 200 reply into a target. FALSE with @error (an
 * SG_TOKEN_ERROR) when a field is missing or of the wrong type or range. */
gboolean sg_token_nova_parse_reply(const char *body, gsize len, SgConsoleTarget **tgt,
                                   GError **error);
