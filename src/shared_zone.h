/* SPDX-License-Identifier: Apache-2.0 */
/* shared_zone.h - counters and limit tables shared by every worker.
 *
 * With `workers` above 1, each worker is a whole spicegate and sees only
 * its own sessions. The zone gives them one view, as nginx's shared zones
 * do: the master maps it (MAP_SHARED | MAP_ANONYMOUS) before it forks, so
 * every worker, and every worker it restarts, shares the same pages. With
 * one process the zone is the same, mapped in that process: one code path.
 *
 * Counters: one slot per worker (sessions by close reason and by channel,
 * bytes, token lookups, Keystone and Nova latency histograms: what
 * GET /metrics shows, admin.c), written only by that worker (its hub's
 * observer, sg_zone_observe()) with relaxed atomic adds on its own cache
 * lines, never locked. Readers sum the slots (sg_zone_read()). When a
 * worker dies, the master folds its slot into a "retired" slot that only
 * the master writes and zeroes it (sg_zone_retire()) before the worker is
 * restarted, so totals never go back and the sessions the dead worker held
 * count as lost; a sequence number lets readers skip a fold in progress.
 *
 * Limit tables: a few fixed-size tables of counts keyed by a string's
 * hash (a client address, a console), for limits that hold across workers
 * (sg_zone_limit_acquire()). Each table is one shared row of counts,
 * changed by compare-and-swap so that a limit is never overshot, plus one
 * row per worker of what that worker holds, which the master gives back
 * when the worker dies. Keys share a row slot when their hashes do: a
 * collision counts both keys together, so a limit may trip early for a
 * key, never late. Size tables well above the keys they will hold.
 *
 * Nothing here makes a system call after sg_zone_new(): the relay's hot
 * path pays the hub's (no per-byte work) and a few atomics per session.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <glib.h>

#include "close_code.h"
#include "sg_types.h"

#define SG_CLOSE_COUNT_ENTRY(name, code, text) +1
/* How many close reasons there are (SgCloseReason runs 0 .. this - 1). */
#define SG_CLOSE_REASONS (0 SG_CLOSE_CODES(SG_CLOSE_COUNT_ENTRY))

/* The SPICE channel types a gauge is kept for (sg_spice_channel_name()'s
 * names, "unknown" last), and the index of a name among them. */
#define SG_ZONE_CHANNELS 12
extern const char *const sg_zone_channel_names[SG_ZONE_CHANNELS];
guint sg_zone_channel_index(const char *name);

/* Token lookups, by backend and by result (token.c's answers). */
typedef enum { SG_ZONE_BACKEND_FILE = 0, SG_ZONE_BACKEND_NOVA, SG_ZONE_BACKENDS } SgZoneBackend;
typedef enum {
    SG_ZONE_LOOKUP_OK = 0,        /* a target */
    SG_ZONE_LOOKUP_UNKNOWN,       /* no such token, or expired */
    SG_ZONE_LOOKUP_UNAVAILABLE,   /* the backend could not say */
    SG_ZONE_LOOKUP_REFUSED,       /* a token we will not serve */
    SG_ZONE_LOOKUP_RESULTS
} SgZoneLookupResult;
extern const char *const sg_zone_backend_names[SG_ZONE_BACKENDS];
extern const char *const sg_zone_lookup_result_names[SG_ZONE_LOOKUP_RESULTS];

/* Requests to Keystone and Nova, timed from start to answer (or failure),
 * counted in histogram buckets whose upper bounds are
 * sg_zone_latency_bounds_us (the last bucket is +Inf). */
typedef enum { SG_ZONE_SVC_KEYSTONE = 0, SG_ZONE_SVC_NOVA, SG_ZONE_SERVICES } SgZoneService;
#define SG_ZONE_LATENCY_BUCKETS 11
extern const char *const sg_zone_service_names[SG_ZONE_SERVICES];
extern const guint64 sg_zone_latency_bounds_us[SG_ZONE_LATENCY_BUCKETS];

/* What one worker did, or all of them (sg_zone_read()). Every field is a
 * 64-bit word. The gauges come first (open .. open_channel): when a worker
 * dies they are zeroed, not added to the retired totals. */
typedef struct {
    guint64 open;                 /* sessions open now (opened, not yet closed) */
    guint64 open_channel[SG_ZONE_CHANNELS]; /* the same, by channel type */
    guint64 opened;               /* sessions that opened (both ends up, link passed) */
    /* Sessions that ended, by reason, in two words that only grow (a
     * difference of two, read without a lock, could go back between two
     * reads): sg_zone_closed() is their sum. */
    guint64 refused[SG_CLOSE_REASONS]; /* ended before they opened */
    guint64 ended[SG_CLOSE_REASONS]; /* ended after they had opened */
    guint64 lost;                 /* open in a worker that died */
    /* Bytes of the sessions that have closed (added at the close, so that
     * no one walks the open ones every second): */
    guint64 bytes_up;             /* browser -> SPICE server */
    guint64 bytes_down;           /* SPICE server -> browser */
    guint64 lookups[SG_ZONE_BACKENDS][SG_ZONE_LOOKUP_RESULTS];
    /* Not cumulative: bucket i counts requests above bound i - 1 and up to
     * bound i; the last one those above every bound. */
    guint64 latency_bucket[SG_ZONE_SERVICES][SG_ZONE_LATENCY_BUCKETS + 1];
    guint64 latency_sum_us[SG_ZONE_SERVICES];
} SgZoneStats;

/* Sessions that ended for @reason, refused ones too. */
static inline guint64
sg_zone_closed(const SgZoneStats *st, SgCloseReason reason)
{
    return st->refused[reason] + st->ended[reason];
}

/* The gauges' words: [0, SG_ZONE_GAUGE_WORDS). */
#define SG_ZONE_GAUGE_WORDS (1 + SG_ZONE_CHANNELS)

/* Maps a zone for @workers workers (1 for the only process) with
 * @tables limit tables of @table_slots counts each (a power of two, or 0
 * with @tables 0). NULL with @error when the mapping fails. */
SgZone *sg_zone_new(guint workers, guint tables, guint table_slots, GError **error);
/* Unmaps it (in this process only). NULL is a no-op. */
void sg_zone_free(SgZone *zone);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SgZone, sg_zone_free)

guint sg_zone_workers(const SgZone *zone);

/* --- a worker's side: its own slot -------------------------------------- */

/* Feeds worker @index's slot from @hub's events (opened, bytes, closed);
 * returns the observer's id in @hub. */
guint sg_zone_observe(SgZone *zone, guint index, SgHub *hub);

/* What the observer does, for tests and for other feeds. */
void sg_zone_note_opened(SgZone *zone, guint index);
void sg_zone_note_closed(SgZone *zone, guint index, SgCloseReason reason, bool was_open);
void sg_zone_note_bytes(SgZone *zone, guint index, guint64 up, guint64 down);
/* A session of channel type @channel (a name; NULL or unknown names count
 * as "unknown") opened (@open) or, having opened, closed. */
void sg_zone_note_channel(SgZone *zone, guint index, const char *channel, bool open);

/* --- this process's slot, for modules that know no zone ------------------- */

/* Token lookups and Keystone/Nova requests happen deep in the backends,
 * which hold no zone: they note into the slot this process writes, set
 * once at start (sg_zone_set_current(); until then, and in unit tests that
 * set none, the notes go nowhere). Main loop's thread only. */
void sg_zone_set_current(SgZone *zone, guint index);
/* A lookup by backend @backend (its vtable name, "file" or "nova"; others
 * are ignored) ended with @result. */
void sg_zone_note_lookup(const char *backend, SgZoneLookupResult result);
/* A request to @service took @elapsed_us (start to answer or failure). */
void sg_zone_note_latency(SgZoneService service, gint64 elapsed_us);
/* For tests: the same into a given slot. */
void sg_zone_note_lookup_in(SgZone *zone, guint index, SgZoneBackend backend,
                            SgZoneLookupResult result);
void sg_zone_note_latency_in(SgZone *zone, guint index, SgZoneService service,
                             gint64 elapsed_us);

/* --- readers --------------------------------------------------------------- */

/* The sum of every worker's slot and of the retired one. */
void sg_zone_read(SgZone *zone, SgZoneStats *out);
/* Worker @index's slot alone. */
void sg_zone_read_worker(SgZone *zone, guint index, SgZoneStats *out);

/* --- the master's side ----------------------------------------------------- */

/* Worker @index is dead (no one writes its slot): its totals move to the
 * retired slot, its open sessions count as lost, its limit counts are
 * given back, and its slot is zeroed for the worker that replaces it. */
void sg_zone_retire(SgZone *zone, guint index);

/* --- limit tables ---------------------------------------------------------- */

/* What sg_zone_limit_acquire() took, to give back with
 * sg_zone_limit_release(). */
typedef struct {
    guint32 table;
    guint32 slot;
    guint32 worker;
    bool held;
} SgZoneTicket;

/* The slot of @key in every table (a hash keyed at sg_zone_new(), so that
 * a client cannot choose keys that collide). */
guint32 sg_zone_limit_slot(const SgZone *zone, const char *key);

/* Takes one count of @key in table @table for worker @index, unless
 * @limit are taken already (across every worker): returns false then,
 * and *@ticket is not held. */
bool sg_zone_limit_acquire(SgZone *zone, guint table, guint index, const char *key,
                           guint32 limit, SgZoneTicket *ticket);
/* Gives back what *@ticket holds (a ticket not held is a no-op). */
void sg_zone_limit_release(SgZone *zone, SgZoneTicket *ticket);
/* How many are taken for @key in @table now. */
guint32 sg_zone_limit_count(SgZone *zone, guint table, const char *key);
