# SPDX-License-Identifier: Apache-2.0
"""TLS to QEMU's real SPICE server ([spice] tls): QEMU with a TLS port
(-spice tls-port=,x509-dir=) that refuses every channel on its plain port
(tls-channel=default: SPICE_LINK_ERR_NEED_SECURED), and certificates made
for the run with the openssl command (never stored beyond the run's
temporary directory). The console links and authenticates through
spicegate with tls = auto and always, QEMU's monitor shows its channels
over TLS; a wrong CA, a wrong host subject, a port without TLS and an
unknown TLS port are refused with the documented codes."""

import os
import shutil
import struct
import subprocess
import tempfile
import unittest

from harness import (
    CHANNEL_INPUTS, CHANNEL_MAIN, CLOSE_TLS_PORT_UNKNOWN, CLOSE_UPSTREAM_TLS, KEEP, LINK_ERR_OK,
    PAGES, SPICE_HTML5, SPICE_MSG_INPUTS_INIT, SPICE_MSG_MAIN_INIT, IntegTestCase, Qemu,
    QmpClient, SpiceClient, WsClosed, link_message, poll_until, random_token, run_spicegate,
)

SUBJECT = "C=IL, L=Raanana, O=Red Hat, CN=my server"
LINK_ERR_NEED_SECURED = 5   # spice-protocol's SPICE_LINK_ERR_NEED_SECURED


def openssl(*args, cwd):
    subprocess.run(["openssl"] + list(args), cwd=cwd, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_ca(path, name):
    os.makedirs(path)
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-keyout", "ca-key.pem", "-out", "ca-cert.pem",
            "-subj", "/C=XX/O=spicegate tests/CN=%s" % name, cwd=path)


def make_server(ca_dir, path):
    """What QEMU's x509-dir holds: ca-cert.pem, server-cert.pem,
    server-key.pem; the certificate names 127.0.0.1 (subjectAltName) and
    has SUBJECT."""
    os.makedirs(path)
    with open(os.path.join(path, "ext.cnf"), "w") as f:
        f.write("subjectAltName = IP:127.0.0.1\nbasicConstraints = CA:FALSE\n"
                "keyUsage = digitalSignature, keyEncipherment\n"
                "extendedKeyUsage = serverAuth\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server-key.pem",
            "-out", "server.csr", "-subj", "/C=IL/L=Raanana/O=Red Hat/CN=my server", cwd=path)
    openssl("x509", "-req", "-in", "server.csr", "-days", "2",
            "-CA", os.path.join(ca_dir, "ca-cert.pem"), "-CAkey", os.path.join(ca_dir, "ca-key.pem"),
            "-CAcreateserial", "-CAserial", os.path.join(path, "ca.srl"),
            "-extfile", "ext.cnf", "-out", "server-cert.pem", cwd=path)
    shutil.copy(os.path.join(ca_dir, "ca-cert.pem"), os.path.join(path, "ca-cert.pem"))
    os.chmod(os.path.join(path, "server-key.pem"), 0o600)


class SpiceTls(IntegTestCase):

    @classmethod
    def setUpClass(cls):
        if shutil.which("openssl") is None:
            raise unittest.SkipTest("no openssl command to make certificates")
        cls.pki = tempfile.mkdtemp(prefix="sg-integ-pki-")
        if not KEEP:
            cls.addClassCleanup(shutil.rmtree, cls.pki, True)
        make_ca(os.path.join(cls.pki, "ca"), "test CA")
        make_ca(os.path.join(cls.pki, "other-ca"), "other CA")
        make_server(os.path.join(cls.pki, "ca"), os.path.join(cls.pki, "server"))
        cls.ca_file = os.path.join(cls.pki, "ca", "ca-cert.pem")
        cls.other_ca_file = os.path.join(cls.pki, "other-ca", "ca-cert.pem")

    def setUp(self):
        super().setUp()
        self.qemu = self.reg.add(Qemu(self.reg, self.tmp, x509_dir=os.path.join(self.pki, "server"),
                                      tls_channel="default").start())
        # QEMU may listen on SPICE's ports before its monitor's socket exists.
        poll_until(lambda: os.path.exists(self.qemu.qmp_path), "QEMU's QMP socket")
        self.qmp = self.reg.add(QmpClient(self.qemu.qmp_path))
        self.token = random_token()

    def spicegate(self, target, spice_conf):
        return self.start_spicegate(token_lines=["%s: %s" % (self.token, target)],
                                    config="[spice]\n" + spice_conf)

    def connect_main(self, sg):
        main = SpiceClient(sg.ws(token=self.token))
        try:
            reply = main.link(CHANNEL_MAIN, channel_caps=(1 << 2,))
            self.assertEqual(reply.error, LINK_ERR_OK, "main: link error" + sg.log_tail())
            self.assertEqual(main.auth(), LINK_ERR_OK, "main auth")
            payload, _ = main.wait_message(SPICE_MSG_MAIN_INIT)
        except WsClosed as e:
            self.fail("main channel closed: %d %r%s" % (e.code, e.reason, sg.log_tail()))
        return main, struct.unpack_from("<I", payload, 0)[0]

    def assert_console_over_tls(self, sg):
        """main and inputs link and authenticate (the RSA ticket with the
        TLS server's key), and QEMU lists both channels as TLS ones."""
        main, session_id = self.connect_main(sg)
        inputs = SpiceClient(sg.ws(token=self.token))
        try:
            self.assertEqual(inputs.link(CHANNEL_INPUTS, connection_id=session_id).error,
                             LINK_ERR_OK)
            self.assertEqual(inputs.auth(), LINK_ERR_OK, "inputs auth")
            inputs.wait_message(SPICE_MSG_INPUTS_INIT)
        except WsClosed as e:
            self.fail("inputs channel closed: %d %r%s" % (e.code, e.reason, sg.log_tail()))

        def listed():
            mine = [c for c in self.qmp.query_spice().get("channels", [])
                    if c["connection-id"] & 0xFFFFFFFF == session_id]
            return mine if sorted(c["channel-type"] for c in mine) == [1, 3] else None
        mine = poll_until(listed, "query-spice to list main and inputs")
        self.assertTrue(all(c["tls"] for c in mine), "channels not over TLS: %r" % mine)
        self.assertTrue(self.qmp.query_spice().get("tls-port"), "QEMU has a TLS port")

    def assert_refused_with(self, sg, expected, log_pattern):
        self.assert_refused(sg, expected, send=link_message(CHANNEL_MAIN), token=self.token)
        sg.wait_log(log_pattern)

    # --- consoles that open -------------------------------------------------

    def test_auto_console_over_tls(self):
        """auto: each channel's link goes to the plain port, QEMU answers
        NEED_SECURED, spicegate links again on the TLS port; the browser
        sees QEMU's good reply only."""
        sg = self.spicegate("127.0.0.1:%d tls-port=%d" % (self.qemu.port, self.qemu.tls_port),
                            "ca_file = %s\n" % self.ca_file)
        self.assert_console_over_tls(sg)

    def test_always_console_over_tls(self):
        """always: a token line with one port names the TLS port."""
        sg = self.spicegate("127.0.0.1:%d" % self.qemu.tls_port,
                            "tls = always\nca_file = %s\n" % self.ca_file)
        self.assert_console_over_tls(sg)

    def test_host_subject_console_over_tls(self):
        sg = self.spicegate("127.0.0.1:%d" % self.qemu.tls_port,
                            "tls = always\nca_file = %s\nhost_subject = %s\n"
                            % (self.ca_file, SUBJECT))
        self.assert_console_over_tls(sg)

    # --- refusals ------------------------------------------------------------

    def test_wrong_ca_4525(self):
        sg = self.spicegate("127.0.0.1:%d" % self.qemu.tls_port,
                            "tls = always\nca_file = %s\n" % self.other_ca_file)
        # QEMU sends its CA with its certificate: not ours.
        self.assert_refused_with(sg, CLOSE_UPSTREAM_TLS,
                                 r"certificate verification failed: self.signed certificate in "
                                 r"certificate chain")

    def test_wrong_host_subject_4525(self):
        sg = self.spicegate("127.0.0.1:%d" % self.qemu.tls_port,
                            "tls = always\nca_file = %s\nhost_subject = %s\n"
                            % (self.ca_file, "C=IL, L=Raanana, O=Red Hat, CN=not my server"))
        self.assert_refused_with(sg, CLOSE_UPSTREAM_TLS, r"is not \[spice\] host_subject")

    def test_wrong_host_4525(self):
        """Without host_subject the certificate must name the target: it
        names 127.0.0.1, not localhost."""
        sg = self.spicegate("localhost:%d" % self.qemu.tls_port,
                            "tls = always\nca_file = %s\n" % self.ca_file)
        self.assert_refused_with(sg, CLOSE_UPSTREAM_TLS, r"hostname mismatch")

    def test_server_without_tls_4525(self):
        """always, toward the plain port: no TLS there."""
        sg = self.spicegate("127.0.0.1:%d" % self.qemu.port,
                            "tls = always\nca_file = %s\n" % self.ca_file)
        self.assert_refused_with(sg, CLOSE_UPSTREAM_TLS, r"TLS handshake failed")

    def test_auto_tls_port_unknown_4526(self):
        sg = self.spicegate("127.0.0.1:%d" % self.qemu.port, "ca_file = %s\n" % self.ca_file)
        self.assert_refused_with(sg, CLOSE_TLS_PORT_UNKNOWN, r"NEED_SECURED")

    def test_never_passes_the_refusal(self):
        """never is spicegate without TLS: QEMU's NEED_SECURED reaches the
        browser, as it did before."""
        sg = self.spicegate("127.0.0.1:%d tls-port=%d" % (self.qemu.port, self.qemu.tls_port),
                            "tls = never\nca_file = %s\n" % self.ca_file)
        client = SpiceClient(sg.ws(token=self.token))
        self.assertEqual(client.link(CHANNEL_MAIN).error, LINK_ERR_NEED_SECURED)


class SpiceTlsSettings(unittest.TestCase):
    """No certificate goes unchecked: TLS settings that cannot check one
    stop the start (exit 2) with a message naming the setting."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="sg-integ-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.tokens = os.path.join(self.tmp, "tokens")
        with open(self.tokens, "w") as f:
            f.write("t: 127.0.0.1:5900 tls-port=5901\n")

    def check(self, spice_conf):
        conf = os.path.join(self.tmp, "spicegate.conf")
        with open(conf, "w") as f:
            f.write("[spice]\n" + spice_conf)
        status, _, err = run_spicegate(["--config", conf, "--token-file", self.tokens,
                                        "--web", SPICE_HTML5, "--pages", PAGES,
                                        "--listen", "127.0.0.1:0", "--check-config"])
        self.assertEqual(status, 2, err)
        return err

    def test_always_without_ca_file(self):
        self.assertIn("[spice] tls = always needs [spice] ca_file", self.check("tls = always\n"))

    def test_unreadable_ca_file(self):
        missing = os.path.join(self.tmp, "missing.pem")
        err = self.check("ca_file = %s\n" % missing)
        self.assertIn("[spice] ca_file %s: cannot load CA certificates" % missing, err)

    def test_ca_file_without_certificate(self):
        err = self.check("ca_file = %s\n" % self.tokens)
        self.assertIn("[spice] ca_file %s: cannot load CA certificates" % self.tokens, err)

    def test_bad_host_subject(self):
        err = self.check("ca_file = /x.pem\nhost_subject = CN=a, O\n")
        self.assertIn("[spice] host_subject: not a host subject", err)


if __name__ == "__main__":
    unittest.main()
