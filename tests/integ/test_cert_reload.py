# SPDX-License-Identifier: Apache-2.0
"""SIGHUP re-reads [tls] cert and key: new handshakes get the new
certificate (RSA to ECDSA and back, ALPN h2 and http/1.1, TLS 1.2 and 1.3),
an open wss console and an open HTTP/2 connection live on with the old
one, and a bad new pair (a key of another certificate, garbage, a missing
key file, a passphrase, an expired certificate) is refused with its reason
in the log while the old certificate is still served. systemd hears the
result in STATUS=. One process, and two workers. Every certificate is made
at test time with openssl; none is committed."""

import hashlib
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import tempfile

import test_hostile_apis as hostile
from harness import (
    recv_notify,
    CHANNEL_MAIN, KEEP, WAIT_S, Deadline, IntegTestCase, WsClient, WsClosed, children,
    link_message, pattern, poll_until, random_token,
)


def openssl(*args, cwd=None):
    subprocess.run(["openssl"] + list(args), check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, timeout=60, cwd=cwd)


def new_key_args(kind):
    if kind == "rsa":
        return ["-newkey", "rsa:2048"]
    return ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]


def make_pair(directory, name, kind="rsa"):
    """A self-signed certificate for localhost and its key: (cert, key)."""
    cert = os.path.join(directory, name + ".crt")
    key = os.path.join(directory, name + ".key")
    openssl("req", "-x509", *new_key_args(kind), "-nodes", "-days", "2",
            "-subj", "/CN=" + name, "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout", key, "-out", cert)
    return cert, key


def make_expired_pair(directory, name):
    """A certificate valid only on 2020-01-01 (openssl req cannot date one
    in the past; openssl ca can)."""
    work = os.path.join(directory, name + ".ca")
    os.makedirs(work)
    with open(os.path.join(work, "ca.cnf"), "w") as f:
        f.write("[ca]\ndefault_ca = d\n[d]\ndatabase = %s/index.txt\nnew_certs_dir = %s\n"
                "default_md = sha256\npolicy = p\nrand_serial = yes\n"
                "[p]\ncommonName = supplied\n" % (work, work))
    open(os.path.join(work, "index.txt"), "w").close()
    cert = os.path.join(directory, name + ".crt")
    key = os.path.join(directory, name + ".key")
    csr = os.path.join(work, "csr.pem")
    openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=" + name,
            "-keyout", key, "-out", csr)
    openssl("ca", "-batch", "-config", os.path.join(work, "ca.cnf"), "-selfsign",
            "-keyfile", key, "-in", csr, "-out", cert, "-notext",
            "-startdate", "20200101000000Z", "-enddate", "20200102000000Z")
    return cert, key


def fingerprint(cert):
    with open(cert) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    return hashlib.sha256(der).hexdigest()


def put(path, data):
    """Replaces @path with @data atomically, as a certificate renewal
    (certbot, an Ansible copy) does."""
    tmp = path + ".new"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def client_context(alpn=None, maximum=None, minimum=None, ciphers=None):
    # The test checks which certificate it got, not that it trusts it.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    if maximum is not None:
        ctx.maximum_version = maximum
    if minimum is not None:
        ctx.minimum_version = minimum
    if ciphers is not None:
        ctx.set_ciphers(ciphers)
    return ctx


def served(port, **kw):
    """One new handshake: (SHA-256 of the certificate spicegate sent, the
    ALPN protocol it chose)."""
    ctx = client_context(**kw)
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            return (hashlib.sha256(tls.getpeercert(binary_form=True)).hexdigest(),
                    tls.selected_alpn_protocol())


class Http2Conn:
    """An HTTP/2 connection kept open across a reload: the client preface
    and SETTINGS, then PINGs that spicegate must answer on the same
    connection (RFC 9113 6.7). Enough to show the connection lives; the
    websocket streams inside one are test_ws_h2's."""

    def __init__(self, port):
        raw = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)
        self.sock = client_context(alpn=("h2",)).wrap_socket(raw, server_hostname="localhost")
        assert self.sock.selected_alpn_protocol() == "h2", "no h2 from ALPN"
        self.cert = hashlib.sha256(self.sock.getpeercert(binary_form=True)).hexdigest()
        self.buf = bytearray()
        self.sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + self.frame(4, 0, b""))

    @staticmethod
    def frame(ftype, flags, payload, stream=0):
        return struct.pack("!I", len(payload))[1:] + struct.pack("!BBI", ftype, flags,
                                                                  stream) + payload

    def ping(self):
        """True once the PING comes back acknowledged."""
        data = os.urandom(8)
        self.sock.sendall(self.frame(6, 0, data))
        deadline = Deadline()
        while not deadline.expired():
            while len(self.buf) >= 9:
                n = int.from_bytes(self.buf[:3], "big")
                if len(self.buf) < 9 + n:
                    break
                ftype, flags = self.buf[3], self.buf[4]
                payload = bytes(self.buf[9:9 + n])
                del self.buf[:9 + n]
                if ftype == 4 and not flags & 1:       # SETTINGS: acknowledge
                    self.sock.sendall(self.frame(4, 1, b""))
                elif ftype == 7:                       # GOAWAY
                    return False
                elif ftype == 6 and flags & 1 and payload == data:
                    return True
            self.sock.settimeout(max(deadline.remaining(), 0.01))
            chunk = self.sock.recv(65536)
            if not chunk:
                return False
            self.buf += chunk
        return False

    def close(self):
        self.sock.close()


class CertReload(IntegTestCase):
    """One spicegate with TLS from cert.pem and key.pem, which the tests
    overwrite before each SIGHUP. WORKERS > 1: the same through a master."""

    WORKERS = 1

    @classmethod
    def setUpClass(cls):
        cls.certdir = tempfile.mkdtemp(prefix="sg-integ-certs-")
        if not KEEP:
            cls.addClassCleanup(shutil.rmtree, cls.certdir, True)
        cls.rsa = make_pair(cls.certdir, "first-rsa", "rsa")
        cls.rsa2 = make_pair(cls.certdir, "second-rsa", "rsa")
        cls.ec = make_pair(cls.certdir, "second-ec", "ec")
        cls.expired = make_expired_pair(cls.certdir, "expired")
        cls.encrypted_key = os.path.join(cls.certdir, "encrypted.key")
        openssl("pkey", "-in", cls.rsa2[1], "-aes256", "-passout", "pass:secret",
                "-out", cls.encrypted_key)

    def setUp(self):
        super().setUp()
        self.peer = self.echo_peer()
        self.token = random_token()
        self.cert = os.path.join(self.tmp, "cert.pem")
        self.key = os.path.join(self.tmp, "key.pem")

    def start(self, first, env=None):
        put(self.cert, read(first[0]))
        put(self.key, read(first[1]))
        extra = ["--cert", self.cert, "--key", self.key]
        if self.WORKERS > 1:
            extra += ["--workers", str(self.WORKERS)]
        self.sg = self.start_spicegate({self.token: self.peer.target}, extra_args=extra,
                                       env=env)
        if self.WORKERS > 1:
            poll_until(lambda: len(children(self.sg.pid)) == self.WORKERS, "the workers")
            self.workers = children(self.sg.pid)
        return self.sg

    def install(self, pair):
        put(self.cert, read(pair[0]))
        put(self.key, read(pair[1]))

    def open_wss(self):
        ws = self.sg.ws(token=self.token, ssl_context=client_context(),
                        server_hostname="localhost")
        msg = link_message(CHANNEL_MAIN)
        ws.send_binary(msg)
        self.assertEqual(ws.recv_exact(len(msg)), msg)
        return ws

    def assert_relays(self, ws, seed):
        data = pattern(seed, 128 * 1024 + 7)
        ws.send_binary(data)
        self.assertEqual(ws.recv_exact(len(data)), data, "the open wss console broke")

    def on_each_worker(self, check):
        """Runs @check() with only one process accepting, for each worker
        (the others SIGSTOPped: they take no connection); once with one
        process."""
        if self.WORKERS == 1:
            check()
            return
        for alone in self.workers:
            others = [w for w in self.workers if w != alone]
            for w in others:
                os.kill(w, signal.SIGSTOP)
            try:
                check()
            finally:
                for w in others:
                    os.kill(w, signal.SIGCONT)

    def wait_served(self, fp, what):
        """Every worker serves @fp to new handshakes (each reloads on its
        own after the master passed SIGHUP on, so this polls)."""
        self.on_each_worker(lambda: poll_until(lambda: served(self.sg.port)[0] == fp, what))

    def relaying_token(self):
        """A new token, written to the token file for the next SIGHUP; once
        a worker accepts it, that worker has finished the reload (tokens and
        certificate are re-read in the same turn of its loop)."""
        token = random_token()
        self.sg.write_tokens({self.token: self.peer.target, token: self.peer.target})
        return token

    def token_relays(self, token):
        try:
            ws = WsClient(self.sg.port, token=token, ssl_context=client_context(),
                          server_hostname="localhost")
        except OSError:
            return False
        try:
            msg = link_message(CHANNEL_MAIN)
            ws.send_binary(msg)
            return ws.recv_exact(len(msg)) == msg
        except Exception:
            return False
        finally:
            ws.close()

    # -- the tests --------------------------------------------------------------

    def check_switch(self, first, second, old_only_ciphers):
        """Starts with @first, opens a wss console and an HTTP/2
        connection, installs @second and reloads: new handshakes see
        @second whatever the ALPN and TLS version, the open ones live on
        with @first, and a TLS 1.2 client that accepts only @first's key
        type (@old_only_ciphers) finds nothing left to talk to."""
        old, new = fingerprint(first[0]), fingerprint(second[0])
        self.start(first)
        self.assertEqual(served(self.sg.port), (old, None))
        ws = self.open_wss()
        self.assertEqual(hashlib.sha256(ws.sock.getpeercert(binary_form=True)).hexdigest(), old)
        self.assert_relays(ws, 1)
        # Opened last: lws closes an HTTP/2 connection idle for longer than
        # handshake_timeout (10 s), which is not what this test is about.
        h2 = Http2Conn(self.sg.port)
        self.addCleanup(h2.close)
        self.assertTrue(h2.ping(), "no PING answer before the reload")

        self.install(second)
        self.sg.send_signal(signal.SIGHUP)
        self.sg.wait_log(r"MESSAGE: reload: TLS: new certificate for new connections "
                         r"\(sha256 %s, subject CN=second-\w+, valid until \d{4}-\d\d-\d\dT"
                         r"[\d:]+Z\); open ones keep theirs" % new)
        self.wait_served(new, "the new certificate")
        # Every process has reloaded: the HTTP/2 connection lives on.
        self.assertTrue(h2.ping(), "the HTTP/2 connection did not survive the reload")
        self.assertEqual(h2.cert, old)

        def new_handshakes():
            for alpn, chosen in ((("h2", "http/1.1"), "h2"), (("http/1.1",), "http/1.1"),
                                 (None, None)):
                self.assertEqual(served(self.sg.port, alpn=alpn), (new, chosen))
            self.assertEqual(served(self.sg.port, maximum=ssl.TLSVersion.TLSv1_2)[0], new)
            self.assertEqual(served(self.sg.port, minimum=ssl.TLSVersion.TLSv1_3)[0], new)
            # OpenSSL keeps one certificate per key type: the old one must
            # not stay on offer beside the new one.
            with self.assertRaises(ssl.SSLError):
                served(self.sg.port, maximum=ssl.TLSVersion.TLSv1_2, ciphers=old_only_ciphers)
        self.on_each_worker(new_handshakes)

        # What was open lives on, with the certificate it began with.
        self.assert_relays(ws, 2)
        self.assertEqual(hashlib.sha256(ws.sock.getpeercert(binary_form=True)).hexdigest(), old)
        # And a new wss console works with the new certificate.
        ws2 = self.open_wss()
        self.assertEqual(hashlib.sha256(ws2.sock.getpeercert(binary_form=True)).hexdigest(), new)
        self.assert_relays(ws2, 3)
        ws.send_close()
        self.assertEqual(ws.wait_close()[0], 1000)

    def test_rsa_to_ecdsa(self):
        self.check_switch(self.rsa, self.ec, "ECDHE-RSA-AES128-GCM-SHA256")

    def test_ecdsa_to_rsa(self):
        self.check_switch(self.ec, self.rsa2, "ECDHE-ECDSA-AES128-GCM-SHA256")

    def test_bad_pairs_keep_the_old_one(self):
        old = fingerprint(self.rsa[0])
        self.start(self.rsa)
        ws = self.open_wss()
        cases = [
            # (what, cert bytes, key bytes or None to remove the key file, log regex)
            ("a key of another certificate", read(self.rsa2[0]), read(self.ec[1]),
             r"\[tls\] key %s: the private key does not match the certificate"
             % re.escape(self.key)),
            ("garbage for a certificate", b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n"
             b"-----END CERTIFICATE-----\n", read(self.rsa2[1]),
             r"\[tls\] cert %s holds no PEM certificate" % re.escape(self.cert)),
            ("a half-written certificate", read(self.rsa2[0])[:300], read(self.rsa2[1]),
             r"\[tls\] cert %s holds no PEM certificate" % re.escape(self.cert)),
            ("no key file", read(self.rsa2[0]), None,
             r"\[tls\] key %s: No such file or directory" % re.escape(self.key)),
            ("a key with a passphrase", read(self.rsa2[0]), read(self.encrypted_key),
             r"\[tls\] key %s: the private key is encrypted with a passphrase"
             % re.escape(self.key)),
            ("an expired certificate", read(self.expired[0]), read(self.expired[1]),
             r"\[tls\] cert %s expired on 2020-01-02T00:00:00Z" % re.escape(self.cert)),
        ]
        for n, (what, cert, key, why) in enumerate(cases, 1):
            with self.subTest(what):
                put(self.cert, cert)
                if key is None:
                    os.unlink(self.key)
                else:
                    put(self.key, key)
                token = self.relaying_token()
                self.sg.send_signal(signal.SIGHUP)
                lines = self.sg.wait_log(r"WARNING: reload: TLS: certificate not reloaded.*",
                                         count=n)
                self.assertRegex(lines[n - 1], r"keeping the one in use \(sha256 %s, subject "
                                 r"CN=first-rsa, [^)]*\): %s" % (old, why))
                # Each worker has reloaded once it takes the new token, and
                # still serves the old certificate.
                self.on_each_worker(lambda: (
                    poll_until(lambda: self.token_relays(token), "the reload's new token"),
                    self.assertEqual(served(self.sg.port, alpn=("h2", "http/1.1")),
                                     (old, "h2"))))
                self.assertEqual(len(re.findall(r"certificate not reloaded", self.sg.log())), n,
                                 "one warning per reload, not one per worker" + self.sg.log_tail())
                self.assert_relays(ws, n)
        self.assertNotIn("secret", self.sg.log())
        # A good pair afterwards is taken.
        self.install(self.rsa2)
        self.sg.send_signal(signal.SIGHUP)
        self.wait_served(fingerprint(self.rsa2[0]), "the good certificate after the bad ones")
        self.assert_relays(ws, 99)

    def test_expired_at_start_served_with_a_warning(self):
        # Start-up has nothing else to serve: the expired certificate is
        # served, and the log says so (once, with workers too); a reload
        # to a good one clears it.
        self.start(self.expired)
        self.sg.wait_log(r"WARNING: TLS: \[tls\] cert %s expired on 2020-01-02T00:00:00Z, and "
                         r"browsers refuse it: renew it, then reload" % re.escape(self.cert))
        self.on_each_worker(lambda: self.assertEqual(served(self.sg.port)[0],
                                                     fingerprint(self.expired[0])))
        self.assertEqual(len(re.findall(r"expired on", self.sg.log())), 1, self.sg.log_tail())
        self.install(self.rsa)
        self.sg.send_signal(signal.SIGHUP)
        self.wait_served(fingerprint(self.rsa[0]), "the renewed certificate")

    def test_same_files_unchanged(self):
        fp = fingerprint(self.rsa[0])
        self.start(self.rsa)
        self.sg.send_signal(signal.SIGHUP)
        self.sg.wait_log(r"MESSAGE: reload: TLS: certificate unchanged \(sha256 %s, " % fp)
        self.on_each_worker(lambda: self.assertEqual(served(self.sg.port)[0], fp))


class CertReloadWorkers(CertReload):
    WORKERS = 2

    def test_restarted_worker_with_bad_files(self):
        # A worker that dies while the files on disk do not match (a
        # renewal half written, not reloaded yet) is restarted from those
        # files: it must not come up with a context that fails every
        # handshake, but wait until they are whole, while the other
        # worker serves every connection.
        old = fingerprint(self.rsa[0])
        self.start(self.rsa)
        put(self.key, read(self.ec[1]))
        victim = self.workers[1]
        os.kill(victim, signal.SIGKILL)
        index = self.sg.wait_log(r"worker (\d+) \(pid %d\) killed by signal 9" % victim)[0]
        self.sg.wait_log(r"spicegate: \[tls\] key %s: the private key does not match the "
                         r"certificate" % re.escape(self.key))
        self.sg.wait_log(r"worker %s \(pid \d+\) exited with status 1; restarting it" % index)
        for _ in range(20):
            self.assertEqual(served(self.sg.port, alpn=("h2", "http/1.1")), (old, "h2"))
        put(self.key, read(self.rsa[1]))
        self.sg.wait_log(r"worker %s restarted" % index)
        poll_until(lambda: len(children(self.sg.pid)) == 2, "the restarted worker")
        self.workers = children(self.sg.pid)
        self.on_each_worker(lambda: self.assertEqual(served(self.sg.port)[0], old))


class CertReloadNotify(IntegTestCase):
    """The reload's result in systemd's STATUS=, on a $NOTIFY_SOCKET the
    test owns as systemd would."""

    def setUp(self):
        super().setUp()
        self.certdir = os.path.join(self.tmp, "certs")
        os.makedirs(self.certdir)
        self.notify_path = os.path.join(self.tmp, "notify")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.notify_path)
        self.reg.add(self.notify)

    def recv_state(self):
        return recv_notify(self.notify)

    def reload_status(self, sg):
        sg.send_signal(signal.SIGHUP)
        self.assertEqual(self.recv_state().get("RELOADING"), "1")
        state = self.recv_state()
        self.assertEqual(state.get("READY"), "1", state)
        return state.get("STATUS", "")

    def check(self, workers):
        first = make_pair(self.certdir, "first", "rsa")
        second = make_pair(self.certdir, "second", "ec")
        cert, key = os.path.join(self.tmp, "cert.pem"), os.path.join(self.tmp, "key.pem")
        put(cert, read(first[0]))
        put(key, read(first[1]))
        extra = ["--cert", cert, "--key", key]
        if workers > 1:
            extra += ["--workers", str(workers)]
        sg = self.start_spicegate({random_token(): "127.0.0.1:9"}, extra_args=extra,
                                  env=dict(os.environ, NOTIFY_SOCKET=self.notify_path))
        self.assertEqual(self.recv_state(), {"READY": "1"})
        head = ("reloaded: 1 console token(s)" if workers == 1 else
                "reload passed to %d worker(s); see the log for its result" % workers)
        new = fingerprint(second[0])
        put(cert, read(second[0]))
        put(key, read(second[1]))
        self.assertEqual(self.reload_status(sg), head + (
            "; certificate reloaded (sha256 %s)" % new if workers == 1 else
            "; certificate files pass (sha256 %s)" % new))
        if workers == 1:
            self.assertEqual(self.reload_status(sg),
                             head + "; certificate unchanged (sha256 %s)" % new)
        put(key, read(first[1]))
        self.assertEqual(self.reload_status(sg), head + (
            "; certificate kept, new one refused: " if workers == 1 else
            "; certificate files refused, the workers keep theirs: ") +
            "[tls] key %s: the private key does not match the certificate in [tls] cert %s"
            % (key, cert))
        sg.wait_log(r"WARNING: reload: TLS: certificate not reloaded")

    def test_status_one_process(self):
        self.check(1)

    def test_status_workers(self):
        self.check(2)

    def test_no_tls_status_unchanged(self):
        # Without TLS the reload says what it said before: tokens only.
        sg = self.start_spicegate({random_token(): "127.0.0.1:9"},
                                  env=dict(os.environ, NOTIFY_SOCKET=self.notify_path))
        self.assertEqual(self.recv_state(), {"READY": "1"})
        self.assertEqual(self.reload_status(sg), "reloaded: 1 console token(s)")


class NovaCaFile(hostile.HostileApiCase):
    """[nova] cafile is the one CA file spicegate's settings name ([tls]
    names none: no client certificates are asked for). Every new
    connection to Keystone and Nova reads it (Debian's libcurl has a CA
    path, so it never reuses a cached CA store), so a renewed bundle needs
    neither a reload nor a restart. Keystone and Nova are the fault injectors of
    test_hostile_apis.py, here over TLS, with no fault injected; each
    lookup is a new connection (they answer with Connection: close)."""

    def setUp(self):
        super().setUp()
        self.certdir = os.path.join(self.tmp, "certs")
        os.makedirs(self.certdir)
        self.first = make_pair(self.certdir, "first-api", "rsa")
        self.second = make_pair(self.certdir, "second-api", "ec")
        self.cafile = os.path.join(self.tmp, "ca.pem")
        put(self.cafile, read(self.first[0]))
        self.server_ctx = None
        self.serve_with(self.first)
        self.keystone.nova_url = "https://127.0.0.1:%d/v2.1" % self.nova.port
        for api in (self.keystone, self.nova):
            api.peer.handler = self.tls_handler(api)

    def serve_with(self, pair):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(pair[0], pair[1])
        self.server_ctx = ctx

    def tls_handler(self, api):
        def handler(conn):
            try:
                conn.sock = self.server_ctx.wrap_socket(conn.sock, server_side=True)
            except (ssl.SSLError, OSError):
                conn.eof.set()      # spicegate did not trust us: no request
                return
            api._handle(conn)
        return handler

    def config(self):
        return super().config().replace("auth_url = http://", "auth_url = https://") + \
            "cafile = %s\n" % self.cafile

    def lookup_relays(self, sg):
        """A new console: True when it relays, False when spicegate could
        not ask Nova (4503)."""
        ws = sg.ws(token=self.good_token())
        msg = link_message(CHANNEL_MAIN)
        ws.send_binary(msg)
        try:
            return ws.recv_exact(len(msg)) == msg
        except WsClosed as e:
            self.assertEqual((e.code, e.reason), hostile.CLOSE_TOKEN_UNAVAILABLE,
                             sg.log_tail())
            return False

    def test_renewed_bundle_used_by_new_connections(self):
        sg = self.start_nova_spicegate()
        self.assertTrue(self.lookup_relays(sg), sg.log_tail())
        # Nova moves to a certificate of another CA: refused with the
        # bundle as it is.
        self.serve_with(self.second)
        self.assertFalse(self.lookup_relays(sg), "a CA not in [nova] cafile was trusted")
        sg.wait_log(r"cannot reach Nova for tok:[0-9a-f]{8}: .*(certificate|SSL)")
        # The bundle is renewed: the next new connection trusts it, with no
        # reload at all.
        put(self.cafile, read(self.second[0]))
        self.assertTrue(self.lookup_relays(sg), "the renewed bundle was not read" +
                        sg.log_tail())
        # And the old CA is no longer trusted.
        self.serve_with(self.first)
        self.assertFalse(self.lookup_relays(sg), "a CA no longer in [nova] cafile trusted")
