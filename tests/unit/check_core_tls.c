/* SPDX-License-Identifier: Apache-2.0 */
/* check_core_tls.c - TLS toward the SPICE server ([spice] tls), the core
 * in-process: session, upstream's TLS handshake, endpoint_tls.c and the
 * link guard of tls = auto, between the websocket client of the tests
 * (ws_client.c) and two peers that are NOT SPICE servers: a TLS echo
 * peer with certificates made for each test (tls_peer.c: a wrong CA, an
 * expired certificate, another host, TLS 1.2 only) and the fault-injecting
 * plain peer (fake_spice.c), which can answer a link with
 * SPICE_LINK_ERR_NEED_SECURED. QEMU's real SPICE server over TLS is
 * tests/integ/test_spice_tls.py's. Every wait has a deadline; nothing
 * sleeps. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <check.h>
#include <glib.h>
#include <openssl/x509.h>
#include <spice/protocol.h>

#include "core_harness.h"
#include "endpoint_tls.h"
#include "fake_spice.h"
#include "tls_peer.h"
#include "ws_client.h"

#define DEADLINE_MS 5000

static Harness *h;
static TlsPeer *tp;

static void
teardown(void)
{
    g_clear_pointer(&h, harness_stop);
    g_clear_pointer(&tp, tlsp_free);
}

static void
fill(guint8 *p, gsize len, guint seed)
{
    for (gsize i = 0; i < len; i++)
        p[i] = (guint8)(i * 31 + seed + (i >> 9));
}

/* A token "tls" for the TLS peer's port alone, "both" for the fake
 * peer's plain port with the TLS peer's as tls-port. */
static void
add_tokens(void)
{
    g_autofree char *lines = g_strdup_printf("tls: 127.0.0.1:%u\n"
                                             "both: 127.0.0.1:{fsp} tls-port=%u\n",
                                             tlsp_port(tp), tlsp_port(tp));

    harness_add_tokens(lines);
}

static gboolean
tls_peer_received(gpointer data)
{
    g_autoptr(GByteArray) got = tlsp_received(tp);

    return got->len >= GPOINTER_TO_UINT(data);
}

/* The session was refused with 4525 before a byte was relayed, and the
 * log's detail says @why. */
static void
expect_tls_refusal(WsClient *c, const char *why)
{
    const HarnessClose *closed;
    g_autoptr(GByteArray) got = NULL;

    harness_expect_close(c, 4525, "console TLS verification failed");
    closed = harness_wait_closed(h, 1, DEADLINE_MS);
    ck_assert_int_eq(closed->reason, SG_CLOSE_UPSTREAM_TLS);
    ck_assert_msg(closed->detail != NULL && strstr(closed->detail, why) != NULL,
                  "detail \"%s\" does not say \"%s\"", closed->detail ? closed->detail : "-",
                  why);
    ck_assert(!closed->opened);
    ck_assert_uint_eq(wsc_received_total(c), 0);
    got = tlsp_received(tp);
    ck_assert_uint_eq(got->len, 0);
}

/* --- tls = always ------------------------------------------------------------ */

/* A token line with one port names the TLS port; the console is relayed
 * byte-exact both ways over TLS, from one byte to 3 MiB messages. */
START_TEST(test_always_echo_byte_exact)
{
    g_autoptr(WsClient) c = NULL;
    g_autoptr(GByteArray) link = harness_link_message();
    g_autoptr(GByteArray) sent = g_byte_array_new();
    g_autoptr(GByteArray) echoed = NULL;
    const gsize sizes[] = { 1, 100, 16383, 16384, 16385, 70000, 3 * 1024 * 1024 };

    tp = tlsp_new(TLSP_GOOD);
    add_tokens();
    h = harness_start("spice.tls", "always", "spice.ca_file", tlsp_ca_file(tp), NULL);
    c = harness_open_ws(h, "tls", NULL);
    wsc_send_binary(c, link->data, link->len);
    g_byte_array_append(sent, link->data, link->len);
    for (gsize i = 0; i < G_N_ELEMENTS(sizes); i++) {
        g_autofree guint8 *msg = g_malloc(sizes[i]);

        fill(msg, sizes[i], (guint)i);
        wsc_send_binary(c, msg, sizes[i]);
        g_byte_array_append(sent, msg, (guint)sizes[i]);
    }
    wsc_wait_received(c, sent->len, 20000);
    ck_assert_uint_eq(wsc_received(c)->len, sent->len);
    ck_assert_mem_eq(wsc_received(c)->data, sent->data, sent->len);
    echoed = tlsp_received(tp);
    ck_assert_uint_eq(echoed->len, sent->len);
    ck_assert_uint_eq(tlsp_n_handshakes(tp), 1);
    ck_assert_uint_eq(fsp_n_accepted(h->peer), 0);
}
END_TEST

/* With tls-port on the line, always goes there, never to the plain port. */
START_TEST(test_always_uses_tls_port)
{
    g_autoptr(WsClient) c = NULL;
    g_autoptr(GByteArray) link = harness_link_message();

    tp = tlsp_new(TLSP_GOOD);
    add_tokens();
    h = harness_start("spice.tls", "always", "spice.ca_file", tlsp_ca_file(tp), NULL);
    c = harness_open_ws(h, "both", NULL);
    wsc_send_binary(c, link->data, link->len);
    wsc_wait_received(c, link->len, DEADLINE_MS);
    ck_assert_mem_eq(wsc_received(c)->data, link->data, link->len);
    ck_assert_uint_eq(tlsp_n_handshakes(tp), 1);
    ck_assert_uint_eq(fsp_n_accepted(h->peer), 0);
}
END_TEST

/* The browser stops reading while the server floods 32 MiB: the relay
 * stops reading the TLS connection (the peer's writes block), and all of
 * it arrives, in order, once the browser reads again. */
START_TEST(test_always_download_flow_control)
{
    const guint64 total = 32u << 20;
    g_autoptr(WsClient) c = NULL;
    g_autoptr(GByteArray) link = harness_link_message();
    guint64 bad = 0;
    guint64 stalled;

    tp = tlsp_new(TLSP_GOOD);
    tlsp_set_flood(tp, total);
    add_tokens();
    h = harness_start("spice.tls", "always", "spice.ca_file", tlsp_ca_file(tp), NULL);
    c = harness_open_ws(h, "tls", NULL);
    wsc_pause_reading(c, true);
    wsc_send_binary(c, link->data, link->len);
    wsc_run_until(tls_peer_received, GUINT_TO_POINTER(link->len), DEADLINE_MS);
    wsc_run_for(500);
    stalled = tlsp_sent(tp);
    wsc_run_for(300);
    /* Bounded: the kernel's buffers and one relay buffer, not 32 MiB. */
    ck_assert_uint_eq(tlsp_sent(tp), stalled);
    ck_assert_uint_lt(stalled, total / 2);
    wsc_pause_reading(c, false);
    wsc_wait_received(c, total, 30000);
    ck_assert(fsp_pattern_check(wsc_received(c)->data, (gsize)total, 0, &bad));
}
END_TEST

/* The SPICE server stops reading: spicegate stops reading the websocket
 * (the browser's socket fills and stays full), then takes the rest once
 * the server reads again, byte-exact, over TLS. */
START_TEST(test_always_upload_flow_control)
{
    const gsize total = 12u << 20;
    WsOptions opt = { .sndbuf = 64 * 1024 };
    g_autoptr(WsClient) c = NULL;
    g_autoptr(GByteArray) link = harness_link_message();
    g_autoptr(GByteArray) got = NULL;
    g_autofree guint8 *data = g_malloc(total);
    gsize pending;

    tp = tlsp_new(TLSP_GOOD);
    tlsp_set_sink(tp, true);
    add_tokens();
    h = harness_start("spice.tls", "always", "spice.ca_file", tlsp_ca_file(tp), NULL);
    c = harness_open_ws(h, "tls", &opt);
    wsc_send_binary(c, link->data, link->len);
    wsc_run_until(tls_peer_received, GUINT_TO_POINTER(link->len), DEADLINE_MS);
    tlsp_set_reading(tp, false);
    fill(data, total, 7);
    for (gsize off = 0; off < total; off += 65536)
        wsc_send_binary(c, data + off, MIN(65536, total - off));
    wsc_run_until(wsc_cond_blocked, c, DEADLINE_MS);
    wsc_run_for(1100);
    ck_assert(wsc_send_blocked(c));
    pending = wsc_out_pending(c);
    wsc_run_for(200);
    ck_assert_uint_eq(wsc_out_pending(c), pending);
    ck_assert_uint_gt(pending, 0);

    tlsp_set_reading(tp, true);
    wsc_run_until(tls_peer_received, GUINT_TO_POINTER(link->len + total), 20000);
    got = tlsp_received(tp);
    ck_assert_uint_eq(got->len, link->len + total);
    ck_assert(memcmp(got->data, link->data, link->len) == 0);
    ck_assert(memcmp(got->data + link->len, data, total) == 0);
    ck_assert_uint_eq(h->closed->len, 0);
}
END_TEST

START_TEST(test_wrong_ca_4525)
{
    g_autoptr(WsClient) c = NULL;

    tp = tlsp_new(TLSP_OTHER_CA);
    add_tokens();
    h = harness_start("spice.tls", "always", "spice.ca_file", tlsp_ca_file(tp), NULL);
    c = harness_open_console_with(h, "tls");
    /* A CA of the same name but another key: an impostor. */
    expect_tls_refusal(c, "certificate verification failed: certificate signature failure");
}
END_TEST

START_TEST(test_expired_4525)
{
    g_autoptr(WsClient) c = NULL;

    tp = tlsp_new(TLSP_EXPIRED);
    add_tokens();
    h = harness_start("spice.tls", "always", "spice.ca_file", tlsp_ca_file(tp), NULL);
    c = harness_open_console_with(h, "tls");
    expect_tls_refusal(c, "certificate has expired");
}
END_TEST

/* Without host_subject the certificate must name the target's address. */
START_TEST(test_other_host_4525)
{
    g_autoptr(WsClient) c = NULL;

    tp = tlsp_new(TLSP_OTHER_HOST);
    add_tokens();
    h = harness_start("spice.tls", "always", "spice.ca_file", tlsp_ca_file(tp), NULL);
    c = harness_open_console_with(h, "tls");
    expect_tls_refusal(c, "IP address mismatch");
}
END_TEST

/* host_subject replaces the address check: the same certificate passes
 * when its subject is the one given. */
START_TEST(test_host_subject_matches)
{
    g_autoptr(WsClient) c = NULL;
    g_autoptr(GByteArray) link = harness_link_message();

    tp = tlsp_new(TLSP_OTHER_HOST);
    add_tokens();
    h = harness_start("spice.tls", "always", "spice.ca_file", tlsp_ca_file(tp),
                      "spice.host_subject", " C=IL,L=Raanana, O=Red Hat, CN=my server", NULL);
    c = harness_open_ws(h, "tls", NULL);
    wsc_send_binary(c, link->data, link->len);
    wsc_wait_received(c, link->len, DEADLINE_MS);
    ck_assert_mem_eq(wsc_received(c)->data, link->data, link->len);
}
END_TEST

START_TEST(test_host_subject_differs_4525)
{
    g_autoptr(WsClient) c = NULL;

    tp = tlsp_new(TLSP_GOOD);
    add_tokens();
    h = harness_start("spice.tls", "always", "spice.ca_file", tlsp_ca_file(tp),
                      "spice.host_subject", "C=IL, L=Raanana, O=Red Hat, CN=other server",
                      NULL);
    c = harness_open_console_with(h, "tls");
    expect_tls_refusal(c, "is not [spice] host_subject");
}
END_TEST

START_TEST(test_tls_version_too_low_4525)
{
    g_autoptr(WsClient) c = NULL;

    tp = tlsp_new(TLSP_TLS12_ONLY);
    add_tokens();
    h = harness_start("spice.tls", "always", "spice.ca_file", tlsp_ca_file(tp),
                      "spice.tls_minimum_version", "tlsv1.3", NULL);
    c = harness_open_console_with(h, "tls");
    expect_tls_refusal(c, "TLS handshake failed");
}
END_TEST

/* A port without TLS (the plain peer echoes the ClientHello back). */
START_TEST(test_plain_server_4525)
{
    g_autoptr(WsClient) c = NULL;

    tp = tlsp_new(TLSP_GOOD);
    add_tokens();
    h = harness_start("spice.tls", "always", "spice.ca_file", tlsp_ca_file(tp), NULL);
    c = harness_open_console_with(h, "good");
    expect_tls_refusal(c, "TLS handshake failed");
    ck_assert_uint_eq(fsp_n_accepted(h->peer), 1);
}
END_TEST

/* A port that takes the connection and never answers the ClientHello
 * (a listening socket nobody accepts on: the kernel completes the TCP
 * handshake from the backlog, and the hello waits unread). The handshake
 * is part of the connect: connect_timeout ends it with 4504, and the
 * browser got nothing. */
START_TEST(test_handshake_stalled_4504)
{
    g_autoptr(WsClient) c = NULL;
    g_autofree char *line = NULL;
    const HarnessClose *closed;
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t salen = sizeof(sa);
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    ck_assert_int_ge(lfd, 0);
    ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    ck_assert_int_eq(listen(lfd, 8), 0);
    ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&sa, &salen), 0);
    tp = tlsp_new(TLSP_GOOD);     /* for its CA file only */
    line = g_strdup_printf("stall: 127.0.0.1:%u\n", ntohs(sa.sin_port));
    harness_add_tokens(line);
    h = harness_start("spice.tls", "always", "spice.ca_file", tlsp_ca_file(tp),
                      "server.connect_timeout", "1", NULL);
    c = harness_open_console_with(h, "stall");
    harness_expect_close(c, 4504, "console connect timed out");
    closed = harness_wait_closed(h, 1, DEADLINE_MS);
    ck_assert_int_eq(closed->reason, SG_CLOSE_CONNECT_TIMEOUT);
    ck_assert(!closed->opened);
    ck_assert_uint_eq(wsc_received_total(c), 0);
    close(lfd);
}
END_TEST

/* --- tls = auto: NEED_SECURED ------------------------------------------------ */

/* The plain port answers NEED_SECURED: spicegate connects to the TLS port
 * and sends the same link message there; the browser sees only the TLS
 * server's answer (here: its link, echoed), never the refusal. */
START_TEST(test_auto_need_secured_reconnects)
{
    g_autoptr(WsClient) c = NULL;
    g_autoptr(GByteArray) link = harness_link_message();
    g_autoptr(GByteArray) at_tls = NULL;
    guint8 more[5000];

    tp = tlsp_new(TLSP_GOOD);
    add_tokens();
    h = harness_start("spice.ca_file", tlsp_ca_file(tp), NULL);   /* tls = auto: the default */
    fsp_set_mode(h->peer, FSP_NEED_SECURED);
    c = harness_open_ws(h, "both", NULL);
    wsc_send_binary(c, link->data, link->len);
    wsc_wait_received(c, link->len, DEADLINE_MS);
    ck_assert_uint_eq(wsc_received(c)->len, link->len);
    ck_assert_mem_eq(wsc_received(c)->data, link->data, link->len);
    /* The plain port got the link and answered; the TLS port got it again. */
    ck_assert_uint_eq(fsp_n_accepted(h->peer), 1);
    ck_assert_uint_eq(fsp_received_total(h->peer), link->len);
    at_tls = tlsp_received(tp);
    ck_assert_uint_eq(at_tls->len, link->len);
    ck_assert_mem_eq(at_tls->data, link->data, link->len);
    /* And the console goes on over TLS. */
    fill(more, sizeof(more), 7);
    wsc_send_binary(c, more, sizeof(more));
    wsc_wait_received(c, link->len + sizeof(more), DEADLINE_MS);
    ck_assert_mem_eq(wsc_received(c)->data + link->len, more, sizeof(more));
    ck_assert_uint_eq(tlsp_n_handshakes(tp), 1);
}
END_TEST

/* NEED_SECURED and no TLS port known: 4526, and the browser got nothing. */
START_TEST(test_auto_need_secured_no_tls_port_4526)
{
    g_autoptr(WsClient) c = NULL;
    const HarnessClose *closed;

    h = harness_start(NULL);
    fsp_set_mode(h->peer, FSP_NEED_SECURED);
    c = harness_open_console(h, NULL);
    harness_expect_close(c, 4526, "console needs TLS, TLS port unknown");
    closed = harness_wait_closed(h, 1, DEADLINE_MS);
    ck_assert_int_eq(closed->reason, SG_CLOSE_TLS_PORT_UNKNOWN);
    ck_assert_ptr_nonnull(strstr(closed->detail, "NEED_SECURED"));
    ck_assert_uint_eq(wsc_received_total(c), 0);
}
END_TEST

/* NEED_SECURED, a TLS port, but no [spice] ca_file: refused, not trusted
 * blindly. */
START_TEST(test_auto_need_secured_no_ca_4525)
{
    g_autoptr(WsClient) c = NULL;
    const HarnessClose *closed;

    tp = tlsp_new(TLSP_GOOD);
    add_tokens();
    h = harness_start(NULL);
    fsp_set_mode(h->peer, FSP_NEED_SECURED);
    c = harness_open_console_with(h, "both");
    harness_expect_close(c, 4525, "console TLS verification failed");
    closed = harness_wait_closed(h, 1, DEADLINE_MS);
    ck_assert_ptr_nonnull(strstr(closed->detail, "ca_file"));
    ck_assert_uint_eq(wsc_received_total(c), 0);
    ck_assert_uint_eq(tlsp_n_handshakes(tp), 0);
}
END_TEST

/* tls = never is spicegate before TLS: the refusal reaches the browser. */
START_TEST(test_never_relays_need_secured)
{
    g_autoptr(WsClient) c = NULL;

    tp = tlsp_new(TLSP_GOOD);
    add_tokens();
    h = harness_start("spice.tls", "never", "spice.ca_file", tlsp_ca_file(tp), NULL);
    fsp_set_mode(h->peer, FSP_NEED_SECURED);
    c = harness_open_console_with(h, "both");
    harness_expect_close(c, 1000, "console closed");
    ck_assert_uint_eq(wsc_received_total(c), 16 + 178);
    ck_assert_uint_eq(wsc_received(c)->data[16], SPICE_LINK_ERR_NEED_SECURED);
    ck_assert_uint_eq(tlsp_n_handshakes(tp), 0);
}
END_TEST

/* auto with a server that does not ask for TLS: the reply passes as it
 * came, the rest too (the guard only looks at the first 20 bytes). */
START_TEST(test_auto_plain_server_unchanged)
{
    g_autoptr(WsClient) c = NULL;
    g_autoptr(GByteArray) link = harness_link_message();
    g_autoptr(GByteArray) sent = g_byte_array_new();
    g_autofree guint8 *big = g_malloc(1 << 20);

    h = harness_start(NULL);
    c = harness_open_ws(h, "good", NULL);
    wsc_send_binary(c, link->data, link->len);
    g_byte_array_append(sent, link->data, link->len);
    fill(big, 1 << 20, 3);
    wsc_send_binary(c, big, 1 << 20);
    g_byte_array_append(sent, big, 1 << 20);
    wsc_wait_received(c, sent->len, DEADLINE_MS);
    ck_assert_mem_eq(wsc_received(c)->data, sent->data, sent->len);
}
END_TEST

/* --- spice-gtk's host-subject syntax ------------------------------------------ */

START_TEST(test_subject_syntax)
{
    const char *why = NULL;
    X509_NAME *name = sg_tls_subject_parse("C=IL, L=Raanana, O=Red Hat\\, Inc., CN=a\\\\b", &why);
    char buf[256];

    ck_assert_msg(name != NULL, "%s", why);
    ck_assert_int_eq(X509_NAME_entry_count(name), 4);
    X509_NAME_get_text_by_NID(name, NID_organizationName, buf, sizeof(buf));
    ck_assert_str_eq(buf, "Red Hat, Inc.");
    X509_NAME_get_text_by_NID(name, NID_commonName, buf, sizeof(buf));
    ck_assert_str_eq(buf, "a\\b");
    X509_NAME_free(name);
    ck_assert(sg_tls_subject_valid("CN=x", &why));
    ck_assert(sg_tls_subject_valid("  CN=x,  O=y", &why));
    /* What spice-common refuses, refused (and an empty subject). */
    ck_assert(!sg_tls_subject_valid("", &why));
    ck_assert(!sg_tls_subject_valid("CN", &why));
    ck_assert(!sg_tls_subject_valid("CN=", &why));
    ck_assert(sg_tls_subject_valid("CN=x,", &why));   /* as spice-common: a trailing comma */
    ck_assert(!sg_tls_subject_valid("CN=x,,O=y", &why));
    ck_assert(!sg_tls_subject_valid("CN=a\\b", &why));
    ck_assert(!sg_tls_subject_valid("NOTANATTRIBUTE=x", &why));
    ck_assert_ptr_nonnull(why);
}
END_TEST

static Suite *
core_tls_suite(void)
{
    Suite *s = suite_create("core_tls");
    TCase *tc = tcase_create("tls");

    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_always_echo_byte_exact);
    tcase_add_test(tc, test_always_uses_tls_port);
    tcase_add_test(tc, test_always_download_flow_control);
    tcase_add_test(tc, test_always_upload_flow_control);
    tcase_add_test(tc, test_wrong_ca_4525);
    tcase_add_test(tc, test_expired_4525);
    tcase_add_test(tc, test_other_host_4525);
    tcase_add_test(tc, test_host_subject_matches);
    tcase_add_test(tc, test_host_subject_differs_4525);
    tcase_add_test(tc, test_tls_version_too_low_4525);
    tcase_add_test(tc, test_plain_server_4525);
    tcase_add_test(tc, test_handshake_stalled_4504);
    tcase_add_test(tc, test_auto_need_secured_reconnects);
    tcase_add_test(tc, test_auto_need_secured_no_tls_port_4526);
    tcase_add_test(tc, test_auto_need_secured_no_ca_4525);
    tcase_add_test(tc, test_never_relays_need_secured);
    tcase_add_test(tc, test_auto_plain_server_unchanged);
    suite_add_tcase(s, tc);
    tc = tcase_create("subject");
    tcase_add_test(tc, test_subject_syntax);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(core_tls_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
