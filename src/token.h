/* SPDX-License-Identifier: Apache-2.0 */
/* token.h - the console-token backend interface.
 *
 * A backend maps a console token to the SPICE server it opens (a console
 * target). Lookups are asynchronous and cancellable: the answer is always
 * delivered from the main loop, never from inside sg_token_lookup(), and
 * never after sg_token_lookup_cancel(). The static token file and Nova's
 * API are two implementations; admission and relay never know which one
 * they talk to.
 *
 * A live session also watches its token (sg_token_lookup_watch()): the
 * backend may re-check the tokens of live consoles (Nova's [nova]
 * revalidate_interval), one request per distinct token however many
 * websockets share it, and tells every watch of a token that its backend
 * no longer knows (revoked). The token itself stays here, never in the
 * session, so that nothing that logs a session can log it.
 *
 * A backend that can also say whether a console's instance still exists
 * (check_instance, Nova's GET /servers/{id}) is asked that before a
 * console closes: an unknown token may only have expired (Nova's
 * token_ttl), and its API answers 404 for an expired token as for a
 * deleted one. Only a deleted instance revokes; while it lives, the
 * console stays, and from then on its instance is re-checked instead of
 * its token (one request per instance a round), the token forgotten.
 */
#pragma once

#include <stdint.h>

#include <gio/gio.h>

#include "sg_types.h"

#define SG_TOKEN_ERROR (sg_token_error_quark())
GQuark sg_token_error_quark(void);

typedef enum {
    SG_TOKEN_ERROR_UNKNOWN = 0,   /* no such token, or it expired: refuse */
    SG_TOKEN_ERROR_UNAVAILABLE,   /* backend down or slow: refuse, try again */
    SG_TOKEN_ERROR_REFUSED,       /* valid token we will not serve (e.g. wrong console type) */
} SgTokenError;

/* Where a console token leads. Owned by whoever holds it; copy with
 * sg_console_target_copy(). */
struct SgConsoleTarget {
    char *host;                   /* name or address of the SPICE server */
    uint16_t port;                /* the plain port; 0: none known */
    uint16_t tls_port;            /* the TLS port; 0: none known ([spice] tls) */
    char *instance_uuid;          /* optional */
    char *internal_access_path;   /* optional; NULL when unused */
    gint64 expires_at_us;         /* optional wall-clock expiry (g_get_real_time), 0 = none */
};

SgConsoleTarget *sg_console_target_new(const char *host, uint16_t port);
SgConsoleTarget *sg_console_target_copy(const SgConsoleTarget *tgt);
void sg_console_target_free(SgConsoleTarget *tgt);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SgConsoleTarget, sg_console_target_free)

/* Called once per lookup, from the main loop, unless cancelled. Exactly one
 * of @tgt and @error is non-NULL; both are owned by the caller of the
 * callback and valid only during it. */
typedef void (*SgTokenCallback)(const SgConsoleTarget *tgt, const GError *error,
                                gpointer user_data);

/* The table a backend fills in. */
typedef struct {
    const char *name;
    /* Starts answering @lookup; completes it later with
     * sg_token_lookup_complete(). */
    void (*start)(SgTokenBackend *backend, SgTokenLookup *lookup);
    /* Drops any backend state tied to @lookup; the callback will not run. */
    void (*cancel)(SgTokenBackend *backend, SgTokenLookup *lookup);
    /* Re-reads the backend's configuration (SIGHUP). Optional. */
    gboolean (*reload)(SgTokenBackend *backend, GError **error);
    void (*free)(SgTokenBackend *backend);
    /* Optional. Starts asking whether the instance
     * sg_token_lookup_get_instance() still exists; completes @lookup like
     * start() (cancelled with cancel()): any target if it does,
     * SG_TOKEN_ERROR_UNKNOWN if it was deleted (the message says how, for
     * the log), another error if the backend cannot say. Only re-checks
     * of watched consoles ask it. */
    void (*check_instance)(SgTokenBackend *backend, SgTokenLookup *lookup);
} SgTokenBackendVtable;

typedef struct SgTokenWatches SgTokenWatches;

/* Every backend struct starts with this, zeroed. */
struct SgTokenBackend {
    const SgTokenBackendVtable *vtable;
    SgTokenWatches *watches;      /* token.c's: watched tokens, re-checks; NULL until used */
};

/* Starts a lookup of @token (copied). Returns a handle the caller owns until
 * the callback runs or it calls sg_token_lookup_cancel(), whichever is
 * first. */
SgTokenLookup *sg_token_lookup(SgTokenBackend *backend, const char *token,
                               SgTokenCallback callback, gpointer user_data);

/* Cancels a pending lookup: the callback will not run and the handle is
 * freed. NULL is a no-op. */
void sg_token_lookup_cancel(SgTokenLookup *lookup);

/* For backends. The token is NULL in a check_instance() lookup, the
 * instance NULL in any other. */
const char *sg_token_lookup_get_token(const SgTokenLookup *lookup);
const char *sg_token_lookup_get_instance(const SgTokenLookup *lookup);
gpointer sg_token_lookup_get_backend_data(const SgTokenLookup *lookup);
void sg_token_lookup_set_backend_data(SgTokenLookup *lookup, gpointer data);
/* Runs the callback (from the main loop if called synchronously from
 * start(): it defers itself through an idle source) and frees the handle. */
void sg_token_lookup_complete(SgTokenLookup *lookup, const SgConsoleTarget *tgt,
                              const GError *error);

/* --- revocation of live consoles' tokens ------------------------------------ */

/* Called once when the backend says @watch's token is no longer known
 * (revoked), or, for a backend with check_instance, that the console's
 * instance was deleted. The watch is freed when the
 * callback returns: forget the handle; cancelling it from inside the
 * callback is a no-op. @detail says who said so, for the log. */
typedef void (*SgTokenRevokedFunc)(SgTokenWatch *watch, const char *detail, gpointer user_data);

/* Only from inside @lookup's callback, when it brought a target: watches
 * the lookup's token (and the target's instance_uuid) until
 * sg_token_watch_cancel() or @func. The watch keeps no copy of the token
 * of its own: every watch of a token shares one record, in the backend,
 * wiped when the last watch goes or when its instance is watched
 * instead. */
SgTokenWatch *sg_token_lookup_watch(SgTokenLookup *lookup, SgTokenRevokedFunc func,
                                    gpointer user_data);
/* Stops watching; NULL is a no-op. */
void sg_token_watch_cancel(SgTokenWatch *watch);

/* Re-checks every watched token every @interval_s seconds (0: never), at
 * most @max_in_flight at once, with lookups that a backend's answer cache
 * must not answer (sg_token_lookup_is_recheck()). A token the backend
 * says it does not know (SG_TOKEN_ERROR_UNKNOWN) is revoked: all its
 * watches are told; unless the backend has check_instance: then its
 * instance is asked about in the same round (one request per instance),
 * and only a deleted instance revokes (a token without a known instance
 * is kept, and no longer re-checked). Any other failure (backend down, slow, an error)
 * revokes nothing: live consoles stay up while the backend cannot say,
 * and one warning per round says how many could not be checked. When a
 * round is still running as the next falls due, that next one is skipped.
 * For backends. */
void sg_token_backend_set_revalidate(SgTokenBackend *backend, guint interval_s,
                                     guint max_in_flight);
/* Starts a round of re-checks now unless one is running (a backend whose
 * tokens just changed, e.g. on reload). */
void sg_token_backend_revalidate_now(SgTokenBackend *backend);
/* How many distinct tokens, and instances watched instead of their
 * tokens, are watched. */
guint sg_token_backend_n_watched(const SgTokenBackend *backend);
/* TRUE while a round of re-checks runs. */
gboolean sg_token_backend_revalidating(const SgTokenBackend *backend);
/* TRUE for a re-check of a watched token: a backend answers it from the
 * source, not from an answer it cached. */
gboolean sg_token_lookup_is_recheck(const SgTokenLookup *lookup);

gboolean sg_token_backend_reload(SgTokenBackend *backend, GError **error);
void sg_token_backend_free(SgTokenBackend *backend);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SgTokenBackend, sg_token_backend_free)
