/* SPDX-License-Identifier: Apache-2.0 */
/* check_token_nova.c - the Nova token backend (token_nova.c) over the real
 * Keystone session (keystone.c) and HTTP client (httpc.c), against one
 * loopback fault-injecting peer playing both Keystone and Nova's compute
 * API (stub_http.c; not an OpenStack service): a lookup and what it sends,
 * the token escaped in the path, one request for lookups of the same
 * token, the positive and negative caches, a stale service token renewed
 * once, each error status and bad reply mapped to its error, the deadline
 * (alone and while queued for a lookup slot), the queue, cancel and free
 * with lookups in flight, session expiry from the first use, the
 * start-up check of Nova's microversions, and the re-checks of live
 * consoles' tokens (revalidate_interval: one request per token past the
 * cache; a token's 404 asks about its instance, GET /servers/{id}: a
 * deleted instance (404, DELETED, SOFT_DELETED) revokes every watch of the
 * token, a live one keeps them and is re-checked instead of the token, one
 * request per instance; 5xx and silence revoke nothing). Every wait has a
 * deadline. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <glib.h>

#include "config.h"
#include "event_core.h"
#include "shared_zone.h"
#include "token.h"
#include "token_nova.h"
#include "stub_http.h"

#define DEADLINE_MS 5000
#define LOOKUP_PREFIX "/v2.1/os-console-auth-tokens/"
#define SERVER_PREFIX "/v2.1/servers/"
#define INSTANCE "5b8e9b77-6a2c-4f6e-9d0e-2f1a3c4d5e6f"
#define OTHER_INSTANCE "0d4c0c7e-55a4-4b0a-8d1e-6a4c1f2b3e4d"

static StubHttp *stub;
static SgConfig *cfg;
static SgTokenBackend *backend;
static GString *logged;

/* What the peer answers. */
static guint logins;
static GQueue login_faults = G_QUEUE_INIT;   /* StubReply*, for the next logins */
static GQueue nova_faults = G_QUEUE_INIT;    /* StubReply*, for the next lookups */
static const char *version_doc;              /* NULL: HTTP 500 */
static const char *deleted_token;            /* Nova answers 404 for it; NULL: none */
static bool tokens_expired;                  /* Nova answers 404 for every token */
static StubAction version_action;             /* STUB_ANSWER: version_doc */
/* GET /servers/{id}: its status, NULL for Nova's 404 itemNotFound; a
 * status code other than 200 answers that with "{}". */
static const char *server_state;
static int server_http;

static const char other_console[] =
    "{\"console\": {\"instance_uuid\": \"" OTHER_INSTANCE "\", "
    "\"host\": \"10.0.0.8\", \"port\": 5902, \"tls_port\": null, "
    "\"internal_access_path\": null}}";

static const char good_console[] =
    "{\"console\": {\"instance_uuid\": \"5b8e9b77-6a2c-4f6e-9d0e-2f1a3c4d5e6f\", "
    "\"host\": \"10.0.0.7\", \"port\": 5901, \"tls_port\": null, "
    "\"internal_access_path\": null}}";

/* Nova always says; a console that does not cannot be asked about. */
static const char no_instance_console[] =
    "{\"console\": {\"host\": \"10.0.0.9\", \"port\": 5903, \"tls_port\": null, "
    "\"internal_access_path\": null}}";

static StubReply *
openstack(StubHttp *s, const StubRequest *req, gpointer data)
{
    (void)data;
    if (g_str_equal(req->method, "POST") && g_str_equal(req->path, "/v3/auth/tokens")) {
        g_autofree char *compute = NULL;
        g_autofree char *body = NULL;
        g_autofree char *hdr = NULL;
        g_autoptr(GDateTime) now = g_date_time_new_now_utc();
        g_autoptr(GDateTime) later = g_date_time_add_hours(now, 1);
        g_autofree char *expires = NULL;

        if (!g_queue_is_empty(&login_faults))
            return g_queue_pop_head(&login_faults);
        compute = stub_http_url(s, "/v2.1/");
        expires = g_date_time_format(later, "%Y-%m-%dT%H:%M:%SZ");
        body = g_strdup_printf("{\"token\": {\"expires_at\": \"%s\", \"catalog\": [{\"type\": "
                               "\"compute\", \"endpoints\": [{\"interface\": \"internal\", "
                               "\"url\": \"%s\"}]}]}}", expires, compute);
        hdr = g_strdup_printf("X-Subject-Token: svc-%u\r\n", ++logins);
        return stub_reply_new(201, hdr, body, -1);
    }
    if (g_str_equal(req->path, "/v2.1/") && version_action != STUB_ANSWER)
        return stub_reply_raw(version_action, NULL, 0);
    if (g_str_equal(req->path, "/v2.1/"))
        return version_doc ? stub_reply_new(200, NULL, version_doc, -1)
                           : stub_reply_new(500, NULL, "{}", -1);
    if (g_str_has_prefix(req->path, LOOKUP_PREFIX)) {
        if (!g_queue_is_empty(&nova_faults))
            return g_queue_pop_head(&nova_faults);
        if (g_str_has_prefix(req->path, LOOKUP_PREFIX "unknown") || tokens_expired ||
            (deleted_token != NULL && g_str_equal(req->path + strlen(LOOKUP_PREFIX),
                                                  deleted_token)))
            return stub_reply_new(404, NULL, "{\"itemNotFound\": {\"code\": 404}}", -1);
        return stub_reply_new(200, "Content-Type: application/json\r\n",
                              strstr(req->path, "other") != NULL    ? other_console
                              : strstr(req->path, "noinst") != NULL ? no_instance_console
                                                                    : good_console,
                              -1);
    }
    if (g_str_has_prefix(req->path, SERVER_PREFIX)) {
        g_autofree char *body = NULL;

        if (server_http != 200)
            return stub_reply_new(server_http, NULL, "{}", -1);
        if (server_state == NULL)
            return stub_reply_new(404, NULL, "{\"itemNotFound\": {\"code\": 404, "
                                  "\"message\": \"Instance could not be found.\"}}", -1);
        body = g_strdup_printf("{\"server\": {\"id\": \"%s\", \"status\": \"%s\"}}",
                               req->path + strlen(SERVER_PREFIX), server_state);
        return stub_reply_new(200, "Content-Type: application/json\r\n", body, -1);
    }
    return stub_reply_new(404, NULL, "{}", -1);
}

static GLogWriterOutput
log_writer(GLogLevelFlags level, const GLogField *fields, gsize n_fields, gpointer data)
{
    (void)data;
    for (gsize i = 0; i < n_fields; i++) {
        if (g_str_equal(fields[i].key, "MESSAGE")) {
            if (level & G_LOG_LEVEL_WARNING)
                g_string_append(logged, "[warning] ");
            g_string_append_len(logged, fields[i].value,
                                fields[i].length < 0 ? (gssize)strlen(fields[i].value)
                                                     : fields[i].length);
            g_string_append_c(logged, '\n');
        }
    }
    return g_log_writer_default(level, fields, n_fields, NULL);
}

static guint
count_requests(const char *prefix)
{
    guint n = 0;

    for (guint i = 0; i < stub_http_n_requests(stub); i++)
        if (g_str_has_prefix(stub_http_request(stub, i)->path, prefix))
            n++;
    return n;
}

static gboolean
version_asked(gpointer data)
{
    (void)data;
    return count_requests("/v2.1/") > count_requests(LOOKUP_PREFIX);
}

static void
drain_loop(void)
{
    int turns = 0;

    while (g_main_context_iteration(NULL, FALSE))
        ck_assert_int_lt(++turns, 1000);
}

static void
start_backend(const char *extra)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *auth_url = stub_http_url(stub, "/v3");
    g_autofree char *text = g_strdup_printf(
        "[tokens]\nbackend = nova\n[nova]\nauth_url = %s\nusername = spicegate\n"
        "password = nova-test-secret\nproject_name = service\ntimeout = 1\n%s",
        auth_url, extra ? extra : "");

    cfg = sg_config_new_default();
    ck_assert_msg(sg_config_load_data(cfg, text, strlen(text), "test.conf", &error),
                  "%s", error ? error->message : "");
    backend = sg_token_nova_new(cfg, &error);
    ck_assert_ptr_nonnull(backend);
    /* The start-up check (a login, then Nova's version document) first,
     * so that what the tests count is theirs. */
    stub_run_until(version_asked, NULL, DEADLINE_MS);
    drain_loop();
}

static void
setup(void)
{
    logged = g_string_new(NULL);
    logins = 0;
    deleted_token = NULL;
    tokens_expired = false;
    server_state = "ACTIVE";
    server_http = 200;
    version_action = STUB_ANSWER;
    version_doc = "{\"version\": {\"id\": \"v2.1\", \"version\": \"2.93\", "
                  "\"min_version\": \"2.1\"}}";
    sg_event_core_start();
    stub = stub_http_new();
    stub_http_set_handler(stub, openstack, NULL);
}

static void
setup_default(void)
{
    setup();
    start_backend(NULL);
}

static void
teardown(void)
{
    g_clear_pointer(&backend, sg_token_backend_free);
    g_clear_pointer(&stub, stub_http_free);
    g_clear_pointer(&cfg, sg_config_free);
    g_queue_clear_full(&login_faults, (GDestroyNotify)stub_reply_free);
    g_queue_clear_full(&nova_faults, (GDestroyNotify)stub_reply_free);
    sg_event_core_stop();
    /* No password, service token or console token ("tok-") in the log. */
    ck_assert_msg(strstr(logged->str, "secret") == NULL && strstr(logged->str, "svc-") == NULL &&
                  strstr(logged->str, "tok-") == NULL, "a secret was logged:\n%s", logged->str);
    g_string_free(logged, TRUE);
}

typedef struct {
    int calls;
    SgConsoleTarget *tgt;
    GError *error;
    gint64 done_us;
} Got;

static void
got_clear(Got *g)
{
    g_clear_pointer(&g->tgt, sg_console_target_free);
    g_clear_error(&g->error);
    g->calls = 0;
}

static void
on_got(const SgConsoleTarget *tgt, const GError *error, gpointer data)
{
    Got *g = data;

    g->calls++;
    ck_assert((tgt != NULL) != (error != NULL));
    g->tgt = tgt ? sg_console_target_copy(tgt) : NULL;
    g->error = error ? g_error_copy(error) : NULL;
    g->done_us = g_get_monotonic_time();
}

static gboolean
got_called(gpointer data)
{
    return ((Got *)data)->calls > 0;
}

static void
lookup(const char *token, Got *g)
{
    got_clear(g);
    sg_token_lookup(backend, token, on_got, g);
    ck_assert_int_eq(g->calls, 0);             /* never from inside the call */
    stub_run_until(got_called, g, DEADLINE_MS);
    ck_assert_int_eq(g->calls, 1);
}

static const StubRequest *
last_lookup_request(void)
{
    for (guint i = stub_http_n_requests(stub); i > 0; i--) {
        const StubRequest *r = stub_http_request(stub, i - 1);

        if (g_str_has_prefix(r->path, LOOKUP_PREFIX))
            return r;
    }
    ck_abort_msg("no lookup request");
    return NULL;
}

START_TEST(test_lookup)
{
    Got g = { 0 };
    const StubRequest *req;

    lookup("tok-good", &g);
    ck_assert_ptr_null(g.error);
    ck_assert_str_eq(g.tgt->host, "10.0.0.7");
    ck_assert_uint_eq(g.tgt->port, 5901);
    ck_assert_str_eq(g.tgt->instance_uuid, "5b8e9b77-6a2c-4f6e-9d0e-2f1a3c4d5e6f");
    ck_assert_ptr_null(g.tgt->internal_access_path);
    ck_assert_int_eq(g.tgt->expires_at_us, 0);
    req = last_lookup_request();
    ck_assert_str_eq(req->method, "GET");
    ck_assert_str_eq(req->path, LOOKUP_PREFIX "tok-good");
    ck_assert_str_eq(g_hash_table_lookup(req->headers, "x-auth-token"), "svc-1");
    ck_assert_str_eq(g_hash_table_lookup(req->headers, "openstack-api-version"), "compute 2.31");
    ck_assert_uint_eq(logins, 1);              /* the start-up login's token, reused */
    ck_assert_ptr_nonnull(strstr(logged->str, "compute API supports 2.1..2.93; using 2.31"));
    got_clear(&g);
}
END_TEST

/* "/" and "?" in a token must not change the resource asked for. */
START_TEST(test_token_escaped_in_path)
{
    Got g = { 0 };

    lookup("tok-a/../b?c=d#e", &g);
    ck_assert_ptr_null(g.error);
    ck_assert_str_eq(last_lookup_request()->path, LOOKUP_PREFIX "tok-a%2F..%2Fb%3Fc%3Dd%23e");
    got_clear(&g);
}
END_TEST

/* Never asked about: empty, too long, not UTF-8. */
START_TEST(test_impossible_tokens_not_asked)
{
    static const char *const tokens[] = { "", "tok-\xff\xfe" };
    g_autofree char *long_token = g_strnfill(513, 'x');
    Got g = { 0 };

    for (guint i = 0; i < G_N_ELEMENTS(tokens) + 1; i++) {
        lookup(i < G_N_ELEMENTS(tokens) ? tokens[i] : long_token, &g);
        ck_assert_int_eq(g.error->code, SG_TOKEN_ERROR_UNKNOWN);
    }
    ck_assert_uint_eq(count_requests(LOOKUP_PREFIX), 0);
    got_clear(&g);
}
END_TEST

/* An answer is reused for cache_time (default 5 s), "unknown" for
 * negative_cache_time (default 5 s): one Nova request each. */
START_TEST(test_caches)
{
    Got g = { 0 };

    lookup("tok-good", &g);
    lookup("tok-good", &g);
    ck_assert_str_eq(g.tgt->host, "10.0.0.7");
    ck_assert_uint_eq(count_requests(LOOKUP_PREFIX), 1);

    lookup("unknown-tok-1", &g);
    ck_assert_int_eq(g.error->code, SG_TOKEN_ERROR_UNKNOWN);
    lookup("unknown-tok-1", &g);
    ck_assert_int_eq(g.error->code, SG_TOKEN_ERROR_UNKNOWN);
    ck_assert_uint_eq(count_requests(LOOKUP_PREFIX), 2);
    got_clear(&g);
}
END_TEST

static void
setup_no_cache(void)
{
    setup();
    start_backend("cache_time = 0\nnegative_cache_time = 0\n"
                  "enforce_session_timeout = true\ntoken_ttl = 600\n");
}

/* Without caches every lookup asks; with enforce_session_timeout a
 * console's sessions end token_ttl after its first lookup, not its last. */
START_TEST(test_no_cache_and_first_use_expiry)
{
    Got g = { 0 };
    gint64 before = g_get_real_time();
    gint64 first_expiry;

    lookup("tok-good", &g);
    first_expiry = g.tgt->expires_at_us;
    ck_assert_int_ge(first_expiry, before + 600 * G_USEC_PER_SEC);
    ck_assert_int_le(first_expiry, g_get_real_time() + 600 * G_USEC_PER_SEC);
    lookup("tok-good", &g);
    ck_assert_int_eq(g.tgt->expires_at_us, first_expiry);
    lookup("unknown-tok", &g);
    lookup("unknown-tok", &g);
    ck_assert_uint_eq(count_requests(LOOKUP_PREFIX), 4);
    got_clear(&g);
}
END_TEST

typedef struct {
    Got got[4];
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

/* Lookups of one token in flight together share one request; one of them
 * cancelled is not answered, the others are. */
START_TEST(test_shared_request)
{
    Many m = { 0 };
    Got cancelled = { 0 };
    SgTokenLookup *l;

    for (guint i = 0; i < G_N_ELEMENTS(m.got); i++)
        sg_token_lookup(backend, "tok-shared", on_got, &m.got[i]);
    l = sg_token_lookup(backend, "tok-shared", on_got, &cancelled);
    sg_token_lookup_cancel(l);
    stub_run_until(all_got, &m, DEADLINE_MS);
    drain_loop();
    for (guint i = 0; i < G_N_ELEMENTS(m.got); i++) {
        ck_assert_str_eq(m.got[i].tgt->host, "10.0.0.7");
        got_clear(&m.got[i]);
    }
    ck_assert_int_eq(cancelled.calls, 0);
    ck_assert_uint_eq(count_requests(LOOKUP_PREFIX), 1);
}
END_TEST

static gboolean
n_lookups_reached(gpointer data)
{
    return count_requests(LOOKUP_PREFIX) >= GPOINTER_TO_UINT(data);
}

static gboolean
n_closed_reached(gpointer data)
{
    return stub_http_n_client_closed(stub) >= GPOINTER_TO_UINT(data);
}

/* The browser went away: the request to Nova is dropped (its connection
 * closed) and nobody is called back. */
START_TEST(test_cancel_drops_the_request)
{
    Got g = { 0 };
    SgTokenLookup *l;
    guint closed = stub_http_n_client_closed(stub);

    g_queue_push_tail(&nova_faults, stub_reply_raw(STUB_STALL, NULL, 0));
    l = sg_token_lookup(backend, "tok-slow", on_got, &g);
    stub_run_until(n_lookups_reached, GUINT_TO_POINTER(1), DEADLINE_MS);
    sg_token_lookup_cancel(l);
    stub_run_until(n_closed_reached, GUINT_TO_POINTER(closed + 1), DEADLINE_MS);
    drain_loop();
    ck_assert_int_eq(g.calls, 0);
}
END_TEST

/* Freed while its start-up check waits for Nova: the request is dropped
 * (its connection closed). Lookups are their owners' to cancel first
 * (token.h), as the daemon does. */
START_TEST(test_free_during_start_up_check)
{
    guint closed;

    setup();
    version_action = STUB_STALL;
    start_backend(NULL);
    closed = stub_http_n_client_closed(stub);
    ck_assert_uint_eq(stub_http_n_open(stub), 1);
    g_clear_pointer(&backend, sg_token_backend_free);
    stub_run_until(n_closed_reached, GUINT_TO_POINTER(closed + 1), DEADLINE_MS);
    ck_assert_uint_eq(stub_http_n_open(stub), 0);
}
END_TEST

/* Nova refuses a stale service token (keystonemiddleware's 401): log in
 * again and ask once more, with the new token. */
START_TEST(test_stale_service_token_renewed_once)
{
    Got g = { 0 };

    g_queue_push_tail(&nova_faults,
                      stub_reply_new(401, NULL, "{\"error\": {\"code\": 401}}", -1));
    lookup("tok-good", &g);
    ck_assert_ptr_null(g.error);
    ck_assert_uint_eq(logins, 2);
    ck_assert_uint_eq(count_requests(LOOKUP_PREFIX), 2);
    ck_assert_str_eq(g_hash_table_lookup(last_lookup_request()->headers, "x-auth-token"),
                     "svc-2");
    got_clear(&g);
}
END_TEST

/* What Nova may answer instead of a console, and what it becomes. */
typedef struct {
    const char *name;
    int status;                   /* 0: @action */
    StubAction action;
    const char *body;
    int repeat;                   /* answers queued */
    SgTokenError code;
    const char *message;          /* a part of the error's text */
    const char *log;              /* a part of the log, or NULL */
} Fault;

static const Fault nova_fault_cases[] = {
    { "401 twice", 401, 0, "{\"error\": {}}", 2, SG_TOKEN_ERROR_UNAVAILABLE,
      "Nova refused the service token", "refuses freshly issued service tokens" },
    { "401 microversion", 401, 0, "{\"unauthorized\": {}}", 1, SG_TOKEN_ERROR_UNAVAILABLE,
      "Nova rejected the microversion", "use 2.31 or later" },
    { "403", 403, 0, "{}", 1, SG_TOKEN_ERROR_UNAVAILABLE,
      "service user not allowed to check tokens", "needs the admin role" },
    { "400", 400, 0, "{}", 1, SG_TOKEN_ERROR_UNAVAILABLE, "Nova rejected the microversion",
      "check [nova] api_version" },
    { "406", 406, 0, "{}", 1, SG_TOKEN_ERROR_UNAVAILABLE, "Nova rejected the microversion",
      NULL },
    { "500", 500, 0, "{}", 1, SG_TOKEN_ERROR_UNAVAILABLE, "Nova answered HTTP 500",
      "Nova answered HTTP 500 for tok:" },
    { "not JSON", 200, 0, "<html></html>", 1, SG_TOKEN_ERROR_UNAVAILABLE,
      "Nova's reply is not JSON", NULL },
    { "no console", 200, 0, "{\"x\": 1}", 1, SG_TOKEN_ERROR_UNAVAILABLE, "no \"console\" object",
      NULL },
    { "port as a string", 200, 0, "{\"console\": {\"host\": \"h\", \"port\": \"5900\"}}", 1,
      SG_TOKEN_ERROR_REFUSED, "no usable console port", NULL },
    { "host with a slash", 200, 0, "{\"console\": {\"host\": \"h/x\", \"port\": 5900}}", 1,
      SG_TOKEN_ERROR_REFUSED, "no usable console host", NULL },
    { "access path with a newline", 200, 0,
      "{\"console\": {\"host\": \"h\", \"port\": 5900, \"internal_access_path\": \"a\\nb\"}}", 1,
      SG_TOKEN_ERROR_REFUSED, "internal_access_path is not usable", NULL },
    { "reset", 0, STUB_RESET, NULL, 1, SG_TOKEN_ERROR_UNAVAILABLE, "Nova unreachable",
      "cannot reach Nova for tok:" },
    { "huge", 0, STUB_ENDLESS_BODY, "HTTP/1.1 200 OK\r\n\r\n{", 1, SG_TOKEN_ERROR_UNAVAILABLE,
      "response body too large", NULL },
};

/* Each fault, then a good lookup of another token: the backend recovers. */
START_TEST(test_nova_fault)
{
    const Fault *f = &nova_fault_cases[_i];
    Got g = { 0 };

    for (int i = 0; i < f->repeat; i++)
        g_queue_push_tail(&nova_faults, f->status != 0
                                            ? stub_reply_new(f->status, NULL, f->body, -1)
                                            : stub_reply_raw(f->action, f->body, -1));
    lookup("tok-fault", &g);
    ck_assert_msg(g.error != NULL && g.error->domain == SG_TOKEN_ERROR &&
                  g.error->code == (int)f->code, "%s: %s", f->name,
                  g.error ? g.error->message : "no error");
    ck_assert_msg(strstr(g.error->message, f->message) != NULL, "%s: %s", f->name,
                  g.error->message);
    if (f->log != NULL)
        ck_assert_msg(strstr(logged->str, f->log) != NULL, "%s: log:\n%s", f->name,
                      logged->str);
    /* An error is not cached: the same token is asked again. */
    lookup("tok-fault", &g);
    ck_assert_msg(g.error == NULL, "%s: then %s", f->name, g.error ? g.error->message : "");
    got_clear(&g);
}
END_TEST

/* Nova refuses the service token as stale, and Keystone then refuses the
 * login: the lookup fails with Keystone's reason, and Nova is not asked
 * again without a service token. */
START_TEST(test_keystone_refuses)
{
    Got g = { 0 };

    g_queue_push_tail(&login_faults, stub_reply_new(401, NULL, "{}", -1));
    g_queue_push_tail(&nova_faults,
                      stub_reply_new(401, NULL, "{\"error\": {\"code\": 401}}", -1));
    lookup("tok-good", &g);
    ck_assert_int_eq(g.error->code, SG_TOKEN_ERROR_UNAVAILABLE);
    ck_assert_ptr_nonnull(strstr(g.error->message, "Keystone refused the credentials"));
    ck_assert_uint_eq(count_requests(LOOKUP_PREFIX), 1);   /* only the stale-token one */
    got_clear(&g);
}
END_TEST

/* Nova silent: the lookup fails at [nova] timeout (1 s), not later. */
START_TEST(test_deadline)
{
    Got g = { 0 };
    gint64 t0 = g_get_monotonic_time();

    g_queue_push_tail(&nova_faults, stub_reply_raw(STUB_STALL, NULL, 0));
    lookup("tok-slow", &g);
    ck_assert_int_eq(g.error->code, SG_TOKEN_ERROR_UNAVAILABLE);
    ck_assert_int_ge(g.done_us - t0, 900 * 1000);
    ck_assert_int_lt(g.done_us - t0, 3000 * 1000);
    ck_assert_ptr_nonnull(strstr(logged->str, "cannot reach Nova for tok:"));
    got_clear(&g);
}
END_TEST

static void
setup_one_slot(void)
{
    setup();
    start_backend("max_concurrent_lookups = 1\n");
}

/* One slot: a second token waits in the queue and gets the slot when the
 * first lookup goes; under a silent Nova both end at the deadline, the
 * queued one counted in one warning. */
START_TEST(test_queue)
{
    Got a = { 0 };
    Got b = { 0 };
    Got c = { 0 };
    Got d = { 0 };
    SgTokenLookup *la;
    gint64 t0;

    g_queue_push_tail(&nova_faults, stub_reply_raw(STUB_STALL, NULL, 0));
    la = sg_token_lookup(backend, "tok-a", on_got, &a);
    sg_token_lookup(backend, "tok-b", on_got, &b);
    stub_run_until(n_lookups_reached, GUINT_TO_POINTER(1), DEADLINE_MS);
    drain_loop();
    ck_assert_uint_eq(count_requests(LOOKUP_PREFIX), 1);   /* b waits */
    sg_token_lookup_cancel(la);
    stub_run_until(got_called, &b, DEADLINE_MS);
    ck_assert_ptr_null(b.error);
    ck_assert_str_eq(last_lookup_request()->path, LOOKUP_PREFIX "tok-b");
    ck_assert_int_eq(a.calls, 0);

    t0 = g_get_monotonic_time();
    g_queue_push_tail(&nova_faults, stub_reply_raw(STUB_STALL, NULL, 0));
    g_queue_push_tail(&nova_faults, stub_reply_raw(STUB_STALL, NULL, 0));
    sg_token_lookup(backend, "tok-c", on_got, &c);
    sg_token_lookup(backend, "tok-d", on_got, &d);
    stub_run_until(got_called, &d, DEADLINE_MS);
    stub_run_until(got_called, &c, DEADLINE_MS);
    ck_assert_int_lt(d.done_us - t0, 3000 * 1000);
    ck_assert_int_eq(c.error->code, SG_TOKEN_ERROR_UNAVAILABLE);
    ck_assert_int_eq(d.error->code, SG_TOKEN_ERROR_UNAVAILABLE);
    ck_assert_ptr_nonnull(strstr(d.error->message, "no answer from Nova in time"));
    ck_assert_ptr_nonnull(strstr(logged->str, "1 lookup(s) refused"));
    got_clear(&b);
    got_clear(&c);
    got_clear(&d);
}
END_TEST

/* The start-up check reads Nova's version document and says what it
 * finds; nothing it finds stops the backend. */
typedef struct {
    const char *doc;
    const char *log;
} VersionCase;

static const VersionCase version_cases[] = {
    { "{\"version\": {\"version\": \"2.20\", \"min_version\": \"2.1\"}}",
      "api_version 2.31 is above what Nova supports (2.1..2.20)" },
    { "{\"version\": {\"version\": \"2.9999999999999999999\"}}",
      "does not report its microversions" },
    { "{\"version\": {}}", "does not report its microversions" },
    { "[[[[", "version document is not JSON" },
    { "{\"version\": {\"version\": \"2.93\", \"min_version\": \"2.11111111111111111111\"}}",
      "compute API supports ?..2.93; using 2.31" },
    { NULL, "compute endpoint answered HTTP 500 to GET /" },
};

START_TEST(test_version_check)
{
    Got g = { 0 };

    setup();
    version_doc = version_cases[_i].doc;
    start_backend(NULL);
    ck_assert_msg(strstr(logged->str, version_cases[_i].log) != NULL, "log:\n%s", logged->str);
    lookup("tok-good", &g);                    /* and it serves */
    ck_assert_ptr_null(g.error);
    got_clear(&g);
}
END_TEST

/* Nova's compute endpoint unreachable at start: said, and no harm done. */
START_TEST(test_version_check_unreachable)
{
    Got g = { 0 };

    setup();
    version_action = STUB_RESET;
    start_backend(NULL);
    ck_assert_msg(strstr(logged->str, "cannot reach Nova's compute endpoint") != NULL, "log:\n%s",
                  logged->str);
    lookup("tok-good", &g);
    ck_assert_ptr_null(g.error);
    got_clear(&g);
}
END_TEST

static gboolean
logged_has(gpointer data)
{
    return strstr(logged->str, data) != NULL;
}

/* What GET /metrics shows of the backend: Keystone's login and Nova's
 * requests timed in their histograms, and lookups by result. */
START_TEST(test_metrics_noted)
{
    g_autoptr(SgZone) zone = sg_zone_new(1, 0, 0, NULL);
    Got g = { 0 };
    SgZoneStats st;
    guint64 keystone = 0, nova = 0;

    sg_zone_set_current(zone, 0);
    setup();
    start_backend(NULL);
    lookup("tok-good", &g);
    ck_assert_ptr_null(g.error);
    lookup("unknown-1", &g);
    ck_assert_int_eq(g.error->code, SG_TOKEN_ERROR_UNKNOWN);
    got_clear(&g);
    sg_zone_set_current(NULL, 0);
    sg_zone_read(zone, &st);
    ck_assert_uint_eq(st.lookups[SG_ZONE_BACKEND_NOVA][SG_ZONE_LOOKUP_OK], 1);
    ck_assert_uint_eq(st.lookups[SG_ZONE_BACKEND_NOVA][SG_ZONE_LOOKUP_UNKNOWN], 1);
    ck_assert_uint_eq(st.lookups[SG_ZONE_BACKEND_FILE][SG_ZONE_LOOKUP_OK], 0);
    for (guint b = 0; b <= SG_ZONE_LATENCY_BUCKETS; b++) {
        keystone += st.latency_bucket[SG_ZONE_SVC_KEYSTONE][b];
        nova += st.latency_bucket[SG_ZONE_SVC_NOVA][b];
    }
    /* One login; the version document and two lookups. */
    ck_assert_uint_eq(keystone, 1);
    ck_assert_uint_eq(nova, 3);
    ck_assert_uint_gt(st.latency_sum_us[SG_ZONE_SVC_NOVA], 0);
}
END_TEST

/* Keystone refuses the start-up login: the backend starts anyway, does
 * not ask Nova without a token, and serves once Keystone answers well. */
START_TEST(test_keystone_refuses_at_start)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *auth_url = NULL;
    g_autofree char *text = NULL;
    Got g = { 0 };

    setup();
    auth_url = stub_http_url(stub, "/v3");
    text = g_strdup_printf("[tokens]\nbackend = nova\n[nova]\nauth_url = %s\n"
                           "username = spicegate\npassword = nova-test-secret\n"
                           "project_name = service\ntimeout = 1\n", auth_url);
    cfg = sg_config_new_default();
    ck_assert(sg_config_load_data(cfg, text, strlen(text), "test.conf", &error));
    g_queue_push_tail(&login_faults, stub_reply_new(403, NULL, "{}", -1));
    backend = sg_token_nova_new(cfg, &error);
    stub_run_until(logged_has, (gpointer) "Keystone refused the credentials", DEADLINE_MS);
    drain_loop();
    ck_assert_uint_eq(count_requests("/v2.1/"), 0);
    lookup("tok-good", &g);
    ck_assert_ptr_null(g.error);
    ck_assert_uint_eq(logins, 1);
    got_clear(&g);
}
END_TEST

/* What Nova's console carries besides host and port: an instance_uuid
 * that is no UUID is left out (it would go into every log line); an
 * internal_access_path is kept, "" is none, a non-string refused. */
START_TEST(test_console_extras)
{
    g_autofree char *long_uuid = g_strnfill(100000, 'u');
    g_autofree char *body = g_strdup_printf(
        "{\"console\": {\"host\": \"h\", \"port\": 1, \"instance_uuid\": \"%s\", "
        "\"internal_access_path\": \"/path?token=x\"}}", long_uuid);
    Got g = { 0 };

    g_queue_push_tail(&nova_faults, stub_reply_new(200, NULL, body, -1));
    lookup("tok-1", &g);
    ck_assert_ptr_null(g.error);
    ck_assert_ptr_null(g.tgt->instance_uuid);
    ck_assert_str_eq(g.tgt->internal_access_path, "/path?token=x");
    ck_assert_ptr_null(strstr(logged->str, "uuuuuuuu"));

    g_queue_push_tail(&nova_faults, stub_reply_new(200, NULL,
        "{\"console\": {\"host\": \"h\", \"port\": 1, \"internal_access_path\": \"\"}}", -1));
    lookup("tok-2", &g);
    ck_assert_ptr_null(g.tgt->internal_access_path);

    g_queue_push_tail(&nova_faults, stub_reply_new(200, NULL,
        "{\"console\": {\"host\": \"h\", \"port\": 1, \"internal_access_path\": 7}}", -1));
    lookup("tok-3", &g);
    ck_assert_int_eq(g.error->code, SG_TOKEN_ERROR_REFUSED);
    ck_assert_ptr_nonnull(strstr(g.error->message, "internal_access_path is not a string"));
    got_clear(&g);

    /* Nova's tls_port (microversion 2.99) reaches the session's target,
     * through the lookup and its answer cache alike. A stub answers here,
     * not tests/nova's real Nova: Debian 12's Nova (Zed, 26.x) stops at
     * microversion 2.93, and the release that added tls_port (2025.1)
     * returns it only for spice-direct consoles, so no Nova this machine
     * can install produces an answer with one. */
    g_queue_push_tail(&nova_faults, stub_reply_new(200, NULL,
        "{\"console\": {\"host\": \"h\", \"port\": 5900, \"tls_port\": 5901}}", -1));
    lookup("tok-4", &g);
    ck_assert_ptr_null(g.error);
    ck_assert_uint_eq(g.tgt->port, 5900);
    ck_assert_uint_eq(g.tgt->tls_port, 5901);
    got_clear(&g);
    lookup("tok-4", &g);
    ck_assert_ptr_null(g.error);
    ck_assert_uint_eq(g.tgt->tls_port, 5901);
    got_clear(&g);
}
END_TEST

/* --- re-checks of live consoles' tokens ------------------------------------------ */

/* A live session, as far as its token goes: its lookup, then its watch. */
typedef struct {
    SgTokenLookup *lookup;
    SgTokenWatch *watch;
    Got got;
    int revoked;
    char *detail;
} Live;

static void
on_revoked(SgTokenWatch *watch, const char *detail, gpointer data)
{
    Live *l = data;

    ck_assert_ptr_eq(watch, l->watch);
    l->watch = NULL;
    l->revoked++;
    g_free(l->detail);
    l->detail = g_strdup(detail);
}

static void
on_live(const SgConsoleTarget *tgt, const GError *error, gpointer data)
{
    Live *l = data;

    on_got(tgt, error, &l->got);
    if (tgt != NULL)
        l->watch = sg_token_lookup_watch(l->lookup, on_revoked, l);
    l->lookup = NULL;
}

typedef struct {
    Live *l;
    guint n;
} Lives;

static gboolean
lives_answered(gpointer data)
{
    Lives *ls = data;

    for (guint i = 0; i < ls->n; i++)
        if (ls->l[i].got.calls == 0)
            return FALSE;
    return TRUE;
}

static gboolean
lives_revoked(gpointer data)
{
    Lives *ls = data;

    for (guint i = 0; i < ls->n; i++)
        if (ls->l[i].revoked == 0)
            return FALSE;
    return TRUE;
}

/* @n sessions of @token, all asking at once (one request), all watching. */
static void
open_lives(Live *l, guint n, const char *token)
{
    Lives ls = { l, n };

    for (guint i = 0; i < n; i++)
        l[i].lookup = sg_token_lookup(backend, token, on_live, &l[i]);
    stub_run_until(lives_answered, &ls, DEADLINE_MS);
    for (guint i = 0; i < n; i++) {
        ck_assert_ptr_null(l[i].got.error);
        ck_assert_ptr_nonnull(l[i].watch);
    }
}

static void
close_lives(Live *l, guint n)
{
    for (guint i = 0; i < n; i++) {
        g_clear_pointer(&l[i].watch, sg_token_watch_cancel);
        got_clear(&l[i].got);
        g_clear_pointer(&l[i].detail, g_free);
    }
}

static void
setup_revalidate(void)
{
    setup();
    start_backend("revalidate_interval = 1\n");
}

/* Rounds only when the test says (sg_token_backend_revalidate_now()). */
static void
setup_revalidate_by_hand(void)
{
    setup();
    start_backend("revalidate_interval = 3600\n");
}

static gboolean
round_done(gpointer data)
{
    return strstr(logged->str, data) != NULL;
}

/* Four websockets of one console and two of another: one request per
 * token a round, past the answer cache (cache_time is 5 s, a round 1 s).
 * Nova deletes the first token's instance (and so the token): one request
 * about the instance confirms it, all four of its watches hear it, once,
 * the other console's do not, and a browser asking again is refused from
 * the negative cache. */
START_TEST(test_revalidate_one_request_per_token)
{
    Live a[4] = { 0 };
    Live b[2] = { 0 };
    Lives la = { a, G_N_ELEMENTS(a) };
    Got g = { 0 };
    guint base;

    open_lives(a, G_N_ELEMENTS(a), "tok-live");
    open_lives(b, G_N_ELEMENTS(b), "tok-other");
    base = count_requests(LOOKUP_PREFIX);
    ck_assert_uint_eq(base, 2);
    ck_assert_uint_eq(sg_token_backend_n_watched(backend), 2);

    /* A round: one request for each token. */
    sg_token_backend_revalidate_now(backend);
    stub_run_until(round_done, (gpointer) "2 live console token(s) re-checked with nova, 0 revoked",
                   DEADLINE_MS);
    ck_assert_uint_eq(count_requests(LOOKUP_PREFIX), base + 2);
    ck_assert_uint_eq(count_requests(LOOKUP_PREFIX "tok-live"), 2);
    ck_assert_uint_eq(count_requests(LOOKUP_PREFIX "tok-other"), 2);

    ck_assert_uint_eq(count_requests(SERVER_PREFIX), 0);

    deleted_token = "tok-live";
    server_state = NULL;
    sg_token_backend_revalidate_now(backend);
    stub_run_until(lives_revoked, &la, DEADLINE_MS);
    /* The round that found it: one request for the four, one about its
     * instance. */
    ck_assert_uint_eq(count_requests(LOOKUP_PREFIX "tok-live"), 3);
    ck_assert_uint_eq(count_requests(SERVER_PREFIX INSTANCE), 1);
    ck_assert_uint_eq(count_requests(SERVER_PREFIX), 1);
    for (guint i = 0; i < G_N_ELEMENTS(a); i++) {
        ck_assert_int_eq(a[i].revoked, 1);
        ck_assert_ptr_null(a[i].watch);
        ck_assert_str_eq(a[i].detail, "nova: instance deleted (not found)");
    }
    for (guint i = 0; i < G_N_ELEMENTS(b); i++)
        ck_assert_int_eq(b[i].revoked, 0);
    ck_assert_uint_eq(sg_token_backend_n_watched(backend), 1);
    ck_assert_msg(strstr(logged->str, "the consoles of instance " INSTANCE " revoked (nova: "
                                      "instance deleted (not found)): closing their 4 live "
                                      "websocket(s)") != NULL, "%s", logged->str);

    lookup("tok-live", &g);
    ck_assert_int_eq(g.error->code, SG_TOKEN_ERROR_UNKNOWN);
    ck_assert_uint_eq(count_requests(LOOKUP_PREFIX "tok-live"), 3);
    got_clear(&g);
    close_lives(a, G_N_ELEMENTS(a));
    close_lives(b, G_N_ELEMENTS(b));
    ck_assert_uint_eq(sg_token_backend_n_watched(backend), 0);
}
END_TEST

/* Nova answers 500, then nothing within [nova] timeout, then a bare 404
 * that is not Nova's own (a proxy's, or a wrong endpoint's): the consoles
 * stay (fail open), one warning a round says so, and no warning per
 * token. */
START_TEST(test_revalidate_fails_open)
{
    Live a[3] = { 0 };
    guint base;

    open_lives(a, G_N_ELEMENTS(a), "tok-live");
    base = count_requests(LOOKUP_PREFIX);
    g_queue_push_tail(&nova_faults, stub_reply_new(500, NULL, "{}", -1));
    g_queue_push_tail(&nova_faults, stub_reply_raw(STUB_STALL, NULL, 0));
    g_queue_push_tail(&nova_faults, stub_reply_new(404, NULL, "<html>Not Found</html>", -1));
    /* The 500's round, the silent one, the bare 404's, then one answered
     * again. */
    stub_run_until(n_lookups_reached, GUINT_TO_POINTER(base + 4), 10000);
    drain_loop();
    for (guint i = 0; i < G_N_ELEMENTS(a); i++) {
        ck_assert_int_eq(a[i].revoked, 0);
        ck_assert_ptr_nonnull(a[i].watch);
    }
    ck_assert_uint_eq(sg_token_backend_n_watched(backend), 1);
    ck_assert_msg(strstr(logged->str, "[warning] tokens: 1 of 1 re-check(s) of live consoles' "
                                      "tokens failed (first: Nova answered HTTP 500)") != NULL,
                  "%s", logged->str);
    ck_assert_msg(strstr(logged->str, "[warning] tokens: 1 of 1 re-check(s) of live consoles' "
                                      "tokens failed (first: Nova unreachable") != NULL,
                  "%s", logged->str);
    ck_assert_msg(strstr(logged->str, "[warning] tokens: 1 of 1 re-check(s) of live consoles' "
                                      "tokens failed (first: Nova answered 404 without its "
                                      "\"itemNotFound\"") != NULL, "%s", logged->str);
    ck_assert_ptr_nonnull(strstr(logged->str, "stay open"));
    ck_assert_msg(strstr(logged->str, "[warning] nova:") == NULL, "%s", logged->str);
    close_lives(a, G_N_ELEMENTS(a));
}
END_TEST

/* The last session of a console goes while its re-check waits on a silent
 * Nova: the request is dropped, the token forgotten, and the next round
 * still runs for a console opened since. */
START_TEST(test_revalidate_last_session_leaves)
{
    Live a[2] = { 0 };
    Live c[1] = { 0 };
    guint base;
    guint closed = stub_http_n_client_closed(stub);

    open_lives(a, G_N_ELEMENTS(a), "tok-live");
    base = count_requests(LOOKUP_PREFIX);
    g_queue_push_tail(&nova_faults, stub_reply_raw(STUB_STALL, NULL, 0));
    sg_token_backend_revalidate_now(backend);
    stub_run_until(n_lookups_reached, GUINT_TO_POINTER(base + 1), DEADLINE_MS);
    close_lives(a, G_N_ELEMENTS(a));
    ck_assert_uint_eq(sg_token_backend_n_watched(backend), 0);
    stub_run_until(n_closed_reached, GUINT_TO_POINTER(closed + 1), DEADLINE_MS);

    /* The round ended with the request dropped: the next one runs. */
    open_lives(c, G_N_ELEMENTS(c), "tok-next");
    sg_token_backend_revalidate_now(backend);
    stub_run_until(n_lookups_reached, GUINT_TO_POINTER(base + 3), DEADLINE_MS);
    ck_assert_uint_eq(count_requests(LOOKUP_PREFIX "tok-next"), 2);
    close_lives(c, G_N_ELEMENTS(c));
}
END_TEST

static guint
count_logged(const char *what)
{
    guint n = 0;

    for (const char *at = logged->str; (at = strstr(at, what)) != NULL; at++)
        n++;
    return n;
}

typedef struct {
    const char *what;
    guint n;
} Logged;

static gboolean
logged_n(gpointer data)
{
    Logged *l = data;

    return count_logged(l->what) >= l->n;
}

#define ROUND_OK "re-checked with nova, 0 revoked"

/* Nova forgets every token (their token_ttl passed) while both instances
 * live: nothing closes. Two consoles' tokens of one instance and one of
 * another: the first round asks about each token once, then about each
 * instance once (not once per token), and says once per instance that
 * it lives; later rounds ask only about the two instances. Then both are
 * soft-deleted: every websocket hears it. */
START_TEST(test_revalidate_expired_instance_alive)
{
    Live a[2] = { 0 };
    Live b[1] = { 0 };
    Live c[1] = { 0 };
    Lives la = { a, G_N_ELEMENTS(a) };
    Lives lb = { b, G_N_ELEMENTS(b) };
    Lives lc = { c, G_N_ELEMENTS(c) };
    Logged round = { ROUND_OK, 1 };
    guint tokens;

    open_lives(a, G_N_ELEMENTS(a), "tok-live");
    open_lives(b, G_N_ELEMENTS(b), "tok-twin");
    open_lives(c, G_N_ELEMENTS(c), "tok-other");
    ck_assert_uint_eq(sg_token_backend_n_watched(backend), 3);
    tokens = count_requests(LOOKUP_PREFIX);

    tokens_expired = true;
    sg_token_backend_revalidate_now(backend);
    stub_run_until(logged_n, &round, DEADLINE_MS);
    ck_assert_uint_eq(count_requests(LOOKUP_PREFIX), tokens + 3);
    ck_assert_uint_eq(count_requests(SERVER_PREFIX INSTANCE), 1);
    ck_assert_uint_eq(count_requests(SERVER_PREFIX OTHER_INSTANCE), 1);
    ck_assert_uint_eq(count_requests(SERVER_PREFIX), 2);
    ck_assert_int_eq(a[0].revoked + a[1].revoked + b[0].revoked + c[0].revoked, 0);
    ck_assert_uint_eq(sg_token_backend_n_watched(backend), 2);
    ck_assert_uint_eq(count_logged("instance " INSTANCE " lives (its console token expired or "
                                   "was reset): its 3 live websocket(s) stay open"), 1);
    ck_assert_uint_eq(count_logged("instance " OTHER_INSTANCE " lives"), 1);

    for (guint r = 2; r <= 3; r++) {
        round.n = r;
        sg_token_backend_revalidate_now(backend);
        stub_run_until(logged_n, &round, DEADLINE_MS);
        ck_assert_uint_eq(count_requests(LOOKUP_PREFIX), tokens + 3);
        ck_assert_uint_eq(count_requests(SERVER_PREFIX INSTANCE), r);
        ck_assert_uint_eq(count_requests(SERVER_PREFIX OTHER_INSTANCE), r);
        ck_assert_int_eq(a[0].revoked + a[1].revoked + b[0].revoked + c[0].revoked, 0);
    }
    ck_assert_uint_eq(count_logged(" lives (its console token expired"), 2);
    ck_assert_ptr_nonnull(a[0].watch);
    ck_assert_ptr_nonnull(c[0].watch);

    server_state = "SOFT_DELETED";
    sg_token_backend_revalidate_now(backend);
    stub_run_until(lives_revoked, &la, DEADLINE_MS);
    stub_run_until(lives_revoked, &lb, DEADLINE_MS);
    stub_run_until(lives_revoked, &lc, DEADLINE_MS);
    ck_assert_str_eq(a[1].detail, "nova: instance deleted (status SOFT_DELETED)");
    ck_assert_str_eq(c[0].detail, "nova: instance deleted (status SOFT_DELETED)");
    ck_assert_int_eq(a[0].revoked + a[1].revoked + b[0].revoked + c[0].revoked, 4);
    ck_assert_uint_eq(count_requests(LOOKUP_PREFIX), tokens + 3);
    ck_assert_msg(strstr(logged->str, "the consoles of instance " INSTANCE " revoked (nova: "
                                      "instance deleted (status SOFT_DELETED)): closing their 3 "
                                      "live websocket(s)") != NULL, "%s", logged->str);
    ck_assert_uint_eq(sg_token_backend_n_watched(backend), 0);
    close_lives(a, G_N_ELEMENTS(a));
    close_lives(b, G_N_ELEMENTS(b));
    close_lives(c, G_N_ELEMENTS(c));
}
END_TEST

/* The token is unknown and Nova cannot say about the instance (500, then
 * a bare 404 that is not Nova's): the console stays, a warning a round
 * says so; then Nova's own 404 about the instance: it closes. */
START_TEST(test_revalidate_instance_fails_open)
{
    Live a[1] = { 0 };
    Lives la = { a, G_N_ELEMENTS(a) };
    Logged failed = { "tokens: 1 of 2 re-check(s) of live consoles' tokens failed (first: "
                      "Nova answered HTTP 500 about an instance)", 1 };
    Logged bare = { "tokens: 1 of 1 re-check(s) of live consoles' tokens failed (first: "
                    "Nova answered 404 without its \"itemNotFound\" about an instance", 1 };

    open_lives(a, G_N_ELEMENTS(a), "tok-live");
    tokens_expired = true;
    server_http = 500;
    sg_token_backend_revalidate_now(backend);
    stub_run_until(logged_n, &failed, DEADLINE_MS);
    ck_assert_int_eq(a[0].revoked, 0);
    ck_assert_ptr_nonnull(a[0].watch);
    ck_assert_uint_eq(count_requests(SERVER_PREFIX INSTANCE), 1);

    server_http = 404;
    sg_token_backend_revalidate_now(backend);
    stub_run_until(logged_n, &bare, DEADLINE_MS);
    ck_assert_int_eq(a[0].revoked, 0);
    ck_assert_uint_eq(count_requests(SERVER_PREFIX INSTANCE), 2);

    server_http = 200;
    server_state = NULL;
    sg_token_backend_revalidate_now(backend);
    stub_run_until(lives_revoked, &la, DEADLINE_MS);
    ck_assert_str_eq(a[0].detail, "nova: instance deleted (not found)");
    ck_assert_uint_eq(count_requests(SERVER_PREFIX INSTANCE), 3);
    ck_assert_msg(strstr(logged->str, "[warning] nova:") == NULL, "%s", logged->str);
    close_lives(a, G_N_ELEMENTS(a));
}
END_TEST

/* A token Nova no longer knows, with no instance to ask about (its first
 * answer had none): nothing tells an expired token from a deleted one, so
 * the console stays, the log says so once, and later rounds do not ask. */
START_TEST(test_revalidate_no_instance_kept)
{
    Live a[2] = { 0 };
    Logged kept = { "unknown to nova now, and no instance to ask about: its 2 live "
                    "websocket(s) stay open, no longer re-checked", 1 };
    Logged round = { ROUND_OK, 2 };
    guint tokens;

    open_lives(a, G_N_ELEMENTS(a), "tok-noinst");
    tokens = count_requests(LOOKUP_PREFIX);
    tokens_expired = true;
    sg_token_backend_revalidate_now(backend);
    stub_run_until(logged_n, &kept, DEADLINE_MS);
    sg_token_backend_revalidate_now(backend);
    stub_run_until(logged_n, &round, DEADLINE_MS);
    ck_assert_uint_eq(count_requests(LOOKUP_PREFIX), tokens + 1);
    ck_assert_uint_eq(count_requests(SERVER_PREFIX), 0);
    ck_assert_int_eq(a[0].revoked + a[1].revoked, 0);
    ck_assert_ptr_nonnull(a[1].watch);
    ck_assert_uint_eq(count_logged("no instance to ask about"), 1);
    close_lives(a, G_N_ELEMENTS(a));
    ck_assert_uint_eq(sg_token_backend_n_watched(backend), 0);
}
END_TEST

static Suite *
token_nova_suite(void)
{
    Suite *s = suite_create("token_nova");
    TCase *tc = tcase_create("lookups");
    TCase *t;

    tcase_set_timeout(tc, 20);
    tcase_add_checked_fixture(tc, setup_default, teardown);
    tcase_add_test(tc, test_lookup);
    tcase_add_test(tc, test_token_escaped_in_path);
    tcase_add_test(tc, test_impossible_tokens_not_asked);
    tcase_add_test(tc, test_caches);
    tcase_add_test(tc, test_shared_request);
    tcase_add_test(tc, test_cancel_drops_the_request);
    tcase_add_test(tc, test_stale_service_token_renewed_once);
    tcase_add_test(tc, test_keystone_refuses);
    tcase_add_test(tc, test_deadline);
    tcase_add_test(tc, test_console_extras);
    tcase_add_loop_test(tc, test_nova_fault, 0, G_N_ELEMENTS(nova_fault_cases));
    suite_add_tcase(s, tc);

    t = tcase_create("no_cache");
    tcase_set_timeout(t, 20);
    tcase_add_checked_fixture(t, setup_no_cache, teardown);
    tcase_add_test(t, test_no_cache_and_first_use_expiry);
    suite_add_tcase(s, t);

    t = tcase_create("queue");
    tcase_set_timeout(t, 20);
    tcase_add_checked_fixture(t, setup_one_slot, teardown);
    tcase_add_test(t, test_queue);
    suite_add_tcase(s, t);

    t = tcase_create("revalidate");
    tcase_set_timeout(t, 20);
    tcase_add_checked_fixture(t, setup_revalidate, teardown);
    tcase_add_test(t, test_revalidate_fails_open);
    suite_add_tcase(s, t);

    t = tcase_create("revalidate_by_hand");
    tcase_set_timeout(t, 20);
    tcase_add_checked_fixture(t, setup_revalidate_by_hand, teardown);
    tcase_add_test(t, test_revalidate_one_request_per_token);
    tcase_add_test(t, test_revalidate_last_session_leaves);
    tcase_add_test(t, test_revalidate_expired_instance_alive);
    tcase_add_test(t, test_revalidate_instance_fails_open);
    tcase_add_test(t, test_revalidate_no_instance_kept);
    suite_add_tcase(s, t);

    t = tcase_create("version");
    tcase_set_timeout(t, 20);
    tcase_add_checked_fixture(t, NULL, teardown);
    tcase_add_loop_test(t, test_version_check, 0, G_N_ELEMENTS(version_cases));
    tcase_add_test(t, test_free_during_start_up_check);
    tcase_add_test(t, test_version_check_unreachable);
    tcase_add_test(t, test_keystone_refuses_at_start);
    tcase_add_test(t, test_metrics_noted);
    suite_add_tcase(s, t);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(token_nova_suite());
    int failed;

    g_log_set_writer_func(log_writer, NULL, NULL);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
