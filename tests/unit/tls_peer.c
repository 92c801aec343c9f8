/* SPDX-License-Identifier: Apache-2.0 */
/* tls_peer.c - the TLS echo peer of the unit tests; see tls_peer.h. Not a
 * SPICE server: it does what the test tells it, over TLS. */
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <check.h>
#include <glib.h>
#include <glib/gstdio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "endpoint_tls.h"
#include "fake_spice.h"
#include "tls_peer.h"

struct TlsPeer {
    SSL_CTX *ctx;
    int listen_fd;
    guint16 port;
    char *dir;
    char *ca_file;
    GThread *thread;
    GMutex lock;
    bool stop;
    int conn_fd;                  /* the connection being served, or -1 */
    guint64 flood;
    bool sink;
    bool paused;                  /* not reading */
    GCond resume;
    guint handshakes;
    guint failed;
    GByteArray *received;
    guint64 sent;
};

static long serial = 1;

static void
add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
    X509V3_CTX ctx;
    X509_EXTENSION *ext;

    X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
    ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
    ck_assert_ptr_nonnull(ext);
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
}

/* A certificate for @key with @subject (spice-gtk syntax), signed by
 * @issuer_key (self-signed when @issuer is NULL), valid from @from_s to
 * @to_s seconds from now. */
static X509 *
make_cert(EVP_PKEY *key, const char *subject, X509 *issuer, EVP_PKEY *issuer_key, long from_s,
          long to_s, const char *san)
{
    X509 *cert = X509_new();
    const char *why = NULL;
    X509_NAME *name = sg_tls_subject_parse(subject, &why);

    ck_assert_msg(name != NULL, "%s", why);
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), serial++);
    X509_gmtime_adj(X509_getm_notBefore(cert), from_s);
    X509_gmtime_adj(X509_getm_notAfter(cert), to_s);
    X509_set_pubkey(cert, key);
    X509_set_subject_name(cert, name);
    X509_set_issuer_name(cert, issuer != NULL ? X509_get_subject_name(issuer) : name);
    X509_NAME_free(name);
    if (issuer == NULL) {
        add_ext(cert, cert, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add_ext(cert, issuer, NID_basic_constraints, "critical,CA:FALSE");
        add_ext(cert, issuer, NID_key_usage, "critical,digitalSignature,keyEncipherment");
        add_ext(cert, issuer, NID_ext_key_usage, "serverAuth");
        add_ext(cert, issuer, NID_subject_alt_name, san);
    }
    ck_assert_int_gt(X509_sign(cert, issuer != NULL ? issuer_key : key, EVP_sha256()), 0);
    return cert;
}

/* The test's loop waits on conditions about what this thread does: each
 * change wakes it. */
static void
unlock_wake(TlsPeer *p)
{
    g_mutex_unlock(&p->lock);
    g_main_context_wakeup(NULL);
}

static gpointer
serve(gpointer data)
{
    TlsPeer *p = data;

    for (;;) {
        int fd = accept(p->listen_fd, NULL, NULL);
        SSL *ssl;
        guint8 buf[16384];
        bool first = true;

        g_mutex_lock(&p->lock);
        if (p->stop || fd < 0) {
            unlock_wake(p);
            if (fd >= 0)
                close(fd);
            if (p->stop)
                return NULL;
            continue;
        }
        p->conn_fd = fd;
        g_byte_array_set_size(p->received, 0);
        p->sent = 0;
        unlock_wake(p);

        ssl = SSL_new(p->ctx);
        SSL_set_fd(ssl, fd);
        if (SSL_accept(ssl) != 1) {
            g_mutex_lock(&p->lock);
            p->failed++;
            unlock_wake(p);
        } else {
            g_mutex_lock(&p->lock);
            p->handshakes++;
            unlock_wake(p);
            for (;;) {
                int n;

                g_mutex_lock(&p->lock);
                while (p->paused && !p->stop)
                    g_cond_wait(&p->resume, &p->lock);
                g_mutex_unlock(&p->lock);
                n = SSL_read(ssl, buf, sizeof(buf));

                if (n <= 0)
                    break;
                g_mutex_lock(&p->lock);
                g_byte_array_append(p->received, buf, (guint)n);
                unlock_wake(p);
                if (p->flood > 0 && first) {
                    for (guint64 off = 0; off < p->flood;) {
                        int len = (int)MIN(p->flood - off, sizeof(buf));

                        for (int i = 0; i < len; i++)
                            buf[i] = fsp_pattern(off + (guint64)i);
                        if (SSL_write(ssl, buf, len) != len)
                            break;
                        off += (guint64)len;
                        g_mutex_lock(&p->lock);
                        p->sent = off;
                        unlock_wake(p);
                    }
                } else if (p->flood == 0 && !p->sink) {
                    if (SSL_write(ssl, buf, n) != n)
                        break;
                    g_mutex_lock(&p->lock);
                    p->sent += (guint64)n;
                    unlock_wake(p);
                }
                first = false;
            }
            SSL_shutdown(ssl);
        }
        SSL_free(ssl);
        ERR_clear_error();
        g_mutex_lock(&p->lock);
        p->conn_fd = -1;
        unlock_wake(p);
        close(fd);
    }
}

static void
write_pem(const char *path, X509 *cert)
{
    FILE *f = fopen(path, "w");

    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(PEM_write_X509(f, cert), 1);
    fclose(f);
}

TlsPeer *
tlsp_new(TlspKind kind)
{
    TlsPeer *p = g_new0(TlsPeer, 1);
    g_autoptr(GError) error = NULL;
    EVP_PKEY *ca_key = EVP_EC_gen("P-256");
    EVP_PKEY *other_ca_key = EVP_EC_gen("P-256");
    EVP_PKEY *key = EVP_EC_gen("P-256");
    X509 *ca = make_cert(ca_key, "C=XX, O=spicegate tests, CN=test CA", NULL, NULL, -3600,
                         86400, NULL);
    X509 *other_ca = make_cert(other_ca_key, "C=XX, O=spicegate tests, CN=test CA", NULL,
                               NULL, -3600, 86400, NULL);
    X509 *cert;
    struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(addr);

    switch (kind) {
    case TLSP_OTHER_CA:
        cert = make_cert(key, TLSP_SUBJECT, other_ca, other_ca_key, -3600, 86400,
                         "IP:127.0.0.1");
        break;
    case TLSP_EXPIRED:
        cert = make_cert(key, TLSP_SUBJECT, ca, ca_key, -7200, -3600, "IP:127.0.0.1");
        break;
    case TLSP_OTHER_HOST:
        cert = make_cert(key, TLSP_SUBJECT, ca, ca_key, -3600, 86400,
                         "IP:127.0.0.2, DNS:other.example");
        break;
    case TLSP_GOOD:
    case TLSP_TLS12_ONLY:
    default:
        cert = make_cert(key, TLSP_SUBJECT, ca, ca_key, -3600, 86400, "IP:127.0.0.1");
        break;
    }
    p->dir = g_dir_make_tmp("sg-tls-XXXXXX", &error);
    ck_assert_msg(p->dir != NULL, "%s", error ? error->message : "");
    p->ca_file = g_build_filename(p->dir, "ca-cert.pem", NULL);
    write_pem(p->ca_file, ca);

    p->ctx = SSL_CTX_new(TLS_server_method());
    ck_assert_int_eq(SSL_CTX_use_certificate(p->ctx, cert), 1);
    ck_assert_int_eq(SSL_CTX_use_PrivateKey(p->ctx, key), 1);
    if (kind == TLSP_TLS12_ONLY)
        SSL_CTX_set_max_proto_version(p->ctx, TLS1_2_VERSION);
    X509_free(cert);
    X509_free(ca);
    X509_free(other_ca);
    EVP_PKEY_free(key);
    EVP_PKEY_free(ca_key);
    EVP_PKEY_free(other_ca_key);

    p->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ck_assert_int_ge(p->listen_fd, 0);
    ck_assert_int_eq(bind(p->listen_fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    ck_assert_int_eq(listen(p->listen_fd, 16), 0);
    ck_assert_int_eq(getsockname(p->listen_fd, (struct sockaddr *)&addr, &len), 0);
    p->port = ntohs(addr.sin_port);
    p->conn_fd = -1;
    p->received = g_byte_array_new();
    g_mutex_init(&p->lock);
    g_cond_init(&p->resume);
    p->thread = g_thread_new("tls-peer", serve, p);
    return p;
}

void
tlsp_free(TlsPeer *p)
{
    if (p == NULL)
        return;
    g_mutex_lock(&p->lock);
    p->stop = true;
    g_cond_broadcast(&p->resume);
    if (p->conn_fd >= 0)
        shutdown(p->conn_fd, SHUT_RDWR);
    g_mutex_unlock(&p->lock);
    shutdown(p->listen_fd, SHUT_RDWR);   /* wakes accept() */
    g_thread_join(p->thread);
    close(p->listen_fd);
    SSL_CTX_free(p->ctx);
    g_unlink(p->ca_file);
    g_rmdir(p->dir);
    g_free(p->ca_file);
    g_free(p->dir);
    g_byte_array_unref(p->received);
    g_mutex_clear(&p->lock);
    g_cond_clear(&p->resume);
    g_free(p);
}

guint16
tlsp_port(const TlsPeer *p)
{
    return p->port;
}

const char *
tlsp_ca_file(const TlsPeer *p)
{
    return p->ca_file;
}

void
tlsp_set_flood(TlsPeer *p, guint64 bytes)
{
    g_mutex_lock(&p->lock);
    p->flood = bytes;
    g_mutex_unlock(&p->lock);
}

void
tlsp_set_sink(TlsPeer *p, bool sink)
{
    g_mutex_lock(&p->lock);
    p->sink = sink;
    g_mutex_unlock(&p->lock);
}

void
tlsp_set_reading(TlsPeer *p, bool reading)
{
    g_mutex_lock(&p->lock);
    p->paused = !reading;
    g_cond_broadcast(&p->resume);
    g_mutex_unlock(&p->lock);
}

guint
tlsp_n_handshakes(TlsPeer *p)
{
    guint n;

    g_mutex_lock(&p->lock);
    n = p->handshakes;
    g_mutex_unlock(&p->lock);
    return n;
}

guint
tlsp_n_failed(TlsPeer *p)
{
    guint n;

    g_mutex_lock(&p->lock);
    n = p->failed;
    g_mutex_unlock(&p->lock);
    return n;
}

GByteArray *
tlsp_received(TlsPeer *p)
{
    GByteArray *copy = g_byte_array_new();

    g_mutex_lock(&p->lock);
    g_byte_array_append(copy, p->received->data, p->received->len);
    g_mutex_unlock(&p->lock);
    return copy;
}

guint64
tlsp_sent(TlsPeer *p)
{
    guint64 n;

    g_mutex_lock(&p->lock);
    n = p->sent;
    g_mutex_unlock(&p->lock);
    return n;
}
