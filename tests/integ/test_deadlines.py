# SPDX-License-Identifier: Apache-2.0
"""Every waiting state has a deadline, from spicegate.conf:

- handshake_timeout: a connection that sends nothing, half a request, or
  drips one, before any websocket exists;
- idle_timeout: a relaying console with no byte either way (4408, idle);
- close_timeout: a browser that no longer reads, once its console ended
  (DRAINING) or while its close frame waits (CLOSING): spicegate hangs up;
- shutdown_timeout: what sessions get at stop, in one process and with
  workers (the master's wait is derived from it), and what systemd is told.

The SPICE servers here are fake peers (fault injection: QEMU cannot be
told to flood and then reset); link_timeout and the other refusals are in
test_refusals.py. Small configured values keep the waits short; every wait
is on an event (a close, a log line, an exit) under a deadline.
"""

import os
import re
import select
import signal
import socket
import ssl
import struct
import threading
import time

from harness import (
    recv_notify,
    CHANNEL_MAIN, CLOSE_IDLE, Deadline, FakePeer, IntegTestCase, TOP_BUILDDIR, WAIT_S, children,
    link_message, make_cert, open_echo, pattern, poll_until, random_token, sink_source_handler,
    still_relays,
)

# What a deadline may take beyond its setting on a loaded 2-core machine
# (make check runs the browsers of tests/e2e beside these): generous, since
# speed is the benchmarks' business. Each test's setting is chosen so that
# setting + SLACK_S still tells it from the default (handshake 10 s, close
# 30 s, idle off, shutdown 3 s: that test waits longer than the default).
SLACK_S = 5.0


def wait_dropped(sock, seconds=WAIT_S):
    """Reads @sock until the peer ends the connection (EOF or reset);
    returns what arrived. Fails if it is still open after @seconds."""
    sock.settimeout(seconds)
    got = bytearray()
    try:
        while True:
            chunk = sock.recv(1 << 16)
            if not chunk:
                return bytes(got)
            got += chunk
    except ConnectionResetError:
        return bytes(got)
    except socket.timeout:
        raise AssertionError("connection still open after %.1f s" % seconds) from None


def flood_then_reset_handler(data):
    """Reads the link; sends @data (it stalls once the browser stops
    reading); when told (conn.go), resets the connection (RST)."""
    def handler(conn):
        conn.read_link()
        sender = threading.Thread(target=conn.send_all, args=(data,), daemon=True)
        sender.start()
        conn.go.wait()
        # shutdown() wakes the sender blocked in send(); close() alone
        # would wait for it. With a zero linger, the close is a reset.
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.sock.shutdown(socket.SHUT_RDWR)
        sender.join()
        conn.sock.close()
    return handler


class Handshake(IntegTestCase):
    """handshake_timeout: lws' hold on a connection before the upgrade.
    Without it lws waits 10 s for request headers."""

    TIMEOUT_S = 1

    def setUp(self):
        super().setUp()
        self.peer = self.echo_peer()
        self.token = random_token()
        self.sg = self.start_spicegate({self.token: self.peer.target},
                                       config="[server]\nhandshake_timeout = %d\n"
                                              % self.TIMEOUT_S)

    def assert_dropped_in_time(self, sock, start):
        got = wait_dropped(sock)
        elapsed = time.monotonic() - start
        self.assertGreater(elapsed, self.TIMEOUT_S - 0.2, "dropped before handshake_timeout")
        self.assertLess(elapsed, self.TIMEOUT_S + SLACK_S,
                        "handshake_timeout = %d: still open after %.1f s"
                        % (self.TIMEOUT_S, elapsed))
        self.assertEqual(got, b"", "an answer to an incomplete request")
        # Others were served all along, and still are.
        self.assert_echo_session(self.sg, token=self.token)

    def test_silent_connection_dropped(self):
        sock = socket.create_connection(("127.0.0.1", self.sg.port))
        self.addCleanup(sock.close)
        self.assert_dropped_in_time(sock, time.monotonic())

    def test_half_request_dropped(self):
        sock = socket.create_connection(("127.0.0.1", self.sg.port))
        self.addCleanup(sock.close)
        sock.sendall(b"GET /spice_auto.html HTTP/1.1\r\nHo")
        self.assert_dropped_in_time(sock, time.monotonic())

    def test_half_upgrade_dropped(self):
        sock = socket.create_connection(("127.0.0.1", self.sg.port))
        self.addCleanup(sock.close)
        sock.sendall(("GET /websockify?token=%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      "Upgrade: websocket\r\nConnection: Upgrade\r\n" % self.token).encode())
        self.assert_dropped_in_time(sock, time.monotonic())

    def test_dripping_request_dropped(self):
        # A byte at a time does not buy more time (slowloris). The drip is
        # the stimulus, paced by waiting for the connection to end.
        sock = socket.create_connection(("127.0.0.1", self.sg.port))
        self.addCleanup(sock.close)
        start = time.monotonic()
        request = b"GET /spice_auto.html HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + b"a" * 200
        for byte in request:
            try:
                sock.send(bytes([byte]))
            except OSError:
                break
            if select.select([sock], [], [], 0.1)[0]:
                break
        self.assert_dropped_in_time(sock, start)

    def test_whole_request_in_time_is_answered(self):
        # The deadline is for the headers: a page asked for in time is
        # served, and a websocket that follows lives past it.
        status, _, _ = self.sg.get("/healthz")
        self.assertEqual(status, 200)
        ws = open_echo(self.sg, self.token)
        other = socket.create_connection(("127.0.0.1", self.sg.port))
        self.addCleanup(other.close)
        wait_dropped(other)                 # handshake_timeout has passed
        self.assertTrue(still_relays(ws))


class HandshakeTls(IntegTestCase):
    """handshake_timeout over TLS: for the TLS handshake (lws' default was
    5 s), then again for the request."""

    TIMEOUT_S = 1

    def start(self, ssl_only):
        cert, key = make_cert(self.tmp)
        return self.start_spicegate(config="[server]\nhandshake_timeout = %d\n[tls]\ncert = %s\n"
                                           "key = %s\nssl_only = %s\n"
                                           % (self.TIMEOUT_S, cert, key,
                                              "true" if ssl_only else "false"))

    def assert_dropped_in_time(self, sock, start):
        wait_dropped(sock)
        elapsed = time.monotonic() - start
        self.assertGreater(elapsed, self.TIMEOUT_S - 0.2, "dropped before handshake_timeout")
        self.assertLess(elapsed, self.TIMEOUT_S + SLACK_S,
                        "handshake_timeout = %d: still open after %.1f s"
                        % (self.TIMEOUT_S, elapsed))

    def test_no_client_hello_dropped(self):
        for ssl_only in (True, False):
            sg = self.start(ssl_only)
            sock = socket.create_connection(("127.0.0.1", sg.port))
            self.addCleanup(sock.close)
            self.assert_dropped_in_time(sock, time.monotonic())

    def test_half_request_after_handshake_dropped(self):
        sg = self.start(True)
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", sg.port)),
                               server_hostname="localhost")
        self.addCleanup(sock.close)
        start = time.monotonic()
        sock.sendall(b"GET /spice_auto.html HTTP/1.1\r\nHo")
        try:
            self.assert_dropped_in_time(sock, start)
        except ssl.SSLError:
            pass                             # a TLS-level end is an end too


class Idle(IntegTestCase):
    """idle_timeout: a relaying console with no byte either way is closed
    with 4408 "console idle for too long"; it checks every quarter of the
    setting (at least a second), so it closes within that after it."""

    IDLE_S = 2

    def setUp(self):
        super().setUp()
        self.peer = self.echo_peer()
        self.token = random_token()
        self.other = random_token()   # another console
        self.sg = self.start_spicegate({self.token: self.peer.target,
                                        self.other: self.peer.target},
                                       config="[server]\nidle_timeout = %d\n" % self.IDLE_S)

    def test_idle_console_closed_4408(self):
        ws = open_echo(self.sg, self.token)
        self.assertTrue(still_relays(ws))
        last_byte = time.monotonic()
        self.assert_closed(ws, CLOSE_IDLE, self.sg)
        elapsed = time.monotonic() - last_byte
        self.assertGreater(elapsed, self.IDLE_S - 0.2, "closed before idle_timeout")
        # A tick (1 s here), GLib's grouping of second timers (1 s), slack.
        self.assertLess(elapsed, self.IDLE_S + 2 + SLACK_S, "idle_timeout = %d: closed only "
                        "after %.1f s" % (self.IDLE_S, elapsed))
        self.sg.wait_log(r'close client=.* reason="console idle for too long": no byte either '
                         r'way for %d s \(idle_timeout\)$' % self.IDLE_S)
        self.assertTrue(self.peer.conns[0].eof.wait(WAIT_S), "the SPICE server's connection "
                        "stayed open")

    def test_traffic_keeps_the_console(self):
        # Two consoles opened together: the quiet one's close is the clock;
        # the busy one, which exchanged bytes all along, outlives it.
        busy = open_echo(self.sg, self.other)
        quiet = open_echo(self.sg, self.token)
        deadline = Deadline(self.IDLE_S + 2 + SLACK_S + 5)
        rounds = 0
        while not select.select([quiet.sock], [], [], 0.25)[0]:
            self.assertFalse(deadline.expired(), "the quiet console was never closed")
            self.assertTrue(still_relays(busy, b"%d" % rounds))
            rounds += 1
        self.assert_closed(quiet, CLOSE_IDLE, self.sg)
        self.assertTrue(still_relays(busy), "a console with traffic was closed as idle")
        self.assertGreater(rounds, 4)

    def test_idle_is_the_whole_consoles(self):
        # Two channels of one console (one token): the quiet one (a
        # display nobody changes) stays while the other (inputs someone
        # types into) moves bytes; then both close as idle.
        busy = open_echo(self.sg, self.token)
        quiet = open_echo(self.sg, self.token)
        for rounds in range(4 * (self.IDLE_S + 2)):
            self.assertFalse(select.select([quiet.sock], [], [], 0.25)[0],
                             "a channel of a busy console closed after %d rounds%s"
                             % (rounds, self.sg.log_tail()))
            self.assertTrue(still_relays(busy, b"%d" % rounds))
        self.assert_closed(quiet, CLOSE_IDLE, self.sg)
        self.assert_closed(busy, CLOSE_IDLE, self.sg)

    def test_off_by_default(self):
        # Without idle_timeout a quiet console outlives a console that was
        # closed as idle by a daemon configured for it.
        plain = self.start_spicegate({self.token: self.peer.target})
        quiet_plain = open_echo(plain, self.token)
        quiet = open_echo(self.sg, self.token)
        self.assert_closed(quiet, CLOSE_IDLE, self.sg)
        self.assertTrue(still_relays(quiet_plain))


class Drain(IntegTestCase):
    """close_timeout: a browser that stops reading cannot keep a session
    whose console ended (DRAINING), nor one whose close frame cannot go
    out (CLOSING): spicegate hangs up, and the close line says so."""

    def deaf_session(self, sg, peer, token):
        """A console whose browser stopped reading while the SPICE server
        floods it: returns (websocket, the server's connection) once
        spicegate has pushed back on the server."""
        ws = sg.ws(token=token, rcvbuf=65536)
        ws.send_binary(link_message(CHANNEL_MAIN))
        conn = peer.wait_conn()
        self.assertTrue(conn.link_read.wait(WAIT_S))
        self.assertTrue(conn.stalled.wait(60), "spicegate never pushed back on the flood")
        return ws, conn

    def test_draining_browser_that_never_reads_is_hung_up(self):
        peer = FakePeer(self.reg, flood_then_reset_handler(pattern(3, 64 << 20)), "flood")
        token = random_token()
        sg = self.start_spicegate({token: peer.target}, config="[server]\nclose_timeout = 1\n",
                                  extra_args=["--debug"])
        ws, conn = self.deaf_session(sg, peer, token)
        conn.go.set()                        # the SPICE server resets
        self.assertTrue(conn.done.wait(WAIT_S))
        # The browser's next upload finds the server gone: DRAINING, with
        # what the browser is owed stuck in spicegate and the socket.
        ws.send_binary(b"keystroke")
        start = time.monotonic()
        sg.wait_log(r'close client=.* reason="console closed": .*hung up: the browser did not '
                    r'take the rest within 1 s \(close_timeout\)$', seconds=1 + SLACK_S + 5)
        elapsed = time.monotonic() - start
        self.assertLess(elapsed, 1 + SLACK_S, "close_timeout = 1: hung up after %.1f s"
                        % elapsed)
        wait_dropped(ws.sock)                # and the connection is gone

    def test_close_frame_that_cannot_go_out_is_bounded(self):
        # idle_timeout closes a console whose browser stopped reading: the
        # close frame waits behind what the browser did not take (CLOSING),
        # and close_timeout bounds that too.
        peer = FakePeer(self.reg, sink_source_handler(pattern(4, 64 << 20)), "flood")
        token = random_token()
        sg = self.start_spicegate({token: peer.target},
                                  config="[server]\nidle_timeout = 1\nclose_timeout = 1\n")
        ws = sg.ws(token=token, rcvbuf=65536)          # never reads
        ws.send_binary(link_message(CHANNEL_MAIN))
        conn = peer.wait_conn()
        self.assertTrue(conn.link_read.wait(WAIT_S))
        conn.go.set()
        sg.wait_log(r'close client=.* reason="console idle for too long": no byte either way '
                    r'for 1 s \(idle_timeout\); hung up: the browser did not take the rest '
                    r'within 1 s \(close_timeout\)$', seconds=WAIT_S)
        wait_dropped(ws.sock)
        self.assertTrue(conn.eof.wait(WAIT_S), "the SPICE server's connection stayed open")


def built_stop_settings():
    """(TimeoutStopSec of the built unit, shutdown_timeout's default from
    the built sample configuration): both derived from configure.ac."""
    with open(os.path.join(TOP_BUILDDIR, "conf", "spicegate.service")) as f:
        unit = int(re.search(r"^TimeoutStopSec=(\d+)$", f.read(), re.M).group(1))
    with open(os.path.join(TOP_BUILDDIR, "conf", "spicegate.conf")) as f:
        default = int(re.search(r"^#shutdown_timeout = (\d+)$", f.read(), re.M).group(1))
    return unit, default


class Shutdown(IntegTestCase):
    """shutdown_timeout: one value for the listener, the workers' master
    and what systemd is told."""

    def setUp(self):
        super().setUp()
        self.notify_path = os.path.join(self.tmp, "notify")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.notify_path)
        self.reg.add(self.notify)

    def recv_state(self):
        return recv_notify(self.notify)

    def stuck_session(self, sg, peer, token):
        ws = sg.ws(token=token, rcvbuf=65536)     # never reads
        ws.send_binary(link_message(CHANNEL_MAIN))
        conn = peer.wait_conn()
        self.assertTrue(conn.link_read.wait(WAIT_S))
        conn.go.set()
        self.assertTrue(conn.stalled.wait(60), "spicegate never pushed back on the flood")
        return ws

    def test_shutdown_timeout_bounds_a_stuck_session(self):
        # The close frame cannot reach a browser that stopped reading; the
        # process exits once shutdown_timeout is over (close_timeout, 30 s
        # here, is longer).
        peer = FakePeer(self.reg, sink_source_handler(pattern(5, 64 << 20)), "flood")
        token = random_token()
        # Longer than the default (3 s), so that the lower bound proves the
        # setting is honoured and the upper one can be generous.
        shutdown_s = 5
        sg = self.start_spicegate({token: peer.target},
                                  config="[server]\nshutdown_timeout = %d\n" % shutdown_s)
        self.stuck_session(sg, peer, token)
        start = time.monotonic()
        sg.send_signal(signal.SIGTERM)
        self.assertEqual(sg.wait_exit(shutdown_s + SLACK_S + 5), 0, sg.log_tail())
        elapsed = time.monotonic() - start
        self.assertGreater(elapsed, shutdown_s - 0.2,
                           "exited before shutdown_timeout (after the default, 3 s?)")
        self.assertLess(elapsed, shutdown_s + SLACK_S,
                        "shutdown_timeout = %d: exit after %.1f s" % (shutdown_s, elapsed))

    def test_systemd_told_the_stop_time(self):
        # With the default, what spicegate asks for is the unit's
        # TimeoutStopSec; a longer shutdown_timeout asks for that much more.
        unit_s, default_s = built_stop_settings()
        for shutdown_s in (default_s, default_s + 40):
            env = dict(os.environ, NOTIFY_SOCKET=self.notify_path)
            sg = self.start_spicegate(config="[server]\nshutdown_timeout = %d\n" % shutdown_s,
                                      env=env)
            self.assertEqual(self.recv_state(), {"READY": "1"})
            sg.send_signal(signal.SIGTERM)
            self.assertEqual(self.recv_state(), {
                "STOPPING": "1",
                "EXTEND_TIMEOUT_USEC": str((unit_s - default_s + shutdown_s) * 1000000)})
            self.assertEqual(sg.wait_exit(), 0, sg.log_tail())

    def test_master_waits_for_workers_shutdown_timeout_plus_margin(self):
        # A worker that cannot stop (SIGSTOP) is killed by the master once
        # shutdown_timeout and the master's margin are over; the unit's
        # TimeoutStopSec leaves systemd's margin after that.
        unit_s, default_s = built_stop_settings()
        env = dict(os.environ, NOTIFY_SOCKET=self.notify_path)
        sg = self.start_spicegate(config="[server]\nshutdown_timeout = 1\nworkers = 2\n",
                                  env=env)
        self.assertEqual(self.recv_state(), {"READY": "1"})
        poll_until(lambda: len(children(sg.pid)) == 2, "two workers")
        stuck = children(sg.pid)[0]
        os.kill(stuck, signal.SIGSTOP)
        start = time.monotonic()
        sg.send_signal(signal.SIGTERM)
        state = self.recv_state()
        self.assertEqual(state["STOPPING"], "1")
        stop_s = int(state["EXTEND_TIMEOUT_USEC"]) // 1000000
        self.assertEqual(stop_s, unit_s - default_s + 1)
        self.assertEqual(sg.wait_exit(stop_s + 5), 0, sg.log_tail())
        elapsed = time.monotonic() - start
        # The master's wait is shutdown_timeout plus its margin, which is
        # less than what systemd allows and more than the worker's own.
        self.assertGreater(elapsed, 1 + 1, "the stuck worker was killed at once")
        self.assertLess(elapsed, stop_s, "the master waited longer than systemd allows")
        self.assertFalse(os.path.exists("/proc/%d" % stuck), "the stuck worker is still there")
