#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Integration tests: the real spicegate daemon against QEMU's real SPICE
# server (and fake peers for fault injection), driven by Python's unittest
# with the standard library only. `make check` sets SPICEGATE, top_srcdir
# and top_builddir; the defaults below serve an in-tree run by hand.
# Exit 77 (skip) only when QEMU is not installed.

if ! command -v qemu-system-x86_64 >/dev/null 2>&1; then
    echo "SKIP: qemu-system-x86_64 is not installed"
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

# Debian's python3 on purpose: no pyenv shim, no site packages needed.
# timeout is a last resort against a hang; every wait inside is bounded.
timeout --kill-after=30 1800 \
    /usr/bin/python3 -m unittest discover -s "$top_srcdir/tests/integ" -p 'test_*.py' -v
exit $?
