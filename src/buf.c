/* SPDX-License-Identifier: Apache-2.0 */
/* buf.c - bounded byte buffer with lws headroom; see buf.h.
 *
 * A linear buffer rather than a ring: the relay drains a direction in one
 * write whenever it can, so wrap-around is rare and a memmove on compaction
 * is cheaper than split writes (one lws_write() must get one contiguous
 * span with LWS_PRE bytes in front of it).
 */
#include "autoconfig.h"

#include <string.h>

#include <glib.h>
#include <libwebsockets.h>

#include "buf.h"

/* Storage is recycled through a small free list per buffer size: a relay
 * that drains its buffer on every message would otherwise allocate and free
 * it each time, and blocks of 128 KiB and more are mmap()ed by malloc, so
 * every message would cost page faults. Idle sessions still hold nothing;
 * the free lists hold at most SG_BUF_POOL_BLOCKS blocks per size. */
#define SG_BUF_POOL_BLOCKS 32
#define SG_BUF_POOL_SIZES 4

static struct {
    gsize capacity;
    guint count;
    guint8 *blocks[SG_BUF_POOL_BLOCKS];
} pools[SG_BUF_POOL_SIZES];

static guint8 *
block_alloc(gsize capacity)
{
    for (guint i = 0; i < SG_BUF_POOL_SIZES; i++) {
        if (pools[i].capacity == capacity && pools[i].count > 0)
            return pools[i].blocks[--pools[i].count];
    }
    return g_malloc(LWS_PRE + capacity);
}

static void
block_free(guint8 *block, gsize capacity)
{
    if (block == NULL)
        return;
    for (guint i = 0; i < SG_BUF_POOL_SIZES; i++) {
        if (pools[i].capacity == 0)
            pools[i].capacity = capacity;
        if (pools[i].capacity != capacity)
            continue;
        if (pools[i].count < SG_BUF_POOL_BLOCKS) {
            pools[i].blocks[pools[i].count++] = block;
            return;
        }
        break;
    }
    g_free(block);
}

struct SgBuf {
    guint8 *mem;        /* LWS_PRE + capacity bytes, or NULL while empty */
    gsize capacity;
    gsize head;         /* offset of the first queued byte, after LWS_PRE */
    gsize tail;         /* offset one past the last queued byte */
};

SgBuf *
sg_buf_new(gsize capacity)
{
    SgBuf *buf = g_new0(SgBuf, 1);

    g_return_val_if_fail(capacity > 0, NULL);
    buf->capacity = capacity;
    return buf;
}

void
sg_buf_free(SgBuf *buf)
{
    if (buf == NULL)
        return;
    block_free(buf->mem, buf->capacity);
    g_free(buf);
}

gsize
sg_buf_len(const SgBuf *buf)
{
    return buf->tail - buf->head;
}

gsize
sg_buf_space(const SgBuf *buf)
{
    return buf->capacity - sg_buf_len(buf);
}

bool
sg_buf_is_empty(const SgBuf *buf)
{
    return buf->tail == buf->head;
}

guint8 *
sg_buf_data(SgBuf *buf)
{
    if (buf->mem == NULL)
        buf->mem = block_alloc(buf->capacity);
    return buf->mem + LWS_PRE + buf->head;
}

guint8 *
sg_buf_reserve(SgBuf *buf, gsize *avail)
{
    gsize len = sg_buf_len(buf);

    if (len == buf->capacity) {
        *avail = 0;
        return NULL;
    }
    if (buf->mem == NULL)
        buf->mem = block_alloc(buf->capacity);
    if (buf->tail == buf->capacity) {
        /* Compact: slide the queued bytes to the front. */
        memmove(buf->mem + LWS_PRE, buf->mem + LWS_PRE + buf->head, len);
        buf->head = 0;
        buf->tail = len;
    }
    *avail = buf->capacity - buf->tail;
    return buf->mem + LWS_PRE + buf->tail;
}

void
sg_buf_commit(SgBuf *buf, gsize written)
{
    g_return_if_fail(written <= buf->capacity - buf->tail);
    buf->tail += written;
}

gsize
sg_buf_append(SgBuf *buf, const guint8 *data, gsize len)
{
    gsize taken = 0;

    while (taken < len) {
        gsize avail;
        guint8 *dst = sg_buf_reserve(buf, &avail);
        gsize n;

        if (dst == NULL)
            break;
        n = MIN(avail, len - taken);
        memcpy(dst, data + taken, n);
        sg_buf_commit(buf, n);
        taken += n;
    }
    return taken;
}

void
sg_buf_consume(SgBuf *buf, gsize len)
{
    g_return_if_fail(len <= sg_buf_len(buf));
    buf->head += len;
    if (buf->head == buf->tail) {
        /* Idle sessions hold no buffer memory (issue #4: density). */
        block_free(buf->mem, buf->capacity);
        buf->mem = NULL;
        buf->head = 0;
        buf->tail = 0;
    }
}
