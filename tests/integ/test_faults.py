# SPDX-License-Identifier: Apache-2.0
"""Running short of file descriptors: the start-up limit, and accept()
that backs off (bounded CPU and log) and resumes when descriptors free."""

import re
import resource
import socket
import subprocess

from harness import (CHANNEL_MAIN, Deadline, IntegTestCase, cpu_seconds, http_request,
                     link_message, poll_until, random_token)


def nofile_limits(pid):
    """(soft, hard) 'Max open files' of @pid, from /proc."""
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
    raise AssertionError("no 'Max open files' in /proc/%d/limits" % pid)


class FdLimits(IntegTestCase):

    def test_soft_limit_raised_to_hard_at_start(self):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard <= 256:
            self.skipTest("hard descriptor limit %d is too low to see a raise" % hard)
        # spicegate inherits a soft limit of 256 from us, for this start only.
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        try:
            sg = self.start_spicegate({})
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        self.assertEqual(nofile_limits(sg.pid), (hard, hard))

    def test_accept_backs_off_when_descriptors_run_out(self):
        # With every descriptor taken, accept() fails with EMFILE while the
        # connection waits in the kernel's backlog, so the listening socket
        # stays readable: lws' own accept loop spun at full CPU and logged
        # every attempt (3.6 s of CPU in 5 s, 27 MB of lines in 23 s).
        # spicegate must back off, keep serving the consoles it has, log a
        # line or two, and serve again as soon as descriptors free up.
        peer = self.echo_peer()
        token = random_token()
        # The admin API's listening socket too: it must not spin either.
        sg = self.start_spicegate({token: peer.target}, config="[admin]\nlisten = 127.0.0.1:0\n")
        admin_port = int(sg.wait_log(r"admin API listening on 127\.0\.0\.1:(\d+)")[0])
        live = sg.ws(token=token)
        msg = link_message(CHANNEL_MAIN)
        live.send_binary(msg)
        self.assertEqual(live.recv_exact(len(msg)), msg)

        _, hard = nofile_limits(sg.pid)
        # The soft limit only: raising a hard limit back needs privileges.
        subprocess.run(["prlimit", "--pid", str(sg.pid), "--nofile=64:%d" % hard], check=True)
        held = []
        self.addCleanup(lambda: [s.close() for s in held])
        for _ in range(100):
            s = socket.socket()
            s.settimeout(5)
            s.connect(("127.0.0.1", sg.port))   # the kernel's backlog takes them
            held.append(s)
        poll_until(lambda: "cannot accept connections: Too many open files" in sg.log(),
                   "the line saying accept() ran out of descriptors")
        for _ in range(3):
            s = socket.socket()
            s.settimeout(5)
            s.connect(("127.0.0.1", admin_port))
            held.append(s)
        poll_until(lambda: "admin: cannot accept connections: Too many open files" in sg.log(),
                   "the admin API's line saying accept() ran out of descriptors")
        # An observation window, not a synchronisation: CPU and lines are
        # counted over 2 s of failing accepts.
        cpu_before, log_before = cpu_seconds(sg.pid), len(sg.log())
        window = Deadline(2.0)
        poll_until(window.expired, "2 s of failing accepts", 5, interval=0.2)
        cpu = cpu_seconds(sg.pid) - cpu_before
        lines = sg.log()[log_before:].splitlines()
        self.assertLess(cpu, 0.3, "%.2f s of CPU in 2 s without descriptors" % cpu
                        + sg.log_tail())
        self.assertLessEqual(len(lines), 1, "lines written in 2 s without descriptors: %r"
                             % lines[:5])
        self.assertEqual(re.findall(r"(?m) lws: .*", sg.log()), [])
        # The console that was open keeps working meanwhile.
        live.send_binary(msg)
        self.assertEqual(live.recv_exact(len(msg)), msg)

        for s in held:
            s.close()
        held.clear()
        # Without raising the limit again: the holders' descriptors are
        # enough, and accepting resumes when they close, not at a timer.
        poll_until(lambda: self._healthz(sg), "/healthz once descriptors are free", 3)
        self.assert_echo_session(sg, token=token)
        self.assertRegex(sg.log(), r"accepting connections again after [0-9.]+ s "
                                   r"\([0-9]+ failed attempts\)")
        poll_until(lambda: self._healthz(sg, "/metrics", admin_port), "the admin API again", 3)
        self.assertRegex(sg.log(), r"admin: accepting connections again after [0-9.]+ s")
        live.send_close()
        self.assertEqual(live.wait_close()[0], 1000)

    @staticmethod
    def _healthz(sg, target="/healthz", port=None):
        try:
            if port is not None:
                return http_request(port, target, timeout=2)[0] == 200
            return sg.get(target, timeout=2)[0] == 200
        except OSError:
            return False


def keepalive_timers(port):
    """{peer port: seconds left on the keepalive timer} of the established
    TCP connections whose local port is @port, from ss(8)."""
    out = subprocess.run(["ss", "-tnoH", "state", "established", "( sport = :%d )" % port],
                         capture_output=True, text=True, check=True).stdout
    timers = {}
    for line in out.splitlines():
        m = re.search(r":(\d+)\s+timer:\(keepalive,(?:(\d+)min)?(\d+)(?:\.\d+)?sec", line)
        if m:
            timers[int(m.group(1))] = int(m.group(2) or 0) * 60 + int(m.group(3))
    return timers


class Keepalive(IntegTestCase):
    """A browser that vanishes (no FIN, no RST: its machine or network
    went away) is found by TCP keepalive on every accepted connection,
    with one worker and with several: the kernel probes after 300 s
    without a byte (SG_KEEPALIVE_IDLE_S). lws' own per-connection
    validity timers, which did this before, are off (their sorted list
    made every new connection walk past the idle ones)."""

    def open_sessions(self, sg, token, n):
        """@n relaying sessions: each link message came back from the echo."""
        clients = [sg.ws(token=token) for _ in range(n)]
        msg = link_message(CHANNEL_MAIN)
        for ws in clients:
            ws.send_binary(msg)
        for ws in clients:
            self.assertEqual(ws.recv_exact(len(msg)), msg)
        return clients

    def assert_keepalive_on_browsers(self, sg, clients):
        local_ports = {c.sock.getsockname()[1] for c in clients}
        # ss shows one timer per socket: a retransmit timer hides the
        # keepalive one until the last bytes sent are acknowledged.
        timers = poll_until(lambda: (lambda t: local_ports <= set(t) and t)(
            keepalive_timers(sg.port)), "a keepalive timer on spicegate's side of %r"
            % sorted(local_ports))
        for port in local_ports:
            self.assertGreater(timers[port], 240, "keepalive idle time (s)")
            self.assertLessEqual(timers[port], 300, "keepalive idle time (s)")

    def test_one_worker(self):
        peer = self.echo_peer()
        token = "keepalive-one"
        sg = self.start_spicegate({token: peer.target})
        self.assert_keepalive_on_browsers(sg, self.open_sessions(sg, token, 3))

    def test_two_workers(self):
        peer = self.echo_peer()
        token = "keepalive-two"
        sg = self.start_spicegate({token: peer.target}, extra_args=["--workers", "2"])
        self.assert_keepalive_on_browsers(sg, self.open_sessions(sg, token, 4))
