/* SPDX-License-Identifier: Apache-2.0 */
/* check_request.c - unit tests for the pure part of request.c: how a
 * peer's address reads in the log and in the hub. The header readers
 * need a live lws request; the integration tests drive them.
 */
#include "autoconfig.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <check.h>
#include <glib.h>

#include "request.h"

static char *
format_v4(const char *ip, guint16 port)
{
    struct sockaddr_storage ss;
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;

    memset(&ss, 0, sizeof(ss));
    in->sin_family = AF_INET;
    in->sin_port = htons(port);
    ck_assert_int_eq(inet_pton(AF_INET, ip, &in->sin_addr), 1);
    return sg_request_format_addr(&ss);
}

static char *
format_v6(const char *ip, guint16 port)
{
    struct sockaddr_storage ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

    memset(&ss, 0, sizeof(ss));
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(port);
    ck_assert_int_eq(inet_pton(AF_INET6, ip, &in6->sin6_addr), 1);
    return sg_request_format_addr(&ss);
}

START_TEST(test_request_format_addr)
{
    g_autofree char *v4 = format_v4("192.0.2.1", 40000);
    g_autofree char *v4_port0 = format_v4("0.0.0.0", 0);
    g_autofree char *v6 = format_v6("2001:db8::1", 443);
    g_autofree char *loop6 = format_v6("::1", 65535);
    /* A dual-stack socket's IPv4 peer reads as plain IPv4. */
    g_autofree char *mapped = format_v6("::ffff:198.51.100.7", 5);
    g_autofree char *mapped0 = format_v6("::ffff:0:0", 5);
    /* An IPv4-embedding NAT64 address is IPv6 all the same. */
    g_autofree char *nat64 = format_v6("64:ff9b::c633:6407", 5);
    struct sockaddr_storage un;
    g_autofree char *other = NULL;

    ck_assert_str_eq(v4, "192.0.2.1:40000");
    ck_assert_str_eq(v4_port0, "0.0.0.0:0");
    ck_assert_str_eq(v6, "[2001:db8::1]:443");
    ck_assert_str_eq(loop6, "[::1]:65535");
    ck_assert_str_eq(mapped, "198.51.100.7:5");
    ck_assert_str_eq(mapped0, "0.0.0.0:5");
    ck_assert_str_eq(nat64, "[64:ff9b::c633:6407]:5");
    memset(&un, 0, sizeof(un));
    un.ss_family = AF_UNIX;
    other = sg_request_format_addr(&un);
    ck_assert_str_eq(other, "?");
}
END_TEST

static Suite *
request_suite(void)
{
    Suite *s = suite_create("request");
    TCase *tc = tcase_create("addr");

    tcase_set_timeout(tc, 10);
    tcase_add_test(tc, test_request_format_addr);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(request_suite());
    int failed;

    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
