/* SPDX-License-Identifier: Apache-2.0 */
/* splice_pipe.c - kernel pipes for splice(2), and a small pool of them. */
#define _GNU_SOURCE 1             /* splice(), F_SETPIPE_SZ */
#include "autoconfig.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <unistd.h>

#include "splice_pipe.h"

/* Enough for every session of a busy worker to find one ready; beyond that
 * pipes are closed when given back. */
#define SG_PIPE_POOL_MAX 32
/* Pooled pipes are closed once the pool has gone unused this long: a quiet
 * proxy holds no pipes (each is two file descriptors). */
#define SG_PIPE_POOL_IDLE_S 2

static SgPipe *pool[SG_PIPE_POOL_MAX];
static guint pool_count;
static guint trim_timer;
static bool used_since_tick;

static void
pipe_close(SgPipe *pipe_)
{
    close(pipe_->rd);
    close(pipe_->wr);
    g_free(pipe_);
}

static void
pool_drain(void)
{
    while (pool_count > 0)
        pipe_close(pool[--pool_count]);
}

static gboolean
on_trim_tick(gpointer data)
{
    (void)data;
    if (used_since_tick) {
        used_since_tick = false;
        return G_SOURCE_CONTINUE;
    }
    pool_drain();
    trim_timer = 0;
    return G_SOURCE_REMOVE;
}

SgPipe *
sg_pipe_get(gsize capacity)
{
    int fds[2];
    SgPipe *pipe_;

    used_since_tick = true;
    if (pool_count > 0)
        return pool[--pool_count];
    if (pipe(fds) < 0)
        return NULL;
    for (int i = 0; i < 2; i++) {
        if (fcntl(fds[i], F_SETFL, O_NONBLOCK) < 0 || fcntl(fds[i], F_SETFD, FD_CLOEXEC) < 0) {
            close(fds[0]);
            close(fds[1]);
            return NULL;
        }
    }
    /* The default 64 KiB would cut a 256 KiB message into four. Refused
     * above pipe-max-size (or the user's pipe quota): the default works,
     * only with more loop turns. */
    (void)fcntl(fds[1], F_SETPIPE_SZ, (int)capacity);
    pipe_ = g_new0(SgPipe, 1);
    pipe_->rd = fds[0];
    pipe_->wr = fds[1];
    return pipe_;
}

void
sg_pipe_put(SgPipe *pipe_)
{
    if (pipe_ == NULL)
        return;
    if (pipe_->len == 0 && pool_count < SG_PIPE_POOL_MAX) {
        pool[pool_count++] = pipe_;
        if (trim_timer == 0)
            trim_timer = g_timeout_add_seconds(SG_PIPE_POOL_IDLE_S, on_trim_tick, NULL);
        return;
    }
    pipe_close(pipe_);
}

gssize
sg_pipe_fill(SgPipe *pipe_, int from_fd, gsize max)
{
    ssize_t n = splice(from_fd, NULL, pipe_->wr, NULL, max, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);

    if (n > 0)
        pipe_->len += (gsize)n;
    return n;
}

gssize
sg_pipe_drain(SgPipe *pipe_, int to_fd)
{
    gsize moved = 0;

    while (pipe_->len > 0) {
        ssize_t n = splice(pipe_->rd, NULL, to_fd, NULL, pipe_->len,
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (moved > 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                break;
            return -1;
        }
        if (n == 0)
            break;
        pipe_->len -= (gsize)n;
        moved += (gsize)n;
    }
    return (gssize)moved;
}

gssize
sg_pipe_read_all(SgPipe *pipe_, guint8 *buf)
{
    gsize got = 0;

    while (pipe_->len > 0) {
        ssize_t n = read(pipe_->rd, buf + got, pipe_->len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;            /* the bytes are counted in len: cannot happen */
        pipe_->len -= (gsize)n;
        got += (gsize)n;
    }
    return (gssize)got;
}

void
sg_pipe_pool_clear(void)
{
    pool_drain();
    g_clear_handle_id(&trim_timer, g_source_remove);
    used_since_tick = false;
}
