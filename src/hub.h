/* SPDX-License-Identifier: Apache-2.0 */
/* hub.h - the registry of live sessions, and the observers of their lives.
 *
 * A session is in the hub from the moment its websocket upgrade completes
 * (sg_hub_add(), in sg_session_new()) until its websocket is gone
 * (sg_hub_remove(), in sg_session_free()). The hub finds sessions by id,
 * by console (the token's tag, never the token), by instance UUID and by
 * client address, walks them all, and tells observers what happens to
 * them: opened, state changed, bytes moved, closed. The log's open, close
 * and refused lines are the first observer (session_log.c); metrics,
 * limits and an admin API are the next.
 *
 * The hub knows no socket and no libwebsockets: sessions tell it what
 * they learn, at their few turning points, and it keeps its own copies.
 * It costs the relay nothing per byte: sessions count bytes in their own
 * counters, which the hub reads only when someone asks (a walk, an event)
 * and on its bytes tick, which runs only while an observer wants bytes.
 * Everything here runs on the main loop's thread.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "close_code.h"
#include "sg_types.h"

typedef struct SgHubEntry SgHubEntry;

/* How often observers hear of bytes moved: each session's bytes are summed
 * over this period, not reported per send. 1 s is what a metrics scrape
 * or a throughput graph needs, and 10,000 sessions then cost one walk of
 * 10,000 counters a second. */
#define SG_HUB_BYTES_PERIOD_MS 1000

/* What a session tells the hub about itself: what changes over its life.
 * Strings are copied; NULL means not known (yet). */
typedef struct {
    const char *state;            /* a static name: "authorising", ... */
    const char *token_tag;        /* sg_log_redact() of the token: the console */
    const char *instance;         /* the backend's instance UUID */
    const char *target;           /* the SPICE server's "host:port" */
    const char *channel;          /* a static name, "main", "display", ..., once the link parsed */
    bool has_console;
    uint32_t console;             /* SPICE connection id, shared by a console's channels */
    /* Only read by sg_hub_note_close() and sg_hub_remove() (observers see
     * them in closed): */
    SgCloseReason reason;
    const char *reason_text;      /* what the log quotes: sg_close_reason_text(), mostly */
    const char *detail;           /* extra words for the log, or NULL */
} SgHubFacts;

/* What observers and walkers see of a session. Valid during the call only:
 * copy what you keep. */
typedef struct {
    guint64 id;                   /* unique in the process, and among workers */
    gpointer owner;               /* the SgSession, to act on it (not to free) */
    const char *client;           /* the browser's "addr:port" */
    const char *client_addr;      /* the browser's address alone: "10.0.0.1", "::1" */
    gint64 started_us;            /* g_get_monotonic_time() at sg_hub_add() */
    bool opened;                  /* the opened event has gone out */
    bool closed;                  /* the closed event has gone out */
    guint64 bytes_up;             /* browser -> SPICE server, delivered so far */
    guint64 bytes_down;           /* SPICE server -> browser, so far */
    SgHubFacts facts;             /* the latest the session said */
} SgHubSession;

/* Observers: any callback may be NULL. They run in the order the
 * observers were added, from inside the session's own call, so they must
 * not block and must not add or remove observers. */
typedef struct {
    /* Both ends are up and the SPICE link passed: the console is in use. */
    void (*opened)(const SgHubSession *s, gpointer data);
    /* @from: the previous state's name; the new one is s->facts.state. */
    void (*state_changed)(const SgHubSession *s, const char *from, gpointer data);
    /* @up and @down bytes moved since the last call (or since the session
     * started): at most every SG_HUB_BYTES_PERIOD_MS, and once more before
     * closed, so that the calls add up to the session's totals. */
    void (*bytes)(const SgHubSession *s, guint64 up, guint64 down, gpointer data);
    /* The session is over; s->facts.reason says why, s->opened whether it
     * had opened. Exactly once per session: when it leaves the hub, or,
     * for a session refused before it opened, as soon as the refusal is
     * decided (it leaves a little later, with no second call). */
    void (*closed)(const SgHubSession *s, gpointer data);
} SgHubObserver;

/* A hub whose session ids are @index + 1, @index + 1 + @count, ...: with
 * `workers`, worker @index of @count, so that ids stay unique across the
 * workers' logs; (0, 1) for the only process. */
SgHub *sg_hub_new(guint index, guint count);
/* Every session must have left. NULL is a no-op. */
void sg_hub_free(SgHub *hub);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SgHub, sg_hub_free)

/* Adds an observer; @observer is copied, @data is passed to each call.
 * Returns its id for sg_hub_remove_observer(). */
guint sg_hub_add_observer(SgHub *hub, const SgHubObserver *observer, gpointer data);
void sg_hub_remove_observer(SgHub *hub, guint id);

/* --- sessions' side ----------------------------------------------------------- */

/* Registers @owner (not owned) from @client ("addr:port", copied), and
 * gives it its id. The hub reads *@bytes_up and *@bytes_down, the
 * session's own counters, whenever it reports bytes: they must stay valid
 * until sg_hub_remove(). Returns the session's place in the hub, which
 * the session passes to the calls below. */
SgHubEntry *sg_hub_add(SgHub *hub, gpointer owner, const char *client, const guint64 *bytes_up,
                       const guint64 *bytes_down);
guint64 sg_hub_entry_get_id(const SgHubEntry *entry);

/* The session moved from state @from to @facts->state. */
void sg_hub_note_state(SgHubEntry *entry, const SgHubFacts *facts, const char *from);
/* The session opened (once; later calls are ignored). */
void sg_hub_note_open(SgHubEntry *entry, const SgHubFacts *facts);
/* The session's outcome is decided (@facts->reason): observers hear
 * closed now, once; later calls and sg_hub_remove() say it no more. */
void sg_hub_note_close(SgHubEntry *entry, const SgHubFacts *facts);
/* The session is gone: closed goes out if it has not, then @entry is
 * freed. NULL is a no-op. */
void sg_hub_remove(SgHubEntry *entry, const SgHubFacts *facts);

/* --- everyone else's side -------------------------------------------------- */

typedef enum {
    SG_HUB_BY_TOKEN_TAG = 0,      /* a console: "tok:0123abcd" */
    SG_HUB_BY_INSTANCE,           /* an instance UUID */
    SG_HUB_BY_CLIENT_ADDR,        /* a browser's address, any port: "10.0.0.1", "::1" */
} SgHubKey;

/* Called for each session found or walked. It may close sessions, even
 * make them leave the hub: a session that has left by the time the walk
 * reaches it is skipped. */
typedef void (*SgHubFunc)(const SgHubSession *s, gpointer data);

guint sg_hub_count(const SgHub *hub);

/* The session with id @id, or NULL. Valid until the session leaves or
 * changes: use it at once. */
const SgHubSession *sg_hub_find(SgHub *hub, guint64 id);

/* Calls @func for every session whose @key is @value, oldest first.
 * Returns how many it called @func for. */
guint sg_hub_find_by(SgHub *hub, SgHubKey key, const char *value, SgHubFunc func,
                     gpointer data);

/* Calls @func for every session, oldest first; returns how many. */
guint sg_hub_foreach(SgHub *hub, SgHubFunc func, gpointer data);

/* The address part of "addr:port", "[v6]:port" or a bare address, as the
 * hub indexes it (newly allocated). */
char *sg_hub_client_addr(const char *client);
