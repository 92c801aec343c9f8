# SPDX-License-Identifier: Apache-2.0
"""harness.py - what the integration tests stand on.

Starts the real spicegate and QEMU's real SPICE server, speaks RFC 6455 and
the SPICE link protocol from scratch (standard library only), and offers a
few fake TCP peers for fault injection. Every child process, socket and
thread it starts is owned by a Registry that the test case tears down, even
when the test fails.

Nothing here waits by sleeping a fixed time: every wait is a poll or a
blocking call bounded by a Deadline.
"""

import base64
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import unittest

# ---------------------------------------------------------------------------
# Where things are. `make check` exports these; the defaults let a developer
# run `python3 -m unittest` by hand from an in-tree build.

HERE = os.path.dirname(os.path.abspath(__file__))
TOP_SRCDIR = os.environ.get("top_srcdir") or os.path.dirname(os.path.dirname(HERE))
TOP_BUILDDIR = os.environ.get("top_builddir") or TOP_SRCDIR
SPICEGATE = os.environ.get("SPICEGATE") or os.path.join(TOP_BUILDDIR, "spicegate")
SPICE_HTML5 = "/usr/share/spice-html5"
PAGES = os.path.join(TOP_SRCDIR, "web")
QEMU = "qemu-system-x86_64"
KEEP = os.environ.get("SG_INTEG_KEEP") == "1"   # keep temp dirs for post-mortems

# Default bound for any single wait. Generous: CI machines have 2 cores.
WAIT_S = 15.0

# ---------------------------------------------------------------------------
# Close codes and reasons from CONTRACTS.md.

CLOSE_NORMAL = (1000, "console closed")
CLOSE_SHUTDOWN = (1001, "spicegate shutting down")
CLOSE_TEXT = (1003, "text frames are not supported")
CLOSE_INTERNAL = (1011, "internal error")
CLOSE_NOT_LINK = (4400, "not a SPICE link message")
CLOSE_NO_TOKEN = (4401, "no console token")
CLOSE_ORIGIN = (4403, "origin not allowed")
CLOSE_CHANNEL_REFUSED = (4403, "SPICE channel not allowed here")
CLOSE_BAD_TOKEN = (4404, "console token invalid or expired")
CLOSE_TOKEN_REVOKED = (4404, "console token revoked")
CLOSE_LINK_TIMEOUT = (4408, "timed out waiting for the SPICE link message")
CLOSE_IDLE = (4408, "console idle for too long")
CLOSE_PING_TIMEOUT = (4408, "no answer to pings")
CLOSE_ADMIN = (4409, "closed by an administrator")
CLOSE_LIMIT_TOTAL = (4429, "too many consoles open, try again later")
CLOSE_LIMIT_ADDRESS = (4429, "too many consoles from this address")
CLOSE_LIMIT_CONSOLE = (4429, "too many connections to this console")
CLOSE_UNREACHABLE = (4502, "console unreachable")
CLOSE_TOKEN_UNAVAILABLE = (4503, "token check unavailable, try again")
CLOSE_CONNECT_TIMEOUT = (4504, "console connect timed out")
CLOSE_UPSTREAM_TLS = (4525, "console TLS verification failed")
CLOSE_TLS_PORT_UNKNOWN = (4526, "console needs TLS, TLS port unknown")
# Not a code on the wire (RFC 6455 7.1.5): the TCP connection ended with no
# close frame.
CLOSE_ABNORMAL = 1006


class Deadline:
    """A point in time that bounded waits count down to."""

    def __init__(self, seconds=WAIT_S):
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def remaining(self):
        return max(0.0, self.end - time.monotonic())

    def expired(self):
        return time.monotonic() >= self.end


def recv_notify(sock, seconds=WAIT_S):
    """The next sd_notify message on @sock (a bound AF_UNIX datagram
    socket, as systemd's $NOTIFY_SOCKET) as a dict, skipping those that
    carry STATUS= alone: spicegate sends those whenever the sessions open
    change (test_drain.py checks them). Raises AssertionError when none
    comes in time."""
    deadline = Deadline(seconds)
    while True:
        sock.settimeout(max(deadline.remaining(), 0.01))
        try:
            data = sock.recv(4096).decode()
        except socket.timeout:
            raise AssertionError("no message on $NOTIFY_SOCKET within %.1fs" % seconds)
        state = dict(line.split("=", 1) for line in data.split("\n") if line)
        if set(state) != {"STATUS"}:
            return state


def poll_until(predicate, what, seconds=WAIT_S, interval=0.02):
    """Calls @predicate until it returns something true, and returns that;
    raises AssertionError naming @what once @seconds have passed."""
    deadline = Deadline(seconds)
    while True:
        value = predicate()
        if value:
            return value
        if deadline.expired():
            raise AssertionError("timed out after %.1fs waiting for %s" % (seconds, what))
        time.sleep(interval)


def children(pid):
    """The PIDs whose parent is @pid (the workers of a master)."""
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: split after it.
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            kids.append(int(entry))
    return sorted(kids)


def random_token():
    """A long random console token: a prefix of it in a log would be news."""
    return os.urandom(24).hex()


def token_tag(token):
    """What CONTRACTS.md says a log may show of a token."""
    return "tok:" + hashlib.sha256(token.encode()).hexdigest()[:8]


# ---------------------------------------------------------------------------
# Process and resource registry.

# If the test runner itself is killed, its children must go too: each child
# is started through util-linux's setpriv, which sets PR_SET_PDEATHSIG and
# execs it (same pid). Not a preexec_fn: running Python between fork and
# exec in a process with threads (the fake peers) can deadlock the child.
_SETPRIV = shutil.which("setpriv")


def _with_pdeathsig(args):
    if _SETPRIV is None:
        return list(args)
    return [_SETPRIV, "--pdeathsig", "KILL", "--"] + list(args)


class Registry:
    """Owns every child process and closable thing a test starts.

    stop_all() terminates processes (SIGTERM, then SIGKILL after a deadline)
    and closes everything else, newest first. Test cases call it from
    addCleanup/addClassCleanup, so it runs even when the test fails."""

    def __init__(self):
        self._procs = []
        self._closables = []
        self.spicegates = []     # for the log checks after a test

    def spawn(self, args, stdout_path=None, stderr_path=None, env=None):
        out = open(stdout_path, "wb") if stdout_path else subprocess.DEVNULL
        err = open(stderr_path, "wb") if stderr_path else subprocess.DEVNULL
        try:
            proc = subprocess.Popen(_with_pdeathsig(args), stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=err, env=env, close_fds=True)
        finally:
            for f in (out, err):
                if f is not subprocess.DEVNULL:
                    f.close()
        self._procs.append(proc)
        return proc

    def add(self, closable):
        """Registers anything with a close() method; returns it."""
        self._closables.append(closable)
        return closable

    @staticmethod
    def stop_process(proc, sig=signal.SIGTERM, seconds=10.0):
        """Sends @sig, waits up to @seconds, then SIGKILLs. Returns the exit
        status (negative: killed by that signal)."""
        if proc.poll() is None:
            try:
                proc.send_signal(sig)
                proc.wait(timeout=seconds)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            except ProcessLookupError:
                pass
        return proc.wait()

    def stop_all(self):
        while self._closables:
            item = self._closables.pop()
            try:
                item.close()
            except Exception:
                pass
        while self._procs:
            self.stop_process(self._procs.pop(), seconds=5.0)


def vm_status(pid, field):
    """A field of /proc/PID/status in KiB (VmRSS, VmHWM, ...)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise KeyError(field)


# ---------------------------------------------------------------------------
# Byte streams. SpiceClient talks through anything with send(bytes) and
# recv_exact(n): a plain TCP socket (straight to QEMU) or a websocket.

class StreamClosed(Exception):
    """The peer ended the byte stream."""


class TcpStream:
    def __init__(self, host, port, timeout=WAIT_S):
        self.sock = socket.create_connection((host, port), timeout=timeout)

    def send(self, data):
        self.sock.sendall(data)

    def recv_exact(self, n):
        chunks = []
        while n > 0:
            chunk = self.sock.recv(n)
            if not chunk:
                raise StreamClosed("TCP peer closed")
            chunks.append(chunk)
            n -= len(chunk)
        return b"".join(chunks)

    def close(self):
        self.sock.close()


# ---------------------------------------------------------------------------
# WebSocket client (RFC 6455), written out so that every byte is ours to
# choose: odd subprotocol lists, missing headers, text frames, raw aborts.

WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
_DEFAULT = object()


class HandshakeRefused(Exception):
    """The server answered the upgrade with something other than 101."""

    def __init__(self, status, reason, headers, body):
        super().__init__("HTTP %d %s" % (status, reason))
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body


class WsClosed(Exception):
    """A close frame arrived (code 1005 when it had no code), or the TCP
    connection ended without one (code CLOSE_ABNORMAL)."""

    def __init__(self, code, reason):
        super().__init__("websocket closed: %d %r" % (code, reason))
        self.code = code
        self.reason = reason


class ProtocolError(Exception):
    """The server broke RFC 6455."""


def _mask(payload, key):
    n = len(payload)
    if n == 0:
        return b""
    # One big-integer XOR is far faster than a Python loop over bytes.
    keystream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(keystream, "little")).to_bytes(
        n, "little")


def read_http_head(sock, buf, limit=65536):
    """Reads until the end of an HTTP head; returns (head bytes, leftover)."""
    while b"\r\n\r\n" not in buf:
        if len(buf) > limit:
            raise ProtocolError("HTTP head larger than %d bytes" % limit)
        chunk = sock.recv(4096)
        if not chunk:
            raise StreamClosed("connection closed during the HTTP head (%d bytes: %r)"
                               % (len(buf), bytes(buf[:200])))
        buf += chunk
    end = buf.index(b"\r\n\r\n") + 4
    return bytes(buf[:end]), bytes(buf[end:])


def parse_http_head(head):
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"HTTP/1\.[01] (\d{3}) ?(.*)", lines[0])
    if not m:
        raise ProtocolError("bad status line %r" % lines[0])
    headers = {}
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        name = name.strip().lower()
        value = value.strip()
        # Repeated headers are joined, as RFC 9110 allows for lists.
        headers[name] = headers[name] + ", " + value if name in headers else value
    return int(m.group(1)), m.group(2), headers


def read_http_body(sock, headers, leftover, limit=16 << 20):
    body = bytearray(leftover)
    if "content-length" in headers:
        want = int(headers["content-length"])
        while len(body) < want:
            chunk = sock.recv(min(65536, want - len(body)))
            if not chunk:
                break
            body += chunk
        return bytes(body[:want])
    if headers.get("transfer-encoding", "").lower() == "chunked":
        out = bytearray()
        while True:
            while b"\r\n" not in body:
                chunk = sock.recv(65536)
                if not chunk:
                    return bytes(out)
                body += chunk
            line, _, rest = bytes(body).partition(b"\r\n")
            size = int(line.split(b";")[0], 16)
            body = bytearray(rest)
            while len(body) < size + 2:
                chunk = sock.recv(65536)
                if not chunk:
                    return bytes(out + body)
                body += chunk
            if size == 0:
                return bytes(out)
            out += body[:size]
            body = body[size + 2:]
    while len(body) < limit:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, socket.timeout):
            break
        if not chunk:
            break
        body += chunk
    return bytes(body)


class WsClient:
    """One websocket connection, as a browser (or a misbehaving one) makes it.

    Defaults mimic spice-html5: path /websockify, subprotocol "binary", an
    Origin equal to the Host. Pass origin=None to send no Origin, source= to
    connect from another local address (127.0.0.2, ...), token= to
    put the token in the query string, cookie= for a raw Cookie header."""

    def __init__(self, port, host="127.0.0.1", path="/websockify", query=None, token=None,
                 subprotocols=("binary",), origin=_DEFAULT, cookie=None, host_header=None,
                 extra_headers=(), ssl_context=None, server_hostname=None, timeout=WAIT_S,
                 omit_key=False, rcvbuf=None, source=None):
        self.port = port
        self.host = host
        self.timeout = timeout
        self.protocol = None
        self.response_headers = {}
        self.close_code = None
        self.close_reason = None
        self.pongs = []
        self.pings = []              # when each of the server's pings was read (monotonic)
        # Frames go out whole: a pong answered while reading must not land
        # inside a frame another thread is sending.
        self._send_lock = threading.Lock()
        self._close_sent = False
        self._rbuf = bytearray()
        self._data = bytearray()     # binary payload not yet handed to recv_exact()
        if host_header is None:
            host_header = "%s:%d" % (host if ":" not in host else "[%s]" % host, port)
        if origin is _DEFAULT:
            origin = ("https://" if ssl_context else "http://") + host_header
        qs = []
        if token is not None:
            qs.append("token=" + token)
        if query:
            qs.append(query)
        target = path + ("?" + "&".join(qs) if qs else "")

        sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(timeout)
        try:
            if source is not None:
                # Another client address: any 127.x.y.z is this host's.
                sock.bind((source, 0))
            sock.connect((host, port))
            if ssl_context is not None:
                sock = ssl_context.wrap_socket(sock, server_hostname=server_hostname or host)
        except BaseException:
            sock.close()
            raise
        self.sock = sock

        key = base64.b64encode(os.urandom(16))
        lines = ["GET %s HTTP/1.1" % target, "Host: " + host_header,
                 "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Version: 13"]
        if not omit_key:
            lines.append("Sec-WebSocket-Key: " + key.decode())
        if subprotocols:
            lines.append("Sec-WebSocket-Protocol: " + ", ".join(subprotocols))
        if origin is not None:
            lines.append("Origin: " + origin)
        if cookie is not None:
            lines.append("Cookie: " + cookie)
        lines.extend(extra_headers)
        try:
            self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            try:
                head, leftover = read_http_head(self.sock, bytearray())
            except (StreamClosed, ConnectionResetError) as e:
                # Status 0: no HTTP answer at all, the connection just ended.
                raise HandshakeRefused(0, "no response (%s)" % e, {}, b"") from None
            status, reason, headers = parse_http_head(head)
            self.response_headers = headers
            if status != 101:
                body = read_http_body(self.sock, headers, leftover, limit=1 << 20)
                raise HandshakeRefused(status, reason, headers, body)
            expect = base64.b64encode(hashlib.sha1(key + WS_GUID).digest()).decode()
            if headers.get("sec-websocket-accept") != expect:
                raise ProtocolError("bad Sec-WebSocket-Accept %r (want %r)"
                                    % (headers.get("sec-websocket-accept"), expect))
            if headers.get("upgrade", "").lower() != "websocket":
                raise ProtocolError("101 without Upgrade: websocket")
            self.protocol = headers.get("sec-websocket-protocol")
            if self.protocol is not None and self.protocol not in (subprotocols or ()):
                raise ProtocolError("server picked subprotocol %r, offered %r"
                                    % (self.protocol, subprotocols))
            if subprotocols and self.protocol is None:
                raise ProtocolError("server answered no subprotocol to %r" % (subprotocols,))
            self._rbuf += leftover
        except BaseException:
            self.sock.close()
            raise

    # -- sending -------------------------------------------------------------

    def send_frame(self, opcode, payload=b"", fin=True, mask=True, rsv=0):
        n = len(payload)
        head = bytearray([(0x80 if fin else 0) | (rsv << 4) | opcode])
        mbit = 0x80 if mask else 0
        if n < 126:
            head.append(mbit | n)
        elif n < 65536:
            head.append(mbit | 126)
            head += struct.pack("!H", n)
        else:
            head.append(mbit | 127)
            head += struct.pack("!Q", n)
        if mask:
            key = os.urandom(4)
            head += key
            payload = _mask(payload, key)
        with self._send_lock:
            self.sock.sendall(bytes(head) + payload)

    def send_binary(self, data):
        self.send_frame(OP_BINARY, data)

    def send(self, data):   # the byte-stream interface SpiceClient uses
        self.send_frame(OP_BINARY, data)

    def send_text(self, text):
        self.send_frame(OP_TEXT, text.encode())

    def send_close(self, code=1000, reason=""):
        if not self._close_sent:
            self._close_sent = True
            self.send_frame(OP_CLOSE, struct.pack("!H", code) + reason.encode())

    # -- receiving -----------------------------------------------------------

    def _fill(self, n):
        while len(self._rbuf) < n:
            try:
                chunk = self.sock.recv(max(65536, n - len(self._rbuf)))
            except (ConnectionResetError, BrokenPipeError):
                chunk = b""
            if not chunk:
                self.close_code, self.close_reason = CLOSE_ABNORMAL, ""
                raise WsClosed(CLOSE_ABNORMAL, "")
            self._rbuf += chunk

    def _take(self, n):
        self._fill(n)
        out = bytes(self._rbuf[:n])
        del self._rbuf[:n]
        return out

    def recv_frame(self):
        """One raw frame: (fin, opcode, payload). Server frames are never
        masked (RFC 6455 5.1)."""
        b0, b1 = self._take(2)
        if b1 & 0x80:
            raise ProtocolError("masked frame from the server")
        if b0 & 0x70:
            raise ProtocolError("RSV bits set without an extension: %#x" % b0)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._take(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._take(8))[0]
        return bool(b0 & 0x80), b0 & 0x0F, self._take(n)

    def recv_message(self):
        """The next data message as (opcode, payload), reassembling
        fragments and answering pings on the way. A close frame raises
        WsClosed after echoing it."""
        opcode = None
        parts = []
        while True:
            fin, op, payload = self.recv_frame()
            if op == OP_PING:
                self.pings.append(time.monotonic())
                self.send_frame(OP_PONG, payload)
                continue
            if op == OP_PONG:
                self.pongs.append(payload)
                continue
            if op == OP_CLOSE:
                if len(payload) >= 2:
                    code = struct.unpack("!H", payload[:2])[0]
                    reason = payload[2:].decode("utf-8", "replace")
                else:
                    code, reason = 1005, ""
                self.close_code, self.close_reason = code, reason
                try:
                    self.send_close(code if code != 1005 else 1000)
                except OSError:
                    pass
                raise WsClosed(code, reason)
            if op == OP_CONT:
                if opcode is None:
                    raise ProtocolError("continuation frame with nothing to continue")
            elif op in (OP_TEXT, OP_BINARY):
                if opcode is not None:
                    raise ProtocolError("new data frame inside a fragmented message")
                opcode = op
            else:
                raise ProtocolError("unknown opcode %#x" % op)
            parts.append(payload)
            if fin:
                return opcode, b"".join(parts)

    def wait_pong(self, payload, seconds=WAIT_S):
        """Reads until a pong carrying @payload has arrived, keeping any
        binary data for recv_exact(). (RFC 6455 5.5.3 lets a peer answer
        only the latest of several pings, so count no more than that.)"""
        self.sock.settimeout(seconds)
        try:
            while payload not in self.pongs:
                _fin, op, payload = self.recv_frame()
                if op == OP_PONG:
                    self.pongs.append(payload)
                elif op == OP_PING:
                    self.pings.append(time.monotonic())
                    self.send_frame(OP_PONG, payload)
                elif op in (OP_BINARY, OP_CONT):
                    self._data += payload
                elif op == OP_CLOSE:
                    self.close_code = struct.unpack("!H", payload[:2])[0] if payload else 1005
                    raise WsClosed(self.close_code, payload[2:].decode("utf-8", "replace"))
                else:
                    raise ProtocolError("opcode %#x while waiting for pongs" % op)
        except socket.timeout:
            raise AssertionError("no pong %r after %.0fs (got %d others)"
                                 % (payload, seconds, len(self.pongs)))
        finally:
            self.sock.settimeout(self.timeout)

    def recv_exact(self, n):
        """@n bytes of the binary stream, whatever the frame boundaries."""
        while len(self._data) < n:
            op, payload = self.recv_message()
            if op != OP_BINARY:
                raise ProtocolError("text message from the server: %r" % payload[:100])
            self._data += payload
        out = bytes(self._data[:n])
        del self._data[:n]
        return out

    def recv_some(self):
        """Whatever binary bytes are buffered, or the next message's."""
        if not self._data:
            op, payload = self.recv_message()
            if op != OP_BINARY:
                raise ProtocolError("text message from the server: %r" % payload[:100])
            return payload
        out = bytes(self._data)
        self._data.clear()
        return out

    def wait_close(self, seconds=WAIT_S, max_bytes=1 << 20):
        """Reads until the close: returns (code, reason, binary bytes seen
        before it). Raises AssertionError if nothing closes in time."""
        data = bytearray(self._data)
        self._data.clear()
        self.sock.settimeout(seconds)
        try:
            while True:
                op, payload = self.recv_message()
                if len(data) < max_bytes:
                    data += payload
        except WsClosed as e:
            return e.code, e.reason, bytes(data)
        except socket.timeout:
            raise AssertionError("no close within %.1fs (got %d bytes)" % (seconds, len(data)))
        finally:
            try:
                self.sock.settimeout(self.timeout)
            except OSError:
                pass

    def abort(self, reset=False):
        """Drops the TCP connection without a close frame, like a browser
        tab that crashed (FIN) or a network that failed (reset=True: RST)."""
        if reset:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def http_request(port, target, method="GET", host="127.0.0.1", headers=(), ssl_context=None,
                 server_hostname=None, timeout=WAIT_S, host_header=None, source=None):
    """One raw HTTP/1.1 request with Connection: close, the target sent
    exactly as given (no normalisation), from the local address @source if
    given. Returns (status, headers, body)."""
    sock = socket.create_connection((host, port), timeout=timeout,
                                    source_address=(source, 0) if source else None)
    try:
        if ssl_context is not None:
            sock = ssl_context.wrap_socket(sock, server_hostname=server_hostname or host)
        if host_header is None:
            host_header = "%s:%d" % (host if ":" not in host else "[%s]" % host, port)
        lines = ["%s %s HTTP/1.1" % (method, target), "Host: " + host_header,
                 "Connection: close"] + list(headers)
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        head, leftover = read_http_head(sock, bytearray())
        status, reason, hdrs = parse_http_head(head)
        body = b"" if method == "HEAD" else read_http_body(sock, hdrs, leftover)
        return status, hdrs, body
    finally:
        sock.close()


# ---------------------------------------------------------------------------
# SPICE link protocol (spice-protocol's protocol.h; all little-endian).

SPICE_MAGIC = b"REDQ"
SPICE_VERSION = (2, 2)
CHANNEL_MAIN, CHANNEL_DISPLAY, CHANNEL_INPUTS, CHANNEL_CURSOR = 1, 2, 3, 4
CHANNEL_PLAYBACK, CHANNEL_RECORD = 5, 6
CHANNEL_NAMES = {1: "main", 2: "display", 3: "inputs", 4: "cursor", 5: "playback", 6: "record"}
CAP_AUTH_SELECTION, CAP_AUTH_SPICE, CAP_AUTH_SASL, CAP_MINI_HEADER = 0, 1, 2, 3
LINK_ERR_OK = 0
LINK_ERR_BAD_CONNECTION_ID = 8
SPICE_TICKET_PUBKEY_BYTES = 162
SPICE_MSG_SET_ACK, SPICE_MSG_PING = 3, 4
SPICE_MSG_MAIN_INIT = 103
SPICE_MSG_INPUTS_INIT = 101
SPICE_MSGC_DISPLAY_INIT = 101
LINK_MESS_SIZE = 18          # packed SpiceLinkMess, the caps follow it
LINK_REPLY_SIZE = 4 + SPICE_TICKET_PUBKEY_BYTES + 12
DEFAULT_COMMON_CAPS = (1 << CAP_AUTH_SELECTION) | (1 << CAP_AUTH_SPICE) | (1 << CAP_MINI_HEADER)


def link_message(channel_type, channel_id=0, connection_id=0,
                 common_caps=(DEFAULT_COMMON_CAPS,), channel_caps=(), magic=SPICE_MAGIC,
                 version=SPICE_VERSION):
    """SpiceLinkHeader + SpiceLinkMess + caps, as a client sends it."""
    caps = b"".join(struct.pack("<I", c) for c in list(common_caps) + list(channel_caps))
    body = struct.pack("<IBBIII", connection_id, channel_type, channel_id,
                       len(common_caps), len(channel_caps), LINK_MESS_SIZE) + caps
    return struct.pack("<4sIII", magic, version[0], version[1], len(body)) + body


class LinkReply:
    def __init__(self, major, minor, error, pub_key, common_caps, channel_caps):
        self.major = major
        self.minor = minor
        self.error = error
        self.pub_key = pub_key
        self.common_caps = common_caps
        self.channel_caps = channel_caps

    def has_common_cap(self, cap):
        word = cap // 32
        return word < len(self.common_caps) and bool(self.common_caps[word] & (1 << cap % 32))


def read_link_reply(stream):
    """Reads SpiceLinkHeader + SpiceLinkReply from @stream and checks its
    shape (ProtocolError if it is not one)."""
    magic, major, minor, size = struct.unpack("<4sIII", stream.recv_exact(16))
    if magic != SPICE_MAGIC:
        raise ProtocolError("link reply magic %r" % magic)
    if not LINK_REPLY_SIZE <= size <= 4096:
        raise ProtocolError("link reply size %d" % size)
    body = stream.recv_exact(size)
    error = struct.unpack_from("<I", body, 0)[0]
    pub_key = body[4:4 + SPICE_TICKET_PUBKEY_BYTES]
    ncommon, nchannel, offset = struct.unpack_from("<III", body, 4 + SPICE_TICKET_PUBKEY_BYTES)
    if offset + 4 * (ncommon + nchannel) > size:
        raise ProtocolError("link reply caps past its end")
    caps = struct.unpack_from("<%dI" % (ncommon + nchannel), body, offset)
    return LinkReply(major, minor, error, pub_key, list(caps[:ncommon]), list(caps[ncommon:]))


def _der_read(buf, pos):
    """One DER TLV at @pos: (tag, value, next position)."""
    tag = buf[pos]
    n = buf[pos + 1]
    pos += 2
    if n & 0x80:
        nbytes = n & 0x7F
        n = int.from_bytes(buf[pos:pos + nbytes], "big")
        pos += nbytes
    return tag, buf[pos:pos + n], pos + n


def rsa_public_key(spki):
    """(n, e) from a DER SubjectPublicKeyInfo, the form SPICE sends."""
    tag, seq, _ = _der_read(spki, 0)
    if tag != 0x30:
        raise ProtocolError("public key is not a DER sequence")
    _, _algo, pos = _der_read(seq, 0)
    tag, bits, _ = _der_read(seq, pos)
    if tag != 0x03 or bits[0] != 0:
        raise ProtocolError("public key has no bit string")
    _, rsakey, _ = _der_read(bits, 1)
    _, n, pos = _der_read(rsakey, 0)
    _, e, _ = _der_read(rsakey, pos)
    return int.from_bytes(n, "big"), int.from_bytes(e, "big")


def _mgf1_sha1(seed, length):
    out = b""
    counter = 0
    while len(out) < length:
        out += hashlib.sha1(seed + struct.pack(">I", counter)).digest()
        counter += 1
    return out[:length]


def rsa_oaep_sha1_encrypt(spki, message):
    """RSAES-OAEP (RFC 8017 7.1) with SHA-1 and MGF1-SHA-1, as spice-server
    decrypts tickets with RSA_PKCS1_OAEP_PADDING."""
    n, e = rsa_public_key(spki)
    k = (n.bit_length() + 7) // 8
    hlen = 20
    if len(message) > k - 2 * hlen - 2:
        raise ValueError("message too long for OAEP")
    db = hashlib.sha1(b"").digest() + b"\0" * (k - len(message) - 2 * hlen - 2) + b"\1" + message
    seed = os.urandom(hlen)
    masked_db = bytes(a ^ b for a, b in zip(db, _mgf1_sha1(seed, k - hlen - 1)))
    masked_seed = bytes(a ^ b for a, b in zip(seed, _mgf1_sha1(masked_db, hlen)))
    em = b"\0" + masked_seed + masked_db
    return pow(int.from_bytes(em, "big"), e, n).to_bytes(k, "big")


class SpiceClient:
    """The client side of one SPICE channel over a byte stream."""

    def __init__(self, stream):
        self.stream = stream
        self.reply = None
        self.common_caps = None
        self.mini_header = False

    def send_link(self, channel_type, channel_id=0, connection_id=0,
                  common_caps=(DEFAULT_COMMON_CAPS,), channel_caps=()):
        self.common_caps = list(common_caps)
        self.stream.send(link_message(channel_type, channel_id, connection_id,
                                      common_caps, channel_caps))

    def read_reply(self):
        self.reply = read_link_reply(self.stream)
        return self.reply

    def link(self, channel_type, channel_id=0, connection_id=0,
             common_caps=(DEFAULT_COMMON_CAPS,), channel_caps=()):
        """Sends the link message and returns the server's LinkReply."""
        self.send_link(channel_type, channel_id, connection_id, common_caps, channel_caps)
        return self.read_reply()

    def _we_have(self, cap):
        word = cap // 32
        return word < len(self.common_caps) and bool(self.common_caps[word] & (1 << cap % 32))

    def auth(self, password=""):
        """Sends the RSA-OAEP encrypted ticket (password + NUL, as
        spice-html5 does) and returns the 4-byte link result."""
        out = b""
        if self._we_have(CAP_AUTH_SELECTION) and self.reply.has_common_cap(CAP_AUTH_SELECTION):
            out += struct.pack("<I", CAP_AUTH_SPICE)
        out += rsa_oaep_sha1_encrypt(self.reply.pub_key, password.encode() + b"\0")
        self.stream.send(out)
        result = struct.unpack("<I", self.stream.recv_exact(4))[0]
        self.mini_header = (self._we_have(CAP_MINI_HEADER)
                            and self.reply.has_common_cap(CAP_MINI_HEADER))
        return result

    def read_message(self):
        """(type, payload) of the next message after auth."""
        if self.mini_header:
            mtype, size = struct.unpack("<HI", self.stream.recv_exact(6))
        else:
            _serial, mtype, size, _sub = struct.unpack("<QHII", self.stream.recv_exact(18))
        if size > 64 << 20:
            raise ProtocolError("message of %d bytes" % size)
        return mtype, self.stream.recv_exact(size)

    def send_message(self, mtype, payload=b""):
        if self.mini_header:
            head = struct.pack("<HI", mtype, len(payload))
        else:
            head = struct.pack("<QHII", 0, mtype, len(payload), 0)
        self.stream.send(head + payload)

    def wait_message(self, wanted_type, limit=64):
        """Reads messages until one of @wanted_type; returns its payload and
        the list of types seen before it."""
        seen = []
        for _ in range(limit):
            mtype, payload = self.read_message()
            if mtype == wanted_type:
                return payload, seen
            seen.append(mtype)
        raise ProtocolError("no message %d among the first %d: %r" % (wanted_type, limit, seen))


def spice_connect_main(stream, password=""):
    """Links and authenticates a main channel; returns (client, session_id)."""
    client = SpiceClient(stream)
    reply = client.link(CHANNEL_MAIN, channel_caps=(1 << 2,))  # AGENT_CONNECTED_TOKENS
    if reply.error != LINK_ERR_OK:
        raise ProtocolError("main link error %d" % reply.error)
    result = client.auth(password)
    if result != LINK_ERR_OK:
        raise ProtocolError("main auth result %d" % result)
    payload, _ = client.wait_message(SPICE_MSG_MAIN_INIT)
    return client, struct.unpack_from("<I", payload, 0)[0]


# ---------------------------------------------------------------------------
# QEMU with its SPICE server, and its QMP monitor.

def pick_port():
    """A port that was free a moment ago. Only for QEMU, whose -spice port
    must be concrete: between close() here and QEMU's bind() another process
    could take it, in which case Qemu.start() sees QEMU fail and retries
    with a new port."""
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


class QmpClient:
    def __init__(self, path, timeout=WAIT_S):
        # QEMU may be listening on its SPICE ports before its monitor's
        # socket accepts (seen once in CI: refused): try until it does.
        deadline = Deadline(timeout)
        while True:
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.settimeout(timeout)
            try:
                self.sock.connect(path)
                break
            except (ConnectionRefusedError, FileNotFoundError):
                self.sock.close()
                if deadline.expired():
                    raise
                time.sleep(0.05)
        self.file = self.sock.makefile("rwb")
        self.events = []         # events read past while waiting for replies
        # QEMU 7.2 can hand a new monitor client an event meant for the
        # client before it (its single-client chardev flushes what was
        # queued), ahead of the greeting: skip events until the greeting.
        greeting = self._read()
        while "event" in greeting:
            greeting = self._read()
        if "QMP" not in greeting:
            raise ProtocolError("no QMP greeting: %r" % greeting)
        self.execute("qmp_capabilities")

    def _read(self):
        line = self.file.readline()
        if not line:
            raise StreamClosed("QMP closed")
        return json.loads(line)

    def execute(self, command, arguments=None):
        msg = {"execute": command}
        if arguments:
            msg["arguments"] = arguments
        self.file.write(json.dumps(msg).encode() + b"\n")
        self.file.flush()
        while True:
            reply = self._read()
            if "event" in reply:
                self.events.append(reply)
                continue
            if "error" in reply:
                raise RuntimeError("QMP %s: %r" % (command, reply["error"]))
            return reply["return"]

    def query_spice(self):
        return self.execute("query-spice")

    def spice_channels(self):
        """[(channel-type, channel-id, connection-id, port), ...]"""
        # QEMU reports connection-id as a signed 32-bit number.
        return sorted((c["channel-type"], c["channel-id"], c["connection-id"] & 0xFFFFFFFF,
                       c["port"])
                      for c in self.query_spice().get("channels", []))

    def close(self):
        try:
            self.file.close()
        finally:
            self.sock.close()


class Qemu:
    """A diskless QEMU whose only interesting part is its SPICE server
    (QXL display, no ticketing) on 127.0.0.1."""

    def __init__(self, registry, workdir, x509_dir=None, tls_channel=None, extra_args=(),
                 env=None):
        """@x509_dir (ca-cert.pem, server-cert.pem, server-key.pem): a TLS
        port too (.tls_port); @tls_channel: QEMU's tls-channel= ("default":
        every channel refused on the plain port with NEED_SECURED);
        @extra_args: devices beyond the QXL display; @env: None for the
        tests' environment."""
        self.registry = registry
        self.workdir = workdir
        self.x509_dir = x509_dir
        self.tls_channel = tls_channel
        self.extra_args = list(extra_args)
        self.env = env
        self.proc = None
        self.port = None
        self.tls_port = None
        self.qmp_path = os.path.join(workdir, "qmp.sock")
        self.stderr_path = os.path.join(workdir, "qemu.stderr")

    def start(self, attempts=5):
        last = ""
        for _ in range(attempts):
            port = pick_port()
            spice = "port=%d,addr=127.0.0.1,disable-ticketing=on" % port
            tls_port = None
            if self.x509_dir is not None:
                tls_port = pick_port()
                spice += ",tls-port=%d,x509-dir=%s" % (tls_port, self.x509_dir)
                if self.tls_channel is not None:
                    spice += ",tls-channel=%s" % self.tls_channel
            if os.path.exists(self.qmp_path):
                os.unlink(self.qmp_path)
            proc = self.registry.spawn(
                [QEMU, "-machine", "pc,accel=tcg", "-m", "128", "-vga", "qxl",
                 "-display", "none", "-nodefaults", "-no-user-config",
                 "-spice", spice,
                 "-qmp", "unix:%s,server=on,wait=off" % self.qmp_path] + self.extra_args,
                stderr_path=self.stderr_path, env=self.env)
            if self._wait_ready(proc, port) and (tls_port is None
                                                 or self._wait_ready(proc, tls_port)):
                self.proc, self.port, self.tls_port = proc, port, tls_port
                return self
            Registry.stop_process(proc, seconds=5.0)
            with open(self.stderr_path, errors="replace") as f:
                last = f.read()
        raise RuntimeError("QEMU did not start after %d attempts:\n%s" % (attempts, last))

    @staticmethod
    def _wait_ready(proc, port):
        deadline = Deadline(30.0)   # TCG start-up on a loaded 2-core box
        while not deadline.expired():
            if proc.poll() is not None:
                return False   # most likely the port was taken: retry
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1.0).close()
                return True
            except OSError:
                time.sleep(0.05)
        return False

    def close(self):
        if self.proc is not None:
            Registry.stop_process(self.proc)


# ---------------------------------------------------------------------------
# spicegate itself.

class Spicegate:
    """One spicegate daemon on 127.0.0.1 and a kernel-chosen port.

    @tokens: {token: "host:port"} written to the token file; @token_lines
    adds raw lines. @config: text of a --config file. stderr goes to a
    file that tests read for log assertions."""

    count = 0

    def __init__(self, registry, workdir, tokens=None, token_lines=(), config=None,
                 extra_args=(), web=SPICE_HTML5, pages=PAGES, listen="127.0.0.1:0",
                 port_file=True, env=None):
        Spicegate.count += 1
        self.registry = registry
        registry.spicegates.append(self)
        self.dir = os.path.join(workdir, "sg%d" % Spicegate.count)
        os.makedirs(self.dir)
        self.token_path = os.path.join(self.dir, "tokens")
        self.port_path = os.path.join(self.dir, "port")
        self.stderr_path = os.path.join(self.dir, "stderr")
        self.config_path = None
        self.write_tokens(tokens or {}, token_lines)
        self.args = [SPICEGATE, "--listen", listen, "--token-file", self.token_path,
                     "--web", web, "--pages", pages]
        if port_file:
            self.args += ["--port-file", self.port_path]
        if config is not None:
            self.config_path = os.path.join(self.dir, "spicegate.conf")
            with open(self.config_path, "w") as f:
                f.write(config)
            self.args += ["--config", self.config_path]
        self.args += list(extra_args)
        self.env = env
        self.proc = None
        self.port = None

    def write_tokens(self, tokens, token_lines=()):
        tmp = self.token_path + ".tmp"
        with open(tmp, "w") as f:
            f.write("# written by the integration tests\n")
            for tok, target in tokens.items():
                f.write("%s: %s\n" % (tok, target))
            for line in token_lines:
                f.write(line + "\n")
        os.replace(tmp, self.token_path)

    def start(self, poll_interval=0.02):
        """Starts the daemon and returns once the port file is complete.
        @poll_interval 0 reacts at once (for races right after readiness)."""
        self.proc = self.registry.spawn(self.args, stderr_path=self.stderr_path, env=self.env,
                                        stdout_path=os.path.join(self.dir, "stdout"))
        deadline = Deadline()
        while True:
            try:
                with open(self.port_path) as f:
                    text = f.read()
                if text.endswith("\n"):
                    self.port = int(text)
                    return self
            except FileNotFoundError:
                pass
            if self.proc.poll() is not None:
                raise AssertionError("spicegate exited with status %d before listening:\n%s"
                                     % (self.proc.returncode, self.log()))
            if deadline.expired():
                raise AssertionError("spicegate wrote no port file within %.0fs:\n%s"
                                     % (deadline.seconds, self.log()))
            time.sleep(poll_interval)

    @property
    def pid(self):
        return self.proc.pid

    def log(self):
        try:
            with open(self.stderr_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def log_tail(self, lines=40):
        state = ""
        if self.proc is not None and self.proc.poll() is not None:
            state = " (spicegate exited with status %d)" % self.proc.returncode
        return ("\n--- spicegate stderr (tail)%s ---\n" % state
                + "\n".join(self.log().splitlines()[-lines:]))

    def wait_log(self, pattern, seconds=WAIT_S, count=1):
        """Polls the captured stderr until @pattern (a regex) matches at
        least @count times; returns the matches."""
        rx = re.compile(pattern)

        def found():
            m = rx.findall(self.log())
            return m if len(m) >= count else None
        try:
            return poll_until(found, "log line /%s/" % pattern, seconds)
        except AssertionError as e:
            raise AssertionError(str(e) + self.log_tail()) from None

    def send_signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, seconds=10.0):
        return Registry.stop_process(self.proc, sig, seconds)

    def wait_exit(self, seconds=WAIT_S):
        try:
            return self.proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            raise AssertionError("spicegate still running after %.0fs%s"
                                 % (seconds, self.log_tail())) from None

    def alive(self):
        return self.proc.poll() is None

    def ws(self, **kw):
        """A connected WsClient; the caller's Registry closes it."""
        return self.registry.add(WsClient(self.port, **kw))

    def get(self, target, **kw):
        return http_request(self.port, target, **kw)


def run_spicegate(args, seconds=WAIT_S):
    """Runs spicegate to completion (config errors, --version): returns
    (status, stdout, stderr), or raises AssertionError if it keeps running."""
    proc = subprocess.Popen(_with_pdeathsig([SPICEGATE] + list(args)), stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError("spicegate %s still running after %.0fs; stderr:\n%s"
                             % (" ".join(args), seconds, err.decode(errors="replace")))
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


# ---------------------------------------------------------------------------
# Fake SPICE servers for fault injection. These exist only because a real
# SPICE server cannot misbehave on demand (close mid-stream, stall, reset,
# flood); every test that needs a well-behaved server uses QEMU.

class PeerConn:
    """What a fake peer saw on one accepted connection."""

    def __init__(self, sock):
        self.sock = sock
        self.link = None                   # the link message bytes, when read
        self.link_read = threading.Event()
        self.received = 0                  # bytes after the link
        self.sha = hashlib.sha256()        # ... and their digest
        self.sent = 0
        self.eof = threading.Event()       # the other side closed (or reset)
        self.stalled = threading.Event()   # a send made no progress for a while
        self.sent_all = threading.Event()  # send_all() got everything out
        self.done = threading.Event()      # the handler finished
        self.go = threading.Event()        # for handlers that wait to be told
        self.error = None

    def read_link(self):
        """Reads one SpiceLinkHeader + body (size capped at 4096)."""
        head = self._recv_exact(16)
        size = struct.unpack_from("<I", head, 12)[0]
        self.link = head + self._recv_exact(min(size, 4096))
        self.link_read.set()
        return self.link

    def _recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise StreamClosed("peer's client closed")
            buf += chunk
        return buf

    def sink(self, limit=None):
        """Reads until EOF (or @limit bytes), hashing what arrives."""
        try:
            while limit is None or self.received < limit:
                chunk = self.sock.recv(1 << 16)
                if not chunk:
                    break
                self.received += len(chunk)
                self.sha.update(chunk)
        except OSError:
            pass
        if limit is None or self.received < limit:
            self.eof.set()

    def send_all(self, data, chunk_sizes=(1 << 16,), stall_after=3.0):
        """Sends @data in chunks cycling through @chunk_sizes. A send that
        cannot make progress for @stall_after seconds sets .stalled and
        keeps trying (nothing is lost: send() either sends or times out)."""
        self.sock.settimeout(stall_after)
        view = memoryview(data)
        pos = 0
        i = 0
        while pos < len(data):
            size = chunk_sizes[i % len(chunk_sizes)]
            i += 1
            end = min(len(data), pos + size)
            while pos < end:
                try:
                    pos += self.sock.send(view[pos:end])
                    self.sent = pos
                except socket.timeout:
                    self.stalled.set()
                except OSError:
                    return False
        self.sent_all.set()
        return True


class FakePeer:
    """A TCP server on 127.0.0.1:0 (or @host) running @handler(conn) in a thread for
    each accepted connection. close() stops it and closes every socket."""

    def __init__(self, registry, handler, name="fake", host="127.0.0.1"):
        self.handler = handler
        self.name = name
        self.conns = []
        self.accepted = threading.Semaphore(0)
        self.lsock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        self.lsock.bind((host, 0))
        self.lsock.listen(64)
        self.port = self.lsock.getsockname()[1]
        self.target = ("[%s]:%d" if ":" in host else "%s:%d") % (host, self.port)
        self._closed = False
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()
        registry.add(self)

    def _accept_loop(self):
        while not self._closed:
            try:
                sock, _ = self.lsock.accept()
            except OSError:
                return
            conn = PeerConn(sock)
            self.conns.append(conn)
            self.accepted.release()
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn):
        try:
            self.handler(conn)
        except Exception as e:   # reported through conn.error, checked by tests
            conn.error = e
        finally:
            conn.done.set()

    def wait_conn(self, seconds=WAIT_S, index=None):
        """The next accepted connection (or the @index'th)."""
        if not self.accepted.acquire(timeout=seconds):
            raise AssertionError("%s peer: no connection within %.0fs" % (self.name, seconds))
        return self.conns[index if index is not None else len(self.conns) - 1]

    def close(self):
        self._closed = True
        try:
            self.lsock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.lsock.close()
        for conn in self.conns:
            conn.go.set()     # so that no handler thread waits forever
            try:
                # shutdown() wakes a thread blocked in recv(); close() alone
                # would not.
                conn.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.sock.close()


def echo_handler(conn):
    """Echoes every byte, link message included."""
    try:
        while True:
            chunk = conn.sock.recv(1 << 16)
            if not chunk:
                break
            conn.received += len(chunk)
            conn.sock.sendall(chunk)
            conn.sent += len(chunk)
    except OSError:
        pass
    conn.eof.set()


def close_immediately_handler(conn):
    conn.sock.close()


def close_after_handler(payload):
    """Reads the link, sends @payload, then closes cleanly (FIN)."""
    def handler(conn):
        conn.read_link()
        conn.sock.sendall(payload)
        conn.sent = len(payload)
        conn.sock.shutdown(socket.SHUT_WR)
        conn.sink()       # read until spicegate closes its side too
        conn.sock.close()
    return handler


def reset_handler(payload=b""):
    """Reads the link, sends @payload, then resets the connection (RST)."""
    def handler(conn):
        conn.read_link()
        if payload:
            conn.sock.sendall(payload)
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.sock.close()
    return handler


def open_echo(sg, token):
    """A relaying session to an echo peer."""
    ws = sg.ws(token=token)
    msg = link_message(CHANNEL_MAIN)
    ws.send_binary(msg)
    assert ws.recv_exact(len(msg)) == msg
    return ws


def still_relays(ws, data=b"are you there"):
    ws.send_binary(data)
    return ws.recv_exact(len(data)) == data


def cpu_seconds(pid):
    """User plus system CPU time of @pid so far, from /proc/PID/stat."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of the whole line (1-based).
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

def stall_handler(conn):
    """Accepts and then neither reads nor writes; watches for EOF only
    when told (conn.go), so that the receive buffer fills up."""
    conn.go.wait()
    conn.sink()


def sink_source_handler(send_data, chunk_sizes=(1 << 16,)):
    """Reads the link; then hashes everything that arrives while sending
    @send_data (in chunks cycling through @chunk_sizes) once conn.go is set."""
    def handler(conn):
        conn.read_link()
        reader = threading.Thread(target=conn.sink, daemon=True)
        reader.start()
        conn.go.wait()
        conn.send_all(send_data, chunk_sizes)
        reader.join()
    return handler


def pattern(seed, n):
    """@n deterministic pseudo-random bytes."""
    return random.Random(seed).randbytes(n)


def make_cert(directory, cn="localhost"):
    """A throw-away self-signed certificate and key; returns (cert, key)."""
    cert = os.path.join(directory, "cert.pem")
    key = os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=" + cn, "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", key, "-out", cert],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=60)
    return cert, key


# ---------------------------------------------------------------------------
# Test case bases.

BAD_LOG_LINE = re.compile(r"\] CRITICAL: |\] ERROR: |\"level\":\"(?:critical|error)\"|"
                          r"-CRITICAL \*\*|-ERROR \*\*|ERROR: AddressSanitizer|"
                          r"runtime error: |ERROR: LeakSanitizer")


class IntegTestCase(unittest.TestCase):
    """Per test: a Registry and a temp dir, both cleaned up even on
    failure. Helpers start spicegate and check sessions."""

    def setUp(self):
        self.reg = Registry()
        self.tmp = tempfile.mkdtemp(prefix="sg-integ-")
        # Cleanups run last-in first-out: stop everything, then read the
        # logs, and only then remove the directory that holds them.
        if not KEEP:
            self.addCleanup(_rmtree, self.tmp)
        self.addCleanup(self.check_daemon_logs)
        self.addCleanup(self.reg.stop_all)

    def check_daemon_logs(self):
        """No spicegate of this test logged a programming error: GLib
        criticals (failed g_return_if_fail), sanitizer reports, crashes."""
        for sg in self.reg.spicegates:
            bad = [line for line in sg.log().splitlines() if BAD_LOG_LINE.search(line)]
            self.assertEqual(bad, [], "spicegate logged a programming error" + sg.log_tail())
            if sg.proc is not None:
                # stop_all() sent SIGTERM (unless the test stopped it):
                # anything but 0 is a crash or a hang that needed SIGKILL.
                self.assertEqual(sg.proc.returncode, 0,
                                 "spicegate's exit status at the end of the test"
                                 + sg.log_tail())

    def start_spicegate(self, tokens=None, **kw):
        sg = Spicegate(self.reg, self.tmp, tokens, **kw).start()
        self.sg_last = sg
        return sg

    def echo_peer(self):
        return FakePeer(self.reg, echo_handler, "echo")

    def assert_closed(self, ws, expected, sg=None, seconds=WAIT_S, data_ok=False):
        """Waits for the close and checks (code, reason) == @expected
        (a reason of None checks the code only). Returns the bytes seen."""
        code, reason, data = ws.wait_close(seconds)
        exp_code, exp_reason = expected
        tail = sg.log_tail() if sg else ""
        self.assertEqual(code, exp_code, "close code (reason %r)%s" % (reason, tail))
        if exp_reason is not None:
            self.assertEqual(reason, exp_reason, "close reason" + tail)
        if not data_ok:
            self.assertEqual(data, b"", "binary data before the close")
        return data

    def assert_echo_session(self, sg, **ws_kw):
        """A good session through @sg to an echo peer (@ws_kw carries the
        token): the link message goes through and comes back byte-exact."""
        ws = sg.ws(**ws_kw)
        msg = link_message(CHANNEL_MAIN)
        ws.send_binary(msg)
        try:
            got = ws.recv_exact(len(msg))
        except WsClosed as e:
            self.fail("good session closed: %d %r%s" % (e.code, e.reason, sg.log_tail()))
        self.assertEqual(got, msg)
        ws.send_close()
        code, _, _ = ws.wait_close()
        self.assertEqual(code, 1000)
        return ws

    def assert_refused(self, sg, expected, send=None, **ws_kw):
        """Opens a websocket with @ws_kw (optionally sending @send first)
        and expects the close @expected, with no bytes before it."""
        ws = sg.ws(**ws_kw)
        if send is not None:
            ws.send_binary(send)
        return self.assert_closed(ws, expected, sg)


def _rmtree(path):
    shutil.rmtree(path, ignore_errors=True)


class QemuTestCase(IntegTestCase):
    """A QEMU of its own for every test. setUp proves the SPICE helpers
    against it directly, so a failure later points at spicegate, not at
    the harness.

    Not one QEMU per class: QEMU 7.2's SPICE server tears a client down
    after its sockets close, and a new console linking meanwhile has
    crashed it (SIGSEGV, "got disconnected while connecting channel"), or
    left its monitor unanswered, more often on a loaded machine. A fresh
    QEMU costs a fraction of a second and no test inherits another's
    teardown."""

    # For subclasses: more QEMU arguments (devices that add SPICE
    # channels), and variables added to QEMU's environment.
    qemu_args = ()
    qemu_env = None

    def setUp(self):
        super().setUp()
        env = dict(os.environ, **self.qemu_env) if self.qemu_env else None
        self.qemu = self.reg.add(Qemu(self.reg, self.tmp, extra_args=self.qemu_args, env=env).start())
        self.qemu_target = "127.0.0.1:%d" % self.qemu.port
        stream = TcpStream("127.0.0.1", self.qemu.port)
        try:
            spice_connect_main(stream)
        finally:
            stream.close()
        self.addCleanup(self.assert_qemu_alive, "after the test")
        qmp = QmpClient(self.qemu.qmp_path)
        try:
            poll_until(lambda: not qmp.spice_channels(),
                       "QEMU to drop the probe's channels")
        finally:
            qmp.close()

    def assert_qemu_alive(self, when):
        """QEMU must outlive every test: if it dies, say so with its stderr
        rather than leave later tests to fail on a refused connection."""
        if self.qemu.proc.poll() is not None:
            with open(self.qemu.stderr_path, errors="replace") as f:
                err = f.read()
            raise AssertionError("QEMU exited with status %d %s:\n%s"
                                 % (self.qemu.proc.returncode, when, err[-3000:]))
