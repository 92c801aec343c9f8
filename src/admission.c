/* SPDX-License-Identifier: Apache-2.0 */
/* admission.c - pure decisions for the websocket upgrade gate.
 *
 * Owns no state: every function takes header strings that the caller keeps
 * and returns either a static string, a verdict or a newly allocated
 * string. It must not log (tokens are secrets, and the caller knows the
 * session to log against) and must not touch a socket or a file. The
 * parsers are deliberately stricter than browsers need: what real clients
 * send (UUID tokens, "binary", scheme://host:port origins) passes, and
 * anything ambiguous is refused rather than guessed at.
 */
#include "autoconfig.h"

#include <string.h>

#include <glib.h>

#include "admission.h"

/* 5: a parameter or cookie name longer than "token" cannot be it. */
#define NAME_MAX_BYTES (sizeof("token") - 1)

static bool
is_space_or_tab(char c)
{
    return c == ' ' || c == '\t';
}

/* Narrows [*start, *end) past spaces and tabs at both ends. */
static void
trim(const char **start, const char **end)
{
    while (*start < *end && is_space_or_tab(**start))
        (*start)++;
    while (*end > *start && is_space_or_tab((*end)[-1]))
        (*end)--;
}

/* Percent-decodes @len bytes of @s ('+' becomes a space when @plus_is_space,
 * as in HTML form encoding). Returns NULL for a malformed escape, a decoded
 * NUL, or a result longer than @max_bytes; the caller cannot tell which,
 * because each means "not a value we accept". */
static char *
percent_decode(const char *s, gsize len, bool plus_is_space, gsize max_bytes)
{
    g_autoptr(GString) out = g_string_sized_new(MIN(len, max_bytes) + 1);
    gsize i = 0;

    while (i < len) {
        char c = s[i];

        if (c == '%') {
            int hi;
            int lo;

            if (len - i < 3)
                return NULL;
            hi = g_ascii_xdigit_value(s[i + 1]);
            lo = g_ascii_xdigit_value(s[i + 2]);
            if (hi < 0 || lo < 0)
                return NULL;
            c = (char)(hi << 4 | lo);
            i += 3;
        } else {
            if (c == '+' && plus_is_space)
                c = ' ';
            i++;
        }
        if (c == '\0' || out->len >= max_bytes)
            return NULL;
        g_string_append_c(out, c);
    }
    return g_string_free(g_steal_pointer(&out), FALSE);
}

/* Decoded token value, or NULL when empty or not acceptable. Every
 * encoded byte yields a decoded one, so a non-empty value stays non-empty. */
static char *
decode_token(const char *s, gsize len, bool plus_is_space)
{
    if (len == 0)
        return NULL;
    return percent_decode(s, len, plus_is_space, SG_TOKEN_MAX_BYTES);
}

/* Nova's rule (Python's parse_qs, whose blank values are dropped): the last
 * `token` argument with a non-empty value decides. An over-long value
 * decides too, as a refusal: falling back to an earlier token would open a
 * console nobody asked for last. */
char *
sg_admission_token_from_args(const char *const *args, bool *present)
{
    const char *value = NULL;

    for (gsize i = 0; args != NULL && args[i] != NULL; i++) {
        const char *arg = args[i];

        if (g_str_has_prefix(arg, "token=") && arg[sizeof("token=") - 1] != '\0')
            value = arg + sizeof("token=") - 1;
    }
    if (present != NULL)
        *present = value != NULL;
    if (value == NULL || strlen(value) > SG_TOKEN_MAX_BYTES)
        return NULL;
    /* Tokens are printable (Nova's are UUIDs); a control byte is an
     * encoding trick, not a token. */
    for (const char *p = value; *p != '\0'; p++) {
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            return NULL;
    }
    return g_strdup(value);
}

/* Splits @query the way libwebsockets 4.1 does before the application sees
 * it (at '&' and ';', '+' as a space, then percent-decoding), so that the
 * tests and fuzzers drive sg_admission_token_from_args() with exactly what
 * production hands it. lws refuses the whole request for a bad escape or a
 * decoded NUL; so does this. */
char *
sg_admission_token_from_query(const char *query)
{
    g_auto(GStrv) parts = NULL;
    g_autoptr(GPtrArray) args = NULL;

    if (query == NULL)
        return NULL;
    parts = g_strsplit_set(query, "&;", -1);
    args = g_ptr_array_new_with_free_func(g_free);
    for (char **part = parts; *part != NULL; part++) {
        /* Decoding never lengthens: the input's length is no cap at all. */
        char *arg = percent_decode(*part, strlen(*part), true, strlen(*part));

        if (arg == NULL)
            return NULL;
        g_ptr_array_add(args, arg);
    }
    g_ptr_array_add(args, NULL);
    return sg_admission_token_from_args((const char *const *)args->pdata, NULL);
}

/* RFC 6265 cookie-octet: visible ASCII except DQUOTE, comma, semicolon
 * and backslash. Anything else marks the part as malformed. */
static bool
is_cookie_octet(char c)
{
    return c > 0x20 && c < 0x7f && c != '"' && c != ',' && c != ';' && c != '\\';
}

/* Splits one Cookie part [start, end) into name and value. FALSE for a
 * malformed part: no '=', an empty name, or a value outside RFC 6265's
 * cookie-value (optionally "quoted"). Python's SimpleCookie, which Nova
 * uses, refuses the same parts (e.g. `a=b"c`). */
static bool
split_cookie(const char *start, const char *end, const char **name, gsize *name_len,
             const char **value, gsize *value_len)
{
    const char *eq = memchr(start, '=', (gsize)(end - start));
    const char *name_end;
    const char *vstart;
    const char *vend;
    const char *p;

    if (eq == NULL)
        return false;
    name_end = eq;
    trim(&start, &name_end);
    if (start == name_end)
        return false;
    for (p = start; p < name_end; p++) {
        if (!is_cookie_octet(*p) || *p == '=')
            return false;
    }
    vstart = eq + 1;
    vend = end;
    trim(&vstart, &vend);
    if (vend - vstart >= 2 && vstart[0] == '"' && vend[-1] == '"') {
        vstart++;
        vend--;
    }
    for (p = vstart; p < vend; p++) {
        if (!is_cookie_octet(*p))
            return false;
    }
    *name = start;
    *name_len = (gsize)(name_end - start);
    *value = vstart;
    *value_len = (gsize)(vend - vstart);
    return true;
}

/* As in the query, the last well-formed `token` cookie decides. Cookie
 * values are not form-encoded, so '+' stays a plus. */
char *
sg_admission_token_from_cookie(const char *cookie_header)
{
    const char *value = NULL;
    gsize value_len = 0;
    bool found = false;
    const char *p = cookie_header;

    if (cookie_header == NULL)
        return NULL;
    while (*p != '\0') {
        const char *end = strchr(p, ';');
        const char *name;
        gsize name_len;
        const char *v;
        gsize v_len;

        if (end == NULL)
            end = p + strlen(p);
        if (split_cookie(p, end, &name, &name_len, &v, &v_len) &&
            name_len == NAME_MAX_BYTES && memcmp(name, "token", NAME_MAX_BYTES) == 0) {
            found = true;
            value = v;
            value_len = v_len;
        }
        if (*end == '\0')
            break;
        p = end + 1;
    }
    if (!found)
        return NULL;
    return decode_token(value, value_len, false);
}

const char *
sg_admission_pick_subprotocol(const char *offered)
{
    const char *p = offered;

    if (offered == NULL || offered[strspn(offered, " \t")] == '\0')
        return "";
    for (;;) {
        const char *comma = strchr(p, ',');
        const char *start = p;
        const char *end = comma != NULL ? comma : p + strlen(p);

        trim(&start, &end);
        if (end - start == 6 && memcmp(start, "binary", 6) == 0)
            return "binary";
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    /* Something was offered, even if only ",": refuse rather than answer
     * without a subprotocol the browser would then reject itself. */
    return NULL;
}

/* RFC 3986 scheme: ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ). */
static bool
is_scheme(const char *s, gsize len)
{
    gsize i;

    if (len == 0 || !g_ascii_isalpha(s[0]))
        return false;
    for (i = 1; i < len; i++) {
        if (!g_ascii_isalnum(s[i]) && s[i] != '+' && s[i] != '-' && s[i] != '.')
            return false;
    }
    return true;
}

/* A DNS name or IPv4 address as browsers put it in Origin and Host:
 * letters, digits, '-', '.', '_' (and '~', unreserved in RFC 3986).
 * Percent escapes, userinfo and IDN in UTF-8 are refused; browsers send
 * punycode. */
static bool
is_reg_name(const char *s, gsize len)
{
    gsize i;

    if (len == 0)
        return false;
    for (i = 0; i < len; i++) {
        if (!g_ascii_isalnum(s[i]) && s[i] != '-' && s[i] != '.' && s[i] != '_' &&
            s[i] != '~')
            return false;
    }
    return true;
}

/* 1 to 5 digits, at most 65535. */
static bool
is_port(const char *s, gsize len)
{
    guint value = 0;
    gsize i;

    if (len == 0 || len > 5)
        return false;
    for (i = 0; i < len; i++) {
        if (!g_ascii_isdigit(s[i]))
            return false;
        value = value * 10 + (guint)(s[i] - '0');
    }
    return value <= 65535;
}

/* Parses "host", "host:port", "[v6]" or "[v6]:port" exactly (@len bytes,
 * nothing around them) into a lowercased hostname without brackets. */
static char *
parse_authority(const char *s, gsize len)
{
    const char *end = s + len;
    const char *host;
    gsize host_len;
    const char *rest;

    if (len > 0 && s[0] == '[') {
        const char *rbracket = memchr(s, ']', len);
        g_autofree char *addr = NULL;

        if (rbracket == NULL)
            return NULL;
        host = s + 1;
        host_len = (gsize)(rbracket - host);
        addr = g_strndup(host, host_len);
        /* Brackets are for IPv6 only: "[1.2.3.4]" and "[name]" are not
         * URIs a browser writes. Nor is a zone ("[fe80::1%eth0]"), which
         * g_hostname_is_ip_address() takes with any bytes after the '%'
         * (brackets and spaces included): only hex digits, ':' and '.'. */
        if (strchr(addr, ':') == NULL || strspn(addr, "0123456789abcdefABCDEF:.") != host_len ||
            !g_hostname_is_ip_address(addr))
            return NULL;
        rest = rbracket + 1;
    } else {
        const char *colon = memchr(s, ':', len);

        host = s;
        host_len = (gsize)((colon != NULL ? colon : end) - s);
        if (!is_reg_name(host, host_len))
            return NULL;
        rest = host + host_len;
    }
    if (rest < end) {
        if (*rest != ':' || !is_port(rest + 1, (gsize)(end - rest - 1)))
            return NULL;
    }
    return g_ascii_strdown(host, (gssize)host_len);
}

char *
sg_admission_hostname_of(const char *hostport)
{
    const char *start = hostport;
    const char *end;

    if (hostport == NULL)
        return NULL;
    end = hostport + strlen(hostport);
    trim(&start, &end);
    return parse_authority(start, (gsize)(end - start));
}

/* Splits a serialized origin, "scheme://host[:port]" with at most one
 * trailing '/', into a lowercased scheme and hostname. FALSE for "null",
 * paths, queries, fragments, userinfo or anything else. */
static bool
parse_origin(const char *origin, char **scheme, char **hostname)
{
    const char *start = origin;
    const char *end = origin + strlen(origin);
    const char *sep;
    const char *auth;

    trim(&start, &end);
    sep = g_strstr_len(start, end - start, "://");
    if (sep == NULL || !is_scheme(start, (gsize)(sep - start)))
        return false;
    auth = sep + 3;
    if (end > auth && end[-1] == '/')
        end--;
    *hostname = parse_authority(auth, (gsize)(end - auth));
    if (*hostname == NULL)
        return false;
    *scheme = g_ascii_strdown(start, sep - start);
    return true;
}

/* Nova's security classes: ws is as (in)secure as http, wss as https. */
static const char *
scheme_class(const char *scheme)
{
    if (g_ascii_strcasecmp(scheme, "ws") == 0 || g_ascii_strcasecmp(scheme, "http") == 0)
        return "http";
    if (g_ascii_strcasecmp(scheme, "wss") == 0 || g_ascii_strcasecmp(scheme, "https") == 0)
        return "https";
    return scheme;
}

/* The scheme that X-Forwarded-Proto names: its first element (the proxy
 * that faced the browser), trimmed, or NULL when that is not a scheme. */
static char *
forwarded_scheme(const char *forwarded_proto)
{
    const char *start = forwarded_proto;
    const char *end = strchr(forwarded_proto, ',');

    if (end == NULL)
        end = forwarded_proto + strlen(forwarded_proto);
    trim(&start, &end);
    if (!is_scheme(start, (gsize)(end - start)))
        return NULL;
    return g_ascii_strdown(start, end - start);
}

static bool
hostname_allowed(const char *hostname, const char *host,
                 const char *const *allowed_origins)
{
    g_autofree char *host_name = sg_admission_hostname_of(host);

    if (host_name != NULL && strcmp(hostname, host_name) == 0)
        return true;
    for (gsize i = 0; allowed_origins != NULL && allowed_origins[i] != NULL; i++) {
        /* Tolerate "[::1]" and stray case in the configuration. */
        g_autofree char *allowed = sg_admission_hostname_of(allowed_origins[i]);

        if (allowed != NULL && strcmp(hostname, allowed) == 0)
            return true;
    }
    return false;
}

SgOriginVerdict
sg_admission_check_origin(const char *origin, const char *host,
                          const char *forwarded_proto,
                          const char *const *allowed_origins,
                          const char *expected_scheme)
{
    g_autofree char *scheme = NULL;
    g_autofree char *hostname = NULL;

    /* Browsers always send Origin on a websocket upgrade; only other
     * clients (websockify, scripts) omit it, and they hold a token too. */
    if (origin == NULL)
        return SG_ORIGIN_OK;
    if (!parse_origin(origin, &scheme, &hostname))
        return SG_ORIGIN_INVALID;
    if (forwarded_proto != NULL) {
        g_free(scheme);
        scheme = forwarded_scheme(forwarded_proto);
        if (scheme == NULL)
            return SG_ORIGIN_INVALID;
    }
    if (!hostname_allowed(hostname, host, allowed_origins))
        return SG_ORIGIN_HOST_MISMATCH;
    if (expected_scheme != NULL &&
        g_ascii_strcasecmp(scheme_class(scheme), scheme_class(expected_scheme)) != 0)
        return SG_ORIGIN_SCHEME_MISMATCH;
    return SG_ORIGIN_OK;
}

const char *
sg_origin_verdict_to_string(SgOriginVerdict verdict)
{
    switch (verdict) {
    case SG_ORIGIN_OK:
        return "origin ok";
    case SG_ORIGIN_INVALID:
        return "origin invalid";
    case SG_ORIGIN_HOST_MISMATCH:
        return "origin host mismatch";
    case SG_ORIGIN_SCHEME_MISMATCH:
        return "origin scheme mismatch";
    default:
        return "origin verdict unknown";
    }
}

const char *
sg_admission_check_handshake(const SgHandshake *hs)
{
    if (hs->upgrade == NULL || g_ascii_strcasecmp(hs->upgrade, "websocket") != 0)
        return "only websocket upgrades are served\n";
    if (!hs->has_key)
        return "missing Sec-WebSocket-Key\n";
    if (hs->version == NULL || !g_str_equal(hs->version, "13"))
        return "Sec-WebSocket-Version must be 13\n";
    /* A value too long to read (NULL) counts as nothing offered. */
    if (hs->has_protocols && sg_admission_pick_subprotocol(hs->protocols) == NULL)
        return "subprotocol \"binary\" was not offered\n";
    return NULL;
}

char *
sg_admission_decide(const SgUpgradeRequest *req, const SgAdmissionPolicy *policy,
                    SgCloseReason *refusal, const char **detail)
{
    SgOriginVerdict verdict;
    bool token_in_url = false;
    char *token;

    *detail = NULL;
    if (req->shutting_down) {
        *refusal = SG_CLOSE_SHUTDOWN;
        return NULL;
    }
    /* HTTP/2 has :authority where HTTP/1.1 has Host (RFC 9113 8.3.1). */
    verdict = sg_admission_check_origin(req->origin, req->host ? req->host : req->authority,
                                        req->forwarded_proto, policy->allowed_origins,
                                        policy->expected_scheme);
    if (verdict != SG_ORIGIN_OK) {
        *refusal = SG_CLOSE_ORIGIN;
        *detail = sg_origin_verdict_to_string(verdict);
        return NULL;
    }
    token = sg_admission_token_from_args(req->query_args, &token_in_url);
    /* Nova's rule: the cookie counts only when the URL names no token. */
    if (!token_in_url && req->cookie != NULL)
        token = sg_admission_token_from_cookie(req->cookie);
    if (token == NULL)
        *refusal = SG_CLOSE_NO_TOKEN;
    return token;
}
