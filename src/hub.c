/* SPDX-License-Identifier: Apache-2.0 */
/* hub.c - the registry of live sessions and its observers.
 *
 * Owns: one entry per live session (copies of what the session said), the
 * indexes over them, the observer list and the bytes tick. Must not: know
 * sockets or lws, keep a session's pointers beyond sg_hub_remove(), touch
 * a token (only its tag), or do work per byte relayed.
 *
 * Indexes: id -> entry (a hash table); token tag, instance UUID and client
 * address -> a queue of entries, oldest first, whose links live inside the
 * entries, so that a session leaves every index in O(1) however many
 * sessions share its console or its address (a whole office behind one
 * NAT address). Walks first copy the ids they will visit, then look each
 * one up again, so that a callback may close or remove any session.
 */
#include "autoconfig.h"

#include <string.h>

#include <glib.h>

#include "hub.h"

#define SG_HUB_KEYS 3

struct SgHubEntry {
    SgHub *hub;
    SgHubSession view;            /* its strings point into the copies below */
    /* Ours; a few hundred bytes per idle session in all, so copied only
     * when they change, and the close words only once closing. */
    char *client;
    char *client_addr;
    char *token_tag;
    char *instance;
    char *target;
    char *reason_text;
    char *detail;
    const guint64 *bytes_up;      /* the session's own counters */
    const guint64 *bytes_down;
    guint64 reported_up;          /* what observers have heard of */
    guint64 reported_down;
    GList order_link;             /* in hub->order */
    GList key_links[SG_HUB_KEYS]; /* in the queue of each key's value */
};

typedef struct {
    guint id;
    SgHubObserver funcs;
    gpointer data;
} HubObserver;

struct SgHub {
    guint64 next_id;
    guint64 id_stride;
    GHashTable *by_id;            /* &entry->view.id -> entry */
    GHashTable *by_key[SG_HUB_KEYS]; /* value (owned) -> GQueue of entries */
    GQueue order;                 /* every entry, oldest first */
    GArray *observers;            /* HubObserver, in the order added */
    guint next_observer_id;
    guint bytes_observers;        /* observers with a bytes callback */
    guint bytes_timer;
    guint dispatching;            /* depth of observer calls under way */
};

SgHub *
sg_hub_new(guint index, guint count)
{
    SgHub *hub = g_new0(SgHub, 1);

    hub->next_id = (guint64)index + 1;
    hub->id_stride = MAX(count, 1);
    hub->by_id = g_hash_table_new(g_int64_hash, g_int64_equal);
    for (int k = 0; k < SG_HUB_KEYS; k++)
        hub->by_key[k] = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                               (GDestroyNotify)g_queue_free);
    g_queue_init(&hub->order);
    hub->observers = g_array_new(FALSE, FALSE, sizeof(HubObserver));
    hub->next_observer_id = 1;
    return hub;
}

void
sg_hub_free(SgHub *hub)
{
    if (hub == NULL)
        return;
    /* Sessions hold a pointer to their entry: freeing it under them would
     * leave them writing into freed memory. */
    g_warn_if_fail(hub->order.length == 0);
    g_clear_handle_id(&hub->bytes_timer, g_source_remove);
    g_hash_table_unref(hub->by_id);
    for (int k = 0; k < SG_HUB_KEYS; k++)
        g_hash_table_unref(hub->by_key[k]);
    g_array_unref(hub->observers);
    g_free(hub);
}

/* --- observers ------------------------------------------------------------- */

static gboolean on_bytes_tick(gpointer data);

/* The tick runs only while someone listens for bytes and there is a
 * session to report on: an idle daemon, or one without such an observer
 * (today's), has no timer at all. */
static void
update_bytes_timer(SgHub *hub)
{
    bool wanted = hub->bytes_observers > 0 && hub->order.length > 0;

    if (wanted && hub->bytes_timer == 0)
        hub->bytes_timer = g_timeout_add(SG_HUB_BYTES_PERIOD_MS, on_bytes_tick, hub);
    else if (!wanted)
        g_clear_handle_id(&hub->bytes_timer, g_source_remove);
}

guint
sg_hub_add_observer(SgHub *hub, const SgHubObserver *observer, gpointer data)
{
    HubObserver o = { .id = hub->next_observer_id++, .funcs = *observer, .data = data };

    g_return_val_if_fail(hub->dispatching == 0, 0);
    g_array_append_val(hub->observers, o);
    if (observer->bytes != NULL) {
        hub->bytes_observers++;
        update_bytes_timer(hub);
    }
    return o.id;
}

void
sg_hub_remove_observer(SgHub *hub, guint id)
{
    g_return_if_fail(hub->dispatching == 0);
    for (guint i = 0; i < hub->observers->len; i++) {
        HubObserver *o = &g_array_index(hub->observers, HubObserver, i);

        if (o->id != id)
            continue;
        if (o->funcs.bytes != NULL) {
            hub->bytes_observers--;
            update_bytes_timer(hub);
        }
        g_array_remove_index(hub->observers, i);
        return;
    }
}

/* The view with the counters read now. */
static const SgHubSession *
refresh(SgHubEntry *entry)
{
    entry->view.bytes_up = *entry->bytes_up;
    entry->view.bytes_down = *entry->bytes_down;
    return &entry->view;
}

typedef enum {
    EVENT_OPENED,
    EVENT_STATE,
    EVENT_CLOSED,
} HubEvent;

static void
dispatch(SgHubEntry *entry, HubEvent event, const char *from)
{
    SgHub *hub = entry->hub;
    const SgHubSession *s = refresh(entry);

    hub->dispatching++;
    for (guint i = 0; i < hub->observers->len; i++) {
        HubObserver *o = &g_array_index(hub->observers, HubObserver, i);

        switch (event) {
        case EVENT_OPENED:
            if (o->funcs.opened != NULL)
                o->funcs.opened(s, o->data);
            break;
        case EVENT_STATE:
            if (o->funcs.state_changed != NULL)
                o->funcs.state_changed(s, from, o->data);
            break;
        case EVENT_CLOSED:
            if (o->funcs.closed != NULL)
                o->funcs.closed(s, o->data);
            break;
        default:
            g_assert_not_reached();
        }
    }
    hub->dispatching--;
}

/* Tells the bytes observers what @entry moved since they last heard. */
static void
report_bytes(SgHubEntry *entry)
{
    SgHub *hub = entry->hub;
    const SgHubSession *s;
    guint64 up;
    guint64 down;

    if (hub->bytes_observers == 0)
        return;
    s = refresh(entry);
    up = s->bytes_up - entry->reported_up;
    down = s->bytes_down - entry->reported_down;
    if (up == 0 && down == 0)
        return;
    entry->reported_up = s->bytes_up;
    entry->reported_down = s->bytes_down;
    hub->dispatching++;
    for (guint i = 0; i < hub->observers->len; i++) {
        HubObserver *o = &g_array_index(hub->observers, HubObserver, i);

        if (o->funcs.bytes != NULL)
            o->funcs.bytes(s, up, down, o->data);
    }
    hub->dispatching--;
}

/* --- indexes --------------------------------------------------------------- */

/* The entry's own copy of its value for @key, which its link is filed
 * under. */
static char **
key_field(SgHubEntry *entry, SgHubKey key)
{
    switch (key) {
    case SG_HUB_BY_TOKEN_TAG:
        return &entry->token_tag;
    case SG_HUB_BY_INSTANCE:
        return &entry->instance;
    case SG_HUB_BY_CLIENT_ADDR:
    default:
        return &entry->client_addr;
    }
}

static void
unfile(SgHubEntry *entry, SgHubKey key)
{
    GHashTable *index = entry->hub->by_key[key];
    const char *value = *key_field(entry, key);
    GQueue *queue;

    if (value == NULL)
        return;
    queue = g_hash_table_lookup(index, value);
    g_queue_unlink(queue, &entry->key_links[key]);
    if (queue->length == 0)
        g_hash_table_remove(index, value);
}

static void
file(SgHubEntry *entry, SgHubKey key)
{
    GHashTable *index = entry->hub->by_key[key];
    const char *value = *key_field(entry, key);
    GQueue *queue;

    if (value == NULL)
        return;
    queue = g_hash_table_lookup(index, value);
    if (queue == NULL) {
        queue = g_queue_new();
        g_hash_table_insert(index, g_strdup(value), queue);
    }
    entry->key_links[key].data = entry;
    g_queue_push_tail_link(queue, &entry->key_links[key]);
}

/* Replaces the copy *@field with @value when they differ; true if so. */
static bool
update_string(char **field, const char *value)
{
    if (g_strcmp0(*field, value) == 0)
        return false;
    g_free(*field);
    *field = g_strdup(value);
    return true;
}

/* The same for a key: the entry moves to @value's queue. */
static void
update_key(SgHubEntry *entry, SgHubKey key, const char *value)
{
    if (g_strcmp0(*key_field(entry, key), value) == 0)
        return;
    unfile(entry, key);
    update_string(key_field(entry, key), value);
    file(entry, key);
}

/* @closing: the close words (reason, detail) are final and kept too. */
static void
take_facts(SgHubEntry *entry, const SgHubFacts *facts, bool closing)
{
    SgHubFacts *f = &entry->view.facts;

    /* State and channel names are a handful of static strings: interned
     * (never freed), not copied per session. */
    f->state = g_intern_string(facts->state);
    f->channel = g_intern_string(facts->channel);
    update_key(entry, SG_HUB_BY_TOKEN_TAG, facts->token_tag);
    update_key(entry, SG_HUB_BY_INSTANCE, facts->instance);
    update_string(&entry->target, facts->target);
    f->token_tag = entry->token_tag;
    f->instance = entry->instance;
    f->target = entry->target;
    f->has_console = facts->has_console;
    f->console = facts->console;
    if (closing) {
        update_string(&entry->reason_text, facts->reason_text);
        update_string(&entry->detail, facts->detail);
        f->reason = facts->reason;
        f->reason_text = entry->reason_text;
        f->detail = entry->detail;
    }
}

/* --- sessions' side ------------------------------------------------------------ */

char *
sg_hub_client_addr(const char *client)
{
    const char *colon;

    if (client == NULL)
        return NULL;
    if (client[0] == '[') {
        const char *end = strchr(client, ']');

        return end ? g_strndup(client + 1, (gsize)(end - client - 1)) : g_strdup(client);
    }
    colon = strchr(client, ':');
    /* One colon: "addr:port". None, or several (a bare IPv6 address):
     * there is no port to cut. */
    if (colon != NULL && strchr(colon + 1, ':') == NULL)
        return g_strndup(client, (gsize)(colon - client));
    return g_strdup(client);
}

SgHubEntry *
sg_hub_add(SgHub *hub, gpointer owner, const char *client, const guint64 *bytes_up,
           const guint64 *bytes_down)
{
    SgHubEntry *entry = g_new0(SgHubEntry, 1);

    entry->hub = hub;
    entry->view.id = hub->next_id;
    hub->next_id += hub->id_stride;
    entry->view.owner = owner;
    entry->view.started_us = g_get_monotonic_time();
    entry->client = g_strdup(client);
    entry->client_addr = sg_hub_client_addr(client);
    entry->view.client = entry->client;
    entry->view.client_addr = entry->client_addr;
    entry->bytes_up = bytes_up;
    entry->bytes_down = bytes_down;
    entry->view.facts.state = g_intern_static_string("new");
    /* Ids only grow: a duplicate would be a bug in the id space. */
    g_assert(!g_hash_table_contains(hub->by_id, &entry->view.id));
    g_hash_table_insert(hub->by_id, &entry->view.id, entry);
    entry->order_link.data = entry;
    g_queue_push_tail_link(&hub->order, &entry->order_link);
    file(entry, SG_HUB_BY_CLIENT_ADDR);
    update_bytes_timer(hub);
    return entry;
}

guint64
sg_hub_entry_get_id(const SgHubEntry *entry)
{
    return entry->view.id;
}

void
sg_hub_note_state(SgHubEntry *entry, const SgHubFacts *facts, const char *from)
{
    take_facts(entry, facts, false);
    dispatch(entry, EVENT_STATE, from);
}

void
sg_hub_note_open(SgHubEntry *entry, const SgHubFacts *facts)
{
    take_facts(entry, facts, false);
    if (entry->view.opened || entry->view.closed)
        return;
    entry->view.opened = true;
    dispatch(entry, EVENT_OPENED, NULL);
}

void
sg_hub_note_close(SgHubEntry *entry, const SgHubFacts *facts)
{
    if (entry->view.closed)
        return;
    take_facts(entry, facts, true);
    report_bytes(entry);
    entry->view.closed = true;
    dispatch(entry, EVENT_CLOSED, NULL);
}

void
sg_hub_remove(SgHubEntry *entry, const SgHubFacts *facts)
{
    SgHub *hub;

    if (entry == NULL)
        return;
    hub = entry->hub;
    sg_hub_note_close(entry, facts);
    g_hash_table_remove(hub->by_id, &entry->view.id);
    g_queue_unlink(&hub->order, &entry->order_link);
    for (int k = 0; k < SG_HUB_KEYS; k++)
        unfile(entry, (SgHubKey)k);
    update_bytes_timer(hub);
    g_free(entry->client);
    g_free(entry->client_addr);
    g_free(entry->token_tag);
    g_free(entry->instance);
    g_free(entry->target);
    g_free(entry->reason_text);
    g_free(entry->detail);
    g_free(entry);
}

/* --- everyone else's side -------------------------------------------------- */

guint
sg_hub_count(const SgHub *hub)
{
    return hub->order.length;
}

const SgHubSession *
sg_hub_find(SgHub *hub, guint64 id)
{
    SgHubEntry *entry = g_hash_table_lookup(hub->by_id, &id);

    return entry != NULL ? refresh(entry) : NULL;
}

/* Calls @func (or, without one, report_bytes()) for each entry of @queue
 * that is still there when its turn comes. */
static guint
walk(SgHub *hub, GQueue *queue, SgHubFunc func, gpointer data)
{
    g_autoptr(GArray) ids = g_array_sized_new(FALSE, FALSE, sizeof(guint64), queue->length);
    guint called = 0;

    for (GList *l = queue->head; l != NULL; l = l->next) {
        SgHubEntry *entry = l->data;

        g_array_append_val(ids, entry->view.id);
    }
    for (guint i = 0; i < ids->len; i++) {
        SgHubEntry *entry = g_hash_table_lookup(hub->by_id, &g_array_index(ids, guint64, i));

        if (entry == NULL)
            continue;
        if (func != NULL)
            func(refresh(entry), data);
        else
            report_bytes(entry);
        called++;
    }
    return called;
}

guint
sg_hub_find_by(SgHub *hub, SgHubKey key, const char *value, SgHubFunc func, gpointer data)
{
    GQueue *queue;

    g_return_val_if_fail(key < SG_HUB_KEYS && func != NULL, 0);
    if (value == NULL)
        return 0;
    queue = g_hash_table_lookup(hub->by_key[key], value);
    return queue != NULL ? walk(hub, queue, func, data) : 0;
}

guint
sg_hub_foreach(SgHub *hub, SgHubFunc func, gpointer data)
{
    g_return_val_if_fail(func != NULL, 0);
    return walk(hub, &hub->order, func, data);
}

static gboolean
on_bytes_tick(gpointer data)
{
    SgHub *hub = data;

    walk(hub, &hub->order, NULL, NULL);
    return G_SOURCE_CONTINUE;
}
