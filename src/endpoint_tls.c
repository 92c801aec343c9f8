/* SPDX-License-Identifier: Apache-2.0 */
/* endpoint_tls.c - TLS toward a SPICE server (endpoint_tls.h).
 *
 * Owns: the client SSL_CTX (SgTlsClient); for an endpoint, the SgUpstream
 * it was given (socket, watch, and the SSL that upstream.c's handshake
 * made) and a zero-delay timer. OpenSSL reads whole records: after a read
 * that filled the relay's buffer, decrypted bytes may wait inside the SSL
 * object while the socket has nothing new, so epoll would never say so;
 * want(READABLE) then reports them itself, from that timer (an endpoint
 * never calls its owner from inside one of its own operations). Nothing
 * here logs a byte of the stream.
 */
#include "autoconfig.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>

#include <glib.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "endpoint_tls.h"
#include "event_core.h"
#include "upstream.h"

struct SgTlsClient {
    SSL_CTX *ctx;
    X509_NAME *subject;           /* [spice] host_subject, or NULL */
    char *subject_text;
};

/* --- spice-gtk's host-subject --------------------------------------------- */

/* spice-common's subject_to_x509_name() (ssl_verify.c), which spice-gtk
 * and remote-viewer use for host-subject: the same text means the same
 * name here. */
X509_NAME *
sg_tls_subject_parse(const char *subject, const char **reason)
{
    g_autofree char *key = g_malloc(strlen(subject) + 1);
    X509_NAME *name = X509_NAME_new();
    char *k = key, *val = NULL, *v = NULL;
    enum { KEY, VALUE } state = KEY;
    int entries = 0;

    for (const char *p = subject;; ++p) {
        bool escape = false;

        if (*p == '\\') {
            ++p;
            if (*p != '\\' && *p != ',') {
                *reason = "only \\\\ and \\, are escapes";
                goto fail;
            }
            escape = true;
        }
        if (state == KEY) {
            if (*p == ' ' && k == key)
                continue;         /* spaces before a key */
            if (*p == '\0') {
                if (k == key && entries > 0)
                    return name;
                *reason = entries == 0 ? "no KEY=VALUE entry" : "a KEY without =VALUE";
                goto fail;
            }
            if (*p == ',' && !escape) {
                *reason = "a KEY without =VALUE";
                goto fail;
            }
            if (*p == '=' && !escape) {
                state = VALUE;
                *k = '\0';
                val = v = k + 1;
            } else {
                *k++ = *p;
            }
            continue;
        }
        if (*p == '\0' || (*p == ',' && !escape)) {
            if (v == val) {
                *reason = "an empty VALUE";
                goto fail;
            }
            *v = '\0';
            if (!X509_NAME_add_entry_by_txt(name, key, MBSTRING_UTF8, (const unsigned char *)val,
                                            -1, -1, 0)) {
                ERR_clear_error();
                *reason = "a KEY that is not an X.509 attribute name (C, ST, L, O, OU, CN, ...)";
                goto fail;
            }
            entries++;
            if (*p == '\0')
                return name;
            state = KEY;
            k = key;
        } else {
            *v++ = *p;
        }
    }
fail:
    X509_NAME_free(name);
    return NULL;
}

bool
sg_tls_subject_valid(const char *subject, const char **reason)
{
    X509_NAME *name = sg_tls_subject_parse(subject, reason);

    X509_NAME_free(name);
    return name != NULL;
}

/* "C=IL, L=Raanana, O=Red Hat, CN=my server": host-subject's own form. */
static char *
name_to_text(const X509_NAME *name)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data = NULL;
    long len;
    char *text;

    X509_NAME_print_ex(bio, name, 0, XN_FLAG_SEP_CPLUS_SPC | ASN1_STRFLGS_RFC2253);
    len = BIO_get_mem_data(bio, &data);
    text = g_strndup(data, len > 0 ? (gsize)MIN(len, 512) : 0);
    BIO_free(bio);
    return text;
}

/* --- the client context ---------------------------------------------------- */

SgTlsClient *
sg_tls_client_new(const char *ca_file, const char *host_subject, SgTlsMinVersion min_version,
                  GError **error)
{
    g_autoptr(SgTlsClient) tls = g_new0(SgTlsClient, 1);
    const char *why = NULL;
    char err[256];
    long options = SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION;

#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF
    /* SPICE frames its messages: a missing close_notify truncates nothing
     * that matters, and spice-server omits it. */
    options |= SSL_OP_IGNORE_UNEXPECTED_EOF;
#endif
    tls->ctx = SSL_CTX_new(TLS_client_method());
    if (tls->ctx == NULL) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "cannot create a TLS context");
        return NULL;
    }
    ERR_clear_error();
    /* Only the operator's CAs: no default paths, so a public CA cannot
     * vouch for a compute host. */
    if (SSL_CTX_load_verify_locations(tls->ctx, ca_file, NULL) != 1) {
        ERR_error_string_n(ERR_get_error(), err, sizeof(err));
        ERR_clear_error();
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED,
                    "[spice] ca_file %s: cannot load CA certificates (%s)", ca_file, err);
        return NULL;
    }
    SSL_CTX_set_verify(tls->ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_min_proto_version(tls->ctx, min_version == SG_TLS_MIN_1_3 ? TLS1_3_VERSION
                                                                           : TLS1_2_VERSION);
    SSL_CTX_set_options(tls->ctx, options);
    /* Partial writes and a buffer that may move between retries: the
     * relay's write() contract (it re-offers what was not taken, from its
     * buffer). Released buffers: an idle console holds no 34 KiB of
     * OpenSSL's. */
    SSL_CTX_set_mode(tls->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                   SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                   SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_cache_mode(tls->ctx, SSL_SESS_CACHE_OFF);
    if (host_subject != NULL) {
        tls->subject = sg_tls_subject_parse(host_subject, &why);
        if (tls->subject == NULL) {
            g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "[spice] host_subject: %s", why);
            return NULL;
        }
        tls->subject_text = g_strdup(host_subject);
    }
    return g_steal_pointer(&tls);
}

void
sg_tls_client_free(SgTlsClient *tls)
{
    if (tls == NULL)
        return;
    SSL_CTX_free(tls->ctx);
    X509_NAME_free(tls->subject);
    g_free(tls->subject_text);
    g_free(tls);
}

/* --- the handshake ---------------------------------------------------------- */

SSL *
sg_tls_handshake_new(SgTlsClient *tls, int fd, const char *host)
{
    SSL *ssl = SSL_new(tls->ctx);
    g_autofree char *addr = g_strdup(host);
    char *zone = strchr(addr, '%');

    if (ssl == NULL)
        return NULL;
    SSL_set_fd(ssl, fd);
    SSL_set_connect_state(ssl);
    if (zone != NULL)
        *zone = '\0';             /* fe80::1%eth0: the address is fe80::1 */
    if (g_hostname_is_ip_address(addr)) {
        /* No SNI for an address (RFC 6066). */
        if (tls->subject == NULL)
            X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), addr);
    } else {
        SSL_set_tlsext_host_name(ssl, addr);
        if (tls->subject == NULL) {
            X509_VERIFY_PARAM_set_hostflags(SSL_get0_param(ssl),
                                            X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            X509_VERIFY_PARAM_set1_host(SSL_get0_param(ssl), addr, 0);
        }
    }
    return ssl;
}

/* spice-common's verify_subject(): as many entries, and X509_NAME_cmp()
 * equal. */
static bool
subject_matches(SgTlsClient *tls, SSL *ssl, char **reason)
{
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    X509 *cert = SSL_get1_peer_certificate(ssl);
#else
    X509 *cert = SSL_get_peer_certificate(ssl);
#endif
    const X509_NAME *name;
    bool ok;

    if (cert == NULL) {
        *reason = g_strdup("the SPICE server sent no certificate");
        return false;
    }
    name = X509_get_subject_name(cert);
    ok = X509_NAME_entry_count(name) == X509_NAME_entry_count(tls->subject) &&
         X509_NAME_cmp(name, tls->subject) == 0;
    if (!ok) {
        g_autofree char *got = name_to_text(name);

        *reason = g_strdup_printf("certificate subject \"%s\" is not [spice] host_subject \"%s\"",
                                  got, tls->subject_text);
    }
    X509_free(cert);
    return ok;
}

SgParseResult
sg_tls_handshake_step(SgTlsClient *tls, SSL *ssl, GIOCondition *interest, char **reason)
{
    int rc, err;
    long verify;
    unsigned long code;
    int saved_errno;

    ERR_clear_error();
    errno = 0;
    rc = SSL_do_handshake(ssl);
    saved_errno = errno;
    if (rc == 1) {
        if (tls->subject != NULL && !subject_matches(tls, ssl, reason))
            return SG_PARSE_INVALID;
        return SG_PARSE_OK;
    }
    err = SSL_get_error(ssl, rc);
    if (err == SSL_ERROR_WANT_READ) {
        *interest = G_IO_IN;
        return SG_PARSE_AGAIN;
    }
    if (err == SSL_ERROR_WANT_WRITE) {
        *interest = G_IO_OUT;
        return SG_PARSE_AGAIN;
    }
    verify = SSL_get_verify_result(ssl);
    code = ERR_peek_last_error();
    if (verify != X509_V_OK) {
        *reason = g_strdup_printf("certificate verification failed: %s",
                                  X509_verify_cert_error_string(verify));
    } else if (code != 0) {
        const char *lib_reason = ERR_reason_error_string(code);

        *reason = g_strdup_printf("TLS handshake failed: %s%s",
                                  lib_reason != NULL ? lib_reason : "error",
                                  ERR_GET_REASON(code) == SSL_R_WRONG_VERSION_NUMBER ||
                                          ERR_GET_REASON(code) == SSL_R_PACKET_LENGTH_TOO_LONG
                                      ? " (is this the SPICE server's TLS port?)"
                                      : "");
    } else if (err == SSL_ERROR_SYSCALL && saved_errno != 0) {
        *reason = g_strdup_printf("TLS handshake failed: %s", g_strerror(saved_errno));
    } else {
        *reason = g_strdup("TLS handshake failed: the SPICE server closed the connection "
                           "(is this its TLS port?)");
    }
    ERR_clear_error();
    return SG_PARSE_INVALID;
}

char *
sg_tls_describe(SSL *ssl)
{
    return g_strdup_printf("%s %s", SSL_get_version(ssl),
                           SSL_CIPHER_get_name(SSL_get_current_cipher(ssl)));
}

/* --- the endpoint ------------------------------------------------------------ */

typedef struct {
    SgEndpoint ep;
    SgUpstream *up;
    SSL *ssl;
    SgEndpointReady wanted;
    bool read_wants_write;        /* the last SSL_read needs the socket writable */
    bool write_wants_read;        /* the last SSL_write needs it readable */
    bool shut;                    /* close() ran */
    SgTimer *report_pending;      /* decrypted bytes wait in the SSL object */
} SgTlsEndpoint;

static gboolean
on_report_pending(gpointer data)
{
    SgTlsEndpoint *tls = data;

    tls->report_pending = NULL;
    if (tls->wanted & SG_ENDPOINT_READABLE)
        sg_endpoint_report(&tls->ep, SG_ENDPOINT_READABLE);   /* may free @tls */
    return G_SOURCE_REMOVE;
}

static void
on_upstream_io(SgUpstream *up, GIOCondition ready, gpointer data)
{
    SgTlsEndpoint *tls = data;
    SgEndpointReady r = 0;

    (void)up;
    /* Hang-ups and errors count as readable: the next read() says what
     * happened. Each direction's progress may hang on the other's
     * readiness (a key update, an alert to send). */
    if (ready & (G_IO_HUP | G_IO_ERR))
        r |= SG_ENDPOINT_READABLE;
    if (ready & G_IO_IN) {
        r |= SG_ENDPOINT_READABLE;
        if (tls->write_wants_read)
            r |= SG_ENDPOINT_WRITABLE;
    }
    if (ready & G_IO_OUT) {
        r |= SG_ENDPOINT_WRITABLE;
        if (tls->read_wants_write)
            r |= SG_ENDPOINT_READABLE;
    }
    r &= tls->wanted | ((ready & (G_IO_HUP | G_IO_ERR)) ? SG_ENDPOINT_READABLE : 0);
    if (r != 0)
        sg_endpoint_report(&tls->ep, r);   /* may free @tls */
}

/* After a failed SSL call: errno for the relay, ep->error for its log. */
static gssize
io_failed(SgTlsEndpoint *tls, int err, int saved_errno, const char *what)
{
    if (err == SSL_ERROR_SYSCALL && saved_errno != 0) {
        errno = saved_errno;
    } else {
        tls->ep.error = what;
        errno = EPROTO;
    }
    ERR_clear_error();
    return -1;
}

static gssize
tls_read(SgEndpoint *ep, guint8 *dst, gsize len)
{
    SgTlsEndpoint *tls = (SgTlsEndpoint *)ep;
    gsize got = 0;

    tls->read_wants_write = false;
    /* Until the socket runs dry or @dst is full: one call per wakeup, not
     * one per 16 KiB record. */
    while (got < len) {
        size_t n = 0;
        int rc, err, saved_errno;

        ERR_clear_error();
        errno = 0;
        rc = SSL_read_ex(tls->ssl, dst + got, len - got, &n);
        saved_errno = errno;
        if (rc == 1) {
            got += n;
            continue;
        }
        err = SSL_get_error(tls->ssl, rc);
        if (got > 0 && err != SSL_ERROR_WANT_WRITE)
            break;                /* the end or the error comes with the next read */
        switch (err) {
        case SSL_ERROR_WANT_WRITE:
            tls->read_wants_write = true;
            /* fall through */
        case SSL_ERROR_WANT_READ:
            if (got > 0)
                return (gssize)got;
            errno = EAGAIN;
            return -1;
        case SSL_ERROR_ZERO_RETURN:
            return 0;             /* close_notify */
        case SSL_ERROR_SYSCALL:
            if (saved_errno == 0 && ERR_peek_error() == 0)
                return 0;         /* the end without close_notify */
            return io_failed(tls, err, saved_errno, "TLS read failed");
        default:
            return io_failed(tls, err, saved_errno, "TLS read failed");
        }
    }
    return (gssize)got;
}

static gssize
tls_write(SgEndpoint *ep, guint8 *bytes, gsize len)
{
    SgTlsEndpoint *tls = (SgTlsEndpoint *)ep;
    gsize done = 0;

    tls->write_wants_read = false;
    /* One record per SSL_write_ex (partial writes): on until the socket
     * is full. What was not taken comes back, from the same bytes, as
     * OpenSSL requires of a retry. */
    while (done < len) {
        size_t n = 0;
        int rc, err, saved_errno;

        ERR_clear_error();
        errno = 0;
        rc = SSL_write_ex(tls->ssl, bytes + done, len - done, &n);
        saved_errno = errno;
        if (rc == 1) {
            done += n;
            continue;
        }
        err = SSL_get_error(tls->ssl, rc);
        if (err == SSL_ERROR_WANT_READ)
            tls->write_wants_read = true;
        if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE)
            break;
        if (done > 0)
            break;                /* the error comes with the next write */
        if (err == SSL_ERROR_ZERO_RETURN)
            return io_failed(tls, err, EPIPE, "TLS connection closed");
        return io_failed(tls, err, saved_errno != 0 ? saved_errno : 0, "TLS write failed");
    }
    return (gssize)done;
}

static void
tls_want(SgEndpoint *ep, SgEndpointReady wanted)
{
    SgTlsEndpoint *tls = (SgTlsEndpoint *)ep;
    GIOCondition c = 0;

    tls->wanted = wanted;
    if (wanted & SG_ENDPOINT_READABLE)
        c |= tls->read_wants_write ? G_IO_OUT : G_IO_IN;
    if (wanted & SG_ENDPOINT_WRITABLE)
        c |= tls->write_wants_read ? G_IO_IN : G_IO_OUT;
    sg_upstream_set_interest(tls->up, c);
    /* Decrypted bytes no epoll will announce. SSL_pending(), not
     * SSL_has_pending(): half a record is not readable yet, and the rest
     * of it arriving wakes epoll. */
    if ((wanted & SG_ENDPOINT_READABLE) && tls->report_pending == NULL &&
        SSL_pending(tls->ssl) > 0)
        tls->report_pending = sg_timer_add(0, on_report_pending, tls);
}

static void
tls_close(SgEndpoint *ep, guint16 code, const char *reason)
{
    SgTlsEndpoint *tls = (SgTlsEndpoint *)ep;

    (void)code;
    (void)reason;
    if (!tls->shut) {
        tls->shut = true;
        /* close_notify, if the socket takes it now; never waited for. */
        ERR_clear_error();
        SSL_shutdown(tls->ssl);
        ERR_clear_error();
    }
    shutdown(sg_upstream_get_fd(tls->up), SHUT_RDWR);
}

static void
tls_abort(SgEndpoint *ep)
{
    SgTlsEndpoint *tls = (SgTlsEndpoint *)ep;

    tls->shut = true;
    shutdown(sg_upstream_get_fd(tls->up), SHUT_RDWR);
}

static const char *
tls_peer(SgEndpoint *ep)
{
    return sg_upstream_get_peer(((SgTlsEndpoint *)ep)->up);
}

static void
tls_free(SgEndpoint *ep)
{
    SgTlsEndpoint *tls = (SgTlsEndpoint *)ep;

    g_clear_pointer(&tls->report_pending, sg_timer_remove);
    g_clear_pointer(&tls->up, sg_upstream_free);   /* the SSL, the watch, the socket */
    g_free(tls);
}

static const SgEndpointOps tls_ops = {
    .name = "tls",
    .read = tls_read,
    .write = tls_write,
    .want = tls_want,
    .close = tls_close,
    .abort = tls_abort,
    .peer = tls_peer,
    .free = tls_free,
};

SgEndpoint *
sg_endpoint_tls_new(SgUpstream *up)
{
    SgTlsEndpoint *tls;

    g_return_val_if_fail(sg_upstream_get_ssl(up) != NULL, NULL);
    tls = g_new0(SgTlsEndpoint, 1);
    tls->ep.ops = &tls_ops;
    tls->up = up;
    tls->ssl = sg_upstream_get_ssl(up);
    sg_upstream_set_io_func(up, on_upstream_io, tls);
    return &tls->ep;
}
