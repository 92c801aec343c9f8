/* SPDX-License-Identifier: Apache-2.0 */
/* fuzz_nova.c - libFuzzer target for what Nova and Keystone send us, and
 * for nova.conf.
 *
 * The first byte picks the parser: Nova's os-console-auth-tokens reply,
 * Keystone's token reply, or the nova.conf reader (parse and apply). Each
 * must return an answer or an error, never both, never crash.
 */
#include "autoconfig.h"

#include <stdint.h>
#include <stdlib.h>

#include <glib.h>

#include "config.h"
#include "keystone.h"
#include "nova_conf.h"
#include "token.h"
#include "token_nova.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
    switch (data[0] % 3) {
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
    case 1: {
        g_autofree char *url = NULL;
        gint64 expires = 0;

        if (sg_keystone_parse_token(body, len, "internal", NULL, &expires, &url, &error)) {
            if (url == NULL || error != NULL)
                abort();
        } else if (error == NULL) {
            abort();
        }
        break;
    }
    default: {
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
    }
    return 0;
}
