/* SPDX-License-Identifier: Apache-2.0 */
/* common.c - pattern, SPICE link message, RFC 6455 framing, SHA-1, clock.
 *
 * Shared by the load client and the target server. Nothing here does I/O.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

/* --- pattern ------------------------------------------------------------- */

static uint8_t *pattern;

const uint8_t *
sgb_pattern(void)
{
    size_t len = SGB_PATTERN_MAX_CHUNK + SGB_PATTERN_PERIOD;

    if (pattern != NULL)
        return pattern;
    pattern = malloc(len);
    if (pattern == NULL) {
        perror("malloc");
        exit(2);
    }
    for (size_t i = 0; i < len; i++)
        pattern[i] = (uint8_t)(i % SGB_PATTERN_PERIOD);
    return pattern;
}

const uint8_t *
sgb_pattern_at(uint64_t off)
{
    return sgb_pattern() + off % SGB_PATTERN_PERIOD;
}

bool
sgb_pattern_check(uint64_t off, const uint8_t *buf, size_t len)
{
    while (len > 0) {
        size_t n = len < SGB_PATTERN_MAX_CHUNK ? len : SGB_PATTERN_MAX_CHUNK;

        if (memcmp(buf, sgb_pattern_at(off), n) != 0)
            return false;
        buf += n;
        off += n;
        len -= n;
    }
    return true;
}

/* --- little endian ------------------------------------------------------- */

static void
le32_write(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t
le32_read(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint64_t
sgb_le64_read(const uint8_t *p)
{
    return (uint64_t)le32_read(p) | (uint64_t)le32_read(p + 4) << 32;
}

void
sgb_le64_write(uint8_t *p, uint64_t v)
{
    le32_write(p, (uint32_t)v);
    le32_write(p + 4, (uint32_t)(v >> 32));
}

/* --- SPICE link message --------------------------------------------------- */

void
sgb_link_build(uint8_t *out, SgbMode mode)
{
    memcpy(out, "REDQ", 4);
    le32_write(out + 4, 2);                          /* major */
    le32_write(out + 8, 2);                          /* minor */
    le32_write(out + 12, SGB_LINK_BYTES - SGB_LINK_HEADER_BYTES);
    le32_write(out + 16, (uint32_t)mode);            /* connection_id */
    out[20] = 1;                                     /* channel_type: main */
    out[21] = 0;                                     /* channel_id */
    le32_write(out + 22, 0);                         /* num_common_caps */
    le32_write(out + 26, 0);                         /* num_channel_caps */
    le32_write(out + 30, 18);                        /* caps_offset */
}

long
sgb_link_body_size(const uint8_t *hdr)
{
    uint32_t size = le32_read(hdr + 12);

    if (memcmp(hdr, "REDQ", 4) != 0 || le32_read(hdr + 4) != 2)
        return -1;
    if (size < 18 || size > SGB_LINK_MAX_BODY)
        return -1;
    return (long)size;
}

SgbMode
sgb_link_mode(const uint8_t *msg)
{
    uint32_t id = le32_read(msg + SGB_LINK_HEADER_BYTES);

    if (id < SGB_MODE_STREAM || id > SGB_MODE_HELLO)
        return 0;
    return (SgbMode)id;
}

/* --- SHA-1 (FIPS 180-4), only for Sec-WebSocket-Accept ------------------- */

typedef struct {
    uint32_t h[5];
    uint64_t bytes;
    uint8_t block[64];
    size_t fill;
} Sha1;

static uint32_t
rol32(uint32_t x, int n)
{
    return (x << n) | (x >> (32 - n));
}

static void
sha1_block(Sha1 *s, const uint8_t *p)
{
    uint32_t w[80];
    uint32_t a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3], e = s->h[4];

    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
    for (int i = 16; i < 80; i++)
        w[i] = rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    for (int i = 0; i < 80; i++) {
        uint32_t f, k, t;

        if (i < 20) {
            f = (b & c) | (~b & d);
            k = 0x5A827999;
        } else if (i < 40) {
            f = b ^ c ^ d;
            k = 0x6ED9EBA1;
        } else if (i < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8F1BBCDC;
        } else {
            f = b ^ c ^ d;
            k = 0xCA62C1D6;
        }
        t = rol32(a, 5) + f + e + k + w[i];
        e = d;
        d = c;
        c = rol32(b, 30);
        b = a;
        a = t;
    }
    s->h[0] += a;
    s->h[1] += b;
    s->h[2] += c;
    s->h[3] += d;
    s->h[4] += e;
}

static void
sha1_update(Sha1 *s, const void *data, size_t len)
{
    const uint8_t *p = data;

    s->bytes += len;
    while (len > 0) {
        size_t n = 64 - s->fill < len ? 64 - s->fill : len;

        memcpy(s->block + s->fill, p, n);
        s->fill += n;
        p += n;
        len -= n;
        if (s->fill == 64) {
            sha1_block(s, s->block);
            s->fill = 0;
        }
    }
}

static void
sha1_final(Sha1 *s, uint8_t out[20])
{
    uint64_t bits = s->bytes * 8;
    uint8_t pad = 0x80;
    uint8_t zero = 0;
    uint8_t len_be[8];

    sha1_update(s, &pad, 1);
    while (s->fill != 56)
        sha1_update(s, &zero, 1);
    for (int i = 0; i < 8; i++)
        len_be[i] = (uint8_t)(bits >> (56 - 8 * i));
    sha1_update(s, len_be, 8);
    for (int i = 0; i < 5; i++) {
        out[4 * i] = (uint8_t)(s->h[i] >> 24);
        out[4 * i + 1] = (uint8_t)(s->h[i] >> 16);
        out[4 * i + 2] = (uint8_t)(s->h[i] >> 8);
        out[4 * i + 3] = (uint8_t)s->h[i];
    }
}

void
sgb_base64(const uint8_t *in, size_t len, char *out)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;

    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;

        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = i + 1 < len ? alphabet[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < len ? alphabet[v & 63] : '=';
    }
    out[o] = '\0';
}

void
sgb_ws_accept(const char *key, char out[29])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    Sha1 s = { { 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0 }, 0, { 0 }, 0 };
    uint8_t digest[20];

    sha1_update(&s, key, strlen(key));
    sha1_update(&s, guid, strlen(guid));
    sha1_final(&s, digest);
    sgb_base64(digest, sizeof(digest), out);
}

/* --- RFC 6455 framing ------------------------------------------------------ */

size_t
sgb_ws_header(uint8_t *out, int opcode, uint64_t len, bool masked, const uint8_t mask[4])
{
    size_t n = 0;
    uint8_t mbit = masked ? 0x80 : 0;

    out[n++] = (uint8_t)(0x80 | opcode);
    if (len < 126) {
        out[n++] = (uint8_t)(mbit | len);
    } else if (len <= 0xFFFF) {
        out[n++] = (uint8_t)(mbit | 126);
        out[n++] = (uint8_t)(len >> 8);
        out[n++] = (uint8_t)len;
    } else {
        out[n++] = (uint8_t)(mbit | 127);
        for (int i = 7; i >= 0; i--)
            out[n++] = (uint8_t)(len >> (8 * i));
    }
    if (masked) {
        memcpy(out + n, mask, 4);
        n += 4;
    }
    return n;
}

void
sgb_ws_mask(uint8_t *buf, size_t len, const uint8_t mask[4], size_t phase)
{
    uint8_t m8[8];
    uint64_t m64;
    size_t i = 0;

    /* Byte by byte until the phase is 0, then 8 bytes at a time: masking
     * 16 KiB frames must not make the client the bottleneck. */
    for (; i < len && (phase + i) % 4 != 0; i++)
        buf[i] ^= mask[(phase + i) % 4];
    for (int k = 0; k < 8; k++)
        m8[k] = mask[k % 4];
    memcpy(&m64, m8, 8);
    for (; i + 8 <= len; i += 8) {
        uint64_t v;

        memcpy(&v, buf + i, 8);
        v ^= m64;
        memcpy(buf + i, &v, 8);
    }
    for (; i < len; i++)
        buf[i] ^= mask[(phase + i) % 4];
}

void
sgb_ws_parser_init(SgbWsParser *p, bool expect_masked)
{
    memset(p, 0, sizeof(*p));
    p->expect_masked = expect_masked;
    p->msg_opcode = -1;
}

/* How long the header in p->hdr is, once its first two bytes are in. */
static size_t
header_size(const SgbWsParser *p)
{
    size_t n = 2;
    uint8_t len7 = p->hdr[1] & 0x7F;

    if (len7 == 126)
        n += 2;
    else if (len7 == 127)
        n += 8;
    if (p->hdr[1] & 0x80)
        n += 4;
    return n;
}

static bool
start_frame(SgbWsParser *p)
{
    uint8_t len7 = p->hdr[1] & 0x7F;
    size_t off = 2;
    uint64_t len = len7;

    if (p->hdr[0] & 0x70) {
        p->error = "reserved bits set";
        return false;
    }
    p->opcode = p->hdr[0] & 0x0F;
    p->masked = (p->hdr[1] & 0x80) != 0;
    if (p->masked != p->expect_masked) {
        p->error = p->expect_masked ? "client frame not masked" : "server frame masked";
        return false;
    }
    if (len7 == 126) {
        len = (uint64_t)p->hdr[2] << 8 | p->hdr[3];
        off = 4;
    } else if (len7 == 127) {
        len = 0;
        for (int i = 0; i < 8; i++)
            len = len << 8 | p->hdr[2 + i];
        off = 10;
    }
    if (p->masked)
        memcpy(p->mask, p->hdr + off, 4);
    p->mask_phase = 0;
    p->left = len;
    if (p->opcode >= 0x8) {
        if (len > 125 || !(p->hdr[0] & 0x80)) {
            p->error = "bad control frame";
            return false;
        }
        p->ctl_len = 0;
    } else if (p->opcode == SGB_WS_CONT) {
        if (p->msg_opcode < 0) {
            p->error = "continuation without a message";
            return false;
        }
    } else {
        if (p->msg_opcode >= 0) {
            p->error = "new message inside a fragmented one";
            return false;
        }
        p->msg_opcode = p->opcode;
    }
    return true;
}

static bool
end_frame(SgbWsParser *p)
{
    if (p->opcode >= 0x8) {
        if (p->on_control && !p->on_control(p->ctx, p->opcode, p->ctl, p->ctl_len)) {
            p->error = "refused by control handler";
            return false;
        }
    } else if (p->hdr[0] & 0x80) {
        p->msg_opcode = -1;       /* FIN: the message is complete */
    }
    p->hdr_len = 0;
    return true;
}

bool
sgb_ws_parse(SgbWsParser *p, uint8_t *buf, size_t len)
{
    while (len > 0) {
        size_t n;

        if (p->hdr_len < 2 || p->hdr_len < header_size(p)) {
            size_t want = p->hdr_len < 2 ? 2 : header_size(p);

            n = want - p->hdr_len < len ? want - p->hdr_len : len;
            memcpy(p->hdr + p->hdr_len, buf, n);
            p->hdr_len += n;
            buf += n;
            len -= n;
            if (p->hdr_len < 2 || p->hdr_len < header_size(p))
                continue;
            if (!start_frame(p))
                return false;
            if (p->left == 0 && !end_frame(p))
                return false;
            continue;
        }
        n = p->left < len ? (size_t)p->left : len;
        if (p->masked) {
            sgb_ws_mask(buf, n, p->mask, p->mask_phase);
            p->mask_phase = (p->mask_phase + n) % 4;
        }
        if (p->opcode >= 0x8) {
            memcpy(p->ctl + p->ctl_len, buf, n);
            p->ctl_len += n;
        } else if (p->on_data && !p->on_data(p->ctx, p->msg_opcode, buf, n)) {
            p->error = "refused by data handler";
            return false;
        }
        p->left -= n;
        buf += n;
        len -= n;
        if (p->left == 0 && !end_frame(p))
            return false;
    }
    return true;
}

/* --- clock and randomness --------------------------------------------------- */

double
sgb_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

uint64_t
sgb_rand64(void)
{
    static uint64_t state;

    if (state == 0) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        state = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^ ((uint64_t)getpid() << 40);
        state |= 1;
    }
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
}

void
sgb_append(uint8_t **buf, size_t *len, size_t *cap, const void *data, size_t n)
{
    if (*len + n > *cap) {
        size_t grown = *cap ? *cap : 1024;

        while (grown < *len + n)
            grown *= 2;
        *buf = realloc(*buf, grown);
        if (*buf == NULL) {
            perror("realloc");
            exit(2);
        }
        *cap = grown;
    }
    memcpy(*buf + *len, data, n);
    *len += n;
}
