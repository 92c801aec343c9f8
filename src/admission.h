/* SPDX-License-Identifier: Apache-2.0 */
/* admission.h - the websocket upgrade gate, as pure decisions.
 *
 * Everything here works on strings copied out of the request headers, so it
 * is unit-tested and fuzzed without a socket: whether the handshake is one
 * spice-html5 could have sent, which subprotocol to answer, whether the
 * Origin may open a console on this Host, whether we take sessions at all
 * (shutdown), and where the console token comes from (query, then cookie).
 * listener.c gathers the headers (request.h) and session.c acts on the
 * verdict.
 */
#pragma once

#include <stdbool.h>

#include "close_code.h"
#include "sg_types.h"

/* 512: Nova tokens are 36-character UUIDs; anything this long is not one. */
#define SG_TOKEN_MAX_BYTES 512

/* The console token among a request's query arguments as libwebsockets
 * hands them over (split at '&' and ';', '+' made a space, percent-decoded:
 * "name=value" each), NULL-terminated: the value of the last `token`
 * argument whose value is not empty, as Nova's parse_qs() picks it. NULL
 * when there is none, or when that value is longer than
 * SG_TOKEN_MAX_BYTES or holds a control character. Newly allocated. This
 * is the parser sg_admission_decide() uses. @present (may be NULL) says whether there
 * was such an argument at all: a refused one is still the token the URL
 * asked for, and the cookie must not stand in for it (Nova's rule). */
char *sg_admission_token_from_args(const char *const *args, bool *present);

/* The same for a raw query string @query (no leading '?'): split and
 * decoded exactly as libwebsockets does, then sg_admission_token_from_args().
 * NULL also where lws would refuse the request (a bad escape, an encoded
 * NUL). For tests, fuzzers and callers that hold the raw query. */
char *sg_admission_token_from_query(const char *query);

/* The value of the last well-formed `token` cookie in the Cookie header
 * value @cookie_header, or NULL. Malformed parts are skipped. The value is
 * percent-decoded and may be quoted ("..."). Newly allocated. */
char *sg_admission_token_from_cookie(const char *cookie_header);

/* Picks the subprotocol to echo from a Sec-WebSocket-Protocol value
 * (comma-separated, whitespace tolerated). Returns "binary" when offered,
 * "" when @offered is NULL or empty (answer without the header), or NULL
 * when something was offered but not binary (refuse). Static strings. */
const char *sg_admission_pick_subprotocol(const char *offered);

typedef enum {
    SG_ORIGIN_OK = 0,           /* same host, allowed, or no Origin at all */
    SG_ORIGIN_INVALID,          /* "null", unparsable, no scheme or host */
    SG_ORIGIN_HOST_MISMATCH,    /* hostname neither Host's nor allowed */
    SG_ORIGIN_SCHEME_MISMATCH,  /* scheme differs from the expected one */
} SgOriginVerdict;

/* Nova's rule: the Origin's hostname must equal the Host header's hostname
 * (ports ignored, IPv6 brackets stripped, case-insensitive) or be one of
 * @allowed_origins (NULL-terminated hostnames; may be NULL). A missing
 * Origin (@origin NULL) is a non-browser client and passes.
 * @forwarded_proto (X-Forwarded-Proto), when non-NULL, replaces the
 * Origin's scheme. @expected_scheme, when non-NULL ("http" or "https"),
 * must match that scheme, ws counting as http and wss as https. */
SgOriginVerdict sg_admission_check_origin(const char *origin, const char *host,
                                          const char *forwarded_proto,
                                          const char *const *allowed_origins,
                                          const char *expected_scheme);

const char *sg_origin_verdict_to_string(SgOriginVerdict verdict);

/* The hostname part of "host", "host:port", "[v6]" or "[v6]:port",
 * lowercased, brackets stripped; NULL if unparsable. Newly allocated. */
char *sg_admission_hostname_of(const char *hostport);

/* What an upgrade request's handshake says (LWS_CALLBACK_HTTP_CONFIRM_UPGRADE). */
typedef struct {
    const char *upgrade;          /* the Upgrade header's value, NULL if absent */
    bool has_key;                 /* a Sec-WebSocket-Key was sent */
    const char *version;          /* Sec-WebSocket-Version, NULL if absent or too long */
    bool has_protocols;           /* a Sec-WebSocket-Protocol was sent */
    const char *protocols;        /* its value, NULL if too long to read */
} SgHandshake;

/* NULL when @hs is a websocket handshake spice-html5 could have sent (a
 * websocket upgrade, a key, version 13, and "binary" among the offered
 * subprotocols if any are offered), else the body of the 400 that refuses
 * it: a static line ending in '\n' that also says why in the log. */
const char *sg_admission_check_handshake(const SgHandshake *hs);

/* What a completed upgrade says, for sg_admission_decide(). */
typedef struct {
    bool shutting_down;           /* the daemon takes no new sessions */
    const char *origin;           /* Origin, NULL if absent */
    const char *host;             /* Host, NULL if absent */
    const char *authority;        /* HTTP/2's :authority, which stands for Host */
    const char *forwarded_proto;  /* X-Forwarded-Proto, NULL if absent */
    const char *const *query_args; /* the decoded query arguments, NULL-terminated, or NULL */
    const char *cookie;           /* every Cookie field, joined; NULL if none */
} SgUpgradeRequest;

/* The operator's rules for sg_admission_decide() (see [server] in
 * spicegate.conf(5)). Not owned. */
typedef struct {
    const char *const *allowed_origins;   /* allowed_origins, or NULL */
    const char *expected_scheme;          /* expected_scheme, or NULL */
} SgAdmissionPolicy;

/* Decides whether the upgrade @req becomes a console session, in this
 * order: not while shutting down (SG_CLOSE_SHUTDOWN), the Origin against
 * the Host and @policy (SG_CLOSE_ORIGIN, *@detail naming the verdict),
 * then the token: from the query if the URL names one at all, else from
 * the cookie (Nova's rule), else SG_CLOSE_NO_TOKEN. Returns the token
 * (newly allocated; the caller wipes and frees it), or NULL with
 * *@refusal set and *@detail a static string for the log or NULL. */
char *sg_admission_decide(const SgUpgradeRequest *req, const SgAdmissionPolicy *policy,
                          SgCloseReason *refusal, const char **detail);
