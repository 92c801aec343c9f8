/* SPDX-License-Identifier: Apache-2.0 */
/* worker_ctl.c - requests from the master to the workers, and fleets.
 *
 * Owns: the wire records, a worker's server (one watch on the event core)
 * and the master's fan-out. Must not: keep a session, or block a worker's
 * loop (its socket is non-blocking; an answer that cannot be sent at once
 * is dropped and the master counts that worker as silent).
 */
#include "autoconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib.h>

#include "event_core.h"
#include "hub.h"
#include "shared_zone.h"
#include "worker_ctl.h"

#define SG_CTL_MAGIC 0x53474331u    /* "SGC1" */

enum {
    CTL_OP_CLOSE = 1,
};

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
} CtlAnswer;

/* --- what a worker does ------------------------------------------------------ */

typedef struct {
    SgCtlCloseFunc close;
    SgCloseReason reason;
    guint closed;
} CloseWalk;

static void
close_one(const SgHubSession *s, gpointer data)
{
    CloseWalk *walk = data;

    if (!s->closed && walk->close(s->owner, walk->reason))
        walk->closed++;
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
           req->op == CTL_OP_CLOSE && req->by <= SG_CTL_BY_CLIENT_ADDR &&
           req->reason < SG_CLOSE_REASONS &&
           memchr(req->value, '\0', sizeof(req->value)) != NULL;
}

static void
serve_one(SgCtlServer *server, const CtlRequest *req, ssize_t n)
{
    CtlAnswer ans = { .magic = SG_CTL_MAGIC, .seq = n >= 8 ? req->seq : 0 };

    if (!request_valid(req, n)) {
        g_warning("control: a malformed request from the master (%zd bytes); ignored", n);
        ans.status = CTL_BAD_REQUEST;
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
    if (send(server->fd, &ans, sizeof(ans), MSG_DONTWAIT | MSG_NOSIGNAL) != sizeof(ans))
        g_warning("control: cannot answer the master: %s", g_strerror(errno));
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

/* Drops what is waiting on @fd: answers to requests that timed out. */
static void
drain_stale(int fd)
{
    CtlAnswer ans;

    while (recv(fd, &ans, sizeof(ans), MSG_DONTWAIT) > 0)
        ;
}

bool
sg_fleet_close(SgFleet *fleet, const SgCtlClose *what, int timeout_ms, guint *closed,
               guint *answered, GError **error)
{
    CtlRequest req = { .magic = SG_CTL_MAGIC, .op = CTL_OP_CLOSE };
    g_autofree bool *waiting = NULL;
    gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;
    guint pending = 0, silent = 0;

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
    req.seq = ++fleet->seq;
    req.by = (guint8)what->by;
    req.reason = (guint16)what->reason;
    req.id = what->id;
    if (what->value != NULL)
        g_strlcpy(req.value, what->value, sizeof(req.value));

    waiting = g_new0(bool, fleet->count);
    for (guint i = 0; i < fleet->count; i++) {
        int fd = fleet->fds[i];

        /* Ids are index + 1 + k * count (hub.h): only one worker can
         * hold a given id. */
        if (what->by == SG_CTL_BY_ID && what->id > 0 && (what->id - 1) % fleet->count != i) {
            (*answered)++;
            continue;
        }
        if (fd < 0) {
            silent++;
            continue;
        }
        drain_stale(fd);
        if (send(fd, &req, sizeof(req), MSG_DONTWAIT | MSG_NOSIGNAL) != sizeof(req)) {
            silent++;
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
            ssize_t got;

            if (pfds[k].revents == 0)
                continue;
            got = recv(pfds[k].fd, &ans, sizeof(ans), MSG_DONTWAIT);
            if (got == sizeof(ans) && ans.magic == SG_CTL_MAGIC && ans.seq != req.seq)
                continue;             /* a late answer to an earlier request */
            if (got < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            waiting[owner[k]] = false;
            pending--;
            if (got == sizeof(ans) && ans.magic == SG_CTL_MAGIC && ans.status == CTL_OK) {
                *closed += ans.count;
                (*answered)++;
            } else {
                silent++;             /* gone (EOF), or it could not read us */
            }
        }
    }
    silent += pending;
    if (silent > 0) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_TIMED_OUT,
                    "%u of %u worker(s) did not answer", silent, fleet->count);
        return false;
    }
    return true;
}
