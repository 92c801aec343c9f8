# SPDX-License-Identifier: Apache-2.0
"""Keepalive: [server] ping_interval.

spicegate pings every browser websocket once per interval, so that a load
balancer or NAT that cuts quiet connections never cuts a quiet console,
and closes (4408, "no answer to pings") a browser that sends nothing back
for 3 intervals. Here: the pings arrive at the interval on a raw
websocket; a client that never answers is closed, logged and its SPICE
connection closed; relays stay byte-exact both ways with a ping every
second while megabytes flow, over HTTP/1.1 (where spicegate writes its own
frame headers on the zero-copy path) and over HTTP/2 (wss, RFC 8441); and
a quiet console behind the real HAProxy of Debian, whose `timeout tunnel`
is shorter than the test, stays open because of the pings, while with
ping_interval = 0 HAProxy cuts it.
"""

import hashlib
import os
import queue
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
import unittest

from harness import (
    CHANNEL_MAIN, CLOSE_ABNORMAL, CLOSE_PING_TIMEOUT, OP_BINARY, OP_CLOSE, OP_CONT, OP_PING,
    OP_PONG, WAIT_S, Deadline, FakePeer, IntegTestCase, Registry, WsClient, WsClosed,
    _with_pdeathsig, link_message, make_cert, open_echo, pattern, random_token,
    sink_source_handler, still_relays,
)

MIB = 1 << 20
# Frame sizes that cross every RFC 6455 length encoding boundary.
FRAME_SIZES = (1, 125, 126, 65535, 65536, 65537, 100000, 4096, 7, MIB + 3, 300)


def config(ping_interval, extra=""):
    return "[server]\nping_interval = %d\n%s" % (ping_interval, extra)


class Pings(IntegTestCase):

    def test_pings_arrive_every_interval(self):
        """A quiet console gets a ping every ping_interval (1 s), each
        answered, and keeps relaying."""
        peer = self.echo_peer()
        token = random_token()
        sg = self.start_spicegate({token: peer.target}, config=config(1))
        ws = open_echo(sg, token)
        times = []
        deadline = Deadline(10)
        ws.sock.settimeout(10)
        while len(times) < 4:
            self.assertFalse(deadline.expired(), "only %d pings in 10 s" % len(times))
            _fin, op, payload = ws.recv_frame()
            self.assertEqual(op, OP_PING, "a frame other than a ping on a quiet console")
            self.assertEqual(payload, b"sg")
            times.append(time.monotonic())
            ws.send_frame(OP_PONG, payload)
        gaps = [b - a for a, b in zip(times, times[1:])]
        for gap in gaps:
            self.assertGreater(gap, 0.7, "pings %r s apart" % gaps)
            self.assertLess(gap, 1.5, "pings %r s apart" % gaps)
        self.assertTrue(still_relays(ws))

    def test_silent_browser_closed_and_logged(self):
        """A browser that answers no ping and sends nothing is closed with
        4408 "no answer to pings" 3 to 4 intervals after it was last heard,
        the close line says why, and the SPICE connection is closed."""
        peer = self.echo_peer()
        token = random_token()
        sg = self.start_spicegate({token: peer.target}, config=config(1))
        ws = open_echo(sg, token)
        conn = peer.wait_conn()
        heard = time.monotonic()
        pings = 0
        ws.sock.settimeout(10)
        while True:
            _fin, op, payload = ws.recv_frame()
            if op == OP_PING:
                pings += 1
                continue                   # never answered
            self.assertEqual(op, OP_CLOSE)
            break
        took = time.monotonic() - heard
        code, reason = struct.unpack("!H", payload[:2])[0], payload[2:].decode()
        self.assertEqual((code, reason), CLOSE_PING_TIMEOUT, sg.log_tail())
        self.assertGreater(took, 2.5, "closed too soon")
        self.assertLess(took, 5.5, "closed too late")
        self.assertGreaterEqual(pings, 2)
        sg.wait_log(r'close client=127\.0\.0\.1:\d+ .* reason="no answer to pings": nothing from '
                    r'the browser for 3 pings, 1 s apart \(ping_interval\)$')
        self.assertTrue(conn.eof.wait(WAIT_S), "the SPICE server's connection stayed open")


def rounds_handler(pieces):
    """A fake SPICE server (fault injection: it sends on cue) that reads
    the link, then hashes everything that arrives while it sends one of
    @pieces each time it is told (conn.go), noting stalls as send_all()
    does."""
    def sink(conn):
        # Not PeerConn.sink(): send_all()'s socket timeout must not end
        # the reads while the browser sends nothing.
        while True:
            try:
                chunk = conn.sock.recv(1 << 16)
            except socket.timeout:
                continue
            except OSError:
                break
            if not chunk:
                break
            conn.received += len(chunk)
            conn.sha.update(chunk)
        conn.eof.set()

    def handler(conn):
        conn.read_link()
        reader = threading.Thread(target=sink, args=(conn,), daemon=True)
        reader.start()
        for piece in pieces:
            if not conn.go.wait(60):
                return
            conn.go.clear()
            if not conn.send_all(piece, (1, 4096, 65536, 300000, 77)):
                return
        reader.join()
    return handler


class PingsWhileRelaying(IntegTestCase):
    """Megabytes both ways with a ping every second: every byte arrives, in
    order, and the pings come between frames, never inside one."""

    def test_byte_exact_http1(self):
        """First the SPICE server sends 24 MiB while the browser stops
        reading until those sends stall: spicegate's socket toward it fills
        in the middle of a frame of the zero-copy path (our own header,
        then payload spliced past lws), and the ping that falls due
        meanwhile must wait for the frame's end. Then rounds of 1 MiB down
        and 256 KiB up, the first ones each waiting for a ping."""
        rounds = 10
        down = [pattern(3100, 24 * MIB + 7)] + [pattern(3100 + i, MIB + i)
                                                 for i in range(1, rounds)]
        up = pattern(31, rounds * 256 * 1024 + 5)
        peer = FakePeer(self.reg, rounds_handler(down), "rounds")
        token = random_token()
        # --debug: the log says when a spliced frame was cut by a full
        # socket (its rest then goes through lws).
        sg = self.start_spicegate({token: peer.target}, config=config(1),
                                  extra_args=("--debug",))
        ws = sg.ws(token=token, rcvbuf=65536)
        msg = link_message(CHANNEL_MAIN)
        ws.send_binary(msg)
        conn = peer.wait_conn()
        self.assertTrue(conn.link_read.wait(WAIT_S), "link message never reached the server")
        ws.sock.settimeout(WAIT_S)
        state = {"pings": 0}

        def read_frame(until_ping=False):
            """The next data frame's payload (None: a ping came first and
            @until_ping); pings answered and counted."""
            while True:
                _fin, op, payload = ws.recv_frame()
                if op == OP_PING:
                    self.assertEqual(payload, b"sg")
                    state["pings"] += 1
                    ws.send_frame(OP_PONG, payload)
                    if until_ping:
                        return None
                    continue
                if op == OP_CLOSE:
                    # Say why: the code, the reason and spicegate's last lines.
                    code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                    self.fail("spicegate closed the websocket: %r %r%s"
                              % (code, payload[2:], sg.log_tail()))
                self.assertIn(op, (OP_BINARY, OP_CONT), "opcode %#x" % op)
                return payload

        piece_up = len(up) // rounds
        pings_between_rounds = 0
        try:
            for i in range(rounds):
                conn.go.set()
                ws.send_binary(up[i * piece_up:(i + 1) * piece_up if i < rounds - 1 else None])
                got = hashlib.sha256()
                n = 0
                while n < len(down[i]):
                    if i == 0 and n >= 4 * MIB and not conn.stalled.is_set():
                        # Stop reading until the server's sends stall (3 s
                        # without progress): every buffer on the way down
                        # is full then. Or until the server has sent the
                        # whole round: where the kernel's buffers on the
                        # way (autotuned, several MiB each) took all of it,
                        # the websocket side is still full, as the browser
                        # takes nothing (seen once on a loaded machine).
                        # Meanwhile an unsolicited pong (RFC 6455 5.5.3: a
                        # heartbeat) every half second: the pings that
                        # fall due cannot be read, and three ticks that
                        # hear nothing would end the session with 4408
                        # before the stall shows.
                        deadline = time.monotonic() + 60
                        while not (conn.stalled.wait(0.5) or conn.sent_all.is_set()):
                            self.assertLess(time.monotonic(), deadline,
                                            "the server's sends never stalled")
                            ws.send_frame(OP_PONG, b"hb")
                    payload = read_frame()
                    n += len(payload)
                    got.update(payload)
                self.assertEqual(n, len(down[i]), "round %d: bytes down" % i)
                self.assertEqual(got.digest(), hashlib.sha256(down[i]).digest(),
                                 "round %d came down different" % i)
                if 1 <= i <= 3:
                    self.assertIsNone(read_frame(until_ping=True), "data between rounds")
                    pings_between_rounds += 1
        except WsClosed as e:
            self.fail("closed: %d %r%s" % (e.code, e.reason, sg.log_tail()))
        self.assertEqual(pings_between_rounds, 3)
        self.assertGreaterEqual(state["pings"], 4)
        self.assertIn("websocket full mid-message", sg.log(),
                      "the zero-copy path never met a full socket: the test did not test it")
        ws.send_close()
        self.assertEqual(ws.wait_close(30)[0], 1000)
        self.assertTrue(conn.eof.wait(30), "upstream not closed after the browser's close")
        self.assertEqual(conn.received, len(up), "bytes that reached the server")
        self.assertEqual(conn.sha.hexdigest(), hashlib.sha256(up).hexdigest(), "upstream bytes")

    def test_byte_exact_http2(self):
        """The same over wss inside an HTTP/2 connection (RFC 8441), where
        each websocket frame, the pings too, is a DATA frame of its own.
        The SPICE server sends 1 MiB a round and the browser 256 KiB; the
        first rounds each wait for a ping, so that the pings come while
        the bytes flow."""
        try:
            from test_ws_h2 import WsOverH2
        except unittest.SkipTest as e:
            raise unittest.SkipTest(str(e))

        class CountingWs(WsOverH2):
            pongs = 0

            def _send_whole_frame(self, opcode, payload):
                if opcode == 0xA:
                    self.pongs += 1
                super()._send_whole_frame(opcode, payload)

        rounds = 12
        down = [pattern(4200 + i, MIB + i) for i in range(rounds)]
        up = pattern(41, rounds * 256 * 1024 + 5)

        certdir = tempfile.mkdtemp(dir=self.tmp)
        cert, key = make_cert(certdir)
        peer = FakePeer(self.reg, rounds_handler(down), "rounds")
        token = random_token()
        sg = self.start_spicegate({token: peer.target}, config=config(1),
                                  extra_args=("--cert", cert, "--key", key))
        ws = CountingWs(sg.port, "/websockify?token=" + token,
                        origin="https://localhost:%d" % sg.port)
        self.addCleanup(ws.close)
        self.assertEqual(ws.status, "200", sg.log_tail())
        msg = link_message(CHANNEL_MAIN)
        ws.send_binary(msg)
        conn = peer.wait_conn()
        self.assertTrue(conn.link_read.wait(WAIT_S), "link never reached the server")
        piece_up = len(up) // rounds
        pongs_mid_flow = 0
        try:
            for i in range(rounds):
                conn.go.set()
                ws.send_binary(up[i * piece_up:(i + 1) * piece_up if i < rounds - 1 else None])
                got = ws.recv_exact(len(down[i]), seconds=60)
                self.assertEqual(hashlib.sha256(got).digest(), hashlib.sha256(down[i]).digest(),
                                 "round %d came down different" % i)
                if i < 4:
                    before = ws.pongs
                    ws._pump_until(lambda: ws.pongs > before, "a ping", seconds=5)
                    pongs_mid_flow += 1
        except (OSError, EOFError) as e:
            raise AssertionError("%r\n%s" % (e, sg.log_tail())) from e
        poll = Deadline(30)
        while conn.received < len(up) and not poll.expired():
            conn.eof.wait(0.05)
        self.assertEqual(conn.received, len(up))
        self.assertEqual(conn.sha.hexdigest(), hashlib.sha256(up).hexdigest(), "upstream bytes")
        self.assertEqual(pongs_mid_flow, 4)
        self.assertIsNone(ws.closed, sg.log_tail())


# ---------------------------------------------------------------------------
# A real load balancer in front: Debian's HAProxy, in HTTP mode (websockets
# become tunnels). Minimal harness of our own: a generated configuration,
# the listening socket made here on port 0 and handed to HAProxy (fd@),
# HAProxy in the foreground, stopped by the test.

HAPROXY = shutil.which("haproxy") or ("/usr/sbin/haproxy"
                                      if os.access("/usr/sbin/haproxy", os.X_OK) else None)

HAPROXY_CFG = """\
global
    maxconn 256

defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    # What this test is about: a websocket quiet for this long is cut.
    timeout tunnel {tunnel}s

frontend consoles
    bind fd@{fd}
    default_backend spicegate

backend spicegate
    server sg1 127.0.0.1:{port}
"""


class HAProxy:
    """HAProxy in front of one spicegate port; .port is where it listens."""

    def __init__(self, registry, workdir, backend_port, tunnel_s):
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        fd = self.lsock.fileno()
        self.cfg = os.path.join(workdir, "haproxy-%d.cfg" % self.port)
        with open(self.cfg, "w") as f:
            f.write(HAPROXY_CFG.format(tunnel=tunnel_s, fd=fd, port=backend_port))
        self.log_path = self.cfg + ".log"
        check = subprocess.run([HAPROXY, "-c", "-f", self.cfg], capture_output=True,
                               text=True, timeout=WAIT_S, pass_fds=(fd,))
        if check.returncode != 0:
            raise AssertionError("haproxy -c: %s%s" % (check.stdout, check.stderr))
        with open(self.log_path, "wb") as log:
            # The socket already listens: connections wait in its backlog
            # until HAProxy takes them, so there is no readiness to wait for.
            self.proc = subprocess.Popen(_with_pdeathsig([HAPROXY, "-db", "-f", self.cfg]),
                                         stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                         pass_fds=(fd,), close_fds=True)
        registry.add(self)

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def close(self):
        Registry.stop_process(self.proc, seconds=5.0)
        self.lsock.close()


@unittest.skipIf(HAPROXY is None, "haproxy is not installed (apt-get install haproxy)")
class BehindHAProxy(IntegTestCase):
    TUNNEL_S = 2        # HAProxy's timeout tunnel
    QUIET_S = 6         # how long the console stays quiet: three times that

    def quiet_console(self, ping_interval):
        """A console through HAProxy, quiet after its link; returns
        (sg, ws, seconds it lived through or None, when it was cut)."""
        peer = self.echo_peer()
        token = random_token()
        sg = self.start_spicegate({token: peer.target}, config=config(ping_interval))
        lb = HAProxy(self.reg, self.tmp, sg.port, self.TUNNEL_S)
        ws = self.reg.add(WsClient(lb.port, token=token))
        msg = link_message(CHANNEL_MAIN)
        ws.send_binary(msg)
        self.assertEqual(ws.recv_exact(len(msg)), msg, lb.log())
        quiet = Deadline(self.QUIET_S)
        start = time.monotonic()
        pings = 0
        while not quiet.expired():
            ws.sock.settimeout(max(quiet.remaining(), 0.01))
            try:
                _fin, op, payload = ws.recv_frame()
            except socket.timeout:
                break
            except WsClosed:
                return sg, ws, pings, time.monotonic() - start
            self.assertEqual(op, OP_PING, "a frame other than a ping on a quiet console")
            pings += 1
            ws.send_frame(OP_PONG, payload)
        return sg, ws, pings, None

    def test_quiet_console_kept_open_by_pings(self):
        sg, ws, pings, cut = self.quiet_console(ping_interval=1)
        self.assertIsNone(cut, "HAProxy cut the console after %.1f s despite %d pings%s"
                          % (cut or 0, pings, sg.log_tail()))
        self.assertGreaterEqual(pings, self.QUIET_S - 2)
        ws.sock.settimeout(WAIT_S)
        self.assertTrue(still_relays(ws), "the console no longer relays after the quiet time")

    def test_quiet_console_cut_without_pings(self):
        """The same with ping_interval = 0: HAProxy cuts it after its
        timeout tunnel (this is what the test above guards against)."""
        sg, ws, pings, cut = self.quiet_console(ping_interval=0)
        self.assertEqual(pings, 0)
        self.assertIsNotNone(cut, "HAProxy did not cut a quiet console in %d s" % self.QUIET_S)
        self.assertEqual(ws.close_code, CLOSE_ABNORMAL)
        self.assertGreater(cut, self.TUNNEL_S - 0.5, "cut before timeout tunnel")
        self.assertLess(cut, self.TUNNEL_S + 2.5)
        # spicegate sees the browser's side go and frees the session.
        sg.wait_log(r'close client=127\.0\.0\.1:\d+ .* reason="browser closed"')
