/* SPDX-License-Identifier: Apache-2.0 */
/* ws_client.c - the unit tests' HTTP/1.1 and websocket client; see
 * ws_client.h. It plays a browser against spicegate on loopback. */
#define _GNU_SOURCE 1             /* memmem() */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <check.h>
#include <glib-unix.h>
#include <glib.h>

#include "run_until.h"
#include "ws_client.h"

#define WSC_READ_CHUNK (256 * 1024)
#define WSC_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

struct WsClient {
    int fd;
    guint source_id;
    GIOCondition watching;
    bool paused;
    bool want_shutdown;
    bool shut;
    GByteArray *in;               /* bytes not parsed yet */
    GByteArray *out;
    gsize out_off;
    bool blocked;
    char *key;                    /* Sec-WebSocket-Key sent, or NULL (plain HTTP) */
    /* the answer */
    int status;
    GHashTable *headers;          /* lowercased name -> value */
    bool upgraded;
    GByteArray *body;
    gssize content_length;        /* -1: not announced */
    /* frames */
    GByteArray *received;
    guint64 received_total;
    GByteArray *text;             /* the text message being collected */
    guint8 msg_opcode;            /* of the fragmented message in progress */
    guint n_binary;
    guint n_text;
    bool got_close;
    guint16 close_code;
    char *close_reason;
    bool eof;
    char *protocol_error;
    guint n_pings;                /* pings from the server */
    bool mute_pongs;              /* not answered */
};

static gboolean on_io(gint fd, GIOCondition cond, gpointer data);

static void
rewatch(WsClient *c)
{
    GIOCondition want = 0;

    if (c->fd < 0)
        return;
    if (!c->paused && !c->eof)
        want |= G_IO_IN;
    if (c->out->len > c->out_off || (c->want_shutdown && !c->shut))
        want |= G_IO_OUT;
    if (want == c->watching && c->source_id != 0)
        return;
    g_clear_handle_id(&c->source_id, g_source_remove);
    c->watching = want;
    if (want != 0)
        c->source_id = g_unix_fd_add(c->fd, want, on_io, c);
}

static int
open_socket(guint16 port, int rcvbuf, int sndbuf, const char *source)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons(port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;

    ck_assert_int_ge(fd, 0);
    if (rcvbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    if (sndbuf > 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (source != NULL) {
        /* Another client address: every 127.x.y.z is this host's. */
        struct sockaddr_in from = { .sin_family = AF_INET };

        ck_assert_int_eq(inet_pton(AF_INET, source, &from.sin_addr), 1);
        ck_assert_msg(bind(fd, (struct sockaddr *)&from, sizeof(from)) == 0, "bind %s: %s",
                      source, g_strerror(errno));
    }
    /* On loopback the handshake completes in the kernel (the listening
     * socket's backlog) without the server's loop turning. */
    ck_assert_msg(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect: %s",
                  g_strerror(errno));
    g_unix_set_fd_nonblocking(fd, TRUE, NULL);
    return fd;
}

static WsClient *
client_new(guint16 port, int rcvbuf, int sndbuf, const char *source)
{
    WsClient *c = g_new0(WsClient, 1);

    c->fd = open_socket(port, rcvbuf, sndbuf, source);
    c->in = g_byte_array_new();
    c->out = g_byte_array_new();
    c->body = g_byte_array_new();
    c->received = g_byte_array_new();
    c->text = g_byte_array_new();
    c->headers = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    c->content_length = -1;
    rewatch(c);
    return c;
}

WsClient *
wsc_connect_raw(guint16 port)
{
    return client_new(port, 0, 0, NULL);
}

WsClient *
wsc_http(guint16 port, const char *request)
{
    WsClient *c = client_new(port, 0, 0, NULL);

    wsc_send_raw(c, request, strlen(request));
    return c;
}

WsClient *
wsc_connect(guint16 port, const WsOptions *opt)
{
    WsClient *c = client_new(port, opt ? opt->rcvbuf : 0, opt ? opt->sndbuf : 0,
                             opt ? opt->source : NULL);

    wsc_send_upgrade(c, port, opt);
    return c;
}

void
wsc_send_upgrade(WsClient *c, guint16 port, const WsOptions *opt)
{
    static const WsOptions none = { 0 };
    guint8 nonce[16];
    g_autoptr(GString) req = g_string_new(NULL);

    if (opt == NULL)
        opt = &none;
    g_free(c->key);
    for (guint i = 0; i < sizeof(nonce); i++)
        nonce[i] = (guint8)g_random_int_range(0, 256);
    c->key = g_base64_encode(nonce, sizeof(nonce));
    g_string_append_printf(req, "GET %s HTTP/1.1\r\n", opt->path ? opt->path : "/");
    if (opt->host != NULL)
        g_string_append_printf(req, "Host: %s\r\n", opt->host);
    else
        g_string_append_printf(req, "Host: 127.0.0.1:%u\r\n", port);
    g_string_append(req, "Upgrade: websocket\r\nConnection: Upgrade\r\n");
    g_string_append_printf(req, "Sec-WebSocket-Key: %s\r\n", c->key);
    g_string_append_printf(req, "Sec-WebSocket-Version: %s\r\n",
                           opt->version ? opt->version : "13");
    if (opt->protocol == NULL)
        g_string_append(req, "Sec-WebSocket-Protocol: binary\r\n");
    else if (opt->protocol[0] != '\0')
        g_string_append_printf(req, "Sec-WebSocket-Protocol: %s\r\n", opt->protocol);
    if (opt->origin != NULL)
        g_string_append_printf(req, "Origin: %s\r\n", opt->origin);
    if (opt->cookie != NULL)
        g_string_append_printf(req, "Cookie: %s\r\n", opt->cookie);
    if (opt->extra_headers != NULL)
        g_string_append(req, opt->extra_headers);
    g_string_append(req, "\r\n");
    wsc_send_raw(c, req->str, req->len);
}

void
wsc_next_answer(WsClient *c)
{
    ck_assert(!c->upgraded);
    c->status = 0;
    c->content_length = -1;
    g_hash_table_remove_all(c->headers);
    g_byte_array_set_size(c->body, 0);
    /* Bytes past the answer's body already belong to the next one. */
}

void
wsc_free(WsClient *c)
{
    if (c == NULL)
        return;
    g_clear_handle_id(&c->source_id, g_source_remove);
    if (c->fd >= 0)
        close(c->fd);
    g_byte_array_unref(c->in);
    g_byte_array_unref(c->out);
    g_byte_array_unref(c->body);
    g_byte_array_unref(c->received);
    g_byte_array_unref(c->text);
    g_hash_table_unref(c->headers);
    g_free(c->key);
    g_free(c->close_reason);
    g_free(c->protocol_error);
    g_free(c);
}

/* --- parsing ------------------------------------------------------------- */

static void
protocol_error(WsClient *c, const char *why)
{
    if (c->protocol_error == NULL)
        c->protocol_error = g_strdup(why);
}

static char *
expected_accept(const char *key)
{
    g_autofree char *cat = g_strconcat(key, WSC_GUID, NULL);
    guint8 digest[20];
    gsize dlen = sizeof(digest);
    g_autoptr(GChecksum) sum = g_checksum_new(G_CHECKSUM_SHA1);

    g_checksum_update(sum, (const guchar *)cat, (gssize)strlen(cat));
    g_checksum_get_digest(sum, digest, &dlen);
    return g_base64_encode(digest, dlen);
}

/* The head of the answer, once whole; returns false while incomplete. */
static bool
parse_head(WsClient *c)
{
    const guint8 *end = memmem(c->in->data, c->in->len, "\r\n\r\n", 4);
    g_auto(GStrv) lines = NULL;
    gsize head_len;
    const char *cl;

    if (end == NULL)
        return false;
    head_len = (gsize)(end - c->in->data) + 4;
    {
        g_autofree char *head = g_strndup((const char *)c->in->data, head_len - 4);

        lines = g_strsplit(head, "\r\n", -1);
    }
    ck_assert_msg(g_str_has_prefix(lines[0], "HTTP/1.1 ") || g_str_has_prefix(lines[0], "HTTP/1.0 "),
                  "odd status line: %s", lines[0]);
    c->status = atoi(lines[0] + strlen("HTTP/1.1 "));
    for (guint i = 1; lines[i] != NULL; i++) {
        char *colon = strchr(lines[i], ':');

        if (colon == NULL)
            continue;
        *colon = '\0';
        g_hash_table_replace(c->headers, g_ascii_strdown(g_strstrip(lines[i]), -1),
                             g_strdup(g_strstrip(colon + 1)));
    }
    cl = g_hash_table_lookup(c->headers, "content-length");
    if (cl != NULL)
        c->content_length = (gssize)g_ascii_strtoll(cl, NULL, 10);
    g_byte_array_remove_range(c->in, 0, (guint)head_len);
    if (c->status == 101 && c->key != NULL) {
        g_autofree char *want = expected_accept(c->key);
        const char *got = g_hash_table_lookup(c->headers, "sec-websocket-accept");

        ck_assert_msg(got != NULL && g_str_equal(got, want), "bad Sec-WebSocket-Accept");
        c->upgraded = true;
    }
    return true;
}

static void
on_message_end(WsClient *c, guint8 opcode)
{
    if (opcode == 0x2)
        c->n_binary++;
    else if (opcode == 0x1) {
        c->n_text++;
        g_byte_array_set_size(c->text, 0);
    }
}

/* Parses as many whole frames as c->in holds. */
static void
parse_frames(WsClient *c)
{
    gsize off = 0;

    while (c->in->len - off >= 2 && c->protocol_error == NULL) {
        const guint8 *p = c->in->data + off;
        gsize avail = c->in->len - off;
        bool fin = (p[0] & 0x80) != 0;
        guint8 opcode = p[0] & 0x0f;
        guint64 plen = p[1] & 0x7f;
        gsize hlen = 2;

        if ((p[0] & 0x70) != 0) {
            protocol_error(c, "reserved bits set");
            break;
        }
        if ((p[1] & 0x80) != 0) {
            protocol_error(c, "a masked frame from the server");
            break;
        }
        if (plen == 126) {
            if (avail < 4)
                break;
            plen = ((guint64)p[2] << 8) | p[3];
            hlen = 4;
        } else if (plen == 127) {
            if (avail < 10)
                break;
            plen = 0;
            for (int i = 0; i < 8; i++)
                plen = (plen << 8) | p[2 + i];
            hlen = 10;
        }
        if (avail < hlen + plen)
            break;
        p += hlen;
        switch (opcode) {
        case 0x0:
            if (c->msg_opcode == 0x2) {
                g_byte_array_append(c->received, p, (guint)plen);
                c->received_total += plen;
            } else if (c->msg_opcode == 0x1) {
                g_byte_array_append(c->text, p, (guint)plen);
            } else {
                protocol_error(c, "a continuation with no message");
            }
            if (fin) {
                on_message_end(c, c->msg_opcode);
                c->msg_opcode = 0;
            }
            break;
        case 0x1:
        case 0x2:
            if (opcode == 0x2) {
                g_byte_array_append(c->received, p, (guint)plen);
                c->received_total += plen;
            } else {
                g_byte_array_append(c->text, p, (guint)plen);
            }
            if (fin)
                on_message_end(c, opcode);
            else
                c->msg_opcode = opcode;
            break;
        case 0x8:
            if (!c->got_close) {
                c->got_close = true;
                c->close_code = plen >= 2 ? (guint16)((p[0] << 8) | p[1]) : 1005;
                c->close_reason = plen > 2 ? g_strndup((const char *)p + 2, plen - 2)
                                           : g_strdup("");
            }
            break;
        case 0x9:
            c->n_pings++;
            if (!c->mute_pongs)
                wsc_send_frame(c, 0xa, true, p, plen);
            break;
        case 0xa:
            break;
        default:
            protocol_error(c, "an unknown opcode");
            break;
        }
        off += hlen + plen;
    }
    g_byte_array_remove_range(c->in, 0, (guint)off);
}

static void
take_input(WsClient *c)
{
    if (c->status == 0 && !parse_head(c))
        return;
    if (c->upgraded) {
        parse_frames(c);
        return;
    }
    g_byte_array_append(c->body, c->in->data, c->in->len);
    g_byte_array_set_size(c->in, 0);
}

/* --- I/O ---------------------------------------------------------------- */

static void
flush_out(WsClient *c)
{
    while (c->out->len > c->out_off) {
        ssize_t n = send(c->fd, c->out->data + c->out_off, c->out->len - c->out_off,
                         MSG_NOSIGNAL);

        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                c->blocked = true;
                return;
            }
            if (errno == EINTR)
                continue;
            /* The server is gone: what is queued is lost; reading says how. */
            c->out_off = c->out->len;
            break;
        }
        c->out_off += (gsize)n;
    }
    c->blocked = false;
    g_byte_array_set_size(c->out, 0);
    c->out_off = 0;
    if (c->want_shutdown && !c->shut) {
        shutdown(c->fd, SHUT_WR);
        c->shut = true;
    }
}

static void
read_in(WsClient *c)
{
    guint8 *buf = g_malloc(WSC_READ_CHUNK);

    for (int rounds = 0; rounds < 16 && !c->paused && !c->eof; rounds++) {
        ssize_t n = recv(c->fd, buf, WSC_READ_CHUNK, 0);

        if (n > 0) {
            g_byte_array_append(c->in, buf, (guint)n);
            take_input(c);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n < 0 && errno == EINTR)
            continue;
        c->eof = true;            /* EOF, or a reset */
    }
    g_free(buf);
}

static gboolean
on_io(gint fd, GIOCondition cond, gpointer data)
{
    WsClient *c = data;

    (void)fd;
    if (cond & G_IO_OUT)
        flush_out(c);
    if (cond & (G_IO_IN | G_IO_HUP | G_IO_ERR))
        read_in(c);
    c->source_id = 0;
    c->watching = 0;
    rewatch(c);
    return G_SOURCE_REMOVE;
}

void
wsc_send_raw(WsClient *c, const void *data, gsize len)
{
    g_byte_array_append(c->out, data, (guint)len);
    flush_out(c);
    rewatch(c);
}

void
wsc_send_frame(WsClient *c, guint8 opcode, bool fin, const void *data, gsize len)
{
    guint8 hdr[14];
    gsize hlen = 2;
    guint32 mask = g_random_int();
    guint8 m[4] = { mask >> 24, mask >> 16, mask >> 8, mask };
    guint start;

    hdr[0] = (guint8)((fin ? 0x80 : 0) | (opcode & 0x0f));
    if (len < 126) {
        hdr[1] = 0x80 | (guint8)len;
    } else if (len <= 0xffff) {
        hdr[1] = 0x80 | 126;
        hdr[2] = (guint8)(len >> 8);
        hdr[3] = (guint8)len;
        hlen = 4;
    } else {
        hdr[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            hdr[2 + i] = (guint8)((guint64)len >> (56 - 8 * i));
        hlen = 10;
    }
    memcpy(hdr + hlen, m, 4);
    hlen += 4;
    g_byte_array_append(c->out, hdr, (guint)hlen);
    start = c->out->len;
    if (len > 0)
        g_byte_array_append(c->out, data, (guint)len);
    for (gsize i = 0; i < len; i++)
        c->out->data[start + i] ^= m[i & 3];
    flush_out(c);
    rewatch(c);
}

void
wsc_send_binary(WsClient *c, const void *data, gsize len)
{
    wsc_send_frame(c, 0x2, true, data, len);
}

void
wsc_send_text(WsClient *c, const char *text)
{
    wsc_send_frame(c, 0x1, true, text, strlen(text));
}

void
wsc_send_close(WsClient *c, guint16 code, const char *reason)
{
    guint8 payload[125];
    gsize len = 0;

    if (code != 0) {
        payload[0] = (guint8)(code >> 8);
        payload[1] = (guint8)code;
        len = 2;
        if (reason != NULL) {
            gsize rlen = MIN(strlen(reason), sizeof(payload) - 2);

            memcpy(payload + 2, reason, rlen);
            len += rlen;
        }
    }
    wsc_send_frame(c, 0x8, true, payload, len);
}

void
wsc_shutdown_write(WsClient *c)
{
    c->want_shutdown = true;
    flush_out(c);
    rewatch(c);
}

void
wsc_pause_reading(WsClient *c, bool paused)
{
    c->paused = paused;
    rewatch(c);
}

/* --- queries ------------------------------------------------------------ */

int
wsc_status(const WsClient *c)
{
    return c->status;
}

const char *
wsc_header(const WsClient *c, const char *name)
{
    g_autofree char *lower = g_ascii_strdown(name, -1);

    return g_hash_table_lookup(c->headers, lower);
}

bool
wsc_upgraded(const WsClient *c)
{
    return c->upgraded;
}

const GByteArray *
wsc_body(const WsClient *c)
{
    return c->body;
}

const GByteArray *
wsc_received(const WsClient *c)
{
    return c->received;
}

void
wsc_clear_received(WsClient *c)
{
    g_byte_array_set_size(c->received, 0);
}

guint64
wsc_received_total(const WsClient *c)
{
    return c->received_total;
}

guint
wsc_n_binary(const WsClient *c)
{
    return c->n_binary;
}

guint
wsc_n_text(const WsClient *c)
{
    return c->n_text;
}

bool
wsc_got_close(const WsClient *c)
{
    return c->got_close;
}

guint16
wsc_close_code(const WsClient *c)
{
    return c->close_code;
}

const char *
wsc_close_reason(const WsClient *c)
{
    return c->close_reason;
}

bool
wsc_eof(const WsClient *c)
{
    return c->eof;
}

const char *
wsc_protocol_error(const WsClient *c)
{
    return c->protocol_error;
}

gsize
wsc_out_pending(const WsClient *c)
{
    return c->out->len - c->out_off;
}

bool
wsc_send_blocked(const WsClient *c)
{
    return c->blocked && wsc_out_pending(c) > 0;
}

/* --- waiting ------------------------------------------------------------ */

gboolean
wsc_cond_answered(gpointer data)
{
    WsClient *c = data;

    if (c->status == 0)
        return c->eof;
    if (c->upgraded || c->status == 101)
        return TRUE;
    if (c->content_length >= 0)
        return c->body->len >= (gsize)c->content_length || c->eof;
    return c->eof;
}

gboolean
wsc_cond_closed(gpointer data)
{
    WsClient *c = data;

    return c->got_close || c->eof;
}

gboolean
wsc_cond_eof(gpointer data)
{
    return ((WsClient *)data)->eof;
}

gboolean
wsc_cond_sent(gpointer data)
{
    return wsc_out_pending(data) == 0;
}

gboolean
wsc_cond_blocked(gpointer data)
{
    return wsc_send_blocked(data);
}

void
wsc_run_until(gboolean (*cond)(gpointer data), gpointer data, guint deadline_ms)
{
    test_run_until(cond, data, deadline_ms);
}

void
wsc_run_for(guint ms)
{
    test_run_for(ms);
}

typedef struct {
    WsClient *c;
    guint64 n;
} ReceivedWait;

static gboolean
received_enough(gpointer data)
{
    ReceivedWait *w = data;

    return w->c->received_total >= w->n || w->c->eof;
}

void
wsc_wait_received(WsClient *c, guint64 n, guint deadline_ms)
{
    ReceivedWait w = { c, n };

    wsc_run_until(received_enough, &w, deadline_ms);
    ck_assert_msg(c->received_total >= n, "connection ended after %" G_GUINT64_FORMAT
                  " of %" G_GUINT64_FORMAT " bytes", c->received_total, n);
}

guint
wsc_n_pings(const WsClient *c)
{
    return c->n_pings;
}

void
wsc_answer_pings(WsClient *c, bool answer)
{
    c->mute_pongs = !answer;
}
