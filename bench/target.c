/* SPDX-License-Identifier: Apache-2.0 */
/* target.c - the benchmark's stand-in for a SPICE server.
 *
 * One epoll thread, any number of connections. Each connection must first
 * send a SPICE link message (the target consumes exactly its announced
 * size), whose connection_id picks the mode: stream the pattern out as
 * fast as possible, sink and check it (acking progress), echo, or greet
 * and echo. A connection whose first bytes are "GET " is a websocket
 * instead: the target does the RFC 6455 server side itself, so the load
 * client can be measured with no proxy at all ("ws direct") and a plain
 * TCP relay (socat) can carry the same websocket workload.
 *
 * With --tls-cert and --tls-key every accepted connection speaks TLS
 * (server side, non-blocking OpenSSL on the same epoll loop), as a SPICE
 * server's TLS port does: the same modes, carried by SSL_read/SSL_write.
 * Without them nothing about the plain path changes.
 *
 * Usage: sgbench-target [--listen 127.0.0.1:0] [--port-file FILE]
 *                       [--tls-cert FILE --tls-key FILE]
 *        sgbench-target --pick-port   (print a free loopback port, exit;
 *                                      for proxies that cannot listen on 0)
 * Stops on SIGTERM/SIGINT and prints its counters to stderr.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "common.h"

/* One read() at most; shared by every connection (single thread). */
#define SGB_READ_BYTES (256 * 1024)
/* Stream mode: one write() at most, and the websocket frame size when the
 * target speaks websocket itself (the ws direct column). That column shows
 * what the client can take, so it gets frames as large as the largest a
 * proxy sends (spicegate: 256 KiB); 64 KiB frames cost the target four
 * writev() calls per 256 KiB and made the column look client-bound when
 * it was not. */
#define SGB_STREAM_WRITE_BYTES (256 * 1024)
#define SGB_STREAM_FRAME_BYTES (256 * 1024)
/* Echo: stop reading while this much is waiting to go back. */
#define SGB_PENDING_MAX_BYTES (256 * 1024)
/* An upgrade request larger than this is not from our client. */
#define SGB_REQUEST_MAX_BYTES 4096

typedef enum {
    CONN_DETECT = 0,              /* first 4 bytes: "GET " or "REDQ" */
    CONN_UPGRADE,                 /* reading the HTTP upgrade request */
    CONN_LINK,                    /* reading the SPICE link message */
    CONN_MODE,                    /* link consumed: stream/sink/echo */
} ConnState;

typedef struct {
    int fd;
    ConnState state;
    bool ws;
    bool closing;                 /* flush pending, then close */
    SgbMode mode;
    char *req;                    /* upgrade request (CONN_DETECT/UPGRADE) */
    size_t req_len;
    uint8_t link[SGB_LINK_HEADER_BYTES + SGB_LINK_MAX_BODY];
    size_t link_len;
    size_t link_want;
    SgbWsParser parser;
    uint8_t *pending;             /* bytes owed to the peer */
    size_t pending_len;
    size_t pending_cap;
    uint64_t in_bytes;            /* mode payload received (sink offset) */
    uint64_t out_bytes;           /* stream payload sent (pattern offset) */
    uint64_t acked;
    uint8_t frame_hdr[SGB_WS_HEADER_MAX];
    size_t frame_hdr_len;         /* header bytes of the frame still unsent */
    size_t frame_hdr_off;
    uint64_t frame_left;          /* payload bytes of the frame still unsent */
    uint32_t events;
    SSL *ssl;                     /* TLS mode only */
    bool handshaking;             /* SSL_accept not done yet */
    bool ssl_want_read;           /* the last SSL call waits for input */
    bool ssl_want_write;          /* ... or for room to write */
} Conn;

static int epfd;
static uint8_t readbuf[SGB_READ_BYTES];
static volatile sig_atomic_t stopping;
static SSL_CTX *ssl_ctx;          /* NULL: plain TCP */
static struct {
    uint64_t accepted, closed, corrupt, bad_link, bad_ws;
    uint64_t tls_done, tls_resumed, bad_tls;
    uint64_t streamed, sunk, echoed;
} stats;

static void
on_signal(int sig)
{
    (void)sig;
    stopping = 1;
}

static void
set_events(Conn *c, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.ptr = c };

    if (events == c->events)
        return;
    c->events = events;
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void
conn_free(Conn *c)
{
    epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
    SSL_free(c->ssl);
    close(c->fd);
    free(c->req);
    free(c->pending);
    free(c);
    stats.closed++;
}

/* What the last SSL call on @c returned (@r): the epoll interest it waits
 * for, or a broken connection. Returns -1 with errno EAGAIN (wait) or EPIPE
 * (give up), as send()/recv() would. */
static ssize_t
tls_result(Conn *c, int r)
{
    int err = SSL_get_error(c->ssl, r);

    c->ssl_want_read = err == SSL_ERROR_WANT_READ;
    c->ssl_want_write = err == SSL_ERROR_WANT_WRITE;
    if (r > 0)
        return r;
    if (c->ssl_want_read || c->ssl_want_write) {
        errno = EAGAIN;
        return -1;
    }
    if (err == SSL_ERROR_ZERO_RETURN)
        return 0;
    ERR_clear_error();
    errno = EPIPE;
    return -1;
}

static ssize_t
tls_write(Conn *c, const void *data, size_t len)
{
    return tls_result(c, SSL_write(c->ssl, data, len > INT32_MAX ? INT32_MAX : (int)len));
}

/* As many whole records as fit in @cap (one SSL_read returns at most one
 * record, 16 KiB; reading on until the buffer is nearly full matches the
 * plain path's one large recv(), and leaves no record half read inside
 * OpenSSL, where epoll would not see it). */
static ssize_t
tls_read(Conn *c, uint8_t *buf, size_t cap)
{
    size_t got = 0;

    while (cap - got >= 16384) {
        ssize_t n = tls_result(c, SSL_read(c->ssl, buf + got, (int)(cap - got)));

        if (n <= 0) {
            /* Waiting for input is what EPOLLIN (when not held back
             * because the peer is slow to take our echo) is for. */
            c->ssl_want_read = false;
            if (got > 0 && (n == 0 || errno == EAGAIN))
                return (ssize_t)got;   /* the end or the error comes next time */
            return n;
        }
        got += (size_t)n;
    }
    return (ssize_t)got;
}

/* Queues @len bytes for the peer (copied). */
static void
pending_add(Conn *c, const void *data, size_t len)
{
    sgb_append(&c->pending, &c->pending_len, &c->pending_cap, data, len);
}

/* Sends @len payload bytes, in a binary frame if this is a websocket. */
static void
send_payload(Conn *c, const void *data, size_t len)
{
    if (c->ws) {
        uint8_t hdr[SGB_WS_HEADER_MAX];

        pending_add(c, hdr, sgb_ws_header(hdr, SGB_WS_BINARY, len, false, NULL));
    }
    pending_add(c, data, len);
}

/* Writes what is pending; false if the connection broke. */
static bool
flush_pending(Conn *c)
{
    while (c->pending_len > 0) {
        ssize_t n = c->ssl != NULL ? tls_write(c, c->pending, c->pending_len)
                                   : send(c->fd, c->pending, c->pending_len, MSG_NOSIGNAL);

        if (n < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return true;
            return false;
        }
        memmove(c->pending, c->pending + n, c->pending_len - (size_t)n);
        c->pending_len -= (size_t)n;
    }
    return true;
}

/* Stream mode: as many pattern bytes as the socket takes. */
static bool
stream_out(Conn *c)
{
    for (int rounds = 0; rounds < 16; rounds++) {
        struct iovec iov[2];
        int iovcnt = 0;
        size_t payload;
        ssize_t n;

        if (c->ws && c->frame_left == 0 && c->frame_hdr_off == c->frame_hdr_len) {
            c->frame_hdr_len = sgb_ws_header(c->frame_hdr, SGB_WS_BINARY,
                                             SGB_STREAM_FRAME_BYTES, false, NULL);
            c->frame_hdr_off = 0;
            c->frame_left = SGB_STREAM_FRAME_BYTES;
        }
        if (c->ws && c->frame_hdr_off < c->frame_hdr_len) {
            iov[iovcnt].iov_base = c->frame_hdr + c->frame_hdr_off;
            iov[iovcnt++].iov_len = c->frame_hdr_len - c->frame_hdr_off;
        }
        payload = SGB_STREAM_WRITE_BYTES;
        if (c->ws && c->frame_left < payload)
            payload = (size_t)c->frame_left;
        iov[iovcnt].iov_base = (void *)sgb_pattern_at(c->out_bytes);
        iov[iovcnt++].iov_len = payload;
        /* TLS: one piece per SSL_write; a header written alone is
         * accounted for below as a short write. */
        n = c->ssl != NULL ? tls_write(c, iov[0].iov_base, iov[0].iov_len)
                           : writev(c->fd, iov, iovcnt);
        if (n < 0)
            return errno == EAGAIN || errno == EINTR;
        if (c->ws) {
            size_t h = c->frame_hdr_len - c->frame_hdr_off;

            if ((size_t)n < h) {
                c->frame_hdr_off += (size_t)n;
                return true;
            }
            c->frame_hdr_off = c->frame_hdr_len;
            n -= (ssize_t)h;
            c->frame_left -= (uint64_t)n;
        }
        c->out_bytes += (uint64_t)n;
        stats.streamed += (uint64_t)n;
    }
    return true;
}

/* Mode payload (raw bytes after the link, or websocket payload after it). */
static bool
on_mode_bytes(Conn *c, uint8_t *data, size_t len)
{
    switch (c->mode) {
    case SGB_MODE_STREAM:
        return true;              /* nothing is expected; ignore */
    case SGB_MODE_SINK: {
        uint64_t before = c->in_bytes / SGB_ACK_BYTES;
        uint8_t ack[8];

        if (!sgb_pattern_check(c->in_bytes, data, len)) {
            fprintf(stderr, "sgbench-target: corrupt byte stream near offset %llu\n",
                    (unsigned long long)c->in_bytes);
            stats.corrupt++;
            sgb_le64_write(ack, SGB_ACK_CORRUPT);
            send_payload(c, ack, sizeof(ack));
            c->closing = true;
            return false;
        }
        c->in_bytes += len;
        stats.sunk += len;
        if (c->in_bytes / SGB_ACK_BYTES != before) {
            sgb_le64_write(ack, c->in_bytes);
            send_payload(c, ack, sizeof(ack));
        }
        return true;
    }
    case SGB_MODE_ECHO:
    case SGB_MODE_HELLO:
        stats.echoed += len;
        send_payload(c, data, len);
        return true;
    }
    return false;
}

/* Bytes of the SPICE-level stream (whatever transport carried them). */
static bool
on_stream_bytes(Conn *c, uint8_t *data, size_t len)
{
    while (len > 0 && c->state == CONN_LINK) {
        size_t want = c->link_want ? c->link_want : SGB_LINK_HEADER_BYTES;
        size_t n = want - c->link_len < len ? want - c->link_len : len;

        memcpy(c->link + c->link_len, data, n);
        c->link_len += n;
        data += n;
        len -= n;
        if (c->link_len < want)
            return true;
        if (c->link_want == 0) {
            long body = sgb_link_body_size(c->link);

            if (body < 0) {
                stats.bad_link++;
                return false;
            }
            c->link_want = SGB_LINK_HEADER_BYTES + (size_t)body;
            continue;
        }
        c->mode = sgb_link_mode(c->link);
        if (c->mode == 0) {
            stats.bad_link++;
            return false;
        }
        c->state = CONN_MODE;
        if (c->mode == SGB_MODE_HELLO) {
            uint8_t hello[SGB_HELLO_BYTES];

            memcpy(hello, sgb_pattern(), sizeof(hello));
            send_payload(c, hello, sizeof(hello));
        }
    }
    if (len == 0)
        return true;
    return on_mode_bytes(c, data, len);
}

static bool
on_ws_data(void *ctx, int opcode, uint8_t *data, size_t len)
{
    Conn *c = ctx;

    if (opcode != SGB_WS_BINARY) {
        stats.bad_ws++;
        return false;
    }
    return on_stream_bytes(c, data, len);
}

static bool
on_ws_control(void *ctx, int opcode, const uint8_t *data, size_t len)
{
    Conn *c = ctx;
    uint8_t hdr[SGB_WS_HEADER_MAX];

    if (opcode == SGB_WS_PING) {
        pending_add(c, hdr, sgb_ws_header(hdr, SGB_WS_PONG, len, false, NULL));
        pending_add(c, data, len);
        return true;
    }
    if (opcode == SGB_WS_CLOSE) {
        /* Echo the close, then close the socket once it is written. */
        pending_add(c, hdr, sgb_ws_header(hdr, SGB_WS_CLOSE, len >= 2 ? 2 : 0, false, NULL));
        pending_add(c, data, len >= 2 ? 2 : 0);
        c->closing = true;
        return false;
    }
    return true;
}

/* Finds header @name (case-insensitive) in the request; copies its value. */
static bool
find_header(const char *req, const char *name, char *out, size_t cap)
{
    size_t nlen = strlen(name);

    for (const char *line = strstr(req, "\r\n"); line != NULL; line = strstr(line, "\r\n")) {
        const char *v;
        size_t vlen;

        line += 2;
        if (strncasecmp(line, name, nlen) != 0 || line[nlen] != ':')
            continue;
        v = line + nlen + 1;
        while (*v == ' ')
            v++;
        vlen = strcspn(v, "\r\n");
        if (vlen >= cap)
            return false;
        memcpy(out, v, vlen);
        out[vlen] = '\0';
        return true;
    }
    return false;
}

/* The request is complete: answer 101 with "binary", or drop it. */
static bool
answer_upgrade(Conn *c)
{
    char key[128], proto[256], accept[29], resp[512];
    int n;

    if (!find_header(c->req, "Sec-WebSocket-Key", key, sizeof(key)) ||
        !find_header(c->req, "Sec-WebSocket-Protocol", proto, sizeof(proto)) ||
        strstr(proto, "binary") == NULL) {
        stats.bad_ws++;
        return false;
    }
    sgb_ws_accept(key, accept);
    n = snprintf(resp, sizeof(resp),
                 "HTTP/1.1 101 Switching Protocols\r\n"
                 "Upgrade: websocket\r\n"
                 "Connection: Upgrade\r\n"
                 "Sec-WebSocket-Accept: %s\r\n"
                 "Sec-WebSocket-Protocol: binary\r\n\r\n",
                 accept);
    pending_add(c, resp, (size_t)n);
    return true;
}

/* Returns false when the connection is to be closed (after a flush if
 * c->closing). */
static bool
on_bytes(Conn *c, uint8_t *data, size_t len)
{
    if (c->state == CONN_DETECT || c->state == CONN_UPGRADE) {
        char *end;
        size_t used;

        if (c->state == CONN_DETECT && c->req_len + len >= 4) {
            uint8_t first[4];
            size_t have = c->req_len;

            if (have > 0)
                memcpy(first, c->req, have);
            memcpy(first + have, data, 4 - have);
            if (memcmp(first, "GET ", 4) != 0) {
                /* Plain TCP: what we held goes to the link parser. */
                c->state = CONN_LINK;
                if (have > 0 && !on_stream_bytes(c, (uint8_t *)c->req, have))
                    return false;
                free(c->req);
                c->req = NULL;
                return on_stream_bytes(c, data, len);
            }
            c->state = CONN_UPGRADE;
        }
        if (c->req_len + len > SGB_REQUEST_MAX_BYTES) {
            stats.bad_ws++;
            return false;
        }
        if (c->req == NULL) {
            c->req = malloc(SGB_REQUEST_MAX_BYTES + 1);
            if (c->req == NULL)
                return false;
        }
        memcpy(c->req + c->req_len, data, len);
        c->req_len += len;
        c->req[c->req_len] = '\0';
        if (c->state == CONN_DETECT)
            return true;
        end = strstr(c->req, "\r\n\r\n");
        if (end == NULL)
            return true;
        used = (size_t)(end + 4 - c->req);
        if (!answer_upgrade(c))
            return false;
        c->ws = true;
        c->state = CONN_LINK;
        sgb_ws_parser_init(&c->parser, true);
        c->parser.on_data = on_ws_data;
        c->parser.on_control = on_ws_control;
        c->parser.ctx = c;
        /* Anything after the request already belongs to the websocket. */
        len = c->req_len - used;
        memmove(readbuf, c->req + used, len);
        free(c->req);
        c->req = NULL;
        data = readbuf;
        if (len == 0)
            return true;
    }
    if (c->ws)
        return sgb_ws_parse(&c->parser, data, len);
    return on_stream_bytes(c, data, len);
}

static void
update_events(Conn *c)
{
    uint32_t ev = 0;

    if (!c->closing && c->pending_len < SGB_PENDING_MAX_BYTES)
        ev |= EPOLLIN;
    if (c->pending_len > 0 || (c->state == CONN_MODE && c->mode == SGB_MODE_STREAM))
        ev |= EPOLLOUT;
    if (c->ssl != NULL) {
        /* What OpenSSL last waited for (a handshake, or a record that
         * needs the other direction) is what wakes the connection. */
        if (c->handshaking)
            ev = 0;
        if (c->ssl_want_read)
            ev |= EPOLLIN;
        if (c->ssl_want_write)
            ev |= EPOLLOUT;
    }
    set_events(c, ev);
}

static void
on_conn_event(Conn *c, uint32_t events)
{
    if (c->handshaking) {
        int r = SSL_accept(c->ssl);

        if (r != 1) {
            if (tls_result(c, r) < 0 && errno == EAGAIN) {
                update_events(c);
                return;
            }
            stats.bad_tls++;
            conn_free(c);
            return;
        }
        c->handshaking = false;
        c->ssl_want_read = c->ssl_want_write = false;
        if (stats.tls_done++ == 0)   /* bench/run reports what was negotiated */
            fprintf(stderr, "sgbench-target: first TLS handshake: %s %s\n",
                    SSL_get_version(c->ssl), SSL_get_cipher_name(c->ssl));
        if (SSL_session_reused(c->ssl))
            stats.tls_resumed++;
        /* The client's first bytes may already be here. */
        events |= EPOLLIN;
    }
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        ssize_t n = c->ssl != NULL ? tls_read(c, readbuf, sizeof(readbuf))
                                   : recv(c->fd, readbuf, sizeof(readbuf), 0);

        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            conn_free(c);
            return;
        }
        if (n > 0 && !on_bytes(c, readbuf, (size_t)n) && !c->closing) {
            conn_free(c);
            return;
        }
    }
    if (!flush_pending(c)) {
        conn_free(c);
        return;
    }
    if (c->closing && c->pending_len == 0) {
        conn_free(c);
        return;
    }
    if (c->pending_len == 0 && c->state == CONN_MODE && c->mode == SGB_MODE_STREAM &&
        (events & EPOLLOUT) && !stream_out(c)) {
        conn_free(c);
        return;
    }
    update_events(c);
}

static void
on_accept(int lfd)
{
    for (int i = 0; i < 64; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        int one = 1;
        Conn *c;
        struct epoll_event ev;

        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                perror("sgbench-target: accept");
            return;
        }
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c = calloc(1, sizeof(*c));
        if (c == NULL) {
            close(fd);
            return;
        }
        c->fd = fd;
        c->events = EPOLLIN;
        if (ssl_ctx != NULL) {
            c->ssl = SSL_new(ssl_ctx);
            if (c->ssl == NULL || SSL_set_fd(c->ssl, fd) != 1) {
                SSL_free(c->ssl);
                free(c);
                close(fd);
                return;
            }
            SSL_set_accept_state(c->ssl);
            c->handshaking = true;
        }
        ev.events = EPOLLIN;
        ev.data.ptr = c;
        epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
        stats.accepted++;
    }
}

static int
listen_on(const char *spec, int *port)
{
    struct sockaddr_in sa = { .sin_family = AF_INET };
    socklen_t salen = sizeof(sa);
    char host[64];
    const char *colon = strrchr(spec, ':');
    int one = 1;
    int fd;

    if (colon == NULL || (size_t)(colon - spec) >= sizeof(host)) {
        fprintf(stderr, "sgbench-target: --listen wants ADDR:PORT\n");
        return -1;
    }
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = '\0';
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
        fprintf(stderr, "sgbench-target: bad address %s\n", host);
        return -1;
    }
    sa.sin_port = htons((uint16_t)atoi(colon + 1));
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 4096) < 0) {
        perror("sgbench-target: bind/listen");
        return -1;
    }
    getsockname(fd, (struct sockaddr *)&sa, &salen);
    *port = ntohs(sa.sin_port);
    return fd;
}

static void
raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int
main(int argc, char **argv)
{
    const char *listen_spec = "127.0.0.1:0";
    const char *port_file = NULL;
    const char *tls_cert = NULL, *tls_key = NULL;
    struct sigaction sa = { .sa_handler = on_signal };
    struct epoll_event lev = { .events = EPOLLIN };
    struct epoll_event events[256];
    int lfd, port;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--listen") == 0 && i + 1 < argc) {
            listen_spec = argv[++i];
        } else if (strcmp(argv[i], "--port-file") == 0 && i + 1 < argc) {
            port_file = argv[++i];
        } else if (strcmp(argv[i], "--tls-cert") == 0 && i + 1 < argc) {
            tls_cert = argv[++i];
        } else if (strcmp(argv[i], "--tls-key") == 0 && i + 1 < argc) {
            tls_key = argv[++i];
        } else if (strcmp(argv[i], "--pick-port") == 0) {
            lfd = listen_on("127.0.0.1:0", &port);
            if (lfd < 0)
                return 1;
            printf("%d\n", port);
            return 0;
        } else {
            fprintf(stderr, "usage: sgbench-target [--listen ADDR:PORT] [--port-file FILE]\n"
                            "                      [--tls-cert FILE --tls-key FILE]\n"
                            "       sgbench-target --pick-port\n");
            return 2;
        }
    }
    if ((tls_cert == NULL) != (tls_key == NULL)) {
        fprintf(stderr, "sgbench-target: --tls-cert and --tls-key go together\n");
        return 2;
    }
    if (tls_cert != NULL) {
        /* OpenSSL's defaults, as a SPICE server built on it gets them. */
        ssl_ctx = SSL_CTX_new(TLS_server_method());
        if (ssl_ctx == NULL ||
            SSL_CTX_use_certificate_chain_file(ssl_ctx, tls_cert) != 1 ||
            SSL_CTX_use_PrivateKey_file(ssl_ctx, tls_key, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_check_private_key(ssl_ctx) != 1) {
            fprintf(stderr, "sgbench-target: cannot use %s / %s: ", tls_cert, tls_key);
            ERR_print_errors_fp(stderr);
            return 1;
        }
        SSL_CTX_set_mode(ssl_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                                  SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    }
    raise_nofile();
    signal(SIGPIPE, SIG_IGN);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sgb_pattern();
    lfd = listen_on(listen_spec, &port);
    if (lfd < 0)
        return 1;
    epfd = epoll_create1(EPOLL_CLOEXEC);
    lev.data.ptr = NULL;
    epoll_ctl(epfd, EPOLL_CTL_ADD, lfd, &lev);
    if (port_file != NULL) {
        char tmp[4096];
        FILE *f;

        /* Written under a temporary name and renamed, so a reader never
         * sees a half-written port. */
        snprintf(tmp, sizeof(tmp), "%s.tmp", port_file);
        f = fopen(tmp, "w");
        if (f == NULL || fprintf(f, "%d\n", port) < 0 || fclose(f) != 0 ||
            rename(tmp, port_file) != 0) {
            perror("sgbench-target: port file");
            return 1;
        }
    } else {
        printf("%d\n", port);
        fflush(stdout);
    }
    while (!stopping) {
        int n = epoll_wait(epfd, events, 256, 1000);

        for (int i = 0; i < n; i++) {
            if (events[i].data.ptr == NULL)
                on_accept(lfd);
            else
                on_conn_event(events[i].data.ptr, events[i].events);
        }
    }
    fprintf(stderr,
            "sgbench-target: accepted=%llu closed=%llu bad_link=%llu bad_ws=%llu corrupt=%llu "
            "streamed=%llu sunk=%llu echoed=%llu\n",
            (unsigned long long)stats.accepted, (unsigned long long)stats.closed,
            (unsigned long long)stats.bad_link, (unsigned long long)stats.bad_ws,
            (unsigned long long)stats.corrupt, (unsigned long long)stats.streamed,
            (unsigned long long)stats.sunk, (unsigned long long)stats.echoed);
    if (ssl_ctx != NULL)
        fprintf(stderr, "sgbench-target: TLS handshakes=%llu resumed=%llu failed=%llu\n",
                (unsigned long long)stats.tls_done, (unsigned long long)stats.tls_resumed,
                (unsigned long long)stats.bad_tls);
    return 0;
}
