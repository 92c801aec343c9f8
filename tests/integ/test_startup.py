# SPDX-License-Identifier: Apache-2.0
"""Start-up errors an operator can act on, checked word for word: web roots,
TLS files, the listen address, libwebsockets' libuv plugin, every error of
spicegate.conf and nova.conf at once, every failed cross-check;
--check-config and its exit codes (it never listens); the one line saying
what runs; the messages listed under DIAGNOSTICS in spicegate(8) are the
ones spicegate prints."""

import os
import re
import shutil
import socket
import stat
import subprocess

from harness import (
    PAGES, SPICE_HTML5, SPICEGATE, TOP_SRCDIR, WAIT_S, IntegTestCase, _with_pdeathsig,
    make_cert,
)

# Where libwebsockets 4.1 loads its libuv event loop from (Debian 12).
EVLIB = "/usr/lib/x86_64-linux-gnu/libwebsockets-evlib_uv.so"


def run(args, prefix=()):
    """Runs spicegate (behind @prefix, e.g. setpriv) to completion; returns
    (status, stdout, stderr)."""
    proc = subprocess.Popen(_with_pdeathsig(list(prefix) + [SPICEGATE] + list(args)),
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=WAIT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError("spicegate %s still running; stderr:\n%s"
                             % (" ".join(args), err.decode(errors="replace")))
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


def error_lines(err):
    """The lines spicegate printed as errors (not GLib's log lines)."""
    return [l for l in err.splitlines() if l.startswith("spicegate: ")]


def listener(host="127.0.0.1"):
    """A socket listening on a kernel-chosen port: (socket, port)."""
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    s.bind((host, 0))
    s.listen(1)
    return s, s.getsockname()[1]


def man_diagnostics():
    """The messages under DIAGNOSTICS in spicegate(8), as regexes: roff
    escapes undone, capitals (DIR, FILE, ERROR, ADDR, PORT, KEY, NEW) for
    the case at hand."""
    with open(os.path.join(TOP_SRCDIR, "man", "spicegate.8.in")) as f:
        text = f.read()
    section = text.split("\n.SH DIAGNOSTICS\n", 1)[1].split("\n.SH ", 1)[0]
    templates = []
    for line in section.splitlines():
        if not line.startswith(".B spicegate: "):
            continue
        msg = line[len(".B "):].replace("\\(aq", "'").replace("\\-", "-")
        rx = re.escape(msg)
        for word in ("DIR", "FILE", "ERROR", "ADDR", "PORT", "KEY", "NEW"):
            rx = re.sub(r"\b%s\b" % word, ".+" if word != "PORT" else r"\\d+", rx)
        templates.append((msg, re.compile(rx + "$")))
    return templates


class StartupCase(IntegTestCase):

    def setUp(self):
        super().setUp()
        self.tokens = os.path.join(self.tmp, "tokens")
        open(self.tokens, "w").close()
        self.port_file = os.path.join(self.tmp, "port")
        self.seen = []          # every error line, for the DIAGNOSTICS check

    def sg(self, *args, web=SPICE_HTML5, pages=PAGES, listen="127.0.0.1:0", prefix=()):
        status, out, err = run(["--token-file", self.tokens, "--web", web, "--pages", pages,
                                "--listen", listen, "--port-file", self.port_file]
                               + list(args), prefix)
        self.seen += error_lines(err)
        return status, out, err

    def both_files_with_errors(self):
        """spicegate.conf with four different mistakes (one a cross-check),
        and three nova.conf files (--config-file twice, and --config-dir)
        with some each: (args, expected lines). nova.conf's Keystone
        options are reported wrong, so they are not also called missing."""
        conf = os.path.join(self.tmp, "spicegate.conf")
        with open(conf, "w") as f:
            f.write("[server]\nlink_timeout = soon\nbogus = 1\njust words\n[tls]\nkey = %s\n"
                    % os.path.join(self.tmp, "key.pem"))
        nova1 = os.path.join(self.tmp, "nova.conf")
        with open(nova1, "w") as f:
            f.write("[DEFAULT]\nssl_only = maybe\n[keystone_authtoken]\n"
                    "auth_url = $keystone/v3\nusername = nova\n")
        nova2 = os.path.join(self.tmp, "nova-override.conf")
        with open(nova2, "w") as f:
            f.write("[spice\n[consoleauth]\ntoken_ttl = -1\n")
        nova_d = os.path.join(self.tmp, "nova.conf.d")
        os.makedirs(nova_d)
        nova3 = os.path.join(nova_d, "50-console.conf")
        with open(nova3, "w") as f:
            f.write("[console]\n\n\nallowed_origins = https://horizon.example\n")
        args = ["--config", conf, "--config-file", nova1, "--config-file", nova2,
                "--config-dir", nova_d]
        return args, [
            "%s:2: [server] link_timeout: 'soon' is not a whole number from 1 to 300" % conf,
            "%s:3: [server] bogus: unknown key" % conf,
            "%s:4: not a 'key = value' line, [group] header or # comment" % conf,
            "%s:2: [DEFAULT] ssl_only: 'maybe' is not a boolean (true or false)" % nova1,
            "%s:4: [keystone_authtoken] auth_url: '$' substitution of oslo.config is not "
            "supported; write the value out" % nova1,
            "%s:1: '[spice' is not a [section] header" % nova2,
            "%s:3: [consoleauth] token_ttl: '-1' is not a whole number from 0 to 31536000"
            % nova2,
            "%s:4: [console] allowed_origins: 'https://horizon.example' is not a hostname "
            "(list hostnames, not URLs)" % nova3,
            "[tls] key is set but [tls] cert is not",
        ]

    def assert_errors(self, result, status, *lines):
        """Exit @status, and exactly these error @lines, in order."""
        got_status, _, err = result
        self.assertEqual(got_status, status, "exit status; stderr:\n" + err)
        self.assertEqual(error_lines(err), ["spicegate: " + l for l in lines], err)
        self.assertFalse(os.path.exists(self.port_file), "a port file was written")


class StartupErrors(StartupCase):

    def test_web_root_missing(self):
        web = os.path.join(self.tmp, "spice-html5")
        self.assert_errors(self.sg(web=web), 2,
                           "[server] web %s: No such file or directory; install spice-html5 "
                           "(Debian package spice-html5) or set [server] web (--web)" % web)

    def test_web_root_without_spice_html5(self):
        os.makedirs(os.path.join(self.tmp, "www"))
        web = os.path.join(self.tmp, "www")
        self.assert_errors(self.sg(web=web), 2,
                           "[server] web %s holds no readable spice_auto.html, so it is not "
                           "spice-html5's directory; install spice-html5 (Debian package "
                           "spice-html5) or set [server] web (--web)" % web)

    def test_pages_missing(self):
        pages = os.path.join(self.tmp, "web")
        self.assert_errors(self.sg(pages=pages), 2,
                           "[server] pages %s: No such file or directory; set [server] pages "
                           "(--pages) to spicegate's web/ directory" % pages)

    def test_cert_without_key(self):
        cert, _ = make_cert(self.tmp)
        self.assert_errors(self.sg("--cert", cert), 2,
                           "[tls] cert %s holds no private key; set [tls] key (--key)" % cert)

    def test_cert_and_key_in_one_file_starts(self):
        cert, key = make_cert(self.tmp)
        both = os.path.join(self.tmp, "both.pem")
        with open(both, "w") as f:
            for part in (cert, key):
                with open(part) as p:
                    f.write(p.read())
        status, out, err = self.sg("--cert", both, "--check-config")
        self.assertEqual(status, 0, err)

    def test_key_not_matching(self):
        cert, _ = make_cert(self.tmp)
        other = os.path.join(self.tmp, "other")
        os.makedirs(other)
        _, key2 = make_cert(other)
        self.assert_errors(self.sg("--cert", cert, "--key", key2), 2,
                           "[tls] key %s: the private key does not match the certificate in "
                           "[tls] cert %s" % (key2, cert))

    def test_encrypted_key(self):
        cert, key = make_cert(self.tmp)
        enc = os.path.join(self.tmp, "enc.pem")
        subprocess.run(["openssl", "pkey", "-in", key, "-aes128", "-passout", "pass:x",
                        "-out", enc], check=True, timeout=60)
        self.assert_errors(self.sg("--cert", cert, "--key", enc), 2,
                           "[tls] key %s: the private key is encrypted with a passphrase, which "
                           "spicegate cannot ask for; remove it (openssl pkey -in KEY -out NEW)"
                           % enc)

    def test_garbage_cert_and_missing_key(self):
        garbage = os.path.join(self.tmp, "garbage.pem")
        with open(garbage, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
        self.assert_errors(self.sg("--cert", garbage), 2,
                           "[tls] cert %s holds no PEM certificate" % garbage)
        missing = os.path.join(self.tmp, "missing-cert.pem")
        self.assert_errors(self.sg("--cert", missing), 2,
                           "[tls] cert %s: No such file or directory" % missing)
        cert, _ = make_cert(self.tmp)
        missing = os.path.join(self.tmp, "missing-key.pem")
        self.assert_errors(self.sg("--cert", cert, "--key", missing), 2,
                           "[tls] key %s: No such file or directory" % missing)
        self.assert_errors(self.sg("--cert", cert, "--key", cert), 2,
                           "[tls] key %s holds no PEM private key" % cert)

    def as_nobody(self):
        if os.geteuid() != 0 or shutil.which("setpriv") is None:
            self.skipTest("needs root and setpriv to run spicegate as nobody")
        os.chmod(self.tmp, 0o755)
        os.chmod(self.tokens, 0o644)
        return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"]

    def test_unreadable_key(self):
        prefix = self.as_nobody()
        cert, key = make_cert(self.tmp)
        os.chmod(cert, 0o644)
        os.chmod(key, 0o600)          # root's: nobody may not read it
        self.assert_errors(self.sg("--cert", cert, "--key", key, prefix=prefix), 2,
                           "[tls] key %s: Permission denied" % key)

    def test_port_in_use(self):
        held, port = listener()
        self.addCleanup(held.close)
        for workers in ("1", "2"):
            with self.subTest(workers=workers):
                self.assert_errors(self.sg("--workers", workers,
                                           listen="127.0.0.1:%d" % port), 1,
                                   "cannot listen on 127.0.0.1:%d: Address already in use"
                                   % port)

    def test_admin_port_in_use(self):
        held, port = listener()
        self.addCleanup(held.close)
        conf = os.path.join(self.tmp, "admin.conf")
        with open(conf, "w") as f:
            f.write("[admin]\nlisten = 127.0.0.1:%d\n" % port)
        for workers in ("1", "2"):
            with self.subTest(workers=workers):
                self.assert_errors(self.sg("--config", conf, "--workers", workers), 1,
                                   "[admin] listen: cannot listen on 127.0.0.1:%d: Address "
                                   "already in use" % port)

    def test_admin_port_is_the_public_port(self):
        held, port = listener()
        held.close()              # only its number: nothing binds it
        conf = os.path.join(self.tmp, "admin.conf")
        with open(conf, "w") as f:
            f.write("[admin]\nlisten = 127.0.0.1:%d\n" % port)
        self.assert_errors(self.sg("--config", conf, listen="127.0.0.1:%d" % port), 2,
                           "[admin] listen: port %d is the public port ([server] listen); "
                           "give the admin API a port of its own" % port)

    def test_port_needs_privilege(self):
        prefix = self.as_nobody()
        with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
            if int(f.read()) <= 1:
                self.skipTest("unprivileged processes may bind port 1 here")
        self.assert_errors(self.sg(listen="127.0.0.1:1", prefix=prefix), 1,
                           "cannot listen on 127.0.0.1:1: Permission denied (ports below 1024 "
                           "need CAP_NET_BIND_SERVICE)")

    def test_address_not_local(self):
        self.assert_errors(self.sg(listen="192.0.2.1:0"), 1,
                           "cannot listen on 192.0.2.1:0: Cannot assign requested address (not "
                           "an address of this host; see [server] listen)")

    def test_uv_event_library_missing(self):
        """The plugin replaced, for spicegate only, by an empty file: a
        private mount namespace with the file bind-mounted over it."""
        if os.geteuid() != 0 or shutil.which("unshare") is None or not os.path.exists(EVLIB):
            self.skipTest("needs root, unshare and %s" % EVLIB)
        empty = os.path.join(self.tmp, "empty.so")
        open(empty, "w").close()
        probe = subprocess.run(["unshare", "-m", "true"], capture_output=True, timeout=30)
        if probe.returncode != 0:
            self.skipTest("cannot create a mount namespace here")
        prefix = ["unshare", "-m", "--", "sh", "-c",
                  'mount --bind "$0" "$1" && shift && exec "$@"', empty, EVLIB]
        msg = ("libwebsockets' libuv event library (Debian package libwebsockets-evlib-uv) "
               "could not be loaded: %s: file too short" % EVLIB)
        self.assert_errors(self.sg(prefix=prefix), 2, msg)
        status, _, err = self.sg("--check-config", prefix=prefix)
        self.assertEqual((status, error_lines(err)), (2, ["spicegate: " + msg]), err)

    def test_every_error_of_a_file(self):
        conf = os.path.join(self.tmp, "spicegate.conf")
        with open(conf, "w") as f:
            f.write("[server]\nlink_timeout = soon\nbogus = 1\n[tls]\nssl_only = perhaps\n")
        self.assert_errors(self.sg("--config", conf), 2,
                           "%s:2: [server] link_timeout: 'soon' is not a whole number from 1 "
                           "to 300" % conf,
                           "%s:3: [server] bogus: unknown key" % conf,
                           "%s:5: [tls] ssl_only: 'perhaps' is not a boolean (true or false)"
                           % conf)

    def test_every_error_of_every_file(self):
        """spicegate.conf's errors, then nova.conf's, all in one run."""
        args, lines = self.both_files_with_errors()
        self.assert_errors(self.sg(*args), 2, *lines)

    def test_every_cross_check(self):
        """Settings that need each other: every problem, not the first."""
        conf = os.path.join(self.tmp, "spicegate.conf")
        with open(conf, "w") as f:
            f.write("[tls]\nkey = %s\nssl_only = true\n[tokens]\nbackend = nova\n"
                    "[nova]\napplication_credential_id = 1d\n"
                    % os.path.join(self.tmp, "key.pem"))
        self.assert_errors(self.sg("--config", conf), 2,
                           "[tls] key is set but [tls] cert is not",
                           "[tls] ssl_only needs [tls] cert (and key)",
                           "[nova] auth_url is needed when [tokens] backend = nova",
                           "[nova] application_credential_id and "
                           "application_credential_secret go together")

    def test_every_setup_problem(self):
        cert, _ = make_cert(self.tmp)
        web = os.path.join(self.tmp, "nothing")
        self.assert_errors(self.sg("--cert", cert, web=web), 2,
                           "[server] web %s: No such file or directory; install spice-html5 "
                           "(Debian package spice-html5) or set [server] web (--web)" % web,
                           "[tls] cert %s holds no private key; set [tls] key (--key)" % cert)


class CheckConfig(StartupCase):
    """--check-config: exit 0 or 2, never listening."""

    def check(self, *args, **kw):
        """Runs --check-config on a port this test holds: had spicegate
        tried to listen, it would have failed with "address in use"."""
        held, port = listener()
        self.addCleanup(held.close)
        result = self.sg("--check-config", *args, listen="127.0.0.1:%d" % port, **kw)
        self.assertFalse(os.path.exists(self.port_file), "--check-config wrote a port file")
        return result, port

    def test_good(self):
        (status, out, err), port = self.check()
        self.assertEqual(status, 0, err)
        self.assertEqual(out, "spicegate: configuration ok: listen 127.0.0.1:%d, TLS off "
                              "(http/ws); tokens: file %s; web %s, pages %s; base_url unset, "
                              "Origin scheme check off; workers 1\n"
                              % (port, self.tokens, SPICE_HTML5, PAGES))

    def test_good_with_tls(self):
        cert, key = make_cert(self.tmp)
        (status, out, err), port = self.check("--cert", cert, "--key", key, "--ssl-only")
        self.assertEqual(status, 0, err)
        self.assertIn("TLS on (https/wss only, cert %s, key %s)" % (cert, key), out)

    def test_each_bad_thing_is_2(self):
        cert, _ = make_cert(self.tmp)
        conf = os.path.join(self.tmp, "bad.conf")
        with open(conf, "w") as f:
            f.write("[server]\nconnect_timeout = 0\n")
        cases = {
            "config file": (["--config", conf], {}),
            "missing config file": (["--config", os.path.join(self.tmp, "none.conf")], {}),
            "web root": ([], {"web": os.path.join(self.tmp, "none")}),
            "pages": ([], {"pages": os.path.join(self.tmp, "none")}),
            "cert without key": (["--cert", cert], {}),
            "token file": (["--token-file", os.path.join(self.tmp, "no-tokens")], {}),
            "login without Nova": (["--check-config=login"], {}),
        }
        for name, (args, kw) in cases.items():
            with self.subTest(name):
                (status, out, err), _ = self.check(*args, **kw)
                self.assertEqual(status, 2, err)
                self.assertEqual(out, "")
                self.assertTrue(error_lines(err), err)

    def test_every_error_of_every_file(self):
        """--check-config reports what the daemon would, and exits 2."""
        args, lines = self.both_files_with_errors()
        (status, out, err), _ = self.check(*args)
        self.assertEqual(status, 2, err)
        self.assertEqual(out, "")
        self.assertEqual(error_lines(err), ["spicegate: " + l for l in lines], err)

    def test_login_needs_nova(self):
        (status, _, err), _ = self.check("--check-config=login")
        self.assertEqual(error_lines(err), [
            "spicegate: --check-config=login: [tokens] backend is file; there is no Keystone "
            "to log in to (use --check-config)"])
        self.assertEqual(status, 2)

    def test_bad_value(self):
        status, _, err = run(["--check-config=yes"])
        self.assertEqual(status, 2)
        self.assertIn("--check-config takes no value or =login, not 'yes'", err)


class StartLine(IntegTestCase):

    def test_one_line_says_what_runs(self):
        sg = self.start_spicegate()
        line = sg.wait_log(r"spicegate \S+ running: .*")[0]
        self.assertTrue(line.endswith(
            "running: listen 127.0.0.1:%d, TLS off (http/ws); tokens: file %s; web %s, pages %s; "
            "base_url unset, Origin scheme check off; workers 1"
            % (sg.port, sg.token_path, SPICE_HTML5, PAGES)), line)

    def test_with_tls_nova_style_base_url(self):
        cert, key = make_cert(self.tmp)
        sg = self.start_spicegate(config="[server]\nbase_url = https://console.example/"
                                         "spice_auto.html\n",
                                  extra_args=["--cert", cert, "--key", key])
        line = sg.wait_log(r"spicegate \S+ running: .*")[0]
        self.assertIn("TLS on (https/wss and http/ws, cert %s, key %s)" % (cert, key), line)
        self.assertIn("base_url https://console.example/spice_auto.html, Origin scheme check "
                      "on (https)", line)


class ManPage(StartupCase):

    def test_diagnostics_are_real(self):
        """Every message in spicegate(8)'s DIAGNOSTICS is one spicegate
        prints (produced here by the same cases as above), and each of those
        is listed there."""
        errors = StartupErrors(methodName="test_web_root_missing")
        errors.tmp, errors.tokens, errors.port_file, errors.seen = (
            self.tmp, self.tokens, self.port_file, self.seen)
        for name in ("test_web_root_missing", "test_web_root_without_spice_html5",
                     "test_pages_missing", "test_cert_without_key", "test_key_not_matching",
                     "test_encrypted_key", "test_garbage_cert_and_missing_key",
                     "test_port_in_use", "test_address_not_local", "test_admin_port_in_use",
                     "test_admin_port_is_the_public_port"):
            for sub in ("other", "www"):   # made by the cases
                if os.path.isdir(os.path.join(self.tmp, sub)):
                    shutil.rmtree(os.path.join(self.tmp, sub))
            getattr(errors, name)()
        optional = []
        for name in ("test_unreadable_key", "test_port_needs_privilege",
                     "test_uv_event_library_missing"):
            try:
                getattr(errors, name)()
            except Exception as e:     # skipped here: the message is excused
                optional.append("%s: %s" % (name, e))
        errors.doCleanups()
        templates = man_diagnostics()
        self.assertGreaterEqual(len(templates), 10)
        for line in self.seen:
            self.assertTrue(any(rx.match(line) for _, rx in templates),
                            "not in spicegate(8) DIAGNOSTICS: " + line)
        unmatched = [msg for msg, rx in templates if not any(rx.match(l) for l in self.seen)]
        if optional:
            # Only the messages of the cases that could not run may be missing.
            unmatched = [m for m in unmatched
                         if not any(k in m for k in ("Permission denied", "evlib"))]
        self.assertEqual(unmatched, [], "DIAGNOSTICS lists messages spicegate never printed "
                                        "here" + ("; skipped: %s" % optional if optional else ""))
