/* SPDX-License-Identifier: Apache-2.0 */
/* check_relay.c - the relay between two endpoints, without lws or QEMU.
 *
 * Both ends are the real TCP endpoint (endpoint_tcp.c) over socketpairs;
 * the test holds the other end of each pair and reads and writes it from
 * the same GMainLoop (the event core). Checked: bytes both ways byte-exact,
 * large transfers, flow control both ways (a side that stops reading makes
 * the relay stop reading the other side, and it resumes), forwarding held
 * until released, close from either side (what is owed still goes out),
 * errors.
 *
 * Three fake endpoints, each for what a socket cannot do on demand, and
 * named so: fault_ep (a write that fails with ECONNRESET), push_ep (a
 * scripted push endpoint: libwebsockets is the only real one, and it
 * needs a browser; this drives the relay's push path, its pausing and its
 * overflow) and splice_ep (takes spliced messages, as only a plain
 * websocket does in the daemon). Every wait runs the loop under a
 * deadline; no sleeps.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <check.h>
#include <glib.h>

#include <spice/protocol.h>

#include "buf.h"
#include "endpoint_link_guard.h"
#include "endpoint_tcp.h"
#include "event_core.h"
#include "relay.h"

#define DEADLINE_MS 20000
#define CHUNK (64 * 1024)

/* --- the test's side of each socketpair ------------------------------------ */

typedef struct {
    int fd;
    SgWatch *watch;
    const guint8 *out;            /* to send, or NULL */
    gsize out_len, out_off;
    bool shut_after_send;         /* shutdown(SHUT_WR) once all is sent */
    bool blocked;                 /* the last write found the socket full */
    bool reading;
    GByteArray *in;
    bool eof;
    int err;
} Peer;

static void peer_update(Peer *p);

static void
on_peer(SgWatch *watch, int fd, GIOCondition ready, gpointer data)
{
    Peer *p = data;

    (void)watch;
    (void)fd;
    /* Writes until the socket is full, so that "blocked" means it is. */
    while ((ready & G_IO_OUT) && p->out != NULL && p->out_off < p->out_len) {
        ssize_t n = write(p->fd, p->out + p->out_off, MIN(CHUNK, p->out_len - p->out_off));

        if (n > 0) {
            p->out_off += (gsize)n;
            p->blocked = false;
            if (p->out_off == p->out_len && p->shut_after_send)
                shutdown(p->fd, SHUT_WR);
        } else {
            if (errno == EAGAIN)
                p->blocked = true;
            else
                p->err = errno;
            break;
        }
    }
    if ((ready & (G_IO_IN | G_IO_HUP | G_IO_ERR)) && p->reading) {
        guint8 buf[CHUNK];
        ssize_t n = read(p->fd, buf, sizeof(buf));

        if (n > 0)
            g_byte_array_append(p->in, buf, (guint)n);
        else if (n == 0)
            p->eof = true;
        else if (errno != EAGAIN)
            p->err = errno, p->eof = true;
    }
    peer_update(p);
}

static void
peer_update(Peer *p)
{
    GIOCondition ev = 0;

    if (p->reading && !p->eof)
        ev |= G_IO_IN;
    if (p->out != NULL && p->out_off < p->out_len)
        ev |= G_IO_OUT;
    sg_watch_modify(p->watch, ev);
}

static void
peer_init(Peer *p, int fd)
{
    memset(p, 0, sizeof(*p));
    p->fd = fd;
    p->in = g_byte_array_new();
    p->watch = sg_watch_fd(fd, 0, on_peer, p);
}

static void
peer_send(Peer *p, const guint8 *bytes, gsize len, bool shut_after)
{
    p->out = bytes;
    p->out_len = len;
    p->out_off = 0;
    p->shut_after_send = shut_after;
    peer_update(p);
}

static void
peer_read(Peer *p, bool on)
{
    p->reading = on;
    peer_update(p);
}

static void
peer_close(Peer *p)
{
    g_clear_pointer(&p->watch, sg_watch_remove);
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
}

static void
peer_free(Peer *p)
{
    peer_close(p);
    g_byte_array_unref(p->in);
}

/* --- the relay's owner ------------------------------------------------------- */

typedef struct {
    SgRelay *relay;
    bool release_on_held;         /* held(): release at once (a link check that passes) */
    gsize held_calls, held_len;
    bool held_refuse;             /* held(): end the session */
    int lost_calls;
    SgRelayEnd lost_end;
    char *lost_detail;
    bool drop_back_on_lost;       /* what a session does when the SPICE server goes */
    int overflow_calls;
    bool drained;
} Owner;

static bool
on_held(SgRelay *relay, const guint8 *bytes, gsize len, gpointer data)
{
    Owner *o = data;

    (void)bytes;
    o->held_calls++;
    o->held_len = len;
    if (o->held_refuse)
        return false;
    if (o->release_on_held)
        sg_relay_hold(relay, false);
    return true;
}

static void
on_lost(SgRelay *relay, SgRelayEnd end, const char *detail, gpointer data)
{
    Owner *o = data;

    o->lost_calls++;
    o->lost_end = end;
    g_free(o->lost_detail);
    o->lost_detail = g_strdup(detail);
    if (o->drop_back_on_lost && end == SG_RELAY_BACK) {
        sg_relay_drop_back(relay);
        if (sg_relay_front_drained(relay))
            o->drained = true;
    }
}

static void
on_overflow(SgRelay *relay, const char *detail, gpointer data)
{
    Owner *o = data;

    (void)relay;
    (void)detail;
    o->overflow_calls++;
}

static void
on_drained(SgRelay *relay, gpointer data)
{
    Owner *o = data;

    (void)relay;
    o->drained = true;
}

static const SgRelayEvents owner_events = {
    .held = on_held,
    .lost = on_lost,
    .overflow = on_overflow,
    .drained = on_drained,
};

/* --- the loop ------------------------------------------------------------------ */

static gboolean
on_wake(gpointer data)
{
    (void)data;
    return G_SOURCE_CONTINUE;
}

/* Turns the loop until @cond holds, failing after DEADLINE_MS. */
#define RUN_UNTIL(cond)                                                                \
    do {                                                                               \
        gint64 end_ = g_get_monotonic_time() + (gint64)DEADLINE_MS * 1000;             \
        guint wake_ = g_timeout_add(100, on_wake, NULL);                               \
        while (!(cond)) {                                                              \
            ck_assert_msg(g_get_monotonic_time() < end_, "not within %d ms: %s",       \
                          DEADLINE_MS, #cond);                                         \
            g_main_context_iteration(NULL, TRUE);                                      \
        }                                                                              \
        g_source_remove(wake_);                                                        \
    } while (0)

/* Turns the loop until nothing is ready at once (bounded: a relay that
 * spins fails). */
static void
settle(void)
{
    int turns = 0;

    while (g_main_context_iteration(NULL, FALSE))
        ck_assert_int_lt(++turns, 10000);
}

static guint8 *
pattern(gsize len, guint32 seed)
{
    guint8 *p = g_malloc(len);
    GRand *r = g_rand_new_with_seed(seed);

    for (gsize i = 0; i + 4 <= len; i += 4) {
        guint32 v = g_rand_int(r);

        memcpy(p + i, &v, 4);
    }
    for (gsize i = len & ~(gsize)3; i < len; i++)
        p[i] = (guint8)i;
    g_rand_free(r);
    return p;
}

static void
make_pair(int sv[2])
{
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
}

static int
unread_bytes(int fd)
{
    int n = 0;

    ck_assert_int_eq(ioctl(fd, FIONREAD, &n), 0);
    return n;
}

/* A relay between two socketpairs: @front is the browser's peer, @back the
 * SPICE server's. Forwarding released when the first bytes arrive. */
typedef struct {
    Owner owner;
    Peer front, back;
    SgRelay *relay;
    int fsv[2], bsv[2];
} Rig;

static void
rig_init(Rig *rig, bool attach)
{
    memset(rig, 0, sizeof(*rig));
    make_pair(rig->fsv);
    make_pair(rig->bsv);
    rig->owner.release_on_held = true;
    rig->relay = sg_relay_new(sg_endpoint_tcp_new_fd(rig->fsv[0], "front"), &owner_events,
                              &rig->owner);
    rig->owner.relay = rig->relay;
    peer_init(&rig->front, rig->fsv[1]);
    peer_init(&rig->back, rig->bsv[1]);
    if (attach)
        sg_relay_attach_back(rig->relay, sg_endpoint_tcp_new_fd(rig->bsv[0], "back"));
}

static void
rig_attach(Rig *rig)
{
    sg_relay_attach_back(rig->relay, sg_endpoint_tcp_new_fd(rig->bsv[0], "back"));
}

static void
rig_free(Rig *rig)
{
    sg_relay_free(rig->relay);
    peer_free(&rig->front);
    peer_free(&rig->back);
    g_free(rig->owner.lost_detail);
    settle();
    sg_event_core_stop();
}

static void
assert_bytes(GByteArray *got, const guint8 *want, gsize len)
{
    ck_assert_uint_eq(got->len, len);
    for (gsize i = 0; i < len; i++) {
        if (got->data[i] != want[i])
            ck_abort_msg("byte %zu differs: %u, not %u", i, got->data[i], want[i]);
    }
}

/* --- tests --------------------------------------------------------------------- */

START_TEST(test_both_ways_byte_exact)
{
    Rig rig;
    gsize up_len = 3 * 1024 * 1024 + 17, down_len = 5 * 1024 * 1024 + 3;
    g_autofree guint8 *up = pattern(up_len, 1);
    g_autofree guint8 *down = pattern(down_len, 2);

    rig_init(&rig, true);
    peer_read(&rig.front, true);
    peer_read(&rig.back, true);
    peer_send(&rig.front, up, up_len, false);
    peer_send(&rig.back, down, down_len, false);
    RUN_UNTIL(rig.back.in->len >= up_len && rig.front.in->len >= down_len);
    settle();
    assert_bytes(rig.back.in, up, up_len);
    assert_bytes(rig.front.in, down, down_len);
    ck_assert_uint_eq(sg_relay_bytes_to(rig.relay, SG_RELAY_BACK), up_len);
    ck_assert_uint_eq(sg_relay_bytes_to(rig.relay, SG_RELAY_FRONT), down_len);
    ck_assert_int_eq(rig.owner.lost_calls, 0);
    rig_free(&rig);
}
END_TEST

/* Many small exchanges keep their order (the direct-send path). */
START_TEST(test_small_messages_in_order)
{
    Rig rig;
    guint8 buf[64];

    rig_init(&rig, true);
    peer_read(&rig.front, true);
    peer_read(&rig.back, true);
    for (int i = 0; i < 200; i++) {
        memset(buf, i, sizeof(buf));
        ck_assert_int_eq(write(rig.fsv[1], buf, sizeof(buf)), (ssize_t)sizeof(buf));
        RUN_UNTIL(rig.back.in->len == (guint)(i + 1) * sizeof(buf));
        ck_assert_int_eq(rig.back.in->data[i * sizeof(buf)], i);
        ck_assert_int_eq(write(rig.bsv[1], buf, 1), 1);
        RUN_UNTIL(rig.front.in->len == (guint)i + 1);
    }
    rig_free(&rig);
}
END_TEST

START_TEST(test_large_transfer)
{
    Rig rig;
    gsize len = 64 * 1024 * 1024;
    g_autofree guint8 *down = pattern(len, 3);

    rig_init(&rig, true);
    peer_read(&rig.front, true);
    peer_send(&rig.back, down, len, true);
    RUN_UNTIL(rig.front.in->len >= len);
    assert_bytes(rig.front.in, down, len);
    rig_free(&rig);
}
END_TEST

/* --- the link guard steps aside ---------------------------------------------- */

static void
on_guard_need_secured(SgEndpoint *guard, gpointer data)
{
    (void)guard;
    (void)data;
    ck_abort_msg("no NEED_SECURED was sent");
}

/* A SpiceLinkHeader and the error field of the reply after it. */
static GByteArray *
link_reply_head(guint32 error)
{
    SpiceLinkHeader h = {
        .magic = SPICE_MAGIC,
        .major_version = SPICE_VERSION_MAJOR,
        .minor_version = SPICE_VERSION_MINOR,
        .size = 4,
    };
    GByteArray *b = g_byte_array_new();

    g_byte_array_append(b, (const guint8 *)&h, sizeof(h));
    g_byte_array_append(b, (const guint8 *)&error, sizeof(error));
    return b;
}

static const char *
back_name(Rig *rig)
{
    return sg_relay_get_end(rig->relay, SG_RELAY_BACK)->ops->name;
}

/* tls = auto's guard (endpoint_link_guard.c) around the SPICE server's
 * end: while the server's verdict is incomplete the relay reads through
 * it; once the verdict has passed and the relay has read it, the relay
 * calls the TCP endpoint itself (unwrap()), so a console pays nothing for
 * the guard after its link. Both with a SPICE reply and with bytes that
 * are no SPICE reply at all (the bench's target). Byte-exact both ways
 * across the switch. */
START_TEST(test_link_guard_steps_aside)
{
    Rig rig;
    gsize down_len = 2 * 1024 * 1024 + 5, up_len = 1024 * 1024 + 9;
    g_autofree guint8 *down = pattern(down_len, 7);
    g_autofree guint8 *up = pattern(up_len, 8);
    g_autoptr(GByteArray) want = _i == 0 ? link_reply_head(SPICE_LINK_ERR_OK)
                                         : g_byte_array_new();
    guint8 link[64];

    g_byte_array_append(want, down, (guint)down_len);
    memset(link, 0x5a, sizeof(link));
    rig_init(&rig, false);
    sg_relay_attach_back(rig.relay,
                         sg_endpoint_link_guard_new(
                             sg_endpoint_tcp_new_fd(rig.bsv[0], "back"),
                             on_guard_need_secured, NULL));
    ck_assert_str_eq(back_name(&rig), "link-guard");
    peer_read(&rig.front, true);
    peer_read(&rig.back, true);
    ck_assert_int_eq(write(rig.fsv[1], link, sizeof(link)), (ssize_t)sizeof(link));
    RUN_UNTIL(rig.back.in->len == sizeof(link));

    /* Half a verdict: the guard waits for the rest, the browser gets
     * nothing. Bytes with no SPICE magic are judged at once and pass. */
    ck_assert_int_eq(write(rig.bsv[1], want->data, 6), 6);
    if (_i == 0) {
        settle();
        ck_assert_uint_eq(rig.front.in->len, 0);
        ck_assert_str_eq(back_name(&rig), "link-guard");
    } else {
        RUN_UNTIL(rig.front.in->len == 6);
    }

    peer_send(&rig.back, want->data + 6, want->len - 6, false);
    peer_send(&rig.front, up, up_len, false);
    RUN_UNTIL(rig.front.in->len >= want->len && rig.back.in->len >= sizeof(link) + up_len);
    settle();
    assert_bytes(rig.front.in, want->data, want->len);
    ck_assert_int_eq(memcmp(rig.back.in->data + sizeof(link), up, up_len), 0);
    ck_assert_str_eq(back_name(&rig), "tcp");
    ck_assert_int_eq(rig.owner.lost_calls, 0);

    /* The end of the stream still reaches the owner, from the TCP end. */
    shutdown(rig.bsv[1], SHUT_WR);
    RUN_UNTIL(rig.owner.lost_calls == 1);
    ck_assert_int_eq(rig.owner.lost_end, SG_RELAY_BACK);
    rig_free(&rig);
}
END_TEST

/* A front that stops reading: the relay stops reading the back (its
 * bytes stay in the back socket), holds at most one message, and goes on
 * once the front reads again. Then the same the other way round. */
static void
check_flow_control(bool toward_front)
{
    Rig rig;
    gsize len = 16 * 1024 * 1024;
    g_autofree guint8 *bytes = pattern(len, 4);
    Peer *writer, *reader;
    int relay_src_fd;
    SgRelayEnd dst_end;
    guint64 moved;

    rig_init(&rig, true);
    writer = toward_front ? &rig.back : &rig.front;
    reader = toward_front ? &rig.front : &rig.back;
    relay_src_fd = toward_front ? rig.bsv[0] : rig.fsv[0];
    dst_end = toward_front ? SG_RELAY_FRONT : SG_RELAY_BACK;
    peer_send(writer, bytes, len, false);
    RUN_UNTIL(writer->blocked);
    settle();
    moved = sg_relay_bytes_to(rig.relay, dst_end);
    /* Stopped: what the writer sent waits in the socket the relay reads. */
    ck_assert_int_gt(unread_bytes(relay_src_fd), 0);
    ck_assert_uint_lt(moved, len);
    ck_assert_uint_gt(moved, 0);
    /* It stays stopped: no busy loop, nothing more moves. */
    settle();
    ck_assert_uint_eq(sg_relay_bytes_to(rig.relay, dst_end), moved);
    /* At most one read is held between the two sockets. */
    ck_assert_uint_le(writer->out_off - moved - (guint64)unread_bytes(relay_src_fd),
                      256 * 1024);
    peer_read(reader, true);
    RUN_UNTIL(reader->in->len >= len);
    assert_bytes(reader->in, bytes, len);
    ck_assert_int_eq(rig.owner.lost_calls, 0);
    rig_free(&rig);
}

START_TEST(test_flow_control_toward_front)
{
    check_flow_control(true);
}
END_TEST

START_TEST(test_flow_control_toward_back)
{
    check_flow_control(false);
}
END_TEST

/* Nothing reaches the back before the owner releases forwarding (the
 * link check), and nothing before the back is attached. */
START_TEST(test_held_until_released)
{
    Rig rig;
    static const guint8 hello[] = "REDQ-link-message";

    rig_init(&rig, false);
    rig.owner.release_on_held = false;
    peer_read(&rig.back, true);
    peer_send(&rig.front, hello, sizeof(hello), false);
    RUN_UNTIL(rig.owner.held_len == sizeof(hello));
    rig_attach(&rig);
    settle();
    ck_assert_uint_eq(rig.back.in->len, 0);
    ck_assert_uint_eq(sg_relay_bytes_to(rig.relay, SG_RELAY_BACK), 0);
    /* Released by the owner on the next bytes. */
    rig.owner.release_on_held = true;
    peer_send(&rig.front, hello, 1, false);
    RUN_UNTIL(rig.back.in->len == sizeof(hello) + 1);
    ck_assert_int_eq(memcmp(rig.back.in->data, hello, sizeof(hello)), 0);
    rig_free(&rig);
}
END_TEST

/* The owner refusing what is held (a bad link): nothing goes on. */
START_TEST(test_held_refused)
{
    Rig rig;

    rig_init(&rig, true);
    rig.owner.release_on_held = false;
    rig.owner.held_refuse = true;
    peer_read(&rig.back, true);
    ck_assert_int_eq(write(rig.fsv[1], "junk", 4), 4);
    RUN_UNTIL(rig.owner.held_calls == 1);
    settle();
    ck_assert_uint_eq(rig.back.in->len, 0);
    rig_free(&rig);
}
END_TEST

/* The back closes after sending: the front still gets every byte, then
 * drained() (with the front not reading at first, so something is owed). */
START_TEST(test_back_closes_front_gets_everything)
{
    Rig rig;
    gsize len = 4 * 1024 * 1024;
    g_autofree guint8 *down = pattern(len, 5);

    rig_init(&rig, true);
    rig.owner.drop_back_on_lost = true;
    peer_send(&rig.back, down, len, true);
    RUN_UNTIL(rig.back.out_off == len || rig.back.blocked);
    settle();
    peer_read(&rig.front, true);
    RUN_UNTIL(rig.owner.lost_calls == 1);
    ck_assert_int_eq(rig.owner.lost_end, SG_RELAY_BACK);
    ck_assert_ptr_null(rig.owner.lost_detail);     /* end of stream, no error */
    RUN_UNTIL(rig.owner.drained);
    RUN_UNTIL(rig.front.in->len >= len);
    assert_bytes(rig.front.in, down, len);
    ck_assert_ptr_null(sg_relay_get_end(rig.relay, SG_RELAY_BACK));
    rig_free(&rig);
}
END_TEST

START_TEST(test_front_closes)
{
    Rig rig;

    rig_init(&rig, true);
    peer_read(&rig.back, true);
    ck_assert_int_eq(write(rig.fsv[1], "bye", 3), 3);
    shutdown(rig.fsv[1], SHUT_WR);
    RUN_UNTIL(rig.owner.lost_calls == 1);
    ck_assert_int_eq(rig.owner.lost_end, SG_RELAY_FRONT);
    ck_assert_ptr_null(rig.owner.lost_detail);
    RUN_UNTIL(rig.back.in->len == 3);
    ck_assert_int_eq(memcmp(rig.back.in->data, "bye", 3), 0);
    rig_free(&rig);
}
END_TEST

/* The back's peer is gone entirely: writing to it fails (or its end of
 * stream is read first); either way the back is reported lost. */
START_TEST(test_back_write_error)
{
    Rig rig;
    gsize len = 1024 * 1024;
    g_autofree guint8 *up = pattern(len, 6);

    rig_init(&rig, true);
    peer_close(&rig.back);
    peer_send(&rig.front, up, len, false);
    RUN_UNTIL(rig.owner.lost_calls >= 1);
    ck_assert_int_eq(rig.owner.lost_end, SG_RELAY_BACK);
    if (rig.owner.lost_detail != NULL)
        ck_assert_str_eq(rig.owner.lost_detail, g_strerror(EPIPE));
    rig_free(&rig);
}
END_TEST

/* --- fault_ep: a FAKE endpoint for fault injection only -------------------------
 * Wraps a real TCP endpoint; its writes fail with ECONNRESET once armed
 * (a socketpair cannot be reset on demand). */

typedef struct {
    SgEndpoint ep;
    SgEndpoint *inner;
    bool fail_writes;
} FaultEp;

static gssize
fault_read(SgEndpoint *ep, guint8 *dst, gsize len)
{
    FaultEp *f = (FaultEp *)ep;

    return f->inner->ops->read(f->inner, dst, len);
}

static gssize
fault_write(SgEndpoint *ep, guint8 *bytes, gsize len)
{
    FaultEp *f = (FaultEp *)ep;

    if (f->fail_writes) {
        errno = ECONNRESET;
        return -1;
    }
    return f->inner->ops->write(f->inner, bytes, len);
}

static void
fault_want(SgEndpoint *ep, SgEndpointReady wanted)
{
    FaultEp *f = (FaultEp *)ep;

    f->inner->ops->want(f->inner, wanted);
}

static void
fault_close(SgEndpoint *ep, guint16 code, const char *reason)
{
    (void)ep;
    (void)code;
    (void)reason;
}

static const char *
fault_peer(SgEndpoint *ep)
{
    (void)ep;
    return "fault";
}

static void
fault_free(SgEndpoint *ep)
{
    FaultEp *f = (FaultEp *)ep;

    sg_endpoint_free(f->inner);
    g_free(f);
}

static void
fault_inner_ready(SgEndpoint *inner, SgEndpointReady ready, gpointer data)
{
    (void)inner;
    sg_endpoint_report(data, ready);
}

static const SgEndpointOps fault_ops = {
    .name = "fault",
    .read = fault_read,
    .write = fault_write,
    .want = fault_want,
    .close = fault_close,
    .peer = fault_peer,
    .free = fault_free,
};

static FaultEp *
fault_new(int fd)
{
    FaultEp *f = g_new0(FaultEp, 1);
    SgEndpointEvents ev = { .ready = fault_inner_ready };

    f->ep.ops = &fault_ops;
    f->inner = sg_endpoint_tcp_new_fd(fd, "fault-inner");
    sg_endpoint_set_events(f->inner, &ev, f);
    return f;
}

START_TEST(test_write_error_reported_with_errno)
{
    Rig rig;
    FaultEp *f;

    rig_init(&rig, false);
    f = fault_new(rig.bsv[0]);
    sg_relay_attach_back(rig.relay, &f->ep);
    peer_read(&rig.back, true);
    ck_assert_int_eq(write(rig.fsv[1], "ok", 2), 2);
    RUN_UNTIL(rig.back.in->len == 2);
    f->fail_writes = true;
    ck_assert_int_eq(write(rig.fsv[1], "no", 2), 2);
    RUN_UNTIL(rig.owner.lost_calls == 1);
    ck_assert_int_eq(rig.owner.lost_end, SG_RELAY_BACK);
    ck_assert_str_eq(rig.owner.lost_detail, g_strerror(ECONNRESET));
    rig_free(&rig);
}
END_TEST

/* --- push_ep: a FAKE push endpoint -------------------------------------------------
 * The relay's push path (deliveries, pausing, overflow) is libwebsockets'
 * in the daemon, which needs a browser; this scripted one delivers what
 * the test tells it and records what the relay asks. */

typedef struct {
    SgEndpoint ep;
    SgEndpointReady wanted;
    int pauses, resumes;
} PushEp;

static gssize
push_write(SgEndpoint *ep, guint8 *bytes, gsize len)
{
    (void)ep;
    (void)bytes;
    return (gssize)len;
}

static void
push_want(SgEndpoint *ep, SgEndpointReady wanted)
{
    PushEp *p = (PushEp *)ep;
    bool was = (p->wanted & SG_ENDPOINT_READABLE) != 0, now = (wanted & SG_ENDPOINT_READABLE) != 0;

    if (was && !now)
        p->pauses++;
    if (!was && now)
        p->resumes++;
    p->wanted = wanted;
}

static const SgEndpointOps push_ops = {
    .name = "push",
    .write = push_write,
    .want = push_want,
    .close = fault_close,
    .peer = fault_peer,
    .free = (void (*)(SgEndpoint *))g_free,
};

static PushEp *
push_new(const char *unpausable)
{
    PushEp *p = g_new0(PushEp, 1);

    p->ep.ops = &push_ops;
    p->wanted = SG_ENDPOINT_READABLE;
    p->ep.push.rx_chunk = CHUNK;
    p->ep.push.rx_buffer = 4 * CHUNK;
    p->ep.push.unpausable = unpausable;
    return p;
}

/* Deliveries pause once less than a chunk fits, resume once half the
 * buffer has left; every byte reaches the back in order. */
START_TEST(test_push_pauses_and_resumes)
{
    Owner owner = { .release_on_held = true };
    PushEp *p = push_new(NULL);
    SgRelay *relay = sg_relay_new(&p->ep, &owner_events, &owner);
    int bsv[2];
    Peer back;
    gsize len = 4 * CHUNK, off = 0;
    g_autofree guint8 *up = pattern(len * 4, 7);

    make_pair(bsv);
    peer_init(&back, bsv[1]);
    sg_relay_attach_back(relay, sg_endpoint_tcp_new_fd(bsv[0], "back"));
    /* The back does not read: fill its socket, then the relay's buffer. */
    while (p->pauses == 0) {
        ck_assert_uint_lt(off, len * 4);
        sg_endpoint_deliver(&p->ep, up + off, CHUNK);
        off += CHUNK;
        settle();
    }
    ck_assert_int_eq(owner.overflow_calls, 0);
    ck_assert(!(p->wanted & SG_ENDPOINT_READABLE));
    peer_read(&back, true);
    RUN_UNTIL(p->resumes == 1);
    RUN_UNTIL(back.in->len == off);
    assert_bytes(back.in, up, off);
    ck_assert_uint_eq(sg_relay_bytes_to(relay, SG_RELAY_BACK), off);
    sg_relay_free(relay);
    peer_free(&back);
    settle();
    sg_event_core_stop();
}
END_TEST

/* A push endpoint that cannot pause (an HTTP/2 stream) and delivers more
 * than the buffer holds: overflow, never a dropped byte. */
START_TEST(test_push_unpausable_overflows)
{
    Owner owner = { .release_on_held = true };
    PushEp *p = push_new("cannot pause");
    SgRelay *relay = sg_relay_new(&p->ep, &owner_events, &owner);
    g_autofree guint8 *up = pattern(CHUNK, 8);

    /* No back yet: everything is held. */
    for (int i = 0; i < 5 && owner.overflow_calls == 0; i++)
        sg_endpoint_deliver(&p->ep, up, CHUNK);
    ck_assert_int_eq(owner.overflow_calls, 1);
    ck_assert_int_eq(p->pauses, 0);
    sg_relay_free(relay);
    sg_event_core_stop();
}
END_TEST

/* --- splice_ep: a FAKE endpoint that takes spliced messages -------------------
 * In the daemon only a plain websocket (libwebsockets) takes them; this
 * one wraps a real socket endpoint, splices the pipe into its socket and
 * keeps what the socket does not take, as lws keeps a partial write. It
 * drives the relay's zero-copy path: the splice, the switch between
 * splicing and copying, and the spill when the socket is full. */

typedef struct {
    SgEndpoint ep;
    SgEndpoint *inner;
    int fd;
    GByteArray *held;             /* taken but not yet in the socket */
    int spliced, spills;
    bool refuse;                  /* can_take_spliced() says no */
} SpliceEp;

static void
splice_send_held(SpliceEp *s)
{
    while (s->held->len > 0) {
        ssize_t n = write(s->fd, s->held->data, s->held->len);

        if (n <= 0)
            break;
        g_byte_array_remove_range(s->held, 0, (guint)n);
    }
}

static gssize
splice_read(SgEndpoint *ep, guint8 *dst, gsize len)
{
    SpliceEp *s = (SpliceEp *)ep;

    return s->inner->ops->read(s->inner, dst, len);
}

static gssize
splice_write(SgEndpoint *ep, guint8 *bytes, gsize len)
{
    SpliceEp *s = (SpliceEp *)ep;

    if (s->held->len > 0)
        return 0;
    return s->inner->ops->write(s->inner, bytes, len);
}

static bool
splice_pending(SgEndpoint *ep)
{
    return ((SpliceEp *)ep)->held->len > 0;
}

static void
splice_want(SgEndpoint *ep, SgEndpointReady wanted)
{
    SpliceEp *s = (SpliceEp *)ep;

    s->inner->ops->want(s->inner, wanted);
}

static bool
splice_can_take(SgEndpoint *ep)
{
    SpliceEp *s = (SpliceEp *)ep;

    return !s->refuse && s->held->len == 0;
}

static bool
splice_write_spliced(SgEndpoint *ep, SgPipe *pipe_, SgBuf *spill)
{
    SpliceEp *s = (SpliceEp *)ep;
    gsize avail;
    guint8 *dst;
    gsize len;

    s->spliced++;
    if (sg_pipe_drain(pipe_, s->fd) < 0 && errno != EAGAIN)
        return false;
    if (pipe_->len == 0)
        return true;
    s->spills++;
    len = pipe_->len;
    dst = sg_buf_reserve(spill, &avail);
    ck_assert(sg_buf_is_empty(spill) && avail >= len + SG_ENDPOINT_FRAME_MAX);
    ck_assert_int_eq(sg_pipe_read_all(pipe_, dst), (gssize)len);
    g_byte_array_append(s->held, dst, (guint)len);
    return true;
}

static void
splice_free(SgEndpoint *ep)
{
    SpliceEp *s = (SpliceEp *)ep;

    sg_endpoint_free(s->inner);
    g_byte_array_unref(s->held);
    g_free(s);
}

static void
splice_inner_ready(SgEndpoint *inner, SgEndpointReady ready, gpointer data)
{
    SpliceEp *s = data;

    (void)inner;
    if (ready & SG_ENDPOINT_WRITABLE)
        splice_send_held(s);
    sg_endpoint_report(&s->ep, ready);
}

static const SgEndpointOps splice_ops = {
    .name = "splice",
    .read = splice_read,
    .write = splice_write,
    .pending = splice_pending,
    .want = splice_want,
    .close = fault_close,
    .peer = fault_peer,
    .free = splice_free,
    .can_take_spliced = splice_can_take,
    .write_spliced = splice_write_spliced,
};

static SpliceEp *
splice_new(int fd)
{
    SpliceEp *s = g_new0(SpliceEp, 1);
    SgEndpointEvents ev = { .ready = splice_inner_ready };

    s->ep.ops = &splice_ops;
    s->fd = fd;
    s->held = g_byte_array_new();
    s->inner = sg_endpoint_tcp_new_fd(fd, "splice-inner");
    sg_endpoint_set_events(s->inner, &ev, s);
    return s;
}

/* Large reads from the back are spliced toward a front that takes spliced
 * messages, every byte in order, whether the front keeps up (splices
 * straight through) or not (spills); and a front that says no at run time
 * gets copies. */
static void
check_splice(bool front_slow, bool refuse)
{
    Owner owner = { .release_on_held = true };
    int fsv[2], bsv[2];
    SpliceEp *s;
    SgRelay *relay;
    Peer front, back;
    gsize len = 32 * 1024 * 1024;
    g_autofree guint8 *down = pattern(len, 9);

    make_pair(fsv);
    make_pair(bsv);
    s = splice_new(fsv[0]);
    s->refuse = refuse;
    relay = sg_relay_new(&s->ep, &owner_events, &owner);
    sg_relay_attach_back(relay, sg_endpoint_tcp_new_fd(bsv[0], "back"));
    peer_init(&front, fsv[1]);
    peer_init(&back, bsv[1]);
    peer_send(&back, down, len, false);
    if (front_slow) {
        /* Let the front's socket fill up before it reads. */
        RUN_UNTIL(back.blocked);
        settle();
    }
    peer_read(&front, true);
    RUN_UNTIL(front.in->len >= len);
    assert_bytes(front.in, down, len);
    ck_assert_uint_eq(sg_relay_bytes_to(relay, SG_RELAY_FRONT), len);
    if (refuse) {
        ck_assert_int_eq(s->spliced, 0);
    } else {
        ck_assert_int_gt(s->spliced, 0);
        if (front_slow)
            ck_assert_int_gt(s->spills, 0);
    }
    ck_assert_int_eq(owner.lost_calls, 0);
    sg_relay_free(relay);
    peer_free(&front);
    peer_free(&back);
    settle();
    sg_event_core_stop();
}

START_TEST(test_splice_toward_front)
{
    check_splice(false, false);
}
END_TEST

START_TEST(test_splice_spills_when_front_is_full)
{
    check_splice(true, false);
}
END_TEST

START_TEST(test_splice_refused_at_run_time_copies)
{
    check_splice(true, true);
}
END_TEST

/* Small deliveries from a push source go straight to the back, in order,
 * with large ones batched between them. */
START_TEST(test_push_small_and_batched_in_order)
{
    Owner owner = { .release_on_held = true };
    PushEp *p = push_new(NULL);
    SgRelay *relay = sg_relay_new(&p->ep, &owner_events, &owner);
    int bsv[2];
    Peer back;
    gsize total = 0;
    g_autofree guint8 *up = pattern(1024 * 1024, 10);

    make_pair(bsv);
    peer_init(&back, bsv[1]);
    peer_read(&back, true);
    sg_relay_attach_back(relay, sg_endpoint_tcp_new_fd(bsv[0], "back"));
    for (int i = 0; i < 100; i++) {
        gsize n = (i % 10 == 9) ? 20000 : (gsize)(1 + i * 7);

        sg_endpoint_deliver(&p->ep, up + total, n);
        total += n;
        if (i % 3 == 0)
            settle();
    }
    RUN_UNTIL(back.in->len >= total);
    assert_bytes(back.in, up, total);
    ck_assert_uint_eq(sg_relay_bytes_to(relay, SG_RELAY_BACK), total);
    sg_relay_free(relay);
    peer_free(&back);
    settle();
    sg_event_core_stop();
}
END_TEST

/* The relay is symmetric: a push endpoint as the back (as a native SPICE
 * server end could be) gets its batches to the front too. */
START_TEST(test_push_back_batches_reach_front)
{
    Owner owner = { .release_on_held = true };
    int fsv[2];
    PushEp *p = push_new(NULL);
    SgRelay *relay;
    Peer front;
    gsize total = 0;
    g_autofree guint8 *down = pattern(512 * 1024, 11);

    make_pair(fsv);
    relay = sg_relay_new(sg_endpoint_tcp_new_fd(fsv[0], "front"), &owner_events, &owner);
    peer_init(&front, fsv[1]);
    peer_read(&front, true);
    sg_relay_attach_back(relay, &p->ep);
    for (int i = 0; i < 20; i++) {
        sg_endpoint_deliver(&p->ep, down + total, 20000);
        total += 20000;
        settle();
    }
    RUN_UNTIL(front.in->len >= total);
    assert_bytes(front.in, down, total);
    ck_assert_uint_eq(sg_relay_bytes_to(relay, SG_RELAY_FRONT), total);
    sg_relay_free(relay);
    peer_free(&front);
    settle();
    sg_event_core_stop();
}
END_TEST

static Suite *
relay_suite(void)
{
    Suite *s = suite_create("relay");
    TCase *tc = tcase_create("relay");

    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_both_ways_byte_exact);
    tcase_add_test(tc, test_small_messages_in_order);
    tcase_add_test(tc, test_large_transfer);
    tcase_add_test(tc, test_flow_control_toward_front);
    tcase_add_test(tc, test_flow_control_toward_back);
    tcase_add_test(tc, test_held_until_released);
    tcase_add_test(tc, test_held_refused);
    tcase_add_test(tc, test_back_closes_front_gets_everything);
    tcase_add_test(tc, test_front_closes);
    tcase_add_test(tc, test_back_write_error);
    tcase_add_test(tc, test_write_error_reported_with_errno);
    tcase_add_test(tc, test_push_pauses_and_resumes);
    tcase_add_test(tc, test_push_unpausable_overflows);
    tcase_add_test(tc, test_push_small_and_batched_in_order);
    tcase_add_test(tc, test_push_back_batches_reach_front);
    tcase_add_test(tc, test_splice_toward_front);
    tcase_add_test(tc, test_splice_spills_when_front_is_full);
    tcase_add_test(tc, test_splice_refused_at_run_time_copies);
    tcase_add_loop_test(tc, test_link_guard_steps_aside, 0, 2);
    suite_add_tcase(s, tc);
    return s;
}

int
main(void)
{
    SRunner *sr = srunner_create(relay_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
