# SPDX-License-Identifier: Apache-2.0
"""[limits] (OSSN-0008): the websocket over per_token, per_ip or
max_sessions is closed with 4429 and the reason the console page shows,
with a refused log line naming the limit; closing one frees its slot; and
max_sessions holds across two workers.

per_token runs against QEMU's real SPICE server: one real console, whose
four channels are four websockets on one token. per_ip and max_sessions
need several consoles open at once, which one QEMU cannot serve (its
SPICE server takes one client at a time, and a second main channel
replaces the first), so an echo peer stands in for the consoles: a limit
is decided before any byte reaches a SPICE server."""

import os
import re
import signal
import struct
import threading

from harness import (
    CHANNEL_CURSOR, CHANNEL_DISPLAY, CHANNEL_INPUTS, CHANNEL_MAIN, CHANNEL_PLAYBACK,
    CLOSE_LIMIT_ADDRESS, CLOSE_LIMIT_CONSOLE, CLOSE_LIMIT_TOTAL, LINK_ERR_OK,
    SPICE_MSG_INPUTS_INIT, SPICE_MSG_MAIN_INIT, SPICE_MSGC_DISPLAY_INIT, IntegTestCase,
    QemuTestCase, SpiceClient, WsClosed, children, link_message, poll_until, random_token,
    token_tag,
)


def keep_reading(client):
    """Reads @client's messages from now on, as a browser does (a SPICE
    channel nobody reads holds QEMU up: see test_spice.keep_reading)."""
    def drain():
        try:
            while True:
                client.read_message()
        except Exception:      # the test closed it, or the session ended
            pass
    threading.Thread(target=drain, daemon=True).start()


def session_of(sg, ws, event="open"):
    """The id of @ws's session, from its @event line (found by the
    client's port)."""
    port = ws.sock.getsockname()[1]
    return int(sg.wait_log(r"\[s:(\d+)\] %s client=[0-9.]+:%d " % (event, port))[-1])


class PerToken(QemuTestCase):
    """per_token = 4 and a real console: main, display, inputs and cursor
    fill it; a fifth channel of the same console is refused."""

    def setUp(self):
        super().setUp()
        self.token = random_token()
        self.sg = self.start_spicegate({self.token: self.qemu_target},
                                       config="[limits]\nper_token = 4\n")

    def channel(self):
        return SpiceClient(self.sg.ws(cookie="token=" + self.token))

    def test_fifth_channel_of_a_console_4429(self):
        main = self.channel()
        try:
            self.assertEqual(main.link(CHANNEL_MAIN, channel_caps=(1 << 2,)).error, LINK_ERR_OK)
            self.assertEqual(main.auth(), LINK_ERR_OK)
            payload, _ = main.wait_message(SPICE_MSG_MAIN_INIT)
        except WsClosed as e:
            self.fail("main channel closed: %d %r%s" % (e.code, e.reason, self.sg.log_tail()))
        console = struct.unpack_from("<I", payload, 0)[0]
        keep_reading(main)
        others = {t: self.channel() for t in (CHANNEL_DISPLAY, CHANNEL_INPUTS, CHANNEL_CURSOR)}
        for ctype, client in others.items():
            client.send_link(ctype, connection_id=console)
        for ctype, client in others.items():
            self.assertEqual(client.read_reply().error, LINK_ERR_OK, "channel %d" % ctype)
            self.assertEqual(client.auth(), LINK_ERR_OK, "channel %d auth" % ctype)
            if ctype == CHANNEL_DISPLAY:
                # At once, as spice-html5 does (see test_spice.init_display).
                client.send_message(SPICE_MSGC_DISPLAY_INIT,
                                     struct.pack("<BqBi", 1, 1 << 20, 1, 1 << 20))
                keep_reading(client)
        others[CHANNEL_INPUTS].wait_message(SPICE_MSG_INPUTS_INIT)
        keep_reading(others[CHANNEL_CURSOR])

        # The fifth websocket of the console (its playback channel): 4429,
        # with the reason the console page shows, before any byte of it
        # reaches QEMU.
        fifth = self.sg.ws(cookie="token=" + self.token)
        fifth.send_binary(link_message(CHANNEL_PLAYBACK, connection_id=console))
        self.assert_closed(fifth, CLOSE_LIMIT_CONSOLE, self.sg)
        self.sg.wait_log(r"\] refused client=127\.0\.0\.1:%d %s reason=\"%s\": "
                         r"\[limits\] per_token = 4 reached\n"
                         % (fifth.sock.getsockname()[1], token_tag(self.token),
                            CLOSE_LIMIT_CONSOLE[1]))
        self.assertNotIn(self.token, self.sg.log())
        # The four channels opened, and nothing else did.
        self.sg.wait_log(r"\] open client=", count=4)
        self.assertEqual(len(re.findall(r"\] open client=", self.sg.log())), 4)

        # The inputs channel closes: once its close line is out, the
        # console may open a channel again (inputs anew, as a page whose
        # channel dropped does), and the limit holds at four.
        inputs = others[CHANNEL_INPUTS]
        sid = session_of(self.sg, inputs.stream)
        inputs.stream.send_close()
        inputs.stream.wait_close()
        self.sg.wait_log(r"\[s:%d\] close client=" % sid)
        again = self.channel()
        again.send_link(CHANNEL_INPUTS, connection_id=console)
        try:
            self.assertEqual(again.read_reply().error, LINK_ERR_OK)
            self.assertEqual(again.auth(), LINK_ERR_OK)
            again.wait_message(SPICE_MSG_INPUTS_INIT)
        except WsClosed as e:
            self.fail("inputs channel closed: %d %r%s" % (e.code, e.reason, self.sg.log_tail()))
        sixth = self.sg.ws(cookie="token=" + self.token)
        self.assert_closed(sixth, CLOSE_LIMIT_CONSOLE, self.sg)


class PerAddress(IntegTestCase):
    """per_ip = 2: a third websocket from 127.0.0.1 is refused, whatever
    its console; 127.0.0.2 is another client; closing one frees a slot."""

    def setUp(self):
        super().setUp()
        self.peer = self.echo_peer()
        self.tokens = [random_token() for _ in range(3)]
        self.sg = self.start_spicegate({t: self.peer.target for t in self.tokens},
                                       config="[limits]\nper_ip = 2\n")

    def open_echo(self, token, source=None):
        ws = self.sg.ws(token=token, source=source)
        msg = link_message(CHANNEL_MAIN)
        ws.send_binary(msg)
        try:
            self.assertEqual(ws.recv_exact(len(msg)), msg)
        except WsClosed as e:
            self.fail("session closed: %d %r%s" % (e.code, e.reason, self.sg.log_tail()))
        return ws

    def test_third_from_one_address_4429(self):
        first = self.open_echo(self.tokens[0])
        self.open_echo(self.tokens[1])
        third = self.sg.ws(token=self.tokens[2])
        self.assert_closed(third, CLOSE_LIMIT_ADDRESS, self.sg)
        self.sg.wait_log(r"\] refused client=127\.0\.0\.1:%d %s reason=\"%s\": "
                         r"\[limits\] per_ip = 2 reached\n"
                         % (third.sock.getsockname()[1], token_tag(self.tokens[2]),
                            CLOSE_LIMIT_ADDRESS[1]))
        # Another address is another count.
        self.open_echo(self.tokens[2], source="127.0.0.2")
        # One from 127.0.0.1 closes: once its close line is out, its slot
        # is free.
        sid = session_of(self.sg, first)
        first.send_close()
        first.wait_close()
        self.sg.wait_log(r"\[s:%d\] close client=" % sid)
        self.open_echo(self.tokens[2])
        again = self.sg.ws(token=self.tokens[0])
        self.assert_closed(again, CLOSE_LIMIT_ADDRESS, self.sg)


class AcrossWorkers(IntegTestCase):
    """max_sessions = 2 with workers = 2: the count is one for both
    workers. Which worker serves a websocket is forced by stopping the
    other (SIGSTOP: the running one accepts every connection), and shows
    in the session ids of the log lines (worker i of 2 gives ids i + 1,
    i + 3, ...)."""

    def setUp(self):
        super().setUp()
        self.peer = self.echo_peer()
        self.token = random_token()
        self.sg = self.start_spicegate({self.token: self.peer.target},
                                       config="[server]\nworkers = 2\n"
                                              "[limits]\nmax_sessions = 2\n")
        poll_until(lambda: len(children(self.sg.pid)) == 2, "two workers")
        self.sg.wait_log(r"running: .*; workers 2\n")
        # Worker 0 forked first: the lower pid (no wrap-around right
        # after start); the ids below say which really served.
        self.workers = sorted(children(self.sg.pid))

    def on_worker(self, serving, fn):
        """Runs @fn while only @serving (a pid) accepts."""
        others = [w for w in self.workers if w != serving]
        for w in others:
            os.kill(w, signal.SIGSTOP)
        try:
            return fn()
        finally:
            for w in others:
                os.kill(w, signal.SIGCONT)

    def open_echo(self):
        ws = self.sg.ws(token=self.token)
        msg = link_message(CHANNEL_MAIN)
        ws.send_binary(msg)
        try:
            self.assertEqual(ws.recv_exact(len(msg)), msg)
        except WsClosed as e:
            self.fail("session closed: %d %r%s" % (e.code, e.reason, self.sg.log_tail()))
        return ws

    def refused(self):
        ws = self.sg.ws(token=self.token)
        self.assert_closed(ws, CLOSE_LIMIT_TOTAL, self.sg)
        return session_of(self.sg, ws, "refused")

    def test_max_sessions_holds_across_two_workers(self):
        w0, w1 = self.workers
        a = self.on_worker(w0, self.open_echo)
        b = self.on_worker(w1, self.open_echo)
        ids = {session_of(self.sg, a) % 2, session_of(self.sg, b) % 2}
        self.assertEqual(ids, {0, 1}, "both consoles on one worker" + self.sg.log_tail())
        # Each worker refuses the third: each sees the other's session.
        r0 = self.on_worker(w0, self.refused)
        r1 = self.on_worker(w1, self.refused)
        self.assertEqual({r0 % 2, r1 % 2}, {0, 1}, "one worker refused both"
                         + self.sg.log_tail())
        self.assertEqual(len(re.findall(r"\[limits\] max_sessions = 2 reached", self.sg.log())),
                         2)
        # The console on w0 closes: w1 may open one more, and no more.
        sid = session_of(self.sg, a)
        a.send_close()
        a.wait_close()
        self.sg.wait_log(r"\[s:%d\] close client=" % sid)
        c = self.on_worker(w1, self.open_echo)
        self.assertEqual(session_of(self.sg, c) % 2, session_of(self.sg, b) % 2)
        self.on_worker(w0, self.refused)
