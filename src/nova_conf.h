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

/* Parses @data. Errors name @filename and the line. */
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

/* Applies the Nova options spicegate understands onto @cfg (which then uses
 * the nova token backend). */
gboolean sg_nova_conf_apply(const SgNovaConf *nc, SgConfig *cfg, const char *filename,
                            GError **error);

gboolean sg_nova_conf_load_file(SgConfig *cfg, const char *filename, GError **error);
