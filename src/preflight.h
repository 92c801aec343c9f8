/* SPDX-License-Identifier: Apache-2.0 */
/* preflight.h - start-up checks whose failures an operator can act on.
 *
 * What the daemon would otherwise find out late, or only as a vague
 * "cannot create context": a web root that is not there, a certificate
 * without its key, libwebsockets' libuv plugin not installed, the listen
 * address taken. Each check names the setting to change in its message.
 * `spicegate --check-config` runs all but the address check (the running
 * instance holds that address).
 */
#pragma once

#include "sg_types.h"

/* [server] web must be a directory holding spice_auto.html (the page
 * Nova's html5proxy_base_url names, at the top of Debian's spice-html5
 * and of the upstream source tree alike); [server] pages, when set, must
 * be a directory. */
gboolean sg_preflight_web_roots(const SgConfig *cfg, GError **error);

/* With [tls] cert set: the certificate file is readable and holds a PEM
 * certificate; the key ([tls] key, else the cert file) is readable, holds
 * an unencrypted PEM private key, and matches the certificate. */
gboolean sg_preflight_tls(const SgConfig *cfg, GError **error);

/* The file libwebsockets loads its libuv event loop from, or NULL when this
 * libwebsockets has the libuv loop built in. */
const char *sg_preflight_evlib_path(void);

/* @path can be loaded and is a libwebsockets event-library plugin. The
 * message names the Debian package libwebsockets-evlib-uv. */
gboolean sg_preflight_evlib(const char *path, GError **error);

/* What to add to a bind error @err's text: the cause an operator can fix,
 * in parentheses after a space; "" when there is nothing to add. */
const char *sg_preflight_bind_hint(int err);

/* --check-config=login: logs in to Keystone with the [nova] credentials,
 * finds the compute endpoint, and asks it for its version document, running
 * @loop's context until that is done or @timeout_s passed. Needs [tokens]
 * backend = nova. On success, @compute_url (if not NULL) gets the endpoint. */
gboolean sg_preflight_login(const SgConfig *cfg, guint timeout_s, char **compute_url,
                            GError **error);

/* The one line that says what is running: listen address and @port, TLS,
 * token backend, web roots, base_url and the Origin scheme check, and
 * @workers. Newly allocated. */
char *sg_preflight_describe(const SgConfig *cfg, guint port, guint workers);
