/* SPDX-License-Identifier: Apache-2.0 */
/* session_log.h - a session's lines in the log, as an observer of the hub.
 *
 * One line when a session opens ("[s:N] open client=... tok:... target=...
 * channel=..."), one when it closes ("[s:N] close ... duration=... up=...
 * down=... reason=...") and, for a session that never opened, one
 * "[s:N] refused ... reason=..." line instead of both. The words are the
 * ones operators' tools and our tests read: change them only on purpose.
 */
#pragma once

#include "hub.h"

/* Starts writing the session lines of @hub's sessions; returns the
 * observer's id (sg_hub_remove_observer()). */
guint sg_session_log_attach(SgHub *hub);
