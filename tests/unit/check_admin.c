/* SPDX-License-Identifier: Apache-2.0 */
/* check_admin.c - unit tests for the admin API's pieces: the bearer
 * token check, a request as the server hands it over (sg_admin_answer()), the routes (against a local fleet over
 * a real hub, as the only process serves them) and the grouping of
 * sessions into GET /consoles' consoles. HTTP itself is libwebsockets';
 * the server on a real socket, with one process and with workers, is
 * tests/integ/test_admin.py's. */
#include "autoconfig.h"

#include <stdlib.h>
#include <string.h>

#include <sys/socket.h>
#include <unistd.h>

#include <check.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>

#include "admin.h"
#include "hub.h"
#include "shared_zone.h"
#include "worker_ctl.h"

START_TEST(test_admin_token)
{
    ck_assert(sg_admin_token_ok(NULL, NULL));
    ck_assert(sg_admin_token_ok(NULL, "anything"));
    ck_assert(!sg_admin_token_ok("s3cret", NULL));
    ck_assert(sg_admin_token_ok("s3cret", "Bearer s3cret"));
    ck_assert(sg_admin_token_ok("s3cret", "bearer s3cret"));
    ck_assert(!sg_admin_token_ok("s3cret", "Bearer s3cre"));
    ck_assert(!sg_admin_token_ok("s3cret", "Bearer s3cretx"));
    ck_assert(!sg_admin_token_ok("s3cret", "Basic s3cret"));
    ck_assert(!sg_admin_token_ok("s3cret", "s3cret"));
    ck_assert(!sg_admin_token_ok("s3cret", "Bearer "));
}
END_TEST

START_TEST(test_admin_read_token)
{
    g_autofree char *dir = g_dir_make_tmp("check_admin_XXXXXX", NULL);
    g_autofree char *path = g_build_filename(dir, "token", NULL);
    g_autofree char *token = NULL;
    g_autoptr(GError) error = NULL;

    ck_assert(g_file_set_contents(path, "abc123\n", -1, NULL));
    token = sg_admin_read_token(path, &error);
    ck_assert_str_eq(token, "abc123");
    ck_assert(g_file_set_contents(path, "two words\n", -1, NULL));
    ck_assert_ptr_null(sg_admin_read_token(path, &error));
    /* The message names the file, never the text. */
    ck_assert_ptr_null(strstr(error->message, "words"));
    g_clear_error(&error);
    ck_assert(g_file_set_contents(path, "\n", -1, NULL));
    ck_assert_ptr_null(sg_admin_read_token(path, &error));
    g_clear_error(&error);
    g_unlink(path);
    ck_assert_ptr_null(sg_admin_read_token(path, &error));
    g_rmdir(dir);
}
END_TEST

static JsonObject *
session(JsonArray *arr, gint64 id, const char *client_addr, const char *channel, gint64 console,
        const char *target, const char *since, gint64 up)
{
    JsonObject *o = json_object_new();

    json_object_set_int_member(o, "session", id);
    json_object_set_string_member(o, "client_addr", client_addr);
    json_object_set_string_member(o, "channel", channel);
    if (console >= 0)
        json_object_set_int_member(o, "console", console);
    else
        json_object_set_null_member(o, "console");
    json_object_set_string_member(o, "target", target);
    json_object_set_null_member(o, "instance");
    json_object_set_string_member(o, "token_tag", "tok:01234567");
    json_object_set_string_member(o, "since", since);
    json_object_set_int_member(o, "bytes_up", up);
    json_object_set_int_member(o, "bytes_down", 2 * up);
    json_array_add_object_element(arr, o);
    return o;
}

START_TEST(test_admin_consoles_json)
{
    g_autoptr(JsonArray) sessions = json_array_new();
    JsonNode *root;
    JsonObject *doc, *c0, *c1, *c2;
    JsonArray *consoles;

    session(sessions, 1, "10.0.0.1", "main", 7, "h:5900", "2026-12-07T10:00:02.000000Z", 10);
    session(sessions, 2, "10.0.0.1", "display", 7, "h:5900", "2026-12-07T10:00:01.000000Z", 20);
    /* The same id from another SPICE server: another console. */
    session(sessions, 3, "10.0.0.2", "main", 7, "g:5900", "2026-12-07T10:00:03.000000Z", 1);
    /* Not linked yet. */
    session(sessions, 4, "10.0.0.3", NULL, -1, "h:5900", "2026-12-07T10:00:04.000000Z", 0);
    /* A channel of the first console from another worker (listed later). */
    json_object_set_string_member(session(sessions, 6, "10.0.0.4", "inputs", 7, "h:5900",
                                          "2026-12-07T10:00:05.000000Z", 5),
                                  "instance", "inst-1");
    root = sg_admin_consoles_json(sessions, false);
    doc = json_node_get_object(root);
    ck_assert(!json_object_get_boolean_member(doc, "complete"));
    ck_assert_int_eq(json_object_get_int_member(doc, "count"), 3);
    consoles = json_object_get_array_member(doc, "consoles");
    ck_assert_uint_eq(json_array_get_length(consoles), 3);
    c0 = json_array_get_object_element(consoles, 0);
    c1 = json_array_get_object_element(consoles, 1);
    c2 = json_array_get_object_element(consoles, 2);
    ck_assert_int_eq(json_object_get_int_member(c0, "id"), 7);
    ck_assert_str_eq(json_object_get_string_member(c0, "target"), "h:5900");
    ck_assert_str_eq(json_object_get_string_member(c0, "since"), "2026-12-07T10:00:01.000000Z");
    ck_assert_str_eq(json_object_get_string_member(c0, "instance"), "inst-1");
    ck_assert_int_eq(json_object_get_int_member(c0, "bytes_up"), 35);
    ck_assert_int_eq(json_object_get_int_member(c0, "bytes_down"), 70);
    ck_assert_uint_eq(json_array_get_length(json_object_get_array_member(c0, "session_ids")), 3);
    ck_assert_uint_eq(json_array_get_length(json_object_get_array_member(c0, "clients")), 2);
    ck_assert_uint_eq(json_array_get_length(json_object_get_array_member(c0, "channel_types")),
                      3);
    ck_assert_uint_eq(json_array_get_length(json_object_get_array_member(c0, "sessions")), 3);
    ck_assert_str_eq(json_object_get_string_member(c1, "target"), "g:5900");
    ck_assert(json_object_get_null_member(c2, "id"));
    ck_assert_uint_eq(json_array_get_length(json_object_get_array_member(c2, "channel_types")),
                      0);
    json_node_unref(root);
}
END_TEST

/* --- the routes, on a local fleet ------------------------------------------- */

typedef struct {
    SgHubEntry *entry;
    guint64 up, down;
    SgHubFacts facts;
    bool closing;
} FakeSession;

static bool
fake_close(gpointer owner, SgCloseReason reason)
{
    FakeSession *fs = owner;

    if (fs->closing)
        return false;
    fs->closing = reason == SG_CLOSE_ADMIN;
    return true;
}

typedef struct {
    SgHub *hub;
    SgZone *zone;
    SgFleet *fleet;
    SgAdmin *admin;
    FakeSession fs[3];
} Fixture;

static void
fixture_init_token(Fixture *f, const char *token)
{
    static const char *const instances[] = { "inst-1", "inst-1", "inst-2" };
    SgAdminContext ctx = { .token = NULL, .workers = 1, .start_time_us = 1 };

    f->hub = sg_hub_new(0, 1);
    f->zone = sg_zone_new(1, 0, 0, NULL);
    sg_zone_observe(f->zone, 0, f->hub);
    f->fleet = sg_fleet_new_local(f->hub, fake_close);
    for (guint k = 0; k < 3; k++) {
        FakeSession *fs = &f->fs[k];

        fs->entry = sg_hub_add(f->hub, fs, "10.0.0.1:4000", &fs->up, &fs->down);
        fs->facts.state = "relaying";
        fs->facts.token_tag = "tok:0000aaaa";
        fs->facts.instance = instances[k];
        fs->facts.target = "127.0.0.1:5900";
        fs->facts.channel = k == 0 ? "main" : "display";
        fs->facts.has_console = true;
        fs->facts.console = k < 2 ? 11 : 12;
        sg_hub_note_open(fs->entry, &fs->facts);
    }
    ctx.zone = f->zone;
    ctx.fleet = f->fleet;
    ctx.token = token;
    f->admin = sg_admin_new(&ctx);
}

static void
fixture_init(Fixture *f)
{
    fixture_init_token(f, NULL);
}

static void
fixture_clear(Fixture *f)
{
    sg_admin_free(f->admin);
    sg_fleet_free(f->fleet);
    for (guint k = 0; k < 3; k++) {
        f->fs[k].facts.reason = SG_CLOSE_ADMIN;
        sg_hub_remove(f->fs[k].entry, &f->fs[k].facts);
    }
    sg_hub_free(f->hub);
    sg_zone_free(f->zone);
}

static guint
route(Fixture *f, const char *method, const char *target, char **body)
{
    SgAdminReply reply = { 0 };

    sg_admin_route(f->admin, method, target, &reply);
    if (body != NULL)
        *body = g_steal_pointer(&reply.body);
    g_free(reply.body);
    return reply.status;
}

static gint64
closed_count(const char *body)
{
    g_autoptr(JsonParser) p = json_parser_new();

    ck_assert(json_parser_load_from_data(p, body, -1, NULL));
    return json_object_get_int_member(json_node_get_object(json_parser_get_root(p)), "closed");
}

START_TEST(test_admin_routes)
{
    Fixture f = { 0 };
    g_autofree char *body = NULL;

    fixture_init(&f);
    ck_assert_uint_eq(route(&f, "GET", "/metrics", &body), 200);
    ck_assert_ptr_nonnull(strstr(body, "spicegate_websockets_open{channel=\"display\"} 2\n"));
    g_clear_pointer(&body, g_free);
    ck_assert_uint_eq(route(&f, "HEAD", "/metrics", NULL), 200);
    ck_assert_uint_eq(route(&f, "POST", "/metrics", NULL), 405);
    ck_assert_uint_eq(route(&f, "GET", "/", NULL), 404);
    ck_assert_uint_eq(route(&f, "GET", "/metricsx", NULL), 404);
    ck_assert_uint_eq(route(&f, "GET", "/consoles/11", NULL), 405);
    ck_assert_uint_eq(route(&f, "DELETE", "/consoles/x1", NULL), 404);
    ck_assert_uint_eq(route(&f, "DELETE", "/consoles", NULL), 400);
    /* Values with control characters name nothing: bad requests. */
    ck_assert_uint_eq(route(&f, "DELETE", "/consoles?instance=inst-1%0aspicegate: forged",
                            NULL), 400);
    ck_assert_uint_eq(route(&f, "DELETE", "/consoles?client=%1b%5b2J", NULL), 400);
    ck_assert_uint_eq(route(&f, "PUT", "/consoles", NULL), 405);

    ck_assert_uint_eq(route(&f, "GET", "/consoles", &body), 200);
    ck_assert_ptr_nonnull(strstr(body, "\"count\" : 2"));
    g_clear_pointer(&body, g_free);

    /* Console 11: sessions 1 and 2, both closed with 4409's reason. */
    ck_assert_uint_eq(route(&f, "DELETE", "/consoles/11", &body), 200);
    ck_assert_int_eq(closed_count(body), 2);
    g_clear_pointer(&body, g_free);
    ck_assert(f.fs[0].closing && f.fs[1].closing && !f.fs[2].closing);
    /* Nothing left to close there. */
    ck_assert_uint_eq(route(&f, "DELETE", "/consoles/11", NULL), 404);
    ck_assert_uint_eq(route(&f, "DELETE", "/consoles?instance=inst-1", &body), 200);
    ck_assert_int_eq(closed_count(body), 0);
    g_clear_pointer(&body, g_free);
    ck_assert_uint_eq(route(&f, "DELETE", "/consoles?x=1&instance=inst%2D2", &body), 200);
    ck_assert_int_eq(closed_count(body), 1);
    g_clear_pointer(&body, g_free);
    ck_assert(f.fs[2].closing);
    ck_assert_uint_eq(route(&f, "DELETE", "/sessions/3", NULL), 404);
    fixture_clear(&f);
}
END_TEST

/* What the server does with a request: the token first, then the route;
 * methods lws knows but we do not serve (and "?", one it does not know)
 * are 405 with Allow on our paths. */
START_TEST(test_admin_answer)
{
    Fixture f = { 0 };
    SgAdminReply reply = { 0 };

    fixture_init_token(&f, "s3cret");
    sg_admin_answer(f.admin, "GET", "/metrics", NULL, "127.0.0.1:1", &reply);
    ck_assert_uint_eq(reply.status, 401);
    ck_assert(reply.unauthorized);
    ck_assert_ptr_null(strstr(reply.body, "s3cret"));
    g_clear_pointer(&reply.body, g_free);
    sg_admin_answer(f.admin, "GET", "/metrics", "Bearer s3cre", "127.0.0.1:1", &reply);
    ck_assert_uint_eq(reply.status, 401);
    g_clear_pointer(&reply.body, g_free);
    sg_admin_answer(f.admin, "HEAD", "/metrics", "Bearer s3cret", "127.0.0.1:1", &reply);
    ck_assert_uint_eq(reply.status, 200);
    ck_assert(reply.head && !reply.unauthorized);
    g_clear_pointer(&reply.body, g_free);
    sg_admin_answer(f.admin, "POST", "/metrics", "Bearer s3cret", "127.0.0.1:1", &reply);
    ck_assert_uint_eq(reply.status, 405);
    ck_assert_str_eq(reply.allow, "GET, HEAD");
    g_clear_pointer(&reply.body, g_free);
    sg_admin_answer(f.admin, "?", "/consoles", "Bearer s3cret", "127.0.0.1:1", &reply);
    ck_assert_uint_eq(reply.status, 405);
    ck_assert_str_eq(reply.allow, "GET, HEAD, DELETE");
    g_clear_pointer(&reply.body, g_free);
    sg_admin_answer(f.admin, "OPTIONS", "/nothing", "Bearer s3cret", "127.0.0.1:1", &reply);
    ck_assert_uint_eq(reply.status, 404);
    g_clear_pointer(&reply.body, g_free);
    fixture_clear(&f);
}
END_TEST

static Suite *
admin_suite(void)
{
    Suite *s = suite_create("admin");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_admin_token);
    tcase_add_test(tc, test_admin_read_token);
    tcase_add_test(tc, test_admin_consoles_json);
    tcase_add_test(tc, test_admin_routes);
    tcase_add_test(tc, test_admin_answer);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(admin_suite());
    int failed;

    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
