/* SPDX-License-Identifier: Apache-2.0 */
/* keystone.h - the service token spicegate uses to ask Nova about consoles.
 *
 * Logs in to Keystone v3 (password or application credential), keeps the
 * token until shortly before it expires, and finds Nova's endpoint in the
 * token's catalog (or takes an explicit override). At most one login is in
 * flight however many lookups are waiting for it. Passwords, secrets and
 * tokens never reach a log line.
 */
#pragma once

#include "httpc.h"
#include "sg_types.h"

#define SG_KEYSTONE_ERROR (sg_keystone_error_quark())
GQuark sg_keystone_error_quark(void);

typedef enum {
    SG_KEYSTONE_ERROR_AUTH = 0,       /* credentials refused (401/403) */
    SG_KEYSTONE_ERROR_UNAVAILABLE,    /* Keystone down, slow, or 5xx */
    SG_KEYSTONE_ERROR_BAD_REPLY,      /* not the JSON we expect, no compute endpoint */
} SgKeystoneError;

typedef struct SgKeystone SgKeystone;
typedef struct SgKeystoneWait SgKeystoneWait;

/* Exactly one of (@token, @compute_url) and @error is set; valid only
 * during the call. Runs from the main loop, never inside sg_keystone_get(). */
typedef void (*SgKeystoneCallback)(const char *token, const char *compute_url,
                                   const GError *error, gpointer user_data);

/* Takes no ownership; @hc and @cfg outlive the object. */
SgKeystone *sg_keystone_new(SgHttpc *hc, const SgConfig *cfg);

/* A valid token and the compute endpoint, logging in if needed. */
SgKeystoneWait *sg_keystone_get(SgKeystone *ks, SgKeystoneCallback callback,
                                gpointer user_data);
void sg_keystone_wait_cancel(SgKeystoneWait *wait);

/* Nova said 401 to @token: forget it (if it is still the current one) so
 * the next sg_keystone_get() logs in again. */
void sg_keystone_invalidate(SgKeystone *ks, const char *token);

void sg_keystone_free(SgKeystone *ks);

/* Pure helpers, exposed for tests and fuzzing. */

/* The JSON body for POST /v3/auth/tokens from @cfg's [nova] credentials.
 * Newly allocated; it holds a secret. */
char *sg_keystone_auth_body(const SgConfig *cfg);

/* From a token response body: the expiry (UTC, microseconds since the
 * epoch) and the URL of the compute endpoint for @interface and @region
 * (NULL: any region). Returns FALSE with @error on anything unexpected. */
gboolean sg_keystone_parse_token(const char *body, gsize len, const char *interface,
                                 const char *region, gint64 *expires_at_us, char **compute_url,
                                 GError **error);
