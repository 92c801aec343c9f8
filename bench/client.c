/* SPDX-License-Identifier: Apache-2.0 */
/* client.c - the benchmark's load client: a browser's websocket, in C.
 *
 * Speaks RFC 6455 as spice-html5 in a browser does: GET with Origin and
 * Sec-WebSocket-Protocol: binary, checks the 101, Sec-WebSocket-Accept and
 * that "binary" came back, then sends masked binary frames (a fresh random
 * mask per frame) and opens with a SPICE link message. With --tcp it skips
 * the websocket layer (plain TCP straight to the target, the physical
 * limit) but still sends the link message. With --tls it speaks wss: a
 * non-blocking OpenSSL client under the same loop, offering ALPN http/1.1
 * only (as a browser's websocket does over HTTP/1.1), TLS 1.2 or 1.3 with
 * the cipher suites in a browser's order, no certificate check (the
 * certificate is self-signed; a browser's check costs the browser, not the
 * proxy) and, unless --tls-resume, a full handshake on every connection.
 * One epoll thread; all output is one line of key=value pairs on stdout,
 * errors on stderr.
 *
 * Tests (--test):
 *   down     N connections receive the pattern for --secs; MB/s
 *   up       N connections send 16 KiB frames for --secs; MB/s as acked
 *            by the target (so bytes still queued in a proxy do not count)
 *   rtt      one connection, 64-byte messages through an echo; p50/p99 us
 *   connect  open/handshake/link/first reply/close, --concurrency at a
 *            time, for --secs; connections per second and time to first
 *            byte
 *   hold     open --conns idle sessions, report, then on stdin "check"
 *            ping each one and count the alive, "quit" (or EOF) to exit
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common.h"

#define SGB_READ_BYTES (256 * 1024)
/* Frames per batch in the up test: one write() of ~256 KiB. */
#define SGB_UP_BATCH_FRAMES 16
/* Batches per call to generate_up() before we go back to epoll_wait(). */
#define SGB_UP_ROUNDS 4
#define SGB_RESPONSE_MAX_BYTES 4096
/* Time allowed for a whole hold-mode check round (ping every session). */
#define SGB_CHECK_SECS 20.0
/* The largest TLS record's plaintext: SSL_read() never returns more. */
#define SGB_TLS_RECORD_BYTES 16384

typedef enum {
    TEST_DOWN = 0,
    TEST_UP,
    TEST_RTT,
    TEST_CONNECT,
    TEST_HOLD,
} Test;

typedef enum {
    C_CONNECTING = 0,             /* non-blocking connect in progress */
    C_TLS,                        /* TLS handshake in progress (--tls) */
    C_HANDSHAKE,                  /* upgrade request sent, reading the 101 */
    C_OPEN,                       /* link sent; test traffic */
    C_DONE,
} ConnState;

typedef struct {
    int fd;
    SSL *ssl;                     /* --tls */
    uint32_t tls_wait;            /* C_TLS: the event the handshake waits for */
    ConnState state;
    double t_start;               /* socket() */
    double t_first;               /* first payload byte */
    char key[25];
    char resp[SGB_RESPONSE_MAX_BYTES + 1];
    size_t resp_len;
    SgbWsParser parser;
    uint8_t *out;                 /* bytes to write: out[out_off .. out_len) */
    size_t out_len, out_off, out_cap;
    uint64_t rx;                  /* payload bytes received (pattern offset) */
    uint64_t tx;                  /* payload bytes generated (pattern offset) */
    uint8_t ack[8];
    size_t ack_len;
    uint64_t acked;
    uint64_t echo_want;           /* rx total at which the current echo is done */
    bool hello_done;
    bool alive;                   /* hold: answered the check */
    bool want_out;                /* generator wants EPOLLOUT (up test) */
    uint32_t events;
} Conn;

static struct {
    Test test;
    bool ws;
    bool tls;
    bool tls_resume;
    const char *host;
    int port;
    const char *token;
    const char *path;
    int conns;
    int concurrency;
    double secs;
    double warmup;
    size_t frame;
    size_t msg;
    double budget;
    long min_avail_mb;
} opt = {
    .ws = true, .host = "127.0.0.1", .token = "bench", .path = "/", .conns = 1,
    .concurrency = 1, .secs = 3, .warmup = 0.5, .frame = 16384, .msg = 64,
    .budget = 60, .min_avail_mb = 0,
};

static int epfd;
static SSL_CTX *ssl_ctx;
static SSL_SESSION *tls_session;  /* --tls-resume: the newest ticket */
static char tls_info[160];        /* "tls=... cipher=... alpn=...", once known */
static uint64_t tls_resumed;      /* handshakes that resumed a session */
static struct sockaddr_in target_addr;
static uint8_t readbuf[SGB_READ_BYTES];

/* Aggregates. */
static uint64_t total_rx;         /* payload received, all connections */
static uint64_t total_acked;      /* sink acks, all connections */
static uint64_t errors;
static uint64_t peer_closes;
static int first_error_printed;
static int open_conns;            /* with a socket */
static int established;           /* handshake + link + (hello) done */
static uint64_t started;          /* connect test: connections begun */
static uint64_t completed;        /* connect test: full cycles */

/* Samples (seconds). */
typedef struct {
    double *v;
    size_t n, cap;
} Samples;
static Samples rtt_samples, ttfb_samples, setup_samples;

static void
samples_add(Samples *s, double v)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 1024;
        s->v = realloc(s->v, s->cap * sizeof(double));
        if (s->v == NULL) {
            perror("realloc");
            exit(2);
        }
    }
    s->v[s->n++] = v;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

/* Nearest-rank percentile @p (0..100) of the samples (sorted here). */
static double
samples_pct(Samples *s, double p)
{
    size_t rank;

    if (s->n == 0)
        return 0;
    qsort(s->v, s->n, sizeof(double), cmp_double);
    rank = (size_t)(p / 100.0 * (double)s->n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > s->n)
        rank = s->n;
    return s->v[rank - 1];
}

static void
fail_conn(Conn *c, const char *what)
{
    errors++;
    if (first_error_printed < 5) {
        first_error_printed++;
        fprintf(stderr, "sgbench-client: fd %d: %s\n", c ? c->fd : -1, what);
    }
}

static void
set_events(Conn *c, uint32_t ev)
{
    struct epoll_event e = { .events = ev, .data.ptr = c };

    if (ev == c->events)
        return;
    c->events = ev;
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &e);
}

static void
update_events(Conn *c)
{
    uint32_t ev = 0;

    if (c->state == C_CONNECTING)
        ev = EPOLLOUT;
    else if (c->state == C_TLS)
        ev = c->tls_wait;
    else if (c->state != C_DONE)
        ev = EPOLLIN | ((c->out_off < c->out_len || c->want_out) ? EPOLLOUT : 0);
    set_events(c, ev);
}

static void
conn_close(Conn *c)
{
    if (c->ssl != NULL) {
        /* A browser sends close_notify too; it costs one small record. */
        if (c->state != C_TLS && c->state != C_CONNECTING && c->fd >= 0)
            SSL_shutdown(c->ssl);
        SSL_free(c->ssl);
        c->ssl = NULL;
        ERR_clear_error();
    }
    if (c->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
        open_conns--;
    }
    c->state = C_DONE;
}

static void
conn_free(Conn *c)
{
    conn_close(c);
    free(c->out);
    free(c);
}

/* The first OpenSSL error on the queue, after @what; clears the queue. */
static const char *
tls_error_text(const char *what)
{
    static char msg[300];
    unsigned long e = ERR_get_error();
    char buf[256];

    if (e == 0)
        snprintf(msg, sizeof(msg), "%s (%s)", what, errno ? strerror(errno) : "no detail");
    else
        snprintf(msg, sizeof(msg), "%s: %s", what, ERR_error_string(e, buf));
    ERR_clear_error();
    return msg;
}

/* Maps an SSL_read()/SSL_write() result <= 0 to the recv()/send()
 * convention: 0 for a clean end (close_notify, or an EOF without one, as
 * browsers accept), -1 with errno EAGAIN when the call has to wait, -1
 * with errno EPROTO (and the error printed) when TLS failed. */
static ssize_t
tls_result(Conn *c, int n)
{
    switch (SSL_get_error(c->ssl, n)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_SYSCALL:
        if (errno == 0)
            return 0;
        ERR_clear_error();
        return -1;
    default:
        if (first_error_printed < 5)
            fprintf(stderr, "sgbench-client: fd %d: %s\n", c->fd, tls_error_text("TLS error"));
        else
            ERR_clear_error();
        errno = EPROTO;
        return -1;
    }
}

static ssize_t
conn_send(Conn *c, const void *buf, size_t len)
{
    int n;

    if (c->ssl == NULL)
        return send(c->fd, buf, len, MSG_NOSIGNAL);
    if (len > INT32_MAX)
        len = INT32_MAX;
    n = SSL_write(c->ssl, buf, (int)len);
    return n > 0 ? n : tls_result(c, n);
}

/* recv(), or with TLS as many whole records as fit in @len: SSL_read()
 * returns one record at a time, and with room for a whole record left each
 * call no decrypted byte stays behind. Records read ahead but not yet
 * decrypted can stay in OpenSSL where epoll cannot see them: on_event()
 * comes back for those (SSL_has_pending()). *@eof is set when the stream
 * ended or failed after some bytes were read: the caller uses the bytes,
 * then closes. */
static ssize_t
conn_recv(Conn *c, uint8_t *buf, size_t len, bool *eof)
{
    size_t got = 0;

    *eof = false;
    if (c->ssl == NULL)
        return recv(c->fd, buf, len, 0);
    while (len - got >= SGB_TLS_RECORD_BYTES) {
        int n = SSL_read(c->ssl, buf + got, (int)(len - got));
        ssize_t r;

        if (n > 0) {
            got += (size_t)n;
            continue;
        }
        r = tls_result(c, n);
        if (got == 0)
            return r;
        if (r == 0 || errno != EAGAIN)
            *eof = true;
        break;
    }
    return (ssize_t)got;
}

static void
out_add(Conn *c, const void *data, size_t len)
{
    if (c->out_off == c->out_len) {
        c->out_off = 0;
        c->out_len = 0;
    }
    sgb_append(&c->out, &c->out_len, &c->out_cap, data, len);
}

/* Appends one masked binary frame carrying @len bytes of @data, as a
 * browser's WebSocket.send() would; or the bytes alone with --tcp. */
static void
send_message(Conn *c, int opcode, const void *data, size_t len)
{
    uint8_t hdr[SGB_WS_HEADER_MAX];
    uint8_t mask[4];
    uint64_t r = sgb_rand64();
    size_t start;

    if (!opt.ws) {
        out_add(c, data, len);
        return;
    }
    memcpy(mask, &r, 4);
    out_add(c, hdr, sgb_ws_header(hdr, opcode, len, true, mask));
    start = c->out_len;
    out_add(c, data, len);
    sgb_ws_mask(c->out + start, len, mask, 0);
}

/* Writes pending bytes; false if the connection broke. */
static bool
flush_out(Conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = conn_send(c, c->out + c->out_off, c->out_len - c->out_off);

        if (n < 0)
            return errno == EAGAIN || errno == EINTR;
        c->out_off += (size_t)n;
    }
    return true;
}

/* Up test: keeps the socket full of pattern frames, at most
 * SGB_UP_ROUNDS batches per call. Unbounded, a receiver as fast as we are
 * kept us in here for seconds: acks went unread and the clock unchecked,
 * and the rate came out anywhere between 7 and 4,000 MB/s. */
static bool
generate_up(Conn *c)
{
    for (int round = 0; round < SGB_UP_ROUNDS && c->out_off == c->out_len; round++) {
        if (!opt.ws) {
            ssize_t n = send(c->fd, sgb_pattern_at(c->tx), SGB_READ_BYTES, MSG_NOSIGNAL);

            if (n < 0)
                return errno == EAGAIN || errno == EINTR;
            c->tx += (uint64_t)n;
            continue;
        }
        for (int i = 0; i < SGB_UP_BATCH_FRAMES; i++) {
            send_message(c, SGB_WS_BINARY, sgb_pattern_at(c->tx), opt.frame);
            c->tx += opt.frame;
        }
        if (!flush_out(c))
            return false;
        if (c->out_off < c->out_len)
            return true;
    }
    return true;
}

static void
hello_complete(Conn *c)
{
    double now = sgb_now();

    c->hello_done = true;
    established++;
    if (opt.test == TEST_CONNECT) {
        samples_add(&ttfb_samples, c->t_first - c->t_start);
        samples_add(&setup_samples, now - c->t_start);
        completed++;
        if (opt.ws) {
            uint8_t code[2] = { 0x03, 0xE8 };   /* 1000: a normal close */

            send_message(c, SGB_WS_CLOSE, code, sizeof(code));
            flush_out(c);
        }
        conn_close(c);
    }
}

/* Mode payload from the target (after any websocket unwrapping). */
static bool
on_payload(Conn *c, uint8_t *data, size_t len)
{
    if (c->rx == 0 && len > 0)
        c->t_first = sgb_now();
    switch (opt.test) {
    case TEST_DOWN:
        if (!sgb_pattern_check(c->rx, data, len)) {
            fail_conn(c, "downstream pattern corrupt");
            return false;
        }
        c->rx += len;
        total_rx += len;
        return true;
    case TEST_UP:
        c->rx += len;
        while (len > 0) {
            size_t n = 8 - c->ack_len < len ? 8 - c->ack_len : len;

            memcpy(c->ack + c->ack_len, data, n);
            c->ack_len += n;
            data += n;
            len -= n;
            if (c->ack_len == 8) {
                uint64_t v = sgb_le64_read(c->ack);

                c->ack_len = 0;
                if (v == SGB_ACK_CORRUPT) {
                    fail_conn(c, "target saw a corrupt upstream byte stream");
                    return false;
                }
                total_acked += v - c->acked;
                c->acked = v;
            }
        }
        return true;
    case TEST_RTT:
        /* The echo repeats what we sent: the pattern from offset rx. */
        if (!sgb_pattern_check(c->rx, data, len)) {
            fail_conn(c, "echo corrupt");
            return false;
        }
        c->rx += len;
        return true;
    case TEST_CONNECT:
    case TEST_HOLD:
        c->rx += len;
        if (!c->hello_done && c->rx >= SGB_HELLO_BYTES) {
            hello_complete(c);
            if (c->state == C_DONE)
                return false;     /* closed on purpose; stop parsing */
        }
        return true;
    }
    return true;
}

static bool
on_ws_data(void *ctx, int opcode, uint8_t *data, size_t len)
{
    Conn *c = ctx;

    if (opcode != SGB_WS_BINARY) {
        fail_conn(c, "non-binary frame from the server");
        return false;
    }
    return on_payload(c, data, len);
}

static bool
on_ws_control(void *ctx, int opcode, const uint8_t *data, size_t len)
{
    Conn *c = ctx;

    if (opcode == SGB_WS_PING) {
        send_message(c, SGB_WS_PONG, data, len);
        return true;
    }
    if (opcode == SGB_WS_CLOSE) {
        char msg[200];
        unsigned code = len >= 2 ? (unsigned)(data[0] << 8 | data[1]) : 0;

        peer_closes++;
        snprintf(msg, sizeof(msg), "server closed the websocket: %u %.*s", code,
                 len > 2 ? (int)(len - 2) : 0, len > 2 ? (const char *)data + 2 : "");
        if (opt.test != TEST_HOLD)
            fail_conn(c, msg);
        return false;
    }
    return true;
}

/* Compares a header value, case-insensitively, token by token for
 * Connection ("keep-alive, Upgrade"). */
static bool
header_has(const char *resp, const char *name, const char *want, bool exact)
{
    size_t nlen = strlen(name);

    for (const char *line = strstr(resp, "\r\n"); line != NULL;
         line = strstr(line, "\r\n")) {
        char value[256];
        const char *v;
        size_t vlen;

        line += 2;
        if (strncasecmp(line, name, nlen) != 0 || line[nlen] != ':')
            continue;
        v = line + nlen + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        vlen = strcspn(v, "\r\n");
        while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
            vlen--;
        if (vlen >= sizeof(value))
            return false;
        memcpy(value, v, vlen);
        value[vlen] = '\0';
        if (exact)
            return strcmp(value, want) == 0;
        for (char *save = NULL, *tok = strtok_r(value, ", ", &save); tok != NULL;
             tok = strtok_r(NULL, ", ", &save)) {
            if (strcasecmp(tok, want) == 0)
                return true;
        }
        return false;
    }
    return false;
}

/* The link message, then whatever the test sends first. */
static void
conn_opened(Conn *c)
{
    uint8_t link[SGB_LINK_BYTES];
    SgbMode mode = SGB_MODE_HELLO;

    c->state = C_OPEN;
    switch (opt.test) {
    case TEST_DOWN:
        mode = SGB_MODE_STREAM;
        break;
    case TEST_UP:
        mode = SGB_MODE_SINK;
        c->want_out = true;
        break;
    case TEST_RTT:
        mode = SGB_MODE_ECHO;
        break;
    case TEST_CONNECT:
    case TEST_HOLD:
        mode = SGB_MODE_HELLO;
        break;
    }
    sgb_link_build(link, mode);
    send_message(c, SGB_WS_BINARY, link, sizeof(link));
    if (opt.test != TEST_CONNECT && opt.test != TEST_HOLD)
        established++;
}

/* Reads the 101; returns bytes of it used, 0 if incomplete, -1 if bad. */
static long
check_response(Conn *c)
{
    char *end = strstr(c->resp, "\r\n\r\n");
    char accept[29];

    if (end == NULL)
        return c->resp_len >= SGB_RESPONSE_MAX_BYTES ? -1 : 0;
    end[2] = '\0';                /* header_has() scans lines up to here */
    if (strncmp(c->resp, "HTTP/1.1 101", 12) != 0) {
        char msg[128];

        snprintf(msg, sizeof(msg), "handshake refused: %.*s", (int)strcspn(c->resp, "\r\n"),
                 c->resp);
        fail_conn(c, msg);
        return -1;
    }
    sgb_ws_accept(c->key, accept);
    if (!header_has(c->resp, "Upgrade", "websocket", false) ||
        !header_has(c->resp, "Connection", "Upgrade", false)) {
        fail_conn(c, "101 without Upgrade: websocket / Connection: Upgrade");
        return -1;
    }
    if (!header_has(c->resp, "Sec-WebSocket-Accept", accept, true)) {
        fail_conn(c, "wrong Sec-WebSocket-Accept");
        return -1;
    }
    if (!header_has(c->resp, "Sec-WebSocket-Protocol", "binary", true)) {
        fail_conn(c, "subprotocol 'binary' not echoed");
        return -1;
    }
    return end + 4 - c->resp;
}

static void
send_upgrade(Conn *c)
{
    uint8_t nonce[16];
    char req[1024];
    int n;

    for (int i = 0; i < 16; i += 8) {
        uint64_t r = sgb_rand64();

        memcpy(nonce + i, &r, 8);
    }
    sgb_base64(nonce, sizeof(nonce), c->key);
    n = snprintf(req, sizeof(req),
                 "GET %s?token=%s HTTP/1.1\r\n"
                 "Host: %s:%d\r\n"
                 "Connection: Upgrade\r\n"
                 "Pragma: no-cache\r\n"
                 "Cache-Control: no-cache\r\n"
                 "User-Agent: sgbench-client\r\n"
                 "Upgrade: websocket\r\n"
                 "Origin: http://%s:%d\r\n"
                 "Sec-WebSocket-Version: 13\r\n"
                 "Sec-WebSocket-Key: %s\r\n"
                 "Sec-WebSocket-Protocol: binary\r\n"
                 "\r\n",
                 opt.path, opt.token, opt.host, opt.port, opt.host, opt.port, c->key);
    out_add(c, req, (size_t)n);
    c->state = C_HANDSHAKE;
    sgb_ws_parser_init(&c->parser, false);
    c->parser.on_data = on_ws_data;
    c->parser.on_control = on_ws_control;
    c->parser.ctx = c;
}

static bool on_bytes(Conn *c, uint8_t *data, size_t len);

static bool
server_closed(void)
{
    if (opt.test != TEST_HOLD)
        fail_conn(NULL, "connection closed by the server");
    peer_closes++;
    return false;
}

/* Returns false if the connection is finished (closed or failed). */
static bool
on_readable(Conn *c)
{
    bool eof;
    ssize_t n = conn_recv(c, readbuf, sizeof(readbuf), &eof);

    if (n == 0)
        return server_closed();
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return true;
        fail_conn(c, strerror(errno));
        return false;
    }
    if (!on_bytes(c, readbuf, (size_t)n))
        return false;
    return eof ? server_closed() : true;
}

/* Bytes from the server (decrypted, with --tls). */
static bool
on_bytes(Conn *c, uint8_t *data, size_t len)
{
    if (c->state == C_HANDSHAKE) {
        size_t room = SGB_RESPONSE_MAX_BYTES - c->resp_len;
        size_t take = len < room ? len : room;
        long used;

        memcpy(c->resp + c->resp_len, data, take);
        c->resp_len += take;
        c->resp[c->resp_len] = '\0';
        used = check_response(c);
        if (used < 0)
            return false;
        if (used == 0)
            return true;
        /* Bytes after the 101 are already frames. */
        data += (size_t)used - (c->resp_len - take);
        len -= (size_t)used - (c->resp_len - take);
        conn_opened(c);
        if (len == 0)
            return true;
    }
    if (c->state != C_OPEN)
        return true;
    if (opt.ws)
        return sgb_ws_parse(&c->parser, data, len) && c->state == C_OPEN;
    return on_payload(c, data, len) && c->state == C_OPEN;
}

/* --tls: a TLS client on the connected socket. */
static bool
tls_start(Conn *c)
{
    c->ssl = SSL_new(ssl_ctx);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
        fail_conn(c, tls_error_text("cannot set up TLS"));
        return false;
    }
    SSL_set_connect_state(c->ssl);
    if (opt.tls_resume && tls_session != NULL)
        SSL_set_session(c->ssl, tls_session);
    c->state = C_TLS;
    c->tls_wait = EPOLLOUT;
    return true;
}

/* --tls: one step of the handshake; once it is done, the upgrade request
 * goes out. False if the handshake failed. */
static bool
tls_step(Conn *c)
{
    const unsigned char *alpn = NULL;
    unsigned alpn_len = 0;
    int r = SSL_do_handshake(c->ssl);

    if (r != 1) {
        switch (SSL_get_error(c->ssl, r)) {
        case SSL_ERROR_WANT_READ:
            c->tls_wait = EPOLLIN;
            return true;
        case SSL_ERROR_WANT_WRITE:
            c->tls_wait = EPOLLOUT;
            return true;
        default:
            fail_conn(c, tls_error_text("TLS handshake failed"));
            return false;
        }
    }
    if (SSL_session_reused(c->ssl))
        tls_resumed++;
    SSL_get0_alpn_selected(c->ssl, &alpn, &alpn_len);
    if (tls_info[0] == '\0')
        snprintf(tls_info, sizeof(tls_info), " tls=%s cipher=%s alpn=%.*s",
                 SSL_get_version(c->ssl), SSL_get_cipher_name(c->ssl),
                 alpn_len ? (int)alpn_len : 4, alpn_len ? (const char *)alpn : "none");
    /* No ALPN at all (websockify) means HTTP/1.1 too. */
    if (alpn_len != 0 && (alpn_len != 8 || memcmp(alpn, "http/1.1", 8) != 0)) {
        fail_conn(c, "the server chose an ALPN protocol we did not offer");
        return false;
    }
    send_upgrade(c);
    return true;
}

static void
on_event(Conn *c, uint32_t events)
{
    if (c->state == C_CONNECTING) {
        int err = 0;
        socklen_t elen = sizeof(err);

        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &elen);
        if (err != 0) {
            fail_conn(c, strerror(err));
            conn_close(c);
            return;
        }
        if (opt.tls) {
            if (!tls_start(c)) {
                conn_close(c);
                return;
            }
        } else if (opt.ws) {
            send_upgrade(c);
        } else {
            conn_opened(c);
        }
    }
    if (c->state == C_TLS) {
        if (!tls_step(c)) {
            conn_close(c);
            return;
        }
        if (c->state == C_TLS) {
            update_events(c);
            return;
        }
        /* Anything that came with the last handshake flight is read below:
         * SSL_read() returns "wait" when there is nothing. */
        events |= EPOLLIN;
    }
    if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !on_readable(c)) {
        conn_close(c);
        return;
    }
    /* Whole records already read ahead from the socket: epoll will not
     * report them. A partial one needs the socket, which it will. */
    while (c->ssl != NULL && c->state == C_OPEN && SSL_has_pending(c->ssl)) {
        uint64_t before = c->rx;

        if (!on_readable(c)) {
            conn_close(c);
            return;
        }
        if (c->rx == before)
            break;
    }
    if (!flush_out(c)) {
        fail_conn(c, "write failed");
        conn_close(c);
        return;
    }
    if (c->want_out && c->state == C_OPEN && !generate_up(c)) {
        fail_conn(c, "write failed");
        conn_close(c);
        return;
    }
    update_events(c);
}

static Conn *
new_conn(void)
{
    Conn *c = calloc(1, sizeof(*c));
    int one = 1;
    struct epoll_event ev = { .events = EPOLLOUT };

    if (c == NULL) {
        perror("calloc");
        exit(2);
    }
    c->t_start = sgb_now();
    started++;
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        fail_conn(c, strerror(errno));
        c->state = C_DONE;
        return c;
    }
    open_conns++;
    /* A browser's websocket sets TCP_NODELAY too (Chromium does). */
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(c->fd, (struct sockaddr *)&target_addr, sizeof(target_addr)) < 0 &&
        errno != EINPROGRESS) {
        fail_conn(c, strerror(errno));
        conn_close(c);
        return c;
    }
    c->events = EPOLLOUT;
    ev.data.ptr = c;
    epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev);
    return c;
}

/* Runs the loop until @deadline or until @done() says so. */
static void
run_loop(double deadline, bool (*done)(void))
{
    struct epoll_event events[256];

    while (!(done && done())) {
        double now = sgb_now();
        int timeout_ms;
        int n;

        if (now >= deadline)
            break;
        timeout_ms = (int)((deadline - now) * 1000) + 1;
        if (timeout_ms > 100)
            timeout_ms = 100;
        n = epoll_wait(epfd, events, 256, timeout_ms);
        for (int i = 0; i < n; i++)
            on_event(events[i].data.ptr, events[i].events);
    }
}

/* --- tests ------------------------------------------------------------------ */

static Conn **conns;

static bool
all_established(void)
{
    return established >= opt.conns || errors > 0;
}

static int
open_all(void)
{
    conns = calloc((size_t)opt.conns, sizeof(*conns));
    for (int i = 0; i < opt.conns; i++)
        conns[i] = new_conn();
    run_loop(sgb_now() + 10, all_established);
    if (established < opt.conns) {
        fprintf(stderr, "sgbench-client: only %d of %d connections came up\n", established,
                opt.conns);
        return -1;
    }
    return 0;
}

static int
test_down_up(void)
{
    double t0, t1, now;
    uint64_t b0, b1;
    uint64_t *counter = opt.test == TEST_DOWN ? &total_rx : &total_acked;

    if (open_all() < 0)
        return 1;
    run_loop(sgb_now() + opt.warmup, NULL);
    /* Up: measure between two ack arrivals, so the 1 MiB ack granularity
     * does not bias the rate. Down: between two clock readings. */
    b0 = *counter;
    t0 = sgb_now();
    if (opt.test == TEST_UP) {
        while (*counter == b0 && sgb_now() < t0 + opt.secs && errors == 0)
            run_loop(sgb_now() + 0.001, NULL);
        b0 = *counter;
        t0 = sgb_now();
    }
    t1 = t0;
    b1 = b0;
    while ((now = sgb_now()) < t0 + opt.secs && errors == 0) {
        uint64_t before = *counter;

        run_loop(now + 0.01, NULL);
        if (opt.test == TEST_DOWN || *counter != before) {
            t1 = sgb_now();
            b1 = *counter;
        }
    }
    printf("test=%s conns=%d mbps=%.1f window_bytes=%llu window_secs=%.3f total_bytes=%llu "
           "errors=%llu%s\n",
           opt.test == TEST_DOWN ? "down" : "up", opt.conns,
           t1 > t0 ? (double)(b1 - b0) / (t1 - t0) / 1e6 : 0.0,
           (unsigned long long)(b1 - b0), t1 - t0,
           (unsigned long long)(opt.test == TEST_DOWN ? total_rx : total_acked),
           (unsigned long long)errors, tls_info);
    return errors ? 1 : 0;
}

static Conn *rtt_conn;

static bool
echo_done(void)
{
    return rtt_conn->rx >= rtt_conn->echo_want || rtt_conn->state != C_OPEN;
}

static int
test_rtt(void)
{
    double end;
    double warm_end;

    opt.conns = 1;
    if (open_all() < 0)
        return 1;
    rtt_conn = conns[0];
    warm_end = sgb_now() + opt.warmup;
    end = warm_end + opt.secs;
    while (sgb_now() < end && errors == 0 && rtt_conn->state == C_OPEN) {
        double t0 = sgb_now();

        send_message(rtt_conn, SGB_WS_BINARY, sgb_pattern_at(rtt_conn->tx), opt.msg);
        rtt_conn->tx += opt.msg;
        rtt_conn->echo_want = rtt_conn->tx;
        if (!flush_out(rtt_conn)) {
            fail_conn(rtt_conn, "write failed");
            break;
        }
        update_events(rtt_conn);
        run_loop(end + 5, echo_done);
        if (rtt_conn->rx < rtt_conn->echo_want) {
            fail_conn(rtt_conn, "echo never came back");
            break;
        }
        if (t0 >= warm_end)
            samples_add(&rtt_samples, sgb_now() - t0);
    }
    printf("test=rtt msg=%zu count=%zu p50_us=%.1f p99_us=%.1f errors=%llu%s\n", opt.msg,
           rtt_samples.n, samples_pct(&rtt_samples, 50) * 1e6,
           samples_pct(&rtt_samples, 99) * 1e6, (unsigned long long)errors, tls_info);
    return errors ? 1 : 0;
}

static int
test_connect(void)
{
    struct epoll_event events[256];
    double t0 = sgb_now();
    double end = t0 + opt.secs;
    Conn **live = calloc((size_t)opt.concurrency, sizeof(*live));
    double elapsed;

    /* Keep --concurrency connections in flight; each one is freed once it
     * completed (or failed) and replaced at once. */
    for (int i = 0; i < opt.concurrency; i++)
        live[i] = new_conn();
    while (sgb_now() < end) {
        int n = epoll_wait(epfd, events, 256, 100);

        for (int i = 0; i < n; i++)
            on_event(events[i].data.ptr, events[i].events);
        for (int i = 0; i < opt.concurrency; i++) {
            if (live[i]->state == C_DONE) {
                conn_free(live[i]);
                live[i] = new_conn();
            }
        }
        if (errors > 100)
            break;
    }
    elapsed = sgb_now() - t0;
    for (int i = 0; i < opt.concurrency; i++)
        conn_free(live[i]);
    printf("test=connect concurrency=%d started=%llu completed=%llu cps=%.1f ttfb_p50_ms=%.3f "
           "ttfb_p99_ms=%.3f setup_p50_ms=%.3f setup_p99_ms=%.3f errors=%llu "
           "tls_resumed=%llu%s\n",
           opt.concurrency, (unsigned long long)started, (unsigned long long)completed,
           (double)completed / elapsed,
           samples_pct(&ttfb_samples, 50) * 1e3, samples_pct(&ttfb_samples, 99) * 1e3,
           samples_pct(&setup_samples, 50) * 1e3, samples_pct(&setup_samples, 99) * 1e3,
           (unsigned long long)errors, (unsigned long long)tls_resumed, tls_info);
    free(live);
    return errors ? 1 : 0;
}

static long
mem_available_mb(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    long kb = -1;

    if (f == NULL)
        return -1;
    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, "MemAvailable: %ld kB", &kb) == 1)
            break;
    }
    fclose(f);
    return kb < 0 ? -1 : kb / 1024;
}

/* Hold test, "check": pings every established session and counts the
 * answers; sessions the proxy dropped meanwhile count as dead. */
static void
hold_check(int opened)
{
    int asked = 0;
    int alive = 0;
    double end;

    for (int i = 0; i < opened; i++) {
        Conn *c = conns[i];

        c->echo_want = 0;
        if (c->state != C_OPEN || !c->hello_done)
            continue;
        c->echo_want = c->rx + SGB_HELLO_BYTES;
        send_message(c, SGB_WS_BINARY, sgb_pattern(), SGB_HELLO_BYTES);
        flush_out(c);
        update_events(c);
        asked++;
    }
    end = sgb_now() + SGB_CHECK_SECS;
    for (;;) {
        int waiting = 0;

        alive = 0;
        for (int i = 0; i < opened; i++) {
            Conn *c = conns[i];

            if (c->echo_want == 0 || c->state != C_OPEN)
                continue;
            if (c->rx >= c->echo_want)
                alive++;
            else
                waiting++;
        }
        if (waiting == 0 || sgb_now() >= end)
            break;
        run_loop(sgb_now() + 0.05, NULL);
    }
    printf("alive=%d asked=%d peer_closes=%llu\n", alive, asked,
           (unsigned long long)peer_closes);
    fflush(stdout);
}

static int
test_hold(void)
{
    double t0 = sgb_now();
    double end = t0 + opt.budget;
    int opened = 0;
    const char *stop = "done";
    char line[64];

    conns = calloc((size_t)opt.conns, sizeof(*conns));
    /* Ramp up with at most --concurrency handshakes in flight, as a crowd
     * of browsers would arrive, within the time and memory budget. */
    for (;;) {
        int in_flight = 0;

        if (sgb_now() >= end) {
            /* Out of time: handshakes still in flight do not count, and
             * must not complete behind our back during the idle period. */
            for (int i = 0; i < opened; i++) {
                if (conns[i]->state != C_DONE && !conns[i]->hello_done)
                    conn_close(conns[i]);
            }
            stop = "time";
            break;
        }
        for (int i = 0; i < opened; i++) {
            if (conns[i]->state != C_DONE && !conns[i]->hello_done)
                in_flight++;
        }
        if (opened >= opt.conns && in_flight == 0)
            break;
        if (opened < opt.conns && opt.min_avail_mb > 0) {
            long avail = mem_available_mb();

            if (avail >= 0 && avail < opt.min_avail_mb) {
                stop = "memory";
                opt.conns = opened;
                continue;
            }
        }
        while (opened < opt.conns && in_flight < opt.concurrency) {
            conns[opened++] = new_conn();
            in_flight++;
        }
        run_loop(sgb_now() + 0.02, NULL);
    }
    printf("held=%d opened=%d failed=%llu open_secs=%.2f stop=%s%s\n", established, opened,
           (unsigned long long)errors, sgb_now() - t0, stop, tls_info);
    fflush(stdout);

    /* Idle until told; sessions that die meanwhile are seen as closes. */
    for (;;) {
        struct pollfd pfd = { .fd = 0, .events = POLLIN };

        run_loop(sgb_now() + 0.05, NULL);
        if (poll(&pfd, 1, 0) <= 0)
            continue;
        if (fgets(line, sizeof(line), stdin) == NULL || strncmp(line, "quit", 4) == 0)
            break;
        if (strncmp(line, "check", 5) == 0)
            hold_check(opened);
    }
    return 0;
}

/* Keeps the newest session (TLS 1.3: the newest ticket) for --tls-resume,
 * as a browser reuses one for its next connection to the same origin. */
static int
on_new_session(SSL *ssl, SSL_SESSION *sess)
{
    if (tls_session != NULL)
        SSL_SESSION_free(tls_session);
    tls_session = sess;
    return 1;                     /* we hold the reference now */
}

/* The client side as a browser sets it up, minus the certificate check. */
static bool
tls_init(void)
{
    static const unsigned char alpn[] = "\x08http/1.1";

    ssl_ctx = SSL_CTX_new(TLS_client_method());
    if (ssl_ctx == NULL ||
        !SSL_CTX_set_min_proto_version(ssl_ctx, TLS1_2_VERSION) ||
        /* Chromium's order: AES-128-GCM first. */
        !SSL_CTX_set_ciphersuites(ssl_ctx, "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:"
                                           "TLS_CHACHA20_POLY1305_SHA256") ||
        !SSL_CTX_set1_groups_list(ssl_ctx, "X25519:P-256:P-384") ||
        SSL_CTX_set_alpn_protos(ssl_ctx, alpn, sizeof(alpn) - 1) != 0) {
        fprintf(stderr, "sgbench-client: %s\n", tls_error_text("cannot set up TLS"));
        return false;
    }
    SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_mode(ssl_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                              SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_options(ssl_ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    /* Read the socket in large gulps, as browsers do, not a 5-byte header
     * and then one record per read(): the client must not be what limits
     * the rate. */
    SSL_CTX_set_read_ahead(ssl_ctx, 1);
    SSL_CTX_set_default_read_buffer_len(ssl_ctx, SGB_READ_BYTES);
    if (opt.tls_resume) {
        SSL_CTX_set_session_cache_mode(ssl_ctx, SSL_SESS_CACHE_CLIENT |
                                                SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(ssl_ctx, on_new_session);
    } else {
        SSL_CTX_set_session_cache_mode(ssl_ctx, SSL_SESS_CACHE_OFF);
    }
    return true;
}

static void
usage(void)
{
    fprintf(stderr,
            "usage: sgbench-client --port PORT --test down|up|rtt|connect|hold [--tcp]\n"
            "  [--tls [--tls-resume]]\n"
            "  [--host 127.0.0.1] [--token T] [--path /] [--conns N] [--concurrency C]\n"
            "  [--secs S] [--warmup S] [--frame BYTES] [--msg BYTES] [--budget S]\n"
            "  [--min-avail-mb MB]\n");
    exit(2);
}

int
main(int argc, char **argv)
{
    struct rlimit rl;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;

        if (strcmp(a, "--tcp") == 0) {
            opt.ws = false;
            continue;
        }
        if (strcmp(a, "--tls") == 0) {
            opt.tls = true;
            continue;
        }
        if (strcmp(a, "--tls-resume") == 0) {
            opt.tls_resume = true;
            continue;
        }
        if (v == NULL)
            usage();
        i++;
        if (strcmp(a, "--test") == 0) {
            if (strcmp(v, "down") == 0)
                opt.test = TEST_DOWN;
            else if (strcmp(v, "up") == 0)
                opt.test = TEST_UP;
            else if (strcmp(v, "rtt") == 0)
                opt.test = TEST_RTT;
            else if (strcmp(v, "connect") == 0)
                opt.test = TEST_CONNECT;
            else if (strcmp(v, "hold") == 0)
                opt.test = TEST_HOLD;
            else
                usage();
        } else if (strcmp(a, "--host") == 0) {
            opt.host = v;
        } else if (strcmp(a, "--port") == 0) {
            opt.port = atoi(v);
        } else if (strcmp(a, "--token") == 0) {
            opt.token = v;
        } else if (strcmp(a, "--path") == 0) {
            opt.path = v;
        } else if (strcmp(a, "--conns") == 0) {
            opt.conns = atoi(v);
        } else if (strcmp(a, "--concurrency") == 0) {
            opt.concurrency = atoi(v);
        } else if (strcmp(a, "--secs") == 0) {
            opt.secs = atof(v);
        } else if (strcmp(a, "--warmup") == 0) {
            opt.warmup = atof(v);
        } else if (strcmp(a, "--frame") == 0) {
            opt.frame = (size_t)atol(v);
        } else if (strcmp(a, "--msg") == 0) {
            opt.msg = (size_t)atol(v);
        } else if (strcmp(a, "--budget") == 0) {
            opt.budget = atof(v);
        } else if (strcmp(a, "--min-avail-mb") == 0) {
            opt.min_avail_mb = atol(v);
        } else {
            usage();
        }
    }
    if (opt.port <= 0 || opt.conns < 1 || opt.concurrency < 1 || opt.frame < 1 ||
        opt.frame > SGB_PATTERN_MAX_CHUNK || opt.msg < 1 || opt.msg > SGB_PATTERN_MAX_CHUNK ||
        (opt.tls && !opt.ws) || (opt.tls_resume && !opt.tls))
        usage();
    target_addr.sin_family = AF_INET;
    target_addr.sin_port = htons((uint16_t)opt.port);
    if (inet_pton(AF_INET, opt.host, &target_addr.sin_addr) != 1)
        usage();
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    if (opt.tls && !tls_init())
        return 2;
    sgb_pattern();
    epfd = epoll_create1(EPOLL_CLOEXEC);
    switch (opt.test) {
    case TEST_DOWN:
    case TEST_UP:
        return test_down_up();
    case TEST_RTT:
        return test_rtt();
    case TEST_CONNECT:
        return test_connect();
    case TEST_HOLD:
        return test_hold();
    }
    return 2;
}
