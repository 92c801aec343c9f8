# SPDX-License-Identifier: Apache-2.0
"""Graceful drain ([server] drain_timeout) and what systemd is told.

SIGTERM: /healthz answers 503 at once on a connection still open, the
listening socket closes (a new instance binds the same port and serves
while the old one drains), live consoles keep relaying for up to
drain_timeout and are then closed with 1001; a console that ends by itself
just ends, and the last one out ends the process early. A second SIGTERM,
or SIGINT, stops at once. Each with one process and with two workers.

$NOTIFY_SOCKET: STATUS= follows the sessions open and the drain, WATCHDOG=1
comes every half WATCHDOG_USEC, STOPPING=1's EXTEND_TIMEOUT_USEC includes
the drain, and every message comes from the main PID (SO_PASSCRED), never
from a worker. The test owns the socket, as systemd would."""

import os
import re
import signal
import socket
import struct
import subprocess
import time
import unittest

from harness import (
    CHANNEL_MAIN, CLOSE_SHUTDOWN, LINK_ERR_OK, SPICE_MSG_MAIN_INIT, TOP_BUILDDIR, WAIT_S,
    Deadline, IntegTestCase, QemuTestCase, SpiceClient, children, open_echo, poll_until,
    random_token, read_http_body, read_http_head, parse_http_head, still_relays,
)

# How late a deadline may be kept on a loaded 2-core CI machine.
SLACK_S = 4.0


class KeepAlive:
    """One HTTP/1.1 connection kept open across requests, as a load
    balancer's health checks or a browser reuse theirs."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=WAIT_S)

    def get(self, target="/healthz"):
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % target).encode())
        head, leftover = read_http_head(self.sock, bytearray())
        status, _, headers = parse_http_head(head)
        return status, read_http_body(self.sock, headers, leftover)

    def close(self):
        self.sock.close()


def serving_pid(port, sock):
    """The pid of the process holding the server side of @sock, a
    connection to 127.0.0.1:@port, from ss(8)."""
    client_port = sock.getsockname()[1]
    out = subprocess.run(["ss", "-tnpH", "state", "established",
                          "( sport = :%d and dport = :%d )" % (port, client_port)],
                         capture_output=True, text=True, check=True).stdout
    m = re.search(r"pid=(\d+)", out)
    if m is None:
        raise AssertionError("no process serves :%d from :%d: %r" % (port, client_port, out))
    return int(m.group(1))


def port_free(port):
    """Whether a new listening socket can bind 127.0.0.1:@port (with
    SO_REUSEADDR, as spicegate binds): nothing listens there any more."""
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen(1)
        return True
    except OSError:
        return False
    finally:
        s.close()


class DrainBase:
    """The tests, for one process (WORKERS None) and for workers."""

    WORKERS = None

    def setUp(self):
        super().setUp()
        self.peer = self.echo_peer()
        self.token = random_token()

    def start(self, drain_s, **kw):
        args = ("--workers", str(self.WORKERS)) if self.WORKERS else ()
        sg = self.start_spicegate({self.token: self.peer.target},
                                  config="[server]\ndrain_timeout = %d\n" % drain_s,
                                  extra_args=args, **kw)
        if self.WORKERS:
            poll_until(lambda: len(children(sg.pid)) == self.WORKERS, "the workers")
        return sg

    def wait_draining(self, sg, n_sessions):
        """Waits for the line saying the drain started (the master's with
        workers): the first signal has been handled."""
        if self.WORKERS:
            sg.wait_log(r"draining: %d worker\(s\)" % self.WORKERS)
        else:
            sg.wait_log(r"draining: %d session\(s\) keep relaying" % n_sessions)

    def test_consoles_relay_through_the_drain_then_1001(self):
        drain_s = 8
        sg = self.start(drain_s)
        health = self.reg.add(KeepAlive(sg.port))
        self.assertEqual(health.get(), (200, b"ok\n"))
        consoles = [open_echo(sg, self.token) for _ in range(4)]
        if self.WORKERS:
            # A worker with no console ends at once when the drain starts,
            # and its connections with it: the 503 is asked of a worker
            # that holds one.
            hp = serving_pid(sg.port, health.sock)
            while hp not in [serving_pid(sg.port, ws.sock) for ws in consoles]:
                self.assertLess(len(consoles), 40, "no console reached worker %d" % hp)
                consoles.append(open_echo(sg, self.token))

        start = time.monotonic()
        sg.send_signal(signal.SIGTERM)
        # At once: 503 on the connection already open (polled: the signal
        # is handled on the daemon's loop), files still served.
        poll_until(lambda: health.get() == (503, b"draining\n"), "/healthz to say 503")
        self.assertEqual(health.get("/spice_auto.html")[0], 200)
        # The port is let go: a new instance binds it and serves.
        poll_until(lambda: port_free(sg.port), "the port to be free")
        args = ("--workers", str(self.WORKERS)) if self.WORKERS else ()
        new = self.start_spicegate({self.token: self.peer.target},
                                   listen="127.0.0.1:%d" % sg.port, extra_args=args)
        self.assertEqual(new.port, sg.port)
        fresh = open_echo(new, self.token)
        self.assertTrue(still_relays(fresh, b"through the new instance"))
        self.assertTrue(sg.alive(), "the old instance did not drain" + sg.log_tail())
        # The old consoles still relay, both ways, during the drain.
        for i, ws in enumerate(consoles):
            self.assertTrue(still_relays(ws, b"draining %d" % i), sg.log_tail())
        self.assertLess(time.monotonic() - start, drain_s,
                        "too slow to check the drain before it ended")

        # drain_timeout over: 1001, which the page turns into a reconnect.
        for ws in consoles:
            code, reason, _ = ws.wait_close(drain_s + SLACK_S)
            self.assertEqual((code, reason), CLOSE_SHUTDOWN, sg.log_tail())
        elapsed = time.monotonic() - start
        self.assertGreater(elapsed, drain_s - 0.5, "closed before drain_timeout")
        self.assertLess(elapsed, drain_s + SLACK_S, "closed long after drain_timeout")
        self.assertEqual(sg.wait_exit(), 0, sg.log_tail())
        if not self.WORKERS:
            sg.wait_log(r"drain over: closing %d session\(s\)" % len(consoles))
        # The new instance is untouched.
        self.assertTrue(still_relays(fresh, b"still here"), new.log_tail())

    def second_signal_test(self, sig):
        sg = self.start(600)
        consoles = [open_echo(sg, self.token) for _ in range(2)]
        sg.send_signal(signal.SIGTERM)
        self.wait_draining(sg, 2)
        for ws in consoles:
            self.assertTrue(still_relays(ws), sg.log_tail())
        start = time.monotonic()
        sg.send_signal(sig)
        for ws in consoles:
            code, reason, _ = ws.wait_close(SLACK_S + 3)
            self.assertEqual((code, reason), CLOSE_SHUTDOWN, sg.log_tail())
        self.assertEqual(sg.wait_exit(), 0, sg.log_tail())
        self.assertLess(time.monotonic() - start, SLACK_S + 3)

    def test_second_sigterm_stops_at_once(self):
        self.second_signal_test(signal.SIGTERM)

    def test_sigint_during_the_drain_stops_at_once(self):
        self.second_signal_test(signal.SIGINT)

    def test_sigint_does_not_drain(self):
        sg = self.start(600)
        ws = open_echo(sg, self.token)
        start = time.monotonic()
        sg.send_signal(signal.SIGINT)
        code, reason, _ = ws.wait_close(SLACK_S + 3)
        self.assertEqual((code, reason), CLOSE_SHUTDOWN, sg.log_tail())
        self.assertEqual(sg.wait_exit(), 0, sg.log_tail())
        self.assertLess(time.monotonic() - start, SLACK_S + 3)

    def test_the_last_console_out_ends_the_process(self):
        sg = self.start(600)
        first, second = open_echo(sg, self.token), open_echo(sg, self.token)
        start = time.monotonic()
        sg.send_signal(signal.SIGTERM)
        self.wait_draining(sg, 2)
        # One ends by itself: the other relays on, the process stays.
        first.send_close(1000)
        first.wait_close()
        self.assertTrue(still_relays(second), sg.log_tail())
        self.assertTrue(sg.alive())
        second.send_close(1000)
        second.wait_close()
        self.assertEqual(sg.wait_exit(), 0, sg.log_tail())
        self.assertLess(time.monotonic() - start, WAIT_S)

    def test_no_console_no_wait(self):
        sg = self.start(600)
        start = time.monotonic()
        sg.send_signal(signal.SIGTERM)
        self.assertEqual(sg.wait_exit(), 0, sg.log_tail())
        self.assertLess(time.monotonic() - start, SLACK_S + 3)


class NotifySocket:
    """$NOTIFY_SOCKET as systemd binds it, with the sender's credentials."""

    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.pids = set()

    def recv(self, deadline):
        """(pid, {field: value}) of the next message."""
        self.sock.settimeout(max(deadline.remaining(), 0.01))
        try:
            data, ancdata, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        except socket.timeout:
            raise AssertionError("no message on $NOTIFY_SOCKET") from None
        pid = None
        for level, kind, value in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("iII", value[:12])[0]
        self.pids.add(pid)
        lines = data.decode().split("\n")
        return pid, dict(line.split("=", 1) for line in lines if line)

    def wait_for(self, predicate, what, seconds=WAIT_S):
        """Reads messages until one satisfies @predicate; returns it and
        how many WATCHDOG=1 came meanwhile."""
        deadline = Deadline(seconds)
        pings = 0
        while True:
            try:
                _, state = self.recv(deadline)
            except AssertionError:
                raise AssertionError("no message with %s on $NOTIFY_SOCKET" % what) from None
            if predicate(state):
                return state, pings
            pings += state.get("WATCHDOG") == "1"

    def close(self):
        self.sock.close()


def built_stop_settings():
    """(TimeoutStopSec of the built unit, drain_timeout's and
    shutdown_timeout's defaults from the built sample configuration)."""
    with open(os.path.join(TOP_BUILDDIR, "conf", "spicegate.service")) as f:
        unit = int(re.search(r"^TimeoutStopSec=(\d+)$", f.read(), re.M).group(1))
    with open(os.path.join(TOP_BUILDDIR, "conf", "spicegate.conf")) as f:
        text = f.read()
    drain = int(re.search(r"^#drain_timeout = (\d+)$", text, re.M).group(1))
    shutdown = int(re.search(r"^#shutdown_timeout = (\d+)$", text, re.M).group(1))
    return unit, drain, shutdown


class NotifyBase:

    WORKERS = None

    def test_status_watchdog_and_stop_time(self):
        path = os.path.join(self.tmp, "notify")
        notify = self.reg.add(NotifySocket(path))
        peer = self.echo_peer()
        token = random_token()
        drain_s = 120
        env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="400000")
        env.pop("WATCHDOG_PID", None)
        args = ("--workers", str(self.WORKERS)) if self.WORKERS else ()
        sg = self.start_spicegate({token: peer.target}, env=env, extra_args=args,
                                  config="[server]\ndrain_timeout = %d\n" % drain_s)
        notify.wait_for(lambda s: s.get("READY") == "1", "READY=1")
        notify.wait_for(lambda s: s.get("STATUS") == "serving: 0 session(s) open",
                        "the first STATUS=")
        # WATCHDOG=1 every 200 ms (half of WATCHDOG_USEC), from the loop.
        start = time.monotonic()
        for _ in range(5):
            notify.wait_for(lambda s: s.get("WATCHDOG") == "1", "WATCHDOG=1", seconds=2)
        self.assertGreater(time.monotonic() - start, 0.5, "WATCHDOG=1 more often than asked")

        consoles = [open_echo(sg, token) for _ in range(3)]
        notify.wait_for(lambda s: s.get("STATUS") == "serving: 3 session(s) open",
                        "STATUS= with 3 sessions")
        consoles.pop().send_close(1000)
        notify.wait_for(lambda s: s.get("STATUS") == "serving: 2 session(s) open",
                        "STATUS= with 2 sessions")

        unit_s, default_drain_s, default_shutdown_s = built_stop_settings()
        sg.send_signal(signal.SIGTERM)
        state, _ = notify.wait_for(lambda s: "STOPPING" in s, "STOPPING=1")
        self.assertEqual(state["STOPPING"], "1")
        self.assertEqual(int(state["EXTEND_TIMEOUT_USEC"]),
                         (unit_s - default_drain_s + drain_s) * 1000000,
                         "the stop time systemd is asked for must include the drain")
        notify.wait_for(
            lambda s: s.get("STATUS", "").startswith("draining: 2 session(s) open, no new "
                                                     "ones; closed with 1001 after "
                                                     "drain_timeout (120 s)"),
            "STATUS= saying draining")
        # The watchdog goes on during the drain.
        _, pings = notify.wait_for(lambda s: s.get("WATCHDOG") == "1", "WATCHDOG=1 draining")
        for ws in consoles:
            self.assertTrue(still_relays(ws))
            ws.send_close(1000)
            ws.wait_close()
        self.assertEqual(sg.wait_exit(), 0, sg.log_tail())
        # The main PID speaks for all (the workers unset $NOTIFY_SOCKET).
        self.assertEqual(notify.pids, {sg.pid})


class Drain(DrainBase, IntegTestCase):
    pass


class DrainWithWorkers(DrainBase, IntegTestCase):
    WORKERS = 2


class Notify(NotifyBase, IntegTestCase):
    pass


class NotifyWithWorkers(NotifyBase, IntegTestCase):
    WORKERS = 2


class DrainWithQemu(QemuTestCase):
    """A real SPICE console keeps working through the drain: its main
    channel links before SIGTERM and authenticates, and QEMU answers,
    during it."""

    def test_spice_console_works_during_the_drain(self):
        token = random_token()
        drain_s = 6
        sg = self.start_spicegate({token: self.qemu_target},
                                  config="[server]\ndrain_timeout = %d\n" % drain_s)
        main = SpiceClient(sg.ws(token=token))
        self.assertEqual(main.link(CHANNEL_MAIN).error, LINK_ERR_OK)
        start = time.monotonic()
        sg.send_signal(signal.SIGTERM)
        sg.wait_log(r"draining: 1 session\(s\) keep relaying")
        self.assertEqual(main.auth(), LINK_ERR_OK)
        main.wait_message(SPICE_MSG_MAIN_INIT)
        self.assertLess(time.monotonic() - start, drain_s)
        code, reason, _ = main.stream.wait_close(drain_s + SLACK_S, max_bytes=0)
        self.assertEqual((code, reason), CLOSE_SHUTDOWN)
        self.assertGreater(time.monotonic() - start, drain_s - 0.5)
        self.assertEqual(sg.wait_exit(), 0, sg.log_tail())


if __name__ == "__main__":
    unittest.main()
