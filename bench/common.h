/* SPDX-License-Identifier: Apache-2.0 */
/* common.h - what the benchmark's load client and target server share.
 *
 * The byte pattern both ends check, the SPICE link message the client
 * opens with, RFC 6455 framing (header writer, incremental parser, the
 * Sec-WebSocket-Accept computation with a small SHA-1) and a monotonic
 * clock. libc only: the bench must build wherever the daemon builds, and
 * must not share code with the daemon it measures.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Byte i of every stream is i % 251. A prime period means a lost, doubled
 * or reordered chunk of any power-of-two size shifts the phase and fails
 * the check; comparing is a memcmp against a precomputed buffer. */
#define SGB_PATTERN_PERIOD 251
/* Longest single comparison or generation the pattern buffer supports. */
#define SGB_PATTERN_MAX_CHUNK (1024 * 1024)

/* What the target does after the link message. It travels in the link
 * message's connection_id, which every proxy passes on untouched, so one
 * target process (and one socat) serves every test. */
typedef enum {
    SGB_MODE_STREAM = 1,          /* send the pattern as fast as possible */
    SGB_MODE_SINK = 2,            /* check the pattern, ack every SGB_ACK_BYTES */
    SGB_MODE_ECHO = 3,            /* send back what arrives */
    SGB_MODE_HELLO = 4,           /* send SGB_HELLO_BYTES at once, then echo */
} SgbMode;

/* The sink acks with the cumulative byte count (u64 little-endian) each
 * time it crosses a multiple of this, and sends SGB_ACK_CORRUPT then
 * closes if the pattern broke. 1 MiB keeps acks far below 1% of traffic. */
#define SGB_ACK_BYTES (1024 * 1024)
#define SGB_ACK_CORRUPT UINT64_MAX
/* The hello reply: a SpiceLinkHeader-sized greeting, as a SPICE server
 * answers the link with a SpiceLinkReply. */
#define SGB_HELLO_BYTES 16

/* SpiceLinkHeader (16) + SpiceLinkMess (18) with no capabilities. */
#define SGB_LINK_BYTES 34
#define SGB_LINK_HEADER_BYTES 16
/* A link header announcing more than this is not from our client. */
#define SGB_LINK_MAX_BODY 4096

const uint8_t *sgb_pattern(void);
/* Is @buf equal to the pattern at stream offset @off? @len <= MAX_CHUNK. */
bool sgb_pattern_check(uint64_t off, const uint8_t *buf, size_t len);
/* Pointer to @len pattern bytes starting at stream offset @off. */
const uint8_t *sgb_pattern_at(uint64_t off);

/* Writes the SGB_LINK_BYTES link message selecting @mode into @out. */
void sgb_link_build(uint8_t *out, SgbMode mode);
/* Reads a link header: body size, or -1 if it is not REDQ v2. */
long sgb_link_body_size(const uint8_t *hdr);
/* The mode a complete link message asks for, or 0. */
SgbMode sgb_link_mode(const uint8_t *msg);

uint64_t sgb_le64_read(const uint8_t *p);
void sgb_le64_write(uint8_t *p, uint64_t v);

/* base64(SHA-1(@key + RFC 6455 GUID)) into @out (29 bytes with NUL). */
void sgb_ws_accept(const char *key, char out[29]);
/* base64 of @len bytes into @out (4 * ceil(len / 3) + 1 bytes). */
void sgb_base64(const uint8_t *in, size_t len, char *out);

enum {
    SGB_WS_CONT = 0x0,
    SGB_WS_TEXT = 0x1,
    SGB_WS_BINARY = 0x2,
    SGB_WS_CLOSE = 0x8,
    SGB_WS_PING = 0x9,
    SGB_WS_PONG = 0xA,
};
#define SGB_WS_HEADER_MAX 14

/* Writes a FIN frame header for @len payload bytes into @out and returns
 * its size. With @masked the 4 @mask bytes follow; the caller masks. */
size_t sgb_ws_header(uint8_t *out, int opcode, uint64_t len, bool masked,
                     const uint8_t mask[4]);
/* XORs @len bytes at @buf with @mask, starting at mask phase @phase. */
void sgb_ws_mask(uint8_t *buf, size_t len, const uint8_t mask[4], size_t phase);

/* Incremental frame parser: feed it whatever read() returned; it unmasks
 * in place and hands payload (data frames) and whole control frames to
 * the callbacks. A callback returning false stops parsing (error). */
typedef struct {
    bool (*on_data)(void *ctx, int opcode, uint8_t *data, size_t len);
    bool (*on_control)(void *ctx, int opcode, const uint8_t *data, size_t len);
    void *ctx;
    bool expect_masked;           /* server side: client frames must be masked */
    uint8_t hdr[SGB_WS_HEADER_MAX];
    size_t hdr_len;
    uint64_t left;                /* payload bytes of the current frame */
    int opcode;                   /* of the current frame (data: of the message) */
    int msg_opcode;
    bool masked;
    uint8_t mask[4];
    size_t mask_phase;
    uint8_t ctl[125];
    size_t ctl_len;
    const char *error;
} SgbWsParser;

void sgb_ws_parser_init(SgbWsParser *p, bool expect_masked);
/* Returns false (p->error set) on a protocol error or a callback refusal. */
bool sgb_ws_parse(SgbWsParser *p, uint8_t *buf, size_t len);

/* Appends @n bytes of @data to the growable buffer *@buf holding *@len of
 * *@cap bytes, doubling it as needed; exits on allocation failure. */
void sgb_append(uint8_t **buf, size_t *len, size_t *cap, const void *data, size_t n);

double sgb_now(void);             /* CLOCK_MONOTONIC, seconds */
uint64_t sgb_rand64(void);        /* xorshift, seeded from the clock and pid */
