# SPDX-License-Identifier: Apache-2.0
"""Start-up: configuration errors exit 2 with one message naming
file:line and key; a failure to listen exits 1; good options start."""

import os
import re
import socket

from harness import (
    CLOSE_BAD_TOKEN, PAGES, SPICE_HTML5, IntegTestCase, Spicegate, make_cert, random_token,
    run_spicegate,
)


def _run_with_tokens(self, args):
    """Runs spicegate with a valid (empty) token file, so that the only
    thing wrong is what the test put in @args."""
    tokens = os.path.join(self.tmp, "empty-tokens")
    open(tokens, "w").close()
    return run_spicegate(["--token-file", tokens, "--web", SPICE_HTML5, "--pages", PAGES] + args)


class ConfigErrors(IntegTestCase):

    run_with_tokens = _run_with_tokens

    def run_config(self, text):
        path = os.path.join(self.tmp, "bad.conf")
        with open(path, "w") as f:
            f.write(text)
        status, out, err = self.run_with_tokens(["--config", path, "--listen", "127.0.0.1:0",
                                                 "--port-file", os.path.join(self.tmp, "port")])
        return path, status, err

    def assert_one_message(self, status, err, *needles):
        self.assertEqual(status, 2, "exit status; stderr:\n" + err)
        lines = [l for l in err.splitlines() if l.strip()]
        self.assertEqual(len(lines), 1, "expected one message on stderr, got:\n" + err)
        for needle in needles:
            self.assertIn(needle, lines[0])
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "port")),
                         "a port file was written for a bad configuration")

    def test_unknown_key(self):
        path, status, err = self.run_config("[server]\n# comment\nlisten = 127.0.0.1:0\n"
                                            "bogus_key = 1\n")
        self.assert_one_message(status, err, "%s:4" % path, "bogus_key")
        self.assertRegex(err, r"\[server\]")

    def test_unknown_group(self):
        path, status, err = self.run_config("[server]\nlink_timeout = 5\n\n[nonsense]\nx = 1\n")
        self.assert_one_message(status, err, path + ":", "nonsense")
        self.assertRegex(err, re.escape(path) + r":[45]\b")

    def test_bad_values(self):
        cases = [
            ("[server]\nlink_timeout = 0\n", "link_timeout", 2),
            ("[server]\nlink_timeout = 301\n", "link_timeout", 2),
            ("[server]\nlink_timeout = soon\n", "link_timeout", 2),
            ("[server]\n\nconnect_timeout = -1\n", "connect_timeout", 3),
            ("[server]\nlisten = 127.0.0.1:70000\n", "listen", 2),
            ("[tls]\nminimum_version = tlsv1_1\n", "minimum_version", 2),
            ("[tls]\nssl_only = perhaps\n", "ssl_only", 2),
            ("[tokens]\nbackend = carrier-pigeon\n", "backend", 2),
        ]
        for text, key, line in cases:
            with self.subTest(config=text.strip()):
                path, status, err = self.run_config(text)
                self.assert_one_message(status, err, "%s:%d" % (path, line), key)

    def test_spice_channels(self):
        # [spice] channels: a name SPICE does not know stops the start,
        # and --check-config says the same without listening.
        for text, needle in (("[spice]\nchannels = main, usb\n",
                              "[spice] channels: 'usb' is not a SPICE channel type"),
                             ("[spice]\nchannels = display\n",
                              "[spice] channels: 'display' lacks main")):
            with self.subTest(config=text.strip()):
                path, status, err = self.run_config(text)
                self.assert_one_message(status, err, "%s:2" % path, needle)
                status, _, err = self.run_with_tokens(["--config", path, "--check-config"])
                self.assertEqual(status, 2, "--check-config exit status; stderr:\n" + err)
                self.assertIn("%s:2: %s" % (path, needle), err)

    def test_syntax_error(self):
        path, status, err = self.run_config("[server]\nthis is not a key value line\n")
        self.assert_one_message(status, err, "%s:2" % path)

    def test_missing_named_config(self):
        path = os.path.join(self.tmp, "does-not-exist.conf")
        status, _, err = self.run_with_tokens(["--config", path, "--listen", "127.0.0.1:0"])
        self.assert_one_message(status, err, path)

    def test_config_is_a_directory(self):
        status, _, err = self.run_with_tokens(["--config", self.tmp, "--listen", "127.0.0.1:0"])
        self.assert_one_message(status, err, self.tmp)

    def test_unknown_option(self):
        status, _, err = run_spicegate(["--no-such-option"])
        self.assertEqual(status, 2, err)
        self.assertIn("no-such-option", err)

    def test_bad_listen_option(self):
        for value in ("127.0.0.1:notaport", "127.0.0.1:65536", "[::1"):
            with self.subTest(listen=value):
                status, _, err = self.run_with_tokens(["--listen", value])
                self.assertEqual(status, 2, err)
                self.assertIn("listen", err)

    def test_key_without_cert(self):
        status, _, err = self.run_with_tokens(["--listen", "127.0.0.1:0",
                                               "--key", os.path.join(self.tmp, "k.pem")])
        self.assertEqual(status, 2, err)

    def test_ssl_only_without_cert(self):
        status, _, err = self.run_with_tokens(["--listen", "127.0.0.1:0", "--ssl-only"])
        self.assertEqual(status, 2, err)


class StartStop(IntegTestCase):

    run_with_tokens = _run_with_tokens

    def test_version_and_help(self):
        status, out, _ = run_spicegate(["--version"])
        self.assertEqual(status, 0)
        self.assertRegex(out, r"spicegate \d+\.\d+")
        status, out, _ = run_spicegate(["--help"])
        self.assertEqual(status, 0)
        self.assertIn("--token-file", out)

    def test_cannot_bind_exits_1(self):
        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        status, _, err = self.run_with_tokens(["--listen",
                                               "127.0.0.1:%d" % taken.getsockname()[1]])
        self.assertEqual(status, 1, err)
        self.assertTrue(err.strip(), "no message for a failed bind")

    def test_unloadable_tls_exits_2(self):
        # Certificates and keys are checked with the configuration: a bad
        # one is a configuration error (test_startup.py has the messages).
        garbage = os.path.join(self.tmp, "garbage.pem")
        with open(garbage, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
        status, _, err = self.run_with_tokens(["--listen", "127.0.0.1:0", "--cert", garbage])
        self.assertEqual(status, 2, err)
        self.assertIn(garbage, err)
        missing = os.path.join(self.tmp, "missing.pem")
        status, _, err = self.run_with_tokens(["--listen", "127.0.0.1:0", "--cert", missing])
        self.assertEqual(status, 2, err)
        self.assertIn(missing, err)

    def test_key_not_matching_cert_exits_2(self):
        cert, _ = make_cert(self.tmp)
        other = os.path.join(self.tmp, "other")
        os.makedirs(other)
        _, key2 = make_cert(other)
        status, _, err = self.run_with_tokens(["--listen", "127.0.0.1:0", "--cert", cert,
                                               "--key", key2])
        self.assertEqual(status, 2, err)

    def test_config_file_settings_apply(self):
        # listen and the token file from the file; --port-file on the command line.
        peer = self.echo_peer()
        token = random_token()
        tokdir = os.path.join(self.tmp, "tokens.d")
        os.makedirs(tokdir)
        with open(os.path.join(tokdir, "a"), "w") as f:
            f.write("%s: %s\n" % (token, peer.target))
        with open(os.path.join(tokdir, ".hidden"), "w") as f:
            f.write("%s: %s\n" % ("hidden" + token, peer.target))
        conf = ("# spicegate test\n[server]\nlisten = 127.0.0.1:0\nweb = %s\n\n"
                "[tokens]\nbackend = file\nfile = %s\n" % (SPICE_HTML5, tokdir))
        sg = Spicegate(self.reg, self.tmp, config=conf)
        for option in ("--token-file", "--listen", "--web"):   # the file's values, then
            i = sg.args.index(option)
            del sg.args[i:i + 2]
        sg.start()
        self.assert_echo_session(sg, token=token)
        # Dot files in a token directory are skipped.
        self.assert_refused(sg, CLOSE_BAD_TOKEN, token="hidden" + token)

    def test_command_line_overrides_file(self):
        conf = "[server]\nlisten = 127.0.0.1:1\n"
        sg = Spicegate(self.reg, self.tmp, config=conf)   # --listen 127.0.0.1:0 wins
        sg.start()
        self.assertNotEqual(sg.port, 1)
        status, _, _ = sg.get("/healthz")
        self.assertEqual(status, 200)
