# SPDX-License-Identifier: Apache-2.0
"""End to end through spicegate to QEMU's real SPICE server."""

import struct
import threading

from harness import (
    CHANNEL_CURSOR, CHANNEL_DISPLAY, CHANNEL_INPUTS, CHANNEL_MAIN, LINK_ERR_OK,
    SPICE_MSG_INPUTS_INIT, SPICE_MSG_MAIN_INIT, SPICE_MSGC_DISPLAY_INIT, SPICE_TICKET_PUBKEY_BYTES,
    QemuTestCase, QmpClient, WAIT_S, SpiceClient, WsClosed, poll_until, random_token, rsa_public_key,
)


class SpiceThroughSpicegate(QemuTestCase):

    def setUp(self):
        super().setUp()
        self.token = random_token()
        self.sg = self.start_spicegate({self.token: self.qemu_target})
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

    def keep_reading(self, client):
        """Reads @client's messages from now on, as a browser does. A
        client that stops reading fills spicegate's bounded buffers, then
        QEMU's socket, and QEMU waits for it: when the guest switches
        display mode, QEMU's main thread (its monitor too) waits up to
        COMMON_CLIENT_TIMEOUT for the display channel's queue to drain
        (spice_qxl_destroy_primary_surface, seen in gdb)."""
        def drain():
            try:
                while True:
                    client.read_message()
            except Exception:      # the test closed it, or the session ended
                pass
        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        return reader

    @staticmethod
    def init_display(display):
        # pixmap_cache_id u8, pixmap_cache_size i64, glz_dictionary_id u8,
        # glz_dictionary_window_size i32 (SpiceMsgcDisplayInit)
        display.send_message(SPICE_MSGC_DISPLAY_INIT, struct.pack("<BqBi", 1, 1 << 20, 1, 1 << 20))

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
        self.keep_reading(main)

        others = {t: self.browser_channel()
                  for t in (CHANNEL_DISPLAY, CHANNEL_INPUTS, CHANNEL_CURSOR)}
        for ctype, client in others.items():
            client.send_link(ctype, connection_id=session_id)
        for ctype, client in others.items():
            self.assert_good_reply(client.read_reply(), "channel %d" % ctype)
        for ctype, client in others.items():
            self.assertEqual(client.auth(), LINK_ERR_OK, "channel %d auth" % ctype)
            if ctype == CHANNEL_DISPLAY:
                # As spice-html5 does, at once: until DISPLAY_INIT QEMU
                # queues the display channel's messages, and a guest
                # display switch meanwhile waits for that queue (see
                # keep_reading()).
                self.init_display(client)
                self.keep_reading(client)

        # Data flows after auth: the inputs channel greets with INPUTS_INIT.
        others[CHANNEL_INPUTS].wait_message(SPICE_MSG_INPUTS_INIT)
        self.keep_reading(others[CHANNEL_INPUTS])
        self.keep_reading(others[CHANNEL_CURSOR])

        def listed():
            mine = [c for c in self.qmp.spice_channels() if c[2] == session_id]
            return sorted(c[0] for c in mine) == [1, 2, 3, 4] and mine
        mine = poll_until(listed, "query-spice to list main, display, inputs, cursor")
        # Four distinct TCP connections from spicegate, not one multiplexed.
        self.assertEqual(len({c[3] for c in mine}), 4)

        # No teardown here: QEMU 7.2's SPICE server has crashed (SIGSEGV)
        # when display and cursor channels, which its worker thread was
        # still setting up, went away within milliseconds of linking. The
        # test's QEMU is simply stopped; teardown through spicegate is the
        # next test's job.

    def test_closing_websockets_drops_spice_channels(self):
        """Closing the browser's websockets closes spicegate's SPICE
        connections: QEMU's monitor stops listing the session's channels."""
        main, session_id = self.connect_main()
        main_reader = self.keep_reading(main)
        inputs = self.browser_channel()
        inputs.link(CHANNEL_INPUTS, connection_id=session_id)
        self.assertEqual(inputs.auth(), LINK_ERR_OK, "inputs auth")
        inputs.wait_message(SPICE_MSG_INPUTS_INIT)
        poll_until(lambda: sorted(c[0] for c in self.qmp.spice_channels()
                                  if c[2] == session_id) == [CHANNEL_MAIN, CHANNEL_INPUTS],
                   "query-spice to list main and inputs")
        inputs.stream.send_close()
        inputs.stream.wait_close()
        main.stream.send_close()
        main_reader.join(WAIT_S)
        self.assertFalse(main_reader.is_alive(), "the main channel's close")
        poll_until(lambda: not [c for c in self.qmp.spice_channels() if c[2] == session_id],
                   "QEMU to drop the closed channels")

    def test_display_channel_data_flows(self):
        """After DISPLAY_INIT the display channel sends display messages
        (QXL's primary surface) through spicegate."""
        main, session_id = self.connect_main()
        self.keep_reading(main)
        display = self.browser_channel()
        self.assert_good_reply(display.link(CHANNEL_DISPLAY, connection_id=session_id), "display")
        self.assertEqual(display.auth(), LINK_ERR_OK)
        self.init_display(display)
        types = set()
        for _ in range(8):
            mtype, _ = display.read_message()
            types.add(mtype)
            if mtype > 100:
                break
        self.keep_reading(display)
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
