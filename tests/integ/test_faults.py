# SPDX-License-Identifier: Apache-2.0
"""Running short of file descriptors: the start-up limit, and accept()
that backs off (bounded CPU and log) and resumes when descriptors free."""

import re
import resource
import socket
import subprocess

from harness import (CHANNEL_MAIN, Deadline, IntegTestCase, cpu_seconds, link_message,
                     poll_until, random_token)


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
        sg = self.start_spicegate({token: peer.target})
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
        live.send_close()
        self.assertEqual(live.wait_close()[0], 1000)

    @staticmethod
    def _healthz(sg):
        try:
            return sg.get("/healthz", timeout=2)[0] == 200
        except OSError:
            return False
