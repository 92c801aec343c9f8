/* SPDX-License-Identifier: Apache-2.0 */
/* main.c - process lifetime: options, configuration, signals, the loop,
 * and teardown in order.
 *
 * Owns the main loop, the configuration, the token backend and the
 * listener, and frees them in the reverse order of their creation. Exit
 * status: 0 after a clean stop, 1 when the service cannot start (the address
 * is taken or forbidden), 2 for any usage, configuration or installation
 * error (everything --check-config finds).
 */
#include "autoconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <curl/curl.h>
#include <glib-unix.h>
#include <glib.h>

#include "admin.h"
#include "compat.h"
#include "config.h"
#include "endpoint_tls.h"
#include "event_core.h"
#include "hub.h"
#include "listen_socket.h"
#include "listener.h"
#include "log.h"
#include "session.h"
#include "session_log.h"
#include "shared_zone.h"
#include "nova_conf.h"
#include "preflight.h"
#include "server_cert.h"
#include "token.h"
#include "token_file.h"
#include "token_nova.h"
#include "worker_ctl.h"
#include "workers.h"

#define SG_EXIT_RUNTIME 1
#define SG_EXIT_CONFIG 2

typedef struct {
    GMainLoop *loop;
    SgConfig *cfg;
    SgTokenBackend *tokens;
    SgHub *hub;                   /* every live session, and its observers */
    SgZone *own_zone;             /* the only process's zone, which it maps itself */
    SgCtlServer *ctl;             /* a worker: the master's requests */
    SgFleet *fleet;               /* the only process: its own sessions, for the admin API */
    SgAdmin *admin;               /* the only process: the admin API, or NULL */
    SgListener *listener;
    int listen_fd;                /* ours, or our copy of the master's; -1 once closed */
    bool stopping;                /* SIGTERM came: draining (or closing, drain_timeout 0) */
    bool hurried;                 /* SIGINT, or a second SIGTERM: closing at once */
    bool worker;                  /* one of several: the master speaks for all */
    /* systemd, for the only process (a worker's master speaks for it): */
    bool notify;                  /* $NOTIFY_SOCKET is set */
    char *status;                 /* the last STATUS= sent, or NULL */
    guint status_timer;           /* a STATUS= update is due, or 0 */
    guint status_observer;        /* in the hub, or 0 */
    guint watchdog_timer;         /* WATCHDOG=1, or 0 */
} SgDaemon;

typedef struct {
    char *config_file;
    char **nova_configs;          /* --nova-config and Nova's --config-file */
    char *nova_config_dir;        /* Nova's --config-dir */
    char *log_file;
    char *listen;
    char *web;
    char *pages;
    char *token_file;
    char *cert;
    char *key;
    char *port_file;
    char *workers;
    gboolean ssl_only;
    gboolean debug;
    gboolean version;
} SgOptions;

typedef enum {
    SG_CHECK_NONE = 0,
    SG_CHECK_CONFIG,              /* --check-config */
    SG_CHECK_LOGIN,               /* --check-config=login */
} SgCheckMode;

/* What the admin API needs from start-up (main() sets them once). */
static char *admin_token;             /* [admin] token_file's token, or NULL */
static gint64 start_time_us;          /* g_get_real_time() at start */

/* Wipes and frees admin_token (a bearer secret: no copy left in the heap). */
static void
forget_admin_token(void)
{
    if (admin_token != NULL)
        explicit_bzero(admin_token, strlen(admin_token));
    g_clear_pointer(&admin_token, g_free);
}

/* Set by on_check_config(): GOption hands an optional argument's value only
 * to a callback. */
static SgCheckMode check_mode = SG_CHECK_NONE;

/* How long --check-config=login waits for Keystone and Nova in all. */
#define SG_CHECK_LOGIN_SLACK_S 5

static gboolean
on_check_config(const char *name, const char *value, gpointer data, GError **error)
{
    if (value == NULL) {
        check_mode = SG_CHECK_CONFIG;
        return TRUE;
    }
    if (g_str_equal(value, "login")) {
        check_mode = SG_CHECK_LOGIN;
        return TRUE;
    }
    g_set_error(error, G_OPTION_ERROR, G_OPTION_ERROR_BAD_VALUE,
                "--check-config takes no value or =login, not '%s'", value);
    return FALSE;
}

static void
options_clear(SgOptions *opt)
{
    g_free(opt->config_file);
    g_strfreev(opt->nova_configs);
    g_free(opt->nova_config_dir);
    g_free(opt->log_file);
    g_free(opt->listen);
    g_free(opt->web);
    g_free(opt->pages);
    g_free(opt->token_file);
    g_free(opt->cert);
    g_free(opt->key);
    g_free(opt->port_file);
    g_free(opt->workers);
}

/* Parses the command line; returns FALSE after printing why. */
static gboolean
parse_options(int *argc, char ***argv, SgOptions *opt)
{
    const GOptionEntry entries[] = {
        { "config", 'c', 0, G_OPTION_ARG_FILENAME, &opt->config_file,
          "Configuration file (default " SG_SYSCONFDIR "/spicegate/spicegate.conf)", "FILE" },
        { "nova-config", 0, 0, G_OPTION_ARG_FILENAME_ARRAY, &opt->nova_configs,
          "Nova's nova.conf: check tokens with Nova, read its [spice], [console], "
          "[consoleauth] and [keystone_authtoken] options (repeatable)", "FILE" },
        { "config-file", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_FILENAME_ARRAY,
          &opt->nova_configs, "Same as --nova-config (nova-spicehtml5proxy's option)", "FILE" },
        { "config-dir", 0, G_OPTION_FLAG_HIDDEN, G_OPTION_ARG_FILENAME, &opt->nova_config_dir,
          "Nova's --config-dir: every *.conf file in DIR, in name order", "DIR" },
        { "log-file", 0, 0, G_OPTION_ARG_FILENAME, &opt->log_file,
          "Append log lines to FILE instead of standard error", "FILE" },
        { "listen", 'l', 0, G_OPTION_ARG_STRING, &opt->listen,
          "Address and port to listen on (default 0.0.0.0:6082)", "ADDR:PORT" },
        { "web", 0, 0, G_OPTION_ARG_FILENAME, &opt->web,
          "spice-html5 directory (default " SG_SPICE_HTML5_DIR ")", "DIR" },
        { "pages", 0, 0, G_OPTION_ARG_FILENAME, &opt->pages,
          "spicegate's own pages, served in preference to --web", "DIR" },
        { "token-file", 't', 0, G_OPTION_ARG_FILENAME, &opt->token_file,
          "Static token file or directory of token files", "PATH" },
        { "cert", 0, 0, G_OPTION_ARG_FILENAME, &opt->cert,
          "TLS certificate (PEM): serve https and wss", "FILE" },
        { "key", 0, 0, G_OPTION_ARG_FILENAME, &opt->key,
          "TLS private key (PEM; default: the certificate file)", "FILE" },
        { "ssl-only", 0, 0, G_OPTION_ARG_NONE, &opt->ssl_only,
          "Refuse plain http and ws when TLS is on", NULL },
        { "port-file", 0, 0, G_OPTION_ARG_FILENAME, &opt->port_file,
          "Write the bound port here once listening", "FILE" },
        { "workers", 'w', 0, G_OPTION_ARG_STRING, &opt->workers,
          "Worker processes sharing the port: a number, or auto for one per CPU "
          "(default 1)", "N" },
        { "debug", 'd', 0, G_OPTION_ARG_NONE, &opt->debug, "Log debug messages", NULL },
        { "check-config", 0, G_OPTION_FLAG_OPTIONAL_ARG, G_OPTION_ARG_CALLBACK,
          (gpointer)on_check_config,
          "Check the whole configuration (files, certificates, web roots, tokens) and exit "
          "0 or 2 without listening; =login also logs in to Keystone and finds Nova",
          "[login]" },
        { "version", 'V', 0, G_OPTION_ARG_NONE, &opt->version, "Print the version and exit",
          NULL },
        G_OPTION_ENTRY_NULL
    };
    g_autoptr(GOptionContext) context =
        g_option_context_new("- SPICE HTML5 console proxy for OpenStack");
    g_autoptr(GError) error = NULL;

    g_option_context_add_main_entries(context, entries, NULL);
    g_option_context_set_description(context,
                                     "Options override the configuration file. "
                                     "See spicegate(8) and spicegate.conf(5).");
    if (!g_option_context_parse(context, argc, argv, &error)) {
        fprintf(stderr, "spicegate: %s\nTry 'spicegate --help'.\n", error->message);
        return FALSE;
    }
    if (*argc > 1) {
        fprintf(stderr, "spicegate: unexpected argument '%s'\nTry 'spicegate --help'.\n",
                (*argv)[1]);
        return FALSE;
    }
    return TRUE;
}

/* oslo.config's --config-dir: every *.conf in the directory, in name order,
 * after the --config-file files. */
static gboolean
list_nova_config_dir(GPtrArray *names, const char *dir, GError **error)
{
    g_autoptr(GDir) d = NULL;
    g_autoptr(GPtrArray) found = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GError) local = NULL;
    const char *name;

    d = g_dir_open(dir, 0, &local);
    if (d == NULL) {
        g_set_error(error, SG_CONFIG_ERROR, SG_CONFIG_ERROR_IO, "--config-dir: %s",
                    local->message);
        return FALSE;
    }
    while ((name = g_dir_read_name(d)) != NULL) {
        if (g_str_has_suffix(name, ".conf") && name[0] != '.')
            g_ptr_array_add(found, g_build_filename(dir, name, NULL));
    }
    g_ptr_array_sort(found, (GCompareFunc)g_strcmp0);
    for (guint i = 0; i < found->len; i++)
        g_ptr_array_add(names, g_strdup(g_ptr_array_index(found, i)));
    return TRUE;
}

/* Adds @local's message to @problems and clears it. */
static void
note_problem(GPtrArray *problems, GError **local)
{
    g_ptr_array_add(problems, g_strdup((*local)->message));
    g_clear_error(local);
}

/* Defaults, then the file(s), then the command line. A mistake in one
 * source does not stop the others: spicegate.conf's errors, then
 * nova.conf's, then the options', then the failed cross-checks, all in one
 * @error, one per line. */
static SgConfig *
build_config(const SgOptions *opt, GError **error)
{
    g_autoptr(SgConfig) cfg = sg_config_new_default();
    g_autoptr(GPtrArray) nova_files = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GPtrArray) problems = g_ptr_array_new_with_free_func(g_free);
    g_autoptr(GError) local = NULL;
    const char *file = opt->config_file;
    const struct {
        const char *value, *group, *key, *flag;
    } overrides[] = {
        { opt->listen, "server", "listen", "--listen" },
        { opt->web, "server", "web", "--web" },
        { opt->pages, "server", "pages", "--pages" },
        { opt->token_file, "tokens", "file", "--token-file" },
        { opt->cert, "tls", "cert", "--cert" },
        { opt->key, "tls", "key", "--key" },
        { opt->workers, "server", "workers", "--workers" },
    };

    if (file == NULL) {
        /* The packaged default may be absent: then built-in defaults. */
        file = SG_SYSCONFDIR "/spicegate/spicegate.conf";
        if (g_file_test(file, G_FILE_TEST_EXISTS) && !sg_config_load_file(cfg, file, &local))
            note_problem(problems, &local);
    } else if (!sg_config_load_file(cfg, file, &local)) {
        note_problem(problems, &local);
    }
    for (guint i = 0; opt->nova_configs != NULL && opt->nova_configs[i] != NULL; i++)
        g_ptr_array_add(nova_files, g_strdup(opt->nova_configs[i]));
    if (opt->nova_config_dir != NULL &&
        !list_nova_config_dir(nova_files, opt->nova_config_dir, &local))
        note_problem(problems, &local);
    g_ptr_array_add(nova_files, NULL);
    /* One merged nova.conf, as oslo.config reads several files. */
    if (!sg_nova_conf_load_files(cfg, (const char *const *)nova_files->pdata, &local))
        note_problem(problems, &local);
    for (guint i = 0; i < G_N_ELEMENTS(overrides); i++) {
        if (overrides[i].value != NULL &&
            !sg_config_set(cfg, overrides[i].group, overrides[i].key, overrides[i].value,
                           overrides[i].flag, &local))
            note_problem(problems, &local);
    }
    if (opt->ssl_only)
        cfg->ssl_only = true;
    if (problems->len > 0) {
        /* The cross-checks too, on what did apply (check_setup() runs them
         * with the rest once the files are clean). */
        if (!sg_config_validate(cfg, &local))
            note_problem(problems, &local);
        sg_config_fail_with(problems, error);
        return NULL;
    }
    cfg->port_file = g_strdup(opt->port_file);
    return g_steal_pointer(&cfg);
}

static gboolean
write_port_file(const char *path, guint port, GError **error)
{
    g_autofree char *text = g_strdup_printf("%u\n", port);

    /* g_file_set_contents() renames into place, so a reader never sees a
     * half-written file. */
    return g_file_set_contents(path, text, -1, error);
}

static gboolean
on_stopped(gpointer data)
{
    SgDaemon *d = data;

    g_main_loop_quit(d->loop);
    return G_SOURCE_REMOVE;
}

/* --- STATUS= and WATCHDOG=1 (the only process) ------------------------------ */

/* Sends STATUS= if it changed: sessions open (the zone's count, as a
 * master of workers reports it) and whether we drain. */
static gboolean
on_status_due(gpointer data)
{
    SgDaemon *d = data;
    SgRunState state = !d->stopping ? SG_RUN_SERVING
                       : d->hurried || d->cfg->drain_timeout_s == 0 ? SG_RUN_STOPPING
                                                                    : SG_RUN_DRAINING;
    SgZoneStats st;
    g_autofree char *text = NULL;
    g_autofree char *line = NULL;

    d->status_timer = 0;
    sg_zone_read(d->own_zone, &st);
    text = sg_notify_status_text(state, st.open, d->cfg->drain_timeout_s);
    if (g_strcmp0(text, d->status) != 0) {
        line = g_strconcat("STATUS=", text, NULL);
        sg_notify_systemd(line);
        g_free(d->status);
        d->status = g_steal_pointer(&text);
    }
    return G_SOURCE_REMOVE;
}

/* Something changed: one update within SG_NOTIFY_STATUS_PERIOD_MS, however
 * many sessions open or close meanwhile. Nothing runs while nothing
 * changes. */
static void
status_changed(SgDaemon *d)
{
    if (d->notify && d->status_timer == 0)
        d->status_timer = g_timeout_add(SG_NOTIFY_STATUS_PERIOD_MS, on_status_due, d);
}

static void
on_session_event(const SgHubSession *s, gpointer data)
{
    (void)s;
    status_changed(data);
}

/* Under WatchdogSec=: from the main loop, which every session, timer and
 * signal runs on; were it stuck, systemd would stop hearing this. */
static gboolean
on_watchdog(gpointer data)
{
    (void)data;
    sg_notify_systemd("WATCHDOG=1");
    return G_SOURCE_CONTINUE;
}

static void
notify_start(SgDaemon *d)
{
    const SgHubObserver observer = { .opened = on_session_event, .closed = on_session_event };
    guint64 period_us;

    d->notify = !d->worker && sg_notify_systemd_enabled();
    if (!d->notify)
        return;
    d->status_observer = sg_hub_add_observer(d->hub, &observer, d);
    period_us = sg_notify_watchdog_period_us();
    if (period_us > 0)
        d->watchdog_timer = g_timeout_add(MAX(period_us / 1000, 1), on_watchdog, d);
    g_clear_handle_id(&d->status_timer, g_source_remove);
    on_status_due(d);
}

static void
notify_stop(SgDaemon *d)
{
    g_clear_handle_id(&d->status_timer, g_source_remove);
    g_clear_handle_id(&d->watchdog_timer, g_source_remove);
    if (d->status_observer != 0)
        sg_hub_remove_observer(d->hub, d->status_observer);
    d->status_observer = 0;
    g_clear_pointer(&d->status, g_free);
}

/* --- signals ---------------------------------------------------------------- */

/* The port is let go at the first signal, so that a new instance can bind
 * it while this one drains. */
static void
close_listen_socket(SgDaemon *d)
{
    if (d->listen_fd >= 0) {
        close(d->listen_fd);
        d->listen_fd = -1;
    }
}

/* SIGINT, or a second SIGTERM: every session closes with 1001 now. */
static gboolean
on_interrupt(gpointer data)
{
    SgDaemon *d = data;

    if (d->hurried)
        return G_SOURCE_CONTINUE;
    d->hurried = true;
    /* Without a drain, the first signal did all there is to do. */
    if (d->stopping && d->cfg->drain_timeout_s == 0)
        return G_SOURCE_CONTINUE;
    if (!d->stopping && !d->worker)
        sg_notify_systemd_stopping(0, d->cfg->shutdown_timeout_s);
    d->stopping = true;
    g_log(G_LOG_DOMAIN, d->worker ? G_LOG_LEVEL_DEBUG : G_LOG_LEVEL_MESSAGE,
          "stopping: closing %u session(s)", sg_hub_count(d->hub));
    /* Ends a drain under way (the acceptor is stopped first either way). */
    sg_listener_shutdown(d->listener, on_stopped, d);
    close_listen_socket(d);
    status_changed(d);
    return G_SOURCE_CONTINUE;
}

/* SIGTERM: the drain (sg_listener_drain()). A second one is SIGINT,
 * except in a worker: its master passes a second SIGTERM on as SIGINT,
 * and systemd (KillMode=control-group) may send the worker its own
 * SIGTERM besides the master's. */
static gboolean
on_terminate(gpointer data)
{
    SgDaemon *d = data;
    guint n = sg_hub_count(d->hub);

    if (d->stopping)
        return d->worker ? G_SOURCE_CONTINUE : on_interrupt(d);
    d->stopping = true;
    if (!d->worker)
        sg_notify_systemd_stopping(d->cfg->drain_timeout_s, d->cfg->shutdown_timeout_s);
    if (d->cfg->drain_timeout_s > 0 && n > 0)
        g_log(G_LOG_DOMAIN, d->worker ? G_LOG_LEVEL_DEBUG : G_LOG_LEVEL_MESSAGE,
              "draining: %u session(s) keep relaying for up to %u s (drain_timeout); "
              "no new connections", n, d->cfg->drain_timeout_s);
    else
        g_log(G_LOG_DOMAIN, d->worker ? G_LOG_LEVEL_DEBUG : G_LOG_LEVEL_MESSAGE,
              "stopping: closing %u session(s)", n);
    sg_listener_drain(d->listener, d->cfg->drain_timeout_s, on_stopped, d);
    close_listen_socket(d);
    status_changed(d);
    return G_SOURCE_CONTINUE;
}

/* SIGHUP: re-reads the tokens and, with TLS, the certificate and key,
 * and tells systemd when it starts and how it ended (READY=1 with
 * STATUS=, one line). */
static gboolean
on_reload(gpointer data)
{
    SgDaemon *d = data;
    g_autoptr(GError) error = NULL;
    g_autofree char *state = NULL;
    g_autofree char *cert = NULL;

    sg_notify_systemd_reloading();
    /* First, so that what the reload says lands in the new file. */
    sg_log_reopen();
    sg_listener_reload_cert(d->listener, &cert);
    if (sg_token_backend_reload(d->tokens, &error)) {
        if (g_str_equal(d->cfg->token_backend, "file"))
            state = g_strdup_printf("READY=1\nSTATUS=reloaded: %u console token(s)",
                                    sg_token_file_count(d->tokens));
        else
            state = g_strdup("READY=1\nSTATUS=reloaded");
    } else {
        const char *why = error != NULL ? error->message : "failed";

        sg_warning_once("reload: %s", why);
        state = g_strdup_printf("READY=1\nSTATUS=reload refused some tokens (see the log): %s",
                                why);
        g_strdelimit(state + strlen("READY=1\n"), "\r\n", ' ');
    }
    if (cert != NULL) {
        char *both = g_strconcat(state, "; ", cert, NULL);

        g_free(state);
        state = both;
    }
    sg_notify_systemd(state);
    return G_SOURCE_CONTINUE;
}

/* The token backend for this process: a file, or Nova. */
static SgTokenBackend *
new_token_backend(const SgConfig *cfg, GError **error)
{
    if (g_str_equal(cfg->token_backend, "nova"))
        return sg_token_nova_new(cfg, error);
    return sg_token_file_new(cfg->token_file, error);
}

/* Everything about @cfg that can be checked without listening, each
 * problem one line of @error: the cross-checks, the web roots, the TLS
 * files, the token file (with @load_tokens), libwebsockets' libuv plugin.
 * A typo is then a configuration error (exit 2) before anything starts,
 * not a failure to start (exit 1) or a warning nobody reads. */
static gboolean
check_setup(const SgConfig *cfg, bool load_tokens, GError **error)
{
    g_autoptr(GPtrArray) problems = g_ptr_array_new_with_free_func(g_free);
    GError *local = NULL;
    bool valid = sg_config_validate(cfg, &local);

    if (!valid)
        note_problem(problems, &local);
    if (!sg_preflight_web_roots(cfg, &local))
        note_problem(problems, &local);
    if (!sg_preflight_tls(cfg, &local))
        note_problem(problems, &local);
    if (cfg->spice_ca_file != NULL) {
        SgTlsClient *probe = sg_tls_client_new(cfg->spice_ca_file, cfg->spice_host_subject,
                                               cfg->spice_tls_min_version, &local);

        if (probe == NULL)
            note_problem(problems, &local);
        sg_tls_client_free(probe);
    }
    /* Nova's backend starts talking to Keystone when created: only
     * --check-config=login does that. The daemon loads the token file
     * itself (and logs what it loaded) just after. */
    if (load_tokens && valid && !g_str_equal(cfg->token_backend, "nova")) {
        SgTokenBackend *probe = new_token_backend(cfg, &local);

        if (probe == NULL)
            g_ptr_array_add(problems, g_strdup_printf("[tokens] %s: %s", cfg->token_backend,
                                                      local->message));
        sg_token_backend_free(probe);
        g_clear_error(&local);
    }
    if (!sg_preflight_evlib(sg_preflight_evlib_path(), &local))
        note_problem(problems, &local);
    if (cfg->admin_token_file != NULL) {
        char *token = sg_admin_read_token(cfg->admin_token_file, &local);

        if (token == NULL)
            note_problem(problems, &local);
        else
            explicit_bzero(token, strlen(token));
        g_free(token);
    }
    if (problems->len == 0)
        return TRUE;
    return sg_config_fail_with(problems, error);
}

/* A message of several lines: each gets the program's name. */
static void
print_error(const char *message)
{
    g_auto(GStrv) lines = g_strsplit(message, "\n", -1);

    for (guint i = 0; lines[i] != NULL; i++)
        fprintf(stderr, "spicegate: %s\n", lines[i]);
}

/* The one line saying what runs. */
static void
describe_start(const SgConfig *cfg, guint port, guint workers)
{
    g_autofree char *what = sg_preflight_describe(cfg, port, workers);

    g_message("spicegate %s running: %s", PACKAGE_VERSION, what);
}

/* Tells whoever waits that we listen: the master through @ready_fd when
 * we are a worker, else the port file, the log and systemd. */
static gboolean
announce(SgDaemon *d, int ready_fd, GError **error)
{
    guint port = sg_listener_get_port(d->listener);

    if (ready_fd >= 0) {
        gboolean ok = write(ready_fd, "ok\n", 3) == 3;

        close(ready_fd);
        if (!ok)
            g_set_error(error, G_IO_ERROR, G_IO_ERROR_FAILED, "cannot report to the master");
        return ok;
    }
    if (d->cfg->port_file != NULL && !write_port_file(d->cfg->port_file, port, error)) {
        g_prefix_error(error, "--port-file: ");
        return FALSE;
    }
    describe_start(d->cfg, port, 1);
    sg_notify_systemd("READY=1");
    return TRUE;
}

static bool
close_session(gpointer owner, SgCloseReason reason)
{
    return sg_session_close(owner, reason);
}

/* Binds [admin] listen (or returns -1 with no error when it is off) and
 * says where: the one line that tells an operator, and the tests, the
 * admin port. */
static int
open_admin(const SgConfig *cfg, GError **error)
{
    guint port = 0;
    int fd;

    if (!cfg->admin_enabled)
        return -1;
    fd = sg_listen_socket_open(cfg->admin_host, cfg->admin_port, &port, error);
    if (fd < 0) {
        g_prefix_error(error, "[admin] listen: ");
        return -1;
    }
    if (cfg->admin_host == NULL)
        g_warning("[admin] listen: the admin API answers on every address; bind it to "
                  "loopback or a management network");
    g_message("admin API listening on %s%s%s:%u (plain HTTP%s)",
              cfg->admin_host != NULL && strchr(cfg->admin_host, ':') ? "[" : "",
              cfg->admin_host != NULL ? cfg->admin_host : "*",
              cfg->admin_host != NULL && strchr(cfg->admin_host, ':') ? "]" : "", port,
              admin_token != NULL ? ", bearer token required" : ", no token");
    return fd;
}

/* One whole spicegate: the token backend, the loop, the listener. Runs in
 * the only process (@ready_fd -1) or in worker @index of several, which
 * counts in slot @index of @zone and serves the master on @ctl_fd. */
static int
run_daemon(guint index, int listen_fd, guint port, int ready_fd, SgZone *zone, int ctl_fd,
           gpointer data)
{
    SgDaemon d = { .cfg = data };
    g_autoptr(GError) error = NULL;
    guint sig_ids[4] = { 0 };
    int status = EXIT_SUCCESS;
    int own_listen_fd = -1;               /* the only process binds itself */

    d.listen_fd = listen_fd;
    if (ready_fd >= 0) {
        d.cfg->listen_port = (uint16_t)port;   /* the master bound it */
        /* What every worker would say alike (tokens loaded, logged in to
         * Keystone), worker 0 says for all. */
        sg_log_set_quiet_once(index != 0);
        d.worker = true;
        /* The admin API is the master's: no worker keeps its bearer token. */
        forget_admin_token();
    }
    d.tokens = new_token_backend(d.cfg, &error);
    if (d.tokens == NULL) {
        fprintf(stderr, "spicegate: [tokens] %s: %s\n", d.cfg->token_backend, error->message);
        if (ready_fd >= 0)
            close(ready_fd);
        if (ctl_fd >= 0)
            close(ctl_fd);
        return SG_EXIT_CONFIG;
    }
    /* After the token backend, so that a bad token file is exit 2 even
     * when the port is taken too, as with workers. */
    if (listen_fd < 0) {
        own_listen_fd = sg_listen_socket_open(d.cfg->listen_host, d.cfg->listen_port, &port,
                                              &error);
        if (own_listen_fd < 0) {
            fprintf(stderr, "spicegate: %s\n", error->message);
            sg_token_backend_free(d.tokens);
            return SG_EXIT_RUNTIME;
        }
        /* The same zone as with workers, for one: one code path. */
        d.own_zone = sg_zone_new(1, SG_WORKERS_ZONE_TABLES, SG_WORKERS_ZONE_TABLE_SLOTS,
                                 &error);
        if (d.own_zone == NULL) {
            fprintf(stderr, "spicegate: %s\n", error->message);
            close(own_listen_fd);
            sg_token_backend_free(d.tokens);
            return SG_EXIT_RUNTIME;
        }
        zone = d.own_zone;
        listen_fd = own_listen_fd;
        d.listen_fd = own_listen_fd;
        d.cfg->listen_port = (uint16_t)port;
    }
    /* Token lookups and Keystone/Nova latency go to our slot. */
    sg_zone_set_current(zone, index);

    d.loop = g_main_loop_new(NULL, FALSE);
    /* Before anything can announce us (port file, READY=1): a SIGHUP or
     * SIGTERM from a supervisor that saw the announcement must find the
     * handlers in place, not the default action (which kills). The
     * handlers run from the loop, so only once the listener exists. */
    sig_ids[0] = g_unix_signal_add(SIGTERM, on_terminate, &d);
    sig_ids[1] = g_unix_signal_add(SIGINT, on_interrupt, &d);
    sig_ids[2] = g_unix_signal_add(SIGHUP, on_reload, &d);
    sig_ids[3] = 0;
    /* Session ids unique across the workers: worker @index of them. */
    d.hub = sg_hub_new(index, ready_fd >= 0 ? d.cfg->workers : 1);
    sg_session_log_attach(d.hub);
    sg_zone_observe(zone, index, d.hub);
    if (ctl_fd >= 0)
        d.ctl = sg_ctl_server_new(ctl_fd, d.hub, close_session, NULL, NULL);
    ctl_fd = -1;
    d.listener = sg_listener_new(d.cfg, d.loop, d.tokens, d.hub, listen_fd, &error);
    if (d.listener == NULL) {
        fprintf(stderr, "spicegate: %s\n", error->message);
        status = SG_EXIT_RUNTIME;
        goto out;
    }
    /* [limits] hold across the workers: counted in the zone they share. */
    sg_listener_set_limits(d.listener, zone, index);
    if (!d.worker && d.cfg->admin_enabled) {
        /* The only process serves the admin API on its own loop, from its
         * own hub (with workers, the master does: workers.c). */
        int admin_fd = open_admin(d.cfg, &error);
        SgAdminContext ctx = {
            .zone = zone, .token = admin_token, .start_time_us = start_time_us, .workers = 1,
        };

        if (admin_fd < 0) {
            fprintf(stderr, "spicegate: %s\n", error->message);
            status = SG_EXIT_RUNTIME;
            goto out;
        }
        d.fleet = sg_fleet_new_local(d.hub, close_session);
        ctx.fleet = d.fleet;
        d.admin = sg_admin_new(&ctx);
        /* A second vhost of the listener's lws context, on the same
         * event core (admin.h). */
        if (!sg_admin_serve(d.admin, sg_listener_context(d.listener), admin_fd, &error)) {
            fprintf(stderr, "spicegate: %s\n", error->message);
            status = SG_EXIT_RUNTIME;
            goto out;
        }
    }
    if (!announce(&d, ready_fd, &error)) {
        fprintf(stderr, "spicegate: %s\n", error->message);
        status = SG_EXIT_RUNTIME;
        goto out;
    }
    ready_fd = -1;
    notify_start(&d);

    g_main_loop_run(d.loop);
    g_log(G_LOG_DOMAIN, d.worker ? G_LOG_LEVEL_DEBUG : G_LOG_LEVEL_MESSAGE, "stopped");
out:
    if (ready_fd >= 0)
        close(ready_fd);
    for (guint i = 0; sig_ids[i] != 0; i++)
        g_source_remove(sig_ids[i]);
    notify_stop(&d);
    sg_ctl_server_free(d.ctl);
    /* The admin vhost's connections go with the listener's lws context:
     * the admin API after it, but no new connection meanwhile. */
    sg_admin_stop(d.admin);
    sg_listener_free(d.listener);
    sg_admin_free(d.admin);
    sg_fleet_free(d.fleet);
    /* After the listener, which watched it. */
    close_listen_socket(&d);
    /* After the listener: its sessions leave the hub as lws lets go. */
    sg_hub_free(d.hub);
    sg_zone_free(d.own_zone);
    sg_token_backend_free(d.tokens);
    sg_event_core_stop();
    g_main_loop_unref(d.loop);
    return status;
}

static void
on_workers_ready(guint port, guint count, gpointer data)
{
    SgConfig *cfg = data;
    g_autoptr(GError) error = NULL;

    if (cfg->port_file != NULL && !write_port_file(cfg->port_file, port, &error))
        g_warning("--port-file: %s", error->message);
    describe_start(cfg, port, count);
    sg_notify_systemd("READY=1");
}

/* The master's part of a reload's STATUS=: whether the certificate files
 * pass the checks the workers make before they take them. */
static char *
master_reload_note(gpointer data)
{
    return sg_server_cert_check(data);
}

/* Each console channel holds two descriptors (browser and SPICE server):
 * the soft limit most systems start with (1024) caps a proxy at a few
 * hundred consoles though the hard limit allows far more. Raised to the
 * hard limit, as nginx's worker_rlimit_nofile and HAProxy do. */
static void
raise_fd_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max)
        return;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
        g_debug("cannot raise the descriptor limit to %llu: %s",
                (unsigned long long)rl.rlim_max, g_strerror(errno));
}

int
main(int argc, char **argv)
{
    SgOptions opt = { 0 };
    g_autoptr(GError) error = NULL;
    SgConfig *cfg;
    int status;

    if (!parse_options(&argc, &argv, &opt)) {
        options_clear(&opt);
        return SG_EXIT_CONFIG;
    }
    start_time_us = g_get_real_time();
    if (opt.version) {
        printf("spicegate %s\n", PACKAGE_VERSION);
        options_clear(&opt);
        return EXIT_SUCCESS;
    }
    if (opt.log_file != NULL && !sg_log_open_file(opt.log_file, &error)) {
        fprintf(stderr, "spicegate: --log-file %s\n", error->message);
        options_clear(&opt);
        return SG_EXIT_CONFIG;
    }
    /* Every line on stderr (the journal, --log-file), stamped (log.h). */
    sg_log_init();
    if (opt.debug)
        sg_log_enable_debug();
    sg_log_setup_lws(opt.debug);
    /* A peer that vanishes mid-write must give EPIPE, not kill us. */
    signal(SIGPIPE, SIG_IGN);
    raise_fd_limit();
    curl_global_init(CURL_GLOBAL_DEFAULT);

    cfg = build_config(&opt, &error);
    options_clear(&opt);
    if (cfg == NULL || !check_setup(cfg, check_mode != SG_CHECK_NONE, &error)) {
        print_error(error->message);
        sg_config_free(cfg);
        curl_global_cleanup();
        return SG_EXIT_CONFIG;
    }
    sg_log_set_format(cfg->log_format);
    if (check_mode == SG_CHECK_NONE && cfg->admin_token_file != NULL) {
        /* check_setup() read it already: it is there and well formed. */
        admin_token = sg_admin_read_token(cfg->admin_token_file, &error);
        if (admin_token == NULL) {
            print_error(error->message);
            sg_config_free(cfg);
            curl_global_cleanup();
            return SG_EXIT_CONFIG;
        }
    }
    if (check_mode != SG_CHECK_NONE) {
        g_autofree char *compute_url = NULL;

        status = EXIT_SUCCESS;
        if (check_mode == SG_CHECK_LOGIN &&
            !sg_preflight_login(cfg, cfg->nova_timeout_s * 2 + SG_CHECK_LOGIN_SLACK_S,
                                &compute_url, &error)) {
            print_error(error->message);
            status = SG_EXIT_CONFIG;
        } else {
            g_autofree char *what = sg_preflight_describe(cfg, cfg->listen_port,
                                                          cfg->workers);

            printf("spicegate: configuration ok: %s\n", what);
            if (compute_url != NULL)
                printf("spicegate: logged in to Keystone; compute endpoint %s answers\n",
                       compute_url);
        }
        sg_config_free(cfg);
        curl_global_cleanup();
        return status;
    }
    if (cfg->workers <= 1) {
        status = run_daemon(0, -1, 0, -1, NULL, -1, cfg);
    } else {
        /* A bad token file is a configuration error (exit 2) before any
         * worker starts, as with one process. Nova's backend starts talking
         * to Keystone when created, so only the workers create it. */
        if (!g_str_equal(cfg->token_backend, "nova")) {
            SgTokenBackend *probe;

            /* Worker 0 says what it loaded; the probe keeps quiet. */
            sg_log_set_quiet_once(true);
            probe = new_token_backend(cfg, &error);
            sg_log_set_quiet_once(false);

            if (probe == NULL) {
                /* Now loudly, so that every bad line is listed. */
                g_clear_error(&error);
                probe = new_token_backend(cfg, &error);
                g_clear_pointer(&probe, sg_token_backend_free);
                fprintf(stderr, "spicegate: [tokens] %s: %s\n", cfg->token_backend,
                        error->message);
                forget_admin_token();
                sg_config_free(cfg);
                curl_global_cleanup();
                return SG_EXIT_CONFIG;
            }
            sg_token_backend_free(probe);
        }
        SgWorkersAdmin admin = { .fd = -1, .token = admin_token,
                                 .start_time_us = start_time_us };

        if (cfg->admin_enabled) {
            admin.fd = open_admin(cfg, &error);
            if (admin.fd < 0) {
                fprintf(stderr, "spicegate: %s\n", error->message);
                forget_admin_token();
                sg_config_free(cfg);
                curl_global_cleanup();
                return SG_EXIT_RUNTIME;
            }
        }
        if (cfg->cert != NULL)
            sg_workers_set_reload_note(master_reload_note);
        status = sg_workers_run(cfg->listen_host, cfg->listen_port, cfg->workers,
                                cfg->drain_timeout_s, cfg->shutdown_timeout_s, &admin,
                                run_daemon, on_workers_ready, cfg);
        if (status == 0)
            g_message("stopped");
    }
    forget_admin_token();
    sg_config_free(cfg);
    curl_global_cleanup();
    return status;
}
