#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# End-to-end test: spice-html5 in headless Chromium, through spicegate, to
# QEMU's SPICE server (console.test.mjs says what it checks). `make check`
# runs this with SPICEGATE, top_srcdir and top_builddir in the environment.
#
# Exit 77 (skipped) only when Debian's chromium or QEMU is missing. The one
# npm package it needs (playwright-core, which drives the installed
# /usr/bin/chromium and never downloads a browser) is installed from the
# lock file on first use, into $top_builddir/tests/e2e/node_modules: in a
# git checkout built in place that is the gitignored tests/e2e/node_modules,
# and under `make distcheck` it keeps the read-only srcdir untouched. One
# already in the source tree (`npm ci` run by hand there) is used as it is.
set -eu

: "${top_srcdir:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
: "${SPICEGATE:=$top_builddir/spicegate}"
export SPICEGATE top_srcdir top_builddir

e2e_src=$top_srcdir/tests/e2e
e2e_build=$top_builddir/tests/e2e

if [ ! -x /usr/bin/chromium ]; then
    echo "SKIP: /usr/bin/chromium not installed (apt-get install chromium)"
    exit 77
fi
if ! command -v qemu-system-x86_64 >/dev/null 2>&1; then
    echo "SKIP: qemu-system-x86_64 not installed (apt-get install qemu-system-x86)"
    exit 77
fi

# node_modules (unless the sources already have one) and out/ go to the build
# tree, which is the source tree in an in-tree build. Not `test -w` on the
# sources: as root it is true even in distcheck's read-only copy.
work=$e2e_build
mkdir -p "$work"

# playwright-core at the version package.json pins, or nothing.
wanted=$(sed -n 's/^ *"playwright-core": *"\([^"]*\)".*/\1/p' "$e2e_src/package.json")
installed() {
    sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' \
        "$1/node_modules/playwright-core/package.json" 2>/dev/null | head -n 1
}

if [ "$(installed "$e2e_src")" = "$wanted" ]; then
    modules=$e2e_src/node_modules
elif [ "$(installed "$work")" = "$wanted" ]; then
    modules=$work/node_modules
else
    # Install in a scratch directory and move the result into place, so an
    # interrupted install never leaves a half-filled node_modules behind.
    echo "installing playwright-core $wanted into $work/node_modules"
    scratch=$(mktemp -d "$work/.npm-install.XXXXXX")
    trap 'rm -rf "$scratch"' EXIT
    cp "$e2e_src/package.json" "$e2e_src/package-lock.json" "$scratch/"
    (cd "$scratch" && npm ci --no-audit --no-fund --loglevel=error)
    rm -rf "$work/node_modules"
    mv "$scratch/node_modules" "$work/node_modules"
    rm -rf "$scratch"
    trap - EXIT
    modules=$work/node_modules
fi

# console.test.mjs loads playwright-core through require(), which honours
# NODE_PATH. Screenshots go to $top_builddir/tests/e2e/out/ for a person to
# look at (console.png: the guest's boot menu after the Escape keystroke).
NODE_PATH=$modules${NODE_PATH:+:$NODE_PATH}
E2E_OUT_DIR=${E2E_OUT_DIR:-$work/out}
export NODE_PATH E2E_OUT_DIR

exec node --test "$e2e_src/ticket.test.mjs" "$e2e_src/console.test.mjs"
