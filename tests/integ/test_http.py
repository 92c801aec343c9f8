# SPDX-License-Identifier: Apache-2.0
"""The HTTP side: static files from two roots, safe paths, /healthz."""

import os
import socket

from harness import (
    PAGES, SPICE_HTML5, IntegTestCase, Spicegate, StreamClosed, http_request, parse_http_head,
    read_http_body, read_http_head,
)


class Http(IntegTestCase):

    def setUp(self):
        super().setUp()
        self.sg = self.start_spicegate()

    def test_spice_auto_html_with_query(self):
        # Nova's URL serves our console page (web/spice_auto.html).
        status, headers, body = self.sg.get("/spice_auto.html?token=x&title=a(b)&language=de")
        self.assertEqual(status, 200)
        self.assertRegex(headers.get("content-type", ""), r"^text/html\b")
        with open(os.path.join(PAGES, "spice_auto.html"), "rb") as f:
            self.assertEqual(body, f.read())

    def test_stock_page_under_another_name(self):
        # spice-html5's own spice_auto.html stays reachable, byte for byte.
        status, headers, body = self.sg.get("/spice_auto_stock.html?token=x")
        self.assertEqual(status, 200)
        self.assertRegex(headers.get("content-type", ""), r"^text/html\b")
        with open(os.path.join(SPICE_HTML5, "spice_auto.html"), "rb") as f:
            self.assertEqual(body, f.read())

    def csp(self, path):
        status, headers, _ = self.sg.get(path)
        self.assertEqual(status, 200, path)
        self.assertIn("content-security-policy", headers, path)
        return dict((d.strip().split(" ", 1) + [""])[:2]
                    for d in headers["content-security-policy"].split(";"))

    def test_content_security_policy(self):
        # Our pages: scripts and styles from our origin only (no inline
        # script, no eval), no plugins, no <base>, websockets to our own
        # host, and frame_ancestors' default (any dashboard may frame).
        for path in ("/spice_auto.html?token=x", "/", "/spicegate-console.js", "/main.js"):
            with self.subTest(path=path):
                csp = self.csp(path)
                self.assertEqual(csp["default-src"], "'none'")
                self.assertEqual(csp["script-src"], "'self'")
                self.assertEqual(csp["style-src"], "'self'")
                self.assertEqual(csp["connect-src"], "'self'")
                self.assertEqual(csp["object-src"], "'none'")
                self.assertEqual(csp["base-uri"], "'none'")
                self.assertEqual(csp["frame-ancestors"], "*")
                self.assertNotIn("unsafe-inline", " ".join(csp.values()))
                self.assertNotIn("unsafe-eval", " ".join(csp.values()))
        # A stock spice-html5 page: the same policy, plus the hashes of
        # exactly its own inline scripts, handlers and style attributes.
        for path in ("/spice_auto_stock.html", "/spice.html"):
            with self.subTest(path=path):
                csp = self.csp(path)
                self.assertRegex(csp["script-src"], r"^'self' 'unsafe-hashes'( 'sha256-[A-Za-z0-9+/]{43}=')+$")
                self.assertEqual(csp["object-src"], "'none'")
                self.assertEqual(csp["base-uri"], "'none'")
                self.assertEqual(csp["connect-src"], "'self'")
                self.assertNotIn("unsafe-inline", " ".join(csp.values()))
        # Answers that are not files carry it too.
        status, headers, _ = self.sg.get("/nope.html")
        self.assertEqual(status, 404)
        self.assertIn("frame-ancestors *", headers.get("content-security-policy", ""))

    def test_frame_ancestors_setting(self):
        sg = self.start_spicegate(config="[server]\nframe_ancestors = https://horizon.example.org 'self'\n")
        status, headers, _ = sg.get("/spice_auto.html")
        self.assertEqual(status, 200)
        self.assertTrue(headers.get("content-security-policy", "").endswith(
            "; frame-ancestors https://horizon.example.org 'self'"), headers)

    def test_js_is_text_javascript(self):
        status, headers, body = self.sg.get("/spiceconn.js")
        self.assertEqual(status, 200)
        self.assertRegex(headers.get("content-type", ""), r"^text/javascript\b")
        with open(os.path.join(SPICE_HTML5, "spiceconn.js"), "rb") as f:
            self.assertEqual(body, f.read())

    def test_css_mime(self):
        status, headers, _ = self.sg.get("/spice.css")
        self.assertEqual(status, 200)
        self.assertRegex(headers.get("content-type", ""), r"^text/css\b")

    def test_file_headers(self):
        for path in ("/spice_auto.html", "/", "/spiceconn.js"):
            with self.subTest(path=path):
                status, headers, _ = self.sg.get(path)
                self.assertEqual(status, 200)
                self.assertEqual(headers.get("x-content-type-options"), "nosniff")
                self.assertNotIn("x-frame-options", headers,
                                 "Horizon embeds the console in an iframe")
                self.assertIn("no-cache", headers.get("cache-control", ""))
                self.assertEqual(headers.get("referrer-policy"), "no-referrer")

    def test_root_is_our_index(self):
        status, headers, body = self.sg.get("/")
        self.assertEqual(status, 200)
        self.assertRegex(headers.get("content-type", ""), r"^text/html\b")
        with open(os.path.join(PAGES, "index.html"), "rb") as f:
            self.assertEqual(body, f.read())

    def test_head(self):
        status, headers, body = self.sg.get("/spice_auto.html", method="HEAD")
        self.assertEqual(status, 200)
        self.assertEqual(body, b"")
        size = os.path.getsize(os.path.join(PAGES, "spice_auto.html"))
        if "content-length" in headers:
            self.assertEqual(int(headers["content-length"]), size)

    def test_other_methods_refused(self):
        for method in ("POST", "PUT", "DELETE"):
            with self.subTest(method=method):
                status, _, _ = self.sg.get("/spice_auto.html", method=method,
                                           headers=("Content-Length: 0",))
                self.assertGreaterEqual(status, 400)
                self.assertLess(status, 500)

    def test_double_slash_never_redirects(self):
        # Nova answers 400 to paths starting with // (OSSA-2021-002: an open
        # redirect through the directory redirect). libwebsockets 4.1.6
        # folds // into / while parsing the request line, so spicegate never
        # sees the doubled slash; it never redirects at all, so the attack
        # has nothing to work with. What matters: no 3xx, no Location, and
        # nothing from outside the roots (README, "Security").
        for path in ("//evil.com", "//evil.com/%2F..", "//evil.com/spice_auto.html",
                     "///etc/passwd"):
            with self.subTest(path=path):
                status, headers, body = self.sg.get(path)
                self.assertFalse(300 <= status < 400, f"{path} answered {status}")
                self.assertNotIn("location", {k.lower() for k in headers})
                self.assertNotIn(b"root:", body)
                if path == "//evil.com":
                    self.assertEqual(status, 404)

    def test_dotdot_refused(self):
        for path in ("/../etc/passwd", "/../../../../etc/passwd", "/%2e%2e/etc/passwd",
                     "/%2E%2E/%2E%2E/%2E%2E/etc/passwd", "/.%2e/etc/passwd",
                     "/a/..%2f..%2f..%2fetc%2fpasswd", "/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
                     "/spice_auto.html/../../etc/passwd", "/..%5c..%5cetc%5cpasswd",
                     "/%252e%252e/etc/passwd"):
            with self.subTest(path=path):
                status, _, body = self.sg.get(path)
                self.assertIn(status, (400, 404))
                self.assertNotIn(b"root:", body)

    def test_nul_in_path_not_served(self):
        # web.h: a NUL is a bad request. The classic truncation trick must
        # not serve spice_auto.html (or the index) under another name.
        # Hanging up without an answer (status 0 here) is safe too.
        # "/%00" alone is not such a trick: lws drops the NUL and hands us
        # "/", which is the index, the same as GET /.
        for path in ("/spice_auto.html%00.txt", "/spiceconn.js%00", "/a%00b"):
            with self.subTest(path=path):
                try:
                    status, _, _ = self.sg.get(path)
                except (StreamClosed, ConnectionResetError):
                    status = 0
                self.assertIn(status, (0, 400, 404))

    def test_bad_escape_refused(self):
        # web.h says 400; any 4xx is safe, 200 is not.
        for path in ("/a%zz", "/%", "/spice_auto.html%2"):
            with self.subTest(path=path):
                status, _, _ = self.sg.get(path)
                self.assertGreaterEqual(status, 400)
                self.assertLess(status, 500)

    def test_missing_404(self):
        for path in ("/nope.html", "/nope/", "/spice_auto.html.bak"):
            with self.subTest(path=path):
                status, _, _ = self.sg.get(path)
                self.assertEqual(status, 404)

    def test_directory_404(self):
        status, _, _ = self.sg.get("/thirdparty")
        self.assertEqual(status, 404)
        status, _, _ = self.sg.get("/thirdparty/")
        self.assertEqual(status, 404)

    def test_nested_file(self):
        # spice-html5 ships files in thirdparty/; the page loads them.
        names = sorted(n for n in os.listdir(os.path.join(SPICE_HTML5, "thirdparty"))
                       if n.endswith(".js"))
        if not names:
            self.skipTest("no thirdparty/*.js in this spice-html5")
        status, headers, _ = self.sg.get("/thirdparty/" + names[0])
        self.assertEqual(status, 200)
        self.assertRegex(headers.get("content-type", ""), r"^text/javascript\b")

    def test_keep_alive(self):
        # Browsers reuse connections: two requests on one socket.
        with socket.create_connection(("127.0.0.1", self.sg.port), timeout=10) as sock:
            for path in ("/spice_auto.html", "/healthz", "/spiceconn.js"):
                with self.subTest(path=path):
                    sock.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
                                  % (path, self.sg.port)).encode())
                    head, leftover = read_http_head(sock, bytearray())
                    status, _, headers = parse_http_head(head)
                    self.assertEqual(status, 200)
                    self.assertIn("content-length", headers)
                    body = read_http_body(sock, headers, leftover)
                    self.assertEqual(len(body), int(headers["content-length"]))

    def test_healthz(self):
        status, _, body = self.sg.get("/healthz")
        self.assertEqual(status, 200)
        self.assertEqual(body, b"ok\n")

    def test_healthz_needs_no_token_or_origin(self):
        status, _, _ = self.sg.get("/healthz", headers=("Origin: http://evil.example.com",))
        self.assertEqual(status, 200)

    def test_many_sequential_requests(self):
        # No descriptor or memory leak bad enough to show in 300 requests.
        for _ in range(300):
            status, _, _ = self.sg.get("/healthz")
            self.assertEqual(status, 200)
        fds = len(os.listdir("/proc/%d/fd" % self.sg.pid))
        self.assertLess(fds, 64, "spicegate holds %d descriptors after 300 requests" % fds)


class HttpOwnPages(IntegTestCase):
    """A pages root we control: precedence, dot files, symlinks."""

    def setUp(self):
        super().setUp()
        pages = os.path.join(self.tmp, "pages")
        os.makedirs(os.path.join(pages, "sub"))
        self.write(pages, "index.html", b"<!doctype html><title>ours</title>\n")
        self.write(pages, "spice.html", b"<!doctype html><title>our spice.html</title>\n")
        self.write(pages, ".secret", b"dot file\n")
        self.write(pages, "sub/inner.txt", b"inner\n")
        os.makedirs(os.path.join(pages, ".git"))
        self.write(pages, ".git/config", b"[core]\n")
        outside = os.path.join(self.tmp, "outside.txt")
        with open(outside, "wb") as f:
            f.write(b"outside the root\n")
        os.symlink(outside, os.path.join(pages, "escape.txt"))
        os.symlink("/etc", os.path.join(pages, "etc"))
        os.symlink("sub/inner.txt", os.path.join(pages, "inside-link.txt"))
        self.sg = self.start_spicegate(pages=pages)

    @staticmethod
    def write(root, rel, data):
        with open(os.path.join(root, rel), "wb") as f:
            f.write(data)

    def test_pages_win_over_web(self):
        status, _, body = self.sg.get("/spice.html")
        self.assertEqual(status, 200)
        self.assertIn(b"our spice.html", body)
        status, _, body = self.sg.get("/")
        self.assertIn(b"<title>ours</title>", body)

    def test_web_still_served(self):
        status, _, _ = self.sg.get("/spice_auto.html")
        self.assertEqual(status, 200)

    def test_dot_files_404(self):
        for path in ("/.secret", "/.git/config", "/%2esecret", "/sub/../.secret"):
            with self.subTest(path=path):
                status, _, body = self.sg.get(path)
                self.assertIn(status, (400, 404))
                self.assertNotIn(b"dot file", body)
                self.assertNotIn(b"[core]", body)

    def test_symlink_out_of_root_404(self):
        for path in ("/escape.txt", "/etc/passwd"):
            with self.subTest(path=path):
                status, _, body = self.sg.get(path)
                self.assertEqual(status, 404)
                self.assertNotIn(b"outside the root", body)
                self.assertNotIn(b"root:", body)

    def test_symlink_inside_root_served(self):
        status, _, body = self.sg.get("/inside-link.txt")
        self.assertEqual(status, 200)
        self.assertEqual(body, b"inner\n")

    def test_subdirectory_404(self):
        status, _, _ = self.sg.get("/sub")
        self.assertEqual(status, 404)


class HttpIpv6(IntegTestCase):

    def test_listen_ipv6_loopback(self):
        try:
            s = socket.socket(socket.AF_INET6)
            s.bind(("::1", 0))
            s.close()
        except OSError:
            self.skipTest("no IPv6 loopback here")
        sg = Spicegate(self.reg, self.tmp, listen="[::1]:0").start()
        status, _, body = http_request(sg.port, "/healthz", host="::1")
        self.assertEqual(status, 200)
        self.assertEqual(body, b"ok\n")
