/* SPDX-License-Identifier: Apache-2.0 */
/* check_keystone.c - the service token (keystone.c) over the real HTTP
 * client (httpc.c) against a loopback fault-injecting peer playing
 * Keystone (stub_http.c, not a Keystone): the login and what it sends, the
 * catalog lookup, one login for many waiters, the cache, renewal (in the
 * foreground when the token is nearly spent, in the background before,
 * the old token kept when that fails), invalidation, cancel and free with
 * a login in flight, and every kind of bad answer mapped to its error:
 * refused credentials, Keystone down, slow or failing, and replies that
 * are not what Keystone sends. Every wait has a deadline. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <glib.h>

#include "config.h"
#include "event_core.h"
#include "httpc.h"
#include "keystone.h"
#include "stub_http.h"

#define DEADLINE_MS 5000

static StubHttp *stub;
static SgHttpc *hc;
static SgConfig *cfg;
static SgKeystone *ks;

/* What the next logins answer, for the handler. */
static gint64 token_life_us = (gint64)3600 * G_USEC_PER_SEC;
static guint tokens_issued;

typedef struct {
    int calls;
    char *token;
    char *compute_url;
    GError *error;
} Got;

static char *
iso8601(gint64 real_us)
{
    g_autoptr(GDateTime) dt = g_date_time_new_from_unix_utc(real_us / G_USEC_PER_SEC);
    g_autoptr(GDateTime) precise = g_date_time_add(dt, real_us % G_USEC_PER_SEC);

    return g_date_time_format(precise, "%Y-%m-%dT%H:%M:%S.%fZ");
}

static char *
token_body(gint64 life_us, const char *compute_url)
{
    g_autofree char *expires = iso8601(g_get_real_time() + life_us);

    return g_strdup_printf(
        "{\"token\": {\"expires_at\": \"%s\", \"catalog\": ["
        "{\"type\": \"identity\", \"endpoints\": []},"
        "{\"type\": \"compute\", \"endpoints\": ["
        "{\"interface\": \"admin\", \"region\": \"RegionOne\", \"url\": \"http://admin.example/\"},"
        "{\"interface\": \"public\", \"region\": \"RegionOne\", \"url\": \"%s\"}]}]}}",
        expires, compute_url);
}

static StubReply *
good_login(void)
{
    g_autofree char *body = token_body(token_life_us, "http://nova.example:8774/v2.1//");
    g_autofree char *hdr = g_strdup_printf("X-Subject-Token: svc-%u\r\n"
                                           "Content-Type: application/json\r\n",
                                           ++tokens_issued);

    return stub_reply_new(201, hdr, body, -1);
}

/* Keystone's part, for the requests the test queued nothing for. */
static StubReply *
keystone_handler(StubHttp *s, const StubRequest *req, gpointer data)
{
    GQueue *queued = data;

    (void)s;
    if (!g_queue_is_empty(queued))
        return g_queue_pop_head(queued);
    if (!g_str_equal(req->method, "POST") || !g_str_equal(req->path, "/v3/auth/tokens"))
        return stub_reply_new(404, NULL, "{}", -1);
    return good_login();
}

static GQueue faults = G_QUEUE_INIT;

/* Every log line of a test, to check that no secret reaches the log. */
static GString *logged;

static GLogWriterOutput
log_writer(GLogLevelFlags level, const GLogField *fields, gsize n_fields, gpointer data)
{
    (void)data;
    for (gsize i = 0; i < n_fields; i++) {
        if (g_str_equal(fields[i].key, "MESSAGE")) {
            g_string_append_len(logged, fields[i].value,
                                fields[i].length < 0 ? (gssize)strlen(fields[i].value)
                                                     : fields[i].length);
            g_string_append_c(logged, '\n');
        }
    }
    return g_log_writer_default(level, fields, n_fields, NULL);
}

static void
setup_with(const char *extra, guint timeout_ms)
{
    SgHttpcOptions opts = { .connect_timeout_ms = 2000, .timeout_ms = timeout_ms };
    g_autoptr(GError) error = NULL;
    g_autofree char *auth_url = NULL;
    g_autofree char *text = NULL;

    logged = g_string_new(NULL);
    sg_event_core_start();
    stub = stub_http_new();
    stub_http_set_handler(stub, keystone_handler, &faults);
    auth_url = stub_http_url(stub, "/v3");
    text = g_strdup_printf("[nova]\nauth_url = %s\nusername = spicegate\n"
                           "password = ks-test-secret\nproject_name = service\n"
                           "interface = public\n%s", auth_url, extra ? extra : "");
    cfg = sg_config_new_default();
    ck_assert_msg(sg_config_load_data(cfg, text, strlen(text), "test.conf", &error),
                  "%s", error ? error->message : "");
    hc = sg_httpc_new(&opts);
    ks = sg_keystone_new(hc, cfg);
    token_life_us = (gint64)3600 * G_USEC_PER_SEC;
    tokens_issued = 0;
}

static void
setup(void)
{
    setup_with(NULL, 3000);
}

static void
teardown(void)
{
    g_clear_pointer(&ks, sg_keystone_free);
    g_clear_pointer(&hc, sg_httpc_free);
    g_clear_pointer(&stub, stub_http_free);
    g_clear_pointer(&cfg, sg_config_free);
    g_queue_clear_full(&faults, (GDestroyNotify)stub_reply_free);
    sg_event_core_stop();
    /* Neither the password nor a service token ("svc-N") was logged. */
    ck_assert_msg(strstr(logged->str, "secret") == NULL && strstr(logged->str, "svc-") == NULL,
                  "a secret was logged:\n%s", logged->str);
    g_string_free(logged, TRUE);
}

static void
got_clear(Got *g)
{
    g_clear_pointer(&g->token, g_free);
    g_clear_pointer(&g->compute_url, g_free);
    g_clear_error(&g->error);
    g->calls = 0;
}

static void
on_got(const char *token, const char *compute_url, const GError *error, gpointer data)
{
    Got *g = data;

    g->calls++;
    ck_assert((token != NULL) != (error != NULL));
    g->token = g_strdup(token);
    g->compute_url = g_strdup(compute_url);
    g->error = error ? g_error_copy(error) : NULL;
}

static gboolean
got_called(gpointer data)
{
    return ((Got *)data)->calls > 0;
}

/* Asks for a token and waits for the answer (never given inside the call). */
static void
get(Got *g)
{
    got_clear(g);
    sg_keystone_get(ks, on_got, g);
    ck_assert_int_eq(g->calls, 0);
    stub_run_until(got_called, g, DEADLINE_MS);
    ck_assert_int_eq(g->calls, 1);
}

static void
drain_loop(void)
{
    int turns = 0;

    while (g_main_context_iteration(NULL, FALSE))
        ck_assert_int_lt(++turns, 1000);
}

START_TEST(test_login)
{
    Got g = { 0 };
    const StubRequest *req;

    get(&g);
    ck_assert_ptr_null(g.error);
    ck_assert_str_eq(g.token, "svc-1");
    /* the public endpoint, trailing slashes trimmed */
    ck_assert_str_eq(g.compute_url, "http://nova.example:8774/v2.1");
    ck_assert_uint_eq(stub_http_n_requests(stub), 1);
    req = stub_http_request(stub, 0);
    ck_assert_str_eq(req->method, "POST");
    ck_assert_str_eq(req->path, "/v3/auth/tokens");
    ck_assert_str_eq(g_hash_table_lookup(req->headers, "content-type"), "application/json");
    ck_assert_ptr_nonnull(strstr(req->body, "\"ks-test-secret\""));
    ck_assert_ptr_nonnull(strstr(req->body, "\"service\""));
    got_clear(&g);
}
END_TEST

static void
setup_auth_url_without_v3(void)
{
    g_autofree char *bare = NULL;

    setup();
    bare = stub_http_url(stub, "");
    g_free(cfg->nova_auth_url);
    cfg->nova_auth_url = g_steal_pointer(&bare);
}

START_TEST(test_auth_url_without_v3)
{
    Got g = { 0 };

    get(&g);
    ck_assert_str_eq(g.token, "svc-1");
    ck_assert_str_eq(stub_http_request(stub, 0)->path, "/v3/auth/tokens");
    got_clear(&g);
}
END_TEST

/* The token is reused: no second login, and the answer still comes from
 * the loop. */
START_TEST(test_cached)
{
    Got g = { 0 };

    get(&g);
    get(&g);
    get(&g);
    ck_assert_str_eq(g.token, "svc-1");
    ck_assert_str_eq(g.compute_url, "http://nova.example:8774/v2.1");
    ck_assert_uint_eq(stub_http_n_requests(stub), 1);
    got_clear(&g);
}
END_TEST

typedef struct {
    Got got[5];
} Many;

static gboolean
all_got(gpointer data)
{
    Many *m = data;

    for (guint i = 0; i < G_N_ELEMENTS(m->got); i++)
        if (m->got[i].calls == 0)
            return FALSE;
    return TRUE;
}

/* Five waiters, one login; a waiter cancelled meanwhile is not answered. */
START_TEST(test_one_login_for_many_waiters)
{
    Many m = { 0 };
    Got cancelled = { 0 };
    SgKeystoneWait *w;

    for (guint i = 0; i < G_N_ELEMENTS(m.got); i++) {
        sg_keystone_get(ks, on_got, &m.got[i]);
        if (i == 2) {
            w = sg_keystone_get(ks, on_got, &cancelled);
            sg_keystone_wait_cancel(w);
        }
    }
    stub_run_until(all_got, &m, DEADLINE_MS);
    drain_loop();
    for (guint i = 0; i < G_N_ELEMENTS(m.got); i++) {
        ck_assert_int_eq(m.got[i].calls, 1);
        ck_assert_str_eq(m.got[i].token, "svc-1");
        got_clear(&m.got[i]);
    }
    ck_assert_int_eq(cancelled.calls, 0);
    ck_assert_uint_eq(stub_http_n_requests(stub), 1);
    sg_keystone_wait_cancel(NULL);
}
END_TEST

/* A cached answer cancelled before the loop delivers it. */
START_TEST(test_cancel_cached_answer)
{
    Got g = { 0 };
    Got cancelled = { 0 };

    get(&g);
    sg_keystone_wait_cancel(sg_keystone_get(ks, on_got, &cancelled));
    drain_loop();
    ck_assert_int_eq(cancelled.calls, 0);
    got_clear(&g);
}
END_TEST

/* Nova refused the token: the next lookup logs in again. Another token's
 * refusal changes nothing. */
START_TEST(test_invalidate)
{
    Got g = { 0 };

    get(&g);
    sg_keystone_invalidate(ks, "svc-other");
    sg_keystone_invalidate(ks, NULL);
    get(&g);
    ck_assert_str_eq(g.token, "svc-1");
    ck_assert_uint_eq(stub_http_n_requests(stub), 1);
    sg_keystone_invalidate(ks, "svc-1");
    get(&g);
    ck_assert_str_eq(g.token, "svc-2");
    ck_assert_uint_eq(stub_http_n_requests(stub), 2);
    got_clear(&g);
}
END_TEST

/* Invalidated between the cached answer's promise and its delivery: the
 * waiter waits for a new login instead of getting the refused token. */
START_TEST(test_invalidate_before_cached_answer)
{
    Got g = { 0 };

    get(&g);
    got_clear(&g);
    sg_keystone_get(ks, on_got, &g);
    sg_keystone_invalidate(ks, "svc-1");
    stub_run_until(got_called, &g, DEADLINE_MS);
    ck_assert_str_eq(g.token, "svc-2");
    ck_assert_uint_eq(stub_http_n_requests(stub), 2);
    got_clear(&g);
}
END_TEST

/* A token that is about to expire (under 2 s left) is not handed out: the
 * next lookup waits for a new login. */
START_TEST(test_nearly_expired_token_renewed_first)
{
    Got g = { 0 };

    token_life_us = 1 * G_USEC_PER_SEC;
    get(&g);
    ck_assert_str_eq(g.token, "svc-1");
    token_life_us = (gint64)3600 * G_USEC_PER_SEC;
    get(&g);
    ck_assert_str_eq(g.token, "svc-2");
    ck_assert_uint_eq(stub_http_n_requests(stub), 2);
    got_clear(&g);
}
END_TEST

static gboolean
real_time_reached(gpointer data)
{
    return g_get_real_time() >= *(gint64 *)data;
}

static gboolean
on_tick(gpointer data)
{
    (void)data;
    return G_SOURCE_CONTINUE;
}

/* Turns the loop until the wall clock reaches @when_us: time is what
 * keystone.c's renewal follows. */
static void
run_until_real_time(gint64 when_us)
{
    guint tick = g_timeout_add(20, on_tick, NULL);

    stub_run_until(real_time_reached, &when_us, DEADLINE_MS);
    g_source_remove(tick);
}

static gboolean
n_requests_reached(gpointer data)
{
    return stub_http_n_requests(stub) >= GPOINTER_TO_UINT(data);
}

/* Past half its life (the renewal margin is capped at half for short
 * tokens) a token is renewed in the background while it is still handed
 * out; when that renewal fails, the old token stays in use. The token
 * lives 5 s: renewal from 2.5 s, handed out until 3 s. */
START_TEST(test_background_renewal_failure_keeps_token)
{
    Got g = { 0 };
    gint64 renew_at;

    token_life_us = 5 * G_USEC_PER_SEC;
    renew_at = g_get_real_time() + token_life_us / 2 + 50 * 1000;
    get(&g);
    ck_assert_str_eq(g.token, "svc-1");
    run_until_real_time(renew_at);

    g_queue_push_tail(&faults, stub_reply_new(500, NULL, "{}", -1));
    get(&g);                      /* answered at once, from the cache */
    ck_assert_str_eq(g.token, "svc-1");
    ck_assert_ptr_null(g.error);
    stub_run_until(n_requests_reached, GUINT_TO_POINTER(2), DEADLINE_MS);
    drain_loop();
    get(&g);                      /* the renewal failed: still the old one, */
    ck_assert_str_eq(g.token, "svc-1");
    drain_loop();                 /* and no new login at once */
    ck_assert_uint_eq(stub_http_n_requests(stub), 2);
    ck_assert_ptr_nonnull(strstr(logged->str, "renewal failed"));
    got_clear(&g);
}
END_TEST

/* What Keystone may answer instead of a token, and what it becomes. */
typedef struct {
    const char *name;
    int status;                   /* 0: an action instead */
    StubAction action;
    const char *headers;
    const char *body;             /* "GOOD": a good token body */
    SgKeystoneError code;
    const char *message;          /* a part of the error's text */
} Fault;

static const Fault login_faults[] = {
    { "401", 401, 0, NULL, "{\"error\": {\"code\": 401}}", SG_KEYSTONE_ERROR_AUTH,
      "refused the credentials in [nova] of spicegate.conf (HTTP 401)" },
    { "403", 403, 0, NULL, "{}", SG_KEYSTONE_ERROR_AUTH, "(HTTP 403)" },
    { "500", 500, 0, NULL, "{}", SG_KEYSTONE_ERROR_UNAVAILABLE, "answered HTTP 500" },
    { "404", 404, 0, NULL, "{}", SG_KEYSTONE_ERROR_UNAVAILABLE, "answered HTTP 404" },
    { "no subject token", 201, 0, NULL, "GOOD", SG_KEYSTONE_ERROR_BAD_REPLY,
      "no X-Subject-Token" },
    { "empty subject token", 201, 0, "X-Subject-Token: \r\n", "GOOD",
      SG_KEYSTONE_ERROR_BAD_REPLY, "no X-Subject-Token" },
    { "subject token with a CR", 201, 0, "X-Subject-Token: svc\rX-Injected: yes\r\n", "GOOD",
      SG_KEYSTONE_ERROR_BAD_REPLY, "unusable X-Subject-Token" },
    { "not JSON", 201, 0, "X-Subject-Token: svc-x\r\n", "<html>It works!</html>",
      SG_KEYSTONE_ERROR_BAD_REPLY, "not JSON" },
    { "deep JSON", 201, 0, "X-Subject-Token: svc-x\r\n", "DEEP", SG_KEYSTONE_ERROR_BAD_REPLY,
      "not JSON" },
    { "no expiry", 201, 0, "X-Subject-Token: svc-x\r\n", "{\"token\": {\"catalog\": []}}",
      SG_KEYSTONE_ERROR_BAD_REPLY, "no token.expires_at" },
    { "bad expiry", 201, 0, "X-Subject-Token: svc-x\r\n",
      "{\"token\": {\"expires_at\": \"tomorrow\", \"catalog\": []}}",
      SG_KEYSTONE_ERROR_BAD_REPLY, "not an ISO 8601 time" },
    { "no compute endpoint", 201, 0, "X-Subject-Token: svc-x\r\n",
      "{\"token\": {\"expires_at\": \"2099-01-01T00:00:00Z\", \"catalog\": ["
      "{\"type\": \"compute\", \"endpoints\": [{\"interface\": \"public\", "
      "\"url\": \"file:///etc/passwd\"}]}]}}",
      SG_KEYSTONE_ERROR_BAD_REPLY, "no compute endpoint for interface public" },
    { "reset", 0, STUB_RESET, NULL, NULL, SG_KEYSTONE_ERROR_UNAVAILABLE, "Keystone unreachable" },
    { "garbage", 0, STUB_ANSWER, NULL, "\x01garbage\r\n\r\n", SG_KEYSTONE_ERROR_UNAVAILABLE,
      "Keystone unreachable" },
    { "stall", 0, STUB_STALL, NULL, NULL, SG_KEYSTONE_ERROR_UNAVAILABLE, "Keystone unreachable" },
    { "huge", 0, STUB_ENDLESS_BODY, NULL, "HTTP/1.1 201 Created\r\nX-Subject-Token: x\r\n\r\n{",
      SG_KEYSTONE_ERROR_UNAVAILABLE, "response body too large" },
};

static void
setup_fast_timeout(void)
{
    setup_with(NULL, 400);
}

/* Each fault, then a good login: the same object recovers. */
START_TEST(test_login_fault)
{
    const Fault *f = &login_faults[_i];
    Got g = { 0 };
    StubReply *reply;

    if (f->status != 0) {
        g_autofree char *body = NULL;
        g_autofree char *hdrs = g_strconcat(f->headers ? f->headers : "",
                                            "Content-Type: application/json\r\n", NULL);

        if (g_str_equal(f->body, "GOOD"))
            body = token_body(token_life_us, "http://nova.example/v2.1");
        else if (g_str_equal(f->body, "DEEP")) {
            g_autofree char *deep = g_strnfill(100000, '[');

            body = g_strconcat("{\"token\": ", deep, NULL);
        }
        else
            body = g_strdup(f->body);
        reply = stub_reply_new(f->status, hdrs, body, -1);
    } else {
        reply = stub_reply_raw(f->action, f->body, -1);
    }
    g_queue_push_tail(&faults, reply);
    get(&g);
    ck_assert_msg(g.error != NULL, "%s: no error", f->name);
    ck_assert_msg(g.error->domain == SG_KEYSTONE_ERROR && g.error->code == (int)f->code,
                  "%s: error %d: %s", f->name, g.error->code, g.error->message);
    ck_assert_msg(strstr(g.error->message, f->message) != NULL, "%s: %s", f->name,
                  g.error->message);
    /* never the password, whatever the reply */
    ck_assert(strstr(g.error->message, "ks-test-secret") == NULL);

    get(&g);
    ck_assert_ptr_null(g.error);
    ck_assert_str_eq(g.token, "svc-1");
    got_clear(&g);
}
END_TEST

START_TEST(test_keystone_down)
{
    Got g = { 0 };

    g_free(cfg->nova_auth_url);
    cfg->nova_auth_url = g_strdup_printf("http://127.0.0.1:%u/v3", stub_http_refused_port());
    get(&g);
    ck_assert_int_eq(g.error->code, SG_KEYSTONE_ERROR_UNAVAILABLE);
    ck_assert_ptr_nonnull(strstr(g.error->message, "Keystone unreachable at http://127.0.0.1:"));
    got_clear(&g);
}
END_TEST

static void
setup_endpoint_override(void)
{
    setup_with("endpoint_override = http://override.example:8774/v2.1\n", 3000);
}

/* With endpoint_override the catalog is not read (it may lack compute). */
START_TEST(test_endpoint_override)
{
    Got g = { 0 };
    g_autofree char *body = g_strdup_printf(
        "{\"token\": {\"expires_at\": \"%s\", \"catalog\": []}}", "2099-01-01T00:00:00Z");

    g_queue_push_tail(&faults, stub_reply_new(201, "X-Subject-Token: svc-o\r\n", body, -1));
    get(&g);
    ck_assert_ptr_null(g.error);
    ck_assert_str_eq(g.token, "svc-o");
    ck_assert_str_eq(g.compute_url, "http://override.example:8774/v2.1");
    got_clear(&g);
}
END_TEST

/* Freed with a login in flight and waiters: nobody is called back, the
 * connection is closed. */
START_TEST(test_free_with_login_in_flight)
{
    Got g = { 0 };
    Got h = { 0 };

    g_queue_push_tail(&faults, stub_reply_raw(STUB_STALL, NULL, 0));
    sg_keystone_get(ks, on_got, &g);
    sg_keystone_get(ks, on_got, &h);
    stub_run_until(n_requests_reached, GUINT_TO_POINTER(1), DEADLINE_MS);
    g_clear_pointer(&ks, sg_keystone_free);
    drain_loop();
    ck_assert_int_eq(g.calls, 0);
    ck_assert_int_eq(h.calls, 0);
    sg_keystone_free(NULL);
}
END_TEST

static void
setup_app_cred(void)
{
    setup_with("application_credential_id = ac-id\n"
               "application_credential_secret = ac-test-secret\n", 3000);
}

START_TEST(test_application_credential)
{
    Got g = { 0 };
    const char *body;

    get(&g);
    ck_assert_str_eq(g.token, "svc-1");
    body = stub_http_request(stub, 0)->body;
    ck_assert_ptr_nonnull(strstr(body, "\"application_credential\""));
    ck_assert_ptr_nonnull(strstr(body, "\"ac-test-secret\""));
    ck_assert_ptr_null(strstr(body, "\"scope\""));
    got_clear(&g);
}
END_TEST

static Suite *
keystone_suite(void)
{
    Suite *s = suite_create("keystone");
    TCase *tc = tcase_create("login");
    TCase *tf = tcase_create("faults");
    TCase *to = tcase_create("settings");

    tcase_set_timeout(tc, 20);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_login);
    tcase_add_test(tc, test_cached);
    tcase_add_test(tc, test_one_login_for_many_waiters);
    tcase_add_test(tc, test_cancel_cached_answer);
    tcase_add_test(tc, test_invalidate);
    tcase_add_test(tc, test_invalidate_before_cached_answer);
    tcase_add_test(tc, test_nearly_expired_token_renewed_first);
    tcase_add_test(tc, test_background_renewal_failure_keeps_token);
    tcase_add_test(tc, test_keystone_down);
    tcase_add_test(tc, test_free_with_login_in_flight);
    suite_add_tcase(s, tc);

    tcase_set_timeout(tf, 20);
    tcase_add_checked_fixture(tf, setup_fast_timeout, teardown);
    tcase_add_loop_test(tf, test_login_fault, 0, G_N_ELEMENTS(login_faults));
    suite_add_tcase(s, tf);

    tcase_set_timeout(to, 20);
    tcase_add_checked_fixture(to, setup_auth_url_without_v3, teardown);
    tcase_add_test(to, test_auth_url_without_v3);
    suite_add_tcase(s, to);
    to = tcase_create("override");
    tcase_set_timeout(to, 20);
    tcase_add_checked_fixture(to, setup_endpoint_override, teardown);
    tcase_add_test(to, test_endpoint_override);
    suite_add_tcase(s, to);
    to = tcase_create("app_cred");
    tcase_set_timeout(to, 20);
    tcase_add_checked_fixture(to, setup_app_cred, teardown);
    tcase_add_test(to, test_application_credential);
    suite_add_tcase(s, to);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(keystone_suite());
    int failed;

    g_log_set_writer_func(log_writer, NULL, NULL);

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
