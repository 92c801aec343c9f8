/* SPDX-License-Identifier: Apache-2.0 */
/* close_code.h - every way spicegate ends a websocket, defined once.
 *
 * Each entry: the reason's name (SG_CLOSE_<name>), the close code sent to
 * the browser and the reason text sent with it, which the console page
 * shows and the log quotes. Two reasons may share a code (4403, 4404,
 * 4408, 4429): the page tells them apart by the reason text.
 * `make check` (tests/docs.sh) holds the README's and spicegate(8)'s close
 * code tables, the integration tests' constants and the console page's
 * messages (web/spicegate-messages.js) to this list: add a code here and
 * those tell you what else to write. Keep one entry per line. */
#pragma once

/* CLIENT_CLOSED is never sent: the browser closed first; its code and
 * text are what the log says. */
#define SG_CLOSE_CODES(X)                                                        \
    X(TARGET_CLOSED, 1000, "console closed")                                     \
    X(CLIENT_CLOSED, 1000, "browser closed")                                     \
    X(SHUTDOWN, 1001, "spicegate shutting down")                                 \
    X(TEXT_FRAME, 1003, "text frames are not supported")                         \
    X(INTERNAL, 1011, "internal error")                                          \
    X(BAD_LINK, 4400, "not a SPICE link message")                                \
    X(NO_TOKEN, 4401, "no console token")                                        \
    X(ORIGIN, 4403, "origin not allowed")                                        \
    X(TOKEN_REFUSED, 4403, "console token not usable here")                      \
    X(CHANNEL_REFUSED, 4403, "SPICE channel not allowed here")                   \
    X(BAD_TOKEN, 4404, "console token invalid or expired")                       \
    X(TOKEN_REVOKED, 4404, "console token revoked")                              \
    X(LINK_TIMEOUT, 4408, "timed out waiting for the SPICE link message")        \
    X(IDLE, 4408, "console idle for too long")                                   \
    X(PING_TIMEOUT, 4408, "no answer to pings")                                  \
    X(SESSION_EXPIRED, 4410, "console session expired")                          \
    X(ADMIN, 4409, "closed by an administrator")                                 \
    X(LIMIT_TOTAL, 4429, "too many consoles open, try again later")              \
    X(LIMIT_ADDRESS, 4429, "too many consoles from this address")                \
    X(LIMIT_CONSOLE, 4429, "too many connections to this console")               \
    X(UNREACHABLE, 4502, "console unreachable")                                  \
    X(TOKEN_UNAVAILABLE, 4503, "token check unavailable, try again")             \
    X(CONNECT_TIMEOUT, 4504, "console connect timed out")                        \
    X(UPSTREAM_TLS, 4525, "console TLS verification failed")                     \
    X(TLS_PORT_UNKNOWN, 4526, "console needs TLS, TLS port unknown")

#define SG_CLOSE_ENUM_ENTRY(name, code, text) SG_CLOSE_##name,
typedef enum { SG_CLOSE_CODES(SG_CLOSE_ENUM_ENTRY) } SgCloseReason;
#undef SG_CLOSE_ENUM_ENTRY
