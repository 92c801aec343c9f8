/* SPDX-License-Identifier: Apache-2.0 */
/* config.h - spicegate's settings: one table of keys, one immutable struct.
 *
 * Settings come from built-in defaults, then the configuration file
 * (GKeyFile syntax), then the command line, each overriding the last.
 * Every key lives in one table in config.c with its type, default and a
 * one-line help; the man page and the sample file are checked against it.
 * Anything unknown or malformed is an error naming file, line and key:
 * there are no silent defaults.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "client_addr.h"
#include "log.h"
#include "sg_types.h"
#include "spice_link.h"

#define SG_CONFIG_ERROR (sg_config_error_quark())
GQuark sg_config_error_quark(void);

typedef enum {
    SG_CONFIG_ERROR_SYNTAX = 0,   /* not a group, key=value, comment or blank line */
    SG_CONFIG_ERROR_UNKNOWN,      /* unknown group or key */
    SG_CONFIG_ERROR_VALUE,        /* a value out of range or of the wrong type */
    SG_CONFIG_ERROR_IO,           /* a file that cannot be read */
} SgConfigError;

typedef enum {
    SG_TLS_MIN_1_2 = 0,
    SG_TLS_MIN_1_3,
} SgTlsMinVersion;

/* [spice] tls: how spicegate reaches a SPICE server's TLS port. */
typedef enum {
    SG_SPICE_TLS_AUTO = 0,        /* plain port; the TLS port if the server says NEED_SECURED */
    SG_SPICE_TLS_ALWAYS,          /* the TLS port only */
    SG_SPICE_TLS_NEVER,           /* the plain port only */
} SgSpiceTlsMode;

struct SgConfig {
    /* [server] */
    char *listen_host;            /* NULL: every address, IPv4 and IPv6 */
    uint16_t listen_port;         /* 0: the kernel picks (tests) */
    char *web_dir;                /* spice-html5 root */
    char *pages_dir;              /* our own pages; they win over web_dir */
    char **allowed_origins;       /* NULL-terminated hostnames, never NULL */
    char *frame_ancestors;        /* CSP frame-ancestors sources, space-separated; never NULL */
    SgTrustedProxies *trusted_proxies; /* whose PROXY header and X-Forwarded-* count; never NULL */
    bool proxy_protocol;          /* a PROXY header starts every connection */
    guint handshake_timeout_s;    /* TLS handshake, then the request's headers */
    guint connect_timeout_s;
    guint link_timeout_s;
    guint idle_timeout_s;         /* 0: off */
    guint ping_interval_s;        /* websocket pings; 0: off */
    guint close_timeout_s;
    guint drain_timeout_s;        /* SIGTERM: live consoles relay this long; 0: no drain */
    guint shutdown_timeout_s;     /* what sessions get to close at stop */
    char *base_url;               /* Nova's html5proxy_base_url; NULL: no scheme check */
    char *expected_scheme;        /* "http" or "https", from base_url; NULL: any */
    char *port_file;              /* command line only */
    guint workers;                /* processes sharing the port; "auto" resolved */
    SgLogFormat log_format;       /* text or json */
    /* [admin] */
    bool admin_enabled;           /* [admin] listen is set */
    char *admin_host;             /* NULL: every address (allowed, but warned of) */
    uint16_t admin_port;          /* 0: the kernel picks (tests) */
    char *admin_token_file;       /* NULL: no bearer token asked */
    /* [tls] */
    char *cert;
    char *key;
    bool ssl_only;
    SgTlsMinVersion tls_min_version;
    char *ciphers;                /* OpenSSL cipher list for TLS <= 1.2; NULL: OpenSSL's */
    char *ciphersuites;           /* TLS 1.3 suites; NULL: OpenSSL's */
    /* [tokens] */
    char *token_backend;          /* "file" or "nova" */
    char *token_file;
    /* [limits]: websockets, across every worker; 0: unlimited */
    guint max_sessions;           /* in all */
    guint per_ip;                 /* per client address */
    guint per_token;              /* per console token */
    /* [spice]: TLS toward the SPICE server (endpoint_tls.c) */
    SgSpiceTlsMode spice_tls;
    char *spice_ca_file;          /* NULL: TLS toward SPICE servers impossible */
    char *spice_host_subject;     /* NULL: check the target's name or address */
    SgTlsMinVersion spice_tls_min_version;
    /* [nova] */
    char *nova_auth_url;
    char *nova_username;
    char *nova_password;
    char *nova_user_domain_name;
    char *nova_user_domain_id;    /* NULL: by name; set, it wins over the name */
    char *nova_project_name;
    char *nova_project_domain_name;
    char *nova_project_domain_id; /* NULL: by name; set, it wins over the name */
    char *nova_app_cred_id;
    char *nova_app_cred_secret;
    char *nova_interface;         /* internal, public or admin */
    char *nova_region;            /* NULL: any */
    char *nova_endpoint;          /* NULL: from the catalog */
    char *nova_api_version;       /* "2.31" */
    char *nova_ca_file;           /* NULL: system CAs */
    bool nova_insecure;
    guint nova_timeout_s;
    guint nova_cache_s;           /* 0: no reuse of answers */
    guint nova_negative_cache_s;  /* "unknown token" answers; 0: no reuse */
    guint nova_max_lookups;       /* distinct tokens asked about at once */
    guint nova_revalidate_s;      /* live consoles' tokens re-checked this often; 0: never */
    guint token_ttl_s;
    bool enforce_session_timeout;
    /* Where the [nova] settings came from, for messages in the operator's
     * terms (not keys; set by nova_conf.c). */
    char *nova_conf_files;        /* the nova.conf file(s) read, ", "-joined; NULL: none */
    char *nova_conf_section;      /* "keystone_authtoken" or "service_user": the section
                                   * the Keystone credentials came from; NULL: none */
    bool nova_credentials_failed; /* a Keystone setting (of spicegate.conf or nova.conf)
                                   * was reported wrong, or a nova.conf line or file was
                                   * not read: sg_config_validate() then does not also
                                   * call the credentials missing */
    /* [spice] channels: the channel types a browser may link; any other
     * link message is refused (4403) before spicegate connects. */
    SgSpiceChannelSet spice_channels;
};

/* One row of the key table, for docs and tests. */
typedef struct {
    const char *group;
    const char *key;
    const char *default_value;    /* as written in the file; "" for unset */
    const char *help;
    /* Internal: parses a value into the config. */
    gboolean (*apply)(SgConfig *cfg, const char *value, GError **error);
} SgConfigKeyInfo;

/* The table, terminated by a row whose key is NULL. */
const SgConfigKeyInfo *sg_config_keys(void);

/* Defaults only. */
SgConfig *sg_config_new_default(void);

/* Applies the file text @data (named @filename in messages) on top of @cfg.
 * Errors read "FILE:LINE: [group] key: what is wrong"; every error in the
 * file is reported, one per line of the message, in line order. */
gboolean sg_config_load_data(SgConfig *cfg, const char *data, gsize len,
                             const char *filename, GError **error);
gboolean sg_config_load_file(SgConfig *cfg, const char *filename, GError **error);

/* Reads a whole configuration file (ours or nova.conf); an unreadable one
 * is an SG_CONFIG_ERROR_IO naming it. */
gboolean sg_config_read_file(const char *filename, char **data, gsize *len, GError **error);

/* Parses "ADDR:PORT", "[V6]:PORT", ":PORT" or "PORT" into @cfg's listen
 * fields. "0.0.0.0", "::", "*" and an empty address mean every address.
 * @what names the source in the error ("--listen", "file:line"). */
gboolean sg_config_set_listen(SgConfig *cfg, const char *value, const char *what,
                              GError **error);

/* Sets one key from another source (the command line): @what names it in
 * errors, e.g. "--listen". */
gboolean sg_config_set(SgConfig *cfg, const char *group, const char *key,
                       const char *value, const char *what, GError **error);

/* Cross-checks after all sources are applied (a key without its cert,
 * ssl_only without a cert, ...). Missing Keystone settings are worded in
 * nova.conf's terms when a nova.conf was read (nova_conf_files), naming
 * the spicegate.conf key that could be set instead, and are not checked
 * after nova_credentials_failed. Every problem is reported, one per line
 * of the message. */
gboolean sg_config_validate(const SgConfig *cfg, GError **error);

void sg_config_free(SgConfig *cfg);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SgConfig, sg_config_free)

/* Error messages quote at most this much of a bad line. */
#define SG_CONFIG_QUOTE_MAX_BYTES 40

/* How much of the bad line @line an error message may quote: up to and
 * including the first ']', or up to the first '=' or ':', and at most
 * SG_CONFIG_QUOTE_MAX_BYTES. What follows an '=' may be a secret (a
 * password, a database URL with one), and messages go to logs. */
int sg_config_quotable_len(const char *line);

/* Sets @error (SG_CONFIG_ERROR_VALUE) to @problems, messages one a line,
 * and returns FALSE: the one shape of "every problem at once". */
gboolean sg_config_fail_with(GPtrArray *problems, GError **error);
