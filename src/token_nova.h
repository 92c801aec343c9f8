/* SPDX-License-Identifier: Apache-2.0 */
/* token_nova.h - console tokens checked through Nova's API.
 *
 * GET {compute}/os-console-auth-tokens/{token} with the configured compute
 * microversion (2.31 or later), authenticated with a Keystone service token
 * (keystone.c), over the shared libcurl multi handle (httpc.c). Lookups of
 * the same token that are in flight together share one request; at most
 * [nova] max_concurrent_lookups distinct tokens are asked about at once,
 * the others wait in a queue under the same [nova] timeout. A positive
 * answer may be reused for [nova] cache_time seconds, "unknown token" for
 * negative_cache_time seconds; the cache holds at most
 * SG_NOVA_CACHE_MAX_ENTRIES answers, keyed by the token's SHA-256, and frees
 * expired ones within seconds whether or not they are asked for again.
 * Nova's reply has no
 * expiry, so with enforce_session_timeout a session ends token_ttl seconds
 * after the token's first successful lookup here.
 * Every [nova] revalidate_interval seconds the tokens of live consoles are
 * asked about again (token.h's watches), past the cache, with at most half
 * the lookup slots. Nova's 404 for a token does not tell expired from
 * deleted, so then its instance is asked about (GET /servers/{uuid}, the
 * backend's check_instance, same slots and deadline): a deleted instance
 * (404 itemNotFound, DELETED, SOFT_DELETED) revokes, anything else keeps
 * the console.
 */
#pragma once

#include "token.h"

/* 10,000 answers, about 2 MB: far more consoles than open within a
 * cache_time; when full, the oldest answer goes. */
#define SG_NOVA_CACHE_MAX_ENTRIES 10000

/* Takes no ownership of @cfg, which must outlive the backend. Checks the
 * credentials and the microversion in the background at once and logs
 * what it finds, so a misconfiguration shows at start-up. */
SgTokenBackend *sg_token_nova_new(const SgConfig *cfg, GError **error);

/* Parses Nova's 200 reply into a target. FALSE with @error (an
 * SG_TOKEN_ERROR) when a field is missing or of the wrong type or range. */
gboolean sg_token_nova_parse_reply(const char *body, gsize len, SgConsoleTarget **tgt,
                                   GError **error);

/* The status of Nova's {"server": {"status": ...}} (GET /servers/{uuid}),
 * newly allocated, or NULL when the body has none. For fuzzing. */
char *sg_token_nova_server_status(const char *body, gsize len);

/* Nova's version document (GET / on the compute endpoint): its
 * "version" (@max_version) and "min_version", each newly allocated, or
 * NULL when missing, not a string or longer than a microversion can be.
 * FALSE with @error only when the body is not JSON within json_guard's
 * bounds. For fuzzing. */
gboolean sg_token_nova_parse_versions(const char *body, gsize len, char **min_version,
                                      char **max_version, GError **error);

/* The answer cache, exposed for tests. Times are g_get_monotonic_time()
 * microseconds, passed in. */
typedef struct SgNovaCache SgNovaCache;

/* The key an answer is stored under: SHA-256 of @token in hex (newly
 * allocated), so that the cache never holds a console token. */
char *sg_token_nova_cache_key(const char *token);
SgNovaCache *sg_nova_cache_new(guint max_entries);
void sg_nova_cache_free(SgNovaCache *cache);
/* Stores a copy of @tgt (NULL: "unknown token") until @until_us, replacing
 * any answer for @token; when full, frees expired answers, then the oldest. */
void sg_nova_cache_put(SgNovaCache *cache, const char *token, const SgConsoleTarget *tgt,
                       gint64 until_us, gint64 now_us);
/* TRUE when an answer for @token is still valid at @now_us: *@tgt is it
 * (borrowed), or NULL for "unknown token". An expired one is freed. */
gboolean sg_nova_cache_get(SgNovaCache *cache, const char *token, gint64 now_us,
                           const SgConsoleTarget **tgt);
/* Frees every answer expired at @now_us; returns how many. */
guint sg_nova_cache_sweep(SgNovaCache *cache, gint64 now_us);
guint sg_nova_cache_size(const SgNovaCache *cache);
