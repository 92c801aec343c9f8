# SPDX-License-Identifier: Apache-2.0
"""Several worker processes on one port ([server] workers / --workers): each
worker serves on its own, signals sent to the master reach every worker, a
worker that dies is restarted, SIGTERM stops them all, and start-up errors
give the same exit status as with one process. The one view across
workers (counters summed, closes reaching every worker, a dead worker's
totals kept) is test_admin.AdminWorkers', through the admin API."""

import os
import re
import signal
import socket

from harness import (
    CHANNEL_MAIN, IntegTestCase, WsClosed, link_message, poll_until, random_token, children,
    run_spicegate, PAGES, SPICE_HTML5,
)


def gone(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] == "Z"
    except FileNotFoundError:
        return True


class Workers(IntegTestCase):

    def setUp(self):
        super().setUp()
        self.peer = self.echo_peer()
        self.token = random_token()
        self.sg = self.start_spicegate({self.token: self.peer.target},
                                       extra_args=["--workers", "2"])
        poll_until(lambda: len(children(self.sg.pid)) == 2, "two workers")
        self.workers = children(self.sg.pid)

    def relays(self, token=None):
        """A fresh session echoes its link message (True), or is closed."""
        ws = self.sg.ws(token=token or self.token)
        try:
            msg = link_message(CHANNEL_MAIN)
            ws.send_binary(msg)
            return ws.recv_exact(len(msg)) == msg
        finally:
            ws.close()

    def test_each_worker_serves_alone(self):
        self.sg.wait_log(r"running: listen 127\.0\.0\.1:%d, TLS off \(http/ws\);.*; "
                         r"workers 2\n" % self.sg.port)
        # With one worker stopped, the other takes every connection; then
        # the other way round. Session ids stay unique across the workers.
        for stopped in self.workers:
            os.kill(stopped, signal.SIGSTOP)
            try:
                for _ in range(3):
                    self.assertTrue(self.relays())
            finally:
                os.kill(stopped, signal.SIGCONT)
        ids = [int(i) for i in re.findall(r"\[s:(\d+)\] open ", self.sg.log())]
        self.assertEqual(len(ids), 6)
        self.assertEqual(len(set(ids)), 6, "session ids repeat: %r" % ids)
        self.assertEqual({i % 2 for i in ids}, {0, 1}, "one worker served everything")

    def test_sighup_reaches_every_worker(self):
        new = random_token()
        self.sg.write_tokens({self.token: self.peer.target, new: self.peer.target})
        os.kill(self.sg.pid, signal.SIGHUP)
        # Only worker 0 says so (test_startup_messages_once); that every
        # worker reloaded shows in each one alone accepting the new token.
        self.sg.wait_log(r"tokens: 2 loaded")
        for stopped in self.workers:
            os.kill(stopped, signal.SIGSTOP)
            try:
                poll_until(lambda: self._relays_on(self.sg, new),
                           "the worker other than %d to accept the new token" % stopped)
            finally:
                os.kill(stopped, signal.SIGCONT)

    def test_startup_messages_once(self):
        """What every worker would say alike at start and on reload (tokens
        loaded, a bad token line) appears once, not once per worker."""
        token = random_token()
        sg = self.start_spicegate({token: self.peer.target}, extra_args=["--workers", "3"])
        poll_until(lambda: len(children(sg.pid)) == 3, "three workers")
        workers = children(sg.pid)
        # The master logs this once all three workers have loaded the file.
        sg.wait_log(r"running: listen 127\.0\.0\.1:%d, .*; workers 3$" % sg.port)
        self.assertEqual(len(re.findall(r"tokens: 1 loaded", sg.log())), 1, sg.log_tail())
        new = random_token()
        sg.write_tokens({token: self.peer.target, new: self.peer.target})
        os.kill(sg.pid, signal.SIGHUP)
        sg.wait_log(r"tokens: 2 loaded")
        # Every worker has reloaded once each alone accepts the new token.
        for stopped in workers:
            for other in workers:
                if other != stopped:
                    os.kill(other, signal.SIGSTOP)
            try:
                ws_ok = poll_until(lambda: self._relays_on(sg, new),
                                   "worker %d to accept the new token" % stopped)
                self.assertTrue(ws_ok)
            finally:
                for other in workers:
                    if other != stopped:
                        os.kill(other, signal.SIGCONT)
        self.assertEqual(len(re.findall(r"tokens: 2 loaded", sg.log())), 1, sg.log_tail())
        # A bad line: the reload is refused, and that is said once.
        sg.write_tokens({token: self.peer.target}, ("not a token line",))
        os.kill(sg.pid, signal.SIGHUP)
        sg.wait_log(r"keeping the 2 token\(s\) it had before")
        sg.wait_log(r"WARNING: reload: ")
        self.assertEqual(len(re.findall(r"tokens:\d+: expected", sg.log())), 1, sg.log_tail())
        self.assertEqual(len(re.findall(r"keeping the 2 token", sg.log())), 1, sg.log_tail())
        # Stopping: the master's lines, not one set per worker.
        os.kill(sg.pid, signal.SIGTERM)
        self.assertEqual(sg.wait_exit(), 0)
        self.assertEqual(len(re.findall(r"\bstopped$", sg.log(), re.M)), 1, sg.log_tail())

    def _relays_on(self, sg, token):
        """A fresh session on @sg echoes its link message (True), or is
        refused (False: a worker that has not reloaded yet)."""
        ws = sg.ws(token=token)
        try:
            msg = link_message(CHANNEL_MAIN)
            ws.send_binary(msg)
            return ws.recv_exact(len(msg)) == msg
        except WsClosed:
            return False
        finally:
            ws.close()

    def test_dead_worker_is_restarted(self):
        victim = self.workers[0]
        os.kill(victim, signal.SIGKILL)
        self.sg.wait_log(r"worker 0 \(pid %d\) killed by signal 9; restarting" % victim)
        # By pid: after a pid wrap-around, the lowest pid need not be worker 0.
        self.sg.wait_log(r"worker \d+ restarted")
        poll_until(lambda: len(children(self.sg.pid)) == 2
                   and victim not in children(self.sg.pid), "a new worker 0")
        self.assertIn(self.workers[1], children(self.sg.pid))
        for _ in range(4):
            self.assertTrue(self.relays())

    def test_sigterm_stops_every_worker(self):
        ws = self.sg.ws(token=self.token)
        msg = link_message(CHANNEL_MAIN)
        ws.send_binary(msg)
        self.assertEqual(ws.recv_exact(len(msg)), msg)
        os.kill(self.sg.pid, signal.SIGTERM)
        code, _, _ = ws.wait_close()
        self.assertEqual(code, 1001)
        self.assertEqual(self.sg.proc.wait(20), 0)
        for pid in self.workers:
            self.assertTrue(gone(pid), "worker %d outlived the master" % pid)


class WorkersStartup(IntegTestCase):

    def test_port_in_use_is_exit_1(self):
        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        tokens = os.path.join(self.tmp, "tokens")
        with open(tokens, "w") as f:
            f.write("")
        status, _, err = run_spicegate(["--workers", "2", "--token-file", tokens,
                                        "--web", SPICE_HTML5, "--pages", PAGES,
                                        "--listen", "127.0.0.1:%d" % taken.getsockname()[1]])
        self.assertEqual(status, 1, err)
        self.assertIn("cannot listen on 127.0.0.1:%d" % taken.getsockname()[1], err)

    def test_bad_token_file_is_exit_2_before_any_worker(self):
        status, _, err = run_spicegate(["--workers", "2", "--listen", "127.0.0.1:0",
                                        "--web", SPICE_HTML5, "--pages", PAGES,
                                        "--token-file", os.path.join(self.tmp, "absent")])
        self.assertEqual(status, 2, err)
        self.assertIn("[tokens] file", err)

    def test_bad_worker_count_is_exit_2(self):
        for value in ("0", "65", "many"):
            status, _, err = run_spicegate(["--workers", value, "--listen", "127.0.0.1:0"])
            self.assertEqual(status, 2, err)
            self.assertIn("--workers", err)

    def test_auto_and_dual_stack(self):
        sg = self.start_spicegate({}, extra_args=["--workers", "auto"], listen="0.0.0.0:0")
        poll_until(lambda: len(children(sg.pid)) == (os.cpu_count() or 1)
                   or (os.cpu_count() or 1) == 1, "one worker per CPU")
        self.assertEqual(sg.get("/healthz")[0], 200)
        if socket.has_ipv6 and os.path.exists("/proc/net/tcp6"):
            self.assertEqual(sg.get("/healthz", host="::1")[0], 200)
