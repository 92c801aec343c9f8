/* SPDX-License-Identifier: Apache-2.0 */
/* token.c - console targets and the backend-neutral lookup handle.
 *
 * Owns SgTokenLookup: the token copy, the caller's callback, and the idle
 * source that delivers an answer a backend gave synchronously. It promises
 * the caller two things whatever the backend does: the callback never runs
 * inside sg_token_lookup(), and never after sg_token_lookup_cancel(). It
 * knows nothing about where answers come from and must never log a token.
 *
 * Lookup lifetime (our drawing)
 *
 *   sg_token_lookup() --> in start() --complete()--> DEFERRED --idle--> callback, free
 *                             |                          | cancel(): remove idle, free
 *                             v start() returns          |   (backend not told: it is done)
 *                          PENDING --complete()--> callback, free
 *                             | cancel(): vtable->cancel, free
 */
#include "config.h"

#include <stdbool.h>
#include <string.h>

#include <glib.h>

#include "shared_zone.h"
#include "token.h"

G_DEFINE_QUARK(sg-token-error-quark, sg_token_error)

struct SgTokenLookup {
    SgTokenBackend *backend;      /* not owned */
    const char *backend_name;     /* static (the vtable's): a deferred answer may
                                   * outlive the backend */
    char *token;                  /* secret: wiped before it is freed */
    SgTokenCallback callback;
    gpointer user_data;
    gpointer backend_data;        /* owned by the backend */
    guint idle_id;                /* delivers a deferred answer; 0 when none */
    bool in_start;                /* inside vtable->start(): answers must wait */
    bool deferred;                /* backend answered; only the idle is left */
    bool dispatching;             /* inside the callback: cancel() is a no-op */
    SgConsoleTarget *tgt;         /* the deferred answer, one of these two */
    GError *error;
};

SgConsoleTarget *
sg_console_target_new(const char *host, uint16_t port)
{
    SgConsoleTarget *tgt = g_new0(SgConsoleTarget, 1);

    tgt->host = g_strdup(host);
    tgt->port = port;
    return tgt;
}

SgConsoleTarget *
sg_console_target_copy(const SgConsoleTarget *tgt)
{
    SgConsoleTarget *copy;

    if (tgt == NULL)
        return NULL;
    copy = sg_console_target_new(tgt->host, tgt->port);
    copy->instance_uuid = g_strdup(tgt->instance_uuid);
    copy->internal_access_path = g_strdup(tgt->internal_access_path);
    copy->expires_at_us = tgt->expires_at_us;
    return copy;
}

void
sg_console_target_free(SgConsoleTarget *tgt)
{
    if (tgt == NULL)
        return;
    g_free(tgt->host);
    g_free(tgt->instance_uuid);
    g_free(tgt->internal_access_path);
    g_free(tgt);
}

/* A console token is a bearer secret: leave no copy of it in freed heap,
 * where a later bug (or a core dump) could show it. explicit_bzero() is not
 * optimised away as a memset() before free() may be. */
static void
wipe_free(char *secret)
{
    if (secret == NULL)
        return;
    explicit_bzero(secret, strlen(secret));
    g_free(secret);
}

static void
lookup_free(SgTokenLookup *lookup)
{
    g_clear_handle_id(&lookup->idle_id, g_source_remove);
    wipe_free(lookup->token);
    sg_console_target_free(lookup->tgt);
    g_clear_error(&lookup->error);
    g_free(lookup);
}

static void
dispatch(SgTokenLookup *lookup, const SgConsoleTarget *tgt, const GError *error)
{
    SgZoneLookupResult result = SG_ZONE_LOOKUP_OK;

    if (error != NULL && error->domain == SG_TOKEN_ERROR) {
        result = error->code == SG_TOKEN_ERROR_UNKNOWN   ? SG_ZONE_LOOKUP_UNKNOWN
                 : error->code == SG_TOKEN_ERROR_REFUSED ? SG_ZONE_LOOKUP_REFUSED
                                                         : SG_ZONE_LOOKUP_UNAVAILABLE;
    } else if (error != NULL) {
        result = SG_ZONE_LOOKUP_UNAVAILABLE;
    }
    sg_zone_note_lookup(lookup->backend_name, result);
    lookup->dispatching = true;
    lookup->callback(tgt, error, lookup->user_data);
    lookup_free(lookup);
}

static gboolean
on_deferred_answer(gpointer data)
{
    SgTokenLookup *lookup = data;

    lookup->idle_id = 0;   /* the source goes away when we return */
    dispatch(lookup, lookup->tgt, lookup->error);
    return G_SOURCE_REMOVE;
}

SgTokenLookup *
sg_token_lookup(SgTokenBackend *backend, const char *token,
                SgTokenCallback callback, gpointer user_data)
{
    SgTokenLookup *lookup;

    g_return_val_if_fail(backend != NULL && backend->vtable != NULL, NULL);
    g_return_val_if_fail(token != NULL, NULL);
    g_return_val_if_fail(callback != NULL, NULL);

    lookup = g_new0(SgTokenLookup, 1);
    lookup->backend = backend;
    lookup->backend_name = backend->vtable->name;
    lookup->token = g_strdup(token);
    lookup->callback = callback;
    lookup->user_data = user_data;

    /* The handle stays valid after start() even when the backend answered
     * inside it: the answer then waits in an idle source, which is what
     * lets the caller store the handle before its callback can run. */
    lookup->in_start = true;
    backend->vtable->start(backend, lookup);
    lookup->in_start = false;
    return lookup;
}

void
sg_token_lookup_cancel(SgTokenLookup *lookup)
{
    if (lookup == NULL)
        return;
    /* Cancelling from inside its own callback (an owner freeing itself on
     * the answer) must not free the handle under dispatch(), which frees it
     * once the callback returns. */
    if (lookup->dispatching)
        return;
    /* A deferred answer means the backend is done with this lookup and
     * holds nothing for it; only our idle source is left to remove. */
    if (!lookup->deferred && lookup->backend->vtable->cancel != NULL)
        lookup->backend->vtable->cancel(lookup->backend, lookup);
    lookup_free(lookup);
}

const char *
sg_token_lookup_get_token(const SgTokenLookup *lookup)
{
    return lookup->token;
}

gpointer
sg_token_lookup_get_backend_data(const SgTokenLookup *lookup)
{
    return lookup->backend_data;
}

void
sg_token_lookup_set_backend_data(SgTokenLookup *lookup, gpointer data)
{
    lookup->backend_data = data;
}

void
sg_token_lookup_complete(SgTokenLookup *lookup, const SgConsoleTarget *tgt,
                         const GError *error)
{
    g_autoptr(GError) missing = NULL;

    g_return_if_fail(lookup != NULL);
    g_return_if_fail(!lookup->deferred);

    /* Exactly one of the two, as the callback's contract says. A backend
     * that gives neither (a bug) still must not leave the session hanging. */
    if (error != NULL) {
        tgt = NULL;
    } else if (tgt == NULL) {
        g_warning("token backend %s completed a lookup without an answer",
                  lookup->backend->vtable->name);
        missing = g_error_new_literal(SG_TOKEN_ERROR, SG_TOKEN_ERROR_UNAVAILABLE,
                                      "token check unavailable, try again");
        error = missing;
    }

    if (!lookup->in_start) {
        dispatch(lookup, tgt, error);
        return;
    }

    /* Called from inside start(), hence inside sg_token_lookup(): our
     * caller does not even have the handle yet. Keep copies, since the
     * backend's may not outlive this call, and answer from the loop. */
    lookup->deferred = true;
    lookup->tgt = sg_console_target_copy(tgt);
    lookup->error = error != NULL ? g_error_copy(error) : NULL;
    lookup->idle_id = g_idle_add(on_deferred_answer, lookup);
}

gboolean
sg_token_backend_reload(SgTokenBackend *backend, GError **error)
{
    g_return_val_if_fail(backend != NULL, FALSE);
    if (backend->vtable->reload == NULL)
        return TRUE;   /* nothing to re-read (e.g. an API backend) */
    return backend->vtable->reload(backend, error);
}

void
sg_token_backend_free(SgTokenBackend *backend)
{
    if (backend == NULL)
        return;
    backend->vtable->free(backend);
}
