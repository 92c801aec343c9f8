/* SPDX-License-Identifier: Apache-2.0 */
/* nova_conf.h - read Nova's own nova.conf, for a drop-in swap of
 * nova-spicehtml5proxy.
 *
 * oslo.config files are INI-like but not GKeyFile: ';' comments, "key:
 * value", indented continuation lines, quoted values and repeated keys
 * (the last one wins for the options we read). This module parses that
 * syntax (pure, fuzzed) and maps the handful of Nova options the proxy
 * uses onto spicegate's settings. Every other option is ignored: nova.conf
 * holds hundreds that concern other services.
 */
#pragma once

#include "sg_types.h"

typedef struct SgNovaConf SgNovaConf;

/* Parses @data. Errors name @filename and the line; every bad line is
 * reported, one per line of the message, in line order. */
SgNovaConf *sg_nova_conf_parse(const char *data, gsize len, const char *filename,
                               GError **error);
void sg_nova_conf_free(SgNovaConf *nc);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SgNovaConf, sg_nova_conf_free)

/* The value of [@section] @key (section names as written, "DEFAULT" for
 * the defaults), or NULL. Sections other than DEFAULT fall back to DEFAULT,
 * as oslo.config does. */
const char *sg_nova_conf_get(const SgNovaConf *nc, const char *section, const char *key);
/* The line @key was last set on, for messages; 0 if unset. */
guint sg_nova_conf_get_line(const SgNovaConf *nc, const char *section, const char *key);

/* Adds @from's options to @into; @from's value wins where both set one,
 * as with oslo.config's later files. @from stays the caller's. */
void sg_nova_conf_merge(SgNovaConf *into, const SgNovaConf *from);

/* Applies the Nova options spicegate understands onto @cfg (which then uses
 * the nova token backend). The Keystone credentials come from
 * [keystone_authtoken] if it sets auth_url or a credential, else from
 * [service_user]: one section, whole. Domains may be given by name or by
 * id. @filename names the file(s) in messages about the whole file; an
 * error about one option names its own file and line. Every option that
 * cannot be used is reported, one per line of the message, by file and
 * line; the others are still applied. Records the file and the
 * credentials section in @cfg for sg_config_validate()'s messages. */
gboolean sg_nova_conf_apply(const SgNovaConf *nc, SgConfig *cfg, const char *filename,
                            GError **error);

/* Reads, merges (later files win) and applies the NULL-terminated
 * @filenames; nothing to do for an empty list. A file that cannot be read
 * or parsed does not stop the others: every error of every file is
 * reported, in the order of @filenames, then by line. */
gboolean sg_nova_conf_load_files(SgConfig *cfg, const char *const *filenames, GError **error);
