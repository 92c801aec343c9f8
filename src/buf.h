/* SPDX-License-Identifier: Apache-2.0 */
/* buf.h - a bounded byte buffer with LWS_PRE headroom, allocated lazily.
 *
 * Each relay direction of a session owns one. Bytes are appended at the
 * tail and taken from the head; the storage (capacity + LWS_PRE bytes) is
 * allocated on the first append and released when the buffer drains, so an
 * idle session costs no buffer memory. The headroom in front of the data
 * lets libwebsockets write its frame header in place (zero copy).
 */
#pragma once

#include <stdbool.h>

#include "sg_types.h"

/* @capacity: the most bytes the buffer ever holds. */
SgBuf *sg_buf_new(gsize capacity);
void sg_buf_free(SgBuf *buf);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(SgBuf, sg_buf_free)

gsize sg_buf_len(const SgBuf *buf);
/* Bytes that can still be appended (capacity - len). */
gsize sg_buf_space(const SgBuf *buf);
bool sg_buf_is_empty(const SgBuf *buf);

/* The queued bytes, contiguous. Valid until the next call that changes the
 * buffer. At least LWS_PRE writable bytes precede the pointer. */
guint8 *sg_buf_data(SgBuf *buf);

/* A contiguous writable area of at least 1 byte and at most
 * sg_buf_space() bytes at the tail (the buffer compacts itself first);
 * @avail receives its size. Call sg_buf_commit() with what was written.
 * Returns NULL when the buffer is full. */
guint8 *sg_buf_reserve(SgBuf *buf, gsize *avail);
void sg_buf_commit(SgBuf *buf, gsize written);

/* Copies up to sg_buf_space() bytes of @data; returns how many it took. */
gsize sg_buf_append(SgBuf *buf, const guint8 *data, gsize len);

/* Drops @len bytes from the head (len <= sg_buf_len()). Releases the
 * storage when the buffer becomes empty. */
void sg_buf_consume(SgBuf *buf, gsize len);
