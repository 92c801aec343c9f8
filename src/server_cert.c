/* SPDX-License-Identifier: Apache-2.0 */
/* server_cert.c - the certificate new TLS handshakes get, and its reload.
 *
 * Owns the pair a reload took (certificate, its chain, key) and the
 * descriptions that logs and STATUS= show; not lws' SSL_CTX, which it
 * only reads and gives a certificate callback. libwebsockets 4.1.6 has a
 * reload of its own (lws_tls_cert_updated()), but it loads the files
 * straight into the live SSL_CTX: a key that does not match leaves that
 * context without a usable key, and a new ECDSA certificate sits next to
 * the old RSA one instead of replacing it (OpenSSL keeps one certificate
 * per key type). Here the files are checked in a scratch SSL_CTX first,
 * and each new handshake's SSL gets exactly the checked pair from the
 * certificate callback (SSL_certs_clear(), then the pair), as OpenSSL's
 * s_server does; an SSL made earlier keeps what it had.
 */
#include "autoconfig.h"

#include <stdbool.h>
#include <string.h>
#include <time.h>

#include <glib.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "config.h"
#include "log.h"
#include "preflight.h"
#include "server_cert.h"

/* One checked certificate, its chain and key, as a handshake takes them. */
typedef struct {
    X509 *cert;
    EVP_PKEY *key;
    STACK_OF(X509) *chain;        /* the certificates after the first; may be NULL */
    char *fingerprint;            /* SHA-256 of the DER, lower-case hex */
    char *description;            /* fingerprint, subject, end of validity */
} Pair;

struct SgServerCert {
    const SgConfig *cfg;
    SSL_CTX *ssl_ctx;             /* lws': not ours */
    Pair *current;                /* NULL until a reload: the SSL_CTX's own */
    char *in_use_fingerprint;     /* of what new handshakes get */
    char *in_use;                 /* its description */
};

/* OpenSSL asks for a passphrase through this (else it would prompt on
 * the terminal); we have none to give. */
static int
no_passphrase(char *buf, int size, int rwflag, void *data)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)data;
    return 0;
}

static char *
fingerprint_of(X509 *cert)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    GString *hex = g_string_sized_new(2 * 32);

    if (X509_digest(cert, EVP_sha256(), md, &len) != 1)
        len = 0;
    for (unsigned int i = 0; i < len; i++)
        g_string_append_printf(hex, "%02x", md[i]);
    return g_string_free(hex, FALSE);
}

static char *
time_text(const ASN1_TIME *t)
{
    struct tm tm;
    char buf[32];

    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1 ||
        strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        return g_strdup("(unknown)");
    return g_strdup(buf);
}

static char *
subject_text(X509 *cert)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data = NULL;
    long len;
    char *text;

    if (bio == NULL)
        return g_strdup("(unknown)");
    X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
    len = BIO_get_mem_data(bio, &data);
    text = len > 0 ? g_strndup(data, (gsize)len) : g_strdup("(empty)");
    BIO_free(bio);
    /* One line, whatever the certificate holds. */
    g_strdelimit(text, "\r\n", ' ');
    return text;
}

static char *
describe(X509 *cert, const char *fingerprint)
{
    g_autofree char *subject = subject_text(cert);
    g_autofree char *until = time_text(X509_get0_notAfter(cert));

    return g_strdup_printf("sha256 %s, subject %s, valid until %s", fingerprint, subject,
                           until);
}

static void
pair_free(Pair *p)
{
    if (p == NULL)
        return;
    X509_free(p->cert);
    EVP_PKEY_free(p->key);
    sk_X509_pop_free(p->chain, X509_free);
    g_free(p->fingerprint);
    g_free(p->description);
    g_free(p);
}

/* OpenSSL's reason for the last failure, for a message. */
static char *
openssl_reason(void)
{
    unsigned long e = ERR_peek_last_error();
    const char *reason = e != 0 ? ERR_reason_error_string(e) : NULL;
    char buf[256];

    if (reason != NULL)
        return g_strdup(reason);
    if (e == 0)
        return g_strdup("unknown error");
    ERR_error_string_n(e, buf, sizeof(buf));
    return g_strdup(buf);
}

/* Reads @cfg's certificate file (the certificate, then its chain) and key
 * as lws does, into a scratch SSL_CTX, and checks everything a handshake
 * would need. Returns the pair, or NULL with @error naming the key and
 * file and saying why. */
static Pair *
load_pair(const SgConfig *cfg, GError **error)
{
    const char *key_key = cfg->key != NULL ? "[tls] key" : "[tls] cert";
    const char *key_path = cfg->key != NULL ? cfg->key : cfg->cert;
    Pair *p = NULL;
    SSL_CTX *scratch = NULL;
    STACK_OF(X509) *chain = NULL;
    X509 *cert;
    EVP_PKEY *key;
    g_autofree char *reason = NULL;

    /* The start-up checks first: their messages say what to do about the
     * usual mistakes (no such file, no key, a passphrase, another key). */
    if (!sg_preflight_tls(cfg, error))
        return NULL;
    ERR_clear_error();
    scratch = SSL_CTX_new(TLS_server_method());
    if (scratch == NULL) {
        reason = openssl_reason();
        g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_VALUE,
                    "cannot make a TLS context to check [tls] cert in: %s", reason);
        goto out;
    }
    SSL_CTX_set_default_passwd_cb(scratch, no_passphrase);
    /* What lws calls at start; OpenSSL also applies its security level
     * here (a 1024-bit RSA key is refused, as at start). */
    if (SSL_CTX_use_certificate_chain_file(scratch, cfg->cert) != 1) {
        reason = openssl_reason();
        g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_VALUE, "[tls] cert %s: %s",
                    cfg->cert, reason);
        goto out;
    }
    if (SSL_CTX_use_PrivateKey_file(scratch, key_path, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(scratch) != 1) {
        reason = openssl_reason();
        g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_VALUE, "%s %s: %s", key_key,
                    key_path, reason);
        goto out;
    }
    cert = SSL_CTX_get0_certificate(scratch);
    key = SSL_CTX_get0_privatekey(scratch);
    if (cert == NULL || key == NULL) {
        g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_VALUE,
                    "[tls] cert %s: no certificate and key after loading", cfg->cert);
        goto out;
    }
    /* A certificate every browser refuses is no improvement on the one in
     * use, whatever that is: such a reload is refused. */
    if (X509_cmp_current_time(X509_get0_notAfter(cert)) <= 0) {
        g_autofree char *when = time_text(X509_get0_notAfter(cert));

        g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_VALUE,
                    "[tls] cert %s expired on %s", cfg->cert, when);
        goto out;
    }
    if (X509_cmp_current_time(X509_get0_notBefore(cert)) >= 0) {
        g_autofree char *when = time_text(X509_get0_notBefore(cert));

        g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_VALUE,
                    "[tls] cert %s is not valid before %s; reload again from then",
                    cfg->cert, when);
        goto out;
    }
    p = g_new0(Pair, 1);
    X509_up_ref(cert);
    p->cert = cert;
    EVP_PKEY_up_ref(key);
    p->key = key;
    if (SSL_CTX_get0_chain_certs(scratch, &chain) == 1 && chain != NULL &&
        sk_X509_num(chain) > 0)
        p->chain = X509_chain_up_ref(chain);
    p->fingerprint = fingerprint_of(cert);
    p->description = describe(cert, p->fingerprint);
out:
    ERR_clear_error();
    SSL_CTX_free(scratch);
    return p;
}

/* OpenSSL's certificate callback, for every full handshake once the
 * ClientHello is read and before the cipher and signature algorithm are
 * chosen: the SSL gets exactly the current pair. */
static int
on_certificate(SSL *ssl, void *data)
{
    SgServerCert *sc = data;
    Pair *p = sc->current;

    if (p == NULL)
        return 1;                 /* never reloaded: what lws loaded */
    SSL_certs_clear(ssl);
    if (SSL_use_certificate(ssl, p->cert) != 1 || SSL_use_PrivateKey(ssl, p->key) != 1 ||
        SSL_set1_chain(ssl, p->chain) != 1) {
        /* Checked before it became current: not expected. The handshake
         * fails with an internal_error alert. */
        g_autofree char *reason = openssl_reason();

        g_warning("TLS: cannot use the reloaded certificate for a handshake: %s", reason);
        ERR_clear_error();
        return 0;
    }
    return 1;
}

SgServerCert *
sg_server_cert_new(const SgConfig *cfg)
{
    SgServerCert *sc = g_new0(SgServerCert, 1);

    sc->cfg = cfg;
    return sc;
}

void
sg_server_cert_attach(SgServerCert *sc, void *ssl_ctx)
{
    X509 *cert;

    sc->ssl_ctx = ssl_ctx;
    cert = SSL_CTX_get0_certificate(sc->ssl_ctx);
    g_free(sc->in_use_fingerprint);
    g_free(sc->in_use);
    sc->in_use_fingerprint = cert != NULL ? fingerprint_of(cert) : g_strdup("");
    sc->in_use = cert != NULL ? describe(cert, sc->in_use_fingerprint)
                              : g_strdup("(none)");
    /* At start the certificate is all there is: served, but said. */
    if (cert != NULL && X509_cmp_current_time(X509_get0_notAfter(cert)) <= 0) {
        g_autofree char *when = time_text(X509_get0_notAfter(cert));

        sg_warning_once("TLS: [tls] cert %s expired on %s, and browsers refuse it: renew it, "
                        "then reload", sc->cfg->cert, when);
    } else if (cert != NULL && X509_cmp_current_time(X509_get0_notBefore(cert)) >= 0) {
        g_autofree char *when = time_text(X509_get0_notBefore(cert));

        sg_warning_once("TLS: [tls] cert %s is not valid before %s, and browsers refuse it "
                        "until then", sc->cfg->cert, when);
    }
    SSL_CTX_set_cert_cb(sc->ssl_ctx, on_certificate, sc);
}

SgServerCertResult
sg_server_cert_reload(SgServerCert *sc, char **summary)
{
    g_autoptr(GError) error = NULL;
    Pair *p;
    bool same;

    if (sc->ssl_ctx == NULL) {
        /* lws never gave us its context: nothing can be swapped. */
        g_warning("reload: TLS: the certificate cannot be reloaded (no TLS context)");
        *summary = g_strdup("certificate not reloaded (no TLS context)");
        return SG_SERVER_CERT_KEPT;
    }
    p = load_pair(sc->cfg, &error);
    if (p == NULL) {
        g_autofree char *why = g_strdup(error->message);

        g_strdelimit(why, "\r\n", ' ');
        sg_warning_once("reload: TLS: certificate not reloaded, keeping the one in use (%s): %s",
                        sc->in_use, why);
        g_debug("reload: TLS: kept %s", sc->in_use_fingerprint);
        *summary = g_strdup_printf("certificate kept, new one refused: %s", why);
        return SG_SERVER_CERT_KEPT;
    }
    same = g_str_equal(p->fingerprint, sc->in_use_fingerprint);
    /* Taken even when the certificate is the same: its chain may not be. */
    pair_free(sc->current);
    sc->current = p;
    g_free(sc->in_use_fingerprint);
    g_free(sc->in_use);
    sc->in_use_fingerprint = g_strdup(p->fingerprint);
    sc->in_use = g_strdup(p->description);
    if (same) {
        sg_message_once("reload: TLS: certificate unchanged (%s)", sc->in_use);
        *summary = g_strdup_printf("certificate unchanged (sha256 %s)", p->fingerprint);
        return SG_SERVER_CERT_UNCHANGED;
    }
    sg_message_once("reload: TLS: new certificate for new connections (%s); open ones keep "
                    "theirs", sc->in_use);
    g_debug("reload: TLS: now %s", sc->in_use_fingerprint);
    *summary = g_strdup_printf("certificate reloaded (sha256 %s)", p->fingerprint);
    return SG_SERVER_CERT_RELOADED;
}

char *
sg_server_cert_check(const SgConfig *cfg)
{
    g_autoptr(GError) error = NULL;
    Pair *p = load_pair(cfg, &error);
    char *line;

    if (p == NULL) {
        line = g_strdup_printf("certificate files refused, the workers keep theirs: %s",
                               error->message);
        g_strdelimit(line, "\r\n", ' ');
        return line;
    }
    line = g_strdup_printf("certificate files pass (sha256 %s)", p->fingerprint);
    pair_free(p);
    return line;
}

void
sg_server_cert_free(SgServerCert *sc)
{
    if (sc == NULL)
        return;
    pair_free(sc->current);
    g_free(sc->in_use_fingerprint);
    g_free(sc->in_use);
    g_free(sc);
}
