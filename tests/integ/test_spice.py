# SPDX-License-Identifier: Apache-2.0
"""End to end through spicegate to QEMU's real SPICE server."""

import struct

from harness import (
    CHANNEL_CURSOR, CHANNEL_DISPLAY, CHANNEL_INPUTS, CHANNEL_MAIN, LINK_ERR_OK,
    SPICE_MSG_INPUTS_INIT, SPICE_MSG_MAIN_INIT, SPICE_MSGC_DISPLAY_INIT, SPICE_TICKET_PUBKEY_BYTES,
    QemuTestCase, QmpClient, SpiceClient, WsClosed, poll_until, random_token, rsa_public_key,
)


class SpiceThroughSpicegate(QemuTestCase):

    def setUp(self):
        super().setUp()
        self.token = random_token()
        self.sg = self.start_spicegate({self.token: self.qemu_target}, extra_args=["--debug"])
        self.qmp = self.reg.add(QmpClient(self.qemu.qmp_path))

    def browser_channel(self):
        # As spice_auto.html does it: path /websockify, token in a cookie.
        return SpiceClient(self.sg.ws(cookie="token=" + self.token))

    def assert_good_reply(self, reply, what):
        self.assertEqual(reply.error, LINK_ERR_OK, what + ": link error")
        self.assertEqual((reply.major, reply.minor), (2, 2), what + ": version")
        self.assertEqual(len(reply.pub_key), SPICE_TICKET_PUBKEY_BYTES)
        n, e = rsa_public_key(reply.pub_key)
        self.assertEqual(n.bit_length(), 1024, what + ": RSA modulus")
        self.assertEqual(e, 65537)

    def connect_main(self):
        main = self.browser_channel()
        try:
            self.assert_good_reply(main.link(CHANNEL_MAIN, channel_caps=(1 << 2,)), "main")
            self.assertEqual(main.auth(), LINK_ERR_OK, "main auth")
            payload, _ = main.wait_message(SPICE_MSG_MAIN_INIT)
        except WsClosed as e:
            self.fail("main channel closed: %d %r%s" % (e.code, e.reason, self.sg.log_tail()))
        return main, struct.unpack_from("<I", payload, 0)[0]

    def test_link_round_trip_several_channels(self):
        """main, then display, inputs and cursor at once on the same token:
        every link reply is QEMU's, auth succeeds, data flows, and QEMU's
        monitor lists the four channels of one session."""
        main, session_id = self.connect_main()

        others = {t: self.browser_channel()
                  for t in (CHANNEL_DISPLAY, CHANNEL_INPUTS, CHANNEL_CURSOR)}
        for ctype, client in others.items():
            client.send_link(ctype, connection_id=session_id)
        for ctype, client in others.items():
            self.assert_good_reply(client.read_reply(), "channel %d" % ctype)
        for ctype, client in others.items():
            self.assertEqual(client.auth(), LINK_ERR_OK, "channel %d auth" % ctype)

        # Data flows after auth: the inputs channel greets with INPUTS_INIT.
        others[CHANNEL_INPUTS].wait_message(SPICE_MSG_INPUTS_INIT)

        def listed():
            types = sorted(c[0] for c in self.qmp.spice_channels() if c[2] == session_id)
            return types == [1, 2, 3, 4] and types
        poll_until(listed, "query-spice to list main, display, inputs, cursor")
        # Four distinct TCP connections from spicegate, not one multiplexed.
        ports = {c[3] for c in self.qmp.spice_channels() if c[2] == session_id}
        self.assertEqual(len(ports), 4)

        # Closing the browser's websockets tears down the SPICE connections.
        # The main channel goes last, once QEMU has dropped the others:
        # QEMU 7.2's SPICE server has crashed (SIGSEGV) tearing down a main
        # channel while the session's other channels were still closing.
        for client in others.values():
            client.stream.send_close()
            client.stream.wait_close()
        poll_until(lambda: [c[0] for c in self.qmp.spice_channels() if c[2] == session_id]
                   == [CHANNEL_MAIN], "QEMU to drop the closed display, inputs and cursor")
        main.stream.send_close()
        main.stream.wait_close()
        poll_until(lambda: not [c for c in self.qmp.spice_channels() if c[2] == session_id],
                   "QEMU to drop the closed channels")

    def test_display_channel_data_flows(self):
        """After DISPLAY_INIT the display channel sends display messages
        (QXL's primary surface) through spicegate."""
        _, session_id = self.connect_main()
        display = self.browser_channel()
        self.assert_good_reply(display.link(CHANNEL_DISPLAY, connection_id=session_id), "display")
        self.assertEqual(display.auth(), LINK_ERR_OK)
        # pixmap_cache_id u8, pixmap_cache_size i64, glz_dictionary_id u8,
        # glz_dictionary_window_size i32 (SpiceMsgcDisplayInit)
        display.send_message(SPICE_MSGC_DISPLAY_INIT, struct.pack("<BqBi", 1, 1 << 20, 1, 1 << 20))
        types = set()
        for _ in range(8):
            mtype, _ = display.read_message()
            types.add(mtype)
            if mtype > 100:
                break
        self.assertTrue(any(t > 100 for t in types),
                        "no display-specific message, only %r" % sorted(types))

    def test_wrong_connection_id_is_qemus_answer(self):
        """spicegate relays, it does not judge SPICE: a display channel with
        an unknown connection id links fine and gets QEMU's own refusal
        (SPICE_LINK_ERR_BAD_CONNECTION_ID) at auth."""
        display = self.browser_channel()
        self.assert_good_reply(display.link(CHANNEL_DISPLAY, connection_id=0x12345678), "display")
        self.assertEqual(display.auth(), 8)

    def test_bad_ticket_is_refused_by_qemu_not_spicegate(self):
        """A garbage ticket reaches QEMU, which answers PERMISSION_DENIED."""
        client = self.browser_channel()
        self.assert_good_reply(client.link(CHANNEL_MAIN), "main")
        client.stream.send(struct.pack("<I", 1) + b"\0" * 128)
        self.assertEqual(struct.unpack("<I", client.stream.recv_exact(4))[0], 7)
