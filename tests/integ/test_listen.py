# SPDX-License-Identifier: Apache-2.0
"""Which address spicegate listens on: exactly the one asked for.

Read back from the kernel (/proc/net/tcp and tcp6), not by connecting to
another address of the machine, so the tests stay on loopback."""

import ipaddress
import os
import socket

from harness import IntegTestCase, http_request


def listening_sockets(port):
    """(family, address) of every listening TCP socket on @port."""
    found = []
    for family, path in ((socket.AF_INET, "/proc/net/tcp"), (socket.AF_INET6, "/proc/net/tcp6")):
        if not os.path.exists(path):
            continue
        with open(path) as f:
            next(f)
            for line in f:
                fields = line.split()
                local, state = fields[1], fields[3]
                addr_hex, port_hex = local.split(":")
                if state != "0A" or int(port_hex, 16) != port:   # 0A = LISTEN
                    continue
                raw = bytes.fromhex(addr_hex)
                # /proc prints each 32-bit word in host (little-endian) order.
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
                found.append((family, ipaddress.ip_address(raw)))
    return found


class ListenAddress(IntegTestCase):

    def test_ipv4_address_binds_only_that_address(self):
        # A regression test: lws 4.1.6 with IPv6 enabled listened on [::]
        # (every address) when told 127.0.0.1.
        sg = self.start_spicegate(listen="127.0.0.1:0")
        self.assertEqual(listening_sockets(sg.port),
                         [(socket.AF_INET, ipaddress.ip_address("127.0.0.1"))])
        self.assertEqual(http_request(sg.port, "/healthz")[0], 200)

    def test_ipv6_loopback(self):
        if not socket.has_ipv6 or not os.path.exists("/proc/net/tcp6"):
            self.skipTest("no IPv6 on this machine")
        sg = self.start_spicegate(listen="[::1]:0")
        self.assertEqual(listening_sockets(sg.port),
                         [(socket.AF_INET6, ipaddress.ip_address("::1"))])
        self.assertEqual(http_request(sg.port, "/healthz", host="::1")[0], 200)

    def test_every_address_is_dual_stack(self):
        if not socket.has_ipv6 or not os.path.exists("/proc/net/tcp6"):
            self.skipTest("no IPv6 on this machine")
        sg = self.start_spicegate(listen="0.0.0.0:0")
        self.assertEqual(listening_sockets(sg.port),
                         [(socket.AF_INET6, ipaddress.ip_address("::"))])
        # One socket, both families (IPV6_V6ONLY off).
        self.assertEqual(http_request(sg.port, "/healthz")[0], 200)
        self.assertEqual(http_request(sg.port, "/healthz", host="::1")[0], 200)
