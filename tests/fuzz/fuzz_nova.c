/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_nova.c - libFuzzer target for what Nova and Keystone send us, and
 * for nova.conf.
 *
 * The first byte picks the parser (modulo 6): 0 Nova's
 * os-console-auth-tokens reply, 1 Keystone's token reply (catalog read for
 * the internal interface, any region), 2 the nova.conf reader (parse and
 * apply), 3 Nova's GET /servers/{uuid} reply (the instance's status), 4
 * Nova's version document, 5 Keystone's token reply again, for the public
 * interface in one region. Each must return an answer or an error, never
 * both, never crash; a compute URL from the catalog is http(s) without a
 * trailing '/'.
 */
#include "autoconfig.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <glib.h>

#include "config.h"
#include "keystone.h"
#include "nova_conf.h"
#include "token.h"
#include "token_nova.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_keystone(const char *body, gsize len, const char *interface, const char *region)
{
    g_autoptr(GError) error = NULL;
    g_autofree char *url = NULL;
    gint64 expires = 0;

    if (sg_keystone_parse_token(body, len, interface, region, &expires, &url, &error)) {
        if (url == NULL || error != NULL)
            abort();
        if (!g_str_has_prefix(url, "http://") && !g_str_has_prefix(url, "https://"))
            abort();
        if (g_str_has_suffix(url, "/"))
            abort();
    } else if (error == NULL || url != NULL) {
        abort();
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body;
    gsize len;
    g_autoptr(GError) error = NULL;

    if (size < 1)
        return 0;
    body = (const char *)data + 1;
    len = size - 1;
    switch (data[0] % 6) {
    case 0: {
        g_autoptr(SgConsoleTarget) tgt = NULL;

        if (sg_token_nova_parse_reply(body, len, &tgt, &error)) {
            /* A console may have only a TLS port ([spice] tls). */
            if (tgt == NULL || tgt->host == NULL || (tgt->port == 0 && tgt->tls_port == 0) ||
                error != NULL)
                abort();
        } else if (tgt != NULL || error == NULL) {
            abort();
        }
        break;
    }
    case 1:
        check_keystone(body, len, "internal", NULL);
        break;
    case 3: {
        g_autofree char *status = sg_token_nova_server_status(body, len);

        if (status != NULL && strlen(status) > len)
            abort();
        break;
    }
    case 4: {
        g_autofree char *min = NULL;
        g_autofree char *max = NULL;

        if (sg_token_nova_parse_versions(body, len, &min, &max, &error)) {
            if (error != NULL || (min != NULL && strlen(min) > 16) ||
                (max != NULL && strlen(max) > 16))
                abort();
        } else if (error == NULL || min != NULL || max != NULL) {
            abort();
        }
        break;
    }
    case 5:
        check_keystone(body, len, "public", "RegionOne");
        break;
    case 2: {
        g_autoptr(SgNovaConf) nc = sg_nova_conf_parse(body, len, "fuzz.conf", &error);

        if (nc != NULL) {
            g_autoptr(SgConfig) cfg = sg_config_new_default();

            if (error != NULL)
                abort();
            if (!sg_nova_conf_apply(nc, cfg, "fuzz.conf", &error) && error == NULL)
                abort();
        } else if (error == NULL) {
            abort();
        }
        break;
    }
    default:
        break;
    }
    return 0;
}
