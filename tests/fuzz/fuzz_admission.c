/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_admission.c - libFuzzer target for the upgrade-gate decisions.
 *
 * The input is NUL-separated fields: query, cookie, subprotocol offer,
 * Origin, Host, X-Forwarded-Proto, expected scheme, then any number of
 * allowed origins. A field the input does not reach is NULL (the header is
 * absent). Results are checked against admission.h's promises.
 */
#include "autoconfig.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "admission.h"

#include "fields.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum {
    FIELD_QUERY = 0,
    FIELD_COOKIE,
    FIELD_SUBPROTOCOL,
    FIELD_ORIGIN,
    FIELD_HOST,
    FIELD_FORWARDED_PROTO,
    FIELD_EXPECTED_SCHEME,
    FIELD_ALLOWED,          /* and every field after it */
};

static void
check_token(char *token)
{
    g_autofree char *owned = token;

    if (owned != NULL && (owned[0] == '\0' || strlen(owned) > SG_TOKEN_MAX_BYTES))
        abort();
}

static void
check_hostname(const char *hostport)
{
    g_autofree char *hostname = sg_admission_hostname_of(hostport);

    if (hostname == NULL)
        return;
    if (hostname[0] == '\0' || strchr(hostname, '[') != NULL || strchr(hostname, ']') != NULL)
        abort();
    for (const char *p = hostname; *p != '\0'; p++) {
        if (g_ascii_isupper(*p))
            abort();
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* A terminating NUL makes the last field a C string too. */
    g_autofree char *copy = g_malloc(size + 1);
    g_autoptr(GPtrArray) fields = g_ptr_array_new();
    const char *field[FIELD_ALLOWED] = { NULL };
    const char *subprotocol;
    SgOriginVerdict verdict;

    memcpy(copy, data, size);
    copy[size] = '\0';
    split_fields(copy, size, fields);
    for (guint i = 0; i < fields->len && i < FIELD_ALLOWED; i++)
        field[i] = fields->pdata[i];
    if (fields->len > FIELD_ALLOWED)
        g_ptr_array_remove_range(fields, 0, FIELD_ALLOWED);
    else
        g_ptr_array_set_size(fields, 0);
    g_ptr_array_add(fields, NULL);

    check_token(sg_admission_token_from_query(field[FIELD_QUERY]));
    check_token(sg_admission_token_from_cookie(field[FIELD_COOKIE]));

    subprotocol = sg_admission_pick_subprotocol(field[FIELD_SUBPROTOCOL]);
    if (subprotocol != NULL && strcmp(subprotocol, "binary") != 0 && subprotocol[0] != '\0')
        abort();

    /* The handshake check of an otherwise right upgrade turns on the
     * offer alone: refused exactly when something but "binary" was. */
    {
        SgHandshake hs = {
            .upgrade = "websocket", .has_key = true, .version = "13",
            .has_protocols = field[FIELD_SUBPROTOCOL] != NULL,
            .protocols = field[FIELD_SUBPROTOCOL],
        };
        const char *refused = sg_admission_check_handshake(&hs);

        if ((refused != NULL) != (field[FIELD_SUBPROTOCOL] != NULL && subprotocol == NULL))
            abort();
    }

    check_hostname(field[FIELD_HOST]);
    check_hostname(field[FIELD_ORIGIN]);
    verdict = sg_admission_check_origin(field[FIELD_ORIGIN], field[FIELD_HOST],
                                        field[FIELD_FORWARDED_PROTO],
                                        (const char *const *)fields->pdata,
                                        field[FIELD_EXPECTED_SCHEME]);
    if (verdict > SG_ORIGIN_SCHEME_MISMATCH || sg_origin_verdict_to_string(verdict) == NULL)
        abort();
    /* No Origin always passes, whatever else is there. */
    if (field[FIELD_ORIGIN] == NULL && verdict != SG_ORIGIN_OK)
        abort();

    /* The whole decision, as listener.c asks for it: a token exactly when
     * the Origin passed and the query or the cookie gave one. */
    {
        g_auto(GStrv) args = field[FIELD_QUERY] ? g_strsplit(field[FIELD_QUERY], "&", -1)
                                                : NULL;
        SgUpgradeRequest req = {
            .origin = field[FIELD_ORIGIN], .host = field[FIELD_HOST],
            .forwarded_proto = field[FIELD_FORWARDED_PROTO],
            .query_args = (const char *const *)args, .cookie = field[FIELD_COOKIE],
        };
        SgAdmissionPolicy policy = {
            .allowed_origins = (const char *const *)fields->pdata,
            .expected_scheme = field[FIELD_EXPECTED_SCHEME],
        };
        SgCloseReason refusal = SG_CLOSE_INTERNAL;
        const char *detail = NULL;
        char *token = sg_admission_decide(&req, &policy, &refusal, &detail);

        if (token == NULL && refusal != SG_CLOSE_ORIGIN && refusal != SG_CLOSE_NO_TOKEN)
            abort();
        if ((verdict != SG_ORIGIN_OK) != (token == NULL && refusal == SG_CLOSE_ORIGIN))
            abort();
        check_token(token);
    }
    return 0;
}
