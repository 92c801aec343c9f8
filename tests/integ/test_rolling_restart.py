# SPDX-License-Identifier: Apache-2.0
"""A rolling restart behind a real load balancer: Debian's HAProxy from
conf/haproxy.cfg (send-proxy-v2, option httpchk GET /healthz) in front of
two spicegate instances, consoles from 127.0.0.5.

One instance gets SIGTERM: its consoles keep relaying until
[server] drain_timeout and only then close with 1001 (which the console
page turns into a reconnect through the load balancer); meanwhile new
consoles go to the other instance, a new instance starts on the same port
while the old one drains, and HAProxy sends consoles to it once its health
check passes. Each instance's /consoles (the admin API) shows the
browser's address, not HAProxy's."""

import json
import signal
import time
import unittest

from harness import (
    CHANNEL_MAIN, CLOSE_SHUTDOWN, IntegTestCase, WsClient, http_request, link_message,
    random_token, still_relays,
)
from lb import Haproxy, have_haproxy, spicegate_config

CLIENT = "127.0.0.5"
# Long enough to check everything below before it ends, on a loaded
# 2-core CI machine.
DRAIN_S = 12
# How late the drain's end may be kept there.
SLACK_S = 5.0


@unittest.skipUnless(have_haproxy(), "haproxy is not installed (apt-get install haproxy)")
class RollingRestart(IntegTestCase):

    def setUp(self):
        super().setUp()
        self.peer = self.echo_peer()
        self.token = random_token()

    def start_instance(self, listen="127.0.0.1:0"):
        config = spicegate_config("drain_timeout = %d\n" % DRAIN_S) + \
            "[admin]\nlisten = 127.0.0.1:0\n"
        sg = self.start_spicegate({self.token: self.peer.target}, config=config, listen=listen)
        sg.admin_port = int(sg.wait_log(r"admin API listening on 127\.0\.0\.1:(\d+)")[0])
        return sg

    def sessions_of(self, sg):
        """The clients ("addr:port") of the sessions @sg holds, from its
        admin API."""
        status, _, body = http_request(sg.admin_port, "/consoles")
        self.assertEqual(status, 200, body)
        doc = json.loads(body)
        return sorted(s["client"] for c in doc["consoles"] for s in c["sessions"])

    def open_console(self, lb):
        ws = self.reg.add(WsClient(lb.port, source=CLIENT, token=self.token))
        msg = link_message(CHANNEL_MAIN)
        ws.send_binary(msg)
        self.assertEqual(ws.recv_exact(len(msg)), msg)
        return ws

    def test_rolling_restart_keeps_consoles_until_drain_timeout(self):
        old = self.start_instance()
        other = self.start_instance()
        lb = Haproxy(self.reg, self.tmp, [old.port, other.port]).start()
        lb.wait_servers({"spicegate1": ("UP", "L7OK"), "spicegate2": ("UP", "L7OK")})

        # leastconn spreads them: both instances hold consoles.
        consoles = [self.open_console(lb) for _ in range(4)]
        mine = {"%s:%d" % ws.sock.getsockname()[:2]: ws for ws in consoles}
        on_old, on_other = self.sessions_of(old), self.sessions_of(other)
        # Each instance sees the browser's address and port, from the PROXY
        # header, not HAProxy's.
        self.assertEqual(sorted(on_old + on_other), sorted(mine), (on_old, on_other))
        self.assertTrue(on_old and on_other, "leastconn used one instance")
        draining = [mine[c] for c in on_old]
        staying = [mine[c] for c in on_other]

        start = time.monotonic()
        old.send_signal(signal.SIGTERM)
        old.wait_log(r"draining: %d session\(s\) keep relaying" % len(draining))
        # HAProxy sees the port closed (its check fails): the old instance
        # is DOWN, and every new console goes to the other one.
        lb.wait_servers({"spicegate1": "DOWN", "spicegate2": "UP"})
        fresh = [self.open_console(lb) for _ in range(2)]
        self.assertEqual(len(self.sessions_of(other)), len(on_other) + 2,
                         "a new console did not go to the healthy instance")

        # A new instance on the same port while the old one drains; HAProxy
        # takes it back once its check passes, and a console reaches it.
        new = self.start_instance(listen="127.0.0.1:%d" % old.port)
        self.assertEqual(new.port, old.port)
        lb.wait_servers({"spicegate1": ("UP", "L7OK"), "spicegate2": "UP"})
        # leastconn: the new instance holds nothing, so it gets this one.
        late = self.open_console(lb)
        self.assertEqual(self.sessions_of(new), ["%s:%d" % late.sock.getsockname()[:2]])

        # Every console relays, the old instance's included, before the
        # drain ends: none was closed early.
        for i, ws in enumerate(consoles + fresh + [late]):
            self.assertTrue(still_relays(ws, b"rolling %d" % i), old.log_tail())
        self.assertTrue(old.alive(), "the old instance stopped early" + old.log_tail())
        self.assertLess(time.monotonic() - start, DRAIN_S,
                        "too slow to check the consoles before the drain ended")

        # drain_timeout over: the old instance's consoles get 1001, which
        # the page turns into a reconnect; the others keep relaying.
        for ws in draining:
            code, reason, _ = ws.wait_close(max(start + DRAIN_S + SLACK_S - time.monotonic(), 0.1))
            self.assertEqual((code, reason), CLOSE_SHUTDOWN, old.log_tail())
        elapsed = time.monotonic() - start
        self.assertGreater(elapsed, DRAIN_S - 0.5, "closed before drain_timeout")
        self.assertEqual(old.wait_exit(), 0, old.log_tail())
        for ws in staying + fresh + [late]:
            self.assertTrue(still_relays(ws, b"after the drain"))
