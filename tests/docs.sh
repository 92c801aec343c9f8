#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# docs.sh - checks what we ship beside the code: the man pages, the sample
# configuration, the systemd unit, the README's two commands and its request flow.
#
# Run by `make check` with top_srcdir and top_builddir in the environment.
# Every check runs even after one fails, so one run shows every problem.
# Parts whose tool is missing (mandoc, systemd-analyze) are skipped with a
# note; the rest still runs.

set -u

: "${top_srcdir:?top_srcdir is not set}"
: "${top_builddir:?top_builddir is not set}"

failed=0
checked=0

note() {
    printf 'docs.sh: %s\n' "$*"
}

fail() {
    printf 'docs.sh: FAIL: %s\n' "$*"
    failed=1
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/spicegate-docs.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' EXIT
trap 'exit 99' HUP INT TERM

# --- 1. configure's placeholders are all substituted -------------------------
for f in man/spicegate.8 man/spicegate.conf.5 conf/spicegate.conf; do
    if [ ! -f "$top_builddir/$f" ]; then
        fail "$f was not built"
        continue
    fi
    checked=$((checked + 1))
    if grep -n '@[A-Za-z_][A-Za-z_]*@' "$top_builddir/$f"; then
        fail "$f: placeholder left unsubstituted (see above)"
    fi
done

# --- 2. man pages: mandoc lint, warnings count as failures -------------------
if command -v mandoc >/dev/null 2>&1; then
    for page in man/spicegate.8 man/spicegate.conf.5; do
        [ -f "$top_builddir/$page" ] || continue
        checked=$((checked + 1))
        # mandoc prints nothing and exits 0 for a clean page; with
        # -W warning it exits 2 for warnings, 3 and up for worse.
        out=$(mandoc -T lint -W warning "$top_builddir/$page" 2>&1)
        rc=$?
        if [ "$rc" -ne 0 ] || [ -n "$out" ]; then
            printf '%s\n' "$out"
            fail "$page: mandoc -T lint -W warning exited $rc"
        fi
    done
else
    note "SKIP man page lint: mandoc is not installed (apt-get install mandoc)"
fi

# --- 3. every key in the sample config is documented, and the reverse -------
# The unit test check_config compares both files against the key table in
# src/config.c; this only keeps the two documents in step with each other.
man_in="$top_srcdir/man/spicegate.conf.5.in"
conf_in="$top_srcdir/conf/spicegate.conf.in"
checked=$((checked + 1))
awk 'prev == ".TP" && $1 == ".B" && NF == 2 { print $2 } { prev = $0 }' \
    "$man_in" | sort -u >"$tmp/man-keys"
sed -n 's/^#\{0,1\}\([a-z_][a-z_0-9]*\) *=.*/\1/p' "$conf_in" | sort -u >"$tmp/conf-keys"
if [ ! -s "$tmp/man-keys" ]; then
    fail "no '.TP' + '.B key' entries found in man/spicegate.conf.5.in"
fi
for k in $(comm -23 "$tmp/man-keys" "$tmp/conf-keys"); do
    fail "key '$k' is in spicegate.conf(5) but not in conf/spicegate.conf.in"
done
for k in $(comm -13 "$tmp/man-keys" "$tmp/conf-keys"); do
    fail "key '$k' is in conf/spicegate.conf.in but not in spicegate.conf(5)"
done

# --- 4. the systemd unit -------------------------------------------------------
# The unit is built only when configure found a systemd unit directory; if
# it was not, make the same file from the template, as the Makefile would.
unit="$top_builddir/conf/spicegate.service"
if [ ! -f "$unit" ]; then
    sed -e 's|@bindir[@]|/usr/bin|g' -e 's|@sysconfdir[@]|/etc|g' \
        "$top_srcdir/conf/spicegate.service.in" >"$tmp/built.service"
    unit="$tmp/built.service"
fi
checked=$((checked + 1))
# shellcheck disable=SC2016 # $MAINPID is for systemd, not for us
for want in 'Type=notify' 'DynamicUser=yes' 'NoNewPrivileges=yes' \
            'ProtectSystem=strict' 'CapabilityBoundingSet=' \
            'ExecReload=/bin/kill -HUP $MAINPID' \
            'Documentation=man:spicegate(8) man:spicegate.conf(5)'; do
    grep -qxF "$want" "$unit" || fail "spicegate.service lacks the line '$want'"
done
if grep -n '@[A-Za-z_][A-Za-z_]*@' "$unit"; then
    fail "spicegate.service: placeholder left unsubstituted (see above)"
fi

if command -v systemd-analyze >/dev/null 2>&1; then
    checked=$((checked + 1))
    # `verify` fails when ExecStart's program does not exist, and before
    # `make install` it does not: verify a copy whose ExecStart names the
    # binary just built (or /bin/true when its path would need quoting).
    # The copy keeps the unit's name, since verify derives the type from it.
    bin="$top_builddir/spicegate"
    case "$bin" in
        *[!A-Za-z0-9/._+-]*) bin=/bin/true ;;
    esac
    [ -x "$bin" ] || bin=/bin/true
    mkdir "$tmp/unit"
    sed "s|^ExecStart=[^ ]*|ExecStart=$bin|" "$unit" >"$tmp/unit/spicegate.service"
    # --man=no: the man pages are not installed yet (mandoc checked them
    # above). --recursive-errors=no: judge our unit, not the host's
    # network-online.target and friends.
    opts=
    help=$(systemd-analyze --help 2>&1)
    case "$help" in *--man*) opts="$opts --man=no" ;; esac
    case "$help" in *--recursive-errors*) opts="$opts --recursive-errors=no" ;; esac
    # shellcheck disable=SC2086 # $opts is a list of words
    out=$(systemd-analyze verify $opts "$tmp/unit/spicegate.service" 2>&1)
    rc=$?
    [ -n "$out" ] && printf '%s\n' "$out"
    if [ "$rc" -ne 0 ]; then
        fail "systemd-analyze verify spicegate.service exited $rc"
    fi
else
    note "SKIP unit verification: systemd-analyze is not installed"
fi

# --- 5. the README gives the two commands that matter -------------------------
readme="$top_srcdir/README.md"
checked=$((checked + 1))
if [ ! -s "$readme" ]; then
    fail "README.md is missing or empty"
else
    grep -qF 'sudo ./demo.sh' "$readme" || fail "README.md does not show the demo command 'sudo ./demo.sh'"
    grep -qF 'tests/run-all.sh' "$readme" || fail "README.md does not show the test command 'tests/run-all.sh'"
fi

# --- 6. close codes: one definition, every table agrees ----------------------
# src/close_code.h defines each code and its reason; the README's table,
# spicegate(8)'s table, the integration tests' constants and the console
# page's messages must all agree with it.
defs=$tmp/close-codes
sed -n 's/^ *X(\([A-Z_]*\), \([0-9]*\), "\([^"]*\)").*/\1|\2|\3/p' \
    "$top_srcdir/src/close_code.h" | grep -v '^CLIENT_CLOSED|' | cut -d'|' -f2,3 | sort -u >"$defs"
checked=$((checked + 1))
if [ "$(wc -l <"$defs")" -lt 10 ]; then
    fail "src/close_code.h: found only $(wc -l <"$defs") close codes (format changed?)"
fi
# compare WHAT FILE: the "code|reason" lines in FILE against the definition.
compare_codes() {
    sort -u "$2" >"$2.sorted"
    checked=$((checked + 1))
    if ! cmp -s "$defs" "$2.sorted"; then
        fail "$1 disagrees with src/close_code.h (< only in close_code.h, > only in $1):"
        diff "$defs" "$2.sorted" | grep '^[<>]'
    fi
}
sed -n 's/^| \([0-9][0-9][0-9][0-9]\) | \([^|]*[^ |]\) | .*/\1|\2/p' "$readme" >"$tmp/readme-codes"
compare_codes "README.md's close code table" "$tmp/readme-codes"
awk '/^[0-9][0-9][0-9][0-9]@T\{$/ { code = substr($0, 1, 4); next }
     code != "" { line = $0; sub(/^\\fB/, "", line); sub(/\\fR.*/, "", line)
                  gsub(/\\-/, "-", line); print code "|" line; code = "" }' \
    "$top_srcdir/man/spicegate.8.in" >"$tmp/man-codes"
compare_codes "spicegate(8)'s close code table" "$tmp/man-codes"
# Constants of the integration tests: each one is a real code and reason
# (they need not name every code).
sed -n 's/^CLOSE_[A-Z_]* = (\([0-9]*\), "\([^"]*\)")$/\1|\2/p' \
    "$top_srcdir/tests/integ/harness.py" >"$tmp/harness-codes"
checked=$((checked + 1))
if [ ! -s "$tmp/harness-codes" ]; then
    fail "tests/integ/harness.py: no CLOSE_* = (code, reason) constants found (format changed?)"
fi
while IFS= read -r pair; do
    grep -qxF "$pair" "$defs" ||
        fail "tests/integ/harness.py: close code constant $pair is not in src/close_code.h"
done <"$tmp/harness-codes"
# The console page says something of its own for every code it can get.
for code in $(cut -d'|' -f1 "$defs" | sort -u); do
    checked=$((checked + 1))
    grep -qE "^    $code: \{" "$top_srcdir/web/spicegate-messages.js" ||
        fail "web/spicegate-messages.js: no message (ENDINGS) for close code $code"
done

# --- 7. the README's request flow names every source file -------------------
# A newcomer finds where a request goes by reading it: a new src/*.c that
# it does not name is a step missing from the walk-through.
flow=$tmp/flow.md
sed -n '/^## How a request flows through src\//,/^## /p' "$top_srcdir/README.md" >"$flow"
for f in "$top_srcdir"/src/*.c; do
    checked=$((checked + 1))
    grep -q "\`$(basename "$f")\`" "$flow" ||
        fail "README.md, How a request flows through src/: $(basename "$f") is not named"
done

if [ "$failed" -ne 0 ]; then
    exit 1
fi
note "ok ($checked checks)"
exit 0
