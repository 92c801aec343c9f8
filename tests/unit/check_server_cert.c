/* SPDX-License-Identifier: Apache-2.0 */
/* check_server_cert.c - certificate reload at the OpenSSL level: a server
 * SSL_CTX set up as libwebsockets sets it up (the first pair loaded from
 * the files), handshakes with a client over an in-memory BIO pair, and
 * what each handshake sees after sg_server_cert_reload(): the new pair
 * whatever the TLS version, the old key type gone after an RSA/ECDSA
 * switch, the old pair kept after every kind of bad file. Keys and
 * certificates are made here; tests/integ/test_cert_reload.py runs the
 * same through the daemon. */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include <glib.h>
#include <glib/gstdio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "config.h"
#include "server_cert.h"

static char *tmpdir;
static GString *captured_log;

static GLogWriterOutput
capture_writer(GLogLevelFlags level, const GLogField *fields, gsize n_fields,
               gpointer user_data)
{
    for (gsize i = 0; i < n_fields; i++) {
        if (strcmp(fields[i].key, "MESSAGE") == 0 && captured_log != NULL) {
            g_string_append(captured_log, fields[i].value);
            g_string_append_c(captured_log, '\n');
        }
    }
    if (level & (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_ERROR))
        return g_log_writer_default(level, fields, n_fields, user_data);
    return G_LOG_WRITER_HANDLED;
}

static void
setup(void)
{
    static bool writer_set;

    if (!writer_set) {
        g_log_set_writer_func(capture_writer, NULL, NULL);
        writer_set = true;
    }
    g_log_set_always_fatal(G_LOG_LEVEL_CRITICAL);
    captured_log = g_string_new(NULL);
    tmpdir = g_dir_make_tmp("sg-server-cert-XXXXXX", NULL);
    ck_assert_ptr_nonnull(tmpdir);
}

static void
teardown(void)
{
    g_autofree char *cmd = g_strdup_printf("rm -rf '%s'", tmpdir);

    ck_assert_int_eq(system(cmd), 0);
    g_clear_pointer(&tmpdir, g_free);
    g_string_free(captured_log, TRUE);
    captured_log = NULL;
}

/* ---- keys and certificates -------------------------------------------------- */

typedef enum { KIND_RSA, KIND_EC } KeyKind;

static EVP_PKEY *
make_key(KeyKind kind)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(kind == KIND_RSA ? EVP_PKEY_RSA : EVP_PKEY_EC, NULL);
    EVP_PKEY *key = NULL;

    ck_assert_ptr_nonnull(ctx);
    ck_assert_int_eq(EVP_PKEY_keygen_init(ctx), 1);
    if (kind == KIND_RSA)
        ck_assert_int_eq(EVP_PKEY_CTX_set_rsa_keygen_bits(ctx, 2048), 1);
    else
        ck_assert_int_eq(EVP_PKEY_CTX_set_ec_paramgen_curve_nid(ctx, NID_X9_62_prime256v1), 1);
    ck_assert_int_eq(EVP_PKEY_keygen(ctx, &key), 1);
    EVP_PKEY_CTX_free(ctx);
    return key;
}

/* A self-signed certificate for @key, valid from @from_s to @to_s seconds
 * from now. */
static X509 *
make_cert(EVP_PKEY *key, const char *cn, long from_s, long to_s)
{
    X509 *x = X509_new();
    X509_NAME *name;

    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), g_random_int_range(1, G_MAXINT32));
    X509_gmtime_adj(X509_getm_notBefore(x), from_s);
    X509_gmtime_adj(X509_getm_notAfter(x), to_s);
    name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509_set_pubkey(x, key);
    ck_assert_int_gt(X509_sign(x, key, EVP_sha256()), 0);
    return x;
}

static void
write_cert(const char *path, X509 *x)
{
    FILE *f = fopen(path, "w");

    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(PEM_write_X509(f, x), 1);
    fclose(f);
}

static void
write_key(const char *path, EVP_PKEY *key)
{
    FILE *f = fopen(path, "w");

    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
    fclose(f);
}

static char *
fingerprint(X509 *x)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    GString *hex = g_string_new(NULL);

    ck_assert_int_eq(X509_digest(x, EVP_sha256(), md, &len), 1);
    for (unsigned int i = 0; i < len; i++)
        g_string_append_printf(hex, "%02x", md[i]);
    return g_string_free(hex, FALSE);
}

/* One pair on disk and its fingerprint. */
typedef struct {
    EVP_PKEY *key;
    X509 *cert;
    char *fp;
} Pair;

static Pair
make_pair(KeyKind kind, const char *cn, long from_s, long to_s)
{
    Pair p;

    p.key = make_key(kind);
    p.cert = make_cert(p.key, cn, from_s, to_s);
    p.fp = fingerprint(p.cert);
    return p;
}

static void
pair_clear(Pair *p)
{
    EVP_PKEY_free(p->key);
    X509_free(p->cert);
    g_free(p->fp);
}

/* ---- the server, as lws makes it, and one handshake ------------------------ */

typedef struct {
    SgConfig *cfg;
    char *cert_path;
    char *key_path;
    SSL_CTX *server;
    SgServerCert *sc;
} Server;

static void
install(Server *s, const Pair *p)
{
    write_cert(s->cert_path, p->cert);
    write_key(s->key_path, p->key);
}

static void
server_start(Server *s, const Pair *first)
{
    s->cert_path = g_build_filename(tmpdir, "cert.pem", NULL);
    s->key_path = g_build_filename(tmpdir, "key.pem", NULL);
    install(s, first);
    s->cfg = sg_config_new_default();
    ck_assert(sg_config_set(s->cfg, "tls", "cert", s->cert_path, "--cert", NULL));
    ck_assert(sg_config_set(s->cfg, "tls", "key", s->key_path, "--key", NULL));
    /* What lws_tls_server_vhost_backend_init() and
     * lws_tls_server_certs_load() do with the files. */
    s->server = SSL_CTX_new(TLS_server_method());
    ck_assert_ptr_nonnull(s->server);
    ck_assert_int_eq(SSL_CTX_use_certificate_chain_file(s->server, s->cert_path), 1);
    ck_assert_int_eq(SSL_CTX_use_PrivateKey_file(s->server, s->key_path, SSL_FILETYPE_PEM), 1);
    s->sc = sg_server_cert_new(s->cfg);
    sg_server_cert_attach(s->sc, s->server);
}

static void
server_stop(Server *s)
{
    SSL_CTX_free(s->server);
    sg_server_cert_free(s->sc);
    sg_config_free(s->cfg);
    g_free(s->cert_path);
    g_free(s->key_path);
}

/* A full handshake of a new client with @s: the fingerprint of the
 * certificate it got, or NULL when the handshake failed. @max_version 0
 * for any; @ciphers NULL for the default TLS 1.2 list. */
static char *
handshake(Server *s, int max_version, const char *ciphers)
{
    SSL_CTX *cctx = SSL_CTX_new(TLS_client_method());
    SSL *client, *server;
    BIO *cbio, *sbio;
    bool c_done = false, s_done = false, failed = false;
    char *fp = NULL;

    ck_assert_ptr_nonnull(cctx);
    SSL_CTX_set_verify(cctx, SSL_VERIFY_NONE, NULL);
    if (max_version != 0)
        SSL_CTX_set_max_proto_version(cctx, max_version);
    if (ciphers != NULL)
        ck_assert_int_eq(SSL_CTX_set_cipher_list(cctx, ciphers), 1);
    client = SSL_new(cctx);
    server = SSL_new(s->server);
    ck_assert_int_eq(BIO_new_bio_pair(&cbio, 0, &sbio, 0), 1);
    SSL_set_bio(client, cbio, cbio);
    SSL_set_bio(server, sbio, sbio);
    SSL_set_connect_state(client);
    SSL_set_accept_state(server);
    for (int i = 0; i < 100 && !(c_done && s_done) && !failed; i++) {
        if (!c_done) {
            int r = SSL_do_handshake(client);

            if (r == 1)
                c_done = true;
            else if (SSL_get_error(client, r) != SSL_ERROR_WANT_READ)
                failed = true;
        }
        if (!s_done && !failed) {
            int r = SSL_do_handshake(server);

            if (r == 1)
                s_done = true;
            else if (SSL_get_error(server, r) != SSL_ERROR_WANT_READ)
                failed = true;
        }
    }
    if (c_done && s_done) {
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
        X509 *peer = SSL_get1_peer_certificate(client);
#else
        X509 *peer = SSL_get_peer_certificate(client);
#endif

        ck_assert_ptr_nonnull(peer);
        fp = fingerprint(peer);
        X509_free(peer);
    }
    ERR_clear_error();
    SSL_free(client);
    SSL_free(server);
    SSL_CTX_free(cctx);
    return fp;
}

static void
assert_served(Server *s, const char *fp)
{
    g_autofree char *any = handshake(s, 0, NULL);
    g_autofree char *tls12 = handshake(s, TLS1_2_VERSION, NULL);

    ck_assert_ptr_nonnull(any);
    ck_assert_str_eq(any, fp);
    ck_assert_ptr_nonnull(tls12);
    ck_assert_str_eq(tls12, fp);
}

static SgServerCertResult
reload(Server *s, char **summary)
{
    return sg_server_cert_reload(s->sc, summary);
}

/* ---- tests ------------------------------------------------------------------- */

/* RSA to ECDSA and back: each time new handshakes get the new pair, and a
 * TLS 1.2 client that accepts only the old key type gets nothing (OpenSSL
 * keeps one certificate per key type: the old one must not stay). */
START_TEST(test_key_type_switch)
{
    Pair rsa = make_pair(KIND_RSA, "rsa", -60, 86400);
    Pair ec = make_pair(KIND_EC, "ec", -60, 86400);
    Pair rsa2 = make_pair(KIND_RSA, "rsa2", -60, 86400);
    Server s = { 0 };
    g_autofree char *summary = NULL;
    g_autofree char *none = NULL;
    g_autofree char *none2 = NULL;
    g_autofree char *expected = NULL;

    server_start(&s, &rsa);
    assert_served(&s, rsa.fp);
    install(&s, &ec);
    ck_assert_int_eq(reload(&s, &summary), SG_SERVER_CERT_RELOADED);
    expected = g_strdup_printf("certificate reloaded (sha256 %s)", ec.fp);
    ck_assert_str_eq(summary, expected);
    ck_assert_ptr_nonnull(strstr(captured_log->str, "reload: TLS: new certificate for new "
                                                    "connections (sha256 "));
    ck_assert_ptr_nonnull(strstr(captured_log->str, "subject CN=ec, valid until "));
    assert_served(&s, ec.fp);
    none = handshake(&s, TLS1_2_VERSION, "ECDHE-RSA-AES128-GCM-SHA256");
    ck_assert_ptr_null(none);

    install(&s, &rsa2);
    g_clear_pointer(&summary, g_free);
    ck_assert_int_eq(reload(&s, &summary), SG_SERVER_CERT_RELOADED);
    assert_served(&s, rsa2.fp);
    none2 = handshake(&s, TLS1_2_VERSION, "ECDHE-ECDSA-AES128-GCM-SHA256");
    ck_assert_ptr_null(none2);
    server_stop(&s);
    pair_clear(&rsa);
    pair_clear(&ec);
    pair_clear(&rsa2);
}
END_TEST

/* A bad pair of each kind is refused, with its reason, and the pair in
 * use stays; a good one afterwards is taken. */
START_TEST(test_bad_pairs_kept)
{
    Pair first = make_pair(KIND_RSA, "first", -60, 86400);
    Pair second = make_pair(KIND_EC, "second", -60, 86400);
    Pair expired = make_pair(KIND_RSA, "expired", -86400, -3600);
    Pair early = make_pair(KIND_RSA, "early", 3600, 86400);
    Server s = { 0 };

    server_start(&s, &first);
    /* Every case leaves the files as the case says, then reloads. */
    for (int i = 0; i < 5; i++) {
        g_autofree char *summary = NULL;
        const char *why = NULL;

        switch (i) {
        case 0:                   /* another certificate's key */
            write_cert(s.cert_path, second.cert);
            write_key(s.key_path, first.key);
            why = "the private key does not match the certificate";
            break;
        case 1:                   /* half a certificate */
            ck_assert(g_file_set_contents(s.cert_path, "-----BEGIN CERTIFICATE-----\nMIIB",
                                          -1, NULL));
            write_key(s.key_path, second.key);
            why = "holds no PEM certificate";
            break;
        case 2:                   /* no key file */
            write_cert(s.cert_path, second.cert);
            ck_assert_int_eq(g_unlink(s.key_path), 0);
            why = "No such file or directory";
            break;
        case 3:
            install(&s, &expired);
            why = "expired on ";
            break;
        case 4:
            install(&s, &early);
            why = "is not valid before ";
            break;
        }
        ck_assert_int_eq(reload(&s, &summary), SG_SERVER_CERT_KEPT);
        ck_assert_msg(g_str_has_prefix(summary, "certificate kept, new one refused: "),
                      "%s", summary);
        ck_assert_msg(strstr(summary, why) != NULL, "case %d: %s", i, summary);
        ck_assert_msg(strstr(captured_log->str, "reload: TLS: certificate not reloaded, "
                                                "keeping the one in use (sha256 ") != NULL,
                      "%s", captured_log->str);
        assert_served(&s, first.fp);
    }
    {
        g_autofree char *summary = NULL;

        install(&s, &second);
        ck_assert_int_eq(reload(&s, &summary), SG_SERVER_CERT_RELOADED);
        assert_served(&s, second.fp);
    }
    server_stop(&s);
    pair_clear(&first);
    pair_clear(&second);
    pair_clear(&expired);
    pair_clear(&early);
}
END_TEST

/* The same files again: unchanged, still served. */
START_TEST(test_unchanged)
{
    Pair first = make_pair(KIND_EC, "first", -60, 86400);
    Server s = { 0 };
    g_autofree char *summary = NULL;
    g_autofree char *expected = g_strdup_printf("certificate unchanged (sha256 %s)", first.fp);

    server_start(&s, &first);
    ck_assert_int_eq(reload(&s, &summary), SG_SERVER_CERT_UNCHANGED);
    ck_assert_str_eq(summary, expected);
    assert_served(&s, first.fp);
    server_stop(&s);
    pair_clear(&first);
}
END_TEST

/* The master's check of the files, without a context. */
START_TEST(test_check_only)
{
    Pair first = make_pair(KIND_RSA, "first", -60, 86400);
    Pair other = make_pair(KIND_RSA, "other", -60, 86400);
    Server s = { 0 };
    g_autofree char *pass = NULL;
    g_autofree char *refused = NULL;
    g_autofree char *expected = g_strdup_printf("certificate files pass (sha256 %s)", first.fp);

    server_start(&s, &first);
    pass = sg_server_cert_check(s.cfg);
    ck_assert_str_eq(pass, expected);
    write_key(s.key_path, other.key);
    refused = sg_server_cert_check(s.cfg);
    ck_assert_msg(g_str_has_prefix(refused, "certificate files refused, the workers keep "
                                            "theirs: [tls] key "), "%s", refused);
    server_stop(&s);
    pair_clear(&first);
    pair_clear(&other);
}
END_TEST

static Suite *
server_cert_suite(void)
{
    Suite *s = suite_create("server_cert");
    TCase *tc = tcase_create("core");

    tcase_set_timeout(tc, 30);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_key_type_switch);
    tcase_add_test(tc, test_bad_pairs_kept);
    tcase_add_test(tc, test_unchanged);
    tcase_add_test(tc, test_check_only);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(server_cert_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
