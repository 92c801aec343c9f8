/* SPDX-License-Identifier: Apache-2.0 */
/* proxy_protocol.h - the PROXY protocol header (HAProxy's, versions 1 and 2),
 * as a pure parser.
 *
 * A load balancer in TCP mode (HAProxy `send-proxy` / `send-proxy-v2`,
 * Octavia's PROXY pools) writes one such header at the very start of the
 * connection, before TLS and HTTP, naming the browser's address. acceptor.c
 * reads it off a new socket before libwebsockets sees a byte, and only from
 * a peer in [server] trusted_proxies. This file reads bytes and nothing
 * else: no socket, no log, no allocation; unit-tested (check_proxy_protocol)
 * and fuzzed (fuzz_proxy_protocol).
 *
 * The specification: haproxy/doc/proxy-protocol.txt. What is refused here,
 * on purpose, beyond it: a v1 line with anything but single spaces between
 * its fields, ports with leading zeroes, v2 headers longer than
 * SG_PROXY_MAX_BYTES, and v2 DGRAM (this is a TCP port).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* v1: "PROXY TCP6 <39> <39> 65535 65535\r\n" is at most 107 bytes. */
#define SG_PROXY_V1_MAX_BYTES 107
/* v2: the 16-byte fixed part, then the addresses and TLVs. HAProxy sends
 * 28 (IPv4) or 52 (IPv6) bytes without TLVs, and a few hundred with every
 * proxy-v2-options TLV; more is no header we need. */
#define SG_PROXY_MAX_BYTES 1024
/* No valid header is shorter than "PROXY UNKNOWN\r\n". */
#define SG_PROXY_MIN_BYTES 15

typedef enum {
    SG_PROXY_MORE = 0,            /* a valid start: every byte given belongs to the header */
    SG_PROXY_DONE,                /* a whole header in the first hdr->length bytes */
    SG_PROXY_BAD,                 /* not a PROXY header, or a malformed one */
} SgProxyStatus;

typedef struct {
    size_t length;                /* bytes of the header; what follows is TLS or HTTP */
    int version;                  /* 1 or 2 */
    /* false: the header names no client (v2 LOCAL, as HAProxy's health
     * checks send; v1 UNKNOWN; v2 UNSPEC or UNIX): the connection's own
     * peer stands. */
    bool has_source;
    struct sockaddr_storage source; /* AF_INET or AF_INET6, port set, when has_source */
} SgProxyHeader;

/* Parses the start of a connection, @data[0..@len). SG_PROXY_MORE when
 * @data is a valid prefix of a header shorter than the whole: then every
 * one of those bytes belongs to the header, so a reader may consume them
 * all and never takes a byte of what follows. SG_PROXY_DONE with *@hdr
 * filled (bytes after hdr->length are the next protocol's, untouched).
 * SG_PROXY_BAD with *@why a static phrase for the log ("not a PROXY
 * protocol header", ...). @hdr and @why are written only as said. */
SgProxyStatus sg_proxy_protocol_parse(const uint8_t *data, size_t len, SgProxyHeader *hdr,
                                      const char **why);
