# SPDX-License-Identifier: Apache-2.0
"""A lying Keystone and a lying Nova (issue 11): the real spicegate daemon
with the Nova token backend, against two fault injectors that answer its
login and its console token lookups with what a broken, compromised or
man-in-the-middled API could send: JSON nested 100,000 levels deep, 64 MiB
bodies, endless headers, garbage, invalid UTF-8, HTML, silence, 401, 403,
500, one byte per second, a reset, and console answers of the wrong types.

What must hold in every case: spicegate stays up, the websocket that asked
gets 4503 (or 4403 for a console answer it cannot serve) within [nova]
timeout plus a little, the log names Keystone or Nova and the reason, and
the same daemon serves /healthz and the next good lookup right after. For
Keystone the same at start-up: spicegate starts and says Keystone is
unusable (the login at start is only a check), and --check-config=login
exits 2 with a message, never by a signal. For Nova's version document,
read once at start, too: spicegate starts, says what is wrong, and serves.

The consoles of the good lookups are an echo peer (tests/integ/harness.py),
not QEMU: what is under test is the token check, not SPICE. With
SG_HOSTILE_REPORT=FILE each case appends its figures (seconds to the close,
bytes the injector got out, spicegate's RSS) to FILE.
"""

import json
import os
import re
import socket
import struct
import threading
import time
import unittest
from datetime import datetime, timedelta, timezone

from harness import (
    CHANNEL_MAIN, CLOSE_TOKEN_UNAVAILABLE, FakePeer, IntegTestCase, link_message,
    poll_until, random_token, run_spicegate, token_tag, vm_status,
)

# Small, so that the cases that wait for the timeout (silence, one byte per
# second) stay short; the whole file runs in about a minute.
NOVA_TIMEOUT_S = 3
# What a refusal may take beyond [nova] timeout on a loaded 2-core machine
# (and under ASan, with the browsers of tests/e2e running beside).
SLACK_S = 4.0
CLOSE_NOT_USABLE = (4403, "console token not usable here")
# What the fault injectors stream when told to send a huge body.
HUGE_BYTES = 64 << 20
# spicegate caps every Keystone or Nova answer at 4 MiB (src/httpc.c). Its
# RSS may grow by that, the copies libcurl and GLib make of it, and under
# ASan the quarantine of what was freed: a bound well below the 64 MiB sent
# (an unbounded reader would hold all of it, twice).
RSS_GROWTH_MAX_KIB = 40 << 10
# Bytes the injector may get out before spicegate stops reading: the 4 MiB
# cap plus the loopback socket buffers of both ends.
HUGE_SENT_MAX = 24 << 20

SERVICE_PASSWORD = "hostile-test-secret-%s" % os.urandom(4).hex()


def report(line):
    """One line of figures (time to the close, bytes sent, RSS) appended
    to $SG_HOSTILE_REPORT when it is set, for humans; nothing otherwise."""
    if os.environ.get("SG_HOSTILE_REPORT"):
        with open(os.environ["SG_HOSTILE_REPORT"], "a") as f:
            f.write(line + "\n")


def _iso(dt):
    return dt.strftime("%Y-%m-%dT%H:%M:%S.000000Z")


class FaultyApi:
    """Fault injector, not a real OpenStack API: a threaded HTTP/1.1 server
    on 127.0.0.1:0 that answers each request well (good()) until the test
    sets .mode, then with that fault for the requests fault_applies() picks.
    Real Keystone and Nova (tests/nova) cannot be made to lie on demand.

    Every connection gets one answer and is closed (Connection: close), so
    each spicegate request is its own connection and a fault never leaks
    into the next request. The injector records the request lines it saw
    and, for the huge bodies, how many bytes it got out before spicegate
    closed the connection."""

    def __init__(self, registry, name):
        self.name = name
        self.mode = "good"
        self.lock = threading.Lock()
        self.requests = []          # (method, path, headers dict)
        self.huge_sent = []         # bytes sent per huge answer, once it ended
        self.faults_served = 0
        self.peer = FakePeer(registry, self._handle, name)
        self.port = self.peer.port

    # -- the request ---------------------------------------------------------

    @staticmethod
    def _read_request(sock):
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            buf += chunk
            if len(buf) > 1 << 20:
                return None
        head, rest = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(rest) < length:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            rest += chunk
        return method, path, headers, rest

    def _handle(self, conn):
        sock = conn.sock
        try:
            req = self._read_request(sock)
            if req is None:
                return
            method, path, headers, body = req
            with self.lock:
                self.requests.append((method, path, headers))
                mode = self.mode if self.fault_applies(method, path) else "good"
                if mode != "good":
                    self.faults_served += 1
            if mode == "good":
                status, hdrs, payload = self.good(method, path, headers, body)
                self._respond(sock, status, hdrs, payload)
            else:
                self._fault(sock, mode, method, path, headers, body)
        except OSError:
            pass
        finally:
            conn.eof.set()

    # -- answers ---------------------------------------------------------------

    @staticmethod
    def _head(status, headers, length=None):
        lines = ["HTTP/1.1 %d %s" % (status, {200: "OK", 201: "Created", 401: "Unauthorized",
                                              403: "Forbidden", 404: "Not Found",
                                              500: "Internal Server Error"}.get(status, "X"))]
        lines += ["%s: %s" % kv for kv in headers]
        if length is not None:
            lines.append("Content-Length: %d" % length)
        lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    @staticmethod
    def _finish(sock):
        """Ends our side, then waits for spicegate to close its end, so
        that the answer is read before the socket goes."""
        sock.shutdown(socket.SHUT_WR)
        try:
            while sock.recv(65536):
                pass
        except OSError:
            pass

    def _respond(self, sock, status, headers, body):
        sock.sendall(self._head(status, headers, len(body)) + body)
        self._finish(sock)

    def _stream(self, sock, status, headers, prefix, filler, announce):
        """Sends @prefix then @filler repeated up to HUGE_BYTES in all,
        until spicegate stops taking it; records how much went out."""
        sent = 0
        try:
            head = self._head(status, headers, HUGE_BYTES if announce else None)
            sock.sendall(head + prefix)
            sent = len(prefix)
            chunk = filler * ((1 << 16) // len(filler))
            while sent < HUGE_BYTES:
                sent += sock.send(chunk[:HUGE_BYTES - sent])
        except OSError:
            pass
        with self.lock:
            self.huge_sent.append(sent)

    def _fault(self, sock, mode, method, path, headers, body):
        json_ct = ("Content-Type", "application/json")
        extra = self.fault_headers()
        if mode == "deep":
            # About 200 KB of '[': json-glib recursed once per level and
            # overflowed the stack (issue 11, item 1).
            self._respond(sock, self.ok_status, extra + [json_ct], b"[" * 100000 + b"]" * 100000)
        elif mode == "deep_object":
            self._respond(sock, self.ok_status, extra + [json_ct], b'{"a":' * 100000 + b"1" +
                          b"}" * 100000)
        elif mode == "huge":
            self._stream(sock, self.ok_status, extra + [json_ct], b'{"x": "', b"a", True)
        elif mode == "huge_unannounced":
            # No Content-Length: the body ends when the connection does.
            self._stream(sock, self.ok_status, extra + [json_ct], b'{"x": "', b"a", False)
        elif mode == "huge_headers":
            # Endless distinct header lines, never an empty line.
            sent = 0
            try:
                sock.sendall(b"HTTP/1.1 200 OK\r\n")
                n = 0
                while sent < HUGE_BYTES:
                    lines = b"".join(b"X-Filler-%d: %s\r\n" % (n + i, b"v" * 100)
                                     for i in range(256))
                    n += 256
                    sock.sendall(lines)
                    sent += len(lines)
            except OSError:
                pass
            with self.lock:
                self.huge_sent.append(sent)
        elif mode == "raw_garbage":
            # Not even a status line.
            sock.sendall(b"\x00\xff garbage " + os.urandom(4096))
            self._finish(sock)
        elif mode == "garbage":
            self._respond(sock, self.ok_status, extra + [json_ct], os.urandom(4096))
        elif mode == "bad_utf8":
            self._respond(sock, self.ok_status, extra + [json_ct], self.bad_utf8_body())
        elif mode == "html":
            self._respond(sock, self.ok_status, extra + [("Content-Type", "text/html")],
                          b"<html><body><h1>It works!</h1></body></html>\n")
        elif mode == "stall":
            # Accepts, reads the request, never answers.
            try:
                while sock.recv(65536):
                    pass
            except OSError:
                pass
        elif mode in ("401", "403", "500"):
            status = int(mode)
            body = json.dumps({"error": {"code": status, "title": "fault injected",
                                         "message": "fault injected"}}).encode()
            self._respond(sock, status, [json_ct], body)
        elif mode == "drip":
            # A good answer, one byte per second: each byte resets an
            # inactivity timer, so only a deadline on the whole request
            # ends it.
            status, hdrs, payload = self.good(method, path, headers, body)
            data = self._head(status, hdrs, len(payload)) + payload
            for i in range(len(data)):
                sock.sendall(data[i:i + 1])
                if self.peer._closed:
                    break
                time.sleep(1.0)     # the fault itself: pacing, not a wait
        elif mode == "reset":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
        else:
            self.fault_other(sock, mode, method, path, headers, body)

    # For subclasses.
    ok_status = 200

    def fault_applies(self, method, path):
        return True

    def fault_headers(self):
        return []

    def fault_other(self, sock, mode, method, path, headers, body):
        raise ValueError("unknown mode %r" % mode)

    def count(self, pattern):
        rx = re.compile(pattern)
        with self.lock:
            return sum(1 for m, p, _ in self.requests if rx.search("%s %s" % (m, p)))

    def set_mode(self, mode):
        with self.lock:
            self.mode = mode


class FakeKeystone(FaultyApi):
    """Fault injector playing Keystone v3 (not a Keystone): POST
    /v3/auth/tokens answers 201 with an X-Subject-Token header and a body
    with token.expires_at and a catalog whose compute endpoint is
    @nova_url, or, with a mode set, the fault."""

    ok_status = 201

    def __init__(self, registry, nova_url):
        super().__init__(registry, "fault-injecting-keystone")
        self.nova_url = nova_url
        self.issued = []

    def fault_applies(self, method, path):
        return method == "POST" and path.endswith("/auth/tokens")

    def fault_headers(self):
        # A subject token, so that spicegate goes on to read the body.
        return [("X-Subject-Token", "fault-%s" % os.urandom(8).hex())]

    def fault_other(self, sock, mode, method, path, headers, body):
        if mode == "slow":
            # A good answer, late: just within one request's timeout.
            time.sleep(NOVA_TIMEOUT_S - 0.3)    # the fault itself: pacing, not a wait
            self._respond(sock, *self.good(method, path, headers, body))
        elif mode == "bad_subject":
            # A good answer whose service token, which spicegate would send
            # to Nova as X-Auth-Token, carries a bare CR and a header.
            status, hdrs, payload = self.good(method, path, headers, body)
            hdrs = [(k, v + "\rX-Injected: yes" if k == "X-Subject-Token" else v)
                    for k, v in hdrs]
            self._respond(sock, status, hdrs, payload)
        else:
            raise ValueError("unknown mode %r" % mode)

    def bad_utf8_body(self):
        return (b'{"token": {"expires_at": "2099-01-01T00:00:00\xff\xfe\xc0\xafZ", '
                b'"catalog": [{"type": "compute\xed\xa0\x80", "endpoints": []}]}}')

    def good(self, method, path, headers, body):
        if not self.fault_applies(method, path):
            return 404, [("Content-Type", "application/json")], b'{"error": "no such path"}'
        creds = json.loads(body)["auth"]["identity"]["password"]["user"]["password"]
        if creds != SERVICE_PASSWORD:
            return 401, [("Content-Type", "application/json")], b'{"error": {"code": 401}}'
        token = "svc-%s" % os.urandom(16).hex()
        with self.lock:
            self.issued.append(token)
        now = datetime.now(timezone.utc)
        endpoints = [{"interface": iface, "region": "RegionOne", "region_id": "RegionOne",
                      "url": self.nova_url} for iface in ("public", "internal", "admin")]
        reply = {"token": {"issued_at": _iso(now), "expires_at": _iso(now + timedelta(hours=1)),
                           "catalog": [{"type": "identity", "endpoints": []},
                                       {"type": "compute", "name": "nova",
                                        "endpoints": endpoints}]}}
        return (201, [("X-Subject-Token", token), ("Content-Type", "application/json")],
                json.dumps(reply).encode())


class FakeNova(FaultyApi):
    """Fault injector playing Nova's compute API (not a Nova): GET /v2.1/
    is the version document; GET /v2.1/os-console-auth-tokens/TOKEN with
    an OpenStack-API-Version header answers the console of a token the test
    registered (404 for others), or, with a mode set, the fault (lookups
    only; the version document stays good)."""

    def __init__(self, registry):
        super().__init__(registry, "fault-injecting-nova")
        self.consoles = {}          # token -> (host, port)
        self.fault_scope = "lookups"    # or "version": the version document only

    def fault_applies(self, method, path):
        if self.fault_scope == "version":
            return path.rstrip("/") == "/v2.1"
        return "/os-console-auth-tokens/" in path

    def bad_utf8_body(self):
        return (b'{"console": {"host": "127.0.0.1\xff\xfe", "port": 5900, '
                b'"instance_uuid": "\xc0\xaf"}}')

    def good(self, method, path, headers, body):
        json_ct = ("Content-Type", "application/json")
        if path.rstrip("/") == "/v2.1":
            doc = {"version": {"id": "v2.1", "status": "CURRENT", "version": "2.93",
                               "min_version": "2.1"}}
            return 200, [json_ct], json.dumps(doc).encode()
        if "/os-console-auth-tokens/" not in path:
            return 404, [json_ct], b'{"itemNotFound": {"code": 404}}'
        if not headers.get("openstack-api-version", "").startswith("compute 2."):
            return 401, [json_ct], b'{"unauthorized": {"code": 401}}'
        token = path.rsplit("/", 1)[1]
        if token not in self.consoles:
            return 404, [json_ct], b'{"itemNotFound": {"code": 404}}'
        host, port = self.consoles[token]
        doc = {"console": {"instance_uuid": "5b8e9b77-6a2c-4f6e-9d0e-2f1a3c4d5e6f",
                           "host": host, "port": port, "tls_port": None,
                           "internal_access_path": None}}
        return 200, [json_ct], json.dumps(doc).encode()

    def fault_other(self, sock, mode, method, path, headers, body):
        json_ct = ("Content-Type", "application/json")
        console = {"instance_uuid": "5b8e9b77-6a2c-4f6e-9d0e-2f1a3c4d5e6f", "host": "127.0.0.1",
                   "port": 5900, "internal_access_path": None}
        if mode == "401_then_stall":
            # "Your service token is stale" to a token's first lookup;
            # silence to the second, after spicegate logged in again.
            token = path.rsplit("/", 1)[1]
            if self.count(r"os-console-auth-tokens/" + re.escape(token)) == 1:
                self._fault(sock, "401", method, path, headers, body)
            else:
                self._fault(sock, "stall", method, path, headers, body)
            return
        if mode == "json_as_text":
            status, hdrs, payload = self.good(method, path, headers, body)
            self._respond(sock, status, [("Content-Type", "text/plain")], payload)
            return
        if mode == "long_version":
            doc = {"version": {"id": "v2.1", "version": "2." + "9" * 100000,
                               "min_version": "2.1"}}
            self._respond(sock, 200, [json_ct], json.dumps(doc).encode())
            return
        if mode == "long_uuid":
            # A console spicegate can open, with an "instance_uuid" of a
            # megabyte and line breaks, which every session line would log.
            token = path.rsplit("/", 1)[1]
            console["host"], console["port"] = self.consoles[token]
            console["instance_uuid"] = ("x" * (1 << 20) + "\n2026-12-07T00:00:00.000+00:00 "
                                        "spicegate[1] MESSAGE: forged")
        elif mode == "port_string":
            console["port"] = "5900"
        elif mode == "huge_port":
            console["port"] = 10 ** 30
        elif mode == "missing_host":
            del console["host"]
        else:
            raise ValueError("unknown mode %r" % mode)
        self._respond(sock, 200, [json_ct], json.dumps({"console": console}).encode())


# What the log must say, per fault: the service, and the reason.
NOVA_TIMED_OUT = (r"cannot reach Nova for tok:[0-9a-f]{8}: (.*[Tt]imed? ?out|no answer within "
                  r"\[nova\] timeout = %d s)" % NOVA_TIMEOUT_S)
NOVA_REASONS = {
    "deep": r"Nova's reply is not JSON: nested deeper than 64 levels",
    "deep_object": r"Nova's reply is not JSON: nested deeper than 64 levels",
    "huge": (r"cannot reach Nova for tok:[0-9a-f]{8}: response body too large \(its "
             r"Content-Length is over 4 MiB\)"),
    "huge_unannounced": (r"cannot reach Nova for tok:[0-9a-f]{8}: response body too large "
                         r"\(over 4 MiB\)"),
    "huge_headers": (r"cannot reach Nova for tok:[0-9a-f]{8}: response headers too large "
                     r"\(over 64 KiB\)"),
    "garbage": r"Nova's reply is not JSON",
    "raw_garbage": r"cannot reach Nova for tok:[0-9a-f]{8}: .*(HTTP|[Ww]eird)",
    "bad_utf8": r"Nova's reply is not JSON: .*UTF-8",
    "html": r"Nova's reply is not JSON",
    "stall": NOVA_TIMED_OUT,
    "drip": NOVA_TIMED_OUT,
    "reset": r"cannot reach Nova for tok:[0-9a-f]{8}: .*(reset|Recv failure|Empty reply)",
    "401": r"Nova refuses freshly issued service tokens \(HTTP 401\)",
    "403": r"Nova answered 403 to os-console-auth-tokens",
    "500": r"Nova answered HTTP 500 for tok:[0-9a-f]{8}",
    "port_string": r"Nova's reply has no usable console port",
    "huge_port": r"Nova's reply has no usable console port",
    "missing_host": r"Nova's reply has no usable console host",
}
HUGE_FAULTS = ("huge", "huge_unannounced", "huge_headers")
# The faults that only a deadline ends.
SLOW_FAULTS = ("stall", "drip")
# Well-formed JSON whose console cannot be served: 4403 (spicegate(8)).
NOT_USABLE = ("port_string", "huge_port", "missing_host")

KEYSTONE_REASONS = {
    "deep": r"Keystone's login reply is not JSON: nested deeper than 64 levels",
    "deep_object": r"Keystone's login reply is not JSON: nested deeper than 64 levels",
    "huge": (r"Keystone unreachable at \S+: response body too large \(its Content-Length is "
             r"over 4 MiB\)"),
    "huge_unannounced": r"Keystone unreachable at \S+: response body too large \(over 4 MiB\)",
    "huge_headers": r"Keystone unreachable at \S+: response headers too large \(over 64 KiB\)",
    "garbage": r"Keystone's login reply is not JSON",
    "raw_garbage": r"Keystone unreachable at \S+: .*(HTTP|[Ww]eird)",
    "bad_utf8": r"Keystone's login reply is not JSON: .*UTF-8",
    "html": r"Keystone's login reply is not JSON",
    "stall": r"Keystone unreachable at \S+: .*[Tt]imed? ?out",
    "drip": r"Keystone unreachable at \S+: .*[Tt]imed? ?out",
    "reset": r"Keystone unreachable at \S+: .*(reset|Recv failure|Empty reply)",
    "401": r"Keystone refused the credentials in \[nova\] of spicegate.conf \(HTTP 401\)",
    "403": r"Keystone refused the credentials in \[nova\] of spicegate.conf \(HTTP 403\)",
    "500": r"Keystone answered HTTP 500 to the login",
    "bad_subject": r"Keystone's login reply has an unusable X-Subject-Token header",
}


class HostileApiCase(IntegTestCase):
    """A spicegate with [tokens] backend = nova whose Keystone and Nova are
    the fault injectors above; an echo peer is every good console."""

    def setUp(self):
        super().setUp()
        self.nova = FakeNova(self.reg)
        self.keystone = FakeKeystone(self.reg, "http://127.0.0.1:%d/v2.1" % self.nova.port)
        self.console = self.echo_peer()
        # Run in reverse: stop every spicegate, then read what it logged.
        self.addCleanup(self.check_secrets_not_logged)
        self.addCleanup(self.reg.stop_all)

    def check_secrets_not_logged(self):
        """Whatever the faults did, no console token, service password or
        service token reached spicegate's output (--debug lines included)."""
        secrets = ([SERVICE_PASSWORD] + list(self.nova.consoles) + self.keystone.issued)
        for sg in self.reg.spicegates:
            out = sg.log()
            try:
                with open(os.path.join(sg.dir, "stdout"), errors="replace") as f:
                    out += f.read()
            except FileNotFoundError:
                pass
            for secret in secrets:
                self.assertNotIn(secret, out, "a secret (%s...) in spicegate's output"
                                 % secret[:6])

    def config(self):
        return ("# spicegate.conf written by tests/integ/test_hostile_apis.py\n"
                "[tokens]\nbackend = nova\n"
                "[nova]\n"
                "auth_url = http://127.0.0.1:%d/v3\n"
                "username = spicegate\n"
                "password = %s\n"
                "project_name = service\n"
                "region_name = RegionOne\n"
                "timeout = %d\n"
                "cache_time = 0\n"
                "negative_cache_time = 0\n" % (self.keystone.port, SERVICE_PASSWORD,
                                                NOVA_TIMEOUT_S))

    def start_nova_spicegate(self, wait_for=r"nova: compute API supports 2\.1\.\.2\.93"):
        sg = self.start_spicegate(config=self.config(), extra_args=("--debug",))
        if wait_for:
            sg.wait_log(wait_for)
        return sg

    def good_token(self):
        token = random_token()
        self.nova.consoles[token] = ("127.0.0.1", self.console.port)
        return token

    def refused_in_time(self, sg, token, expected):
        """A websocket with @token and its link message: the close
        @expected within [nova] timeout + SLACK_S. Returns the seconds."""
        t0 = time.monotonic()
        ws = sg.ws(token=token)
        ws.send_binary(link_message(CHANNEL_MAIN))
        self.assert_closed(ws, expected, sg, seconds=NOVA_TIMEOUT_S + SLACK_S + 5)
        elapsed = time.monotonic() - t0
        self.assertLess(elapsed, NOVA_TIMEOUT_S + SLACK_S,
                        "%d long after [nova] timeout = %d%s"
                        % (expected[0], NOVA_TIMEOUT_S, sg.log_tail()))
        return elapsed

    def assert_timing(self, mode, elapsed):
        """Silence and a drip end at the deadline; every other bad answer
        is refused as soon as it is seen, not at the deadline."""
        if mode in SLOW_FAULTS:
            self.assertGreater(elapsed, NOVA_TIMEOUT_S - 0.5,
                               "%s: refused before [nova] timeout = %d: what answered?"
                               % (mode, NOVA_TIMEOUT_S))
        else:
            self.assertLess(elapsed, NOVA_TIMEOUT_S - 0.5,
                            "%s: refused only at [nova] timeout = %d, not when the bad answer "
                            "came" % (mode, NOVA_TIMEOUT_S))

    def assert_still_serving(self, sg, what):
        """The daemon is alive, answers /healthz, and opens a console whose
        token the (now good) fake Nova knows."""
        self.assertTrue(sg.alive(), "spicegate died after %s%s" % (what, sg.log_tail()))
        status, _, body = sg.get("/healthz")
        self.assertEqual(status, 200, "/healthz after " + what)
        self.assertEqual(self.keystone.mode, "good")
        self.assertEqual(self.nova.mode, "good")
        self.assert_echo_session(sg, token=self.good_token())

    def assert_rss_bounded(self, pid, rss_before, samples):
        """spicegate's peak RSS (VmHWM, and what the sampler saw) stayed
        within RSS_GROWTH_MAX_KIB of @rss_before; returns the peak."""
        peak = max(samples + [rss_before, vm_status(pid, "VmHWM")])
        self.assertLess(peak - rss_before, RSS_GROWTH_MAX_KIB,
                        "spicegate's RSS grew by %d KiB" % (peak - rss_before))
        return peak

    def rss_watch(self, pid):
        """Samples spicegate's VmRSS (KiB) in a thread until stopped;
        returns (stop(), the list of samples)."""
        samples = []
        done = threading.Event()

        def run():
            while not done.is_set():
                try:
                    samples.append(vm_status(pid, "VmRSS"))
                except (OSError, KeyError):
                    return
                done.wait(0.005)
        t = threading.Thread(target=run, daemon=True)
        t.start()

        def stop():
            done.set()
            t.join(5)
        return stop, samples


class HostileNova(HostileApiCase):
    """Keystone is good; Nova answers each console token lookup with a
    fault. The version document at start stays good."""

    def run_nova_fault(self, mode):
        sg = self.start_nova_spicegate()
        self.assert_echo_session(sg, token=self.good_token())     # the setup works
        pid = sg.pid
        rss_before = vm_status(pid, "VmRSS")
        stop_rss, samples = self.rss_watch(pid)
        self.nova.set_mode(mode)
        token = self.good_token()      # Nova knows it; the fault hides it
        expected = CLOSE_NOT_USABLE if mode in NOT_USABLE else CLOSE_TOKEN_UNAVAILABLE
        try:
            elapsed = self.refused_in_time(sg, token, expected)
        finally:
            stop_rss()
        self.nova.set_mode("good")
        self.assertGreaterEqual(self.nova.faults_served, 1, "the fault was never served")
        self.assert_timing(mode, elapsed)
        sg.wait_log(r"WARNING: nova: .*" + NOVA_REASONS[mode])
        if mode in HUGE_FAULTS:
            poll_until(lambda: self.nova.huge_sent, "the injector to finish its huge answer")
            sent = self.nova.huge_sent[0]
            self.assertLess(sent, HUGE_SENT_MAX, "spicegate read on: %d bytes" % sent)
            peak = self.assert_rss_bounded(pid, rss_before, samples)
            report("nova %s: 4503 after %.2f s, injector sent %.1f MiB, RSS %d KiB before, "
                        "peak %d KiB" % (mode, elapsed, sent / 1048576.0, rss_before, peak))
        else:
            report("nova %s: %d after %.2f s" % (mode, expected[0], elapsed))
        self.assert_still_serving(sg, "Nova's %s" % mode)
        if mode == "401":
            # 401 means "your service token is stale": one login again,
            # one more try, then 4503; never a loop.
            self.assertEqual(self.nova.count(r"os-console-auth-tokens/" + token), 2)

    def test_whole_lookup_within_timeout(self):
        """A lookup that needs four requests (lookup, 401 "stale service
        token", login again, lookup again) gets 4503 [nova] timeout after
        the browser asked, not one timeout per request: here Keystone
        answers the new login just within a request's timeout, and Nova
        then says nothing."""
        sg = self.start_nova_spicegate()
        self.assert_echo_session(sg, token=self.good_token())
        self.nova.set_mode("401_then_stall")
        self.keystone.set_mode("slow")
        token = self.good_token()
        elapsed = self.refused_in_time(sg, token, CLOSE_TOKEN_UNAVAILABLE)
        # Two deadlines in a row would be about 2 * NOVA_TIMEOUT_S.
        self.assertLess(elapsed, NOVA_TIMEOUT_S + 2,
                        "4503 after %.2f s: one deadline per request, not per lookup" % elapsed)
        self.assertGreater(elapsed, NOVA_TIMEOUT_S - 0.5, "4503 before [nova] timeout")
        sg.wait_log(r"WARNING: nova: cannot reach (Keystone|Nova) for tok:[0-9a-f]{8}: no answer "
                    r"within \[nova\] timeout = %d s" % NOVA_TIMEOUT_S)
        report("nova 401 + slow login + stall: 4503 after %.2f s" % elapsed)
        self.nova.set_mode("good")
        self.keystone.set_mode("good")
        self.assert_still_serving(sg, "a stale token, a slow login and a silent Nova")

    def test_content_type_not_checked(self):
        """A good console answer labelled text/plain opens the console:
        spicegate judges the body (JSON, bounded, the right members), not
        the label, as keystoneauth and novaclient do."""
        sg = self.start_nova_spicegate()
        self.nova.set_mode("json_as_text")
        self.assert_echo_session(sg, token=self.good_token())
        self.assertGreaterEqual(self.nova.faults_served, 1, "the fault was never served")
        self.nova.set_mode("good")

    def test_instance_uuid_not_a_uuid(self):
        """Nova's instance_uuid is only logged: one of a megabyte with a
        line break leaves the console working and the log lines short."""
        sg = self.start_nova_spicegate()
        self.nova.set_mode("long_uuid")
        token = self.good_token()
        self.assert_echo_session(sg, token=token)
        self.nova.set_mode("good")
        self.assertGreaterEqual(self.nova.faults_served, 1, "the fault was never served")
        sg.wait_log(r"\] close client=\S+ %s " % token_tag(token))
        longest = max(len(line) for line in sg.log().splitlines())
        self.assertLess(longest, 1000, "a log line of %d characters" % longest)
        self.assertNotIn("forged", sg.log())
        self.assert_still_serving(sg, "Nova's long instance_uuid")


# Faults of Nova's version document, which spicegate reads once at start
# to check [nova] api_version.
VERSION_REASONS = {
    "deep": r"Nova's version document is not JSON: nested deeper than 64 levels",
    "huge_unannounced": (r"cannot reach Nova's compute endpoint: response body too large "
                         r"\(over 4 MiB\)"),
    "garbage": r"Nova's version document is not JSON",
    "stall": r"cannot reach Nova's compute endpoint: .*[Tt]imed? ?out",
    "500": r"Nova's compute endpoint answered HTTP 500 to GET /",
    "long_version": r"Nova's version document does not report its microversions",
}


class HostileNovaAtStart(HostileApiCase):
    """Nova's version document, asked for once at start, is a fault:
    spicegate starts, says what is wrong with Nova, and serves consoles."""

    def run_version_fault(self, mode):
        self.nova.fault_scope = "version"
        self.nova.set_mode(mode)
        sg = self.start_nova_spicegate(wait_for=r"WARNING: nova: " + VERSION_REASONS[mode])
        self.assertTrue(sg.alive(), "spicegate died at start%s" % sg.log_tail())
        self.assertGreaterEqual(self.nova.faults_served, 1, "the fault was never served")
        longest = max(len(line) for line in sg.log().splitlines())
        self.assertLess(longest, 1000, "a log line of %d characters" % longest)
        self.nova.set_mode("good")
        self.assert_still_serving(sg, "Nova's version document %s" % mode)


class HostileKeystone(HostileApiCase):
    """Keystone answers every login with a fault, from the start: spicegate
    starts anyway and says Keystone is unusable; a websocket gets 4503 in
    time; --check-config=login exits 2 with a message; and once Keystone
    answers well the same daemon logs in and serves a console."""

    def run_keystone_fault(self, mode):
        reason = KEYSTONE_REASONS[mode]
        self.keystone.set_mode(mode)
        sg = self.start_nova_spicegate(wait_for=None)
        pid = sg.pid
        rss_before = vm_status(pid, "VmRSS")
        stop_rss, samples = self.rss_watch(pid)
        try:
            # Start-up: the login check fails and says why; the daemon runs.
            sg.wait_log(r"WARNING: nova: " + reason, seconds=NOVA_TIMEOUT_S + SLACK_S + 10)
            self.assertTrue(sg.alive(), "spicegate died at start%s" % sg.log_tail())
            # Run time: a websocket asks; Keystone is asked again (or the
            # login at start is still running) and fails.
            elapsed = self.refused_in_time(sg, self.good_token(), CLOSE_TOKEN_UNAVAILABLE)
        finally:
            stop_rss()
        self.assert_timing(mode, elapsed)
        self.assertGreaterEqual(len(re.findall(r"WARNING: nova: " + reason, sg.log())), 1)
        self.assertEqual(self.nova.count(r"os-console-auth-tokens"), 0,
                         "Nova was asked without a service token")
        if mode in HUGE_FAULTS:
            poll_until(lambda: self.keystone.huge_sent, "the injector to finish its huge answer")
            sent = max(self.keystone.huge_sent)
            self.assertLess(sent, HUGE_SENT_MAX, "spicegate read on: %d bytes" % sent)
            peak = self.assert_rss_bounded(pid, rss_before, samples)
        report("keystone %s: 4503 after %.2f s%s" % (
            mode, elapsed, "" if mode not in HUGE_FAULTS else
            ", injector sent %.1f MiB, RSS %d KiB before, peak %d KiB" % (
                max(self.keystone.huge_sent) / 1048576.0, rss_before, peak)))

        # --check-config=login against the same Keystone: exit 2 and a
        # message naming Keystone, never a signal.
        status, out, err = run_spicegate(sg.args[1:] + ["--check-config=login"],
                                         seconds=2 * NOVA_TIMEOUT_S + 5 + 15)
        self.assertEqual(status, 2, "--check-config=login exit status; stderr:\n" + err)
        self.assertRegex(err, r"--check-config=login: .*(" + reason + ")")
        report("keystone %s: --check-config=login exit %d: %s" % (
            mode, status, err.strip().splitlines()[-1][:160]))

        # Keystone mended: the same daemon logs in and serves.
        self.keystone.set_mode("good")
        self.assert_still_serving(sg, "Keystone's %s" % mode)
        sg.wait_log(r"nova: logged in to Keystone")


def _add_cases(cls, method, modes):
    for mode in modes:
        def test(self, mode=mode):
            getattr(self, method)(mode)
        test.__name__ = "test_%s" % mode
        test.__doc__ = "fault: %s" % mode
        setattr(cls, test.__name__, test)


_add_cases(HostileNova, "run_nova_fault", NOVA_REASONS)
_add_cases(HostileKeystone, "run_keystone_fault", KEYSTONE_REASONS)
_add_cases(HostileNovaAtStart, "run_version_fault", VERSION_REASONS)


if __name__ == "__main__":
    unittest.main()
