/* SPDX-License-Identifier: Apache-2.0 */
/* check_client_addr.c - [server] trusted_proxies and the one decision of a
 * request's client: whose X-Forwarded-For and -Proto count, and which
 * address of X-Forwarded-For is the client. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <glib.h>

#include "client_addr.h"

static struct sockaddr_storage
sa(const char *addr, guint16 port)
{
    struct sockaddr_storage ss = { 0 };

    if (strchr(addr, ':') != NULL) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        ck_assert_int_eq(inet_pton(AF_INET6, addr, &sin6->sin6_addr), 1);
    } else {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;

        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        ck_assert_int_eq(inet_pton(AF_INET, addr, &sin->sin_addr), 1);
    }
    return ss;
}

static SgTrustedProxies *
trust(const char *list)
{
    g_autoptr(GError) error = NULL;
    SgTrustedProxies *tp = sg_trusted_proxies_parse(list, &error);

    ck_assert_msg(tp != NULL, "%s: %s", list, error ? error->message : "?");
    return tp;
}

static bool
matches(const SgTrustedProxies *tp, const char *addr)
{
    struct sockaddr_storage ss = sa(addr, 1);

    return sg_trusted_proxies_match(tp, &ss);
}

START_TEST(test_parse_and_match)
{
    g_autoptr(SgTrustedProxies) tp = trust("10.0.0.0/8, 192.0.2.7 2001:db8::/32,::1\t"
                                           "172.16.0.0/12,::ffff:198.51.100.0/120");
    g_autoptr(SgTrustedProxies) none = trust("");
    g_autoptr(SgTrustedProxies) all = trust("0.0.0.0/0 ::/0");

    ck_assert_uint_eq(sg_trusted_proxies_count(tp), 6);
    ck_assert(matches(tp, "10.1.2.3"));
    ck_assert(matches(tp, "10.255.255.255"));
    ck_assert(!matches(tp, "11.0.0.1"));
    ck_assert(matches(tp, "192.0.2.7"));
    ck_assert(!matches(tp, "192.0.2.8"));
    ck_assert(matches(tp, "172.31.255.1"));
    ck_assert(!matches(tp, "172.32.0.1"));
    ck_assert(matches(tp, "2001:db8:ffff::1"));
    ck_assert(!matches(tp, "2001:db9::1"));
    ck_assert(matches(tp, "::1"));
    ck_assert(!matches(tp, "::2"));
    /* A dual-stack socket's IPv4 peers are IPv4-mapped. */
    ck_assert(matches(tp, "::ffff:10.9.9.9"));
    ck_assert(matches(tp, "::ffff:192.0.2.7"));
    ck_assert(matches(tp, "198.51.100.200"));
    ck_assert(!matches(tp, "198.51.101.1"));
    ck_assert_uint_eq(sg_trusted_proxies_count(none), 0);
    ck_assert(!matches(none, "127.0.0.1"));
    ck_assert(!sg_trusted_proxies_match(NULL, NULL));
    ck_assert(matches(all, "203.0.113.1"));
    ck_assert(matches(all, "2001:db8::1"));
}
END_TEST

START_TEST(test_parse_refuses)
{
    static const char *const bad[] = {
        "lb.example.org", "10.0.0.0/33", "10.0.0.1/8", "2001:db8::1/32", "10.0.0.0/",
        "10.0.0.0/-1", "10.0.0.0/8x", "::ffff:10.0.0.0/64", "[::1]", "10.0.0.256",
    };

    for (gsize i = 0; i < G_N_ELEMENTS(bad); i++) {
        g_autoptr(GError) error = NULL;

        ck_assert_msg(sg_trusted_proxies_parse(bad[i], &error) == NULL, "%s accepted", bad[i]);
        ck_assert_ptr_nonnull(strstr(error->message, bad[i]));
    }
}
END_TEST

static void
decide(const char *trusted, const char *conn, const char *const *xff, const char *xfp,
       SgClientView *view)
{
    g_autoptr(SgTrustedProxies) tp = trust(trusted);
    struct sockaddr_storage ss = sa(conn, 40000);

    sg_client_decide(tp, &ss, xff, xfp, view);
}

START_TEST(test_no_forwarded_headers)
{
    g_auto(SgClientView) v4 = { 0 };
    g_auto(SgClientView) v6 = { 0 };

    decide("", "192.0.2.1", NULL, NULL, &v4);
    ck_assert_str_eq(v4.client, "192.0.2.1:40000");
    ck_assert_ptr_null(v4.forwarded_proto);
    ck_assert(!v4.ignored_forwarded);
    decide("", "::ffff:192.0.2.1", NULL, NULL, &v6);
    ck_assert_str_eq(v6.client, "192.0.2.1:40000");
    sg_client_view_clear(&v6);
    decide("", "2001:db8::1", NULL, NULL, &v6);
    ck_assert_str_eq(v6.client, "[2001:db8::1]:40000");
}
END_TEST

/* The default trusts nobody: X-Forwarded-* from anyone are ignored, and
 * said to be. */
START_TEST(test_untrusted_sender_is_not_believed)
{
    const char *const xff[] = { "203.0.113.9", NULL };
    g_auto(SgClientView) view = { 0 };
    g_auto(SgClientView) proto = { 0 };

    decide("", "192.0.2.1", xff, "https", &view);
    ck_assert_str_eq(view.client, "192.0.2.1:40000");
    ck_assert_ptr_null(view.forwarded_proto);
    ck_assert(view.ignored_forwarded);
    decide("10.0.0.0/8", "192.0.2.1", NULL, "https", &proto);
    ck_assert_ptr_null(proto.forwarded_proto);
    ck_assert(proto.ignored_forwarded);
}
END_TEST

START_TEST(test_rightmost_untrusted)
{
    /* Forged by the browser (1.1.1.1), then appended by two of our
     * proxies: the browser's own address is the rightmost untrusted. */
    const char *const one_field[] = { "1.1.1.1, 203.0.113.9, 10.0.0.2", NULL };
    const char *const two_fields[] = { "1.1.1.1, 203.0.113.9", " 10.0.0.2 ", NULL };
    const char *const all_trusted[] = { "10.0.0.7,10.0.0.2", NULL };
    const char *const ports[] = { "[2001:db8::5]:1234, 203.0.113.9:80", NULL };
    const char *const v6[] = { "2001:db8::5", NULL };
    g_auto(SgClientView) a = { 0 };
    g_auto(SgClientView) b = { 0 };
    g_auto(SgClientView) c = { 0 };
    g_auto(SgClientView) d = { 0 };
    g_auto(SgClientView) e = { 0 };

    decide("10.0.0.0/8", "10.0.0.1", one_field, "https", &a);
    ck_assert_str_eq(a.client, "203.0.113.9");
    ck_assert_str_eq(a.forwarded_proto, "https");
    ck_assert(!a.ignored_forwarded);
    decide("10.0.0.0/8", "10.0.0.1", two_fields, NULL, &b);
    ck_assert_str_eq(b.client, "203.0.113.9");
    decide("10.0.0.0/8", "10.0.0.1", all_trusted, NULL, &c);
    ck_assert_str_eq(c.client, "10.0.0.7");
    decide("10.0.0.0/8 203.0.113.0/24", "10.0.0.1", ports, NULL, &d);
    ck_assert_str_eq(d.client, "2001:db8::5");
    decide("::1", "::1", v6, NULL, &e);
    ck_assert_str_eq(e.client, "2001:db8::5");
}
END_TEST

/* What cannot be read ends the walk: the last trusted hop is the client,
 * never an address to the left of garbage. */
START_TEST(test_garbage_ends_the_walk)
{
    const char *const unknown[] = { "203.0.113.9, unknown, 10.0.0.2", NULL };
    const char *const rightmost_bad[] = { "203.0.113.9, _hidden", NULL };
    const char *const empty[] = { "", NULL };
    g_auto(SgClientView) a = { 0 };
    g_auto(SgClientView) b = { 0 };
    g_auto(SgClientView) c = { 0 };

    decide("10.0.0.0/8", "10.0.0.1", unknown, NULL, &a);
    ck_assert_str_eq(a.client, "10.0.0.2");
    decide("10.0.0.0/8", "10.0.0.1", rightmost_bad, NULL, &b);
    ck_assert_str_eq(b.client, "10.0.0.1:40000");
    decide("10.0.0.0/8", "10.0.0.1", empty, NULL, &c);
    ck_assert_str_eq(c.client, "10.0.0.1:40000");
}
END_TEST

START_TEST(test_forwarded_elements)
{
    static const struct {
        const char *in;
        const char *out;          /* NULL: refused */
    } cases[] = {
        { "192.0.2.1", "192.0.2.1" }, { " 192.0.2.1:8080 ", "192.0.2.1" },
        { "2001:db8::1", "2001:db8::1" }, { "[2001:db8::1]", "2001:db8::1" },
        { "[2001:db8::1]:443", "2001:db8::1" }, { "::ffff:192.0.2.1", "192.0.2.1" },
        { "unknown", NULL }, { "host.example", NULL }, { "[2001:db8::1", NULL },
        { "[2001:db8::1]x", NULL }, { "", NULL }, { "192.0.2.1:80:80", NULL },
        { "[192.0.2.1]", "192.0.2.1" },
    };

    for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
        struct sockaddr_storage ss;
        bool ok = sg_client_parse_forwarded_element(cases[i].in, strlen(cases[i].in), &ss);
        char text[INET6_ADDRSTRLEN];

        ck_assert_msg(ok == (cases[i].out != NULL), "%s", cases[i].in);
        if (!ok)
            continue;
        if (ss.ss_family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, text, sizeof(text));
        else
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, text, sizeof(text));
        ck_assert_str_eq(text, cases[i].out);
    }
}
END_TEST

static Suite *
client_addr_suite(void)
{
    Suite *s = suite_create("client_addr");
    TCase *tc = tcase_create("core");

    tcase_add_test(tc, test_parse_and_match);
    tcase_add_test(tc, test_parse_refuses);
    tcase_add_test(tc, test_no_forwarded_headers);
    tcase_add_test(tc, test_untrusted_sender_is_not_believed);
    tcase_add_test(tc, test_rightmost_untrusted);
    tcase_add_test(tc, test_garbage_ends_the_walk);
    tcase_add_test(tc, test_forwarded_elements);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(client_addr_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
