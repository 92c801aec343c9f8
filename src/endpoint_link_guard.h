/* SPDX-License-Identifier: Apache-2.0 */
/* endpoint_link_guard.h - the SPICE server's end while its link reply is
 * unknown ([spice] tls = auto).
 *
 * A SPICE server that wants a channel over TLS (QEMU's tls-channel,
 * libvirt's defaultMode='secure', Nova's [spice] require_secure) answers
 * the link message on its plain port with SPICE_LINK_ERR_NEED_SECURED and
 * hangs up. The guard wraps the plain endpoint: it records what the relay
 * writes to it (the browser's link message), and reads the server's first
 * SG_LINK_REPLY_HEAD_BYTES itself before the relay sees any. Any other
 * answer is handed on as it came; once the relay has read it, the guard
 * steps aside (unwrap(): the relay then calls the inner endpoint itself,
 * splicing included). NEED_SECURED is not: the plain
 * connection is dropped, the owner is told (need_secured, from the
 * guard's own event, never inside a call), connects to the TLS port and
 * hands the new endpoint over with sg_endpoint_link_guard_switch(); the
 * guard replays the link message there, and the relay, which was only
 * told to wait meanwhile, relays the TLS server's reply. The browser sees
 * one link exchange, with the TLS server's key for its ticket.
 */
#pragma once

#include "endpoint.h"

/* The server answered NEED_SECURED; @guard holds no connection now. */
typedef void (*SgLinkGuardFunc)(SgEndpoint *guard, gpointer data);

/* Takes ownership of @inner, whose link reply has not come yet. */
SgEndpoint *sg_endpoint_link_guard_new(SgEndpoint *inner, SgLinkGuardFunc need_secured,
                                       gpointer data);

/* After need_secured: @inner (owned from here on) is the TLS connection
 * that gets the link message again. */
void sg_endpoint_link_guard_switch(SgEndpoint *guard, SgEndpoint *inner);
