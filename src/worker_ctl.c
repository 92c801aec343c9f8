/* SPDX-License-Identifier: Apache-2.0 */
/* worker_ctl.c - requests from the master to the workers, and fleets.
 *
 * Owns: the wire records, a worker's server (one watch on the event core)
 * and the master's fan-out. Must not: keep a session, or block a worker's
 * loop (its socket is non-blocking; an answer that cannot be sent at once
 * is dropped and the master counts that worker as silent).
 */
#define _GNU_SOURCE 1             /* memfd_create(), MSG_CMSG_CLOEXEC */
#include "autoconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib.h>
#include <json-glib/json-glib.h>

#include "event_core.h"
#include "hub.h"
#include "shared_zone.h"
#include "worker_ctl.h"

#define SG_CTL_MAGIC 0x53474331u    /* "SGC1" */

enum {
    CTL_OP_CLOSE = 1,
    CTL_OP_LIST = 2,
};

/* 256 MiB: a list of a million sessions is about that; more means a
 * broken worker, not a busy one. */
#define SG_CTL_LIST_MAX_BYTES (256u << 20)

enum {
    CTL_OK = 0,
    CTL_BAD_REQUEST = 1,
};

typedef struct {
    guint32 magic;
    guint32 seq;
    guint8 op;
    guint8 by;                    /* SgCtlBy */
    guint16 reason;               /* SgCloseReason */
    guint32 pad0;
    guint64 id;
    char value[SG_CTL_VALUE_MAX + 1]; /* NUL-terminated */
} CtlRequest;

typedef struct {
    guint32 magic;
    guint32 seq;
    guint32 status;
    guint32 count;
    /* The workers whose sessions the answer covers: 1 from a worker; from
     * the master to the admin process (sg_fleet_serve()), those of its
     * workers that answered and those that did not. */
    guint32 answered;
    guint32 silent;
} CtlAnswer;

/* --- what a worker does ------------------------------------------------------ */

typedef struct {
    SgCtlCloseFunc close;
    SgCloseReason reason;
    guint closed;
    guint64 console;              /* SG_CTL_BY_CONSOLE */
} CloseWalk;

static void
close_one(const SgHubSession *s, gpointer data)
{
    CloseWalk *walk = data;

    if (!s->closed && walk->close(s->owner, walk->reason))
        walk->closed++;
}

static void
close_console(const SgHubSession *s, gpointer data)
{
    CloseWalk *walk = data;

    if (s->facts.has_console && s->facts.console == walk->console)
        close_one(s, walk);
}

static void
set_string_or_null(JsonObject *o, const char *name, const char *value)
{
    if (value != NULL)
        json_object_set_string_member(o, name, value);
    else
        json_object_set_null_member(o, name);
}

static void
list_one(const SgHubSession *s, gpointer data)
{
    JsonArray *out = data;
    JsonObject *o = json_object_new();
    gint64 age_us = g_get_monotonic_time() - s->started_us;
    g_autoptr(GDateTime) epoch = g_date_time_new_from_unix_utc(0);
    g_autoptr(GDateTime) at = NULL;
    g_autofree char *text = NULL;

    /* Wall-clock time of the start: now minus its monotonic age, so that
     * a clock step since does not make it lie by the step. */
    at = g_date_time_add(epoch, g_get_real_time() - MAX(age_us, 0));
    text = g_date_time_format(at, "%Y-%m-%dT%H:%M:%S.%fZ");
    json_object_set_int_member(o, "session", (gint64)s->id);
    set_string_or_null(o, "client", s->client);
    set_string_or_null(o, "client_addr", s->client_addr);
    set_string_or_null(o, "state", s->facts.state);
    set_string_or_null(o, "channel", s->facts.channel);
    if (s->facts.has_console)
        json_object_set_int_member(o, "console", s->facts.console);
    else
        json_object_set_null_member(o, "console");
    set_string_or_null(o, "instance", s->facts.instance);
    set_string_or_null(o, "target", s->facts.target);
    set_string_or_null(o, "token_tag", s->facts.token_tag);
    set_string_or_null(o, "since", text);
    json_object_set_int_member(o, "bytes_up", (gint64)s->bytes_up);
    json_object_set_int_member(o, "bytes_down", (gint64)s->bytes_down);
    json_array_add_object_element(out, o);
}

void
sg_ctl_list_local(SgHub *hub, JsonArray *out)
{
    sg_hub_foreach(hub, list_one, out);
}

guint
sg_ctl_close_local(SgHub *hub, const SgCtlClose *what, SgCtlCloseFunc close)
{
    CloseWalk walk = { .close = close, .reason = what->reason };
    const SgHubSession *s;

    g_return_val_if_fail((guint)what->reason < SG_CLOSE_REASONS, 0);
    switch (what->by) {
    case SG_CTL_BY_ID:
        s = sg_hub_find(hub, what->id);
        if (s != NULL)
            close_one(s, &walk);
        break;
    case SG_CTL_BY_TOKEN_TAG:
        sg_hub_find_by(hub, SG_HUB_BY_TOKEN_TAG, what->value, close_one, &walk);
        break;
    case SG_CTL_BY_INSTANCE:
        sg_hub_find_by(hub, SG_HUB_BY_INSTANCE, what->value, close_one, &walk);
        break;
    case SG_CTL_BY_CLIENT_ADDR:
        sg_hub_find_by(hub, SG_HUB_BY_CLIENT_ADDR, what->value, close_one, &walk);
        break;
    case SG_CTL_BY_CONSOLE:
        /* No index by SPICE connection id: a walk, for an admin's request. */
        walk.console = what->id;
        sg_hub_foreach(hub, close_console, &walk);
        break;
    default:
        g_return_val_if_reached(0);
    }
    return walk.closed;
}

/* --- a worker's server ------------------------------------------------------- */

struct SgCtlServer {
    int fd;
    SgWatch *watch;
    SgHub *hub;
    SgCtlCloseFunc close;
    SgCtlGoneFunc on_gone;
    gpointer data;
};

static bool
request_valid(const CtlRequest *req, ssize_t n)
{
    return n == (ssize_t)sizeof(*req) && req->magic == SG_CTL_MAGIC &&
           (req->op == CTL_OP_CLOSE || req->op == CTL_OP_LIST) && req->by <= SG_CTL_BY_CONSOLE &&
           req->reason < SG_CLOSE_REASONS &&
           memchr(req->value, '\0', sizeof(req->value)) != NULL;
}

/* @arr as JSON in a memfd, or -1 (*@count: how many elements). */
static int
array_to_memfd(JsonArray *arr, guint *count)
{
    g_autoptr(JsonNode) root = json_node_new(JSON_NODE_ARRAY);
    g_autoptr(JsonGenerator) gen = json_generator_new();
    g_autofree char *text = NULL;
    gsize len = 0, done = 0;
    int fd;

    *count = json_array_get_length(arr);
    json_node_set_array(root, arr);
    json_generator_set_root(gen, root);
    text = json_generator_to_data(gen, &len);
    fd = memfd_create("spicegate-list", MFD_CLOEXEC);
    if (fd < 0)
        return -1;
    while (done < len) {
        ssize_t n = write(fd, text + done, len - done);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            close(fd);
            return -1;
        }
        done += (gsize)n;
    }
    return fd;
}

/* Sends @ans, with @fd (unless -1) as SCM_RIGHTS. */
static ssize_t
send_answer(int sock, const CtlAnswer *ans, int fd)
{
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    struct iovec iov = { .iov_base = (void *)ans, .iov_len = sizeof(*ans) };
    struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };

    if (fd >= 0) {
        struct cmsghdr *cmsg;

        memset(&control, 0, sizeof(control));
        msg.msg_control = control.buf;
        msg.msg_controllen = sizeof(control.buf);
        cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
    }
    return sendmsg(sock, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* Our sessions as JSON in a memfd, or -1 (*@count: how many). */
static int
list_to_memfd(SgHub *hub, guint *count)
{
    g_autoptr(JsonArray) arr = json_array_new();

    sg_ctl_list_local(hub, arr);
    return array_to_memfd(arr, count);
}

static void
serve_one(SgCtlServer *server, const CtlRequest *req, ssize_t n)
{
    CtlAnswer ans = { .magic = SG_CTL_MAGIC, .seq = n >= 8 ? req->seq : 0, .answered = 1 };
    int list_fd = -1;

    if (!request_valid(req, n)) {
        g_warning("control: a malformed request from the master (%zd bytes); ignored", n);
        ans.status = CTL_BAD_REQUEST;
    } else if (req->op == CTL_OP_LIST) {
        list_fd = list_to_memfd(server->hub, &ans.count);
        if (list_fd < 0) {
            g_warning("control: cannot list the sessions: %s", g_strerror(errno));
            ans.status = CTL_BAD_REQUEST;
        }
    } else {
        SgCtlClose what = {
            .by = (SgCtlBy)req->by, .id = req->id, .value = req->value,
            .reason = (SgCloseReason)req->reason,
        };

        ans.count = sg_ctl_close_local(server->hub, &what, server->close);
        g_debug("control: closed %u session(s)", ans.count);
    }
    /* The master waits for this; if it cannot go out now, the master
     * counts us as silent rather than have our loop wait. */
    if (send_answer(server->fd, &ans, list_fd) != sizeof(ans))
        g_warning("control: cannot answer the master: %s", g_strerror(errno));
    if (list_fd >= 0)
        close(list_fd);
}

static void
server_gone(SgCtlServer *server)
{
    g_clear_pointer(&server->watch, sg_watch_remove);
    if (server->on_gone != NULL)
        server->on_gone(server->data);
}

static void
on_server_io(SgWatch *watch, int fd, GIOCondition ready, gpointer data)
{
    SgCtlServer *server = data;

    (void)watch;
    if (ready & G_IO_IN) {
        for (;;) {
            CtlRequest req;
            ssize_t n = recv(fd, &req, sizeof(req), MSG_DONTWAIT | MSG_TRUNC);

            if (n < 0 && errno == EINTR)
                continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                return;
            if (n <= 0) {
                server_gone(server);
                return;
            }
            serve_one(server, &req, MIN(n, (ssize_t)sizeof(req) + 1));
        }
    }
    if (ready & (G_IO_HUP | G_IO_ERR))
        server_gone(server);
}

SgCtlServer *
sg_ctl_server_new(int fd, SgHub *hub, SgCtlCloseFunc close, SgCtlGoneFunc on_gone,
                  gpointer data)
{
    SgCtlServer *server = g_new0(SgCtlServer, 1);
    int flags = fcntl(fd, F_GETFL);

    if (flags >= 0)
        fcntl(fd, F_SETFL, flags | O_NONBLOCK);
    server->fd = fd;
    server->hub = hub;
    server->close = close;
    server->on_gone = on_gone;
    server->data = data;
    server->watch = sg_watch_fd(fd, G_IO_IN, on_server_io, server);
    return server;
}

void
sg_ctl_server_free(SgCtlServer *server)
{
    if (server == NULL)
        return;
    g_clear_pointer(&server->watch, sg_watch_remove);
    close(server->fd);
    g_free(server);
}

/* --- fleets -------------------------------------------------------------------- */

struct SgFleet {
    guint count;
    guint workers;                /* the workers behind its members (relay: the master's) */
    int *fds;                     /* remote: [count], -1 while a worker is down */
    guint32 seq;
    SgHub *hub;                   /* local */
    SgCtlCloseFunc close;
};

SgFleet *
sg_fleet_new_remote(guint count)
{
    SgFleet *fleet;

    g_return_val_if_fail(count > 0 && count <= SG_CTL_FLEET_MAX, NULL);
    fleet = g_new0(SgFleet, 1);
    fleet->count = count;
    fleet->workers = count;
    fleet->fds = g_new(int, count);
    for (guint i = 0; i < count; i++)
        fleet->fds[i] = -1;
    return fleet;
}

SgFleet *
sg_fleet_new_local(SgHub *hub, SgCtlCloseFunc close)
{
    SgFleet *fleet = g_new0(SgFleet, 1);

    fleet->count = 1;
    fleet->workers = 1;
    fleet->hub = hub;
    fleet->close = close;
    return fleet;
}

void
sg_fleet_free(SgFleet *fleet)
{
    if (fleet == NULL)
        return;
    for (guint i = 0; fleet->fds != NULL && i < fleet->count; i++) {
        if (fleet->fds[i] >= 0)
            close(fleet->fds[i]);
    }
    g_free(fleet->fds);
    g_free(fleet);
}

void
sg_fleet_set_fd(SgFleet *fleet, guint index, int fd)
{
    g_return_if_fail(fleet->fds != NULL && index < fleet->count);
    if (fleet->fds[index] >= 0 && fleet->fds[index] != fd)
        close(fleet->fds[index]);
    fleet->fds[index] = fd;
}

/* Drops what is waiting on @fd: answers to requests that timed out (a
 * memfd they carried is not even received: without room for it, the
 * kernel closes it). */
static void
drain_stale(int fd)
{
    CtlAnswer ans;

    while (recv(fd, &ans, sizeof(ans), MSG_DONTWAIT) > 0)
        ;
}

/* Receives one answer and the descriptor it may carry (*@passed, else
 * -1). Returns what recvmsg() did. */
static ssize_t
recv_answer(int sock, CtlAnswer *ans, int *passed)
{
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } control;
    struct iovec iov = { .iov_base = ans, .iov_len = sizeof(*ans) };
    struct msghdr msg = {
        .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
        .msg_controllen = sizeof(control.buf),
    };
    ssize_t got = recvmsg(sock, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);

    *passed = -1;
    for (struct cmsghdr *c = got >= 0 ? CMSG_FIRSTHDR(&msg) : NULL; c != NULL;
         c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
            c->cmsg_len == CMSG_LEN(sizeof(int)))
            memcpy(passed, CMSG_DATA(c), sizeof(int));
    }
    return got;
}

/* What the master does with worker @index's good answer. */
typedef void (*AnswerFunc)(guint index, const CtlAnswer *ans, int passed, gpointer data);

/* Sends @req to every worker (but those @skip says cannot hold what it
 * names) and hands each good answer to @func, until every worker answered
 * or @timeout_ms passed. Returns how many did not answer. */
static guint
fleet_ask(SgFleet *fleet, CtlRequest *req, int timeout_ms, guint *answered, AnswerFunc func,
          gpointer data)
{
    g_autofree bool *waiting = g_new0(bool, fleet->count);
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    guint pending = 0, silent = 0;

    req->magic = SG_CTL_MAGIC;
    req->seq = ++fleet->seq;
    for (guint i = 0; i < fleet->count; i++) {
        int fd = fleet->fds[i];

        /* Ids are index + 1 + k * count (hub.h): only one worker can
         * hold a given id. */
        if (req->op == CTL_OP_CLOSE && req->by == SG_CTL_BY_ID && req->id > 0 &&
            (req->id - 1) % fleet->count != i) {
            (*answered)++;
            continue;
        }
        if (fd < 0) {
            silent += fleet->workers / fleet->count;
            continue;
        }
        drain_stale(fd);
        if (send(fd, req, sizeof(*req), MSG_DONTWAIT | MSG_NOSIGNAL) != sizeof(*req)) {
            silent += fleet->workers / fleet->count;
            continue;
        }
        waiting[i] = true;
        pending++;
    }
    while (pending > 0) {
        struct pollfd pfds[SG_CTL_FLEET_MAX];
        guint owner[SG_CTL_FLEET_MAX];
        nfds_t n = 0;
        gint64 left_ms = (deadline - g_get_monotonic_time() + 999) / 1000;
        int rc;

        if (left_ms <= 0)
            break;
        for (guint i = 0; i < fleet->count; i++) {
            if (waiting[i]) {
                owner[n] = i;
                pfds[n++] = (struct pollfd){ .fd = fleet->fds[i], .events = POLLIN };
            }
        }
        rc = poll(pfds, n, (int)MIN(left_ms, G_MAXINT));
        if (rc < 0 && errno != EINTR)
            break;
        for (nfds_t k = 0; rc > 0 && k < n; k++) {
            CtlAnswer ans;
            int passed = -1;
            ssize_t got;

            if (pfds[k].revents == 0)
                continue;
            got = recv_answer(pfds[k].fd, &ans, &passed);
            if (got == sizeof(ans) && ans.magic == SG_CTL_MAGIC && ans.seq != req->seq) {
                if (passed >= 0)
                    close(passed);
                continue;             /* a late answer to an earlier request */
            }
            if (got < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            waiting[owner[k]] = false;
            pending--;
            if (got == sizeof(ans) && ans.magic == SG_CTL_MAGIC && ans.status == CTL_OK &&
                ans.answered + ans.silent <= fleet->workers) {
                func(owner[k], &ans, passed, data);
                *answered += ans.answered;
                silent += ans.silent;
            } else {
                /* gone (EOF), or it could not read us */
                silent += fleet->workers / fleet->count;
            }
            if (passed >= 0)
                close(passed);
        }
    }
    return silent + pending * (fleet->workers / fleet->count);
}

static void
sum_closed(guint index, const CtlAnswer *ans, int passed, gpointer data)
{
    guint *closed = data;

    (void)index;
    (void)passed;
    *closed += ans->count;
}

static bool
fleet_failed(SgFleet *fleet, guint silent, GError **error)
{
    if (silent == 0)
        return true;
    g_set_error(error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT, "%u of %u worker(s) did not answer",
                silent, fleet->workers);
    return false;
}

bool
sg_fleet_close(SgFleet *fleet, const SgCtlClose *what, int timeout_ms, guint *closed,
               guint *answered, GError **error)
{
    CtlRequest req = { .op = CTL_OP_CLOSE };

    *closed = 0;
    *answered = 0;
    if (fleet->hub != NULL) {
        *closed = sg_ctl_close_local(fleet->hub, what, fleet->close);
        *answered = 1;
        return true;
    }
    if (what->value != NULL && strlen(what->value) > SG_CTL_VALUE_MAX) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_INVALID_ARGUMENT,
                    "a value longer than %d bytes", SG_CTL_VALUE_MAX);
        return false;
    }
    req.by = (guint8)what->by;
    req.reason = (guint16)what->reason;
    req.id = what->id;
    if (what->value != NULL)
        g_strlcpy(req.value, what->value, sizeof(req.value));
    return fleet_failed(fleet, fleet_ask(fleet, &req, timeout_ms, answered, sum_closed, closed),
                        error);
}

/* Reads worker @index's list out of its memfd into @data's slot
 * (JsonArray *[count]): answers come in any order, lists go out in the
 * workers'. */
static void
join_list(guint index, const CtlAnswer *ans, int passed, gpointer data)
{
    JsonArray **lists = data;
    JsonArray *out;
    g_autoptr(JsonParser) parser = json_parser_new();
    g_autofree char *text = NULL;
    struct stat st;
    JsonNode *root;
    gsize done = 0;

    (void)ans;
    out = lists[index] = json_array_new();
    if (passed < 0 || fstat(passed, &st) < 0 || st.st_size < 0 ||
        (guint64)st.st_size > SG_CTL_LIST_MAX_BYTES) {
        g_warning("control: a worker's list is missing or too large; skipped");
        return;
    }
    text = g_malloc((gsize)st.st_size + 1);
    while (done < (gsize)st.st_size) {
        ssize_t n = pread(passed, text + done, (gsize)st.st_size - done, (off_t)done);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        done += (gsize)n;
    }
    text[done] = '\0';
    if (!json_parser_load_from_data(parser, text, (gssize)done, NULL) ||
        (root = json_parser_get_root(parser)) == NULL || !JSON_NODE_HOLDS_ARRAY(root)) {
        g_warning("control: a worker's list is not a JSON array; skipped");
        return;
    }
    {
        JsonArray *arr = json_node_get_array(root);

        for (guint i = 0; i < json_array_get_length(arr); i++)
            json_array_add_element(out, json_node_copy(json_array_get_element(arr, i)));
    }
}

bool
sg_fleet_list(SgFleet *fleet, int timeout_ms, JsonArray **sessions, guint *answered,
              GError **error)
{
    CtlRequest req = { .op = CTL_OP_LIST };
    g_autofree JsonArray **lists = NULL;
    guint silent;

    *sessions = json_array_new();
    *answered = 0;
    if (fleet->hub != NULL) {
        sg_ctl_list_local(fleet->hub, *sessions);
        *answered = 1;
        return true;
    }
    lists = g_new0(JsonArray *, fleet->count);
    silent = fleet_ask(fleet, &req, timeout_ms, answered, join_list, lists);
    for (guint i = 0; i < fleet->count; i++) {
        for (guint k = 0; lists[i] != NULL && k < json_array_get_length(lists[i]); k++)
            json_array_add_element(*sessions,
                                   json_node_copy(json_array_get_element(lists[i], k)));
        g_clear_pointer(&lists[i], json_array_unref);
    }
    return fleet_failed(fleet, silent, error);
}

/* --- the master's relay for the admin process ------------------------------ */

SgFleet *
sg_fleet_new_relay(int fd, guint workers)
{
    SgFleet *fleet;

    g_return_val_if_fail(workers > 0 && workers <= SG_CTL_FLEET_MAX, NULL);
    fleet = sg_fleet_new_remote(1);
    fleet->workers = workers;
    sg_fleet_set_fd(fleet, 0, fd);
    return fleet;
}

bool
sg_fleet_serve(SgFleet *fleet, int fd, int timeout_ms)
{
    CtlRequest req;
    ssize_t n = recv(fd, &req, sizeof(req), MSG_DONTWAIT | MSG_TRUNC);
    CtlAnswer ans = { .magic = SG_CTL_MAGIC };
    g_autoptr(GError) error = NULL;
    int list_fd = -1;

    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return true;
    if (n <= 0)
        return false;
    n = MIN(n, (ssize_t)sizeof(req) + 1);
    ans.seq = n >= 8 ? req.seq : 0;
    if (!request_valid(&req, n)) {
        g_warning("control: a malformed request from the admin process (%zd bytes); ignored",
                  n);
        ans.status = CTL_BAD_REQUEST;
    } else if (req.op == CTL_OP_LIST) {
        g_autoptr(JsonArray) sessions = NULL;

        /* Partial or not: what the workers that answered hold, and how
         * many did not. */
        sg_fleet_list(fleet, timeout_ms, &sessions, &ans.answered, &error);
        list_fd = array_to_memfd(sessions, &ans.count);
        if (list_fd < 0) {
            g_warning("control: cannot pass the sessions on: %s", g_strerror(errno));
            ans.status = CTL_BAD_REQUEST;
        }
    } else {
        SgCtlClose what = {
            .by = (SgCtlBy)req.by, .id = req.id, .value = req.value,
            .reason = (SgCloseReason)req.reason,
        };

        sg_fleet_close(fleet, &what, timeout_ms, &ans.count, &ans.answered, &error);
    }
    ans.silent = ans.answered <= fleet->workers ? fleet->workers - ans.answered : 0;
    if (send_answer(fd, &ans, list_fd) != sizeof(ans))
        g_warning("control: cannot answer the admin process: %s", g_strerror(errno));
    if (list_fd >= 0)
        close(list_fd);
    return true;
}
