# SPDX-License-Identifier: Apache-2.0
"""Refusals and misbehaving peers: each answer is the close code that
CONTRACTS.md gives, nothing reaches a SPICE server first, and afterwards a
fresh session through the same daemon still works."""

import functools
import os
import socket
import struct
import unittest

from harness import (
    CHANNEL_MAIN, CLOSE_BAD_TOKEN, CLOSE_CONNECT_TIMEOUT, CLOSE_INTERNAL, CLOSE_LINK_TIMEOUT,
    CLOSE_NO_TOKEN, CLOSE_NORMAL, CLOSE_NOT_LINK, CLOSE_ORIGIN, CLOSE_TEXT, CLOSE_UNREACHABLE,
    OP_BINARY, Deadline, FakePeer, HandshakeRefused, IntegTestCase, WsClient, poll_until,
    close_after_handler, close_immediately_handler, echo_handler, link_message, pattern,
    random_token, reset_handler, stall_handler,
)


def _then_still_serving(fn):
    @functools.wraps(fn)
    def wrapper(self):
        fn(self)
        self.check_still_serving()
    return wrapper


class RefusalTestCase(IntegTestCase):
    """A daemon with one good token to an echo peer. Every test ends by
    proving that the daemon still serves that token."""

    config = None

    def __init_subclass__(cls, **kw):
        # Every test body is followed by check_still_serving(), as part of
        # the test itself (so a failure names the test).
        super().__init_subclass__(**kw)
        for name, fn in list(vars(cls).items()):
            if name.startswith("test_") and callable(fn):
                setattr(cls, name, _then_still_serving(fn))

    def setUp(self):
        super().setUp()
        self.peer = self.echo_peer()
        self.token = random_token()
        self.tokens = {self.token: self.peer.target}
        self.extra_tokens()
        self.sg = self.start_spicegate(self.tokens, config=self.config)

    def extra_tokens(self):
        pass

    def check_still_serving(self):
        self.assertTrue(self.sg.alive(), "spicegate died" + self.sg.log_tail())
        self.assert_echo_session(self.sg, token=self.token)

    def peer_bytes(self):
        return sum(c.received for c in self.peer.conns)


class TokenRefusals(RefusalTestCase):

    def test_wrong_token_4404(self):
        self.assert_refused(self.sg, CLOSE_BAD_TOKEN, token=random_token())
        self.assertEqual(self.peer_bytes(), 0)

    def test_no_token_4401(self):
        self.assert_refused(self.sg, CLOSE_NO_TOKEN)

    def test_empty_token_4401(self):
        self.assert_refused(self.sg, CLOSE_NO_TOKEN, token="")
        self.assert_refused(self.sg, CLOSE_NO_TOKEN, cookie="token=")

    def test_token_in_cookie_only(self):
        self.assert_echo_session(self.sg, cookie="token=" + self.token)

    def test_token_in_cookie_among_others(self):
        self.assert_echo_session(self.sg, cookie="lang=en; token=%s; theme=dark" % self.token)

    def test_token_in_query(self):
        self.assert_echo_session(self.sg, token=self.token)

    def test_token_in_query_among_others(self):
        self.assert_echo_session(self.sg, query="title=a(b)&token=%s&x=1" % self.token)

    def test_percent_encoded_token_in_query(self):
        encoded = "".join("%%%02X" % b for b in self.token.encode())
        self.assert_echo_session(self.sg, query="token=" + encoded)

    def test_query_parsed_like_nova(self):
        # The production path uses the unit-tested parser: a long argument
        # does not hide a later token (a fixed 528-byte buffer once did), an
        # empty last token= is dropped as Nova's parse_qs drops it, and
        # empty arguments are skipped.
        long_title = "title=" + "x" * 2000
        for query in (long_title + "&token=" + self.token,
                      "token=%s&token=" % self.token,
                      "a=1&&&token=%s&&" % self.token,
                      "token=&token=" + self.token,
                      "language=de;token=" + self.token):
            with self.subTest(query=query[:40]):
                self.assert_echo_session(self.sg, query=query)

    def test_control_bytes_in_query_token_refused(self):
        self.assert_refused(self.sg, CLOSE_NO_TOKEN, query="token=%s%%01" % self.token)
        # lws 4.1 drops the connection at a %00 anywhere in the target;
        # newer lws passes it inside argument values, and then the token
        # must not be cut short at it (the prefix is a valid token here).
        try:
            self.assert_refused(self.sg, CLOSE_NO_TOKEN, query="token=%s%%00x" % self.token)
        except HandshakeRefused as e:
            self.assertEqual(e.status, 0, "only a dropped connection may replace 4401")

    def test_refused_url_token_is_not_replaced_by_the_cookie(self):
        # Nova's rule: the cookie counts only when the URL names no token.
        # A URL token that is refused (too long, a control byte) is still
        # the one asked for; a good cookie next to it must not open.
        for query in ("token=" + "a" * 600, "token=%s%%01" % self.token):
            with self.subTest(query=query[:20]):
                self.assert_refused(self.sg, CLOSE_NO_TOKEN, query=query,
                                    cookie="token=" + self.token)
        self.assertEqual(self.peer_bytes(), 0)

    def test_token_in_second_cookie_field(self):
        # Clients may send several Cookie fields (HTTP/2 clients send one
        # per cookie). The token in the second, or split around it, is found.
        for fields in (("Cookie: lang=en", "Cookie: token=" + self.token),
                       ("Cookie: token=" + self.token, "Cookie: lang=en"),
                       ("Cookie: a=1", "Cookie: token=%s; b=2" % self.token, "Cookie: c=3")):
            with self.subTest(fields=len(fields)):
                self.assert_echo_session(self.sg, extra_headers=fields)

    def test_large_cookie_header_with_token(self):
        # Not in CONTRACTS.md. Horizon and the console proxy often share a
        # domain, so the browser sends their cookies too; browsers allow
        # 4 KiB per cookie and several cookies. 6 KiB of them must not
        # break the console.
        others = "; ".join("horizon_%d=%s" % (i, "v" * 1000) for i in range(6))
        self.assert_echo_session(self.sg, cookie=others + "; token=" + self.token)

    def test_oversized_token_refused(self):
        # Longer than SG_TOKEN_MAX_BYTES (512). Not in CONTRACTS.md which
        # code: 4401 or 4404 are both honest.
        for kw in ({"token": "a" * 600}, {"cookie": "token=" + "b" * 600}):
            with self.subTest(where=list(kw)[0]):
                ws = self.sg.ws(**kw)
                code, _, _ = ws.wait_close()
                self.assertIn(code, (CLOSE_NO_TOKEN[0], CLOSE_BAD_TOKEN[0]), self.sg.log_tail())

    def test_token_prefix_is_not_the_token(self):
        self.assert_refused(self.sg, CLOSE_BAD_TOKEN, token=self.token[:-1])
        self.assert_refused(self.sg, CLOSE_BAD_TOKEN, token=self.token + "0")
        self.assert_refused(self.sg, CLOSE_BAD_TOKEN, token=self.token.upper())

    def test_several_cookies_last_wins(self):
        bad = random_token()
        self.assert_echo_session(self.sg, cookie="token=%s; token=%s" % (bad, self.token))
        self.assert_refused(self.sg, CLOSE_BAD_TOKEN,
                            cookie="token=%s; token=%s" % (self.token, bad))

    def test_query_wins_over_cookie(self):
        # admission.h: the token comes from the query, then the cookie.
        bad = random_token()
        self.assert_echo_session(self.sg, token=self.token, cookie="token=" + bad)
        self.assert_refused(self.sg, CLOSE_BAD_TOKEN, token=bad, cookie="token=" + self.token)


class OriginRefusals(RefusalTestCase):

    def test_foreign_origin_4403(self):
        self.assert_refused(self.sg, CLOSE_ORIGIN, token=self.token,
                            origin="http://evil.example.com")
        self.assertEqual(self.peer_bytes(), 0)

    def test_foreign_origin_same_port_4403(self):
        self.assert_refused(self.sg, CLOSE_ORIGIN, token=self.token,
                            origin="http://evil.example.com:%d" % self.sg.port)

    def test_origin_matching_host_other_port_passes(self):
        self.assert_echo_session(self.sg, token=self.token, origin="http://127.0.0.1:8080")

    def test_origin_matching_host_name_case_insensitive(self):
        self.assert_echo_session(self.sg, token=self.token,
                                 host_header="Console.Example.COM:%d" % self.sg.port,
                                 origin="http://console.example.com")

    def test_origin_null_4403(self):
        self.assert_refused(self.sg, CLOSE_ORIGIN, token=self.token, origin="null")

    def test_origin_garbage_4403(self):
        self.assert_refused(self.sg, CLOSE_ORIGIN, token=self.token, origin="not a url")

    def test_no_origin_passes(self):
        # admission.h: a client without Origin is not a browser; passes.
        self.assert_echo_session(self.sg, token=self.token, origin=None)

    def test_forwarded_proto_https_allows_https_origin(self):
        # Behind a TLS-terminating proxy: X-Forwarded-Proto replaces the scheme.
        self.assert_echo_session(self.sg, token=self.token,
                                 origin="https://127.0.0.1:%d" % self.sg.port,
                                 extra_headers=("X-Forwarded-Proto: https",))

    def test_origin_refused_before_token_is_used(self):
        # A foreign page holding a valid token still gets 4403, and the
        # console is never contacted.
        self.assert_refused(self.sg, CLOSE_ORIGIN, token=self.token,
                            origin="http://evil.example.com",
                            send=link_message(CHANNEL_MAIN))
        self.assertEqual(self.peer_bytes(), 0)


class AllowedOrigins(RefusalTestCase):
    config = "[server]\nallowed_origins = console.example.com, other.example.org\n"

    def test_allowed_origins_from_config(self):
        self.assert_echo_session(self.sg, token=self.token, origin="http://console.example.com")
        self.assert_echo_session(self.sg, token=self.token,
                                 origin="http://other.example.org:8443")
        self.assert_refused(self.sg, CLOSE_ORIGIN, token=self.token,
                            origin="http://evil.example.com")
        # Host matching still applies alongside the list.
        self.assert_echo_session(self.sg, token=self.token)


class TargetFailures(RefusalTestCase):
    """Tokens whose targets misbehave (fake peers, see harness.py)."""

    def extra_tokens(self):
        # A bound but non-listening socket: connecting to it is refused,
        # and nobody else can take the port while we hold it.
        self.dead = socket.socket()
        self.dead.bind(("127.0.0.1", 0))
        self.addCleanup(self.dead.close)
        self.dead_token = random_token()
        self.tokens[self.dead_token] = "127.0.0.1:%d" % self.dead.getsockname()[1]

        self.payload = pattern(1, 300000)
        self.closer = FakePeer(self.reg, close_after_handler(self.payload), "close-after")
        self.closer_token = random_token()
        self.tokens[self.closer_token] = self.closer.target

        self.instant = FakePeer(self.reg, close_immediately_handler, "close-now")
        self.instant_token = random_token()
        self.tokens[self.instant_token] = self.instant.target

        self.resetter = FakePeer(self.reg, reset_handler(b"x" * 1000), "reset")
        self.reset_token = random_token()
        self.tokens[self.reset_token] = self.resetter.target

    def test_dead_target_4502(self):
        self.assert_refused(self.sg, CLOSE_UNREACHABLE, token=self.dead_token,
                            send=link_message(CHANNEL_MAIN))

    def test_dead_target_not_tried_without_link(self):
        # spicegate connects only once the browser's link message has
        # passed (the channel policy needs it): without one, the dead
        # target is never tried, and link_timeout ends the websocket.
        sg = self.start_spicegate(self.tokens, config="[server]\nlink_timeout = 1\n")
        self.assert_refused(sg, CLOSE_LINK_TIMEOUT, token=self.dead_token)
        self.assertNotIn("console unreachable", sg.log(), sg.log_tail())

    def test_target_closes_mid_stream_1000(self):
        ws = self.sg.ws(token=self.closer_token)
        msg = link_message(CHANNEL_MAIN)
        ws.send_binary(msg)
        data = self.assert_closed(ws, CLOSE_NORMAL, self.sg, data_ok=True)
        self.assertEqual(len(data), len(self.payload), "bytes before the close")
        self.assertEqual(data, self.payload)
        conn = self.closer.wait_conn()
        self.assertEqual(conn.link, msg, "link message as the server saw it")

    def test_target_closes_immediately_1000(self):
        ws = self.sg.ws(token=self.instant_token)
        try:
            ws.send_binary(link_message(CHANNEL_MAIN))
        except OSError:
            pass
        self.assert_closed(ws, CLOSE_NORMAL, self.sg)

    def test_target_resets(self):
        # Not in CONTRACTS.md: a reset is an end of the console, so the
        # browser gets a close frame (1000 or 1011), never a dropped TCP.
        ws = self.sg.ws(token=self.reset_token)
        ws.send_binary(link_message(CHANNEL_MAIN))
        code, reason, _ = ws.wait_close()
        self.assertIn((code, reason), [CLOSE_NORMAL, CLOSE_INTERNAL], self.sg.log_tail())

    def test_no_descriptor_leak_on_failures(self):
        # Not in CONTRACTS.md: every failure path releases both sockets.
        def fds():
            return len(os.listdir("/proc/%d/fd" % self.sg.pid))
        baseline = fds()
        for i in range(30):
            self.assert_refused(self.sg, CLOSE_BAD_TOKEN, token=random_token())
            self.assert_refused(self.sg, CLOSE_UNREACHABLE, token=self.dead_token,
                                send=link_message(CHANNEL_MAIN))
            self.assert_refused(self.sg, CLOSE_NOT_LINK, token=self.token, send=b"\0" * 64)
            ws = self.sg.ws(token=self.closer_token)
            ws.send_binary(link_message(CHANNEL_MAIN))
            ws.wait_close()
            self.sg.ws(token=self.token).abort(reset=bool(i % 2))
        poll_until(lambda: fds() <= baseline + 2,
                   "spicegate's descriptors to return to %d (now %d)" % (baseline, fds()))

    def test_connect_timeout_4504(self):
        # A listener whose accept queue is full drops SYNs, so connect()
        # hangs: the kernel-level stand-in for an unreachable host, on
        # loopback only.
        full = socket.socket()
        self.addCleanup(full.close)
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        fillers = []
        for _ in range(4):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(full.getsockname())
            fillers.append(s)
            self.addCleanup(s.close)
        token = random_token()
        self.tokens[token] = "127.0.0.1:%d" % full.getsockname()[1]
        sg = self.start_spicegate(self.tokens, config="[server]\nconnect_timeout = 1\n")
        ws = sg.ws(token=token)
        ws.send_binary(link_message(CHANNEL_MAIN))
        self.assert_closed(ws, CLOSE_CONNECT_TIMEOUT, sg, seconds=10)
        self.assert_echo_session(sg, token=self.token)


class Ipv6Target(RefusalTestCase):

    def test_token_to_ipv6_target(self):
        try:
            peer6 = FakePeer(self.reg, echo_handler, "echo6", host="::1")
        except OSError:
            self.skipTest("no IPv6 loopback here")
        token = random_token()
        self.tokens[token] = peer6.target          # "[::1]:PORT" in the token file
        sg = self.start_spicegate(self.tokens)
        self.assert_echo_session(sg, token=token)
        self.assertEqual(len(peer6.conns), 1)


class BrowserMisbehaviour(RefusalTestCase):

    def test_garbage_instead_of_link_4400(self):
        self.assert_refused(self.sg, CLOSE_NOT_LINK, token=self.token,
                            send=b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + b"\0" * 64)
        self.assertEqual(self.peer_bytes(), 0, "garbage reached the SPICE server")

    def test_wrong_magic_4400(self):
        msg = link_message(CHANNEL_MAIN, magic=b"REDX")
        self.assert_refused(self.sg, CLOSE_NOT_LINK, token=self.token, send=msg)
        self.assertEqual(self.peer_bytes(), 0)

    def test_oversized_link_4400(self):
        # A header announcing a 1 MiB body: more than SG_LINK_MAX_BYTES.
        head = struct.pack("<4sIII", b"REDQ", 2, 2, 1 << 20)
        self.assert_refused(self.sg, CLOSE_NOT_LINK, token=self.token, send=head + b"\0" * 5000)
        self.assertEqual(self.peer_bytes(), 0)

    def test_link_split_over_frames_is_accepted(self):
        # A link message may arrive in pieces (a byte stream, not messages).
        ws = self.sg.ws(token=self.token)
        msg = link_message(CHANNEL_MAIN)
        for i in range(0, len(msg), 5):
            ws.send_binary(msg[i:i + 5])
        self.assertEqual(ws.recv_exact(len(msg)), msg)

    def test_text_frame_after_link_1003(self):
        ws = self.sg.ws(token=self.token)
        msg = link_message(CHANNEL_MAIN)
        ws.send_binary(msg)
        self.assertEqual(ws.recv_exact(len(msg)), msg)
        ws.send_text("hello")
        self.assert_closed(ws, CLOSE_TEXT, self.sg)

    def test_text_frame_first_1003(self):
        ws = self.sg.ws(token=self.token)
        ws.send_text("REDQ")
        self.assert_closed(ws, CLOSE_TEXT, self.sg)
        self.assertEqual(self.peer_bytes(), 0)

    # RFC 6455 5.1: a server must close on an unmasked client frame (1002).
    # libwebsockets 4.1.6 (Debian 12) accepts unmasked frames and keeps the
    # mask bit private, so spicegate cannot tell; upstream libwebsockets
    # checks it since commit cae06c63a (2026-07). This test documents the
    # gap: with a libwebsockets that refuses them it "unexpectedly succeeds",
    # which fails the run, so the decorator must then go.
    @unittest.expectedFailure
    def test_unmasked_frame_1002(self):
        ws = self.sg.ws(token=self.token)
        ws.send_frame(OP_BINARY, link_message(CHANNEL_MAIN), mask=False)
        # Our own close right behind it: lws 4.1.6 relays the frame and
        # answers this close, so the test fails at once instead of waiting.
        ws.send_close()
        code, _, data = ws.wait_close()
        self.assertEqual(code, 1002, "close code for an unmasked frame")
        self.assertEqual(data, b"", "the unmasked frame was relayed")
        self.assertEqual(self.peer_bytes(), 0)

    def test_browser_vanishes_mid_stream(self):
        for reset in (False, True):
            with self.subTest(reset=reset):
                ws = self.sg.ws(token=self.token)
                msg = link_message(CHANNEL_MAIN)
                ws.send_binary(msg)
                self.assertEqual(ws.recv_exact(len(msg)), msg)
                conn = self.peer.conns[-1]
                ws.send_binary(b"x" * 100000)
                ws.abort(reset=reset)
                # spicegate notices and closes its side to the SPICE server.
                self.assertTrue(conn.eof.wait(10), "upstream left open after the browser left")
                # ... while another session is unaffected.
                self.assert_echo_session(self.sg, token=self.token)

    def test_vanish_does_not_disturb_a_live_session(self):
        live = self.sg.ws(token=self.token)
        msg = link_message(CHANNEL_MAIN)
        live.send_binary(msg)
        self.assertEqual(live.recv_exact(len(msg)), msg)
        for _ in range(5):
            ws = self.sg.ws(token=self.token)
            ws.send_binary(msg)
            ws.abort(reset=True)
        live.send_binary(b"still here")
        self.assertEqual(live.recv_exact(10), b"still here")


class LinkTimeout(RefusalTestCase):
    config = "[server]\nlink_timeout = 1\n"

    def test_link_timeout_4408(self):
        ws = self.sg.ws(token=self.token)
        deadline = Deadline(10)
        self.assert_closed(ws, CLOSE_LINK_TIMEOUT, self.sg, seconds=10)
        self.assertLess(deadline.seconds - deadline.remaining(), 5.0,
                        "link_timeout = 1 took more than 5 s")
        self.assertEqual(self.peer_bytes(), 0)

    def test_partial_link_4408(self):
        ws = self.sg.ws(token=self.token)
        ws.send_binary(link_message(CHANNEL_MAIN)[:10])
        self.assert_closed(ws, CLOSE_LINK_TIMEOUT, self.sg, seconds=10)
        self.assertEqual(self.peer_bytes(), 0)

    def test_link_in_time_is_not_cut_later(self):
        # The timer covers the link message only, not the whole session.
        ws = self.sg.ws(token=self.token)
        msg = link_message(CHANNEL_MAIN)
        ws.send_binary(msg)
        self.assertEqual(ws.recv_exact(len(msg)), msg)
        # A second session that sends nothing hits the link timeout; by
        # then the first has lived past link_timeout too, and still relays.
        slow = self.sg.ws(token=self.token)
        self.assert_closed(slow, CLOSE_LINK_TIMEOUT, self.sg, seconds=10)
        ws.send_binary(b"ping")
        self.assertEqual(ws.recv_exact(4), b"ping")


class SilentServer(RefusalTestCase):
    """A SPICE server that takes the connection and the link message and
    then says nothing (a fault injector: QEMU always answers)."""
    config = "[server]\nlink_timeout = 1\n"

    def test_silent_server_4504_at_link_timeout(self):
        silent = FakePeer(self.reg, stall_handler, "silent")
        token = random_token()
        self.tokens[token] = silent.target
        sg = self.start_spicegate(self.tokens, config=self.config)
        ws = sg.ws(token=token)
        ws.send_binary(link_message(CHANNEL_MAIN))
        deadline = Deadline(10)
        self.assert_closed(ws, CLOSE_CONNECT_TIMEOUT, sg, seconds=10)
        self.assertLess(deadline.seconds - deadline.remaining(), 5.0,
                        "link_timeout = 1 took more than 5 s")
        sg.wait_log(r'close client=.* reason="console connect timed out": the SPICE server '
                    r'did not answer the link within 1 s$')
        conn = silent.wait_conn()
        conn.go.set()
        self.assertTrue(conn.eof.wait(10), "the silent server's connection stayed open")

    def test_answering_server_is_not_cut(self):
        # The deadline is for the link reply only: a session that got one
        # lives past link_timeout.
        ws = self.sg.ws(token=self.token)
        msg = link_message(CHANNEL_MAIN)
        ws.send_binary(msg)
        self.assertEqual(ws.recv_exact(len(msg)), msg)
        later = self.sg.ws(token=self.token)   # hits the link timeout: 1 s has passed
        self.assert_closed(later, CLOSE_LINK_TIMEOUT, self.sg, seconds=10)
        ws.send_binary(b"ping")
        self.assertEqual(ws.recv_exact(4), b"ping")


class Subprotocols(RefusalTestCase):

    def test_base64_binary_gets_binary(self):
        ws = self.sg.ws(token=self.token, subprotocols=("base64", "binary"))
        self.assertEqual(ws.protocol, "binary")
        msg = link_message(CHANNEL_MAIN)
        ws.send_binary(msg)
        self.assertEqual(ws.recv_exact(len(msg)), msg)

    def test_no_subprotocol_accepted(self):
        ws = self.sg.ws(token=self.token, subprotocols=())
        self.assertIsNone(ws.protocol)
        msg = link_message(CHANNEL_MAIN)
        ws.send_binary(msg)
        self.assertEqual(ws.recv_exact(len(msg)), msg)

    def test_base64_alone_refused_400(self):
        with self.assertRaises(HandshakeRefused) as cm:
            WsClient(self.sg.port, token=self.token, subprotocols=("base64",)).close()
        self.assertEqual(cm.exception.status, 400)
        self.assertEqual(self.peer_bytes(), 0)

    def test_missing_key_refused(self):
        # A broken upgrade never becomes a websocket.
        with self.assertRaises(HandshakeRefused) as cm:
            WsClient(self.sg.port, token=self.token, omit_key=True).close()
        self.assertEqual(cm.exception.status, 400)

    def test_handshake_without_anything_after(self):
        # A client that connects and says nothing must not block others.
        idle = socket.create_connection(("127.0.0.1", self.sg.port))
        self.addCleanup(idle.close)
        self.assert_echo_session(self.sg, token=self.token)

