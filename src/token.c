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

#include "log.h"
#include "shared_zone.h"
#include "token.h"

G_DEFINE_QUARK(sg-token-error-quark, sg_token_error)

struct SgTokenLookup {
    SgTokenBackend *backend;      /* not owned */
    const char *backend_name;     /* static (the vtable's): a deferred answer may
                                   * outlive the backend */
    char *token;                  /* secret: wiped before it is freed; NULL when
                                   * checking an instance */
    char *instance;               /* check_instance(): the instance asked about */
    const SgConsoleTarget *answer; /* during the callback: its target, for watch() */
    SgTokenCallback callback;
    gpointer user_data;
    gpointer backend_data;        /* owned by the backend */
    guint idle_id;                /* delivers a deferred answer; 0 when none */
    bool in_start;                /* inside vtable->start(): answers must wait */
    bool deferred;                /* backend answered; only the idle is left */
    bool dispatching;             /* inside the callback: cancel() is a no-op */
    bool recheck;                 /* a re-check of a watched token: not from a cache */
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
    copy->tls_port = tgt->tls_port;
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
    g_free(lookup->instance);
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
    lookup->answer = tgt;
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

const char *
sg_token_lookup_get_instance(const SgTokenLookup *lookup)
{
    return lookup->instance;
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
sg_token_lookup_is_recheck(const SgTokenLookup *lookup)
{
    return lookup->recheck;
}

/* --- watches and re-checks ------------------------------------------------- */

typedef struct Watched Watched;

struct SgTokenWatches {
    SgTokenBackend *backend;      /* the owner */
    GHashTable *by_token;         /* token -> Watched*; the record owns the key */
    GHashTable *by_instance;      /* instance -> Watched* whose token is forgotten
                                   * (check_instance backends); the record owns the key */
    guint interval_s;             /* 0: no rounds */
    guint max_in_flight;
    guint timer_id;               /* the next round; 0 when none is due */
    GQueue round;                 /* Watched* this round has yet to check */
    guint in_flight;              /* re-checks asking now */
    bool round_running;
    /* This round so far, for its one summary line. */
    guint round_checked;
    guint round_failed;
    guint round_revoked;
    char *round_error;            /* the first failure's message */
};

struct Watched {
    SgTokenWatches *ws;
    char *token;                  /* secret: wiped before it is freed; NULL once
                                   * its instance is watched instead */
    char *tag;                    /* sg_log_redact(token) */
    char *instance;               /* the first answer's instance_uuid, or NULL */
    bool by_instance;             /* keyed by instance in ws->by_instance */
    bool unverifiable;            /* token unknown, no instance to ask about: kept,
                                   * no longer re-checked */
    bool instance_seen;           /* its instance was found alive at least once */
    GQueue watches;               /* SgTokenWatch*, oldest first */
    SgTokenLookup *recheck;       /* in flight, or NULL */
    GList round_link;             /* in ws->round while queued */
    bool queued;
    bool revoking;                /* revoke_watched() is telling the watches */
};

struct SgTokenWatch {
    Watched *w;                   /* NULL once revoked, or when the backend went first */
    SgTokenRevokedFunc func;
    gpointer user_data;
    GList link;                   /* in w->watches */
    bool firing;                  /* inside func: cancel() is a no-op */
};

static void round_pump(SgTokenWatches *ws);

static SgTokenWatches *
watches_of(SgTokenBackend *backend)
{
    if (backend->watches == NULL) {
        SgTokenWatches *ws = g_new0(SgTokenWatches, 1);

        ws->backend = backend;
        ws->by_token = g_hash_table_new(g_str_hash, g_str_equal);
        ws->by_instance = g_hash_table_new(g_str_hash, g_str_equal);
        g_queue_init(&ws->round);
        backend->watches = ws;
    }
    return backend->watches;
}

static GHashTable *
table_of(Watched *w)
{
    return w->by_instance ? w->ws->by_instance : w->ws->by_token;
}

static const char *
key_of(Watched *w)
{
    return w->by_instance ? w->instance : w->token;
}

/* Takes @w out of its table, unless a new record took its key there. */
static void
unlist(Watched *w)
{
    if (g_hash_table_lookup(table_of(w), key_of(w)) == w)
        g_hash_table_remove(table_of(w), key_of(w));
}

/* Forgets @w: its re-check, its place in the round, its token. Its
 * watches must have gone, or be detached by the caller. */
static void
watched_free(Watched *w)
{
    SgTokenWatches *ws = w->ws;
    bool in_round = w->queued || w->recheck != NULL;

    /* revoke_watched() took it out of the table already; a new record for the
     * same key may be there by now. */
    unlist(w);
    if (w->queued)
        g_queue_unlink(&ws->round, &w->round_link);
    if (w->recheck != NULL) {
        g_clear_pointer(&w->recheck, sg_token_lookup_cancel);
        ws->in_flight--;
    }
    g_free(w->tag);
    g_free(w->instance);
    wipe_free(w->token);
    g_free(w);
    /* Its slot goes to the next token of the round, or the round ends. */
    if (in_round)
        round_pump(ws);
}

SgTokenWatch *
sg_token_lookup_watch(SgTokenLookup *lookup, SgTokenRevokedFunc func, gpointer user_data)
{
    SgTokenWatches *ws;
    SgTokenWatch *watch;
    Watched *w;

    g_return_val_if_fail(lookup != NULL && lookup->dispatching, NULL);
    g_return_val_if_fail(func != NULL, NULL);

    ws = watches_of(lookup->backend);
    w = g_hash_table_lookup(ws->by_token, lookup->token);
    if (w == NULL) {
        w = g_new0(Watched, 1);
        w->ws = ws;
        w->token = g_strdup(lookup->token);
        w->tag = sg_log_redact(lookup->token);
        /* Only from a backend that can check it, and never the token. */
        if (lookup->answer != NULL && lookup->answer->instance_uuid != NULL &&
            lookup->backend->vtable->check_instance != NULL)
            w->instance = g_strdup(lookup->answer->instance_uuid);
        g_queue_init(&w->watches);
        w->round_link.data = w;
        g_hash_table_insert(ws->by_token, w->token, w);
    }
    watch = g_new0(SgTokenWatch, 1);
    watch->w = w;
    watch->func = func;
    watch->user_data = user_data;
    watch->link.data = watch;
    g_queue_push_tail_link(&w->watches, &watch->link);
    return watch;
}

void
sg_token_watch_cancel(SgTokenWatch *watch)
{
    Watched *w;

    if (watch == NULL || watch->firing)
        return;
    w = watch->w;
    if (w != NULL) {
        g_queue_unlink(&w->watches, &watch->link);
        /* The last session of the console is gone: nothing left to
         * re-check, and the token need not stay in memory. */
        if (g_queue_is_empty(&w->watches) && !w->revoking)
            watched_free(w);
    }
    g_free(watch);
}

guint
sg_token_backend_n_watched(const SgTokenBackend *backend)
{
    return backend->watches != NULL ? g_hash_table_size(backend->watches->by_token) +
                                          g_hash_table_size(backend->watches->by_instance)
                                    : 0;
}

gboolean
sg_token_backend_revalidating(const SgTokenBackend *backend)
{
    return backend->watches != NULL && backend->watches->round_running;
}

/* The backend no longer knows @w's token: every watch hears it, in the
 * order they came, then the record goes. A callback may cancel other
 * watches (of this token or any) and start lookups. */
static void
revoke_watched(Watched *w, const char *detail)
{
    SgTokenWatches *ws = w->ws;
    GList *link;

    if (w->by_instance)
        g_message("tokens: the consoles of instance %s revoked (%s): closing their %u live "
                  "websocket(s)", w->instance, detail, g_queue_get_length(&w->watches));
    else
        g_message("tokens: %s revoked (%s): closing its %u live websocket(s)", w->tag, detail,
                  g_queue_get_length(&w->watches));
    ws->round_revoked++;
    w->revoking = true;
    /* Watches made from now on (a lookup that a cache answered) are a new
     * record's, which the next round checks. */
    g_hash_table_remove(table_of(w), key_of(w));
    while ((link = g_queue_pop_head_link(&w->watches)) != NULL) {
        SgTokenWatch *watch = link->data;

        watch->w = NULL;
        watch->firing = true;
        watch->func(watch, detail, watch->user_data);
        g_free(watch);
    }
    watched_free(w);
}

/* The round is over: one line says how it went, a warning when some
 * token could not be checked. At most one a round, so at most one an
 * interval, however many consoles are open. */
static void
round_end(SgTokenWatches *ws)
{
    const char *backend = ws->backend->vtable->name;

    ws->round_running = false;
    if (ws->round_failed > 0)
        g_warning("tokens: %u of %u re-check(s) of live consoles' tokens failed (first: %s); "
                  "their consoles stay open until %s can say (re-checks fail open)",
                  ws->round_failed, ws->round_checked, ws->round_error, backend);
    else
        g_debug("tokens: %u live console token(s) re-checked with %s, %u revoked",
                ws->round_checked, backend, ws->round_revoked);
    g_clear_pointer(&ws->round_error, g_free);
}

/* @w's token is unknown to a backend that can check instances: from now
 * on @w is re-checked by its instance, the token forgotten. A record of
 * the same instance takes @w's watches if there is one (it is checked
 * this round already, or will be); else @w is asked about first in this
 * round. */
static void
watch_instance(Watched *w)
{
    SgTokenWatches *ws = w->ws;
    Watched *into;
    GList *link;

    g_debug("tokens: %s unknown to %s (expired, reset or revoked): asking about its "
            "instance %s", w->tag, ws->backend->vtable->name, w->instance);
    unlist(w);
    g_clear_pointer(&w->token, wipe_free);
    w->by_instance = true;
    into = g_hash_table_lookup(ws->by_instance, w->instance);
    if (into == NULL) {
        g_hash_table_insert(ws->by_instance, w->instance, w);
        w->queued = true;
        g_queue_push_head_link(&ws->round, &w->round_link);
        return;
    }
    while ((link = g_queue_pop_head_link(&w->watches)) != NULL) {
        ((SgTokenWatch *)link->data)->w = into;
        g_queue_push_tail_link(&into->watches, link);
    }
    g_free(w->tag);
    g_free(w->instance);
    g_free(w);
}

static void
on_recheck(const SgConsoleTarget *tgt, const GError *error, gpointer data)
{
    Watched *w = data;
    SgTokenWatches *ws = w->ws;
    const char *backend = ws->backend->vtable->name;

    (void)tgt;
    w->recheck = NULL;            /* the handle is freed after this callback */
    ws->in_flight--;
    ws->round_checked++;
    if (error != NULL && g_error_matches(error, SG_TOKEN_ERROR, SG_TOKEN_ERROR_UNKNOWN) &&
        w->by_instance) {
        g_autofree char *detail = g_strdup_printf("%s: %s", backend, error->message);

        revoke_watched(w, detail); /* frees w */
    } else if (error != NULL && g_error_matches(error, SG_TOKEN_ERROR, SG_TOKEN_ERROR_UNKNOWN) &&
               w->instance != NULL) {
        /* Nova answers an expired token as a revoked one: its instance
         * tells them apart. */
        watch_instance(w);
    } else if (error != NULL && g_error_matches(error, SG_TOKEN_ERROR, SG_TOKEN_ERROR_UNKNOWN) &&
               ws->backend->vtable->check_instance != NULL) {
        /* Nothing to tell an expired token from a revoked one: keep. */
        g_message("tokens: %s unknown to %s now, and no instance to ask about: its %u live "
                  "websocket(s) stay open, no longer re-checked", w->tag, backend,
                  g_queue_get_length(&w->watches));
        w->unverifiable = true;
    } else if (error != NULL && g_error_matches(error, SG_TOKEN_ERROR, SG_TOKEN_ERROR_UNKNOWN)) {
        g_autofree char *detail = g_strdup_printf("%s no longer knows it", backend);

        revoke_watched(w, detail); /* frees w */
    } else if (error == NULL && w->by_instance && !w->instance_seen) {
        /* Once per instance: its token expired, or its console was reset,
         * while it lives. Nova's own proxy keeps such consoles too. */
        w->instance_seen = true;
        g_message("tokens: instance %s lives (its console token expired or was reset): its "
                  "%u live websocket(s) stay open; re-checked by instance from now on",
                  w->instance, g_queue_get_length(&w->watches));
    } else if (error != NULL) {
        g_debug("tokens: re-check of %s failed, its consoles stay open: %s", w->tag,
                error->message);
        ws->round_failed++;
        if (ws->round_error == NULL)
            ws->round_error = g_strdup(error->message);
    }
    round_pump(ws);
}

/* Starts queued re-checks while fewer than max_in_flight are asking;
 * ends the round when none is left. */
static void
round_pump(SgTokenWatches *ws)
{
    while (ws->in_flight < ws->max_in_flight && !g_queue_is_empty(&ws->round)) {
        Watched *w = g_queue_pop_head_link(&ws->round)->data;
        SgTokenLookup *lookup;

        w->queued = false;
        lookup = g_new0(SgTokenLookup, 1);
        lookup->backend = ws->backend;
        lookup->callback = on_recheck;
        lookup->user_data = w;
        lookup->recheck = true;
        w->recheck = lookup;
        ws->in_flight++;
        lookup->in_start = true;
        if (w->by_instance) {
            lookup->instance = g_strdup(w->instance);
            ws->backend->vtable->check_instance(ws->backend, lookup);
        } else {
            lookup->token = g_strdup(w->token);
            ws->backend->vtable->start(ws->backend, lookup);
        }
        lookup->in_start = false;
    }
    if (ws->round_running && ws->in_flight == 0 && g_queue_is_empty(&ws->round))
        round_end(ws);
}

static void
round_start(SgTokenWatches *ws)
{
    GHashTableIter iter;
    gpointer value;

    if (ws->round_running) {
        g_debug("tokens: re-checks of the last round still running; the next waits");
        return;
    }
    ws->round_running = true;
    ws->round_checked = ws->round_failed = ws->round_revoked = 0;
    for (int i = 0; i < 2; i++) {
        g_hash_table_iter_init(&iter, i == 0 ? ws->by_token : ws->by_instance);
        while (g_hash_table_iter_next(&iter, NULL, &value)) {
            Watched *w = value;

            if (w->recheck == NULL && !w->queued && !w->unverifiable) {
                w->queued = true;
                g_queue_push_tail_link(&ws->round, &w->round_link);
            }
        }
    }
    round_pump(ws);
}

static gboolean
on_round_due(gpointer data)
{
    round_start(data);
    return G_SOURCE_CONTINUE;
}

void
sg_token_backend_set_revalidate(SgTokenBackend *backend, guint interval_s, guint max_in_flight)
{
    SgTokenWatches *ws = watches_of(backend);

    ws->interval_s = interval_s;
    ws->max_in_flight = MAX(max_in_flight, 1u);
    g_clear_handle_id(&ws->timer_id, g_source_remove);
    if (interval_s > 0)
        ws->timer_id = g_timeout_add_seconds(interval_s, on_round_due, ws);
}

void
sg_token_backend_revalidate_now(SgTokenBackend *backend)
{
    SgTokenWatches *ws = watches_of(backend);

    if (ws->max_in_flight == 0)
        ws->max_in_flight = 1;
    round_start(ws);
}

/* The backend goes: re-checks are cancelled (while the backend can still
 * be told), tokens wiped; a watch still held is detached, and its
 * cancel() then only frees it. */
static void
watches_free(SgTokenWatches *ws)
{
    GHashTableIter iter;
    gpointer value;

    g_clear_handle_id(&ws->timer_id, g_source_remove);
    for (int i = 0; i < 2; i++) {
        g_hash_table_iter_init(&iter, i == 0 ? ws->by_token : ws->by_instance);
        while (g_hash_table_iter_next(&iter, NULL, &value)) {
            Watched *w = value;
            GList *link;

            while ((link = g_queue_pop_head_link(&w->watches)) != NULL)
                ((SgTokenWatch *)link->data)->w = NULL;
            g_hash_table_iter_steal(&iter);
            if (w->queued)
                g_queue_unlink(&ws->round, &w->round_link);
            g_clear_pointer(&w->recheck, sg_token_lookup_cancel);
            g_free(w->tag);
            g_free(w->instance);
            wipe_free(w->token);
            g_free(w);
        }
    }
    g_hash_table_unref(ws->by_token);
    g_hash_table_unref(ws->by_instance);
    g_free(ws->round_error);
    g_free(ws);
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
    g_clear_pointer(&backend->watches, watches_free);
    backend->vtable->free(backend);
}
