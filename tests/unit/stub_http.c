/* SPDX-License-Identifier: Apache-2.0 */
/* stub_http.c - the fault-injecting HTTP/1.1 test peer; see stub_http.h.
 * Not a Keystone or a Nova: it sends what the test tells it to. */
#define _GNU_SOURCE 1             /* accept4(), memmem() */
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <check.h>
#include <glib-unix.h>
#include <glib.h>

#include "run_until.h"
#include "stub_http.h"

/* An endless answer stops here even if the client never does (the client
 * under test caps bodies at 4 MiB and headers at 64 KiB). */
#define STUB_ENDLESS_MAX (64u << 20)
#define STUB_MAX_REQUEST (8u << 20)

struct StubHttp {
    int listen_fd;
    guint listen_id;
    guint16 port;
    StubHandler handler;
    gpointer handler_data;
    GQueue replies;               /* StubReply* */
    GPtrArray *requests;          /* StubRequest* */
    GList *conns;                 /* Conn* */
    guint client_closed;
    guint64 endless_sent;
};

typedef struct {
    StubHttp *stub;
    int fd;
    guint source_id;
    GIOCondition watching;
    GByteArray *in;
    GByteArray *out;
    gsize out_off;
    StubReply *reply;             /* once the request is in */
    guint filler_n;
    bool shut;                    /* our side ended; waiting for the client's close */
} Conn;

static gboolean on_conn(gint fd, GIOCondition cond, gpointer data);

static void
request_free(gpointer data)
{
    StubRequest *r = data;

    g_free(r->method);
    g_free(r->path);
    g_hash_table_unref(r->headers);
    g_free(r->body);
    g_free(r);
}

void
stub_reply_free(StubReply *reply)
{
    if (reply == NULL)
        return;
    g_clear_pointer(&reply->bytes, g_bytes_unref);
    g_free(reply);
}

StubReply *
stub_reply_raw(StubAction action, const char *bytes, gssize len)
{
    StubReply *r = g_new0(StubReply, 1);

    r->action = action;
    if (bytes != NULL)
        r->bytes = g_bytes_new(bytes, len < 0 ? strlen(bytes) : (gsize)len);
    return r;
}

StubReply *
stub_reply_new(int status, const char *headers, const char *body, gssize body_len)
{
    gsize blen = body == NULL ? 0 : body_len < 0 ? strlen(body) : (gsize)body_len;
    GString *s = g_string_new(NULL);
    StubReply *r = g_new0(StubReply, 1);
    gsize len;

    g_string_append_printf(s, "HTTP/1.1 %d Stub\r\n%sContent-Length: %" G_GSIZE_FORMAT
                           "\r\nConnection: close\r\n\r\n", status, headers ? headers : "", blen);
    if (blen > 0)
        g_string_append_len(s, body, (gssize)blen);
    r->action = STUB_ANSWER;
    len = s->len;
    r->bytes = g_bytes_new_take(g_string_free(s, FALSE), len);
    return r;
}

static void
conn_free(Conn *c)
{
    c->stub->conns = g_list_remove(c->stub->conns, c);
    g_clear_handle_id(&c->source_id, g_source_remove);
    close(c->fd);
    g_byte_array_unref(c->in);
    g_byte_array_unref(c->out);
    stub_reply_free(c->reply);
    g_free(c);
}

static void
conn_watch(Conn *c, GIOCondition cond)
{
    if (cond == c->watching && c->source_id != 0)
        return;
    g_clear_handle_id(&c->source_id, g_source_remove);
    c->watching = cond;
    c->source_id = g_unix_fd_add(c->fd, cond, on_conn, c);
}

static void
queue_out(Conn *c, const void *data, gsize len)
{
    g_byte_array_append(c->out, data, (guint)len);
}

static void
refill(Conn *c)
{
    if (c->stub->endless_sent >= STUB_ENDLESS_MAX)
        return;
    if (c->reply->action == STUB_ENDLESS_BODY) {
        char chunk[16384];

        memset(chunk, 'a', sizeof chunk);
        queue_out(c, chunk, sizeof chunk);
    } else {
        for (int i = 0; i < 64; i++) {
            char line[160];
            int n = g_snprintf(line, sizeof line, "X-Filler-%u: %0100d\r\n", c->filler_n++, 0);

            queue_out(c, line, (gsize)n);
        }
    }
}

/* A whole request in c->in? Then record it and pick its answer. */
static bool
take_request(Conn *c)
{
    StubHttp *stub = c->stub;
    const guint8 *end = memmem(c->in->data, c->in->len, "\r\n\r\n", 4);
    g_auto(GStrv) lines = NULL;
    g_auto(GStrv) first = NULL;
    StubRequest *req;
    gsize head_len;
    gsize body_len = 0;
    const char *cl;

    if (end == NULL)
        return false;
    head_len = (gsize)(end - c->in->data) + 4;
    {
        g_autofree char *head = g_strndup((const char *)c->in->data, head_len - 4);

        lines = g_strsplit(head, "\r\n", -1);
    }
    req = g_new0(StubRequest, 1);
    req->headers = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    for (guint i = 1; lines[i] != NULL; i++) {
        char *colon = strchr(lines[i], ':');

        if (colon == NULL)
            continue;
        *colon = '\0';
        g_hash_table_replace(req->headers, g_ascii_strdown(g_strstrip(lines[i]), -1),
                             g_strdup(g_strstrip(colon + 1)));
    }
    cl = g_hash_table_lookup(req->headers, "content-length");
    if (cl != NULL)
        body_len = (gsize)g_ascii_strtoull(cl, NULL, 10);
    if (c->in->len < head_len + body_len) {
        request_free(req);
        return false;
    }
    first = g_strsplit(lines[0], " ", 3);
    req->method = g_strdup(first[0]);
    req->path = g_strdup(first[0] && first[1] ? first[1] : "");
    req->body = g_strndup((const char *)c->in->data + head_len, body_len);
    req->body_len = body_len;
    g_ptr_array_add(stub->requests, req);

    if (stub->handler != NULL)
        c->reply = stub->handler(stub, req, stub->handler_data);
    if (c->reply == NULL)
        c->reply = g_queue_pop_head(&stub->replies);
    if (c->reply == NULL)
        c->reply = stub_reply_new(500, NULL, "stub: no reply queued", -1);
    if (c->reply->bytes != NULL) {
        gsize len;
        const void *data = g_bytes_get_data(c->reply->bytes, &len);

        queue_out(c, data, len);
    }
    if (c->reply->action == STUB_ENDLESS_HEADERS)
        queue_out(c, "HTTP/1.1 200 OK\r\n", 17);
    return true;
}

/* Returns FALSE when @c is gone. */
static gboolean
conn_write(Conn *c)
{
    while (c->out_off < c->out->len) {
        ssize_t n = send(c->fd, c->out->data + c->out_off, c->out->len - c->out_off,
                         MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return TRUE;
        if (n <= 0) {             /* the client went away mid-answer */
            c->stub->client_closed++;
            conn_free(c);
            return FALSE;
        }
        c->out_off += (gsize)n;
        if (c->reply->action == STUB_ENDLESS_BODY || c->reply->action == STUB_ENDLESS_HEADERS)
            c->stub->endless_sent += (guint64)n;
        if (c->out_off == c->out->len) {
            g_byte_array_set_size(c->out, 0);
            c->out_off = 0;
            if (c->reply->action == STUB_ENDLESS_BODY ||
                c->reply->action == STUB_ENDLESS_HEADERS)
                refill(c);
        }
    }
    if (c->reply->action == STUB_ANSWER && !c->shut) {
        /* All sent: end our side, and wait for the client to close its. */
        shutdown(c->fd, SHUT_WR);
        c->shut = true;
    }
    return TRUE;
}

static gboolean
on_conn(gint fd, GIOCondition cond, gpointer data)
{
    Conn *c = data;

    if (cond & (G_IO_IN | G_IO_HUP | G_IO_ERR)) {
        guint8 buf[65536];
        ssize_t n = recv(fd, buf, sizeof buf, 0);

        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            /* nothing after all */
        } else if (n <= 0) {
            c->stub->client_closed++;
            c->source_id = 0;
            conn_free(c);
            return G_SOURCE_REMOVE;
        } else if (c->reply == NULL) {
            g_byte_array_append(c->in, buf, (guint)n);
            ck_assert_uint_lt(c->in->len, STUB_MAX_REQUEST);
            if (take_request(c) && c->reply->action == STUB_RESET) {
                struct linger lg = { .l_onoff = 1, .l_linger = 0 };

                setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
                c->source_id = 0;
                conn_free(c);
                return G_SOURCE_REMOVE;
            }
        }
        /* else: what the client sends after its request is ignored */
    }
    if (c->reply != NULL && c->out_off < c->out->len) {
        guint id = c->source_id;

        c->source_id = 0;         /* conn_watch() must not remove this source */
        if (!conn_write(c))
            return G_SOURCE_REMOVE;
        c->source_id = id;
    }
    if (c->reply != NULL && c->out_off < c->out->len) {
        if (c->watching != (G_IO_IN | G_IO_OUT)) {
            c->source_id = 0;
            conn_watch(c, G_IO_IN | G_IO_OUT);
            return G_SOURCE_REMOVE;
        }
    } else if (c->watching != G_IO_IN) {
        c->source_id = 0;
        conn_watch(c, G_IO_IN);
        return G_SOURCE_REMOVE;
    }
    return G_SOURCE_CONTINUE;
}

static gboolean
on_accept(gint fd, GIOCondition cond, gpointer data)
{
    StubHttp *stub = data;
    int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    Conn *c;

    (void)cond;
    if (cfd < 0)
        return G_SOURCE_CONTINUE;
    c = g_new0(Conn, 1);
    c->stub = stub;
    c->fd = cfd;
    c->in = g_byte_array_new();
    c->out = g_byte_array_new();
    stub->conns = g_list_prepend(stub->conns, c);
    conn_watch(c, G_IO_IN);
    return G_SOURCE_CONTINUE;
}

static int
loopback_socket(guint16 *port)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

StubHttp *
stub_http_new(void)
{
    StubHttp *stub = g_new0(StubHttp, 1);

    stub->listen_fd = loopback_socket(&stub->port);
    ck_assert_int_eq(listen(stub->listen_fd, 64), 0);
    stub->listen_id = g_unix_fd_add(stub->listen_fd, G_IO_IN, on_accept, stub);
    stub->requests = g_ptr_array_new_with_free_func(request_free);
    g_queue_init(&stub->replies);
    return stub;
}

void
stub_http_free(StubHttp *stub)
{
    if (stub == NULL)
        return;
    while (stub->conns != NULL)
        conn_free(stub->conns->data);
    g_source_remove(stub->listen_id);
    close(stub->listen_fd);
    g_queue_clear_full(&stub->replies, (GDestroyNotify)stub_reply_free);
    g_ptr_array_unref(stub->requests);
    g_free(stub);
}

guint16
stub_http_port(const StubHttp *stub)
{
    return stub->port;
}

char *
stub_http_url(const StubHttp *stub, const char *path)
{
    return g_strdup_printf("http://127.0.0.1:%u%s", stub->port, path);
}

void
stub_http_set_handler(StubHttp *stub, StubHandler handler, gpointer data)
{
    stub->handler = handler;
    stub->handler_data = data;
}

void
stub_http_push_reply(StubHttp *stub, StubReply *reply)
{
    g_queue_push_tail(&stub->replies, reply);
}

void
stub_http_push(StubHttp *stub, int status, const char *headers, const char *body)
{
    stub_http_push_reply(stub, stub_reply_new(status, headers, body, -1));
}

void
stub_http_push_action(StubHttp *stub, StubAction action)
{
    stub_http_push_reply(stub, stub_reply_raw(action, NULL, 0));
}

guint
stub_http_n_requests(const StubHttp *stub)
{
    return stub->requests->len;
}

const StubRequest *
stub_http_request(const StubHttp *stub, guint i)
{
    ck_assert_uint_lt(i, stub->requests->len);
    return g_ptr_array_index(stub->requests, i);
}

guint
stub_http_n_open(const StubHttp *stub)
{
    return g_list_length(stub->conns);
}

guint
stub_http_n_client_closed(const StubHttp *stub)
{
    return stub->client_closed;
}

guint64
stub_http_endless_sent(const StubHttp *stub)
{
    return stub->endless_sent;
}

guint16
stub_http_refused_port(void)
{
    guint16 port;
    int fd = loopback_socket(&port);

    close(fd);                    /* bound, never listening: connect() is refused */
    return port;
}

void
stub_run_until(gboolean (*cond)(gpointer data), gpointer data, guint deadline_ms)
{
    test_run_until(cond, data, deadline_ms);
}
