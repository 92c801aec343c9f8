/* SPDX-License-Identifier: Apache-2.0 */
/* listen_socket.c - bind and listen (see listen_socket.h). */
#include "autoconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gio/gio.h>

#include "listen_socket.h"
#include "preflight.h"

/* What every accepted connection should have, set once here: the kernel
 * copies them from the listening socket to each socket accept() returns,
 * so the accept path makes no system call for them.
 * - No Nagle: SPICE input events and acks are tiny and latency-bound.
 * - TCP keepalive: a browser whose machine or network vanished sends no
 *   FIN; the kernel probes it and fails the socket, which ends the
 *   session. Its timers cost nothing per idle connection, unlike lws'
 *   validity timers (listener.c), which this replaces. */
static void
set_inherited_options(int fd)
{
    int on = 1, idle = SG_KEEPALIVE_IDLE_S, interval = SG_KEEPALIVE_INTERVAL_S,
        probes = SG_KEEPALIVE_PROBES;

    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &probes, sizeof(probes));
}

int
sg_listen_socket_open(const char *host, guint port, guint *bound_port, GError **error)
{
    /* [server] listen holds an IP address, never a name (config.c). */
    struct addrinfo hints = { .ai_flags = AI_PASSIVE | AI_NUMERICSERV | AI_NUMERICHOST,
                              .ai_socktype = SOCK_STREAM };
    struct addrinfo *res = NULL;
    struct sockaddr_storage addr;
    socklen_t alen = sizeof(addr);
    char service[16];
    int rc, fd, one = 1, zero = 0;

    g_snprintf(service, sizeof(service), "%u", port);
    hints.ai_family = host == NULL ? AF_INET6 : AF_UNSPEC;
    rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0) {
        g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "cannot resolve %s: %s",
                    host ? host : "*", gai_strerror(rc));
        return -1;
    }
    fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0 && errno == EAFNOSUPPORT && host == NULL) {
        /* A kernel without IPv6 (ipv6.disable=1): every IPv4 address. */
        freeaddrinfo(res);
        hints.ai_family = AF_INET;
        if (getaddrinfo(NULL, service, &hints, &res) != 0) {
            g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "cannot resolve *");
            return -1;
        }
        fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    }
    if (fd < 0) {
        g_set_error(error, G_IO_ERROR, g_io_error_from_errno(errno), "socket: %s",
                    g_strerror(errno));
        freeaddrinfo(res);
        return -1;
    }
    /* TIME_WAIT leftovers of a previous run must not block a restart. */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    set_inherited_options(fd);
    if (res->ai_family == AF_INET6 && host == NULL)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, SOMAXCONN) < 0 ||
        getsockname(fd, (struct sockaddr *)&addr, &alen) < 0) {
        int err = errno;

        g_set_error(error, G_IO_ERROR, g_io_error_from_errno(err),
                    "cannot listen on %s%s%s:%u: %s%s", host && strchr(host, ':') ? "[" : "",
                    host ? host : "*", host && strchr(host, ':') ? "]" : "", port,
                    g_strerror(err), sg_preflight_bind_hint(err));
        close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    *bound_port = ntohs(addr.ss_family == AF_INET6
                            ? ((struct sockaddr_in6 *)&addr)->sin6_port
                            : ((struct sockaddr_in *)&addr)->sin_port);
    return fd;
}
