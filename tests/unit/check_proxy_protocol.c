/* SPDX-License-Identifier: Apache-2.0 */
/* check_proxy_protocol.c - the PROXY protocol parser (v1, v2), and the
 * acceptor reading a header off real loopback sockets on the event core:
 * exactly the header is taken, what follows is left for lws; untrusted
 * peers, garbage and silence are closed. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <check.h>
#include <glib.h>

#include "acceptor.h"
#include "client_addr.h"
#include "event_core.h"
#include "listen_socket.h"
#include "proxy_protocol.h"
#include "run_until.h"

/* --- the parser ------------------------------------------------------------- */

static SgProxyStatus
parse(const void *data, size_t len, SgProxyHeader *hdr, const char **why)
{
    *why = NULL;
    memset(hdr, 0xa5, sizeof(*hdr));
    return sg_proxy_protocol_parse(data, len, hdr, why);
}

static char *
source_text(const SgProxyHeader *hdr)
{
    char text[INET6_ADDRSTRLEN];

    if (hdr->source.ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&hdr->source;

        inet_ntop(AF_INET, &sin->sin_addr, text, sizeof(text));
        return g_strdup_printf("%s:%u", text, ntohs(sin->sin_port));
    }
    {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&hdr->source;

        inet_ntop(AF_INET6, &sin6->sin6_addr, text, sizeof(text));
        return g_strdup_printf("[%s]:%u", text, ntohs(sin6->sin6_port));
    }
}

START_TEST(test_v1_tcp4_and_tcp6)
{
    const char v4[] = "PROXY TCP4 192.0.2.5 198.51.100.1 51234 443\r\nGET / HTTP/1.1\r\n";
    const char v6[] = "PROXY TCP6 2001:db8::5 2001:db8::1 65535 0\r\n\x16\x03\x01";
    SgProxyHeader hdr;
    const char *why;
    g_autofree char *s4 = NULL;
    g_autofree char *s6 = NULL;

    ck_assert_int_eq(parse(v4, strlen(v4), &hdr, &why), SG_PROXY_DONE);
    ck_assert_int_eq(hdr.version, 1);
    ck_assert_uint_eq(hdr.length, strlen("PROXY TCP4 192.0.2.5 198.51.100.1 51234 443\r\n"));
    ck_assert(hdr.has_source);
    s4 = source_text(&hdr);
    ck_assert_str_eq(s4, "192.0.2.5:51234");
    ck_assert_int_eq(parse(v6, sizeof(v6) - 1, &hdr, &why), SG_PROXY_DONE);
    ck_assert_uint_eq(hdr.length, sizeof(v6) - 1 - 3);
    s6 = source_text(&hdr);
    ck_assert_str_eq(s6, "[2001:db8::5]:65535");
}
END_TEST

START_TEST(test_v1_unknown_keeps_the_peer)
{
    SgProxyHeader hdr;
    const char *why;

    ck_assert_int_eq(parse("PROXY UNKNOWN\r\n", 15, &hdr, &why), SG_PROXY_DONE);
    ck_assert(!hdr.has_source);
    ck_assert_uint_eq(hdr.length, 15);
    ck_assert_int_eq(parse("PROXY UNKNOWN ff:: ff:: 1 2\r\nX", 30, &hdr, &why), SG_PROXY_DONE);
    ck_assert(!hdr.has_source);
    ck_assert_uint_eq(hdr.length, 29);
}
END_TEST

/* Every proper prefix of a valid header is MORE: a reader that consumes
 * what MORE covered never takes a byte past the header. */
START_TEST(test_every_prefix_is_more)
{
    const char *v1 = "PROXY TCP4 192.0.2.5 198.51.100.1 51234 443\r\n";
    const guint8 v2[] = { 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49,
                          0x54, 0x0a, 0x21, 0x11, 0x00, 0x0c, 192, 0, 2, 5,
                          198, 51, 100, 1, 0xc8, 0x22, 0x01, 0xbb };
    SgProxyHeader hdr;
    const char *why;

    for (size_t i = 0; i < strlen(v1); i++)
        ck_assert_int_eq(parse(v1, i, &hdr, &why), SG_PROXY_MORE);
    for (size_t i = 0; i < sizeof(v2); i++)
        ck_assert_int_eq(parse(v2, i, &hdr, &why), SG_PROXY_MORE);
    ck_assert_int_eq(parse(v2, sizeof(v2), &hdr, &why), SG_PROXY_DONE);
    ck_assert_int_eq(hdr.version, 2);
    ck_assert_uint_eq(hdr.length, sizeof(v2));
    {
        g_autofree char *s = source_text(&hdr);

        ck_assert_str_eq(s, "192.0.2.5:51234");
    }
}
END_TEST

START_TEST(test_v2_local_and_ipv6)
{
    /* HAProxy's health checks: LOCAL, family UNSPEC, no addresses. */
    const guint8 local[] = { 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49,
                             0x54, 0x0a, 0x20, 0x00, 0x00, 0x00, 'G', 'E', 'T' };
    guint8 v6[16 + 36 + 7] = { 0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49,
                               0x54, 0x0a, 0x21, 0x21, 0x00, 36 + 7 };
    SgProxyHeader hdr;
    const char *why;

    ck_assert_int_eq(parse(local, sizeof(local), &hdr, &why), SG_PROXY_DONE);
    ck_assert(!hdr.has_source);
    ck_assert_uint_eq(hdr.length, 16);
    /* ::1 port 443, then a 7-byte TLV (PP2_TYPE_UNIQUE_ID "abcd"). */
    v6[16 + 15] = 1;
    v6[16 + 32] = 0x01;
    v6[16 + 33] = 0xbb;
    memcpy(v6 + 16 + 36, "\x05\x00\x04" "abcd", 7);
    ck_assert_int_eq(parse(v6, sizeof(v6), &hdr, &why), SG_PROXY_DONE);
    ck_assert(hdr.has_source);
    ck_assert_uint_eq(hdr.length, sizeof(v6));
    {
        g_autofree char *s = source_text(&hdr);

        ck_assert_str_eq(s, "[::1]:443");
    }
}
END_TEST

START_TEST(test_refusals)
{
    static const struct {
        const char *data;
        size_t len;
    } cases[] = {
        { "GET / HTTP/1.1\r\n", 16 },
        { "\x16\x03\x01\x02\x00", 5 },                       /* a TLS ClientHello */
        { "PROXZ", 5 },
        { "PROXY TCP4 192.0.2.5 198.51.100.1 51234 443\n", 45 },   /* LF alone */
        { "PROXY TCP4 192.0.2.5 198.51.100.1 51234 443\rX", 46 },
        { "PROXY TCP4 192.0.2.5  198.51.100.1 51234 443\r\n", 47 }, /* two spaces */
        { "PROXY TCP4 192.0.2.5 198.51.100.1 051234 443\r\n", 47 },
        { "PROXY TCP4 192.0.2.5 198.51.100.1 65536 443\r\n", 46 },
        { "PROXY TCP4 2001:db8::1 198.51.100.1 1 443\r\n", 44 },
        { "PROXY TCP6 192.0.2.5 2001:db8::1 1 443\r\n", 40 },
        { "PROXY TCP4 192.0.2.5 198.51.100.1 1 443 extra\r\n", 48 },
        { "PROXY TCP4 192.0.2.5 198.51.100.1 1\r\n", 37 },
        { "PROXY UDP4 192.0.2.5 198.51.100.1 1 2\r\n", 39 },
        { "PROXY TCP4 192.0.2.5\x01 198.51.100.1 1 2\r\n", 40 },
        /* v2: version 1, command 2, family 4, DGRAM, too short. */
        { "\r\n\r\n\0\r\nQUIT\n\x11\x11\x00\x00", 16 },
        { "\r\n\r\n\0\r\nQUIT\n\x22\x11\x00\x00", 16 },
        { "\r\n\r\n\0\r\nQUIT\n\x21\x41\x00\x00", 16 },
        { "\r\n\r\n\0\r\nQUIT\n\x21\x12\x00\x0c" "abcdefghijkl", 28 },
        { "\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x08" "abcdefgh", 24 },
        { "\r\n\r\n\0\r\nQUIT\n\x21\x21\x00\x0c" "abcdefghijkl", 28 },
        { "\r\n\r\n\0\r\nQUIT\n\x21\x11\x04\x00", 16 },          /* 1024 + 16 */
        { "\r\n\r\nX", 5 },
    };
    SgProxyHeader hdr;
    const char *why;

    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        ck_assert_msg(parse(cases[i].data, cases[i].len, &hdr, &why) == SG_PROXY_BAD,
                      "case %zu not refused", i);
        ck_assert_ptr_nonnull(why);
    }
}
END_TEST

START_TEST(test_v1_too_long)
{
    char line[200];
    SgProxyHeader hdr;
    const char *why;

    memset(line, '1', sizeof(line));
    memcpy(line, "PROXY TCP4 ", 11);
    ck_assert_int_eq(parse(line, 106, &hdr, &why), SG_PROXY_MORE);
    ck_assert_int_eq(parse(line, 107, &hdr, &why), SG_PROXY_BAD);
    ck_assert_int_eq(parse(line, sizeof(line), &hdr, &why), SG_PROXY_BAD);
    /* A CR at byte 106 would make 108 bytes with its LF. */
    line[106] = '\r';
    ck_assert_int_eq(parse(line, 107, &hdr, &why), SG_PROXY_BAD);
}
END_TEST

/* --- the acceptor on real sockets --------------------------------------------- */

typedef struct {
    int fd;                       /* the accepted connection, -1 before */
    bool has_source;
    struct sockaddr_storage source;
} Accepted;

static void
on_accept(int fd, const struct sockaddr_storage *source, gpointer data)
{
    Accepted *acc = data;

    acc->fd = fd;
    acc->has_source = source != NULL;
    if (source != NULL)
        acc->source = *source;
}

static gboolean
accepted(gpointer data)
{
    return ((Accepted *)data)->fd >= 0;
}

static gboolean
one_pending(gpointer data)
{
    return sg_acceptor_pending_count(data) == 1;
}

typedef struct {
    SgAcceptor *acceptor;
    int listen_fd;
    guint port;
    Accepted acc;
    SgTrustedProxies *trusted;
} Rig;

static void
rig_start(Rig *rig, const char *trusted, guint timeout_s)
{
    g_autoptr(GError) error = NULL;

    sg_event_core_start();
    rig->acc.fd = -1;
    rig->listen_fd = sg_listen_socket_open("127.0.0.1", 0, &rig->port, &error);
    ck_assert_msg(rig->listen_fd >= 0, "%s", error ? error->message : "?");
    rig->trusted = sg_trusted_proxies_parse(trusted, NULL);
    ck_assert_ptr_nonnull(rig->trusted);
    rig->acceptor = sg_acceptor_new(rig->listen_fd, 16, on_accept, &rig->acc);
    sg_acceptor_expect_proxy(rig->acceptor, rig->trusted, timeout_s);
}

static void
rig_stop(Rig *rig)
{
    sg_acceptor_free(rig->acceptor);
    sg_trusted_proxies_free(rig->trusted);
    close(rig->listen_fd);
    if (rig->acc.fd >= 0)
        close(rig->acc.fd);
    sg_event_core_stop();
}

/* A blocking client from @bind_addr (NULL: any). */
static int
rig_connect(const Rig *rig, const char *bind_addr)
{
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(rig->port) };
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    ck_assert_int_ge(fd, 0);
    if (bind_addr != NULL) {
        struct sockaddr_in local = { .sin_family = AF_INET };

        inet_pton(AF_INET, bind_addr, &local.sin_addr);
        ck_assert_int_eq(bind(fd, (struct sockaddr *)&local, sizeof(local)), 0);
    }
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    ck_assert_int_eq(connect(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    return fd;
}

typedef struct {
    int fd;
    bool closed;
} Client;

/* The client side saw the server close (EOF or a reset). */
static gboolean
client_closed(gpointer data)
{
    Client *c = data;
    struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
    char byte;

    if (poll(&pfd, 1, 0) == 1) {
        ssize_t n = recv(c->fd, &byte, 1, MSG_DONTWAIT);

        c->closed = n == 0 || (n < 0 && errno == ECONNRESET);
    }
    return c->closed;
}

static void
read_exactly(int fd, char *buf, size_t len)
{
    size_t got = 0;

    while (got < len) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        ssize_t n;

        ck_assert_int_eq(poll(&pfd, 1, 5000), 1);
        n = recv(fd, buf + got, len - got, MSG_DONTWAIT);
        ck_assert_int_gt(n, 0);
        got += (size_t)n;
    }
}

START_TEST(test_acceptor_takes_exactly_the_header)
{
    Rig rig = { 0 };
    const char v2_head[] = "\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x0c";
    const guint8 addrs[] = { 192, 0, 2, 77, 127, 0, 0, 1, 0x30, 0x39, 0x01, 0xbb };
    const char after[] = "\x16\x03\x01 then whatever TLS says";
    char buf[sizeof(after)];
    int c;

    rig_start(&rig, "127.0.0.0/8, ::1", 5);
    c = rig_connect(&rig, NULL);
    /* In pieces, the first with the header's start only, the last with
     * the header's end and the next protocol's first bytes together. */
    ck_assert_int_eq(send(c, v2_head, 10, 0), 10);
    test_run_until(one_pending, rig.acceptor, 5000);
    test_run_for(50);
    ck_assert_int_eq(rig.acc.fd, -1);
    ck_assert_uint_eq(sg_acceptor_pending_count(rig.acceptor), 1);
    ck_assert_int_eq(send(c, v2_head + 10, 6, 0), 6);
    {
        g_autofree guint8 *tail = g_malloc(sizeof(addrs) + sizeof(after) - 1);

        memcpy(tail, addrs, sizeof(addrs));
        memcpy(tail + sizeof(addrs), after, sizeof(after) - 1);
        ck_assert_int_eq(send(c, tail, sizeof(addrs) + sizeof(after) - 1, 0),
                         (ssize_t)(sizeof(addrs) + sizeof(after) - 1));
    }
    test_run_until(accepted, &rig.acc, 5000);
    ck_assert(rig.acc.has_source);
    {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)&rig.acc.source;
        char text[INET_ADDRSTRLEN];

        ck_assert_int_eq(sin->sin_family, AF_INET);
        inet_ntop(AF_INET, &sin->sin_addr, text, sizeof(text));
        ck_assert_str_eq(text, "192.0.2.77");
        ck_assert_uint_eq(ntohs(sin->sin_port), 12345);
    }
    ck_assert_uint_eq(sg_acceptor_pending_count(rig.acceptor), 0);
    /* What followed the header is still on the socket, whole. */
    read_exactly(rig.acc.fd, buf, sizeof(after) - 1);
    ck_assert_int_eq(memcmp(buf, after, sizeof(after) - 1), 0);
    close(c);
    rig_stop(&rig);
}
END_TEST

START_TEST(test_acceptor_v1_and_local)
{
    Rig rig = { 0 };
    const char local[] = "\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00GET /healthz";
    const char *v1 = "PROXY TCP6 2001:db8::9 ::1 4000 443\r\nGET";
    char buf[12];
    int c;

    rig_start(&rig, "127.0.0.1", 5);
    c = rig_connect(&rig, NULL);
    ck_assert_int_eq(send(c, local, sizeof(local) - 1, 0), (ssize_t)(sizeof(local) - 1));
    test_run_until(accepted, &rig.acc, 5000);
    /* LOCAL: no client named, the peer's own address stands. */
    ck_assert(!rig.acc.has_source);
    read_exactly(rig.acc.fd, buf, 12);
    ck_assert_int_eq(memcmp(buf, "GET /healthz", 12), 0);
    close(rig.acc.fd);
    rig.acc.fd = -1;
    close(c);

    c = rig_connect(&rig, NULL);
    /* One byte at a time: every byte is a wakeup, none is taken twice. */
    for (size_t i = 0; i < strlen(v1); i++) {
        ck_assert_int_eq(send(c, v1 + i, 1, 0), 1);
        test_run_for(2);
    }
    test_run_until(accepted, &rig.acc, 5000);
    ck_assert(rig.acc.has_source);
    ck_assert_int_eq(rig.acc.source.ss_family, AF_INET6);
    read_exactly(rig.acc.fd, buf, 3);
    ck_assert_int_eq(memcmp(buf, "GET", 3), 0);
    close(c);
    rig_stop(&rig);
}
END_TEST

START_TEST(test_acceptor_closes_untrusted_garbage_and_silence)
{
    Rig rig = { 0 };
    const char *v1 = "PROXY TCP4 192.0.2.5 127.0.0.1 1 443\r\n";
    Client untrusted = { 0 };
    Client garbage = { 0 };
    Client silent = { 0 };
    gint64 start;

    /* 127.0.0.5 is trusted; 127.0.0.6 is not. */
    rig_start(&rig, "127.0.0.5/32", 1);
    untrusted.fd = rig_connect(&rig, "127.0.0.6");
    ck_assert_int_eq(send(untrusted.fd, v1, strlen(v1), 0), (ssize_t)strlen(v1));
    test_run_until(client_closed, &untrusted, 5000);
    ck_assert_int_eq(rig.acc.fd, -1);

    garbage.fd = rig_connect(&rig, "127.0.0.5");
    ck_assert_int_eq(send(garbage.fd, "GET / HTTP/1.1\r\n\r\n", 18, 0), 18);
    test_run_until(client_closed, &garbage, 5000);
    ck_assert_int_eq(rig.acc.fd, -1);

    start = g_get_monotonic_time();
    silent.fd = rig_connect(&rig, "127.0.0.5");
    ck_assert_int_eq(send(silent.fd, "PROXY TCP4", 10, 0), 10);
    test_run_until(client_closed, &silent, 5000);
    /* Closed by the deadline (1 s), not at once. */
    ck_assert_int_ge(g_get_monotonic_time() - start, 900 * 1000);
    ck_assert_int_eq(rig.acc.fd, -1);
    ck_assert_uint_eq(sg_acceptor_pending_count(rig.acceptor), 0);
    close(untrusted.fd);
    close(garbage.fd);
    close(silent.fd);
    rig_stop(&rig);
}
END_TEST

START_TEST(test_acceptor_free_closes_pending)
{
    Rig rig = { 0 };
    Client c = { 0 };

    rig_start(&rig, "127.0.0.1", 30);
    c.fd = rig_connect(&rig, NULL);
    ck_assert_int_eq(send(c.fd, "PROXY ", 6, 0), 6);
    test_run_until(one_pending, rig.acceptor, 5000);
    sg_acceptor_free(rig.acceptor);
    rig.acceptor = NULL;
    test_run_until(client_closed, &c, 5000);
    close(c.fd);
    sg_trusted_proxies_free(rig.trusted);
    close(rig.listen_fd);
    sg_event_core_stop();
}
END_TEST

static Suite *
proxy_protocol_suite(void)
{
    Suite *s = suite_create("proxy_protocol");
    TCase *parser = tcase_create("parser");
    TCase *acceptor = tcase_create("acceptor");

    tcase_add_test(parser, test_v1_tcp4_and_tcp6);
    tcase_add_test(parser, test_v1_unknown_keeps_the_peer);
    tcase_add_test(parser, test_every_prefix_is_more);
    tcase_add_test(parser, test_v2_local_and_ipv6);
    tcase_add_test(parser, test_refusals);
    tcase_add_test(parser, test_v1_too_long);
    suite_add_tcase(s, parser);
    tcase_set_timeout(acceptor, 20);
    tcase_add_test(acceptor, test_acceptor_takes_exactly_the_header);
    tcase_add_test(acceptor, test_acceptor_v1_and_local);
    tcase_add_test(acceptor, test_acceptor_closes_untrusted_garbage_and_silence);
    tcase_add_test(acceptor, test_acceptor_free_closes_pending);
    suite_add_tcase(s, acceptor);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(proxy_protocol_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
