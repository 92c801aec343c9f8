/* SPDX-License-Identifier: Apache-2.0 */
/* shared_zone.c - counters and limit tables shared by every worker.
 *
 * Owns: one anonymous shared mapping, laid out as a header, the retired
 * slot, one slot per worker (each on its own cache lines), then the limit
 * tables' shared rows and each worker's rows. Must not: lock, make a
 * system call after the mapping, or hold a pointer into another process.
 *
 * Writers: a worker writes its own slot and its own limit rows; the
 * master writes the retired slot and, while a worker is dead, that
 * worker's slot and rows; everyone changes the shared limit rows, by
 * compare-and-swap. Everything is a relaxed atomic except the readers'
 * sequence check around a fold (sg_zone_retire()).
 */
#include "autoconfig.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include <gio/gio.h>
#include <glib.h>

#include "hub.h"
#include "shared_zone.h"

#define SG_ZONE_MAGIC 0x53475a4f4e453031ULL    /* "SGZONE01" */
#define SG_ZONE_LINE 64

/* A slot: an SgZoneStats of 64-bit words, padded to whole cache lines so
 * that two workers never write the same line. */
typedef union {
    SgZoneStats stats;
    guint64 words[sizeof(SgZoneStats) / sizeof(guint64)];
    guint8 pad[(sizeof(SgZoneStats) + SG_ZONE_LINE - 1) / SG_ZONE_LINE * SG_ZONE_LINE];
} ZoneSlot;

G_STATIC_ASSERT(sizeof(SgZoneStats) % sizeof(guint64) == 0);
G_STATIC_ASSERT(sizeof(ZoneSlot) % SG_ZONE_LINE == 0);

typedef struct {
    guint64 magic;
    guint64 seed;                 /* of the limit tables' hash */
    guint32 workers;
    guint32 tables;
    guint32 table_slots;
    guint32 pad0;
    guint64 seq;                  /* odd while the master folds a slot */
} ZoneHeader;

const char *const sg_zone_channel_names[SG_ZONE_CHANNELS] = {
    "main", "display", "inputs", "cursor", "playback", "record", "tunnel", "smartcard",
    "usbredir", "port", "webdav", "unknown",
};
const char *const sg_zone_backend_names[SG_ZONE_BACKENDS] = { "file", "nova" };
const char *const sg_zone_lookup_result_names[SG_ZONE_LOOKUP_RESULTS] = {
    "ok", "unknown", "unavailable", "refused",
};
const char *const sg_zone_service_names[SG_ZONE_SERVICES] = { "keystone", "nova" };
/* 5 ms (a cached Keystone answer on a LAN) to 10 s ([nova] timeout's
 * default): the range a token check can take. */
const guint64 sg_zone_latency_bounds_us[SG_ZONE_LATENCY_BUCKETS] = {
    5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
};

G_STATIC_ASSERT(G_STRUCT_OFFSET(SgZoneStats, open) == 0);
G_STATIC_ASSERT(G_STRUCT_OFFSET(SgZoneStats, opened) ==
                SG_ZONE_GAUGE_WORDS * sizeof(guint64));

guint
sg_zone_channel_index(const char *name)
{
    for (guint i = 0; name != NULL && i < SG_ZONE_CHANNELS - 1; i++) {
        if (g_str_equal(name, sg_zone_channel_names[i]))
            return i;
    }
    return SG_ZONE_CHANNELS - 1;
}

/* This process's handle on the mapping. */
struct SgZone {
    void *map;
    gsize size;
    ZoneHeader *header;
    ZoneSlot *retired;
    ZoneSlot *slots;              /* [workers] */
    guint32 *shared;              /* [tables][table_slots] */
    guint32 *held;                /* [workers][tables][table_slots] */
    guint observed_index;         /* the worker this process's observer feeds */
};

static gsize
round_line(gsize n)
{
    return (n + SG_ZONE_LINE - 1) / SG_ZONE_LINE * SG_ZONE_LINE;
}

SgZone *
sg_zone_new(guint workers, guint tables, guint table_slots, GError **error)
{
    gsize off_retired = round_line(sizeof(ZoneHeader));
    gsize off_slots = off_retired + sizeof(ZoneSlot);
    gsize off_shared = off_slots + (gsize)workers * sizeof(ZoneSlot);
    gsize row = (gsize)table_slots * sizeof(guint32);
    gsize off_held = off_shared + round_line((gsize)tables * row);
    gsize size = off_held + (gsize)workers * tables * row;
    SgZone *zone;
    void *map;

    g_return_val_if_fail(workers > 0, NULL);
    g_return_val_if_fail(tables == 0 || (table_slots > 0 &&
                                         (table_slots & (table_slots - 1)) == 0), NULL);
    map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (map == MAP_FAILED) {
        int e = errno;

        g_set_error(error, G_IO_ERROR, g_io_error_from_errno(e),
                    "cannot map %" G_GSIZE_FORMAT " bytes of shared memory: %s", size,
                    g_strerror(e));
        return NULL;
    }
    /* Anonymous mappings start zeroed. */
    zone = g_new0(SgZone, 1);
    zone->map = map;
    zone->size = size;
    zone->header = map;
    zone->retired = (ZoneSlot *)((guint8 *)map + off_retired);
    zone->slots = (ZoneSlot *)((guint8 *)map + off_slots);
    zone->shared = (guint32 *)((guint8 *)map + off_shared);
    zone->held = (guint32 *)((guint8 *)map + off_held);
    zone->header->magic = SG_ZONE_MAGIC;
    zone->header->seed = ((guint64)g_random_int() << 32) | g_random_int();
    zone->header->workers = workers;
    zone->header->tables = tables;
    zone->header->table_slots = table_slots;
    return zone;
}

void
sg_zone_free(SgZone *zone)
{
    if (zone == NULL)
        return;
    munmap(zone->map, zone->size);
    g_free(zone);
}

guint
sg_zone_workers(const SgZone *zone)
{
    return zone->header->workers;
}

/* --- a worker's side ------------------------------------------------------- */

static ZoneSlot *
slot_of(SgZone *zone, guint index)
{
    g_return_val_if_fail(index < zone->header->workers, &zone->slots[0]);
    return &zone->slots[index];
}

/* One writer per slot: an add that no other process races with, atomic
 * only so that readers never see a torn word. */
static inline void
add(guint64 *word, guint64 n)
{
    __atomic_fetch_add(word, n, __ATOMIC_RELAXED);
}

void
sg_zone_note_opened(SgZone *zone, guint index)
{
    ZoneSlot *slot = slot_of(zone, index);

    add(&slot->stats.opened, 1);
    add(&slot->stats.open, 1);
}

void
sg_zone_note_closed(SgZone *zone, guint index, SgCloseReason reason, bool was_open)
{
    ZoneSlot *slot = slot_of(zone, index);

    g_return_if_fail((guint)reason < SG_CLOSE_REASONS);
    if (was_open) {
        __atomic_fetch_sub(&slot->stats.open, 1, __ATOMIC_RELAXED);
        add(&slot->stats.ended[reason], 1);
    } else {
        add(&slot->stats.refused[reason], 1);
    }
}

void
sg_zone_note_channel(SgZone *zone, guint index, const char *channel, bool open)
{
    ZoneSlot *slot = slot_of(zone, index);
    guint64 *word = &slot->stats.open_channel[sg_zone_channel_index(channel)];

    if (open)
        add(word, 1);
    else
        __atomic_fetch_sub(word, 1, __ATOMIC_RELAXED);
}

void
sg_zone_note_lookup_in(SgZone *zone, guint index, SgZoneBackend backend,
                       SgZoneLookupResult result)
{
    g_return_if_fail(backend < SG_ZONE_BACKENDS && result < SG_ZONE_LOOKUP_RESULTS);
    add(&slot_of(zone, index)->stats.lookups[backend][result], 1);
}

void
sg_zone_note_latency_in(SgZone *zone, guint index, SgZoneService service, gint64 elapsed_us)
{
    ZoneSlot *slot = slot_of(zone, index);
    guint b = 0;

    g_return_if_fail(service < SG_ZONE_SERVICES);
    elapsed_us = MAX(elapsed_us, 0);
    while (b < SG_ZONE_LATENCY_BUCKETS && (guint64)elapsed_us > sg_zone_latency_bounds_us[b])
        b++;
    add(&slot->stats.latency_bucket[service][b], 1);
    add(&slot->stats.latency_sum_us[service], (guint64)elapsed_us);
}

/* The slot this process writes: set once in each process (a worker after
 * its fork), read on the main loop's thread. */
static SgZone *current_zone;
static guint current_index;

void
sg_zone_set_current(SgZone *zone, guint index)
{
    current_zone = zone;
    current_index = index;
}

void
sg_zone_note_lookup(const char *backend, SgZoneLookupResult result)
{
    for (guint b = 0; current_zone != NULL && backend != NULL && b < SG_ZONE_BACKENDS; b++) {
        if (g_str_equal(backend, sg_zone_backend_names[b]))
            sg_zone_note_lookup_in(current_zone, current_index, (SgZoneBackend)b, result);
    }
}

void
sg_zone_note_latency(SgZoneService service, gint64 elapsed_us)
{
    if (current_zone != NULL)
        sg_zone_note_latency_in(current_zone, current_index, service, elapsed_us);
}

void
sg_zone_note_bytes(SgZone *zone, guint index, guint64 up, guint64 down)
{
    ZoneSlot *slot = slot_of(zone, index);

    add(&slot->stats.bytes_up, up);
    add(&slot->stats.bytes_down, down);
}

static void
on_opened(const SgHubSession *s, gpointer data)
{
    SgZone *zone = data;

    sg_zone_note_opened(zone, zone->observed_index);
    sg_zone_note_channel(zone, zone->observed_index, s->facts.channel, true);
}

/* A session's bytes are added once, when it closes: asking the hub for
 * bytes as they move would have it walk every session each second. */
static void
on_closed(const SgHubSession *s, gpointer data)
{
    SgZone *zone = data;

    sg_zone_note_bytes(zone, zone->observed_index, s->bytes_up, s->bytes_down);
    sg_zone_note_closed(zone, zone->observed_index, s->facts.reason, s->opened);
    if (s->opened)
        sg_zone_note_channel(zone, zone->observed_index, s->facts.channel, false);
}

guint
sg_zone_observe(SgZone *zone, guint index, SgHub *hub)
{
    static const SgHubObserver observer = {
        .opened = on_opened,
        .closed = on_closed,
    };

    g_return_val_if_fail(index < zone->header->workers, 0);
    zone->observed_index = index;
    return sg_hub_add_observer(hub, &observer, zone);
}

/* --- readers --------------------------------------------------------------- */

static void
add_slot(SgZoneStats *out, ZoneSlot *slot)
{
    guint64 *to = (guint64 *)out;

    for (gsize i = 0; i < G_N_ELEMENTS(slot->words); i++)
        to[i] += __atomic_load_n(&slot->words[i], __ATOMIC_RELAXED);
}

void
sg_zone_read(SgZone *zone, SgZoneStats *out)
{
    guint64 seq;

    /* A fold moves a slot's totals into the retired slot: read again if
     * one ran meanwhile, so that a sum never counts a slot twice or not
     * at all. Folds are rare (a worker died), so this hardly ever loops. */
    do {
        seq = __atomic_load_n(&zone->header->seq, __ATOMIC_ACQUIRE);
        if (seq & 1)
            continue;
        memset(out, 0, sizeof(*out));
        add_slot(out, zone->retired);
        for (guint i = 0; i < zone->header->workers; i++)
            add_slot(out, &zone->slots[i]);
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
    } while ((seq & 1) || __atomic_load_n(&zone->header->seq, __ATOMIC_RELAXED) != seq);
}

void
sg_zone_read_worker(SgZone *zone, guint index, SgZoneStats *out)
{
    memset(out, 0, sizeof(*out));
    add_slot(out, slot_of(zone, index));
}

/* --- limit tables ---------------------------------------------------------- */

static guint32 *
shared_count(SgZone *zone, guint table, guint32 slot)
{
    return &zone->shared[(gsize)table * zone->header->table_slots + slot];
}

static guint32 *
held_count(SgZone *zone, guint worker, guint table, guint32 slot)
{
    const ZoneHeader *h = zone->header;

    return &zone->held[((gsize)worker * h->tables + table) * h->table_slots + slot];
}

guint32
sg_zone_limit_slot(const SgZone *zone, const char *key)
{
    /* FNV-1a from the zone's seed, then splitmix64's finaliser so that
     * every bit of the key reaches the low bits we keep. */
    guint64 h = zone->header->seed ^ 0xcbf29ce484222325ULL;

    for (const guchar *p = (const guchar *)key; *p != '\0'; p++) {
        h ^= *p;
        h *= 0x100000001b3ULL;
    }
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return (guint32)(h & (zone->header->table_slots - 1));
}

bool
sg_zone_limit_acquire(SgZone *zone, guint table, guint index, const char *key, guint32 limit,
                      SgZoneTicket *ticket)
{
    guint32 slot;
    guint32 *count;
    guint32 seen;

    *ticket = (SgZoneTicket){ 0 };
    g_return_val_if_fail(table < zone->header->tables && index < zone->header->workers, false);
    slot = sg_zone_limit_slot(zone, key);
    count = shared_count(zone, table, slot);
    seen = __atomic_load_n(count, __ATOMIC_RELAXED);
    do {
        if (seen >= limit)
            return false;
    } while (!__atomic_compare_exchange_n(count, &seen, seen + 1, true, __ATOMIC_RELAXED,
                                          __ATOMIC_RELAXED));
    /* Only this worker writes its row; the master reads it once we are
     * dead. Dying between the two adds leaks one count: a limit one
     * lower for that key until the master restarts. */
    __atomic_fetch_add(held_count(zone, index, table, slot), 1, __ATOMIC_RELAXED);
    *ticket = (SgZoneTicket){ .table = table, .slot = slot, .worker = index, .held = true };
    return true;
}

void
sg_zone_limit_release(SgZone *zone, SgZoneTicket *ticket)
{
    if (!ticket->held)
        return;
    __atomic_fetch_sub(held_count(zone, ticket->worker, ticket->table, ticket->slot), 1,
                       __ATOMIC_RELAXED);
    __atomic_fetch_sub(shared_count(zone, ticket->table, ticket->slot), 1, __ATOMIC_RELAXED);
    ticket->held = false;
}

guint32
sg_zone_limit_count(SgZone *zone, guint table, const char *key)
{
    g_return_val_if_fail(table < zone->header->tables, 0);
    return __atomic_load_n(shared_count(zone, table, sg_zone_limit_slot(zone, key)),
                           __ATOMIC_RELAXED);
}

/* --- the master's side ----------------------------------------------------- */

void
sg_zone_retire(SgZone *zone, guint index)
{
    ZoneHeader *h = zone->header;
    ZoneSlot *slot = slot_of(zone, index);
    guint64 open;

    /* Odd: readers wait for the fold to end (sg_zone_read()). */
    __atomic_fetch_add(&h->seq, 1, __ATOMIC_ACQ_REL);
    open = __atomic_load_n(&slot->stats.open, __ATOMIC_RELAXED);
    for (gsize i = 0; i < G_N_ELEMENTS(slot->words); i++) {
        guint64 v = __atomic_exchange_n(&slot->words[i], 0, __ATOMIC_RELAXED);

        /* Gauges (what was open) die with the worker. */
        if (i >= SG_ZONE_GAUGE_WORDS)
            add(&zone->retired->words[i], v);
    }
    add(&zone->retired->stats.lost, open);
    __atomic_fetch_add(&h->seq, 1, __ATOMIC_RELEASE);

    /* Its limit counts: given back to everyone. */
    for (guint t = 0; t < h->tables; t++) {
        for (guint32 s = 0; s < h->table_slots; s++) {
            guint32 held = __atomic_exchange_n(held_count(zone, index, t, s), 0,
                                               __ATOMIC_RELAXED);

            if (held > 0)
                __atomic_fetch_sub(shared_count(zone, t, s), held, __ATOMIC_RELAXED);
        }
    }
}
