/* SPDX-License-Identifier: Apache-2.0 */
/* check_httpc.c - the libcurl multi client on the event core (httpc.c)
 * against a loopback fault-injecting peer (stub_http.c): answers and HTTP
 * errors passed through, the whole-request deadline, refused and reset
 * connections, the caps on bodies and headers, garbage, redirects not
 * followed, other protocols refused, cancel and free with requests in
 * flight (the callback never runs, the connection is closed). Everything
 * runs on the default GMainContext; every wait has a deadline. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <glib.h>

#include "event_core.h"
#include "httpc.h"
#include "stub_http.h"

#define DEADLINE_MS 5000
/* What the client may read of an endless answer before it stops: its
 * 4 MiB cap plus the loopback socket buffers of both ends. */
#define ENDLESS_SENT_MAX (24u << 20)

typedef struct {
    int calls;
    long status;
    char *error;
    char *body;
    gsize body_len;
    GHashTable *headers;
    gint64 done_us;
} Answer;

static StubHttp *stub;
static SgHttpc *hc;

static void
setup_with(guint timeout_ms)
{
    SgHttpcOptions opts = { .connect_timeout_ms = 2000, .timeout_ms = timeout_ms };

    sg_event_core_start();
    stub = stub_http_new();
    hc = sg_httpc_new(&opts);
}

static void
setup(void)
{
    setup_with(4000);
}

static void
teardown(void)
{
    g_clear_pointer(&hc, sg_httpc_free);
    g_clear_pointer(&stub, stub_http_free);
    sg_event_core_stop();
}

static void
answer_clear(Answer *a)
{
    g_free(a->error);
    g_free(a->body);
    g_clear_pointer(&a->headers, g_hash_table_unref);
}

static void
on_answer(const SgHttpResponse *resp, gpointer data)
{
    Answer *a = data;

    a->calls++;
    a->status = resp->status;
    a->error = g_strdup(resp->error);
    a->body = g_memdup2(resp->body, resp->body_len + 1);
    a->body_len = resp->body_len;
    ck_assert_int_eq(a->body[a->body_len], '\0');
    a->headers = g_hash_table_ref(resp->headers);
    a->done_us = g_get_monotonic_time();
}

static gboolean
answered(gpointer data)
{
    return ((Answer *)data)->calls > 0;
}

/* Sends one request and waits for its answer. */
static void
fetch(const char *method, const char *url, const char *const *headers, const char *body,
      Answer *a)
{
    sg_httpc_request(hc, method, url, headers, body, on_answer, a);
    ck_assert_int_eq(a->calls, 0);             /* never from inside the call */
    stub_run_until(answered, a, DEADLINE_MS);
    ck_assert_int_eq(a->calls, 1);
}

static void
get(const char *path, Answer *a)
{
    g_autofree char *url = stub_http_url(stub, path);

    fetch("GET", url, NULL, NULL, a);
}

START_TEST(test_get_ok)
{
    Answer a = { 0 };
    const char *hdrs[] = { "X-Auth-Token: secret-value", "Accept: application/json", NULL };
    g_autofree char *url = stub_http_url(stub, "/v2.1/thing?x=1");
    const StubRequest *req;

    stub_http_push(stub, 200, "X-Reply:  yes  \r\nContent-Type: text/plain\r\n", "hello");
    fetch("GET", url, hdrs, NULL, &a);
    ck_assert_int_eq(a.status, 200);
    ck_assert_ptr_null(a.error);
    ck_assert_str_eq(a.body, "hello");
    ck_assert_uint_eq(a.body_len, 5);
    ck_assert_str_eq(g_hash_table_lookup(a.headers, "x-reply"), "yes");  /* trimmed */
    ck_assert_str_eq(g_hash_table_lookup(a.headers, "content-type"), "text/plain");

    ck_assert_uint_eq(stub_http_n_requests(stub), 1);
    req = stub_http_request(stub, 0);
    ck_assert_str_eq(req->method, "GET");
    ck_assert_str_eq(req->path, "/v2.1/thing?x=1");
    ck_assert_str_eq(g_hash_table_lookup(req->headers, "x-auth-token"), "secret-value");
    ck_assert(g_str_has_prefix(g_hash_table_lookup(req->headers, "user-agent"), "spicegate/"));
    answer_clear(&a);
}
END_TEST

START_TEST(test_post_body_without_expect)
{
    Answer a = { 0 };
    const char *hdrs[] = { "Content-Type: application/json", NULL };
    g_autofree char *url = stub_http_url(stub, "/v3/auth/tokens");
    /* Big enough that libcurl would ask for 100-continue (over 1 MiB). */
    g_autofree char *body = g_strnfill(2 << 20, 'p');
    const StubRequest *req;

    stub_http_push(stub, 201, NULL, "{}");
    fetch("POST", url, hdrs, body, &a);
    ck_assert_int_eq(a.status, 201);
    req = stub_http_request(stub, 0);
    ck_assert_str_eq(req->method, "POST");
    ck_assert_uint_eq(req->body_len, 2 << 20);
    ck_assert_str_eq(req->body, body);
    ck_assert_ptr_null(g_hash_table_lookup(req->headers, "expect"));
    answer_clear(&a);
}
END_TEST

START_TEST(test_http_errors_are_answers)
{
    static const int codes[] = { 401, 403, 404, 500, 503 };

    for (guint i = 0; i < G_N_ELEMENTS(codes); i++) {
        Answer a = { 0 };

        stub_http_push(stub, codes[i], NULL, "{\"error\": {}}");
        get("/x", &a);
        ck_assert_int_eq(a.status, codes[i]);
        ck_assert_ptr_null(a.error);
        ck_assert_str_eq(a.body, "{\"error\": {}}");
        answer_clear(&a);
    }
}
END_TEST

START_TEST(test_empty_body)
{
    Answer a = { 0 };

    stub_http_push(stub, 204, NULL, NULL);
    get("/", &a);
    ck_assert_int_eq(a.status, 204);
    ck_assert_str_eq(a.body, "");
    ck_assert_uint_eq(a.body_len, 0);
    answer_clear(&a);
}
END_TEST

/* Only the last status line's headers count (100 Continue, then 200). */
START_TEST(test_headers_of_the_final_answer_only)
{
    static const char raw[] = "HTTP/1.1 100 Continue\r\nX-Early: 1\r\n\r\n"
                              "HTTP/1.1 200 OK\r\nX-Late: 2\r\nContent-Length: 2\r\n"
                              "Connection: close\r\n\r\nok";
    Answer a = { 0 };

    stub_http_push_reply(stub, stub_reply_raw(STUB_ANSWER, raw, -1));
    get("/", &a);
    ck_assert_int_eq(a.status, 200);
    ck_assert_str_eq(a.body, "ok");
    ck_assert_ptr_null(g_hash_table_lookup(a.headers, "x-early"));
    ck_assert_str_eq(g_hash_table_lookup(a.headers, "x-late"), "2");
    answer_clear(&a);
}
END_TEST

START_TEST(test_redirect_not_followed)
{
    Answer a = { 0 };
    g_autofree char *elsewhere = stub_http_url(stub, "/elsewhere");
    g_autofree char *hdr = g_strdup_printf("Location: %s\r\n", elsewhere);

    stub_http_push(stub, 302, hdr, "moved");
    stub_http_push(stub, 200, NULL, "followed");
    get("/", &a);
    ck_assert_int_eq(a.status, 302);
    ck_assert_str_eq(a.body, "moved");
    ck_assert_uint_eq(stub_http_n_requests(stub), 1);
    answer_clear(&a);
}
END_TEST

static void
setup_short_timeout(void)
{
    setup_with(300);
}

/* A peer that takes the request and never answers: the whole-request
 * deadline ends it, and the connection is closed. */
START_TEST(test_stall_times_out)
{
    Answer a = { 0 };
    gint64 t0 = g_get_monotonic_time();

    stub_http_push_action(stub, STUB_STALL);
    get("/", &a);
    ck_assert_int_eq(a.status, 0);
    ck_assert_msg(strstr(a.error, "imed out") != NULL || strstr(a.error, "imeout") != NULL,
                  "error: %s", a.error);
    ck_assert_int_ge(a.done_us - t0, 250 * 1000);
    ck_assert_int_lt(a.done_us - t0, 3000 * 1000);
    ck_assert_uint_eq(stub_http_n_requests(stub), 1);
    answer_clear(&a);
}
END_TEST

/* An answer's head, then silence: the same deadline ends it. */
START_TEST(test_head_then_silence_times_out)
{
    static const char head[] = "HTTP/1.1 200 OK\r\nContent-Length: 3000000\r\n\r\n";
    Answer a = { 0 };
    gint64 t0 = g_get_monotonic_time();

    stub_http_push_reply(stub, stub_reply_raw(STUB_STALL, head, -1));
    get("/", &a);
    ck_assert_int_eq(a.status, 0);
    ck_assert_ptr_nonnull(a.error);
    ck_assert_int_lt(a.done_us - t0, 3000 * 1000);
    answer_clear(&a);
}
END_TEST

START_TEST(test_connection_refused)
{
    Answer a = { 0 };
    g_autofree char *url = g_strdup_printf("http://127.0.0.1:%u/", stub_http_refused_port());

    fetch("GET", url, NULL, NULL, &a);
    ck_assert_int_eq(a.status, 0);
    ck_assert_ptr_nonnull(a.error);
    ck_assert_str_ne(a.error, "");
    answer_clear(&a);
}
END_TEST

START_TEST(test_reset)
{
    Answer a = { 0 };

    stub_http_push_action(stub, STUB_RESET);
    get("/", &a);
    ck_assert_int_eq(a.status, 0);
    ck_assert_ptr_nonnull(a.error);
    answer_clear(&a);
}
END_TEST

START_TEST(test_garbage_is_no_answer)
{
    static const char raw[] = "\x00\xff garbage, not even a status line\r\n\r\n";
    Answer a = { 0 };

    stub_http_push_reply(stub, stub_reply_raw(STUB_ANSWER, raw, sizeof raw - 1));
    get("/", &a);
    ck_assert_int_eq(a.status, 0);
    ck_assert_ptr_nonnull(a.error);
    answer_clear(&a);
}
END_TEST

/* A Content-Length over the cap is refused before the body is read. */
START_TEST(test_announced_body_over_cap)
{
    static const char head[] = "HTTP/1.1 200 OK\r\nContent-Length: 67108864\r\n\r\n";
    Answer a = { 0 };

    stub_http_push_reply(stub, stub_reply_raw(STUB_ENDLESS_BODY, head, -1));
    get("/", &a);
    ck_assert_int_eq(a.status, 0);
    ck_assert_msg(strstr(a.error, "Content-Length is over 4 MiB") != NULL, "error: %s", a.error);
    ck_assert_uint_eq(a.body_len, 0);
    ck_assert_uint_lt(stub_http_endless_sent(stub), ENDLESS_SENT_MAX);
    answer_clear(&a);
}
END_TEST

/* No Content-Length, a body until the connection ends: cut at 4 MiB. */
START_TEST(test_unannounced_body_over_cap)
{
    static const char head[] = "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n";
    Answer a = { 0 };

    stub_http_push_reply(stub, stub_reply_raw(STUB_ENDLESS_BODY, head, -1));
    get("/", &a);
    ck_assert_int_eq(a.status, 0);
    ck_assert_str_eq(a.error, "response body too large (over 4 MiB)");
    ck_assert_uint_le(a.body_len, 4u << 20);
    ck_assert_uint_lt(stub_http_endless_sent(stub), ENDLESS_SENT_MAX);
    answer_clear(&a);
}
END_TEST

/* Header lines without end: cut at 64 KiB. */
START_TEST(test_endless_headers)
{
    Answer a = { 0 };

    stub_http_push_action(stub, STUB_ENDLESS_HEADERS);
    get("/", &a);
    ck_assert_int_eq(a.status, 0);
    ck_assert_str_eq(a.error, "response headers too large (over 64 KiB)");
    ck_assert_uint_lt(stub_http_endless_sent(stub), ENDLESS_SENT_MAX);
    answer_clear(&a);
}
END_TEST

/* Only http and https: never file://, whatever a catalog says. */
START_TEST(test_other_protocols_refused)
{
    Answer a = { 0 };

    fetch("GET", "file:///etc/hostname", NULL, NULL, &a);
    ck_assert_int_eq(a.status, 0);
    ck_assert_ptr_nonnull(a.error);
    ck_assert_uint_eq(a.body_len, 0);
    answer_clear(&a);
}
END_TEST

/* TLS options reach libcurl: an https request to a plain-HTTP peer fails
 * in the handshake, with verification off or with a CA file. */
START_TEST(test_https_to_plain_peer_fails)
{
    static const char *const ca_files[] = { NULL, "/nonexistent/ca.pem" };

    for (guint i = 0; i < G_N_ELEMENTS(ca_files); i++) {
        SgHttpcOptions opts = { .connect_timeout_ms = 2000, .timeout_ms = 2000,
                                .ca_file = ca_files[i], .insecure = ca_files[i] == NULL };
        SgHttpc *tls = sg_httpc_new(&opts);
        g_autofree char *url = g_strdup_printf("https://127.0.0.1:%u/", stub_http_port(stub));
        Answer a = { 0 };

        stub_http_push(stub, 200, NULL, "plain");
        sg_httpc_request(tls, "GET", url, NULL, NULL, on_answer, &a);
        stub_run_until(answered, &a, DEADLINE_MS);
        ck_assert_int_eq(a.status, 0);
        ck_assert_ptr_nonnull(a.error);
        sg_httpc_free(tls);
        answer_clear(&a);
    }
}
END_TEST

static StubReply *
echo_path(StubHttp *s, const StubRequest *req, gpointer data)
{
    (void)s;
    (void)data;
    return stub_reply_new(200, NULL, req->path, -1);
}

typedef struct {
    Answer answers[8];
} Many;

static gboolean
all_answered(gpointer data)
{
    Many *m = data;

    for (guint i = 0; i < G_N_ELEMENTS(m->answers); i++)
        if (m->answers[i].calls == 0)
            return FALSE;
    return TRUE;
}

START_TEST(test_concurrent_requests)
{
    Many m = { 0 };

    stub_http_set_handler(stub, echo_path, NULL);
    for (guint i = 0; i < G_N_ELEMENTS(m.answers); i++) {
        g_autofree char *path = g_strdup_printf("/r%u", i);
        g_autofree char *url = stub_http_url(stub, path);

        sg_httpc_request(hc, "GET", url, NULL, NULL, on_answer, &m.answers[i]);
    }
    stub_run_until(all_answered, &m, DEADLINE_MS);
    for (guint i = 0; i < G_N_ELEMENTS(m.answers); i++) {
        g_autofree char *path = g_strdup_printf("/r%u", i);

        ck_assert_int_eq(m.answers[i].calls, 1);
        ck_assert_int_eq(m.answers[i].status, 200);
        ck_assert_str_eq(m.answers[i].body, path);
        answer_clear(&m.answers[i]);
    }
    ck_assert_uint_eq(stub_http_n_requests(stub), G_N_ELEMENTS(m.answers));
}
END_TEST

static gboolean
n_requests_reached(gpointer data)
{
    return stub_http_n_requests(stub) >= GPOINTER_TO_UINT(data);
}

static gboolean
n_closed_reached(gpointer data)
{
    return stub_http_n_client_closed(stub) >= GPOINTER_TO_UINT(data);
}

/* Turns the loop until it has nothing to do at once (bounded). */
static void
drain_loop(void)
{
    int turns = 0;

    while (g_main_context_iteration(NULL, FALSE))
        ck_assert_int_lt(++turns, 1000);
}

/* Cancelled once the peer has the request: the callback never runs and
 * the connection is closed; the client still serves the next request. */
START_TEST(test_cancel_mid_request)
{
    Answer a = { 0 };
    Answer b = { 0 };
    g_autofree char *url = stub_http_url(stub, "/slow");
    SgHttpRequest *req;

    stub_http_push_action(stub, STUB_STALL);
    req = sg_httpc_request(hc, "GET", url, NULL, NULL, on_answer, &a);
    stub_run_until(n_requests_reached, GUINT_TO_POINTER(1), DEADLINE_MS);
    sg_httpc_cancel(req);
    stub_run_until(n_closed_reached, GUINT_TO_POINTER(1), DEADLINE_MS);
    ck_assert_uint_eq(stub_http_n_open(stub), 0);
    drain_loop();
    ck_assert_int_eq(a.calls, 0);

    stub_http_push(stub, 200, NULL, "next");
    get("/next", &b);
    ck_assert_int_eq(b.status, 200);
    ck_assert_str_eq(b.body, "next");
    ck_assert_int_eq(a.calls, 0);
    answer_clear(&b);
    sg_httpc_cancel(NULL);
}
END_TEST

/* Cancelled before the loop ever turned: nothing reaches the peer. */
START_TEST(test_cancel_before_start)
{
    Answer a = { 0 };
    g_autofree char *url = stub_http_url(stub, "/never");

    sg_httpc_cancel(sg_httpc_request(hc, "GET", url, NULL, "body", on_answer, &a));
    drain_loop();
    ck_assert_int_eq(a.calls, 0);
    ck_assert_uint_eq(stub_http_n_requests(stub), 0);
}
END_TEST

/* Freed with requests in flight: no callback, every connection closed. */
START_TEST(test_free_in_flight)
{
    Answer a = { 0 };
    Answer b = { 0 };
    g_autofree char *url = stub_http_url(stub, "/slow");

    stub_http_push_action(stub, STUB_STALL);
    stub_http_push_action(stub, STUB_STALL);
    sg_httpc_request(hc, "GET", url, NULL, NULL, on_answer, &a);
    sg_httpc_request(hc, "POST", url, NULL, "x", on_answer, &b);
    stub_run_until(n_requests_reached, GUINT_TO_POINTER(2), DEADLINE_MS);
    g_clear_pointer(&hc, sg_httpc_free);
    stub_run_until(n_closed_reached, GUINT_TO_POINTER(2), DEADLINE_MS);
    drain_loop();
    ck_assert_int_eq(a.calls, 0);
    ck_assert_int_eq(b.calls, 0);
    sg_httpc_free(NULL);
}
END_TEST

static Suite *
httpc_suite(void)
{
    Suite *s = suite_create("httpc");
    TCase *tc = tcase_create("answers");
    TCase *tt = tcase_create("deadline");

    tcase_set_timeout(tc, 20);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_get_ok);
    tcase_add_test(tc, test_post_body_without_expect);
    tcase_add_test(tc, test_http_errors_are_answers);
    tcase_add_test(tc, test_empty_body);
    tcase_add_test(tc, test_headers_of_the_final_answer_only);
    tcase_add_test(tc, test_redirect_not_followed);
    tcase_add_test(tc, test_connection_refused);
    tcase_add_test(tc, test_reset);
    tcase_add_test(tc, test_garbage_is_no_answer);
    tcase_add_test(tc, test_announced_body_over_cap);
    tcase_add_test(tc, test_unannounced_body_over_cap);
    tcase_add_test(tc, test_endless_headers);
    tcase_add_test(tc, test_other_protocols_refused);
    tcase_add_test(tc, test_https_to_plain_peer_fails);
    tcase_add_test(tc, test_concurrent_requests);
    tcase_add_test(tc, test_cancel_mid_request);
    tcase_add_test(tc, test_cancel_before_start);
    tcase_add_test(tc, test_free_in_flight);
    suite_add_tcase(s, tc);

    tcase_set_timeout(tt, 20);
    tcase_add_checked_fixture(tt, setup_short_timeout, teardown);
    tcase_add_test(tt, test_stall_times_out);
    tcase_add_test(tt, test_head_then_silence_times_out);
    suite_add_tcase(s, tt);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(httpc_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
