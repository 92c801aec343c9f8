# SPDX-License-Identifier: Apache-2.0
"""Token file reloads are all or nothing per file: a bad write of the token
file followed by SIGHUP (garbled, truncated, empty, a FIFO in its place, far
too big) keeps the tokens the file had, logs why, and reports to systemd;
open consoles never notice. A good change is picked up. Start-up with a bad
file is a configuration error (exit 2) that lists every bad line."""

import os
import re
import signal
import socket
import time

from harness import (
    recv_notify,
    CHANNEL_MAIN, CLOSE_BAD_TOKEN, PAGES, SPICE_HTML5, IntegTestCase, Spicegate,
    WsClosed, link_message, open_echo, poll_until, random_token, run_spicegate, still_relays,
)

# The cap of src/token_file.h (SG_TOKEN_FILE_MAX_BYTES).
MAX_FILE_BYTES = 16 << 20



class BadReload(IntegTestCase):
    """One daemon with one known token and one open console per test; the
    file is then broken in one way and SIGHUP sent."""

    def setUp(self):
        super().setUp()
        self.peer = self.echo_peer()
        self.old = random_token()
        self.sg = self.start_spicegate({self.old: self.peer.target})
        self.path = self.sg.token_path
        self.live = open_echo(self.sg, self.old)

    def try_token(self, token):
        """The close code a fresh session with @token gets, or 0 when it
        relays."""
        ws = self.sg.ws(token=token)
        msg = link_message(CHANNEL_MAIN)
        try:
            ws.send_binary(msg)
            return 0 if ws.recv_exact(len(msg)) == msg else -1
        except WsClosed as e:
            return e.code
        finally:
            ws.close()

    def write_raw(self, data):
        """Replaces the token file with @data, atomically (so the only
        fault is the contents)."""
        tmp = self.path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, self.path)

    def reload_and_assert_kept(self, why):
        """SIGHUP; the log names the file, @why (a regex) and that its old
        token stays; the open console, /healthz and the old token work."""
        self.sg.send_signal(signal.SIGHUP)
        self.sg.wait_log(r"tokens: %s: %s.*; keeping the 1 token\(s\) it had before"
                         % (re.escape(self.path), why))
        self.sg.wait_log(r"WARNING.*reload: .*1 file\(s\) refused, 1 of them keep their "
                         r"previous tokens; 1 token\(s\) in use from " + re.escape(self.path))
        self.assertTrue(self.sg.alive(), self.sg.log_tail())
        self.assertEqual(self.sg.get("/healthz")[0], 200)
        self.assertTrue(still_relays(self.live), "the open console broke")
        self.assertEqual(self.try_token(self.old), 0, "the known token was lost" +
                         self.sg.log_tail())
        # A good write afterwards is picked up as usual.
        new = random_token()
        self.sg.write_tokens({new: self.peer.target})
        self.sg.send_signal(signal.SIGHUP)
        poll_until(lambda: self.try_token(new) == 0, "the new token after a good reload")
        self.assertEqual(self.try_token(self.old), CLOSE_BAD_TOKEN[0])
        self.assertTrue(still_relays(self.live))
        self.sg.wait_log(r"tokens: 1 loaded from " + re.escape(self.path))

    def test_garbled(self):
        new = random_token()
        # A good line does not save a file with bad ones: it is refused whole.
        self.write_raw(b"%s: %s\n\x1f\x8b\x08\x00garbage\xff\xfe\n%s\n\x00\x01\x02\n"
                       % (new.encode(), self.peer.target.encode(), new.encode()))
        self.reload_and_assert_kept(r"3 bad line\(s\)")
        for line in (2, 3, 4):
            self.sg.wait_log(r"%s:%d: " % (re.escape(self.path), line))
        self.assertNotIn(new, self.sg.log(), "a token of the bad file in the log")
        self.assertNotIn(new[:16], self.sg.log(), "a token prefix in the log")

    def test_truncated(self):
        # A write cut off inside a line's token: "TOK" without ": HOST:PORT".
        new = random_token()
        text = "%s: %s\n%s: %s\n" % (self.old, self.peer.target, new, self.peer.target)
        self.write_raw(text.encode()[:len(self.old) + len(self.peer.target) + 3 + 10])
        self.reload_and_assert_kept(r"1 bad line\(s\)")
        self.sg.wait_log(r"%s:2: expected 'TOKEN: HOST:PORT'" % re.escape(self.path))

    def test_empty(self):
        self.write_raw(b"")
        self.reload_and_assert_kept(r"empty file \(0 bytes\)")

    def test_fifo(self):
        # Nobody ever writes the FIFO: a blocking open or read would hang
        # the daemon's loop (and /healthz with it).
        os.unlink(self.path)
        os.mkfifo(self.path)
        self.reload_and_assert_kept(r"not a regular file")

    def test_fifo_swapped_in_after_stat(self):
        # The race the cap on stat() alone would lose: a FIFO appears
        # between the daemon's stat() and its open(). Without a way to hit
        # that window on demand, many reloads race many swaps; a blocking
        # open() would hang the loop on the first lost race.
        fifo = self.path + ".fifo"
        good = self.path + ".good"
        os.mkfifo(fifo)
        with open(good, "w") as f:
            f.write("%s: %s\n" % (self.old, self.peer.target))
        for _ in range(50):
            os.link(fifo, self.path + ".new")
            os.replace(self.path + ".new", self.path)
            self.sg.send_signal(signal.SIGHUP)
            os.link(good, self.path + ".new")
            os.replace(self.path + ".new", self.path)
            self.sg.send_signal(signal.SIGHUP)
        self.assertEqual(self.sg.get("/healthz")[0], 200, self.sg.log_tail())
        self.assertTrue(still_relays(self.live))
        self.assertEqual(self.try_token(self.old), 0)

    def test_huge(self):
        # 83 MB stalled the loop for 1.7 s before the cap: now refused by its
        # size, unread (sparse here, so the test writes nothing big).
        with open(self.path, "r+b") as f:
            f.truncate(83 * 1000 * 1000)
        t0 = time.monotonic()
        self.sg.send_signal(signal.SIGHUP)
        self.assertEqual(self.sg.get("/healthz")[0], 200)
        self.assertLess(time.monotonic() - t0, 1.0, "/healthz slow right after the reload")
        self.reload_and_assert_kept(r"83000000 bytes, more than the 16 MiB a token file may "
                                    r"have")

    def test_just_over_the_cap(self):
        with open(self.path, "r+b") as f:
            f.truncate(MAX_FILE_BYTES + 1)
        self.reload_and_assert_kept(r"%d bytes, more than the 16 MiB" % (MAX_FILE_BYTES + 1))


class StartWithBadFile(IntegTestCase):

    def test_bad_lines_at_start_exit_2(self):
        # Start-up has no previous table to keep: a file with errors is a
        # configuration error, every bad line listed, and no token logged.
        good, bad = random_token(), random_token()
        path = os.path.join(self.tmp, "tokens")
        with open(path, "w") as f:
            f.write("%s: 127.0.0.1:5900\n%s 127.0.0.1:1\n%s: 127.0.0.1:0\n" % (good, bad, bad))
        for workers in ("1", "2"):   # with workers, the master checks the file first
            with self.subTest(workers=workers):
                status, _, err = run_spicegate(["--listen", "127.0.0.1:0", "--token-file", path,
                                                "--web", SPICE_HTML5, "--pages", PAGES,
                                                "--workers", workers])
                self.assertEqual(status, 2, err)
                self.assertRegex(err, re.escape(path) + r":2: expected 'TOKEN: HOST:PORT'")
                self.assertRegex(err, re.escape(path) + r":3: port out of range")
                self.assertRegex(err, r"spicegate: \[tokens\] file: .*2 bad line\(s\)")
                self.assertNotIn(good, err)
                self.assertNotIn(bad, err)

    def test_empty_file_at_start_is_no_tokens(self):
        # Nothing to keep at start: an empty file is no tokens, logged (a
        # reload refuses it: BadReload.test_empty).
        sg = Spicegate(self.reg, self.tmp)
        os.truncate(sg.token_path, 0)
        sg.start()
        sg.wait_log(r"tokens: %s: empty file \(0 bytes\): no tokens" % re.escape(sg.token_path))
        self.assert_refused(sg, CLOSE_BAD_TOKEN, token=random_token())


class NotifyOnReload(IntegTestCase):
    """The reload reports to systemd: RELOADING=1 (with MONOTONIC_USEC, for
    systemd 253's Type=notify-reload) and then READY=1 with STATUS=. The
    test owns the $NOTIFY_SOCKET datagram socket, as systemd would."""

    def setUp(self):
        super().setUp()
        self.notify_path = os.path.join(self.tmp, "notify")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.notify_path)
        self.reg.add(self.notify)

    def recv_state(self):
        return recv_notify(self.notify)

    def test_reload_notifies(self):
        peer = self.echo_peer()
        old = random_token()
        env = dict(os.environ, NOTIFY_SOCKET=self.notify_path)
        sg = self.start_spicegate({old: peer.target}, env=env)
        self.assertEqual(self.recv_state(), {"READY": "1"})

        # A good reload.
        sg.write_tokens({old: peer.target, random_token(): peer.target})
        before = time.monotonic()
        sg.send_signal(signal.SIGHUP)
        state = self.recv_state()
        self.assertEqual(state.get("RELOADING"), "1", state)
        # CLOCK_MONOTONIC in microseconds (Python's monotonic clock is the same).
        usec = int(state["MONOTONIC_USEC"])
        self.assertLessEqual(before * 1e6 - 1e5, usec)
        self.assertLessEqual(usec, time.monotonic() * 1e6 + 1e5)
        state = self.recv_state()
        self.assertEqual(state, {"READY": "1", "STATUS": "reloaded: 2 console token(s)"})

        # A refused one: systemd is told, in one STATUS line.
        with open(sg.token_path, "w") as f:
            f.write("garbage\n")
        sg.send_signal(signal.SIGHUP)
        self.assertEqual(self.recv_state().get("RELOADING"), "1")
        state = self.recv_state()
        self.assertEqual(state.get("READY"), "1", state)
        self.assertRegex(state.get("STATUS", ""),
                         r"^reload refused some tokens \(see the log\): .*1 bad line\(s\).*"
                         r"2 token\(s\) in use")
        self.assertEqual(sg.get("/healthz")[0], 200)

    def test_reload_notifies_with_workers(self):
        # The master speaks for the workers: it reports the reload once it
        # has passed SIGHUP on; the result is logged once (by worker 0: the
        # workers read the same files).
        peer = self.echo_peer()
        env = dict(os.environ, NOTIFY_SOCKET=self.notify_path)
        sg = self.start_spicegate({random_token(): peer.target}, env=env,
                                  extra_args=("--workers", "2"))
        self.assertEqual(self.recv_state(), {"READY": "1"})
        with open(sg.token_path, "w") as f:
            f.write("garbage\n")
        sg.send_signal(signal.SIGHUP)
        self.assertEqual(self.recv_state().get("RELOADING"), "1")
        self.assertEqual(self.recv_state(), {
            "READY": "1", "STATUS": "reload passed to 2 worker(s); see the log for its result"})
        sg.wait_log(r"WARNING.*reload: .*1 bad line", count=1)
        self.assertEqual(sg.get("/healthz")[0], 200)
