# SPDX-License-Identifier: Apache-2.0
"""Log lines: one open and one close line per session, refusals logged,
and console tokens never in full."""

import re
import signal

from harness import (
    CHANNEL_DISPLAY, CHANNEL_MAIN, CLOSE_BAD_TOKEN, CLOSE_NORMAL, FakePeer, IntegTestCase,
    link_message, pattern, random_token, sink_source_handler, token_tag,
)


class Logs(IntegTestCase):

    def test_tokens_never_logged(self):
        peer = self.echo_peer()
        good, cookie_good, wrong, in_bad_line = (random_token() for _ in range(4))
        tokens = {good: peer.target, cookie_good: peer.target}
        sg = self.start_spicegate(tokens, extra_args=("--debug",))
        self.assert_echo_session(sg, token=good)
        self.assert_echo_session(sg, cookie="token=" + cookie_good)
        self.assert_refused(sg, CLOSE_BAD_TOKEN, token=wrong)
        self.assert_refused(sg, CLOSE_BAD_TOKEN, cookie="token=" + wrong)
        # Lines the token file parser must reject (and report by FILE:LINE)
        # without quoting the secret they carry; a reload logs them (at
        # start they would stop spicegate with exit status 2).
        sg.write_tokens(tokens, token_lines=("%s 127.0.0.1:1" % in_bad_line,
                                             "%s: 127.0.0.1:99999" % in_bad_line,
                                             "%s: [::1" % in_bad_line))
        sg.send_signal(signal.SIGHUP)
        sg.wait_log(r"reload: ")
        sg.wait_log(r"close .*reason=", count=2)
        sg.wait_log(r"refused .*", count=2)
        sg.send_signal(signal.SIGTERM)
        self.assertEqual(sg.wait_exit(), 0)
        log = sg.log()
        for tok in (good, cookie_good, wrong, in_bad_line):
            with self.subTest(token=tok[:6]):
                self.assertNotIn(tok, log, "a token in full in the log")
                # A careful operator also expects no recognisable piece.
                self.assertNotIn(tok[:16], log, "a 16-character token prefix in the log")
                self.assertNotIn(tok[-16:], log, "a 16-character token suffix in the log")
        # The bad lines (4, 5 and 6 of the file) were reported by file:line.
        for line in (4, 5, 6):
            self.assertRegex(log, re.escape(sg.token_path) + r":%d\b" % line)

    def test_open_and_close_lines(self):
        token = random_token()
        up_extra = pattern(3, 1000)
        down = pattern(4, 5000)
        peer = FakePeer(self.reg, sink_source_handler(down), "sink-source")
        sg = self.start_spicegate({token: peer.target})
        ws = sg.ws(token=token)
        client_port = ws.sock.getsockname()[1]
        msg = link_message(CHANNEL_MAIN)
        ws.send_binary(msg)
        conn = peer.wait_conn()
        self.assertTrue(conn.link_read.wait(10))
        ws.send_binary(up_extra)
        conn.go.set()
        self.assertEqual(ws.recv_exact(len(down)), down)
        ws.send_close()
        ws.wait_close()
        tag = token_tag(token)
        target = re.escape(peer.target)
        opens = sg.wait_log(r"\[s:(\w+)\] open client=127\.0\.0\.1:(\d+) %s target=%s channel=main"
                            % (tag, target))
        sid, cport = opens[0]
        self.assertEqual(int(cport), client_port, "client= is the browser's address")
        closes = sg.wait_log(
            r"\[s:%s\] close client=127\.0\.0\.1:%s .*target=%s channel=main "
            r"duration=(\d+\.\d{3})s up=(\d+) down=(\d+) reason=(.*)" % (sid, cport, target))
        duration, up, down_n, reason = closes[0]
        self.assertGreaterEqual(float(duration), 0.0)
        # up: browser -> SPICE server (link + extra); down: the other way.
        self.assertEqual(int(up), len(msg) + len(up_extra), "up= bytes")
        self.assertEqual(int(down_n), len(down), "down= bytes")
        self.assertTrue(reason.strip(), "empty close reason")
        # Exactly one open and one close line for the session.
        self.assertEqual(len(re.findall(r"\[s:%s\] open " % sid, sg.log())), 1)
        self.assertEqual(len(re.findall(r"\[s:%s\] close " % sid, sg.log())), 1)

    def test_channel_name_and_server_close_reason(self):
        token = random_token()
        peer = FakePeer(self.reg, sink_source_handler(b"bye"), "closer")
        sg = self.start_spicegate({token: peer.target})
        ws = sg.ws(token=token)
        ws.send_binary(link_message(CHANNEL_DISPLAY, connection_id=7))
        conn = peer.wait_conn()
        self.assertTrue(conn.link_read.wait(10))
        conn.go.set()
        self.assertEqual(ws.recv_exact(3), b"bye")
        conn.sock.shutdown(2)   # the SPICE server ends the console
        code, reason, _ = ws.wait_close()
        self.assertEqual((code, reason), CLOSE_NORMAL)
        sg.wait_log(r"\[s:\w+\] open .*channel=display")
        sg.wait_log(r"\[s:\w+\] close .*channel=display .*reason=")

    def test_refusal_line(self):
        peer = self.echo_peer()
        sg = self.start_spicegate({random_token(): peer.target})
        wrong = random_token()
        self.assert_refused(sg, CLOSE_BAD_TOKEN, token=wrong)
        # CONTRACTS.md: "[s:N] refused client=ADDR reason=... (tok:XXXXXXXX)".
        # The order of reason and tag is not checked, their presence is.
        line = sg.wait_log(r"\[s:\w+\] refused client=127\.0\.0\.1(?::\d+)? .*")[0]
        self.assertIn(token_tag(wrong), line)
        self.assertRegex(line, r"reason=\"?console token invalid or expired")
        # A refused session is not also logged as opened.
        self.assertNotRegex(sg.log(), r"open .*%s" % token_tag(wrong))
