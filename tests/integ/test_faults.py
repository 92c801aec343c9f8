# SPDX-License-Identifier: Apache-2.0
"""Running short of file descriptors: the start-up limit, and a log that
stays bounded when accept() keeps failing."""

import re
import resource
import socket
import subprocess

from harness import Deadline, IntegTestCase, poll_until


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

    def test_lws_lines_bounded_while_accept_fails(self):
        # With every descriptor taken, lws' accept() fails with EMFILE on
        # each wakeup and logs it each time (27 MB of lines in 23 s once).
        # The log must stay small; when descriptors free up, it serves.
        sg = self.start_spicegate({})
        _, hard = nofile_limits(sg.pid)
        # The soft limit only: raising a hard limit back needs privileges.
        subprocess.run(["prlimit", "--pid", str(sg.pid), "--nofile=40:%d" % hard], check=True)
        held = []
        self.addCleanup(lambda: [s.close() for s in held])
        for _ in range(100):
            s = socket.socket()
            s.settimeout(5)
            s.connect(("127.0.0.1", sg.port))   # the kernel's backlog takes them
            held.append(s)
        # An observation window, not a synchronisation: lines are counted
        # over 2 s of failing accepts (or until the log passes 1 MB).
        window = Deadline(2.0)
        poll_until(lambda: window.expired() or len(sg.log()) > 1 << 20, "2 s of accepts", 5)
        lws_lines = len(re.findall(r"(?m) lws: ", sg.log()))
        # 20 a second, plus one "dropped" line a second, over about 3 s.
        self.assertLess(lws_lines, 100, "lws wrote %d lines in 2 s" % lws_lines + sg.log_tail())
        for s in held:
            s.close()
        held.clear()
        subprocess.run(["prlimit", "--pid", str(sg.pid), "--nofile=%d:%d" % (hard, hard)],
                       check=True)
        poll_until(lambda: self._healthz(sg), "/healthz once descriptors are free", 10)

    @staticmethod
    def _healthz(sg):
        try:
            return sg.get("/healthz", timeout=2)[0] == 200
        except OSError:
            return False
