/* SPDX-License-Identifier: Apache-2.0 */
/* workers.c - the master process: starts the workers, forwards signals,
 * restarts a worker that dies.
 *
 * The master stays single-threaded and free of GLib sources on purpose: it
 * forks again whenever a worker must be restarted, and fork() in a process
 * with other threads (GLib's signal and child-watch helpers) could hand the
 * child a lock that no thread will ever release. So the master waits on a
 * signalfd and the workers' ready pipes with plain poll().
 *
 * Start-up: the master binds and listens, maps the shared zone (counters
 * and limit tables, shared_zone.h), then forks every worker on that
 * socket, each with its own control socketpair (worker_ctl.h), whose
 * master ends make up the master's fleet. A worker that exits before it
 * reported ready fails the whole start, with its status. A worker that
 * dies later is restarted; the connections waiting in the shared backlog
 * meanwhile go to the others.
 * Its zone slot is retired (totals kept, open sessions counted as lost,
 * limit counts given back) as soon as the master reaps it, before its
 * replacement can write there.
 *
 * Stop: SIGTERM drains. The master closes its copy of the listening
 * socket and passes SIGTERM on; each worker closes its own copy (the port
 * is then free for a new instance) and lets its consoles relay for up to
 * drain_timeout. SIGINT, or a second SIGTERM, is passed on as SIGINT:
 * the workers close their sessions with 1001 at once. A worker that has
 * not exited by then is killed (next_timeout_ms()).
 *
 * The admin API ([admin] listen, admin.h), when on, is served by one more
 * child, the admin process ("spicegate-admin"), forked on the admin
 * listening socket that the master bound and keeps (for its next
 * restart). It reads the zone, and asks for sessions over its own control
 * socketpair, which the master watches here: each request is answered by
 * asking the fleet (sg_fleet_serve(), synchronously, as before). It is
 * restarted like a worker when it dies, and stopped (SIGTERM) only once
 * the last worker has gone, so that /metrics shows a drain to its end.
 *
 * systemd: the master is the main PID. It reports STATUS= (sessions open
 * in every worker, read from the zone, and whether it drains) and, under
 * WatchdogSec=, WATCHDOG=1 from its poll loop: that proves the master
 * turns, and so reaps and restarts workers; a worker that hangs without
 * dying is not seen by it.
 */
#include "autoconfig.h"

#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <gio/gio.h>
#include <glib.h>

#include "admin.h"
#include "compat.h"
#include "listen_socket.h"
#include "log.h"
#include "workers.h"

/* A worker that dies is restarted after this long, so a worker that
 * crashes at once cannot turn the master into a fork loop. */
#define SG_WORKER_RESTART_DELAY_MS 1000

G_STATIC_ASSERT(SG_WORKERS_MAX <= SG_CTL_FLEET_MAX);

typedef struct {
    pid_t pid;                    /* 0: not running */
    int ready_fd;                 /* read end of its ready pipe, or -1 */
    bool ready;                   /* it listens */
    gint64 restart_at_us;         /* 0: no restart due */
} SgWorker;

typedef struct {
    guint count;
    SgWorker *workers;
    int listen_fd;
    guint port;
    bool all_ready_once;
    bool stopping;                /* SIGTERM or SIGINT came: draining, or hurried */
    bool hurried;                 /* SIGINT or a second SIGTERM: no drain */
    guint drain_timeout_s;        /* each worker's own, [server] drain_timeout */
    guint shutdown_timeout_s;     /* each worker's own, [server] shutdown_timeout */
    gint64 kill_at_us;            /* stopping: SIGKILL what is left then */
    int start_failure;            /* exit status when start-up failed, else -1 */
    SgZone *zone;                 /* shared with every worker */
    SgFleet *fleet;               /* our ends of the workers' control sockets */
    /* The admin process, when [admin] listen is on: */
    int admin_fd;                 /* its listening socket (kept for restarts), or -1 */
    const char *admin_token;      /* its bearer token (main.c's), or NULL */
    gint64 admin_start_time_us;
    pid_t admin_pid;              /* 0: not running */
    int admin_ctl;                /* our end of its control socket, or -1 */
    gint64 admin_restart_at_us;   /* 0: no restart due */
    gint64 admin_kill_at_us;      /* 0: not told to stop yet */
    bool admin_restarted;         /* it died once: say when it is back */
    int sfd;                      /* the signalfd */
    SgWorkerMain worker_main;
    SgWorkersReady on_ready;
    gpointer data;
    sigset_t old_mask;
    /* systemd, while $NOTIFY_SOCKET is set: */
    bool notify;
    char *status;                 /* the last STATUS= sent, or NULL */
    gint64 status_at_us;          /* next look at the zone, or 0 */
    guint64 watchdog_us;          /* WATCHDOG=1 this often, or 0 */
    gint64 watchdog_at_us;        /* the next one */
} SgMaster;

static void update_status(SgMaster *m);
/* sg_workers_set_reload_note()'s; the master's only. */
static SgWorkersReloadNote reload_note;

void
sg_workers_set_reload_note(SgWorkersReloadNote note)
{
    reload_note = note;
}

void
sg_notify_systemd(const char *state)
{
    const char *path = g_getenv("NOTIFY_SOCKET");
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    socklen_t slen;
    int fd;

    if (path == NULL || path[0] == '\0' || strlen(path) >= sizeof(sun.sun_path))
        return;
    memcpy(sun.sun_path, path, strlen(path));
    if (path[0] == '@')
        sun.sun_path[0] = '\0';     /* abstract socket */
    slen = offsetof(struct sockaddr_un, sun_path) + strlen(path);
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return;
    if (sendto(fd, state, strlen(state), 0, (struct sockaddr *)&sun, slen) < 0)
        g_warning("cannot notify systemd: %s", g_strerror(errno));
    close(fd);
}

bool
sg_notify_systemd_enabled(void)
{
    const char *path = g_getenv("NOTIFY_SOCKET");

    return path != NULL && path[0] != '\0';
}

guint
sg_stop_timeout_s(guint drain_timeout_s, guint shutdown_timeout_s)
{
    return drain_timeout_s + shutdown_timeout_s + SG_WORKER_STOP_MARGIN_S +
           SG_UNIT_STOP_MARGIN_S;
}

void
sg_notify_systemd_stopping(guint drain_timeout_s, guint shutdown_timeout_s)
{
    g_autofree char *state = g_strdup_printf(
        "STOPPING=1\nEXTEND_TIMEOUT_USEC=%" G_GUINT64_FORMAT,
        (guint64)sg_stop_timeout_s(drain_timeout_s, shutdown_timeout_s) * G_USEC_PER_SEC);

    sg_notify_systemd(state);
}

char *
sg_notify_status_text(SgRunState state, guint64 open, guint drain_timeout_s)
{
    switch (state) {
    case SG_RUN_DRAINING:
        return g_strdup_printf("draining: %" G_GUINT64_FORMAT " session(s) open, no new ones; "
                               "closed with 1001 after drain_timeout (%u s) if still open",
                               open, drain_timeout_s);
    case SG_RUN_STOPPING:
        return g_strdup_printf("stopping: closing %" G_GUINT64_FORMAT " session(s)", open);
    case SG_RUN_SERVING:
    default:
        return g_strdup_printf("serving: %" G_GUINT64_FORMAT " session(s) open", open);
    }
}

guint64
sg_notify_watchdog_period_us(void)
{
    const char *usec = g_getenv("WATCHDOG_USEC");
    const char *pid = g_getenv("WATCHDOG_PID");
    guint64 value, owner;

    if (usec == NULL || !g_ascii_string_to_unsigned(usec, 10, 1, G_MAXUINT64, &value, NULL))
        return 0;
    /* systemd sets WATCHDOG_PID for the main PID; a child that inherited
     * the variables is not watched. */
    if (pid != NULL && (!g_ascii_string_to_unsigned(pid, 10, 1, G_MAXINT, &owner, NULL) ||
                        owner != (guint64)getpid()))
        return 0;
    return MAX(value / 2, 1);
}

void
sg_notify_systemd_reloading(void)
{
    /* systemd 253+ (Type=notify-reload) wants the CLOCK_MONOTONIC time of
     * the reload's start with RELOADING=1; older ones ignore the field. */
    struct timespec ts;
    g_autofree char *state = NULL;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    state = g_strdup_printf("RELOADING=1\nMONOTONIC_USEC=%" G_GINT64_FORMAT,
                            (gint64)ts.tv_sec * G_USEC_PER_SEC + ts.tv_nsec / 1000);
    sg_notify_systemd(state);
}

static void
close_admin_fds(SgMaster *m)
{
    if (m->admin_fd >= 0)
        close(m->admin_fd);
    m->admin_fd = -1;
    if (m->admin_ctl >= 0)
        close(m->admin_ctl);
    m->admin_ctl = -1;
}

/* In a child just forked (a worker or the admin process): it must not
 * outlive the master, must not answer to systemd, and gets back the
 * signals the master blocked; and it holds none of the master's own
 * descriptors (the workers' ready pipes and control sockets, whose
 * sg_fleet_free() here closes ours, not their peers; the signalfd; the
 * admin API's). What a child keeps of the master's it takes first. */
static void
enter_child(SgMaster *m)
{
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() == 1)
        sg_child_exit(1);
    g_unsetenv("NOTIFY_SOCKET");
    g_unsetenv("WATCHDOG_USEC");
    g_unsetenv("WATCHDOG_PID");
    for (guint i = 0; i < m->count; i++) {
        if (m->workers[i].ready_fd >= 0)
            close(m->workers[i].ready_fd);
    }
    g_clear_pointer(&m->fleet, sg_fleet_free);
    close(m->sfd);
    close_admin_fds(m);
    sigprocmask(SIG_SETMASK, &m->old_mask, NULL);
}

/* Forks the admin process on m->admin_fd (admin.h); restarts it later if
 * that fails. */
static void
start_admin(SgMaster *m)
{
    int ctl[2];
    pid_t pid;

    m->admin_restart_at_us = 0;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl) < 0) {
        g_warning("admin process: cannot create a control socket: %s", g_strerror(errno));
        m->admin_restart_at_us = g_get_monotonic_time() + SG_WORKER_RESTART_DELAY_MS * 1000;
        return;
    }
    pid = fork();
    if (pid < 0) {
        g_warning("admin process: cannot fork: %s", g_strerror(errno));
        close(ctl[0]);
        close(ctl[1]);
        m->admin_restart_at_us = g_get_monotonic_time() + SG_WORKER_RESTART_DELAY_MS * 1000;
        return;
    }
    if (pid == 0) {
        SgAdminContext ctx = {
            .zone = m->zone, .token = m->admin_token,
            .start_time_us = m->admin_start_time_us, .workers = m->count,
            .fleet_timeout_ms = SG_ADMIN_RELAY_TIMEOUT_MS,
        };
        int listen_fd = m->admin_fd;
        int status;

        /* Of the master's descriptors it keeps only the admin socket: above
         * all not the public port's, which must be free once the master
         * closes it (a drain). */
        m->admin_fd = -1;
        enter_child(m);
        prctl(PR_SET_NAME, "spicegate-admin");
        if (m->listen_fd >= 0)
            close(m->listen_fd);
        close(ctl[0]);
        ctx.fleet = sg_fleet_new_relay(ctl[1], m->count);
        status = sg_admin_run_process(listen_fd, &ctx);
        sg_fleet_free(ctx.fleet);
        sg_child_exit(status);
    }
    close(ctl[1]);
    if (m->admin_ctl >= 0)
        close(m->admin_ctl);
    m->admin_ctl = ctl[0];
    m->admin_pid = pid;
    if (m->admin_restarted)
        g_message("admin process restarted (pid %d)", (int)pid);
}

static void
start_worker(SgMaster *m, guint index)
{
    SgWorker *w = &m->workers[index];
    int pipefd[2];
    int ctl[2];
    pid_t pid;

    w->restart_at_us = 0;
    if (pipe(pipefd) < 0 || fcntl(pipefd[0], F_SETFD, FD_CLOEXEC) < 0) {
        g_warning("worker %u: cannot create a pipe: %s", index, g_strerror(errno));
        w->restart_at_us = g_get_monotonic_time() + SG_WORKER_RESTART_DELAY_MS * 1000;
        return;
    }
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl) < 0) {
        g_warning("worker %u: cannot create a control socket: %s", index, g_strerror(errno));
        close(pipefd[0]);
        close(pipefd[1]);
        w->restart_at_us = g_get_monotonic_time() + SG_WORKER_RESTART_DELAY_MS * 1000;
        return;
    }
    pid = fork();
    if (pid < 0) {
        g_warning("worker %u: cannot fork: %s", index, g_strerror(errno));
        close(pipefd[0]);
        close(pipefd[1]);
        close(ctl[0]);
        close(ctl[1]);
        w->restart_at_us = g_get_monotonic_time() + SG_WORKER_RESTART_DELAY_MS * 1000;
        return;
    }
    if (pid == 0) {
        /* The worker keeps the public port; its own control socket's
         * other end, like every other worker's, is the master's. */
        enter_child(m);
        close(pipefd[0]);
        close(ctl[0]);
        sg_child_exit(m->worker_main(index, m->listen_fd, m->port, pipefd[1], m->zone, ctl[1],
                             m->data));
    }
    close(pipefd[1]);
    close(ctl[1]);
    sg_fleet_set_fd(m->fleet, index, ctl[0]);
    w->pid = pid;
    w->ready_fd = pipefd[0];
    w->ready = false;
}

/* Once every worker listens for the first time: the port file, the log
 * line and READY=1 (through @on_ready). */
static void
check_all_ready(SgMaster *m)
{
    if (m->all_ready_once)
        return;
    for (guint i = 0; i < m->count; i++) {
        if (!m->workers[i].ready)
            return;
    }
    m->all_ready_once = true;
    m->on_ready(m->port, m->count, m->data);
    update_status(m);
}

static void
on_ready_report(SgMaster *m, guint index)
{
    SgWorker *w = &m->workers[index];
    char text[4] = "";
    ssize_t n = read(w->ready_fd, text, sizeof(text) - 1);

    /* EOF without "ok": the worker failed and is exiting; its exit status
     * tells the rest (on_child_exit). */
    close(w->ready_fd);
    w->ready_fd = -1;
    if (n != 3 || strcmp(text, "ok\n") != 0)
        return;
    w->ready = true;
    if (m->all_ready_once)
        g_message("worker %u restarted (pid %d)", index, (int)w->pid);
    check_all_ready(m);
}

static void
stop_workers(SgMaster *m, int sig)
{
    for (guint i = 0; i < m->count; i++) {
        if (m->workers[i].pid > 0)
            kill(m->workers[i].pid, sig);
    }
}

static guint
count_running(const SgMaster *m)
{
    guint n = 0;

    for (guint i = 0; i < m->count; i++)
        n += m->workers[i].pid > 0;
    return n;
}

/* What the sessions in every worker are, for STATUS=, sent when it
 * changed. Called every SG_NOTIFY_STATUS_PERIOD_MS while $NOTIFY_SOCKET is
 * set (a read of the zone: a few cache lines), and at each turn. */
static void
update_status(SgMaster *m)
{
    SgRunState state = !m->stopping ? SG_RUN_SERVING
                       : m->hurried || m->drain_timeout_s == 0 ? SG_RUN_STOPPING
                                                               : SG_RUN_DRAINING;
    SgZoneStats st;
    g_autofree char *text = NULL;
    g_autofree char *line = NULL;

    if (!m->notify || !m->all_ready_once)
        return;
    m->status_at_us = g_get_monotonic_time() + SG_NOTIFY_STATUS_PERIOD_MS * 1000;
    sg_zone_read(m->zone, &st);
    text = sg_notify_status_text(state, st.open, m->drain_timeout_s);
    if (g_strcmp0(text, m->status) == 0)
        return;
    line = g_strconcat("STATUS=", text, NULL);
    sg_notify_systemd(line);
    g_free(m->status);
    m->status = g_steal_pointer(&text);
}

/* @drain: SIGTERM (the workers drain, then close), else at once (SIGINT,
 * a second SIGTERM, a failed start). The listening socket closes either
 * way, so that a new instance can bind the port. */
static void
begin_stop(SgMaster *m, bool drain)
{
    gint64 now = g_get_monotonic_time();
    /* The workers close their sessions within shutdown_timeout, after
     * their drain; the margin covers the rest of their exit (the lws
     * context's teardown). */
    gint64 kill_at = now + (gint64)((drain ? m->drain_timeout_s : 0) + m->shutdown_timeout_s +
                                    SG_WORKER_STOP_MARGIN_S) * G_USEC_PER_SEC;

    if (m->stopping && (m->hurried || drain))
        return;
    if (m->listen_fd >= 0) {
        close(m->listen_fd);
        m->listen_fd = -1;
    }
    m->kill_at_us = m->stopping ? MIN(m->kill_at_us, kill_at) : kill_at;
    m->stopping = true;
    m->hurried = !drain;
    stop_workers(m, drain ? SIGTERM : SIGINT);
    update_status(m);
}

static void
on_child_exit(SgMaster *m, pid_t pid, int wstatus)
{
    g_autofree char *how = NULL;
    guint index;

    if (pid == m->admin_pid && pid > 0) {
        m->admin_pid = 0;
        if (m->admin_ctl >= 0)
            close(m->admin_ctl);
        m->admin_ctl = -1;
        if (m->stopping)
            return;
        if (WIFSIGNALED(wstatus))
            g_warning("admin process (pid %d) killed by signal %d; restarting it in %d ms",
                      (int)pid, WTERMSIG(wstatus), SG_WORKER_RESTART_DELAY_MS);
        else
            g_warning("admin process (pid %d) exited with status %d; restarting it in %d ms",
                      (int)pid, WEXITSTATUS(wstatus), SG_WORKER_RESTART_DELAY_MS);
        m->admin_restarted = true;
        m->admin_restart_at_us = g_get_monotonic_time() + SG_WORKER_RESTART_DELAY_MS * 1000;
        return;
    }
    for (index = 0; index < m->count; index++) {
        if (m->workers[index].pid == pid)
            break;
    }
    if (index == m->count)
        return;
    m->workers[index].pid = 0;
    if (m->workers[index].ready_fd >= 0) {
        close(m->workers[index].ready_fd);
        m->workers[index].ready_fd = -1;
    }
    /* No one writes its slot now: its totals join the retired ones, and
     * the fleet stops asking it. */
    sg_zone_retire(m->zone, index);
    sg_fleet_set_fd(m->fleet, index, -1);
    if (m->stopping)
        return;
    how = WIFSIGNALED(wstatus) ? g_strdup_printf("killed by signal %d", WTERMSIG(wstatus))
                               : g_strdup_printf("exited with status %d", WEXITSTATUS(wstatus));
    if (!m->workers[index].ready && !m->all_ready_once) {
        /* It said why on stderr already; stop the others and fail alike. */
        m->start_failure = WIFEXITED(wstatus) && WEXITSTATUS(wstatus) != 0
                               ? WEXITSTATUS(wstatus)
                               : 1;
        begin_stop(m, false);
        return;
    }
    g_warning("worker %u (pid %d) %s; restarting it in %d ms; its sessions were lost", index,
              (int)pid, how, SG_WORKER_RESTART_DELAY_MS);
    m->workers[index].ready = false;
    m->workers[index].restart_at_us =
        g_get_monotonic_time() + SG_WORKER_RESTART_DELAY_MS * 1000;
}

static void
on_signal(SgMaster *m, const struct signalfd_siginfo *si)
{
    switch (si->ssi_signo) {
    case SIGCHLD: {
        int wstatus;
        pid_t pid;

        while ((pid = waitpid(-1, &wstatus, WNOHANG)) > 0)
            on_child_exit(m, pid, wstatus);
        break;
    }
    case SIGHUP:
        sg_log_reopen();          /* the workers reopen theirs themselves */
        g_message("reload: passing SIGHUP to %u worker(s)", count_running(m));
        sg_notify_systemd_reloading();
        stop_workers(m, SIGHUP);
        if (m->admin_pid > 0)
            kill(m->admin_pid, SIGHUP);   /* it reopens the log file */
        {
            /* The workers reload on their own; worker 0 logs the result
             * (they all read the same files). What the master can check
             * itself (the certificate files) it adds. */
            g_autofree char *note = reload_note != NULL ? reload_note(m->data) : NULL;
            g_autofree char *state =
                g_strdup_printf("READY=1\nSTATUS=reload passed to %u worker(s); see the "
                                "log for its result%s%s", count_running(m),
                                note != NULL ? "; " : "", note != NULL ? note : "");

            sg_notify_systemd(state);
        }
        break;
    case SIGTERM:
        if (!m->stopping) {
            if (m->drain_timeout_s > 0)
                g_message("draining: %u worker(s); their consoles keep relaying for up to "
                          "%u s (drain_timeout)", count_running(m), m->drain_timeout_s);
            else
                g_message("stopping: %u worker(s)", count_running(m));
            sg_notify_systemd_stopping(m->drain_timeout_s, m->shutdown_timeout_s);
            begin_stop(m, true);
            break;
        }
        /* A second one: at once. */
        G_GNUC_FALLTHROUGH;
    case SIGINT:
        if (!m->stopping) {
            g_message("stopping: %u worker(s)", count_running(m));
            sg_notify_systemd_stopping(0, m->shutdown_timeout_s);
        } else if (!m->hurried) {
            g_message("stopping now: %u worker(s) close their sessions", count_running(m));
        }
        begin_stop(m, false);
        break;
    default:
        break;
    }
}

/* Milliseconds until the next restart or kill deadline, or -1. */
static int
next_timeout_ms(const SgMaster *m)
{
    gint64 now = g_get_monotonic_time(), next = G_MAXINT64;

    if (m->stopping) {
        next = m->kill_at_us;
        if (m->admin_kill_at_us > 0)
            next = MIN(next, m->admin_kill_at_us);
    } else {
        for (guint i = 0; i < m->count; i++) {
            if (m->workers[i].restart_at_us > 0)
                next = MIN(next, m->workers[i].restart_at_us);
        }
        if (m->admin_restart_at_us > 0)
            next = MIN(next, m->admin_restart_at_us);
    }
    if (m->status_at_us > 0)
        next = MIN(next, m->status_at_us);
    if (m->watchdog_us > 0)
        next = MIN(next, m->watchdog_at_us);
    if (next == G_MAXINT64)
        return -1;
    return next <= now ? 0 : (int)MIN((next - now + 999) / 1000, G_MAXINT);
}

/* Stopping: the admin process goes after the last worker (a drain stays
 * visible on /metrics to its end), told with SIGTERM, killed if it has
 * not exited SG_WORKER_STOP_MARGIN_S later. */
static void
stop_admin(SgMaster *m, gint64 now)
{
    if (m->admin_pid <= 0 || count_running(m) > 0)
        return;
    if (m->admin_kill_at_us == 0) {
        kill(m->admin_pid, SIGTERM);
        m->admin_kill_at_us = now + SG_WORKER_STOP_MARGIN_S * G_USEC_PER_SEC;
    } else if (now >= m->admin_kill_at_us) {
        g_warning("the admin process did not stop in time; killing it");
        kill(m->admin_pid, SIGKILL);
        m->admin_kill_at_us = G_MAXINT64;
    }
}

static void
on_timeout(SgMaster *m)
{
    gint64 now = g_get_monotonic_time();

    /* From the loop that supervises the workers: were it stuck, systemd
     * would stop hearing this. */
    if (m->watchdog_us > 0 && now >= m->watchdog_at_us) {
        sg_notify_systemd("WATCHDOG=1");
        m->watchdog_at_us = now + (gint64)m->watchdog_us;
    }
    if (m->status_at_us > 0 && now >= m->status_at_us)
        update_status(m);
    if (m->stopping) {
        if (now >= m->kill_at_us && count_running(m) > 0) {
            g_warning("%u worker(s) did not stop in time; killing them", count_running(m));
            stop_workers(m, SIGKILL);
            m->kill_at_us = G_MAXINT64;
        }
        stop_admin(m, now);
        return;
    }
    for (guint i = 0; i < m->count; i++) {
        if (m->workers[i].restart_at_us > 0 && now >= m->workers[i].restart_at_us)
            start_worker(m, i);
    }
    if (m->admin_restart_at_us > 0 && now >= m->admin_restart_at_us)
        start_admin(m);
}

int
sg_workers_run(const char *host, guint port, guint count, guint drain_timeout_s,
               guint shutdown_timeout_s, const SgWorkersAdmin *admin,
               SgWorkerMain worker_main, SgWorkersReady on_ready,
               gpointer data)
{
    SgMaster m = {
        .count = count, .start_failure = -1, .drain_timeout_s = drain_timeout_s,
        .shutdown_timeout_s = shutdown_timeout_s, .worker_main = worker_main,
        .on_ready = on_ready, .data = data, .admin_fd = -1, .admin_ctl = -1,
    };
    g_autoptr(GError) error = NULL;
    sigset_t mask;
    int sfd;

    g_return_val_if_fail(count > 0 && count <= SG_WORKERS_MAX, 1);
    m.listen_fd = sg_listen_socket_open(host, port, &m.port, &error);
    if (m.listen_fd < 0) {
        fprintf(stderr, "spicegate: %s\n", error->message);
        if (admin != NULL && admin->fd >= 0)
            close(admin->fd);
        return 1;
    }
    sigemptyset(&mask);
    sigaddset(&mask, SIGCHLD);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    sigprocmask(SIG_BLOCK, &mask, &m.old_mask);
    sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
    m.sfd = sfd;
    if (sfd < 0) {
        fprintf(stderr, "spicegate: signalfd: %s\n", g_strerror(errno));
        sigprocmask(SIG_SETMASK, &m.old_mask, NULL);
        close(m.listen_fd);
        return 1;
    }
    m.zone = sg_zone_new(count, SG_WORKERS_ZONE_TABLES, SG_WORKERS_ZONE_TABLE_SLOTS, &error);
    if (m.zone == NULL) {
        fprintf(stderr, "spicegate: %s\n", error->message);
        close(sfd);
        sigprocmask(SIG_SETMASK, &m.old_mask, NULL);
        close(m.listen_fd);
        return 1;
    }
    m.fleet = sg_fleet_new_remote(count);
    m.notify = sg_notify_systemd_enabled();
    m.watchdog_us = sg_notify_watchdog_period_us();
    m.watchdog_at_us = g_get_monotonic_time() + (gint64)m.watchdog_us;
    if (admin != NULL && admin->fd >= 0) {
        m.admin_fd = admin->fd;
        m.admin_token = admin->token;
        m.admin_start_time_us = admin->start_time_us;
    }
    m.workers = g_new0(SgWorker, count);
    for (guint i = 0; i < count; i++)
        m.workers[i].ready_fd = -1;
    for (guint i = 0; i < count; i++)
        start_worker(&m, i);
    if (m.admin_fd >= 0 && !m.stopping)
        start_admin(&m);

    while (!(m.stopping && count_running(&m) == 0 && m.admin_pid == 0)) {
        struct pollfd pfds[2 + SG_WORKERS_MAX + 1];
        guint owner[2 + SG_WORKERS_MAX + 1];
        nfds_t n = 0, n_ready, admin_at = 0;
        int rc;

        pfds[n++] = (struct pollfd){ .fd = sfd, .events = POLLIN };
        for (guint i = 0; i < count; i++) {
            if (m.workers[i].ready_fd >= 0) {
                owner[n] = i;
                pfds[n++] = (struct pollfd){ .fd = m.workers[i].ready_fd, .events = POLLIN };
            }
        }
        n_ready = n;
        if (m.admin_ctl >= 0) {
            admin_at = n;
            pfds[n++] = (struct pollfd){ .fd = m.admin_ctl, .events = POLLIN };
        }
        if (m.stopping)
            stop_admin(&m, g_get_monotonic_time());
        rc = poll(pfds, n, next_timeout_ms(&m));
        if (rc < 0 && errno != EINTR) {
            g_warning("poll: %s", g_strerror(errno));
            begin_stop(&m, false);
            continue;
        }
        if (rc <= 0) {
            on_timeout(&m);
            continue;
        }
        for (nfds_t i = 1; i < n_ready; i++) {
            if (pfds[i].revents != 0 && m.workers[owner[i]].ready_fd == pfds[i].fd)
                on_ready_report(&m, owner[i]);
        }
        /* One request of the admin process at a time, answered at once
         * (it waits up to SG_ADMIN_FLEET_TIMEOUT_MS for the workers); the
         * next, if any, at the next turn, after signals and restarts. */
        if (admin_at > 0 && pfds[admin_at].revents != 0 && m.admin_ctl == pfds[admin_at].fd &&
            !sg_fleet_serve(m.fleet, m.admin_ctl, SG_ADMIN_FLEET_TIMEOUT_MS)) {
            /* It has gone: SIGCHLD tells the rest. */
            close(m.admin_ctl);
            m.admin_ctl = -1;
        }
        if (pfds[0].revents & POLLIN) {
            struct signalfd_siginfo si;

            while (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si))
                on_signal(&m, &si);
        }
        on_timeout(&m);
    }
    close(sfd);
    if (m.listen_fd >= 0)
        close(m.listen_fd);
    g_free(m.status);
    close_admin_fds(&m);
    sg_fleet_free(m.fleet);
    sg_zone_free(m.zone);
    g_free(m.workers);
    sigprocmask(SIG_SETMASK, &m.old_mask, NULL);
    return m.start_failure >= 0 ? m.start_failure : 0;
}
