# SPDX-License-Identifier: Apache-2.0
"""TLS: https and wss with a certificate made at test time (never a
committed key), --ssl-only, minimum_version."""

import os
import shutil
import socket
import ssl
import tempfile

from harness import (
    CHANNEL_MAIN, CLOSE_ORIGIN, KEEP, HandshakeRefused, IntegTestCase, WsClient,
    http_request, link_message, make_cert, random_token,
)


def client_context(cert, maximum=None, minimum=None):
    ctx = ssl.create_default_context(cafile=cert)   # verifies against our self-signed cert
    if maximum is not None:
        ctx.maximum_version = maximum
    if minimum is not None:
        ctx.minimum_version = minimum
    return ctx


class TlsTestCase(IntegTestCase):

    @classmethod
    def setUpClass(cls):
        cls.certdir = tempfile.mkdtemp(prefix="sg-integ-tls-")
        if not KEEP:
            cls.addClassCleanup(shutil.rmtree, cls.certdir, True)
        cls.cert, cls.key = make_cert(cls.certdir)
        cls.combined = os.path.join(cls.certdir, "combined.pem")
        with open(cls.combined, "w") as out:
            for part in (cls.cert, cls.key):
                with open(part) as f:
                    out.write(f.read())

    def setUp(self):
        super().setUp()
        self.peer = self.echo_peer()
        self.token = random_token()

    def start_tls(self, extra=(), config=None, cert_args=None):
        if cert_args is None:
            cert_args = ("--cert", self.cert, "--key", self.key)
        return self.start_spicegate({self.token: self.peer.target},
                                    extra_args=tuple(cert_args) + tuple(extra), config=config)

    def wss_echo(self, sg, ctx, **kw):
        ws = self.reg.add(WsClient(sg.port, token=self.token, ssl_context=ctx,
                                   server_hostname="localhost", **kw))
        msg = link_message(CHANNEL_MAIN)
        ws.send_binary(msg)
        self.assertEqual(ws.recv_exact(len(msg)), msg)
        ws.send_close()
        self.assertEqual(ws.wait_close()[0], 1000)
        return ws


class Tls(TlsTestCase):

    def test_wss_session(self):
        sg = self.start_tls()
        ws = self.wss_echo(sg, client_context(self.cert))
        self.assertEqual(ws.protocol, "binary")

    def test_https_files_and_healthz(self):
        sg = self.start_tls()
        ctx = client_context(self.cert)
        status, headers, _ = http_request(sg.port, "/spice_auto.html", ssl_context=ctx,
                                          server_hostname="localhost")
        self.assertEqual(status, 200)
        self.assertRegex(headers.get("content-type", ""), r"^text/html\b")
        status, _, body = http_request(sg.port, "/healthz", ssl_context=ctx,
                                       server_hostname="localhost")
        self.assertEqual((status, body), (200, b"ok\n"))

    def test_wss_origin_scheme(self):
        # An https page opens wss: its Origin is https://host.
        sg = self.start_tls()
        ctx = client_context(self.cert)
        self.wss_echo(sg, ctx, origin="https://localhost:%d" % sg.port,
                      host_header="localhost:%d" % sg.port)
        ws = self.reg.add(WsClient(sg.port, token=self.token, ssl_context=ctx,
                                   server_hostname="localhost", origin="https://evil.example.com"))
        code, reason, _ = ws.wait_close()
        self.assertEqual((code, reason), CLOSE_ORIGIN)

    def test_cert_file_holding_the_key(self):
        # [tls] key defaults to the cert file, which may hold both.
        sg = self.start_tls(cert_args=("--cert", self.combined))
        self.wss_echo(sg, client_context(self.cert))

    def test_tls_from_config_file(self):
        sg = self.start_tls(cert_args=(), config="[tls]\ncert = %s\nkey = %s\n"
                            % (self.cert, self.key))
        self.wss_echo(sg, client_context(self.cert))

    def test_plain_allowed_without_ssl_only(self):
        # CONTRACTS.md: --ssl-only is what refuses plain http/ws when TLS is
        # on, so without it the same port serves both (as websockify does).
        sg = self.start_tls()
        status, _, body = http_request(sg.port, "/healthz")
        self.assertEqual((status, body), (200, b"ok\n"))
        ws = sg.ws(token=self.token)
        msg = link_message(CHANNEL_MAIN)
        ws.send_binary(msg)
        self.assertEqual(ws.recv_exact(len(msg)), msg)

    def test_ssl_only_refuses_plain(self):
        sg = self.start_tls(extra=("--ssl-only",))
        try:
            status, _, body = http_request(sg.port, "/healthz", timeout=5)
        except (OSError, ConnectionError) as e:
            status, body = None, repr(e)
        self.assertNotEqual(status, 200, "plain http served with --ssl-only: %r" % (body,))
        try:
            WsClient(sg.port, token=self.token, timeout=5).close()
            self.fail("plain ws upgraded with --ssl-only")
        except (HandshakeRefused, OSError):
            pass
        # ... while TLS still works on the same port.
        self.wss_echo(sg, client_context(self.cert))

    def test_default_accepts_tls12(self):
        sg = self.start_tls()
        self.wss_echo(sg, client_context(self.cert, maximum=ssl.TLSVersion.TLSv1_2))

    def test_minimum_tls13_refuses_tls12(self):
        sg = self.start_tls(config="[tls]\nminimum_version = tlsv1_3\n")
        with self.assertRaises((ssl.SSLError, ConnectionResetError)):
            http_request(sg.port, "/healthz", ssl_context=client_context(
                self.cert, maximum=ssl.TLSVersion.TLSv1_2), server_hostname="localhost")
        # A TLS 1.3 client is fine.
        ctx = client_context(self.cert, minimum=ssl.TLSVersion.TLSv1_3)
        status, _, _ = http_request(sg.port, "/healthz", ssl_context=ctx,
                                    server_hostname="localhost")
        self.assertEqual(status, 200)
        self.wss_echo(sg, ctx)

    def test_handshake_garbage_does_not_kill(self):
        sg = self.start_tls(extra=("--ssl-only",))
        for junk in (b"\x16\x03\x01\x00\x05hello", b"\x16\x03\x03" + os.urandom(300), b"\0" * 10):
            s = socket.create_connection(("127.0.0.1", sg.port), timeout=5)
            try:
                s.sendall(junk)
                s.shutdown(socket.SHUT_WR)
                while s.recv(4096):
                    pass
            except OSError:
                pass   # the server hung up on us: fine
            finally:
                s.close()
        self.assertTrue(sg.alive(), sg.log_tail())
        self.wss_echo(sg, client_context(self.cert))
