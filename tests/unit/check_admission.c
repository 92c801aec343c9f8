/* SPDX-License-Identifier: Apache-2.0 */
/* check_admission.c - unit tests for the websocket upgrade decisions.
 *
 * Each table row is one loop iteration of its test, so a failure names the
 * row. Expected NULL is spelled NO so the tables read as data.
 */
#include "autoconfig.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <glib.h>

#include "admission.h"

#define NO NULL

typedef struct {
    const char *input;
    const char *expected;       /* NO: NULL expected */
} StringCase;

static void
assert_string_case(const char *what, const StringCase *c, char *(*fn)(const char *))
{
    g_autofree char *got = fn(c->input);

    ck_assert_msg(g_strcmp0(got, c->expected) == 0, "%s(\"%s\") = \"%s\", expected \"%s\"",
                  what, c->input ? c->input : "(null)", got ? got : "(null)",
                  c->expected ? c->expected : "(null)");
}

/* --- token from the query string ---------------------------------------- */

static const StringCase query_cases[] = {
    { NULL, NO },
    { "", NO },
    { "token=abc", "abc" },
    { "token=0b5c3a1e-6b55-4a34-8d2f-2d4f8a1d3c01", "0b5c3a1e-6b55-4a34-8d2f-2d4f8a1d3c01" },
    /* Nova's spice_auto.html URL carries a title next to the token. */
    { "token=abc&title=vm-1(8e4c6f3a-1d2b-4c5d-9e8f-0a1b2c3d4e5f)", "abc" },
    { "title=vm-1(8e4c6f3a-1d2b-4c5d-9e8f-0a1b2c3d4e5f)&token=abc", "abc" },
    { "title=vm%201%28x%29&token=abc&port=6082", "abc" },
    { "token=one&token=two", "two" },
    { "token=one&title=t&token=two&x=y", "two" },
    /* Nova's parse_qs drops blank values: the last non-empty one decides. */
    { "token=one&token=", "one" },
    { "token=one&token", "one" },
    { "token=&token=two", "two" },
    { "token=", NO },
    { "token", NO },
    /* A bad escape or an encoded NUL anywhere: lws refuses the request. */
    { "token=one&token=%zz", NO },
    { "title=a%00&token=abc", NO },
    { "token=a%2Bb", "a+b" },
    { "token=a+b", "a b" },
    { "token=%41%62%63", "Abc" },
    { "token=%e2%82%ac", "\xe2\x82\xac" },
    { "tok%65n=abc", "abc" },
    { "token=a%", NO },
    { "token=a%4", NO },
    { "token=a%4g", NO },
    { "token=%00abc", NO },
    { "token=abc%00", NO },
    { "token=abc%01", NO },                                 /* control bytes */
    { "token=a%0Ab", NO },
    { "token=a%7Fb", NO },
    { "token=a=b", "a=b" },
    { "&&token=x&", "x" },
    { "a=1&&&token=x", "x" },
    { "Token=abc", NO },
    { "TOKEN=abc", NO },
    { "tokens=abc", NO },
    { "xtoken=abc", NO },
    { "token2=abc", NO },
    { " token=abc", NO },
    { "title=token%3Dabc", NO },
    { "=abc", NO },
    { "?token=abc", NO },
    /* lws splits at ';' as well as '&'. */
    { "token=a;b", "a" },
    { "x=1;token=abc", "abc" },
};

/* --- token from the arguments as lws hands them over -------------------- */

/* The production path: each argument already split and decoded. */
START_TEST(test_admission_token_from_args)
{
    g_autofree char *long_arg = g_strnfill(600, 'x');
    g_autofree char *long_title = g_strconcat("title=", long_arg, NULL);
    const char *after_long[] = { long_title, "token=abc", NULL };
    const char *empty_last[] = { "token=abc", "token=", NULL };
    const char *decoded[] = { "token=a&b", "x=1", NULL };   /* "%26" decoded by lws */
    const char *none[] = { "title=vm", "language=de", NULL };
    const char *nothing[] = { NULL };
    g_autofree char *too_long_value = g_strnfill(SG_TOKEN_MAX_BYTES + 1, 'a');
    g_autofree char *too_long = g_strconcat("token=", too_long_value, NULL);
    const char *long_last[] = { "token=abc", too_long, NULL };
    g_autofree char *got = NULL;
    bool present = true;

    /* An argument longer than any fixed buffer does not hide a later one. */
    got = sg_admission_token_from_args(after_long, NULL);
    ck_assert_str_eq(got, "abc");
    g_clear_pointer(&got, g_free);
    got = sg_admission_token_from_args(empty_last, NULL);
    ck_assert_str_eq(got, "abc");
    g_clear_pointer(&got, g_free);
    got = sg_admission_token_from_args(decoded, NULL);
    ck_assert_str_eq(got, "a&b");
    g_clear_pointer(&got, g_free);
    ck_assert_ptr_null(sg_admission_token_from_args(none, &present));
    ck_assert(!present);
    present = true;
    ck_assert_ptr_null(sg_admission_token_from_args(nothing, &present));
    ck_assert(!present);
    ck_assert_ptr_null(sg_admission_token_from_args(NULL, NULL));
    /* The last non-empty one decides even when it is refused, and it was
     * there: the cookie must not stand in for it. */
    ck_assert_ptr_null(sg_admission_token_from_args(long_last, &present));
    ck_assert(present);
    got = sg_admission_token_from_args(after_long, &present);
    ck_assert(present);
}
END_TEST

START_TEST(test_admission_token_from_query)
{
    assert_string_case("query", &query_cases[_i], sg_admission_token_from_query);
}
END_TEST

/* --- token from the Cookie header --------------------------------------- */

static const StringCase cookie_cases[] = {
    { NULL, NO },
    { "", NO },
    { "token=abc", "abc" },
    { "a=1; token=abc; b=2", "abc" },
    { "token=first; token=second", "second" },
    { "token=first; x=1; token=second; y=2", "second" },
    { "token=first;token=second", "second" },
    /* Malformed parts are skipped, wherever they are. */
    { "a=b\"c; token=abc", "abc" },
    { "token=first; a=b\"c; token=second", "second" },
    { "token=good; token=b\"ad", "good" },
    { "token=good; token=\"unterminated", "good" },
    { "token=good; token=a b", "good" },
    { "token=good; token=a,b", "good" },
    { "token=good; token=a\\b", "good" },
    { "token=good; token=\x01x", "good" },
    { "token=good; token=\xc3\xa9", "good" },
    { "token; a=1", NO },
    { "token=good; token", "good" },
    { "=abc; token=x", "x" },
    { "=token", NO },
    { " =abc", NO },
    { "token=\"quoted\"", "quoted" },
    { "token=\"\"", NO },
    { "token=\"", NO },
    { "token=\"a\"b\"", NO },
    { "token=\"a b\"", NO },
    { "  token = spaced  ; x=y", "spaced" },
    { "\ttoken=tab\t", "tab" },
    { ";;token=abc;;", "abc" },
    { "token=a%20b", "a b" },
    { "token=a+b", "a+b" },
    { "token=%41", "A" },
    { "token=%zz", NO },
    { "token=%00", NO },
    { "token=", NO },
    { "token=abc; token=", NO },
    { "Token=abc", NO },
    { "mytoken=abc", NO },
    { "token2=abc", NO },
    { "token=a=b", "a=b" },
    { "sessionid=xyz; csrftoken=abc; token=0b5c3a1e-6b55-4a34-8d2f-2d4f8a1d3c01",
      "0b5c3a1e-6b55-4a34-8d2f-2d4f8a1d3c01" },
};

START_TEST(test_admission_token_from_cookie)
{
    assert_string_case("cookie", &cookie_cases[_i], sg_admission_token_from_cookie);
}
END_TEST

/* len == SG_TOKEN_MAX_BYTES passes, one more is refused, in every source
 * and whether the length comes from plain or percent-encoded bytes. */
START_TEST(test_admission_token_length_limit)
{
    for (gsize len = SG_TOKEN_MAX_BYTES - 1; len <= SG_TOKEN_MAX_BYTES + 1; len++) {
        bool fits = len <= SG_TOKEN_MAX_BYTES;
        g_autofree char *plain = g_strnfill(len, 'a');
        g_autoptr(GString) encoded = g_string_new(NULL);
        g_autofree char *query = NULL;
        g_autofree char *query_enc = NULL;
        g_autofree char *cookie = NULL;
        g_autofree char *cookie_enc = NULL;
        g_autofree char *got_query = NULL;
        g_autofree char *got_query_enc = NULL;
        g_autofree char *got_cookie = NULL;
        g_autofree char *got_cookie_enc = NULL;

        for (gsize i = 0; i < len; i++)
            g_string_append(encoded, "%61");
        query = g_strconcat("x=1&token=", plain, NULL);
        query_enc = g_strconcat("token=", encoded->str, "&x=1", NULL);
        cookie = g_strconcat("x=1; token=", plain, NULL);
        cookie_enc = g_strconcat("token=\"", encoded->str, "\"; x=1", NULL);
        got_query = sg_admission_token_from_query(query);
        got_query_enc = sg_admission_token_from_query(query_enc);
        got_cookie = sg_admission_token_from_cookie(cookie);
        got_cookie_enc = sg_admission_token_from_cookie(cookie_enc);
        if (fits) {
            ck_assert_str_eq(got_query, plain);
            ck_assert_str_eq(got_query_enc, plain);
            ck_assert_str_eq(got_cookie, plain);
            ck_assert_str_eq(got_cookie_enc, plain);
        } else {
            ck_assert_msg(got_query == NULL, "query token of %zu bytes accepted", len);
            ck_assert_msg(got_query_enc == NULL, "encoded query token of %zu bytes", len);
            ck_assert_msg(got_cookie == NULL, "cookie token of %zu bytes accepted", len);
            ck_assert_msg(got_cookie_enc == NULL, "encoded cookie token of %zu bytes", len);
        }
    }
}
END_TEST

/* --- subprotocol ---------------------------------------------------------- */

typedef struct {
    const char *offered;
    const char *expected;       /* NO: refuse */
} SubprotocolCase;

static const SubprotocolCase subprotocol_cases[] = {
    { "binary", "binary" },
    { "base64, binary", "binary" },
    { "base64,binary", "binary" },
    { "binary, base64", "binary" },
    { " binary ", "binary" },
    { "\tbinary\t", "binary" },
    { "base64,, binary", "binary" },
    { "base64 ,\tbinary ,chat", "binary" },
    { "base64", NO },
    { "Binary", NO },
    { "BINARY", NO },
    { "binaryx", NO },
    { "xbinary", NO },
    { "bin ary", NO },
    { "binary;q=1", NO },
    { "\"binary\"", NO },
    { ",", NO },
    { " , ", NO },
    { NULL, "" },
    { "", "" },
    { "   ", "" },
    { " \t ", "" },
};

START_TEST(test_admission_pick_subprotocol)
{
    const SubprotocolCase *c = &subprotocol_cases[_i];
    const char *got = sg_admission_pick_subprotocol(c->offered);

    ck_assert_msg(g_strcmp0(got, c->expected) == 0, "pick(\"%s\") = \"%s\", expected \"%s\"",
                  c->offered ? c->offered : "(null)", got ? got : "(null)",
                  c->expected ? c->expected : "(null)");
}
END_TEST

/* --- hostname of a Host header -------------------------------------------- */

static const StringCase hostname_cases[] = {
    { NULL, NO },
    { "", NO },
    { "example.com", "example.com" },
    { "example.com:6082", "example.com" },
    { "Console.Example.COM:443", "console.example.com" },
    { "127.0.0.1:6082", "127.0.0.1" },
    { "[::1]", "::1" },
    { "[::1]:6082", "::1" },
    { "[FE80::A:1]:80", "fe80::a:1" },
    { "[::ffff:192.0.2.1]:1", "::ffff:192.0.2.1" },
    { " example.com ", "example.com" },
    { "host:65535", "host" },
    { "host:0", "host" },
    { "host:65536", NO },
    { "host:123456", NO },
    { "host:", NO },
    { "host:abc", NO },
    { "host:80:80", NO },
    { "host:-1", NO },
    { "::1", NO },
    { "[::1", NO },
    { "::1]", NO },
    { "[::1]x", NO },
    { "[::1]:", NO },
    { "[]", NO },
    { "[]:80", NO },
    { "[example.com]", NO },
    { "[192.0.2.1]", NO },
    { "[::1]]", NO },
    /* Zones: no browser sends one, and GLib takes any bytes after '%'
     * (a fuzz input put '[' in the hostname that way). */
    { "[fe80::1%eth0]:6082", NO },
    { "[fe80::1%25eth0]", NO },
    { "[::1%+ x=[k]:6082", NO },
    { "[::1 ]", NO },
    { ":80", NO },
    { "exa mple.com", NO },
    { "user@example.com", NO },
    { "example.com/", NO },
    { "http://example.com", NO },
    { "ex%61mple.com", NO },
};

START_TEST(test_admission_hostname_of)
{
    assert_string_case("hostname_of", &hostname_cases[_i], sg_admission_hostname_of);
}
END_TEST

/* --- Origin ----------------------------------------------------------------- */

typedef struct {
    const char *what;
    const char *origin;
    const char *host;
    const char *forwarded_proto;
    const char *const *allowed;
    const char *expected_scheme;
    SgOriginVerdict verdict;
} OriginCase;

static const char *const allowed_horizon[] = { "horizon.example.com", "[2001:db8::7]", NULL };
static const char *const allowed_upper[] = { "HORIZON.Example.com", NULL };
static const char *const allowed_empty[] = { NULL };
static const char *const allowed_junk[] = { "https://horizon.example.com", "", NULL };

#define OK SG_ORIGIN_OK
#define INVALID SG_ORIGIN_INVALID
#define HOST SG_ORIGIN_HOST_MISMATCH
#define SCHEME SG_ORIGIN_SCHEME_MISMATCH

static const OriginCase origin_cases[] = {
    /* what, origin, host, X-Forwarded-Proto, allowed, expected scheme, verdict */
    { "no Origin: not a browser", NULL, "example.com", NULL, NULL, "https", OK },
    { "no Origin, no Host", NULL, NULL, NULL, NULL, NULL, OK },
    { "same host and port", "http://example.com:6082", "example.com:6082", NULL, NULL, NULL, OK },
    { "same host, other port", "http://example.com:8080", "example.com:6082", NULL, NULL, NULL,
      OK },
    { "same host, default port", "https://example.com", "example.com:6082", NULL, NULL, NULL, OK },
    { "host without port", "http://example.com:6082", "example.com", NULL, NULL, NULL, OK },
    { "trailing slash", "http://example.com/", "example.com", NULL, NULL, NULL, OK },
    { "upper-case origin host", "http://EXAMPLE.Com", "example.com", NULL, NULL, NULL, OK },
    { "upper-case Host header", "http://example.com", "Example.COM:6082", NULL, NULL, NULL, OK },
    { "upper-case scheme", "HTTPS://example.com", "example.com", NULL, NULL, "https", OK },
    { "IPv4", "http://192.0.2.1:8080", "192.0.2.1:6082", NULL, NULL, NULL, OK },
    { "IPv6 loopback", "http://[::1]:8080", "[::1]:6082", NULL, NULL, NULL, OK },
    { "IPv6 without ports", "http://[::1]", "[::1]", NULL, NULL, NULL, OK },
    { "IPv6 upper case", "http://[2001:DB8::1]", "[2001:db8::1]:6082", NULL, NULL, NULL, OK },
    { "other IPv6", "http://[::2]", "[::1]:6082", NULL, NULL, NULL, HOST },
    { "bare IPv6 Host", "http://[::1]:8080", "::1", NULL, NULL, NULL, HOST },
    { "IPv6 origin, IPv4 Host", "http://[::ffff:192.0.2.1]", "192.0.2.1", NULL, NULL, NULL, HOST },
    { "other host", "http://evil.example.net", "example.com", NULL, NULL, NULL, HOST },
    { "suffix of the host", "http://ample.com", "example.com", NULL, NULL, NULL, HOST },
    { "host as a subdomain", "http://example.com.evil.net", "example.com", NULL, NULL, NULL,
      HOST },
    { "no Host header", "http://example.com", NULL, NULL, NULL, NULL, HOST },
    { "unparsable Host header", "http://example.com", "example.com:x", NULL, NULL, NULL, HOST },
    { "host mismatch wins over scheme", "http://evil.net", "example.com", NULL, NULL, "https",
      HOST },
    /* allowed_origins */
    { "allowed origin", "https://horizon.example.com", "console.example.com:6082", NULL,
      allowed_horizon, "https", OK },
    { "allowed origin with port", "https://horizon.example.com:8443", "console.example.com", NULL,
      allowed_horizon, NULL, OK },
    { "allowed IPv6 origin", "https://[2001:db8::7]:443", "console.example.com", NULL,
      allowed_horizon, NULL, OK },
    { "allowed, upper-case config", "https://horizon.example.com", "console.example.com", NULL,
      allowed_upper, NULL, OK },
    { "allowed, upper-case origin", "https://HORIZON.EXAMPLE.COM", "console.example.com", NULL,
      allowed_horizon, NULL, OK },
    { "not in allowed", "https://evil.example.com", "console.example.com", NULL,
      allowed_horizon, NULL, HOST },
    { "Host still counts with allowed", "https://console.example.com", "console.example.com",
      NULL, allowed_horizon, NULL, OK },
    { "empty allowed list", "https://horizon.example.com", "console.example.com", NULL,
      allowed_empty, NULL, HOST },
    { "URL in allowed is not a hostname", "https://horizon.example.com", "console.example.com",
      NULL, allowed_junk, NULL, HOST },
    { "allowed, no Host header", "https://horizon.example.com", NULL, NULL, allowed_horizon,
      NULL, OK },
    /* X-Forwarded-Proto and the expected scheme */
    { "http origin, http expected", "http://example.com", "example.com", NULL, NULL, "http", OK },
    { "https origin, https expected", "https://example.com", "example.com", NULL, NULL, "https",
      OK },
    { "http origin, https expected", "http://example.com", "example.com", NULL, NULL, "https",
      SCHEME },
    { "https origin, http expected", "https://example.com", "example.com", NULL, NULL, "http",
      SCHEME },
    { "ws expected means http", "http://example.com", "example.com", NULL, NULL, "ws", OK },
    { "wss expected means https", "https://example.com", "example.com", NULL, NULL, "wss", OK },
    { "wss expected, http origin", "http://example.com", "example.com", NULL, NULL, "wss",
      SCHEME },
    { "ws origin counts as http", "ws://example.com", "example.com", NULL, NULL, "http", OK },
    { "other scheme, none expected", "ftp://example.com", "example.com", NULL, NULL, NULL, OK },
    { "other scheme, http expected", "ftp://example.com", "example.com", NULL, NULL, "http",
      SCHEME },
    { "TLS proxy: forwarded https", "http://example.com", "example.com", "https", NULL, "https",
      OK },
    { "forwarded http overrides https", "https://example.com", "example.com", "http", NULL,
      "https", SCHEME },
    { "forwarded upper case", "http://example.com", "example.com", "HTTPS", NULL, "https", OK },
    { "forwarded with spaces", "http://example.com", "example.com", " https ", NULL, "https",
      OK },
    { "forwarded list: first wins", "http://example.com", "example.com", "https, http", NULL,
      "https", OK },
    { "forwarded without expected", "http://example.com", "example.com", "https", NULL, NULL,
      OK },
    { "forwarded empty", "https://example.com", "example.com", "", NULL, "https", INVALID },
    { "forwarded garbage", "https://example.com", "example.com", "ht tp", NULL, "https",
      INVALID },
    { "forwarded does not rescue a bad origin", "null", "example.com", "https", NULL, "https",
      INVALID },
    /* Not an origin at all */
    { "null", "null", "example.com", NULL, NULL, NULL, INVALID },
    { "NULL upper case", "NULL", "example.com", NULL, NULL, NULL, INVALID },
    { "empty", "", "example.com", NULL, NULL, NULL, INVALID },
    { "blank", "  ", "example.com", NULL, NULL, NULL, INVALID },
    { "hostname only", "example.com", "example.com", NULL, NULL, NULL, INVALID },
    { "no scheme", "://example.com", "example.com", NULL, NULL, NULL, INVALID },
    { "scheme starting with digit", "1http://example.com", "example.com", NULL, NULL, NULL,
      INVALID },
    { "no host", "http://", "example.com", NULL, NULL, NULL, INVALID },
    { "only a slash", "http:///", "example.com", NULL, NULL, NULL, INVALID },
    { "one slash", "http:/example.com", "example.com", NULL, NULL, NULL, INVALID },
    { "path", "http://example.com/spice_auto.html", "example.com", NULL, NULL, NULL, INVALID },
    { "two slashes", "http://example.com//", "example.com", NULL, NULL, NULL, INVALID },
    { "query", "http://example.com?x=1", "example.com", NULL, NULL, NULL, INVALID },
    { "fragment", "http://example.com#x", "example.com", NULL, NULL, NULL, INVALID },
    { "userinfo", "http://user@example.com", "example.com", NULL, NULL, NULL, INVALID },
    { "userinfo hiding a host", "http://example.com@evil.net", "example.com", NULL, NULL, NULL,
      INVALID },
    { "empty port", "http://example.com:", "example.com", NULL, NULL, NULL, INVALID },
    { "port too big", "http://example.com:65536", "example.com", NULL, NULL, NULL, INVALID },
    { "port not a number", "http://example.com:http", "example.com", NULL, NULL, NULL, INVALID },
    { "two ports", "http://example.com:80:80", "example.com", NULL, NULL, NULL, INVALID },
    { "space in host", "http://exa mple.com", "example.com", NULL, NULL, NULL, INVALID },
    { "percent in host", "http://ex%61mple.com", "example.com", NULL, NULL, NULL, INVALID },
    { "UTF-8 host", "http://\xc3\xa9xample.com", "example.com", NULL, NULL, NULL, INVALID },
    { "unclosed IPv6", "http://[::1", "[::1]", NULL, NULL, NULL, INVALID },
    { "bare IPv6 origin", "http://::1", "[::1]", NULL, NULL, NULL, INVALID },
    { "bracketed name", "http://[example.com]", "example.com", NULL, NULL, NULL, INVALID },
    { "bracketed IPv4", "http://[192.0.2.1]", "192.0.2.1", NULL, NULL, NULL, INVALID },
    { "javascript", "javascript:alert(1)", "example.com", NULL, NULL, NULL, INVALID },
    { "two origins", "http://example.com http://evil.net", "example.com", NULL, NULL, NULL,
      INVALID },
    { "file", "file:///etc/passwd", "example.com", NULL, NULL, NULL, INVALID },
};

START_TEST(test_admission_check_origin)
{
    const OriginCase *c = &origin_cases[_i];
    SgOriginVerdict got = sg_admission_check_origin(c->origin, c->host, c->forwarded_proto,
                                                    c->allowed, c->expected_scheme);

    ck_assert_msg(got == c->verdict, "%s: got \"%s\", expected \"%s\"", c->what,
                  sg_origin_verdict_to_string(got), sg_origin_verdict_to_string(c->verdict));
}
END_TEST

START_TEST(test_admission_names_verdicts)
{
    static const SgOriginVerdict verdicts[] = { OK, INVALID, HOST, SCHEME };

    for (gsize i = 0; i < G_N_ELEMENTS(verdicts); i++) {
        const char *name = sg_origin_verdict_to_string(verdicts[i]);

        ck_assert_ptr_nonnull(name);
        ck_assert_int_gt(strlen(name), 0);
        for (gsize j = 0; j < i; j++)
            ck_assert_str_ne(name, sg_origin_verdict_to_string(verdicts[j]));
    }
    ck_assert_ptr_nonnull(sg_origin_verdict_to_string((SgOriginVerdict)42));
}
END_TEST

/* --- the handshake ---------------------------------------------------------- */

typedef struct {
    const char *upgrade;
    bool has_key;
    const char *version;
    bool has_protocols;
    const char *protocols;
    const char *why;            /* NO: accepted */
} HandshakeCase;

static const HandshakeCase handshake_cases[] = {
    { "websocket", true, "13", false, NO, NO },
    { "WebSocket", true, "13", true, "binary", NO },
    { "websocket", true, "13", true, "base64, binary", NO },
    /* Offered but unreadable (too long): nothing offered, as before. */
    { "websocket", true, "13", true, NO, NO },
    { NO, true, "13", false, NO, "only websocket upgrades are served\n" },
    { "h2c", true, "13", false, NO, "only websocket upgrades are served\n" },
    /* The first failing check names the refusal. */
    { "h2c", false, "8", true, "chat", "only websocket upgrades are served\n" },
    { "websocket", false, "13", false, NO, "missing Sec-WebSocket-Key\n" },
    { "websocket", false, NO, true, "chat", "missing Sec-WebSocket-Key\n" },
    { "websocket", true, NO, false, NO, "Sec-WebSocket-Version must be 13\n" },
    { "websocket", true, "8", false, NO, "Sec-WebSocket-Version must be 13\n" },
    { "websocket", true, "13 ", false, NO, "Sec-WebSocket-Version must be 13\n" },
    { "websocket", true, "13", true, "chat", "subprotocol \"binary\" was not offered\n" },
    { "websocket", true, "13", true, "", NO },
};

START_TEST(test_admission_check_handshake)
{
    const HandshakeCase *c = &handshake_cases[_i];
    SgHandshake hs = {
        .upgrade = c->upgrade, .has_key = c->has_key, .version = c->version,
        .has_protocols = c->has_protocols, .protocols = c->protocols,
    };
    const char *why = sg_admission_check_handshake(&hs);

    ck_assert_msg(g_strcmp0(why, c->why) == 0, "row %d: \"%s\", expected \"%s\"", _i, why,
                  c->why);
}
END_TEST

/* --- the decision on a completed upgrade ---------------------------------------- */

typedef struct {
    bool shutting_down;
    const char *origin;
    const char *host;
    const char *authority;
    const char *proto;
    const char *query;          /* split at '&' into the arguments; NO: no query */
    const char *cookie;
    const char *expected_scheme;
    const char *token;          /* NO: refused with the reason below */
    SgCloseReason refusal;
    const char *detail;
} DecideCase;

#define TOK "c0ffee00-0000-4000-8000-000000000001"
#define TOK2 "c0ffee00-0000-4000-8000-000000000002"

static const DecideCase decide_cases[] = {
    /* Shutdown comes first, whatever else the request says. */
    { true, "http://evil.example", "gw", NO, NO, "token=" TOK, NO, NO, NO, SG_CLOSE_SHUTDOWN, NO },
    { true, NO, "gw", NO, NO, NO, NO, NO, NO, SG_CLOSE_SHUTDOWN, NO },
    /* Then the Origin, before any token is looked at. */
    { false, "http://evil.example", "gw", NO, NO, "token=" TOK, NO, NO, NO, SG_CLOSE_ORIGIN,
      "origin host mismatch" },
    { false, "null", "gw", NO, NO, "token=" TOK, NO, NO, NO, SG_CLOSE_ORIGIN,
      "origin invalid" },
    /* HTTP/2's :authority stands for Host, only when Host is absent. */
    { false, "https://gw", NO, "gw:443", NO, "token=" TOK, NO, NO, TOK, 0, NO },
    { false, "https://gw", "other", "gw:443", NO, "token=" TOK, NO, NO, NO, SG_CLOSE_ORIGIN,
      "origin host mismatch" },
    /* X-Forwarded-Proto against the expected scheme. */
    { false, "http://gw", "gw", NO, "https", "token=" TOK, NO, "https", TOK, 0, NO },
    { false, "http://gw", "gw", NO, NO, "token=" TOK, NO, "https", NO, SG_CLOSE_ORIGIN,
      "origin scheme mismatch" },
    /* The token: the query's, the cookie's only when the URL names none. */
    { false, NO, "gw", NO, NO, "a=1&token=" TOK, "token=" TOK2, NO, TOK, 0, NO },
    { false, NO, "gw", NO, NO, "a=1", "x=1; token=" TOK2, NO, TOK2, 0, NO },
    { false, NO, "gw", NO, NO, NO, "token=" TOK2, NO, TOK2, 0, NO },
    { false, NO, "gw", NO, NO, "token=bad\x01", "token=" TOK2, NO, NO, SG_CLOSE_NO_TOKEN, NO },
    { false, NO, "gw", NO, NO, "a=1", NO, NO, NO, SG_CLOSE_NO_TOKEN, NO },
    { false, NO, "gw", NO, NO, NO, "other=1", NO, NO, SG_CLOSE_NO_TOKEN, NO },
};

START_TEST(test_admission_decide)
{
    const DecideCase *c = &decide_cases[_i];
    g_auto(GStrv) args = c->query ? g_strsplit(c->query, "&", -1) : NULL;
    SgUpgradeRequest req = {
        .shutting_down = c->shutting_down, .origin = c->origin, .host = c->host,
        .authority = c->authority, .forwarded_proto = c->proto,
        .query_args = (const char *const *)args, .cookie = c->cookie,
    };
    SgAdmissionPolicy policy = { .allowed_origins = NULL, .expected_scheme = c->expected_scheme };
    SgCloseReason refusal = SG_CLOSE_INTERNAL;
    const char *detail = "unset";
    g_autofree char *token = sg_admission_decide(&req, &policy, &refusal, &detail);

    ck_assert_msg(g_strcmp0(token, c->token) == 0, "row %d: token %s, expected %s", _i, token,
                  c->token);
    if (c->token == NULL) {
        ck_assert_msg(refusal == c->refusal, "row %d: refusal %d, expected %d", _i, refusal,
                      c->refusal);
        ck_assert_msg(g_strcmp0(detail, c->detail) == 0, "row %d: detail %s, expected %s", _i,
                      detail, c->detail);
    } else {
        ck_assert_ptr_null(detail);
    }
}
END_TEST

START_TEST(test_admission_decide_allowed_origins)
{
    static const char *const allowed[] = { "horizon.example", NULL };
    static const char *const args[] = { "token=" TOK, NULL };
    SgUpgradeRequest req = {
        .origin = "https://horizon.example", .host = "gw:6082", .query_args = args,
    };
    SgAdmissionPolicy policy = { .allowed_origins = allowed };
    SgCloseReason refusal = SG_CLOSE_INTERNAL;
    const char *detail = NULL;
    g_autofree char *token = sg_admission_decide(&req, &policy, &refusal, &detail);

    ck_assert_str_eq(token, TOK);
    policy.allowed_origins = NULL;
    ck_assert_ptr_null(sg_admission_decide(&req, &policy, &refusal, &detail));
    ck_assert_int_eq(refusal, SG_CLOSE_ORIGIN);
}
END_TEST

static Suite *
admission_suite(void)
{
    Suite *s = suite_create("admission");
    TCase *tokens = tcase_create("tokens");
    TCase *subprotocol = tcase_create("subprotocol");
    TCase *origin = tcase_create("origin");
    TCase *upgrade = tcase_create("upgrade");

    tcase_set_timeout(tokens, 10);
    tcase_add_loop_test(tokens, test_admission_token_from_query, 0, G_N_ELEMENTS(query_cases));
    tcase_add_loop_test(tokens, test_admission_token_from_cookie, 0, G_N_ELEMENTS(cookie_cases));
    tcase_add_test(tokens, test_admission_token_length_limit);
    tcase_add_test(tokens, test_admission_token_from_args);
    suite_add_tcase(s, tokens);

    tcase_set_timeout(subprotocol, 10);
    tcase_add_loop_test(subprotocol, test_admission_pick_subprotocol, 0,
                        G_N_ELEMENTS(subprotocol_cases));
    suite_add_tcase(s, subprotocol);

    tcase_set_timeout(origin, 10);
    tcase_add_loop_test(origin, test_admission_hostname_of, 0, G_N_ELEMENTS(hostname_cases));
    tcase_add_loop_test(origin, test_admission_check_origin, 0, G_N_ELEMENTS(origin_cases));
    tcase_add_test(origin, test_admission_names_verdicts);
    suite_add_tcase(s, origin);

    tcase_set_timeout(upgrade, 10);
    tcase_add_loop_test(upgrade, test_admission_check_handshake, 0,
                        G_N_ELEMENTS(handshake_cases));
    tcase_add_loop_test(upgrade, test_admission_decide, 0, G_N_ELEMENTS(decide_cases));
    tcase_add_test(upgrade, test_admission_decide_allowed_origins);
    suite_add_tcase(s, upgrade);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(admission_suite());
    int failed;

    srunner_set_fork_status(sr, CK_FORK);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
