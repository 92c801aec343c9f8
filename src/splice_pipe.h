/* SPDX-License-Identifier: Apache-2.0 */
/* splice_pipe.h - kernel pipes for the zero-copy relay.
 *
 * Toward a plain (non-TLS) websocket the SPICE server's bytes go
 * socket -> pipe -> socket with splice(2): the kernel moves page references
 * and our process never copies the payload. A pipe is only held while a
 * message is in flight, and idle pipes are kept in a small pool: idle
 * sessions hold none, and a busy one does not open and close two file
 * descriptors per message.
 */
#pragma once

#include <glib.h>

typedef struct {
    int rd;                       /* read end, non-blocking */
    int wr;                       /* write end, non-blocking */
    gsize len;                    /* bytes in the pipe */
} SgPipe;

/* An empty pipe that holds at least @capacity bytes where the system allows
 * (pipe-max-size), or NULL when none can be had (out of file descriptors):
 * then the caller copies through memory instead. */
SgPipe *sg_pipe_get(gsize capacity);

/* Moves up to @max bytes from socket @from_fd into the pipe. Returns the
 * count, 0 at end of stream, or -1 with errno (EAGAIN: nothing to read). */
gssize sg_pipe_fill(SgPipe *pipe_, int from_fd, gsize max);

/* Moves what the pipe holds into socket @to_fd, as much as it takes.
 * Returns the count moved, or -1 with errno (EAGAIN: the socket is full). */
gssize sg_pipe_drain(SgPipe *pipe_, int to_fd);

/* Copies what the pipe holds into @buf (at least @pipe_->len bytes) and
 * empties it: for when the socket is full mid-message and the rest must
 * be handed to someone who buffers. Returns the count, or -1 with errno. */
gssize sg_pipe_read_all(SgPipe *pipe_, guint8 *buf);

/* Gives back an empty pipe (@pipe->len == 0); a pipe that still holds bytes
 * is closed instead, since it cannot be emptied safely. */
void sg_pipe_put(SgPipe *pipe);

/* Closes the pooled pipes and stops the pool's trim timer: at exit, after
 * the last session, so that the process leaves no descriptor or source. */
void sg_pipe_pool_clear(void);
