/* SPDX-License-Identifier: Apache-2.0 */
/* httpc.h - asynchronous HTTP client: one libcurl multi handle on the GLib
 * main loop.
 *
 * Every request is a curl easy handle added to the one multi handle, so
 * connections to Keystone and Nova are reused across requests. libcurl
 * tells us which sockets to watch and when to wake it; GLib does the
 * waiting. Nothing here blocks, and libcurl's verbose output (which would
 * print X-Auth-Token headers) is never enabled.
 */
#pragma once

#include <stdbool.h>

#include <gio/gio.h>

#include "sg_types.h"

typedef struct SgHttpc SgHttpc;
typedef struct SgHttpRequest SgHttpRequest;

typedef struct {
    const char *ca_file;          /* NULL: the system's CA store */
    bool insecure;                /* skip TLS verification (tests only) */
    guint connect_timeout_ms;
    guint timeout_ms;             /* whole request */
} SgHttpcOptions;

typedef struct {
    long status;                  /* HTTP status, 0 when there was no answer */
    const char *error;            /* transport error text when status == 0 */
    GHashTable *headers;          /* lowercased name -> value (last one wins) */
    const char *body;             /* NUL-terminated; may be "" */
    gsize body_len;
    gint64 elapsed_us;            /* from the start to the answer or failure (metrics) */
} SgHttpResponse;

/* Runs once from the main loop, never inside sg_httpc_request() and never
 * after sg_httpc_cancel(). @resp is valid only during the call. */
typedef void (*SgHttpCallback)(const SgHttpResponse *resp, gpointer user_data);

SgHttpc *sg_httpc_new(const SgHttpcOptions *opts);

/* Starts @method @url with @headers ("Name: value", NULL-terminated, may be
 * NULL) and an optional body (copied). Returns a handle the caller owns
 * until the callback runs or it cancels. */
SgHttpRequest *sg_httpc_request(SgHttpc *hc, const char *method, const char *url,
                                const char *const *headers, const char *body,
                                SgHttpCallback callback, gpointer user_data);

/* NULL is a no-op. */
void sg_httpc_cancel(SgHttpRequest *req);

/* Cancels every request still in flight (their callbacks do not run). */
void sg_httpc_free(SgHttpc *hc);
