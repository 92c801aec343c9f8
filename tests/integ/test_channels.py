# SPDX-License-Identifier: Apache-2.0
"""[spice] channels against QEMU's real SPICE server: a link message of
every channel type through spicegate's websocket. Allowed types get
QEMU's link reply and link; refused ones get 4403 "SPICE channel not
allowed here" and a refused log line naming the channel and the setting,
and QEMU never hears of them: spicegate had not even connected, so
QEMU's log (spice-server's debug messages, which name every channel that
links), its monitor's events (SPICE_CONNECTED, one per connection
spice-server accepts) and query-spice show nothing of them. A custom list
lets usbredir, smartcard, webdav and record through, which proves that
QEMU's log would have named them."""

import re
import struct
import threading

from harness import (
    CHANNEL_DISPLAY, CHANNEL_MAIN, CLOSE_CHANNEL_REFUSED, LINK_ERR_OK, SPICE_MSG_MAIN_INIT,
    SPICE_MSGC_DISPLAY_INIT, QemuTestCase,
    QmpClient, SpiceClient, WsClosed, link_message, poll_until, random_token,
)

NAMES = {1: "main", 2: "display", 3: "inputs", 4: "cursor", 5: "playback", 6: "record",
         7: "tunnel", 8: "smartcard", 9: "usbredir", 10: "port", 11: "webdav"}
# What spice-html5 uses (besides main), and what the default refuses:
# types SPICE names, then ones it does not.
DEFAULT_ALLOWED = (2, 3, 4, 5, 10)
DEFAULT_REFUSED = (6, 7, 8, 9, 11, 12, 255)

# Devices that give QEMU's SPICE server a channel of every type it has
# (spice-server 0.15 has no tunnel channel): playback and record (SPICE
# audio), port (a spiceport chardev), webdav (the spiceport that
# spice-server makes a webdav channel), usbredir and smartcard.
CHANNEL_DEVICES = (
    "-audiodev", "spice,id=snd0", "-device", "intel-hda",
    "-device", "hda-duplex,audiodev=snd0",
    "-device", "virtio-serial-pci",
    "-chardev", "spiceport,id=port0,name=org.spicegate.test.0",
    "-device", "virtserialport,chardev=port0,name=org.spicegate.test.0",
    "-chardev", "spiceport,id=dav0,name=org.spice-space.webdav.0",
    "-device", "virtserialport,chardev=dav0,name=org.spice-space.webdav.0",
    "-device", "qemu-xhci",
    "-chardev", "spicevmc,id=usbr0,name=usbredir", "-device", "usb-redir,chardev=usbr0",
    "-device", "usb-ccid",
    "-chardev", "spicevmc,id=ccid0,name=smartcard", "-device", "ccid-card-passthru,chardev=ccid0",
)


def linked_line(ctype):
    # spice-server's reds_info_new_channel(), a debug message (domain
    # "Spice") once a channel has linked and authenticated.
    return re.compile(r"channel %d:0, connected successfully" % ctype)


class ChannelPolicy(QemuTestCase):
    qemu_args = CHANNEL_DEVICES
    qemu_env = {"G_MESSAGES_DEBUG": "Spice"}

    def setUp(self):
        super().setUp()
        self.token = random_token()
        # What QEMU logged before the test (setUp's probe linked a main
        # channel directly) is not the test's.
        self.qemu_log_start = len(self.qemu_log())
        # A monitor that hears QEMU's events from here on.
        self.qmp = self.reg.add(QmpClient(self.qemu.qmp_path))

    def qemu_log(self):
        with open(self.qemu.stderr_path, errors="replace") as f:
            return f.read()

    def log_since_setup(self):
        return self.qemu_log()[self.qemu_log_start:]

    def keep_reading(self, client):
        """Reads @client's messages from now on, as a browser does, so that
        no queue fills on either side."""
        def drain():
            try:
                while True:
                    client.read_message()
            except Exception:      # the test closed it, or the session ended
                pass
        threading.Thread(target=drain, daemon=True).start()

    def channel(self, sg):
        return SpiceClient(sg.ws(token=self.token))

    def connect_main(self, sg):
        main = self.channel(sg)
        try:
            self.assertEqual(main.link(CHANNEL_MAIN, channel_caps=(1 << 2,)).error, LINK_ERR_OK)
            self.assertEqual(main.auth(), LINK_ERR_OK, "main auth")
            payload, _ = main.wait_message(SPICE_MSG_MAIN_INIT)
        except WsClosed as e:
            self.fail("main channel closed: %d %r%s" % (e.code, e.reason, sg.log_tail()))
        self.keep_reading(main)
        return main, int.from_bytes(payload[:4], "little")

    def expect_linked(self, sg, ctype, session_id):
        client = self.channel(sg)
        try:
            reply = client.link(ctype, connection_id=session_id)
            self.assertEqual(reply.error, LINK_ERR_OK, "%s: QEMU's link reply" % NAMES[ctype])
            self.assertEqual(client.auth(), LINK_ERR_OK, "%s: link result" % NAMES[ctype])
        except WsClosed as e:
            self.fail("%s closed: %d %r%s" % (NAMES[ctype], e.code, e.reason, sg.log_tail()))
        if ctype == CHANNEL_DISPLAY:
            # As spice-html5 does: spice-server's main thread waits for it
            # (display_channel_client_wait_for_init), links of other
            # channels included. pixmap_cache_id u8, pixmap_cache_size i64,
            # glz_dictionary_id u8, glz_dictionary_window_size i32.
            client.send_message(SPICE_MSGC_DISPLAY_INIT,
                                struct.pack("<BqBi", 1, 1 << 20, 1, 1 << 20))
        self.keep_reading(client)
        return client

    def expect_refused(self, sg, ctype, session_id):
        name = NAMES.get(ctype, "unknown")
        ws = sg.ws(token=self.token)
        ws.send_binary(link_message(ctype, connection_id=session_id))
        self.assert_closed(ws, CLOSE_CHANNEL_REFUSED, sg)
        sg.wait_log(r'refused client=\S+ tok:\w+ reason="SPICE channel not allowed here": '
                    r'channel %s \(type %d\) is not in \[spice\] channels \(' % (name, ctype))

    def qemu_channel_types(self):
        return {c[0] for c in self.qmp.spice_channels()}

    def spice_connections(self):
        """How many connections QEMU's SPICE server accepted since setUp
        (its SPICE_CONNECTED events), after a command that reads them."""
        self.qmp.execute("query-status")
        return sum(1 for e in self.qmp.events if e["event"] == "SPICE_CONNECTED")

    def wait_linked_in_qemu_log(self, types):
        poll_until(lambda: all(linked_line(t).search(self.log_since_setup()) for t in types),
                   "QEMU's log to show channels %s linked" % [NAMES[t] for t in types])

    def test_default_list(self):
        sg = self.start_spicegate({self.token: self.qemu_target})
        self.main, session_id = self.connect_main(sg)
        # Refused ones first: QEMU logs links in the order they come, so
        # once the allowed ones that follow are in its log, a refused one
        # that had reached it would be too.
        for ctype in DEFAULT_REFUSED:
            with self.subTest(refused=ctype):
                self.expect_refused(sg, ctype, session_id)
        self.clients = []       # kept open until the checks are done
        for ctype in DEFAULT_ALLOWED:
            with self.subTest(allowed=NAMES[ctype]):
                self.clients.append(self.expect_linked(sg, ctype, session_id))
        self.wait_linked_in_qemu_log((CHANNEL_MAIN,) + DEFAULT_ALLOWED)
        log = self.log_since_setup()
        for ctype in DEFAULT_REFUSED:
            with self.subTest(refused=ctype):
                self.assertIsNone(linked_line(ctype).search(log),
                                  "QEMU's log names refused channel %d" % ctype)
        # QEMU's monitor: the console's channels are exactly the allowed,
        # and it accepted no connection for a refused one.
        self.assertEqual(self.qemu_channel_types(), {CHANNEL_MAIN} | set(DEFAULT_ALLOWED))
        self.assertEqual(self.spice_connections(), 1 + len(DEFAULT_ALLOWED))

    def test_custom_list(self):
        # What the default refuses goes through when listed, and QEMU's log
        # names it (so its absence above means something); display, left
        # out, is refused.
        listed = (6, 8, 9, 11)
        sg = self.start_spicegate({self.token: self.qemu_target},
                                  config="[spice]\nchannels = main; record; smartcard; "
                                         "usbredir; webdav\n")
        self.main, session_id = self.connect_main(sg)
        self.expect_refused(sg, 2, session_id)
        self.clients = [self.expect_linked(sg, ctype, session_id) for ctype in listed]
        self.wait_linked_in_qemu_log((CHANNEL_MAIN,) + listed)
        self.assertIsNone(linked_line(2).search(self.log_since_setup()),
                          "QEMU's log names the refused display channel")
        self.assertEqual(self.qemu_channel_types(), {CHANNEL_MAIN} | set(listed))
        self.assertEqual(self.spice_connections(), 1 + len(listed))
