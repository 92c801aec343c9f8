# SPDX-License-Identifier: Apache-2.0
"""Debian's HAProxy in front of spicegate instances, from conf/haproxy.cfg.

    lb = Haproxy(self.reg, self.tmp, [sg1.port, sg2.port]).start()
    lb.wait_servers({"spicegate1": ("UP", "L7OK"), "spicegate2": "UP"})
    ws = WsClient(lb.port, source="127.0.0.5", token=...)   # through HAProxy

The configuration is the example we ship, conf/haproxy.cfg, with its
frontend port, its two servers' addresses and its timeouts replaced
(every replacement must match, so an edit of the example that breaks the
template fails here rather than testing something else), plus a stats
socket for server_states(). The spicegate instances behind it need
[server] proxy_protocol = true and trusted_proxies = 127.0.0.1 (HAProxy
connects from 127.0.0.1): see spicegate_config(). One backend port is
given to both server lines. HAProxy runs in the foreground, is stopped by
the Registry (SIGTERM, then SIGKILL), and writes its log to stdout, which
log() returns."""

import os
import re
import shutil
import socket

from harness import TOP_SRCDIR, pick_port, poll_until

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
EXAMPLE = os.path.join(TOP_SRCDIR, "conf", "haproxy.cfg")


def have_haproxy():
    return os.access(HAPROXY, os.X_OK)


def spicegate_config(extra=""):
    """The [server] settings of a spicegate behind Haproxy."""
    return "[server]\nproxy_protocol = true\ntrusted_proxies = 127.0.0.1\n" + extra


class Haproxy:

    count = 0

    def __init__(self, registry, workdir, backend_ports, timeout_tunnel="1h",
                 check_inter="200ms", timeout_client="30s", timeout_server="30s"):
        Haproxy.count += 1
        self.registry = registry
        self.dir = os.path.join(workdir, "haproxy%d" % Haproxy.count)
        os.makedirs(self.dir)
        self.cfg_path = os.path.join(self.dir, "haproxy.cfg")
        self.stats_path = os.path.join(self.dir, "stats.sock")
        self.log_path = os.path.join(self.dir, "stdout")
        self.backend_ports = list(backend_ports)
        if len(self.backend_ports) == 1:
            self.backend_ports *= 2
        assert len(self.backend_ports) == 2, "conf/haproxy.cfg has two servers"
        self.timeouts = {"tunnel": timeout_tunnel, "client": timeout_client,
                         "server": timeout_server}
        self.check_inter = check_inter
        self.proc = None
        self.port = None

    def _config(self, port):
        with open(EXAMPLE) as f:
            text = f.read()

        def sub(pattern, repl, count=1):
            nonlocal text
            text, n = re.subn(pattern, repl, text, flags=re.M)
            assert n == count, "conf/haproxy.cfg: %r matched %d times, not %d" % (
                pattern, n, count)

        sub(r"^(\s*bind\s+)\S+$", r"\g<1>127.0.0.1:%d" % port)
        for i, backend in enumerate(self.backend_ports, 1):
            sub(r"^(\s*server\s+spicegate%d\s+)\S+$" % i, r"\g<1>127.0.0.1:%d" % backend)
        for name, value in self.timeouts.items():
            sub(r"^(\s*timeout\s+%s\s+)\S+$" % name, r"\g<1>" + value)
        sub(r"(\bcheck\s+inter\s+)\S+", r"\g<1>" + self.check_inter)
        # HAProxy wants two descriptors per connection of maxconn, more than
        # a test machine may give.
        sub(r"^(\s*maxconn\s+)\d+$", r"\g<1>1000")
        # Logs to stdout (no syslog here), and a stats socket to ask.
        sub(r"^(\s*)log\s+/dev/log\s+local0$",
            r"\g<1>log stdout format raw local0\n\g<1>stats socket %s mode 600 level admin"
            % self.stats_path)
        return text

    def start(self, attempts=5):
        """Starts HAProxy on a free port and returns once it accepts there.
        The port is picked, then bound by HAProxy: if another process took
        it in between, HAProxy fails and a new port is tried."""
        for _ in range(attempts):
            port = pick_port()
            with open(self.cfg_path, "w") as f:
                f.write(self._config(port))
            self.proc = self.registry.spawn([HAPROXY, "-db", "-f", self.cfg_path],
                                            stdout_path=self.log_path,
                                            stderr_path=self.log_path + ".err")
            if self._wait_listening(port):
                self.port = port
                return self
            self.registry.stop_process(self.proc)
        raise AssertionError("HAProxy did not start:\n" + self.log())

    def _wait_listening(self, port):
        """HAProxy answers on its stats socket once it has bound every
        listener; it exits if it could not bind one."""
        def ready():
            if self.proc.poll() is not None:
                return "exited"
            try:
                return "up" if "Pid:" in self.stats_command("show info") else None
            except OSError:
                return None
        return poll_until(ready, "HAProxy's stats socket") == "up"

    def log(self):
        text = ""
        for path in (self.log_path, self.log_path + ".err"):
            try:
                with open(path, errors="replace") as f:
                    text += f.read()
            except FileNotFoundError:
                pass
        return text

    def stats_command(self, command):
        """One command on the stats socket; its answer as text."""
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(5)
            s.connect(self.stats_path)
            s.sendall(command.encode() + b"\n")
            out = bytearray()
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        return out.decode(errors="replace")

    def server_states(self):
        """{server name: (status, check_status)} of the spicegate backend,
        e.g. {"spicegate1": ("UP", "L7OK")}."""
        lines = self.stats_command("show stat").splitlines()
        header = lines[0].lstrip("# ").split(",")
        states = {}
        for line in lines[1:]:
            row = dict(zip(header, line.split(",")))
            if row.get("pxname") == "spicegate" and row.get("svname", "").startswith("spicegate"):
                states[row["svname"]] = (row["status"], row["check_status"])
        return states

    def wait_servers(self, expected, seconds=15.0):
        """Waits until each named server's status is as given: "UP",
        "DOWN", or a (status, check status) pair such as ("UP", "L7OK"),
        the latter once a check has run and passed. Returns the states."""
        def matches(state, want):
            if isinstance(want, str):
                return state[0] == want
            return state[0] == want[0] and state[1].startswith(want[1])

        def ok():
            states = self.server_states()
            if all(matches(states.get(name, ("?", "?")), want)
                   for name, want in expected.items()):
                return states
            return None
        try:
            return poll_until(ok, "HAProxy servers %r" % expected, seconds)
        except AssertionError as e:
            raise AssertionError("%s; states now %r\n--- haproxy log ---\n%s"
                                 % (e, self.server_states(), self.log()[-3000:])) from None

    def stop(self):
        return self.registry.stop_process(self.proc)
