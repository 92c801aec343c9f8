# SPDX-License-Identifier: Apache-2.0
"""Nova's verify_origin_proto: with [server] base_url set, the Origin's
scheme (or X-Forwarded-Proto, which replaces it when it comes from a
[server] trusted_proxies peer: here 127.0.0.1, the tests' own address) must
match the base URL's, ws counting as http and wss as https. test_proxy.py
has X-Forwarded-Proto from an untrusted peer."""

from harness import CLOSE_ORIGIN, IntegTestCase, link_message, random_token

HOST = "console.example:6082"


class OriginScheme(IntegTestCase):

    def setUp(self):
        super().setUp()
        self.token = random_token()
        peer = self.echo_peer()
        self.sg = self.start_spicegate(
            tokens={self.token: "127.0.0.1:%d" % peer.port},
            config="[server]\nbase_url = https://console.example:6082/spice_auto.html\n"
                   "trusted_proxies = 127.0.0.1\n")

    def kw(self, origin, *extra):
        return dict(token=self.token, origin=origin, host_header=HOST, extra_headers=extra)

    def test_matching_scheme_relays(self):
        self.assert_echo_session(self.sg, **self.kw("https://console.example"))

    def test_forwarded_proto_https_relays(self):
        # A TLS-terminating load balancer in front: the browser's page is
        # https, the hop to spicegate plain; the balancer says so.
        self.assert_echo_session(self.sg, **self.kw("https://console.example",
                                                    "X-Forwarded-Proto: https"))
        self.assert_echo_session(self.sg, **self.kw("http://console.example",
                                                    "X-Forwarded-Proto: https"))

    def test_scheme_mismatch_refused(self):
        for origin, extra in (("http://console.example", ()),
                              ("https://console.example", ("X-Forwarded-Proto: http",))):
            with self.subTest(origin=origin, extra=extra):
                self.assert_refused(self.sg, CLOSE_ORIGIN, send=link_message(1),
                                    **self.kw(origin, *extra))
        self.assertIn("origin scheme mismatch", self.sg.log_tail())
        # And spicegate keeps serving.
        self.assert_echo_session(self.sg, **self.kw("https://console.example"))
