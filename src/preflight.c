/* SPDX-License-Identifier: Apache-2.0 */
/* preflight.c - start-up checks whose failures an operator can act on.
 *
 * Owns nothing beyond each call: it opens files, a shared library and a
 * socket, and closes them again. The checks run before the lws context is
 * created, because lws reports these problems only as one log line and a
 * NULL context.
 */
#include "autoconfig.h"

#include <dlfcn.h>
#include <errno.h>
#include <netdb.h>
#include <stdbool.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib.h>
#include <libwebsockets.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "config.h"
#include "httpc.h"
#include "keystone.h"
#include "preflight.h"

/* The page a spice-html5 root must hold: Nova's html5proxy_base_url names
 * it, and so does every console URL. */
#define SG_SPICE_HTML5_PAGE "spice_auto.html"

static gboolean
check_dir(const char *key, const char *path, const char *advice, GError **error)
{
    struct stat st;

    if (stat(path, &st) != 0) {
        g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_IO, "%s %s: %s; %s", key, path,
                    g_strerror(errno), advice);
        return FALSE;
    }
    if (!S_ISDIR(st.st_mode)) {
        g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_IO, "%s %s: not a directory; %s",
                    key, path, advice);
        return FALSE;
    }
    return TRUE;
}

gboolean
sg_preflight_web_roots(const SgConfig *cfg, GError **error)
{
    static const char web_advice[] =
        "install spice-html5 (Debian package spice-html5) or set [server] web (--web)";
    g_autofree char *page = NULL;

    if (cfg->web_dir == NULL) {
        g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_VALUE,
                    "[server] web is empty; %s", web_advice);
        return FALSE;
    }
    if (!check_dir("[server] web", cfg->web_dir, web_advice, error))
        return FALSE;
    page = g_build_filename(cfg->web_dir, SG_SPICE_HTML5_PAGE, NULL);
    if (access(page, R_OK) != 0) {
        g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_IO,
                    "[server] web %s holds no readable " SG_SPICE_HTML5_PAGE
                    ", so it is not spice-html5's directory; %s", cfg->web_dir, web_advice);
        return FALSE;
    }
    if (cfg->pages_dir != NULL &&
        !check_dir("[server] pages", cfg->pages_dir,
                   "set [server] pages (--pages) to spicegate's web/ directory", error))
        return FALSE;
    return TRUE;
}

/* OpenSSL asks for a passphrase through this; we have none to give. */
static int
no_passphrase(char *buf, int size, int rwflag, void *data)
{
    return 0;
}

static FILE *
open_pem(const char *key, const char *path, GError **error)
{
    FILE *f = fopen(path, "re");

    if (f == NULL)
        g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_IO, "%s %s: %s", key, path,
                    g_strerror(errno));
    return f;
}

/* Whether @path holds an encrypted PEM key: PKCS#8 ("BEGIN ENCRYPTED
 * PRIVATE KEY") or a traditional one with "Proc-Type: 4,ENCRYPTED". The
 * error OpenSSL leaves for these differs between its versions. */
static bool
pem_is_encrypted(const char *path)
{
    g_autofree char *text = NULL;
    gsize len = 0;
    bool encrypted;

    if (!g_file_get_contents(path, &text, &len, NULL))
        return false;
    encrypted = strstr(text, "-----BEGIN ENCRYPTED PRIVATE KEY-----") != NULL ||
                strstr(text, "Proc-Type: 4,ENCRYPTED") != NULL;
    explicit_bzero(text, len);    /* it may hold a key after all */
    return encrypted;
}

gboolean
sg_preflight_tls(const SgConfig *cfg, GError **error)
{
    const char *key_key = cfg->key != NULL ? "[tls] key" : "[tls] cert";
    const char *key_path = cfg->key != NULL ? cfg->key : cfg->cert;
    X509 *cert = NULL;
    EVP_PKEY *pkey = NULL;
    gboolean ok = FALSE;
    FILE *f;

    if (cfg->cert == NULL)
        return TRUE;
    ERR_clear_error();
    f = open_pem("[tls] cert", cfg->cert, error);
    if (f == NULL)
        goto out;
    cert = PEM_read_X509(f, NULL, no_passphrase, NULL);
    fclose(f);
    if (cert == NULL) {
        g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_VALUE,
                    "[tls] cert %s holds no PEM certificate", cfg->cert);
        goto out;
    }
    f = open_pem(key_key, key_path, error);
    if (f == NULL)
        goto out;
    ERR_clear_error();
    pkey = PEM_read_PrivateKey(f, NULL, no_passphrase, NULL);
    fclose(f);
    if (pkey == NULL) {
        if (pem_is_encrypted(key_path))
            g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_VALUE,
                        "%s %s: the private key is encrypted with a passphrase, which "
                        "spicegate cannot ask for; remove it (openssl pkey -in KEY -out NEW)",
                        key_key, key_path);
        else if (cfg->key == NULL)
            g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_VALUE,
                        "[tls] cert %s holds no private key; set [tls] key (--key)", cfg->cert);
        else
            g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_VALUE,
                        "[tls] key %s holds no PEM private key", cfg->key);
        goto out;
    }
    if (X509_check_private_key(cert, pkey) != 1) {
        g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_VALUE,
                    "%s %s: the private key does not match the certificate in [tls] cert %s",
                    key_key, key_path, cfg->cert);
        goto out;
    }
    ok = TRUE;
out:
    ERR_clear_error();
    EVP_PKEY_free(pkey);
    X509_free(cert);
    return ok;
}

const char *
sg_preflight_evlib_path(void)
{
#if defined(LWS_WITH_EVLIB_PLUGINS) && defined(LWS_INSTALL_LIBDIR)
    /* lws 4.1 looks in this one directory only, for the file whose name is
     * the plugin's after "libwebsockets-" (lib/core/context.c, dlist). */
    return LWS_INSTALL_LIBDIR "/libwebsockets-evlib_uv.so";
#else
    return NULL;
#endif
}

gboolean
sg_preflight_evlib(const char *path, GError **error)
{
    static const char what[] = "libwebsockets' libuv event library (Debian package "
                               "libwebsockets-evlib-uv) could not be loaded";
    const lws_plugin_header_t *hdr;
    void *handle;
    const char *why;

    if (path == NULL)
        return TRUE;
    if (access(path, F_OK) != 0) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_NOT_FOUND, "%s: %s: %s", what, path,
                    g_strerror(errno));
        return FALSE;
    }
    dlerror();
    handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
        why = dlerror();
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "%s: %s", what,
                    why != NULL ? why : path);
        return FALSE;
    }
    /* As lws checks it: the export is named after the file, and its
     * header says what it is and which plugin API it was built for. */
    hdr = dlsym(handle, "evlib_uv");
    if (hdr == NULL || hdr->_class == NULL || !g_str_equal(hdr->_class, "lws_evlib_plugin") ||
        hdr->api_magic != LWS_PLUGIN_API_MAGIC) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                    "%s: %s is not a libuv event-library plugin for this libwebsockets", what,
                    path);
        dlclose(handle);
        return FALSE;
    }
    dlclose(handle);
    return TRUE;
}

const char *
sg_preflight_bind_hint(int err)
{
    switch (err) {
    case EACCES:
        return " (ports below 1024 need CAP_NET_BIND_SERVICE)";
    case EADDRNOTAVAIL:
        return " (not an address of this host; see [server] listen)";
    default:
        return "";
    }
}

/* --- --check-config=login -------------------------------------------------- */

typedef struct {
    SgHttpc *hc;
    SgKeystoneWait *wait;
    SgHttpRequest *req;
    GError *error;
    char *compute_url;
    bool done;
} LoginCheck;

static void
on_login_version(const SgHttpResponse *resp, gpointer data)
{
    LoginCheck *lc = data;

    lc->req = NULL;
    lc->done = true;
    if (resp->status != 200)
        lc->error = g_error_new(SG_KEYSTONE_ERROR, SG_KEYSTONE_ERROR_UNAVAILABLE,
                                "the compute endpoint %s answered %ld%s%s", lc->compute_url,
                                resp->status, resp->error ? ": " : "",
                                resp->error ? resp->error : "");
}

static void
on_login_token(const char *token, const char *compute_url, const GError *error, gpointer data)
{
    LoginCheck *lc = data;
    g_autofree char *auth = NULL;
    g_autofree char *url = NULL;
    const char *headers[3];

    lc->wait = NULL;
    if (error != NULL) {
        lc->error = g_error_copy(error);
        lc->done = true;
        return;
    }
    lc->compute_url = g_strdup(compute_url);
    auth = g_strdup_printf("X-Auth-Token: %s", token);
    url = g_strdup_printf("%s/", compute_url);
    headers[0] = auth;
    headers[1] = "Accept: application/json";
    headers[2] = NULL;
    lc->req = sg_httpc_request(lc->hc, "GET", url, headers, NULL, on_login_version, lc);
    explicit_bzero(auth, strlen(auth));
}

static gboolean
on_login_timeout(gpointer data)
{
    bool *expired = data;

    *expired = true;
    return G_SOURCE_REMOVE;
}

gboolean
sg_preflight_login(const SgConfig *cfg, guint timeout_s, char **compute_url, GError **error)
{
    SgHttpcOptions opts = {
        .ca_file = cfg->nova_ca_file,
        .insecure = cfg->nova_insecure,
        .connect_timeout_ms = MIN(cfg->nova_timeout_s, 5u) * 1000,
        .timeout_ms = cfg->nova_timeout_s * 1000,
    };
    LoginCheck lc = { 0 };
    SgKeystone *ks;
    bool expired = false;
    guint timer;
    gboolean ok;

    if (!g_str_equal(cfg->token_backend, "nova")) {
        g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_VALUE,
                    "--check-config=login: [tokens] backend is %s; there is no Keystone to log "
                    "in to (use --check-config)", cfg->token_backend);
        return FALSE;
    }
    lc.hc = sg_httpc_new(&opts);
    ks = sg_keystone_new(lc.hc, cfg);
    timer = g_timeout_add_seconds(timeout_s, on_login_timeout, &expired);
    lc.wait = sg_keystone_get(ks, on_login_token, &lc);
    while (!lc.done && !expired)
        g_main_context_iteration(NULL, TRUE);
    if (!expired)
        g_source_remove(timer);
    sg_keystone_wait_cancel(lc.wait);
    sg_httpc_cancel(lc.req);
    ok = lc.done && lc.error == NULL;
    if (!lc.done)
        g_set_error(error, SG_KEYSTONE_ERROR, SG_KEYSTONE_ERROR_UNAVAILABLE,
                    "--check-config=login: no answer from %s within %u s",
                    lc.compute_url ? lc.compute_url : cfg->nova_auth_url, timeout_s);
    else if (lc.error != NULL)
        g_propagate_prefixed_error(error, g_steal_pointer(&lc.error), "--check-config=login: ");
    if (ok && compute_url != NULL)
        *compute_url = g_steal_pointer(&lc.compute_url);
    g_free(lc.compute_url);
    sg_keystone_free(ks);
    sg_httpc_free(lc.hc);
    return ok;
}

/* --- the start-up line -------------------------------------------------------- */

char *
sg_preflight_describe(const SgConfig *cfg, guint port, guint workers)
{
    GString *s = g_string_new(NULL);
    const char *host = cfg->listen_host;
    bool v6 = host != NULL && strchr(host, ':') != NULL;

    g_string_append_printf(s, "listen %s%s%s:%u", v6 ? "[" : "", host ? host : "*",
                           v6 ? "]" : "", port);
    if (cfg->cert == NULL)
        g_string_append(s, ", TLS off (http/ws)");
    else
        g_string_append_printf(s, ", TLS on (%s, cert %s, key %s)",
                               cfg->ssl_only ? "https/wss only" : "https/wss and http/ws",
                               cfg->cert, cfg->key ? cfg->key : cfg->cert);
    if (g_str_equal(cfg->token_backend, "nova"))
        g_string_append_printf(s, "; tokens: nova via %s", cfg->nova_auth_url);
    else
        g_string_append_printf(s, "; tokens: file %s", cfg->token_file);
    g_string_append_printf(s, "; web %s, pages %s", cfg->web_dir,
                           cfg->pages_dir ? cfg->pages_dir : "(none)");
    if (cfg->base_url != NULL)
        g_string_append_printf(s, "; base_url %s, Origin scheme check on (%s)", cfg->base_url,
                               cfg->expected_scheme);
    else
        g_string_append(s, "; base_url unset, Origin scheme check off");
    g_string_append_printf(s, "; workers %u", workers);
    return g_string_free(s, FALSE);
}
