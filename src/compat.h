/* SPDX-License-Identifier: Apache-2.0 */
/* compat.h - shims for the oldest versions we target (GLib 2.74, lws 4.1.6). */
#pragma once

#include <errno.h>
#include <unistd.h>

#include <glib.h>

/* g_clear_fd()/g_autofd arrived in GLib 2.76. */
static inline void
sg_close_fd(int *fd)
{
    if (*fd >= 0) {
        int saved = errno;
        close(*fd);
        errno = saved;
        *fd = -1;
    }
}
#define sg_autofd __attribute__((cleanup(sg_close_fd)))

/* lws 4.1.6 defines lws_wsi_close(w, to_kill) as lws_set_timeout(wsi, ...):
 * the argument is ignored and whatever is called `wsi` in the caller's scope
 * is closed. Never use it; this helper closes exactly the wsi it is given. */
#define sg_lws_close_async(w) \
    lws_set_timeout((w), PENDING_TIMEOUT_KILLED_BY_PROXY_CLIENT_CLOSE, LWS_TO_KILL_ASYNC)

/* lws 4.1.6 writes each lws_write() on an HTTP/2 stream as one DATA frame
 * and never splits it: anything over 16 KiB, the SETTINGS_MAX_FRAME_SIZE
 * every peer accepts (RFC 9113 4.2), makes curl and browsers drop the
 * connection. */
#define SG_HTTP2_MAX_FRAME_BYTES 16384

/* Whether @wsi is a stream inside an HTTP/2 connection (its own wsi has no
 * socket, and writes become DATA frames) rather than a connection. */
#define sg_lws_is_h2_stream(wsi) (lws_get_network_wsi(wsi) != (wsi))

/* The TCP socket under @wsi: an HTTP/2 stream's is its connection's (its
 * own lws_get_socket_fd() is not a socket of ours). */
#define sg_lws_socket_fd(wsi) lws_get_socket_fd(lws_get_network_wsi(wsi))

/* Whether every byte of @s is a visible ASCII character (0x21..0x7e): no
 * space, no control character that could end a header or a log line. */
static inline gboolean
sg_ascii_all_graph(const char *s)
{
    for (; *s != '\0'; s++) {
        if (!g_ascii_isgraph(*s))
            return FALSE;
    }
    return TRUE;
}

/* Ends a forked child with _exit(), not exit(): the atexit handlers and
 * stdio buffers it inherited are its parent's. A coverage build first
 * writes the child's line counters, which _exit() would lose (gcov writes
 * them from an exit handler). */
#ifdef SG_COVERAGE
void __gcov_dump(void);
#endif
G_GNUC_NORETURN static inline void
sg_child_exit(int status)
{
#ifdef SG_COVERAGE
    __gcov_dump();
#endif
    _exit(status);
}
