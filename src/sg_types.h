/* SPDX-License-Identifier: Apache-2.0 */
/* sg_types.h - forward typedefs of every opaque spicegate type.
 *
 * Modules include this instead of each other's headers when they only pass
 * pointers around, which keeps the include graph flat.
 */
#pragma once

#include <glib.h>

typedef struct SgConfig SgConfig;
typedef struct SgListener SgListener;
typedef struct SgSession SgSession;
typedef struct SgHub SgHub;
typedef struct SgUpstream SgUpstream;
typedef struct SgBuf SgBuf;
typedef struct SgTokenBackend SgTokenBackend;
typedef struct SgTokenLookup SgTokenLookup;
typedef struct SgTokenWatch SgTokenWatch;
typedef struct SgConsoleTarget SgConsoleTarget;
typedef struct SgWeb SgWeb;
typedef struct SgZone SgZone;
typedef struct SgFleet SgFleet;
typedef struct SgCtlServer SgCtlServer;
typedef struct SgTlsClient SgTlsClient;

/* Result of a pure parser (sslh's tri-state contract, curl's
 * advance-on-success rule): nothing is consumed unless the result is OK. */
typedef enum {
    SG_PARSE_OK = 0,      /* complete and valid; *consumed bytes used */
    SG_PARSE_AGAIN,       /* need more input; nothing consumed */
    SG_PARSE_INVALID,     /* reject; *reason is a static string for the log */
} SgParseResult;
