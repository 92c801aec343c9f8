# SPDX-License-Identifier: Apache-2.0
"""Signals: SIGHUP reloads tokens without dropping sessions; SIGTERM and
SIGINT close sessions with 1001 and exit 0."""

import os
import re
import signal
import socket

from harness import (
    CHANNEL_MAIN, CLOSE_BAD_TOKEN, CLOSE_SHUTDOWN, LINK_ERR_OK, SPICE_MSG_MAIN_INIT,
    FakePeer, HandshakeRefused, IntegTestCase, QemuTestCase, SpiceClient, Spicegate, WsClient,
    WsClosed, link_message, pattern, poll_until, random_token, sink_source_handler,
    stall_handler, open_echo, still_relays,
)



class Reload(IntegTestCase):

    def setUp(self):
        super().setUp()
        self.peer = self.echo_peer()
        self.old = random_token()
        self.sg = self.start_spicegate({self.old: self.peer.target})

    def try_token(self, token):
        """The close code a fresh session with @token gets, or 0 when it
        relays."""
        ws = self.sg.ws(token=token)
        msg = link_message(CHANNEL_MAIN)
        try:
            ws.send_binary(msg)
            got = ws.recv_exact(len(msg))
            return 0 if got == msg else -1
        except WsClosed as e:
            return e.code
        finally:
            ws.close()

    def test_sighup_adds_token_and_keeps_live_session(self):
        live = open_echo(self.sg, self.old)
        new = random_token()
        self.assertEqual(self.try_token(new), CLOSE_BAD_TOKEN[0])
        self.sg.write_tokens({self.old: self.peer.target, new: self.peer.target})
        self.sg.send_signal(signal.SIGHUP)
        # The reload happens on the daemon's loop some time after the
        # signal; poll under a deadline until the new token works.
        poll_until(lambda: self.try_token(new) == 0, "the new token to work after SIGHUP")
        self.assertTrue(still_relays(live), "live session broken by the reload")
        self.assertEqual(self.try_token(self.old), 0)

    def test_sighup_removes_token_live_session_survives(self):
        live = open_echo(self.sg, self.old)
        new = random_token()
        self.sg.write_tokens({new: self.peer.target})
        self.sg.send_signal(signal.SIGHUP)
        poll_until(lambda: self.try_token(new) == 0, "the new token after SIGHUP")
        self.assertEqual(self.try_token(self.old), CLOSE_BAD_TOKEN[0])
        self.assertTrue(still_relays(live), "live session of a removed token was dropped")

    def test_sighup_many_times_with_sessions(self):
        sessions = [open_echo(self.sg, self.old) for _ in range(5)]
        for _ in range(20):
            self.sg.send_signal(signal.SIGHUP)
        for i, ws in enumerate(sessions):
            self.assertTrue(still_relays(ws, b"session %d" % i))
        self.assertTrue(self.sg.alive())

    def test_sighup_with_unreadable_token_file(self):
        # Not in CONTRACTS.md: a reload that fails must not kill the daemon
        # (an operator's typo must not drop every console), and the old
        # tokens stay in force until a reload succeeds.
        live = open_echo(self.sg, self.old)
        os.unlink(self.sg.token_path)
        self.sg.send_signal(signal.SIGHUP)
        # The failed reload is only observable in the log: the startup
        # line names the token file once, the failure names it again.
        self.sg.wait_log(re.escape(self.sg.token_path), count=2)
        self.assertTrue(self.sg.alive(), self.sg.log_tail())
        status, _, _ = self.sg.get("/healthz")
        self.assertEqual(status, 200)
        self.assertTrue(still_relays(live))
        self.assertEqual(self.try_token(self.old), 0, "old tokens lost by a failed reload")
        new = random_token()
        self.sg.write_tokens({new: self.peer.target})
        self.sg.send_signal(signal.SIGHUP)
        poll_until(lambda: self.try_token(new) == 0, "the new token after a good SIGHUP")


class Stop(IntegTestCase):

    def stop_test(self, sig):
        peer = self.echo_peer()
        token = random_token()
        sg = self.start_spicegate({token: peer.target})
        sessions = [open_echo(sg, token) for _ in range(3)]
        sg.send_signal(sig)
        for ws in sessions:
            code, reason, _ = ws.wait_close()
            self.assertEqual((code, reason), CLOSE_SHUTDOWN, sg.log_tail())
        self.assertEqual(sg.wait_exit(), 0, sg.log_tail())
        for conn in peer.conns:
            self.assertTrue(conn.eof.wait(5), "an upstream connection was left open")
        # Nothing listens any more.
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", sg.port), timeout=2).close()

    def test_sigterm_closes_sessions_1001_and_exits_0(self):
        self.stop_test(signal.SIGTERM)

    def test_sigint_closes_sessions_1001_and_exits_0(self):
        self.stop_test(signal.SIGINT)

    def test_signals_right_after_ready(self):
        # The port file (like READY=1) promises a daemon that is fully up,
        # signal handlers included: a SIGHUP sent the moment the file is
        # complete must reload, not kill (SIGHUP's default action).
        # The window is short: 20 tries, the port file busy-polled.
        for i in range(20):
            sg = Spicegate(self.reg, self.tmp).start(poll_interval=0)
            sg.send_signal(signal.SIGHUP)
            try:
                status, _, _ = sg.get("/healthz")
            except OSError as e:
                status = repr(e)
            self.assertEqual(status, 200, "try %d, after a SIGHUP sent as soon as the port "
                             "file was written%s" % (i, sg.log_tail()))
            sg.send_signal(signal.SIGTERM)
            self.assertEqual(sg.wait_exit(), 0, sg.log_tail())

    def test_sigterm_idle_exits_0(self):
        sg = self.start_spicegate()
        sg.send_signal(signal.SIGTERM)
        self.assertEqual(sg.wait_exit(), 0, sg.log_tail())

    def test_sigterm_with_a_session_in_handshake(self):
        # A half-open HTTP request and a websocket that never sent its link
        # must not hold up the exit.
        peer = self.echo_peer()
        token = random_token()
        sg = self.start_spicegate({token: peer.target})
        half = socket.create_connection(("127.0.0.1", sg.port))
        self.addCleanup(half.close)
        half.sendall(b"GET /spice_auto.html HTTP/1.1\r\nHo")
        ws = sg.ws(token=token)
        sg.send_signal(signal.SIGTERM)
        code, reason, _ = ws.wait_close()
        self.assertEqual((code, reason), CLOSE_SHUTDOWN)
        self.assertEqual(sg.wait_exit(), 0, sg.log_tail())


    def test_sigterm_with_stuck_peers_exits(self):
        # Not in CONTRACTS.md beyond "exit 0": a browser that no longer
        # reads and a SPICE server that no longer reads must not hold the
        # shutdown hostage (draining is bounded).
        flood = FakePeer(self.reg, sink_source_handler(pattern(7, 32 << 20)), "flood")
        stall = FakePeer(self.reg, stall_handler, "stall")
        t_flood, t_stall = random_token(), random_token()
        sg = self.start_spicegate({t_flood: flood.target, t_stall: stall.target})

        deaf = sg.ws(token=t_flood, rcvbuf=65536)      # never reads again
        deaf.send_binary(link_message(CHANNEL_MAIN))
        conn = flood.wait_conn()
        self.assertTrue(conn.link_read.wait(10))
        conn.go.set()
        self.assertTrue(conn.stalled.wait(60), "spicegate never pushed back on the flood")

        pushy = sg.ws(token=t_stall)
        pushy.send_binary(link_message(CHANNEL_MAIN))
        stall.wait_conn()
        pushy.sock.settimeout(3.0)
        try:
            for _ in range(64):
                pushy.send_binary(b"\0" * (1 << 20))
        except socket.timeout:
            pass
        pushy.sock.settimeout(None)

        sg.send_signal(signal.SIGTERM)
        self.assertEqual(sg.wait_exit(30), 0, sg.log_tail())


class StopWithQemu(QemuTestCase):

    def test_sigterm_closes_spice_session_1001(self):
        token = random_token()
        sg = self.start_spicegate({token: self.qemu_target})
        main = SpiceClient(sg.ws(token=token))
        self.assertEqual(main.link(CHANNEL_MAIN).error, LINK_ERR_OK)
        self.assertEqual(main.auth(), LINK_ERR_OK)
        main.wait_message(SPICE_MSG_MAIN_INIT)
        sg.send_signal(signal.SIGTERM)
        # SPICE messages may still be in flight before the close.
        code, reason, _ = main.stream.wait_close(max_bytes=0)
        self.assertEqual((code, reason), CLOSE_SHUTDOWN)
        self.assertEqual(sg.wait_exit(), 0, sg.log_tail())
        with self.assertRaises((HandshakeRefused, OSError)):
            WsClient(sg.port, token=token, timeout=2).close()

