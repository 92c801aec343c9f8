# SPDX-License-Identifier: Apache-2.0
"""Every kind of HTTP answer over HTTP/2 and HTTP/1.1, as browsers and
load balancers meet them.

With a certificate, libwebsockets negotiates HTTP/2 (ALPN h2), where
headers are HPACK-coded frames: a response written as a raw header block
reaches a browser as ERR_HTTP2_COMPRESSION_ERROR and curl as an empty
reply. Each case here runs with Debian's curl, `--http2` and `--http1.1`,
over https, and `--http1.1` over plain http, and compares bodies with the
files on disk byte for byte.
"""

import os
import shutil
import subprocess
import tempfile

from harness import KEEP, PAGES, SPICE_HTML5, IntegTestCase, make_cert

CURL_TIMEOUT_S = 20


class Curl:
    """One run of curl against spicegate: status, HTTP version, headers, body."""

    def __init__(self, base, version, path, head=False, extra=()):
        out = tempfile.NamedTemporaryFile(delete=False)
        hdr = tempfile.NamedTemporaryFile(delete=False)
        out.close()
        hdr.close()
        try:
            # -I writes the head to -o as well: the body's size comes from
            # size_download, which counts body bytes only.
            args = ["curl", "-sS", "-k", version, "-o", out.name, "-D", hdr.name,
                    "--max-time", str(CURL_TIMEOUT_S),
                    "-w", "%{http_code} %{http_version} %{size_download}"]
            if head:
                args.append("-I")
            args += list(extra) + [base + path]
            proc = subprocess.run(args, capture_output=True, text=True,
                                  timeout=CURL_TIMEOUT_S + 10)
            self.rc = proc.returncode
            self.stderr = proc.stderr
            code, ver, size = (proc.stdout.split(" ") + ["0", "0", "0"])[:3]
            self.status = int(code or 0)
            self.http_version = ver
            self.body_size = int(size or 0)
            with open(out.name, "rb") as f:
                self.body = b"" if head else f.read()
            self.headers = {}
            with open(hdr.name, "rb") as f:
                for line in f.read().decode("latin-1").splitlines()[1:]:
                    name, sep, value = line.partition(":")
                    if sep:
                        self.headers[name.strip().lower()] = value.strip()
        finally:
            os.unlink(out.name)
            os.unlink(hdr.name)

    def __repr__(self):
        return "curl rc=%d status=%d http/%s stderr=%r" % (
            self.rc, self.status, self.http_version, self.stderr)


def spice_html5_file(rel):
    with open(os.path.join(SPICE_HTML5, rel), "rb") as f:
        return f.read()


class Http2(IntegTestCase):

    @classmethod
    def setUpClass(cls):
        cls.certdir = tempfile.mkdtemp(prefix="sg-integ-h2-")
        if not KEEP:
            cls.addClassCleanup(shutil.rmtree, cls.certdir, True)
        cls.cert, cls.key = make_cert(cls.certdir)

    def setUp(self):
        super().setUp()
        self.sg = self.start_spicegate(extra_args=("--cert", self.cert, "--key", self.key))
        https = "https://127.0.0.1:%d" % self.sg.port
        http = "http://127.0.0.1:%d" % self.sg.port
        # (name, base URL, curl flag, the HTTP version curl must report)
        self.transports = (
            ("h2", https, "--http2", "2"),
            ("https/1.1", https, "--http1.1", "1.1"),
            ("http/1.1", http, "--http1.1", "1.1"),
        )

    def each(self, path, head=False, extra=()):
        """Yields (transport name, Curl) for @path over every transport,
        each checked for a complete exchange at the expected version."""
        for name, base, flag, version in self.transports:
            with self.subTest(transport=name, path=path, head=head):
                got = Curl(base, flag, path, head=head, extra=extra)
                self.assertEqual(got.rc, 0, repr(got) + self.sg.log_tail())
                self.assertEqual(got.http_version, version, repr(got))
                yield name, got

    def test_files_byte_exact(self):
        # The largest files too: over HTTP/2 they need several DATA frames
        # of at most 16 KiB and the peer's flow-control window.
        sizes = []
        for root, _, files in os.walk(SPICE_HTML5):
            for name in files:
                rel = os.path.relpath(os.path.join(root, name), SPICE_HTML5)
                if rel != "ticket.js":   # ours wins (web/ticket.js)
                    sizes.append((os.path.getsize(os.path.join(SPICE_HTML5, rel)), rel))
        sizes.sort()
        picks = {rel for _, rel in sizes[-3:]} | {"spice.html", "spiceconn.js"}
        self.assertTrue(any(size > 65536 for size, _ in sizes), "no file over 64 KiB to test")
        for rel in sorted(picks):
            expected = spice_html5_file(rel)
            for _, got in self.each("/" + rel):
                self.assertEqual(got.status, 200)
                self.assertEqual(got.body, expected, rel)
                self.assertEqual(int(got.headers["content-length"]), len(expected))

    def test_file_headers(self):
        for _, got in self.each("/spice_auto.html?token=x&title=vm(1)&language=de"):
            self.assertEqual(got.status, 200)
            self.assertRegex(got.headers.get("content-type", ""), r"^text/html; charset=utf-8$")
            self.assertEqual(got.headers.get("x-content-type-options"), "nosniff")
            self.assertEqual(got.headers.get("referrer-policy"), "no-referrer")
            self.assertEqual(got.headers.get("cache-control"), "no-cache")
            self.assertNotIn("x-frame-options", got.headers)
            # Our console page, under its Content-Security-Policy (written
            # with lws' header API, so valid HPACK too).
            with open(os.path.join(PAGES, "spice_auto.html"), "rb") as f:
                self.assertEqual(got.body, f.read())
            csp = got.headers.get("content-security-policy", "")
            self.assertRegex(csp, r"^default-src 'none'; script-src 'self'; style-src 'self'; ")
            self.assertIn("connect-src 'self'", csp)
            self.assertIn("object-src 'none'", csp)
            self.assertIn("base-uri 'none'", csp)
            self.assertTrue(csp.endswith("; frame-ancestors *"), csp)
        # The stock page's longer policy (hashes) fits in one header block.
        for _, got in self.each("/spice_auto_stock.html?token=x"):
            self.assertEqual(got.status, 200)
            self.assertEqual(got.body, spice_html5_file("spice_auto.html"))
            self.assertRegex(got.headers.get("content-security-policy", ""),
                             r"script-src 'self' 'unsafe-hashes'( 'sha256-[A-Za-z0-9+/]{43}=')+;")
        for _, got in self.each("/main.js"):
            self.assertRegex(got.headers.get("content-type", ""), r"^text/javascript\b")

    def test_head_like_get_without_body(self):
        for path in ("/spice_auto.html", "/", "/favicon.ico", "/healthz", "/nope.html"):
            gets = {name: got for name, got in self.each(path)}
            for name, got in self.each(path, head=True):
                get = gets[name]
                self.assertEqual(got.status, get.status)
                self.assertEqual(got.body_size, 0, "a body after HEAD")
                for h in ("content-type", "content-length", "cache-control"):
                    self.assertEqual(got.headers.get(h), get.headers.get(h), h)
                self.assertEqual(int(got.headers["content-length"]), len(get.body))

    def test_healthz(self):
        for _, got in self.each("/healthz"):
            self.assertEqual((got.status, got.body), (200, b"ok\n"))
            self.assertEqual(got.headers.get("cache-control"), "no-store")

    def test_not_found(self):
        for path in ("/nope.html", "/thirdparty/", "/spice_auto.html/", "/index.html/",
                     "/spiceconn.js/"):
            for _, got in self.each(path):
                self.assertEqual((got.status, got.body), (404, b"not found\n"))

    def test_bad_request(self):
        # An encoded backslash: spicegate's own path check says 400.
        for _, got in self.each("/a%5cb"):
            self.assertEqual((got.status, got.body), (400, b"bad request\n"))

    def test_nul_in_path_answers_nothing(self):
        # A decoded NUL in the path: libwebsockets' parser closes the
        # connection before spicegate sees the request, on every transport
        # (by design: lws' README.http_parser.md, "Dealing with %00"), so a
        # 400 cannot be sent. What must hold: nothing is served, no status
        # at all, and the daemon answers the next request.
        for path in ("/a%00b", "/spice_auto.html%00.txt", "/spiceconn.js%00"):
            for name, base, flag, _ in self.transports:
                with self.subTest(transport=name, path=path):
                    got = Curl(base, flag, path)
                    self.assertNotEqual(got.rc, 0, repr(got))
                    self.assertEqual((got.status, got.body), (0, b""), repr(got))
        for _, got in self.each("/healthz"):
            self.assertEqual(got.status, 200)

    def test_method_not_allowed(self):
        for _, got in self.each("/spice_auto.html", extra=("-X", "DELETE")):
            self.assertEqual(got.status, 405)

    def test_favicon(self):
        with open(os.path.join(PAGES, "favicon.ico"), "rb") as f:
            icon = f.read()
        for _, got in self.each("/favicon.ico"):
            self.assertEqual(got.status, 200)
            self.assertEqual(got.headers.get("content-type"), "image/x-icon")
            self.assertEqual(got.body, icon)

    def test_our_index(self):
        with open(os.path.join(PAGES, "index.html"), "rb") as f:
            index = f.read()
        for _, got in self.each("/"):
            self.assertEqual((got.status, got.body), (200, index))

    def test_many_streams_on_one_connection(self):
        # A browser loads spice-html5's ~20 modules over one HTTP/2
        # connection, several streams at a time.
        rels = sorted(n for n in os.listdir(SPICE_HTML5)
                      if n.endswith(".js") and n != "ticket.js")
        urls = ["https://127.0.0.1:%d/%s" % (self.sg.port, n) for n in rels]
        outdir = tempfile.mkdtemp(dir=self.tmp)
        args = ["curl", "-sS", "-k", "--http2", "--parallel", "--parallel-max", "10",
                "--max-time", str(CURL_TIMEOUT_S), "-w", "%{http_version} %{http_code}\\n"]
        for i, url in enumerate(urls):
            args += ["-o", os.path.join(outdir, str(i)), url]
        proc = subprocess.run(args, capture_output=True, text=True, timeout=CURL_TIMEOUT_S + 10)
        self.assertEqual(proc.returncode, 0, proc.stderr + self.sg.log_tail())
        self.assertEqual(proc.stdout.split("\n")[:-1], ["2 200"] * len(urls))
        for i, rel in enumerate(rels):
            with open(os.path.join(outdir, str(i)), "rb") as f:
                self.assertEqual(f.read(), spice_html5_file(rel), rel)
