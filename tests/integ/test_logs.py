# SPDX-License-Identifier: Apache-2.0
"""Log lines: one open and one close line per session, refusals logged,
console tokens never in full, timestamps, --log-file reopened on SIGHUP,
log_format = json, and one console id shared by a console's channels."""

import json
import os
import re
import signal
import struct
import threading

from harness import (
    CHANNEL_CURSOR, CHANNEL_DISPLAY, CHANNEL_INPUTS, CHANNEL_MAIN, CLOSE_BAD_TOKEN,
    CLOSE_NORMAL, LINK_ERR_OK, SPICE_MSG_INPUTS_INIT, SPICE_MSG_MAIN_INIT,
    SPICE_MSGC_DISPLAY_INIT, FakePeer,
    IntegTestCase, Qemu, QmpClient, children, Spicegate, SpiceClient, WsClosed,
    link_message,
    pattern, poll_until, random_token, sink_source_handler, token_tag,
)

# "2026-12-07T01:02:03.456+00:00 spicegate[4711] MESSAGE: ..."
STAMPED = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d "
                     r"spicegate\[\d+\] (?:DEBUG|INFO|MESSAGE|WARNING|CRITICAL|ERROR): ")


def read_text(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def wait_in_file(path, rx, what, count=1):
    """Polls @path until the regex @rx matches @count times; returns the
    matches."""
    crx = re.compile(rx)

    def found():
        m = crx.findall(read_text(path))
        return m if len(m) >= count else None
    try:
        return poll_until(found, what)
    except AssertionError as e:
        raise AssertionError("%s\n--- %s ---\n%s" % (e, path, read_text(path)[-3000:])) from None


class Logs(IntegTestCase):

    def test_tokens_never_logged(self):
        peer = self.echo_peer()
        good, cookie_good, wrong, in_bad_line = (random_token() for _ in range(4))
        tokens = {good: peer.target, cookie_good: peer.target}
        sg = self.start_spicegate(tokens, extra_args=("--debug",))
        self.assert_echo_session(sg, token=good)
        self.assert_echo_session(sg, cookie="token=" + cookie_good)
        self.assert_refused(sg, CLOSE_BAD_TOKEN, token=wrong)
        self.assert_refused(sg, CLOSE_BAD_TOKEN, cookie="token=" + wrong)
        # Lines the token file parser must reject (and report by FILE:LINE)
        # without quoting the secret they carry; a reload logs them (at
        # start they would stop spicegate with exit status 2).
        sg.write_tokens(tokens, token_lines=("%s 127.0.0.1:1" % in_bad_line,
                                             "%s: 127.0.0.1:99999" % in_bad_line,
                                             "%s: [::1" % in_bad_line))
        sg.send_signal(signal.SIGHUP)
        sg.wait_log(r"reload: ")
        sg.wait_log(r"close .*reason=", count=2)
        sg.wait_log(r"refused .*", count=2)
        sg.send_signal(signal.SIGTERM)
        self.assertEqual(sg.wait_exit(), 0)
        log = sg.log()
        for tok in (good, cookie_good, wrong, in_bad_line):
            with self.subTest(token=tok[:6]):
                self.assertNotIn(tok, log, "a token in full in the log")
                # A careful operator also expects no recognisable piece.
                self.assertNotIn(tok[:16], log, "a 16-character token prefix in the log")
                self.assertNotIn(tok[-16:], log, "a 16-character token suffix in the log")
        # The bad lines (4, 5 and 6 of the file) were reported by file:line.
        for line in (4, 5, 6):
            self.assertRegex(log, re.escape(sg.token_path) + r":%d\b" % line)

    def test_open_and_close_lines(self):
        token = random_token()
        up_extra = pattern(3, 1000)
        down = pattern(4, 5000)
        peer = FakePeer(self.reg, sink_source_handler(down), "sink-source")
        sg = self.start_spicegate({token: peer.target})
        ws = sg.ws(token=token)
        client_port = ws.sock.getsockname()[1]
        msg = link_message(CHANNEL_MAIN)
        ws.send_binary(msg)
        conn = peer.wait_conn()
        self.assertTrue(conn.link_read.wait(10))
        ws.send_binary(up_extra)
        conn.go.set()
        self.assertEqual(ws.recv_exact(len(down)), down)
        ws.send_close()
        ws.wait_close()
        tag = token_tag(token)
        target = re.escape(peer.target)
        opens = sg.wait_log(r"\[s:(\w+)\] open client=127\.0\.0\.1:(\d+) %s target=%s channel=main"
                            % (tag, target))
        sid, cport = opens[0]
        self.assertEqual(int(cport), client_port, "client= is the browser's address")
        closes = sg.wait_log(
            r"\[s:%s\] close client=127\.0\.0\.1:%s .*target=%s channel=main "
            r"duration=(\d+\.\d{3})s up=(\d+) down=(\d+) reason=(.*)" % (sid, cport, target))
        duration, up, down_n, reason = closes[0]
        self.assertGreaterEqual(float(duration), 0.0)
        # up: browser -> SPICE server (link + extra); down: the other way.
        self.assertEqual(int(up), len(msg) + len(up_extra), "up= bytes")
        self.assertEqual(int(down_n), len(down), "down= bytes")
        self.assertTrue(reason.strip(), "empty close reason")
        # Exactly one open and one close line for the session.
        self.assertEqual(len(re.findall(r"\[s:%s\] open " % sid, sg.log())), 1)
        self.assertEqual(len(re.findall(r"\[s:%s\] close " % sid, sg.log())), 1)

    def test_channel_name_and_server_close_reason(self):
        token = random_token()
        peer = FakePeer(self.reg, sink_source_handler(b"bye"), "closer")
        sg = self.start_spicegate({token: peer.target})
        ws = sg.ws(token=token)
        ws.send_binary(link_message(CHANNEL_DISPLAY, connection_id=7))
        conn = peer.wait_conn()
        self.assertTrue(conn.link_read.wait(10))
        conn.go.set()
        self.assertEqual(ws.recv_exact(3), b"bye")
        conn.sock.shutdown(2)   # the SPICE server ends the console
        code, reason, _ = ws.wait_close()
        self.assertEqual((code, reason), CLOSE_NORMAL)
        sg.wait_log(r"\[s:\w+\] open .*channel=display")
        sg.wait_log(r"\[s:\w+\] close .*channel=display .*reason=")

    def test_refusal_line(self):
        peer = self.echo_peer()
        sg = self.start_spicegate({random_token(): peer.target})
        wrong = random_token()
        self.assert_refused(sg, CLOSE_BAD_TOKEN, token=wrong)
        # CONTRACTS.md: "[s:N] refused client=ADDR reason=... (tok:XXXXXXXX)".
        # The order of reason and tag is not checked, their presence is.
        line = sg.wait_log(r"\[s:\w+\] refused client=127\.0\.0\.1(?::\d+)? .*")[0]
        self.assertIn(token_tag(wrong), line)
        self.assertRegex(line, r"reason=\"?console token invalid or expired")
        # A refused session is not also logged as opened.
        self.assertNotRegex(sg.log(), r"open .*%s" % token_tag(wrong))


class Stamps(IntegTestCase):
    """Every line says when, with the date and the zone (ISO 8601)."""

    def assert_all_stamped(self, text):
        lines = text.splitlines()
        self.assertTrue(lines, "no log lines at all")
        for line in lines:
            self.assertRegex(line, STAMPED)

    def test_stderr_lines_are_stamped(self):
        peer = self.echo_peer()
        token = random_token()
        # A zone that is not UTC: the offset must be the zone's own.
        sg = self.start_spicegate({token: peer.target}, env=dict(os.environ, TZ="<+0530>-5:30"))
        self.assert_echo_session(sg, token=token)
        sg.wait_log(r"\[s:\w+\] close ")
        sg.send_signal(signal.SIGTERM)
        self.assertEqual(sg.wait_exit(), 0)
        self.assert_all_stamped(sg.log())
        self.assertRegex(sg.log(), r"\.\d{3}\+05:30 spicegate\[%d\] MESSAGE: \[s:\w+\] open "
                         % sg.pid)

    def test_log_file_lines_are_stamped(self):
        peer = self.echo_peer()
        token = random_token()
        sg = Stamps._log_file_sg(self, {token: peer.target})
        self.assert_echo_session(sg, token=token)
        wait_in_file(sg.log_path, r"\[s:\w+\] close ", "the close line in the log file")
        self.assert_all_stamped(read_text(sg.log_path))
        self.assertEqual(sg.log(), "", "lines on stderr despite --log-file")

    @staticmethod
    def _log_file_sg(case, tokens, extra=()):
        log_dir = os.path.join(case.tmp, "logdir")
        os.makedirs(log_dir, exist_ok=True)
        log_path = os.path.join(log_dir, "spicegate.log")
        sg = case.start_spicegate(tokens, extra_args=["--log-file", log_path] + list(extra))
        sg.log_path = log_path
        return sg


class JournalStream(IntegTestCase):
    """Under systemd, stderr is the journal's stream, named by
    $JOURNAL_STREAM (device:inode): the journal stamps the lines, so text
    lines carry no time, and each line starts with its syslog priority
    "<N>". (Where journald itself listens, text goes to it natively; this
    machine's tests stand in for the stream with a file.)"""

    def start_on_stream(self, tokens, config=None):
        sg = Spicegate(self.reg, self.tmp, tokens, config=config)
        open(sg.stderr_path, "w").close()      # the inode the stream names
        st = os.stat(sg.stderr_path)
        sg.env = dict(os.environ, JOURNAL_STREAM="%d:%d" % (st.st_dev, st.st_ino))
        return sg.start()

    def test_text_lines_unstamped(self):
        if os.path.exists("/run/systemd/journal/socket"):
            self.skipTest("journald listens here: text lines would go to it natively")
        peer = self.echo_peer()
        token = random_token()
        sg = self.start_on_stream({token: peer.target})
        self.assert_echo_session(sg, token=token)
        sg.wait_log(r"\[s:\w+\] close ")
        for line in sg.log().splitlines():
            self.assertRegex(line, r"^<[3-7]>spicegate\[%d\] [A-Z]+: " % sg.pid)
        self.assertRegex(sg.log(), r"<5>spicegate\[%d\] MESSAGE: \[s:\w+\] open " % sg.pid)

    def test_json_lines_keep_their_time(self):
        peer = self.echo_peer()
        token = random_token()
        sg = self.start_on_stream({token: peer.target}, config="[server]\nlog_format = json\n")
        self.assert_echo_session(sg, token=token)
        sg.wait_log(r'"event":"close"')
        for line in sg.log().splitlines():
            m = re.match(r"^<([3-7])>(\{.*\})$", line)
            self.assertTrue(m, line)
            obj = json.loads(m.group(2))
            self.assertIn("time", obj)
            self.assertEqual(int(m.group(1)), {"warning": 4, "message": 5, "info": 6,
                                               "debug": 7}[obj["level"]])


class LogFileReopen(IntegTestCase):
    """logrotate without copytruncate: rename the file, SIGHUP, and new
    lines land in a new file at the original path."""

    def rotate_and_check(self, workers):
        peer = self.echo_peer()
        token = random_token()
        extra = ["--workers", str(workers)] if workers > 1 else []
        sg = Stamps._log_file_sg(self, {token: peer.target}, extra)
        path, rotated = sg.log_path, sg.log_path + ".1"
        self.assert_echo_session(sg, token=token)
        wait_in_file(path, r"\[s:\w+\] close ", "the first session's close line")

        os.rename(path, rotated)
        sg.send_signal(signal.SIGHUP)
        # The token file is re-read after the reopen, and says so.
        wait_in_file(path, r"tokens: 1 loaded", "the reload line in the new file")
        # Every process writes to the new file: with workers, a session on
        # each one (the other stopped) logs its lines there.
        pids = [sg.pid] if workers == 1 else sorted(children(sg.pid))
        self.assertEqual(len(pids), workers, "worker processes found")
        for serving in pids:
            stopped = [p for p in pids if p != serving]
            for p in stopped:
                os.kill(p, signal.SIGSTOP)
            try:
                self.assert_echo_session(sg, token=token)
            finally:
                for p in stopped:
                    os.kill(p, signal.SIGCONT)
            wait_in_file(path, r"spicegate\[%d\] MESSAGE: \[s:\w+\] close " % serving,
                         "process %d's close line in the new file" % serving)
        old = read_text(rotated)
        self.assertEqual(len(re.findall(r"\] open ", old)), 1, "the old file got new sessions")
        self.assertEqual(len(re.findall(r"\] open ", read_text(path))), len(pids))
        sg.send_signal(signal.SIGTERM)
        self.assertEqual(sg.wait_exit(), 0)
        self.assertRegex(read_text(path), r"MESSAGE: stopped\n$")

    def test_sighup_reopens_log_file(self):
        self.rotate_and_check(workers=1)

    def test_sighup_reopens_log_file_in_every_worker(self):
        self.rotate_and_check(workers=2)

    def test_reopen_failure_keeps_old_file(self):
        peer = self.echo_peer()
        token = random_token()
        sg = Stamps._log_file_sg(self, {token: peer.target})
        path = sg.log_path
        log_dir = os.path.dirname(path)
        moved_dir = log_dir + ".old"
        os.rename(log_dir, moved_dir)          # the path is gone entirely
        sg.send_signal(signal.SIGHUP)
        moved = os.path.join(moved_dir, "spicegate.log")
        wait_in_file(moved, r"WARNING: --log-file: cannot reopen %s: No such file or directory; "
                     r"still writing to the old file" % re.escape(path), "the reopen warning")
        self.assert_echo_session(sg, token=token)
        wait_in_file(moved, r"\[s:\w+\] close ", "a session logged in the old file")


class JsonFormat(IntegTestCase):
    """[server] log_format = json: one JSON object per line, with the
    session's fields, and still no token."""

    def test_json_lines(self):
        token, wrong = random_token(), random_token()
        down = pattern(5, 3000)
        peer = FakePeer(self.reg, sink_source_handler(down), "sink-source")
        sg = self.start_spicegate({token: peer.target},
                                  config="[server]\nlog_format = json\n")
        ws = sg.ws(token=token)
        msg = link_message(CHANNEL_DISPLAY, connection_id=0x01020304)
        ws.send_binary(msg)
        conn = peer.wait_conn()
        self.assertTrue(conn.link_read.wait(10))
        conn.go.set()
        self.assertEqual(ws.recv_exact(len(down)), down)
        ws.send_close()
        ws.wait_close()
        self.assert_refused(sg, CLOSE_BAD_TOKEN, token=wrong)
        sg.wait_log(r'"event":"close"')
        sg.wait_log(r'"event":"refused"')
        sg.send_signal(signal.SIGTERM)
        self.assertEqual(sg.wait_exit(), 0)

        text = sg.log()
        self.assertNotIn(token[:16], text)
        self.assertNotIn(wrong[:16], text)
        objs = []
        for line in text.splitlines():
            obj = json.loads(line)          # every line is one JSON object
            self.assertIsInstance(obj, dict, line)
            self.assertRegex(obj["time"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d$")
            self.assertIn(obj["level"], ("debug", "info", "message", "warning"), line)
            self.assertEqual(obj["pid"], sg.pid)
            self.assertIsInstance(obj["message"], str)
            objs.append(obj)
        by_event = {o.get("event"): o for o in objs if "event" in o}
        opened, closed, refused = by_event["open"], by_event["close"], by_event["refused"]
        for o in (opened, closed):
            self.assertEqual(o["token_tag"], token_tag(token))
            self.assertEqual(o["target"], peer.target)
            self.assertEqual(o["channel"], "display")
            self.assertEqual(o["console"], 0x01020304)
            self.assertRegex(o["client"], r"^127\.0\.0\.1:\d+$")
            self.assertIsInstance(o["session"], int)
            self.assertNotIn("instance", o, "the token file knows no instance")
        self.assertEqual(opened["session"], closed["session"])
        self.assertEqual(closed["bytes_up"], len(msg))
        self.assertEqual(closed["bytes_down"], len(down))
        self.assertIsInstance(closed["duration"], float)
        self.assertEqual(closed["reason"], "browser closed")
        self.assertEqual(refused["token_tag"], token_tag(wrong))
        self.assertEqual(refused["reason"], "console token invalid or expired")
        self.assertTrue(any(o["message"].startswith("tokens: 1 loaded") for o in objs))


def drain_messages(client):
    """Reads @client's messages until it is closed (by the test, or the
    session's end)."""
    try:
        while True:
            client.read_message()
    except Exception:
        pass


class ConsoleId(IntegTestCase):
    """One console is one grep: every channel's open and close line says
    console=N, N being the connection id QEMU's SPICE server gave the
    console (its query-spice "connection-id").

    A QEMU of its own per test, ended by killing it: closing a console's
    four channels one after the other races QEMU 7.2's own teardown of the
    console and has crashed its SPICE server (SIGSEGV) in CI, whatever the
    order and with any spicegate. Killed, QEMU closes all four at once, and
    spicegate still writes each channel's close line."""

    def setUp(self):
        super().setUp()
        self.qemu = self.reg.add(Qemu(self.reg, self.tmp).start())
        self.qemu_target = "127.0.0.1:%d" % self.qemu.port

    def test_channels_of_one_console_share_an_id(self):
        token = random_token()
        sg = self.start_spicegate({token: self.qemu_target})
        qmp = self.reg.add(QmpClient(self.qemu.qmp_path))
        main = SpiceClient(sg.ws(cookie="token=" + token))
        try:
            self.assertEqual(main.link(CHANNEL_MAIN, channel_caps=(1 << 2,)).error, LINK_ERR_OK)
            self.assertEqual(main.auth(), LINK_ERR_OK)
            payload, _ = main.wait_message(SPICE_MSG_MAIN_INIT)
        except WsClosed as e:
            self.fail("main channel closed: %d %r%s" % (e.code, e.reason, sg.log_tail()))
        session_id = struct.unpack_from("<I", payload, 0)[0]

        others = {t: SpiceClient(sg.ws(cookie="token=" + token))
                  for t in (CHANNEL_DISPLAY, CHANNEL_INPUTS, CHANNEL_CURSOR)}
        # As test_spice does: every link first, then every ticket (linking
        # and authenticating one channel after the other has crashed QEMU
        # 7.2's SPICE server here, with spicegate from main as well).
        for ctype, client in others.items():
            client.send_link(ctype, connection_id=session_id)
        for ctype, client in others.items():
            self.assertEqual(client.read_reply().error, LINK_ERR_OK)
        for ctype, client in others.items():
            self.assertEqual(client.auth(), LINK_ERR_OK, "channel %d auth" % ctype)
            if ctype == CHANNEL_DISPLAY:
                # As spice-html5 does, at once: spice-server's main thread
                # waits for it (display_channel_client_wait_for_init), the
                # other channels' links included, for up to 10 s.
                # pixmap_cache_id u8, pixmap_cache_size i64,
                # glz_dictionary_id u8, glz_dictionary_window_size i32.
                client.send_message(SPICE_MSGC_DISPLAY_INIT,
                                    struct.pack("<BqBi", 1, 1 << 20, 1, 1 << 20))
                # Read what the display sends from now on, as a browser
                # does: a guest display switch waits for its queue.
                threading.Thread(target=drain_messages, args=(client,), daemon=True).start()
        others[CHANNEL_INPUTS].wait_message(SPICE_MSG_INPUTS_INIT)
        # QEMU agrees that these four are one console with that id.
        poll_until(lambda: sorted(c[0] for c in qmp.spice_channels()
                                  if c[2] == session_id) == [1, 2, 3, 4],
                   "query-spice to list four channels of connection %d" % session_id)
        # The main channel's id comes from QEMU (MAIN_INIT), not the client.
        sg.wait_log(r"\[s:\w+\] open .*channel=main console=%d\b" % session_id)

        qmp.close()
        self.qemu.proc.kill()
        sg.wait_log(r"\[s:\w+\] close .*console=%d\b" % session_id, count=4)
        lines = [l for l in sg.log().splitlines() if re.search(r"console=%d\b" % session_id, l)]
        opens = sorted(re.search(r"channel=(\w+)", l).group(1) for l in lines if "] open " in l)
        closes = sorted(re.search(r"channel=(\w+)", l).group(1) for l in lines if "] close " in l)
        self.assertEqual(opens, ["cursor", "display", "inputs", "main"], "\n".join(lines))
        self.assertEqual(closes, ["cursor", "display", "inputs", "main"], "\n".join(lines))
        # One open line per channel: the main channel's waited for its id
        # and was not written twice.
        self.assertEqual(len(re.findall(r"\] open ", sg.log())), 4, sg.log_tail())

    def test_refused_ticket_still_logs_open_and_close(self):
        """A main channel whose ticket QEMU refuses never gets an id: its
        open line is written without one, and its close line follows."""
        token = random_token()
        sg = self.start_spicegate({token: self.qemu_target})
        client = SpiceClient(sg.ws(token=token))
        self.assertEqual(client.link(CHANNEL_MAIN).error, LINK_ERR_OK)
        client.stream.send(struct.pack("<I", 1) + b"\0" * 128)
        self.assertEqual(struct.unpack("<I", client.stream.recv_exact(4))[0], 7)
        line = sg.wait_log(r"\[s:\w+\] open .*channel=main.*")[0]
        self.assertNotIn("console=", line)
        sg.wait_log(r"\[s:\w+\] close .*channel=main ")
