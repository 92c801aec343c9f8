#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Nova integration tests: the real spicegate daemon checks console tokens
# with a real Keystone and Nova API (openstack_env.py, on loopback) and relays
# to QEMU's real SPICE server. `make check` sets SPICEGATE, top_srcdir and
# top_builddir; the defaults below serve an in-tree run by hand.
# Exit 77 (skip) only when QEMU or Debian's OpenStack libraries
# (tests/nova/setup.sh installs them) are missing.

PY=/usr/bin/python3

if ! command -v qemu-system-x86_64 >/dev/null 2>&1; then
    echo "SKIP: qemu-system-x86_64 is not installed"
    exit 77
fi
if ! "$PY" -c 'import keystone.server.flask, nova.api.openstack.compute, keystonemiddleware.auth_token' \
        >/dev/null 2>&1; then
    echo "SKIP: $PY cannot import keystone, nova and keystonemiddleware (run tests/nova/setup.sh)"
    exit 77
fi

here=$(cd "$(dirname "$0")" && pwd)
: "${top_srcdir:=$(cd "$here/../.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
: "${SPICEGATE:=$top_builddir/spicegate}"
export SPICEGATE top_srcdir top_builddir
# Keep __pycache__ out of the source tree (read-only under distcheck).
PYTHONDONTWRITEBYTECODE=1
export PYTHONDONTWRITEBYTECODE

# The OpenStack servers run in their own sessions (openstack_env.py), so a
# test run killed from outside cannot take them down itself: its state dirs
# live under this one, and whatever still runs there is stopped on exit.
SG_NOVA_STATE_DIR=$(mktemp -d "${TMPDIR:-/tmp}/sg-nova-run.XXXXXX") || exit 1
export SG_NOVA_STATE_DIR
cleanup() {
    for d in "$SG_NOVA_STATE_DIR"/*/; do
        [ -f "$d/env.json" ] && "$PY" "$here/openstack_env.py" stop --dir "$d" >/dev/null 2>&1
    done
    [ "${SG_INTEG_KEEP:-}" = 1 ] || rm -rf "$SG_NOVA_STATE_DIR"
}
trap cleanup EXIT

# timeout is a last resort against a hang; every wait inside is bounded. It
# runs in its own process group, so pass INT/TERM on to it (it passes them
# to Python); the EXIT trap then stops the servers Python could not.
timeout --kill-after=30 900 \
    "$PY" -m unittest discover -s "$top_srcdir/tests/nova" -p 'test_*.py' -v &
child=$!
trap 'kill -TERM $child 2>/dev/null' INT TERM
wait $child
status=$?
while kill -0 $child 2>/dev/null; do
    wait $child
    status=$?
done
exit $status
