/* SPDX-License-Identifier: Apache-2.0 */
/* check_hub.c - unit tests for the hub: the registry of live sessions
 * (ids, lookups by each key, removal, walks) and its observers (order of
 * events and of observers, bytes reported by period, the log's session
 * lines). No lws and no socket: the owners are plain tokens, and the
 * bytes tick runs on a real GMainLoop under a deadline.
 */
#include "autoconfig.h"

#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <glib.h>

#include "hub.h"
#include "log.h"
#include "session_log.h"

/* A stand-in for a session: what it tells the hub, and its counters. */
typedef struct {
    SgHubEntry *entry;
    guint64 up;
    guint64 down;
    SgHubFacts facts;
} FakeSession;

static FakeSession *
fake_add(SgHub *hub, const char *client, const char *tag, const char *instance)
{
    FakeSession *fs = g_new0(FakeSession, 1);

    fs->entry = sg_hub_add(hub, fs, client, &fs->up, &fs->down);
    fs->facts.state = "authorising";
    fs->facts.token_tag = tag;
    fs->facts.instance = instance;
    sg_hub_note_state(fs->entry, &fs->facts, "new");
    return fs;
}

static void
fake_remove(FakeSession *fs)
{
    fs->facts.reason = SG_CLOSE_CLIENT_CLOSED;
    fs->facts.reason_text = "browser closed";
    sg_hub_remove(fs->entry, &fs->facts);
    g_free(fs);
}

static guint64
fake_id(const FakeSession *fs)
{
    return sg_hub_entry_get_id(fs->entry);
}

/* Collects the ids a find or walk visits. */
static void
collect_id(const SgHubSession *s, gpointer data)
{
    GArray *ids = data;

    g_array_append_val(ids, s->id);
}

static GArray *
ids_by(SgHub *hub, SgHubKey key, const char *value)
{
    GArray *ids = g_array_new(FALSE, FALSE, sizeof(guint64));
    guint n = sg_hub_find_by(hub, key, value, collect_id, ids);

    ck_assert_uint_eq(n, ids->len);
    return ids;
}

static void
assert_ids(GArray *ids, guint n, const guint64 *expected)
{
    ck_assert_uint_eq(ids->len, n);
    for (guint i = 0; i < n; i++)
        ck_assert_uint_eq(g_array_index(ids, guint64, i), expected[i]);
    g_array_unref(ids);
}

START_TEST(test_hub_ids_unique)
{
    g_autoptr(SgHub) one = sg_hub_new(0, 1);
    g_autoptr(GHashTable) seen = g_hash_table_new_full(g_int64_hash, g_int64_equal, g_free, NULL);
    FakeSession *fs[3][50];
    SgHub *workers[3];

    /* The only process: 1, 2, 3. */
    for (guint64 i = 1; i <= 3; i++) {
        FakeSession *f = fake_add(one, "127.0.0.1:1", NULL, NULL);

        ck_assert_uint_eq(fake_id(f), i);
        fake_remove(f);
    }
    /* Three workers: ids never collide, and each worker's grow by 3. */
    for (guint w = 0; w < 3; w++)
        workers[w] = sg_hub_new(w, 3);
    for (guint i = 0; i < 50; i++) {
        for (guint w = 0; w < 3; w++) {
            guint64 *id = g_new(guint64, 1);

            fs[w][i] = fake_add(workers[w], "127.0.0.1:1", NULL, NULL);
            *id = fake_id(fs[w][i]);
            ck_assert_uint_eq(*id, (guint64)w + 1 + 3 * i);
            ck_assert_msg(g_hash_table_add(seen, id), "id %" G_GUINT64_FORMAT " twice", *id);
        }
    }
    for (guint w = 0; w < 3; w++) {
        for (guint i = 0; i < 50; i++)
            fake_remove(fs[w][i]);
        sg_hub_free(workers[w]);
    }
}
END_TEST

START_TEST(test_hub_find_by_id)
{
    g_autoptr(SgHub) hub = sg_hub_new(0, 1);
    FakeSession *a = fake_add(hub, "10.0.0.1:1000", "tok:aaaaaaaa", NULL);
    FakeSession *b = fake_add(hub, "10.0.0.2:2000", "tok:bbbbbbbb", "uuid-b");
    const SgHubSession *s;
    guint64 id_a = fake_id(a);

    ck_assert_uint_eq(sg_hub_count(hub), 2);
    s = sg_hub_find(hub, fake_id(b));
    ck_assert_ptr_nonnull(s);
    ck_assert_ptr_eq(s->owner, b);
    ck_assert_str_eq(s->client, "10.0.0.2:2000");
    ck_assert_str_eq(s->client_addr, "10.0.0.2");
    ck_assert_str_eq(s->facts.token_tag, "tok:bbbbbbbb");
    ck_assert_str_eq(s->facts.instance, "uuid-b");
    ck_assert_str_eq(s->facts.state, "authorising");
    ck_assert(!s->opened);
    ck_assert_ptr_null(sg_hub_find(hub, 999));
    fake_remove(a);
    ck_assert_ptr_null(sg_hub_find(hub, id_a));
    ck_assert_ptr_nonnull(sg_hub_find(hub, fake_id(b)));
    ck_assert_uint_eq(sg_hub_count(hub), 1);
    fake_remove(b);
    ck_assert_uint_eq(sg_hub_count(hub), 0);
}
END_TEST

/* A console's channels share its token, so its tag: all of them, oldest
 * first; and what the session later says moves it between entries. */
START_TEST(test_hub_find_by_token_tag)
{
    g_autoptr(SgHub) hub = sg_hub_new(0, 1);
    FakeSession *main_ch = fake_add(hub, "10.0.0.1:1", "tok:11111111", NULL);
    FakeSession *other = fake_add(hub, "10.0.0.1:2", "tok:22222222", NULL);
    FakeSession *display = fake_add(hub, "10.0.0.1:3", "tok:11111111", NULL);
    FakeSession *late = fake_add(hub, "10.0.0.1:4", NULL, NULL);

    assert_ids(ids_by(hub, SG_HUB_BY_TOKEN_TAG, "tok:11111111"), 2,
               (guint64[]){ fake_id(main_ch), fake_id(display) });
    assert_ids(ids_by(hub, SG_HUB_BY_TOKEN_TAG, "tok:22222222"), 1,
               (guint64[]){ fake_id(other) });
    assert_ids(ids_by(hub, SG_HUB_BY_TOKEN_TAG, "tok:33333333"), 0, NULL);
    assert_ids(ids_by(hub, SG_HUB_BY_TOKEN_TAG, NULL), 0, NULL);
    /* A session learns its token later (it was NULL): filed then. */
    late->facts.token_tag = "tok:22222222";
    late->facts.state = "connecting";
    sg_hub_note_state(late->entry, &late->facts, "authorising");
    assert_ids(ids_by(hub, SG_HUB_BY_TOKEN_TAG, "tok:22222222"), 2,
               (guint64[]){ fake_id(other), fake_id(late) });
    /* Removed from the middle: the others stay, in order. */
    fake_remove(main_ch);
    assert_ids(ids_by(hub, SG_HUB_BY_TOKEN_TAG, "tok:11111111"), 1,
               (guint64[]){ fake_id(display) });
    fake_remove(display);
    assert_ids(ids_by(hub, SG_HUB_BY_TOKEN_TAG, "tok:11111111"), 0, NULL);
    fake_remove(other);
    fake_remove(late);
}
END_TEST

START_TEST(test_hub_find_by_instance)
{
    g_autoptr(SgHub) hub = sg_hub_new(0, 1);
    FakeSession *a = fake_add(hub, "10.0.0.1:1", "tok:11111111", NULL);
    FakeSession *b = fake_add(hub, "10.0.0.2:1", "tok:22222222", "uuid-2");

    assert_ids(ids_by(hub, SG_HUB_BY_INSTANCE, "uuid-1"), 0, NULL);
    /* The backend names the instance with the target. */
    a->facts.instance = "uuid-1";
    a->facts.state = "connecting";
    sg_hub_note_state(a->entry, &a->facts, "authorising");
    assert_ids(ids_by(hub, SG_HUB_BY_INSTANCE, "uuid-1"), 1, (guint64[]){ fake_id(a) });
    assert_ids(ids_by(hub, SG_HUB_BY_INSTANCE, "uuid-2"), 1, (guint64[]){ fake_id(b) });
    fake_remove(b);
    assert_ids(ids_by(hub, SG_HUB_BY_INSTANCE, "uuid-2"), 0, NULL);
    fake_remove(a);
}
END_TEST

START_TEST(test_hub_find_by_client_addr)
{
    g_autoptr(SgHub) hub = sg_hub_new(0, 1);
    FakeSession *a = fake_add(hub, "192.0.2.7:40000", NULL, NULL);
    FakeSession *b = fake_add(hub, "[2001:db8::1]:40001", NULL, NULL);
    FakeSession *c = fake_add(hub, "192.0.2.7:40002", NULL, NULL);
    FakeSession *d = fake_add(hub, "192.0.2.77:40003", NULL, NULL);

    /* Any port of the address; not a longer address that starts alike. */
    assert_ids(ids_by(hub, SG_HUB_BY_CLIENT_ADDR, "192.0.2.7"), 2,
               (guint64[]){ fake_id(a), fake_id(c) });
    assert_ids(ids_by(hub, SG_HUB_BY_CLIENT_ADDR, "2001:db8::1"), 1, (guint64[]){ fake_id(b) });
    assert_ids(ids_by(hub, SG_HUB_BY_CLIENT_ADDR, "192.0.2.7:40000"), 0, NULL);
    fake_remove(a);
    fake_remove(b);
    fake_remove(c);
    fake_remove(d);
}
END_TEST

START_TEST(test_hub_client_addr)
{
    static const struct {
        const char *client;
        const char *addr;
    } cases[] = {
        { "10.0.0.1:5", "10.0.0.1" },
        { "[::1]:5", "::1" },
        { "[fe80::1%eth0]:443", "fe80::1%eth0" },
        { "::1", "::1" },                  /* a bare IPv6 address: no port to cut */
        { "10.0.0.1", "10.0.0.1" },
        { "?", "?" },                      /* listener.c's unknown peer */
        { "[::1", "[::1" },                /* unbalanced: kept whole */
    };

    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree char *got = sg_hub_client_addr(cases[i].client);

        ck_assert_msg(g_strcmp0(got, cases[i].addr) == 0, "%s -> %s, expected %s",
                      cases[i].client, got, cases[i].addr);
    }
    ck_assert_ptr_null(sg_hub_client_addr(NULL));
}
END_TEST

/* A walk may close or remove sessions, including ones it has not reached. */
typedef struct {
    SgHub *hub;
    GArray *seen;
    FakeSession *victim;
} WalkState;

static void
remove_victim(const SgHubSession *s, gpointer data)
{
    WalkState *ws = data;

    g_array_append_val(ws->seen, s->id);
    if (ws->victim != NULL) {
        fake_remove(ws->victim);
        ws->victim = NULL;
    }
}

START_TEST(test_hub_foreach)
{
    g_autoptr(SgHub) hub = sg_hub_new(0, 1);
    FakeSession *fs[4];
    WalkState ws = { .hub = hub };

    for (int i = 0; i < 4; i++)
        fs[i] = fake_add(hub, "127.0.0.1:1", NULL, NULL);
    ws.seen = g_array_new(FALSE, FALSE, sizeof(guint64));
    ck_assert_uint_eq(sg_hub_foreach(hub, collect_id, ws.seen), 4);
    assert_ids(ws.seen, 4,
               (guint64[]){ fake_id(fs[0]), fake_id(fs[1]), fake_id(fs[2]), fake_id(fs[3]) });
    /* The first call removes the third session: the walk skips it. */
    ws.seen = g_array_new(FALSE, FALSE, sizeof(guint64));
    ws.victim = fs[2];
    ck_assert_uint_eq(sg_hub_foreach(hub, remove_victim, &ws), 3);
    assert_ids(ws.seen, 3, (guint64[]){ fake_id(fs[0]), fake_id(fs[1]), fake_id(fs[3]) });
    ck_assert_uint_eq(sg_hub_count(hub), 3);
    fake_remove(fs[0]);
    fake_remove(fs[1]);
    fake_remove(fs[3]);
    ck_assert_uint_eq(sg_hub_foreach(hub, collect_id, NULL), 0);
}
END_TEST

/* Events as two observers hear them, in one list. */
static void
record(gpointer data, const char *who, const char *what, const SgHubSession *s)
{
    g_ptr_array_add(data, g_strdup_printf("%s %s %" G_GUINT64_FORMAT, who, what, s->id));
}

static void
a_opened(const SgHubSession *s, gpointer data)
{
    record(data, "A", "opened", s);
}

static void
a_state(const SgHubSession *s, const char *from, gpointer data)
{
    g_autofree char *what = g_strdup_printf("%s->%s", from, s->facts.state);

    record(data, "A", what, s);
}

static void
a_closed(const SgHubSession *s, gpointer data)
{
    g_autofree char *what = g_strdup_printf("closed(%s,%s)", s->facts.reason_text,
                                            s->opened ? "opened" : "refused");

    record(data, "A", what, s);
}

static void
b_opened(const SgHubSession *s, gpointer data)
{
    record(data, "B", "opened", s);
}

static void
b_closed(const SgHubSession *s, gpointer data)
{
    record(data, "B", "closed", s);
}

static void
assert_events(GPtrArray *events, const char *const *expected)
{
    guint n = g_strv_length((char **)expected);

    for (guint i = 0; i < MIN(n, events->len); i++)
        ck_assert_str_eq(events->pdata[i], expected[i]);
    ck_assert_uint_eq(events->len, n);
    g_ptr_array_set_size(events, 0);
}

START_TEST(test_hub_observer_order)
{
    g_autoptr(SgHub) hub = sg_hub_new(0, 1);
    g_autoptr(GPtrArray) events = g_ptr_array_new_with_free_func(g_free);
    static const SgHubObserver obs_a = {
        .opened = a_opened, .state_changed = a_state, .closed = a_closed,
    };
    static const SgHubObserver obs_b = { .opened = b_opened, .closed = b_closed };
    FakeSession *fs;
    guint id_b;

    sg_hub_add_observer(hub, &obs_a, events);
    id_b = sg_hub_add_observer(hub, &obs_b, events);
    fs = fake_add(hub, "127.0.0.1:1", "tok:11111111", NULL);
    fs->facts.state = "relaying";
    sg_hub_note_state(fs->entry, &fs->facts, "authorising");
    sg_hub_note_open(fs->entry, &fs->facts);
    sg_hub_note_open(fs->entry, &fs->facts);          /* once only */
    fs->facts.state = "closing";
    sg_hub_note_state(fs->entry, &fs->facts, "relaying");
    fake_remove(fs);
    assert_events(events, (const char *const[]){
        "A new->authorising 1", "A authorising->relaying 1",
        "A opened 1", "B opened 1",
        "A relaying->closing 1",
        "A closed(browser closed,opened) 1", "B closed 1", NULL });

    /* Refused before it opened: closed when decided, not again when it
     * leaves; and an observer removed hears nothing more. */
    sg_hub_remove_observer(hub, id_b);
    fs = fake_add(hub, "127.0.0.1:2", "tok:11111111", NULL);
    fs->facts.state = "closing";
    fs->facts.reason = SG_CLOSE_BAD_TOKEN;
    fs->facts.reason_text = "console token invalid or expired";
    sg_hub_note_state(fs->entry, &fs->facts, "authorising");
    sg_hub_note_close(fs->entry, &fs->facts);
    sg_hub_note_open(fs->entry, &fs->facts);          /* too late: ignored */
    sg_hub_note_close(fs->entry, &fs->facts);
    assert_events(events, (const char *const[]){
        "A new->authorising 2", "A authorising->closing 2",
        "A closed(console token invalid or expired,refused) 2", NULL });
    fake_remove(fs);
    assert_events(events, (const char *const[]){ NULL });
}
END_TEST

/* --- bytes ------------------------------------------------------------------ */

typedef struct {
    GMainLoop *loop;
    guint calls;
    guint64 up;
    guint64 down;
    bool quit_on_bytes;
} BytesState;

static void
on_bytes(const SgHubSession *s, guint64 up, guint64 down, gpointer data)
{
    BytesState *bs = data;

    (void)s;
    bs->calls++;
    bs->up += up;
    bs->down += down;
    if (bs->quit_on_bytes)
        g_main_loop_quit(bs->loop);
}

static gboolean
on_deadline(gpointer data)
{
    (void)data;
    ck_abort_msg("no bytes report within the deadline");
    return G_SOURCE_REMOVE;
}

/* Counted by the session, reported once per period (not per send), and
 * once more before closed, so that the reports add up to the totals. The
 * tick exists only while someone wants bytes and there is a session. */
START_TEST(test_hub_bytes_periodic)
{
    g_autoptr(SgHub) hub = sg_hub_new(0, 1);
    BytesState bs = { .loop = g_main_loop_new(NULL, FALSE), .quit_on_bytes = true };
    static const SgHubObserver obs = { .bytes = on_bytes };
    FakeSession *fs = fake_add(hub, "127.0.0.1:1", NULL, NULL);
    guint deadline;
    guint id;
    gint64 t0;

    /* Nobody listens for bytes: no timer on the loop. */
    ck_assert_ptr_null(g_main_context_find_source_by_user_data(NULL, hub));
    id = sg_hub_add_observer(hub, &obs, &bs);
    ck_assert_ptr_nonnull(g_main_context_find_source_by_user_data(NULL, hub));
    for (int i = 0; i < 1000; i++) {      /* a thousand sends, one report */
        fs->up += 10;
        fs->down += 100;
    }
    deadline = g_timeout_add_seconds(5, on_deadline, NULL);
    t0 = g_get_monotonic_time();
    g_main_loop_run(bs.loop);
    ck_assert_uint_eq(bs.calls, 1);
    ck_assert_uint_eq(bs.up, 10000);
    ck_assert_uint_eq(bs.down, 100000);
    ck_assert_int_ge(g_get_monotonic_time() - t0, (SG_HUB_BYTES_PERIOD_MS - 50) * 1000);
    /* The rest comes before closed; nothing moved, nothing said. */
    fs->down += 5;
    fake_remove(fs);
    ck_assert_uint_eq(bs.calls, 2);
    ck_assert_uint_eq(bs.down, 100005);
    /* No session: no timer. */
    ck_assert_ptr_null(g_main_context_find_source_by_user_data(NULL, hub));
    fs = fake_add(hub, "127.0.0.1:1", NULL, NULL);
    ck_assert_ptr_nonnull(g_main_context_find_source_by_user_data(NULL, hub));
    sg_hub_remove_observer(hub, id);
    ck_assert_ptr_null(g_main_context_find_source_by_user_data(NULL, hub));
    fake_remove(fs);
    ck_assert_uint_eq(bs.calls, 2);
    g_source_remove(deadline);
    g_main_loop_unref(bs.loop);
}
END_TEST

/* --- the log's session lines ------------------------------------------------------ */

static GPtrArray *captured;

static GLogWriterOutput
capture_writer(GLogLevelFlags level, const GLogField *fields, gsize n, gpointer data)
{
    (void)data;
    if (level & G_LOG_LEVEL_DEBUG)
        return G_LOG_WRITER_HANDLED;
    for (gsize i = 0; i < n; i++) {
        if (g_str_equal(fields[i].key, "MESSAGE"))
            g_ptr_array_add(captured, g_strdup(fields[i].value));
    }
    return G_LOG_WRITER_HANDLED;
}

/* The same words as before the hub: operators' tools and the integration
 * tests read them. */
START_TEST(test_session_log_lines)
{
    g_autoptr(SgHub) hub = sg_hub_new(0, 1);
    FakeSession *fs;
    const char *line;

    captured = g_ptr_array_new_with_free_func(g_free);
    g_log_set_writer_func(capture_writer, NULL, NULL);
    sg_session_log_attach(hub);

    /* Opened, then closed by the browser. */
    fs = fake_add(hub, "127.0.0.1:5000", "tok:0123abcd", "uuid-1");
    fs->facts.state = "relaying";
    fs->facts.target = "10.0.0.9:5901";
    fs->facts.channel = "display";
    fs->facts.has_console = true;
    fs->facts.console = 42;
    sg_hub_note_open(fs->entry, &fs->facts);
    fs->up = 12;
    fs->down = 3456;
    fake_remove(fs);
    ck_assert_uint_eq(captured->len, 2);
    ck_assert_str_eq(captured->pdata[0], "[s:1] open client=127.0.0.1:5000 tok:0123abcd "
                                         "target=10.0.0.9:5901 channel=display console=42 "
                                         "instance=uuid-1");
    line = captured->pdata[1];
    ck_assert_msg(g_regex_match_simple("^\\[s:1\\] close client=127\\.0\\.0\\.1:5000 "
                                       "tok:0123abcd target=10\\.0\\.0\\.9:5901 "
                                       "channel=display console=42 instance=uuid-1 "
                                       "duration=\\d+\\.\\d{3}s up=12 down=3456 "
                                       "reason=\"browser closed\"$", line, 0, 0),
                  "%s", line);

    /* Refused before the token was known, with a detail. */
    g_ptr_array_set_size(captured, 0);
    fs = fake_add(hub, "[::1]:6000", NULL, NULL);
    fs->facts.state = "closing";
    fs->facts.reason = SG_CLOSE_ORIGIN;
    fs->facts.reason_text = "origin not allowed";
    fs->facts.detail = "origin host does not match";
    sg_hub_note_close(fs->entry, &fs->facts);
    fake_remove(fs);
    ck_assert_uint_eq(captured->len, 1);
    ck_assert_str_eq(captured->pdata[0], "[s:2] refused client=[::1]:6000 tok:- "
                                         "reason=\"origin not allowed\": origin host does "
                                         "not match");

    /* The browser left before the session opened. */
    g_ptr_array_set_size(captured, 0);
    fs = fake_add(hub, "127.0.0.1:7000", "tok:0123abcd", NULL);
    fs->facts.reason_text = "browser left";
    sg_hub_remove(fs->entry, &fs->facts);
    g_free(fs);
    ck_assert_uint_eq(captured->len, 1);
    ck_assert_str_eq(captured->pdata[0], "[s:3] refused client=127.0.0.1:7000 tok:0123abcd "
                                         "reason=\"browser left\"");
    g_ptr_array_unref(captured);
}
END_TEST

static Suite *
hub_suite(void)
{
    Suite *s = suite_create("hub");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_hub_ids_unique);
    tcase_add_test(tc, test_hub_find_by_id);
    tcase_add_test(tc, test_hub_find_by_token_tag);
    tcase_add_test(tc, test_hub_find_by_instance);
    tcase_add_test(tc, test_hub_find_by_client_addr);
    tcase_add_test(tc, test_hub_client_addr);
    tcase_add_test(tc, test_hub_foreach);
    tcase_add_test(tc, test_hub_observer_order);
    tcase_add_test(tc, test_hub_bytes_periodic);
    tcase_add_test(tc, test_session_log_lines);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(hub_suite());
    int failed;

    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
