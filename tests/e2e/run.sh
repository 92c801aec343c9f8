#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
#
# End-to-end test: spice-html5 in headless Chromium and Firefox, over http
# and https (HTTP/2), through spicegate, to QEMU's SPICE server
# (console.test.mjs says what it checks). `make check` runs this with
# SPICEGATE, top_srcdir and top_builddir in the environment.
#
# Exit 77 (skipped) only when QEMU is missing or neither Debian's chromium
# nor firefox-esr is installed; with one of them missing, its tests are
# skipped and say so. The one npm package it needs (puppeteer-core, which
# drives the installed browsers and never downloads one) is installed from
# the lock file on first use, into $top_builddir/tests/e2e/node_modules: in a
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

if [ ! -x /usr/bin/chromium ] && [ ! -x /usr/bin/firefox-esr ]; then
    echo "SKIP: no browser: neither /usr/bin/chromium nor /usr/bin/firefox-esr (apt-get install chromium firefox-esr)"
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

# puppeteer-core at the version package.json pins, or nothing.
wanted=$(sed -n 's/^ *"puppeteer-core": *"\([^"]*\)".*/\1/p' "$e2e_src/package.json")
installed() {
    sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' \
        "$1/node_modules/puppeteer-core/package.json" 2>/dev/null | head -n 1
}

if [ "$(installed "$e2e_src")" = "$wanted" ]; then
    modules=$e2e_src/node_modules
elif [ "$(installed "$work")" = "$wanted" ]; then
    modules=$work/node_modules
else
    # Install in a scratch directory and move the result into place, so an
    # interrupted install never leaves a half-filled node_modules behind.
    echo "installing puppeteer-core $wanted into $work/node_modules"
    scratch=$(mktemp -d "$work/.npm-install.XXXXXX")
    trap 'rm -rf "$scratch"' EXIT
    cp "$e2e_src/package.json" "$e2e_src/package-lock.json" "$scratch/"
    # puppeteer-core downloads nothing itself; the variable makes sure
    # nothing in its dependencies does either.
    (cd "$scratch" && PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
    rm -rf "$work/node_modules"
    mv "$scratch/node_modules" "$work/node_modules"
    rm -rf "$scratch"
    trap - EXIT
    modules=$work/node_modules
fi

# console.test.mjs loads puppeteer-core through require(), which honours
# NODE_PATH. Screenshots go to $top_builddir/tests/e2e/out/ for a person to
# look at: console-BROWSER-SCHEME.png, the guest's boot menu after the
# Escape keystroke, and FAILED-*.png, the page when a test failed.
NODE_PATH=$modules${NODE_PATH:+:$NODE_PATH}
E2E_OUT_DIR=${E2E_OUT_DIR:-$work/out}
export NODE_PATH E2E_OUT_DIR
rm -f "$E2E_OUT_DIR"/FAILED-*.png

exec node --test "$e2e_src/ticket.test.mjs" "$e2e_src/console.test.mjs"
