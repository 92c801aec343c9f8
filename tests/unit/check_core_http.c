/* SPDX-License-Identifier: Apache-2.0 */
/* check_core_http.c - the core in-process, without QEMU or a browser:
 * plain HTTP/1.1 through listener.c, web.c and http_response.c (a file,
 * the index, /healthz, 404, 405, HEAD), upgrades refused at the
 * handshake (400), shutdown with sessions open (1001 to each, then the
 * listener says it is done; 503 and 1001 to what comes after), and the
 * acceptor running out of descriptors and recovering; the listening
 * socket (a port taken, a bad address, every address, IPv6). spicegate is
 * started as main.c starts it (core_harness.c); the client is
 * ws_client.c. Every wait has a deadline; nothing sleeps. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <check.h>
#include <glib.h>
#include <spice/protocol.h>

#include "core_harness.h"
#include "fake_spice.h"
#include "listen_socket.h"
#include "listener.h"
#include "ws_client.h"

#define DEADLINE_MS 5000

static Harness *h;

static void
setup(void)
{
    h = harness_start(NULL);
}

static void
teardown(void)
{
    g_clear_pointer(&h, harness_stop);
}

/* One plain request, its whole answer. */
static WsClient *
request(const char *method, const char *path)
{
    g_autofree char *req = g_strdup_printf("%s %s HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n\r\n",
                                           method, path, h->port);
    WsClient *c = wsc_http(h->port, req);

    wsc_run_until(wsc_cond_answered, c, DEADLINE_MS);
    return c;
}

static bool
body_is(const WsClient *c, const char *text)
{
    const GByteArray *b = wsc_body(c);

    return b->len == strlen(text) && memcmp(b->data, text, b->len) == 0;
}

START_TEST(test_file)
{
    g_autoptr(WsClient) c = request("GET", "/index.html");

    ck_assert_int_eq(wsc_status(c), 200);
    ck_assert(body_is(c, HARNESS_INDEX_HTML));
    ck_assert(g_str_has_prefix(wsc_header(c, "Content-Type"), "text/html"));
    ck_assert_ptr_nonnull(wsc_header(c, "Content-Security-Policy"));
    ck_assert_str_eq(wsc_header(c, "Server"), "spicegate");
}
END_TEST

START_TEST(test_index_and_script)
{
    g_autoptr(WsClient) c = request("GET", "/");
    g_autoptr(WsClient) js = request("GET", "/app.js");

    ck_assert_int_eq(wsc_status(c), 200);
    ck_assert(body_is(c, HARNESS_INDEX_HTML));
    ck_assert_int_eq(wsc_status(js), 200);
    ck_assert(body_is(js, "console.log('spicegate');\n"));
    ck_assert_ptr_nonnull(strstr(wsc_header(js, "Content-Type"), "javascript"));
}
END_TEST

START_TEST(test_head)
{
    g_autoptr(WsClient) c = NULL;
    g_autofree char *len = g_strdup_printf("%zu", strlen(HARNESS_INDEX_HTML));

    c = wsc_http(h->port, "HEAD /index.html HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    wsc_run_until(wsc_cond_eof, c, DEADLINE_MS);
    ck_assert_int_eq(wsc_status(c), 200);
    ck_assert_str_eq(wsc_header(c, "Content-Length"), len);
    ck_assert_uint_eq(wsc_body(c)->len, 0);
}
END_TEST

START_TEST(test_healthz)
{
    g_autoptr(WsClient) c = request("GET", "/healthz");

    ck_assert_int_eq(wsc_status(c), 200);
    ck_assert(body_is(c, "ok\n"));
}
END_TEST

START_TEST(test_not_found_404)
{
    g_autoptr(WsClient) c = request("GET", "/no/such/file.html");
    g_autoptr(WsClient) dot = request("GET", "/../tokens");

    ck_assert_int_eq(wsc_status(c), 404);
    ck_assert_int_eq(wsc_status(dot), 404);
}
END_TEST

START_TEST(test_method_405)
{
    g_autoptr(WsClient) c = NULL;

    c = wsc_http(h->port, "POST /index.html HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi");
    wsc_run_until(wsc_cond_answered, c, DEADLINE_MS);
    ck_assert_int_eq(wsc_status(c), 405);
}
END_TEST

/* Two requests on one connection (HTTP/1.1 keep-alive). */
START_TEST(test_keep_alive)
{
    g_autofree char *req = g_strdup_printf("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    g_autoptr(WsClient) c = wsc_http(h->port, req);

    wsc_run_until(wsc_cond_answered, c, DEADLINE_MS);
    ck_assert_int_eq(wsc_status(c), 200);
    ck_assert(!wsc_eof(c));
}
END_TEST

/* --- upgrades refused at the handshake ----------------------------------- */

START_TEST(test_subprotocol_not_binary_400)
{
    WsOptions opt = { .path = "/websockify?token=good", .protocol = "chat" };
    g_autoptr(WsClient) c = wsc_connect(h->port, &opt);

    wsc_run_until(wsc_cond_answered, c, DEADLINE_MS);
    ck_assert_int_eq(wsc_status(c), 400);
    ck_assert(!wsc_upgraded(c));
    ck_assert_uint_eq(fsp_n_accepted(h->peer), 0);
}
END_TEST

START_TEST(test_version_not_13_400)
{
    WsOptions opt = { .path = "/websockify?token=good", .version = "8" };
    g_autoptr(WsClient) c = wsc_connect(h->port, &opt);

    wsc_run_until(wsc_cond_answered, c, DEADLINE_MS);
    ck_assert_int_eq(wsc_status(c), 400);
}
END_TEST

/* No subprotocol offered: the upgrade is answered without one. */
START_TEST(test_no_subprotocol_upgrades)
{
    WsOptions opt = { .path = "/websockify?token=good", .protocol = "" };
    g_autoptr(WsClient) c = wsc_connect(h->port, &opt);

    wsc_run_until(wsc_cond_answered, c, DEADLINE_MS);
    ck_assert_int_eq(wsc_status(c), 101);
    ck_assert(wsc_upgraded(c));
    ck_assert_ptr_null(wsc_header(c, "Sec-WebSocket-Protocol"));
}
END_TEST

/* --- shutdown ----------------------------------------------------------------- */

static void
put_le32(guint8 *p, guint32 v)
{
    p[0] = v & 0xff;
    p[1] = (v >> 8) & 0xff;
    p[2] = (v >> 16) & 0xff;
    p[3] = (v >> 24) & 0xff;
}

/* An upgraded console whose link the fake peer echoed: RELAYING. */
static WsClient *
relaying_console(void)
{
    guint8 m[34] = { 'R', 'E', 'D', 'Q' };
    WsClient *c = wsc_connect(h->port, &(WsOptions){ .path = "/websockify?token=good" });

    put_le32(m + 4, SPICE_VERSION_MAJOR);
    put_le32(m + 8, SPICE_VERSION_MINOR);
    put_le32(m + 12, 18);
    m[20] = SPICE_CHANNEL_INPUTS;
    put_le32(m + 30, 18);
    wsc_run_until(wsc_cond_answered, c, DEADLINE_MS);
    ck_assert(wsc_upgraded(c));
    wsc_send_binary(c, m, sizeof(m));
    wsc_wait_received(c, sizeof(m), DEADLINE_MS);
    return c;
}

static gboolean
shutdown_done(gpointer data)
{
    return ((Harness *)data)->shutdown_done;
}

START_TEST(test_shutdown_with_sessions_1001)
{
    g_autoptr(WsClient) a = relaying_console();
    g_autoptr(WsClient) b = relaying_console();
    g_autoptr(WsClient) http = NULL;
    g_autoptr(WsClient) late = NULL;

    /* A connection taken before the stop, its request sent after. */
    http = request("GET", "/healthz");
    ck_assert_int_eq(wsc_status(http), 200);

    ck_assert_uint_eq(h->opened, 2);
    harness_shutdown(h);
    wsc_run_until(wsc_cond_eof, a, DEADLINE_MS);
    wsc_run_until(wsc_cond_eof, b, DEADLINE_MS);
    ck_assert_uint_eq(wsc_close_code(a), 1001);
    ck_assert_str_eq(wsc_close_reason(a), "spicegate shutting down");
    ck_assert_uint_eq(wsc_close_code(b), 1001);
    wsc_run_until(shutdown_done, h, DEADLINE_MS);
    ck_assert_int_eq(harness_wait_closed(h, 2, DEADLINE_MS)->reason, SG_CLOSE_SHUTDOWN);
    ck_assert_int_eq(((HarnessClose *)g_ptr_array_index(h->closed, 0))->reason,
                     SG_CLOSE_SHUTDOWN);

    /* No new connection is taken... */
    late = wsc_http(h->port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    wsc_run_for(200);
    ck_assert_int_eq(wsc_status(late), 0);
}
END_TEST

/* While stopping, connections already taken get 503 for plain HTTP and
 * 1001 for an upgrade. */
START_TEST(test_shutdown_refuses_what_comes_after)
{
    const char *healthz = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    g_autoptr(WsClient) k = wsc_http(h->port, healthz);
    g_autoptr(WsClient) u = wsc_http(h->port, healthz);
    g_autoptr(WsClient) keep = relaying_console();

    /* Both taken: their first answers are in. */
    wsc_run_until(wsc_cond_answered, k, DEADLINE_MS);
    wsc_run_until(wsc_cond_answered, u, DEADLINE_MS);
    ck_assert_int_eq(wsc_status(k), 200);
    ck_assert_int_eq(wsc_status(u), 200);
    harness_shutdown(h);
    wsc_next_answer(k);
    wsc_send_raw(k, healthz, strlen(healthz));
    wsc_run_until(wsc_cond_answered, k, DEADLINE_MS);
    ck_assert_int_eq(wsc_status(k), 503);
    wsc_next_answer(u);
    wsc_send_upgrade(u, h->port, &(WsOptions){ .path = "/websockify?token=good" });
    wsc_run_until(wsc_cond_answered, u, DEADLINE_MS);
    ck_assert_int_eq(wsc_status(u), 101);
    wsc_run_until(wsc_cond_eof, u, DEADLINE_MS);
    ck_assert_uint_eq(wsc_close_code(u), 1001);
    wsc_run_until(wsc_cond_eof, keep, DEADLINE_MS);
    ck_assert_uint_eq(wsc_close_code(keep), 1001);
    wsc_run_until(shutdown_done, h, DEADLINE_MS);
}
END_TEST

/* A session whose browser does not read its close frame holds the stop
 * until shutdown_timeout; the listener is then freed with it open. */
START_TEST(test_shutdown_grace_runs_out)
{
    WsClient *c;
    gint64 start;

    harness_stop(h);
    h = harness_start("server.shutdown_timeout", "1", "server.close_timeout", "30", NULL);
    fsp_set_mode(h->peer, FSP_FLOOD);
    fsp_set_flood(h->peer, 64u << 20, false);
    fsp_set_buffers(h->peer, 64 * 1024, 0);
    {
        guint8 m[34] = { 'R', 'E', 'D', 'Q' };

        put_le32(m + 4, SPICE_VERSION_MAJOR);
        put_le32(m + 8, SPICE_VERSION_MINOR);
        put_le32(m + 12, 18);
        m[20] = SPICE_CHANNEL_DISPLAY;
        put_le32(m + 30, 18);
        c = wsc_connect(h->port, &(WsOptions){ .path = "/websockify?token=good",
                                              .rcvbuf = 64 * 1024 });
        wsc_run_until(wsc_cond_answered, c, DEADLINE_MS);
        wsc_send_binary(c, m, sizeof(m));
    }
    wsc_wait_received(c, 1, DEADLINE_MS);
    wsc_pause_reading(c, true);
    wsc_run_for(300);
    start = g_get_monotonic_time();
    harness_shutdown(h);
    wsc_run_until(shutdown_done, h, DEADLINE_MS);
    ck_assert_int_ge(g_get_monotonic_time() - start, 900 * 1000);
    ck_assert_uint_eq(h->closed->len, 0);        /* still there */
    harness_stop(h);                             /* frees it */
    h = NULL;
    wsc_free(c);
}
END_TEST

START_TEST(test_shutdown_without_sessions)
{
    harness_shutdown(h);
    ck_assert(!h->shutdown_done);                /* from the loop, not the call */
    wsc_run_until(shutdown_done, h, DEADLINE_MS);
}
END_TEST

/* --- drain (SIGTERM) ------------------------------------------------------------- */

/* A live console keeps relaying through the drain while /healthz says 503
 * on a connection already open, then closes with 1001 once drain_timeout
 * is over. */
START_TEST(test_drain_relays_then_1001)
{
    const char *healthz = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    g_autoptr(WsClient) a = relaying_console();
    g_autoptr(WsClient) k = wsc_http(h->port, healthz);
    g_autoptr(WsClient) u = NULL;
    guint8 more[100];
    gint64 start;

    memset(more, 'x', sizeof(more));
    wsc_run_until(wsc_cond_answered, k, DEADLINE_MS);
    ck_assert_int_eq(wsc_status(k), 200);
    ck_assert(!sg_listener_is_draining(h->listener));
    start = g_get_monotonic_time();
    harness_drain(h, 2);
    ck_assert(sg_listener_is_draining(h->listener));

    wsc_next_answer(k);
    wsc_send_raw(k, healthz, strlen(healthz));
    wsc_run_until(wsc_cond_answered, k, DEADLINE_MS);
    ck_assert_int_eq(wsc_status(k), 503);
    ck_assert_int_eq(wsc_body(k)->len, strlen("draining\n"));
    ck_assert(memcmp(wsc_body(k)->data, "draining\n", wsc_body(k)->len) == 0);

    /* Bytes still go both ways (the fake peer echoes). */
    wsc_send_binary(a, more, sizeof(more));
    wsc_wait_received(a, 34 + sizeof(more), DEADLINE_MS);
    ck_assert(!wsc_got_close(a));

    /* A new websocket on a connection still open: 1001, to go elsewhere. */
    u = wsc_connect(h->port, &(WsOptions){ .path = "/websockify?token=good" });
    wsc_run_for(200);
    ck_assert_int_eq(wsc_status(u), 0);          /* the port is not served */

    harness_expect_close(a, 1001, "spicegate shutting down");
    ck_assert_int_ge(g_get_monotonic_time() - start, 1900 * 1000);
    wsc_run_until(shutdown_done, h, DEADLINE_MS);
    ck_assert_int_eq(harness_wait_closed(h, 1, DEADLINE_MS)->reason, SG_CLOSE_SHUTDOWN);
}
END_TEST

/* An upgrade on a keep-alive connection taken before the drain: 1001. */
START_TEST(test_drain_refuses_new_websockets)
{
    const char *healthz = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    g_autoptr(WsClient) keep = relaying_console();
    g_autoptr(WsClient) u = wsc_http(h->port, healthz);

    wsc_run_until(wsc_cond_answered, u, DEADLINE_MS);
    harness_drain(h, 30);
    wsc_next_answer(u);
    wsc_send_upgrade(u, h->port, &(WsOptions){ .path = "/websockify?token=good" });
    wsc_run_until(wsc_cond_answered, u, DEADLINE_MS);
    ck_assert_int_eq(wsc_status(u), 101);
    harness_expect_close(u, 1001, "spicegate shutting down");
    ck_assert(!wsc_got_close(keep));
    harness_shutdown(h);
    harness_expect_close(keep, 1001, "spicegate shutting down");
}
END_TEST

/* The last console ends by itself: the stop goes on at once, not at the
 * end of drain_timeout. */
START_TEST(test_drain_ends_with_the_last_session)
{
    g_autoptr(WsClient) a = relaying_console();
    g_autoptr(WsClient) b = relaying_console();
    gint64 start = g_get_monotonic_time();

    harness_drain(h, 60);
    wsc_send_close(a, 1000, "");
    wsc_run_until(wsc_cond_eof, a, DEADLINE_MS);
    wsc_run_for(200);
    ck_assert(!h->shutdown_done);                /* b is still there */
    wsc_send_close(b, 1000, "");
    wsc_run_until(wsc_cond_eof, b, DEADLINE_MS);
    wsc_run_until(shutdown_done, h, DEADLINE_MS);
    ck_assert_int_lt(g_get_monotonic_time() - start, DEADLINE_MS * 1000);
    ck_assert_int_eq(harness_wait_closed(h, 2, DEADLINE_MS)->reason, SG_CLOSE_CLIENT_CLOSED);
}
END_TEST

/* A second signal during the drain: 1001 now. */
START_TEST(test_drain_cut_short)
{
    g_autoptr(WsClient) a = relaying_console();

    harness_drain(h, 60);
    wsc_run_for(100);
    ck_assert(!wsc_got_close(a));
    harness_shutdown(h);
    harness_expect_close(a, 1001, "spicegate shutting down");
    wsc_run_until(shutdown_done, h, DEADLINE_MS);
}
END_TEST

START_TEST(test_drain_without_sessions)
{
    harness_drain(h, 60);
    ck_assert(!h->shutdown_done);                /* from the loop, not the call */
    wsc_run_until(shutdown_done, h, DEADLINE_MS);
}
END_TEST

/* --- the acceptor --------------------------------------------------------------- */

/* Out of descriptors, accept() fails: the acceptor backs off instead of
 * spinning, and takes the connection once descriptors are back. */
START_TEST(test_acceptor_out_of_descriptors)
{
    g_autoptr(WsClient) c = NULL;
    struct rlimit saved, tight;
    int probe;

    ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &saved), 0);
    c = wsc_http(h->port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    /* No descriptor free: the lowest free one is the limit. */
    probe = dup(0);
    ck_assert_int_ge(probe, 0);
    close(probe);
    tight = saved;
    tight.rlim_cur = (rlim_t)probe;
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &tight), 0);
    wsc_run_for(600);
    ck_assert_int_eq(wsc_status(c), 0);           /* not taken */
    ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &saved), 0);
    wsc_run_until(wsc_cond_answered, c, DEADLINE_MS);
    ck_assert_int_eq(wsc_status(c), 200);
}
END_TEST

/* --- the listening socket ------------------------------------------------------ */

START_TEST(test_listen_port_taken)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *want = g_strdup_printf("cannot listen on 127.0.0.1:%u: ", h->port);
    guint port = 0;

    ck_assert_int_lt(sg_listen_socket_open("127.0.0.1", h->port, &port, &error), 0);
    ck_assert_msg(g_str_has_prefix(error->message, want), "%s", error->message);
}
END_TEST

START_TEST(test_listen_bad_address)
{
    g_autoptr(GError) error = NULL;
    guint port = 0;

    ck_assert_int_lt(sg_listen_socket_open("not-an-address", 0, &port, &error), 0);
    ck_assert_msg(g_str_has_prefix(error->message, "cannot resolve not-an-address"), "%s",
                  error->message);
}
END_TEST

/* No host: every address, IPv6 and IPv4 on one socket. */
START_TEST(test_listen_every_address)
{
    g_autoptr(GError) error = NULL;
    guint port = 0;
    int fd = sg_listen_socket_open(NULL, 0, &port, &error);
    g_autoptr(WsClient) c = NULL;
    int conn;

    ck_assert_msg(fd >= 0, "%s", error ? error->message : "");
    ck_assert_uint_gt(port, 0);
    /* Over IPv4; connect() returns once the connection waits in the
     * socket's backlog. */
    c = wsc_connect_raw((guint16)port);
    conn = accept(fd, NULL, NULL);
    ck_assert_int_ge(conn, 0);
    close(conn);
    close(fd);
}
END_TEST

/* An accepted connection comes with no Nagle and TCP keepalive (300 s
 * idle, 10 s interval, 3 probes), inherited from the listening socket:
 * the accept path sets nothing itself. */
START_TEST(test_accepted_socket_inherits_options)
{
    g_autoptr(GError) error = NULL;
    guint port = 0;
    int fd = sg_listen_socket_open("127.0.0.1", 0, &port, &error);
    g_autoptr(WsClient) c = NULL;
    int conn, value;
    socklen_t len;

    ck_assert_msg(fd >= 0, "%s", error ? error->message : "");
    c = wsc_connect_raw((guint16)port);
    conn = accept(fd, NULL, NULL);
    ck_assert_int_ge(conn, 0);
#define CHECK_OPTION(level, name, want)                                    \
    len = sizeof(value);                                                   \
    ck_assert_int_eq(getsockopt(conn, level, name, &value, &len), 0);      \
    ck_assert_int_eq(value, want)
    CHECK_OPTION(IPPROTO_TCP, TCP_NODELAY, 1);
    CHECK_OPTION(SOL_SOCKET, SO_KEEPALIVE, 1);
    CHECK_OPTION(IPPROTO_TCP, TCP_KEEPIDLE, SG_KEEPALIVE_IDLE_S);
    CHECK_OPTION(IPPROTO_TCP, TCP_KEEPINTVL, SG_KEEPALIVE_INTERVAL_S);
    CHECK_OPTION(IPPROTO_TCP, TCP_KEEPCNT, SG_KEEPALIVE_PROBES);
#undef CHECK_OPTION
    close(conn);
    close(fd);
}
END_TEST

START_TEST(test_listen_ipv6_taken)
{
    g_autoptr(GError) error = NULL;
    guint port = 0, again = 0;
    int fd = sg_listen_socket_open("::1", 0, &port, &error);
    g_autofree char *want = NULL;

    if (fd < 0) {
        /* No IPv6 on this machine: nothing to check. */
        ck_assert_ptr_nonnull(error);
        return;
    }
    want = g_strdup_printf("cannot listen on [::1]:%u: ", port);
    ck_assert_int_lt(sg_listen_socket_open("::1", port, &again, &error), 0);
    ck_assert_msg(g_str_has_prefix(error->message, want), "%s", error->message);
    close(fd);
}
END_TEST

static Suite *
core_http_suite(void)
{
    Suite *s = suite_create("core_http");
    TCase *http = tcase_create("http");
    TCase *stop = tcase_create("shutdown");
    TCase *sock = tcase_create("listen_socket");

    tcase_set_timeout(http, 30);
    tcase_add_checked_fixture(http, setup, teardown);
    tcase_add_test(http, test_file);
    tcase_add_test(http, test_index_and_script);
    tcase_add_test(http, test_head);
    tcase_add_test(http, test_healthz);
    tcase_add_test(http, test_not_found_404);
    tcase_add_test(http, test_method_405);
    tcase_add_test(http, test_keep_alive);
    tcase_add_test(http, test_subprotocol_not_binary_400);
    tcase_add_test(http, test_version_not_13_400);
    tcase_add_test(http, test_no_subprotocol_upgrades);
    tcase_add_test(http, test_acceptor_out_of_descriptors);
    suite_add_tcase(s, http);

    tcase_set_timeout(stop, 30);
    tcase_add_checked_fixture(stop, setup, teardown);
    tcase_add_test(stop, test_shutdown_with_sessions_1001);
    tcase_add_test(stop, test_shutdown_refuses_what_comes_after);
    tcase_add_test(stop, test_shutdown_grace_runs_out);
    tcase_add_test(stop, test_shutdown_without_sessions);
    tcase_add_test(stop, test_drain_relays_then_1001);
    tcase_add_test(stop, test_drain_refuses_new_websockets);
    tcase_add_test(stop, test_drain_ends_with_the_last_session);
    tcase_add_test(stop, test_drain_cut_short);
    tcase_add_test(stop, test_drain_without_sessions);
    suite_add_tcase(s, stop);

    tcase_set_timeout(sock, 30);
    tcase_add_checked_fixture(sock, setup, teardown);
    tcase_add_test(sock, test_listen_port_taken);
    tcase_add_test(sock, test_listen_bad_address);
    tcase_add_test(sock, test_listen_every_address);
    tcase_add_test(sock, test_accepted_socket_inherits_options);
    tcase_add_test(sock, test_listen_ipv6_taken);
    suite_add_tcase(s, sock);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(core_http_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
