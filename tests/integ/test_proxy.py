# SPDX-License-Identifier: Apache-2.0
"""The real client address behind a load balancer: [server] proxy_protocol
behind Debian's HAProxy (send-proxy-v2, option httpchk GET /healthz, from
conf/haproxy.cfg), and [server] trusted_proxies for X-Forwarded-For and
X-Forwarded-Proto.

Clients connect from 127.0.0.5 (all of 127/8 is loopback), HAProxy from
127.0.0.1, the only trusted address: the logs must show 127.0.0.5."""

import re
import socket
import ssl
import struct
import unittest

from harness import (
    CHANNEL_MAIN, CLOSE_ORIGIN, HandshakeRefused, IntegTestCase, QemuTestCase, WsClient,
    WsClosed, link_message, make_cert, random_token, spice_connect_main,
)
from lb import Haproxy, have_haproxy, spicegate_config

CLIENT = "127.0.0.5"
STRANGER = "127.0.0.6"
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"


def proxy_v2(src, sport, dst="127.0.0.1", dport=6082):
    """A PROXY v2 header, as HAProxy's send-proxy-v2 writes it for TCP over IPv4."""
    addrs = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)
    return V2_SIGNATURE + bytes([0x21, 0x11]) + struct.pack("!H", len(addrs)) + addrs


def closed_without_answer(port, payload, source):
    """Connects from @source, sends @payload, and returns what came back
    before the server closed (b"" if nothing)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=15,
                                    source_address=(source, 0))
    got = bytearray()
    try:
        sock.sendall(payload)
        while True:
            try:
                chunk = sock.recv(4096)
            except ConnectionResetError:
                break
            if not chunk:
                break
            got += chunk
    finally:
        sock.close()
    return bytes(got)


UPGRADE = (b"GET /websockify?token=x HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
           b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")


@unittest.skipUnless(have_haproxy(), "haproxy is not installed (apt-get install haproxy)")
class BehindHaproxy(QemuTestCase):
    """spicegate with proxy_protocol = true behind HAProxy, QEMU behind it."""

    def setUp(self):
        super().setUp()
        self.token = random_token()
        self.sg = self.start_spicegate({self.token: self.qemu_target},
                                       config=spicegate_config())
        self.lb = Haproxy(self.reg, self.tmp, [self.sg.port]).start()
        # The health checks (PROXY v2 LOCAL, then GET /healthz) pass.
        self.lb.wait_servers({"spicegate1": ("UP", "L7OK"), "spicegate2": ("UP", "L7OK")})

    def console(self, **kw):
        ws = self.reg.add(WsClient(self.lb.port, source=CLIENT, token=self.token,
                                   host_header="127.0.0.1:%d" % self.lb.port, **kw))
        try:
            # Link, ticket, SPICE_MSG_MAIN_INIT: QEMU has named the console,
            # and spicegate logs the open line.
            spice_connect_main(ws)
        except WsClosed as e:
            self.fail("main channel closed: %d %r%s" % (e.code, e.reason, self.sg.log_tail()))
        return ws

    def test_console_shows_the_client_address(self):
        ws = self.console()
        client_port = ws.sock.getsockname()[1]
        opened = self.sg.wait_log(r"\[s:\w+\] open client=(\S+) ")
        self.assertEqual(opened, ["%s:%d" % (CLIENT, client_port)], self.sg.log_tail())
        ws.send_close()
        ws.wait_close()
        self.sg.wait_log(r"\[s:\w+\] close client=%s:%d " % (re.escape(CLIENT), client_port))
        # HAProxy's own address is nowhere in a session line.
        self.assertNotRegex(self.sg.log(), r"\[s:\w+\] \w+ client=127\.0\.0\.1[: ]")

    def test_browser_headers_through_tcp_mode_are_not_believed(self):
        # In TCP mode HAProxy passes the browser's own headers: a browser
        # naming another address in X-Forwarded-For names nobody.
        ws = self.console(extra_headers=("X-Forwarded-For: 203.0.113.9",
                                         "X-Forwarded-Proto: https"))
        client_port = ws.sock.getsockname()[1]
        self.sg.wait_log(r"\[s:\w+\] open client=%s:%d " % (re.escape(CLIENT), client_port))
        self.sg.wait_log(r"ignored X-Forwarded-For/X-Forwarded-Proto from %s:%d, which is not "
                         r"in \[server\] trusted_proxies" % (re.escape(CLIENT), client_port))
        self.assertNotIn("203.0.113.9", self.sg.log())

    def test_untrusted_peer_with_a_proxy_header_is_refused(self):
        # Straight to spicegate from an address HAProxy does not have, with
        # a header that claims any client: closed before a byte is read.
        got = closed_without_answer(self.sg.port, proxy_v2("203.0.113.1", 4444) + UPGRADE,
                                    STRANGER)
        self.assertEqual(got, b"")
        self.sg.wait_log(r"closed a connection from %s:\d+: not in \[server\] trusted_proxies "
                         r"\(\[server\] proxy_protocol\)" % re.escape(STRANGER))
        self.assertNotIn("203.0.113.1", self.sg.log())
        # A flood of them is one line per 10 s, not one each.
        for _ in range(5):
            closed_without_answer(self.sg.port, proxy_v2("203.0.113.1", 4444), STRANGER)
        self.assertEqual(len(re.findall(r"closed a connection from", self.sg.log())), 1,
                         self.sg.log_tail())
        # HAProxy, and consoles through it, carry on.
        self.console()
        self.assertEqual(self.lb.server_states()["spicegate1"][0], "UP")

    def test_trusted_peer_without_a_header_is_refused(self):
        # From HAProxy's own address but without a PROXY header: a client
        # that bypassed the load balancer on its host, or a balancer not
        # set to send-proxy-v2.
        with self.assertRaises(HandshakeRefused) as cm:
            self.reg.add(WsClient(self.sg.port, token=self.token))
        self.assertEqual(cm.exception.status, 0)
        self.sg.wait_log(r"closed a connection from 127\.0\.0\.1:\d+: not a PROXY protocol "
                         r"header \(\[server\] proxy_protocol\)")

    def test_header_split_and_followed_by_http(self):
        # A header from a trusted peer in two pieces, the request right
        # behind it in the same segment: /healthz answers, so not one byte
        # of HTTP was taken with the header.
        sock = socket.create_connection(("127.0.0.1", self.sg.port), timeout=15)
        try:
            header = proxy_v2(CLIENT, 5555)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(header[:7])
            sock.sendall(header[7:] + b"GET /healthz HTTP/1.1\r\nHost: x\r\n"
                         b"Connection: close\r\n\r\n")
            answer = bytearray()
            while True:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                answer += chunk
        finally:
            sock.close()
        self.assertTrue(answer.startswith(b"HTTP/1.1 200"), answer[:200])


@unittest.skipUnless(have_haproxy(), "haproxy is not installed (apt-get install haproxy)")
class BehindHaproxyTlsWorkers(QemuTestCase):
    """TLS passed through HAProxy to spicegate, two workers: the PROXY
    header is read before TLS, by whichever worker accepted."""

    def setUp(self):
        super().setUp()
        self.token = random_token()
        self.cert, self.key = make_cert(self.tmp)
        self.sg = self.start_spicegate({self.token: self.qemu_target},
                                       config=spicegate_config(),
                                       extra_args=("--cert", self.cert, "--key", self.key,
                                                   "--workers", "2"))
        self.lb = Haproxy(self.reg, self.tmp, [self.sg.port]).start()
        # Plain HTTP checks on the TLS port (no ssl_only): both ways work.
        self.lb.wait_servers({"spicegate1": ("UP", "L7OK"), "spicegate2": ("UP", "L7OK")})

    def test_wss_consoles_show_the_client_address(self):
        ctx = ssl.create_default_context(cafile=self.cert)
        ports = []
        for _ in range(3):
            ws = self.reg.add(WsClient(self.lb.port, source=CLIENT, token=self.token,
                                       ssl_context=ctx, server_hostname="localhost"))
            try:
                spice_connect_main(ws)
            except WsClosed as e:
                self.fail("main channel closed: %d %r%s" % (e.code, e.reason,
                                                           self.sg.log_tail()))
            ports.append(ws.sock.getsockname()[1])
            ws.send_close()
            ws.wait_close()
        for port in ports:
            self.sg.wait_log(r"\[s:\w+\] open client=%s:%d " % (re.escape(CLIENT), port))
        self.assertNotRegex(self.sg.log(), r"\[s:\w+\] \w+ client=127\.0\.0\.1[: ]")


class ForwardedHeaders(IntegTestCase):
    """X-Forwarded-For and -Proto without the PROXY protocol: believed from
    127.0.0.1, a trusted reverse proxy, and from nobody else."""

    HOST = "console.example:6082"

    def setUp(self):
        super().setUp()
        self.token = random_token()
        peer = self.echo_peer()
        self.sg = self.start_spicegate(
            tokens={self.token: "127.0.0.1:%d" % peer.port},
            config="[server]\ntrusted_proxies = 127.0.0.1, 10.0.0.0/8\n"
                   "base_url = https://console.example:6082/spice_auto.html\n")

    def open(self, source, *headers, origin="https://console.example"):
        ws = self.sg.ws(token=self.token, source=source, host_header=self.HOST, origin=origin,
                        extra_headers=headers)
        msg = link_message(CHANNEL_MAIN)
        ws.send_binary(msg)
        self.assertEqual(ws.recv_exact(len(msg)), msg, self.sg.log_tail())
        return ws

    def test_trusted_proxy_names_the_client(self):
        # The rightmost address that is not a trusted proxy: the browser
        # forged 192.0.2.66, our proxies at 10.1.1.1 and 127.0.0.1 added
        # 198.51.100.7 (the browser) and 10.1.1.1 (themselves).
        self.open("127.0.0.1", "X-Forwarded-For: 192.0.2.66, 198.51.100.7",
                  "X-Forwarded-For: 10.1.1.1")
        self.sg.wait_log(r"\[s:\w+\] open client=198\.51\.100\.7 ")
        self.assertNotRegex(self.sg.log(), r"client=192\.0\.2\.66")
        self.assertNotIn("ignored X-Forwarded", self.sg.log())

    def test_untrusted_sender_is_ignored_and_said_once(self):
        for _ in range(2):
            ws = self.open(CLIENT, "X-Forwarded-For: 198.51.100.7")
            port = ws.sock.getsockname()[1]
            self.sg.wait_log(r"\[s:\w+\] open client=%s:%d " % (re.escape(CLIENT), port))
        self.assertNotIn("198.51.100.7", self.sg.log())
        hints = re.findall(r"ignored X-Forwarded-For/X-Forwarded-Proto from", self.sg.log())
        self.assertEqual(len(hints), 1, self.sg.log_tail())

    def test_forwarded_proto_only_from_a_trusted_proxy(self):
        # A TLS-terminating proxy says the page was https although its
        # Origin reads http: believed from 127.0.0.1 ...
        self.open("127.0.0.1", "X-Forwarded-Proto: https", origin="http://console.example")
        # ... and not from anyone else, whose http Origin then fails
        # base_url's https.
        ws = self.sg.ws(token=self.token, source=CLIENT, host_header=self.HOST,
                        origin="http://console.example",
                        extra_headers=("X-Forwarded-Proto: https",))
        self.assert_closed(ws, CLOSE_ORIGIN, self.sg)
        self.sg.wait_log(r"origin scheme mismatch")
        # Nor can an untrusted sender turn a good https Origin bad.
        self.open(CLIENT, "X-Forwarded-Proto: http")


if __name__ == "__main__":
    unittest.main()
