#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# tests/deb/run.sh - the Debian package, as an operator meets it: build it
# (`make deb`), lint it (lintian: no error, no warning), install it with apt
# in a fresh Debian 12 root (debootstrap --variant=minbase bookworm), check
# what it installed, then purge it and check that nothing of it is left.
#
#   tests/deb/run.sh [BUILD_DIR]
#
# BUILD_DIR is a build tree of this source: configured there if it has no
# Makefile yet (default: a scratch directory, deleted afterwards). The
# package is built from `make dist`'s files, so the source tree is never
# touched. tests/run-all.sh runs this as its own step.
#
# Needs root (debootstrap, chroot, mount) and the network to the Debian
# mirror. Exit status: 0 passed, 1 failed, 77 skipped (not root). A missing
# tool (lintian, debootstrap, a build dependency) is a failure, not a skip:
# .ci/run installs them.
#
# The pristine root is debootstrapped once and kept as a tarball in
# $DEB_CACHE (default /var/cache/spicegate-tests), with apt's downloaded
# packages beside it; later runs unpack it (seconds). Delete the directory
# to start over. The mirror is the one this machine's apt uses
# (DEB_MIRROR overrides it). KEEP=1 keeps the scratch directory.
#
# Time, on 2 cores with the root cached: 50 s on a quiet machine, under 3
# minutes on a busy one; the package build (with its tests) dominates. The
# first debootstrap adds 30 s to 5 minutes, depending on the mirror.

set -uo pipefail

here=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
srcdir=$(cd "$here/../.." && pwd)

if [ "$(id -u)" -ne 0 ]; then
    echo "SKIP: tests/deb/run.sh needs root (debootstrap, chroot and mount)"
    exit 77
fi

passed=0
failed=0
pass() { printf 'PASS: %s\n' "$*"; passed=$((passed + 1)); }
fail() { printf 'FAIL: %s\n' "$*"; failed=$((failed + 1)); }
note() { printf 'deb: %s\n' "$*"; }
finish() {
    printf 'deb: %d passed, %d failed\n' "$passed" "$failed"
    [ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
    exit $?
}

missing=()
for tool in dpkg-buildpackage:dpkg-dev dh:debhelper lintian:lintian \
            debootstrap:debootstrap chroot:coreutils systemctl:systemd; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool#*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
    fail "tools missing: apt-get install ${missing[*]}"
    finish
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/spicegate-deb.XXXXXX") || exit 1
root=$work/root
mounts=()
daemon=
cleanup() {
    [ -z "$daemon" ] || kill -KILL "$daemon" 2>/dev/null
    # Anything else still running in the root was started here: stop it
    # by pid before unmounting.
    local p pids=()
    for p in /proc/[0-9]*; do
        [ "$(readlink "$p/root" 2>/dev/null)" = "$root" ] && pids+=("${p#/proc/}")
    done
    if [ ${#pids[@]} -gt 0 ]; then
        note "stopping what still runs in the root: ${pids[*]}"
        kill -KILL "${pids[@]}" 2>/dev/null
    fi
    local i
    for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
        umount "${mounts[i]}" 2>/dev/null || umount -l "${mounts[i]}"
    done
    if [ "${KEEP:-}" = 1 ]; then
        note "kept $work"
    else
        rm -rf --one-file-system "$work"
    fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# --- 1. build ------------------------------------------------------------------
build=${1:-$work/build}
mkdir -p "$build"
build=$(cd "$build" && pwd)
if [ ! -f "$build/Makefile" ]; then
    if [ ! -x "$srcdir/configure" ]; then
        (cd "$srcdir" && autoreconf -fi) >"$work/autoreconf.log" 2>&1 ||
            { cat "$work/autoreconf.log"; fail "autoreconf"; finish; }
    fi
    (cd "$build" && "$srcdir/configure" -q) >"$work/configure.log" 2>&1 ||
        { cat "$work/configure.log"; fail "configure in $build"; finish; }
fi
note "building the package: make -C $build deb (log: $build/deb.log)"
start=$SECONDS
if make -C "$build" deb >"$build/deb.log" 2>&1; then
    pass "make deb ($((SECONDS - start)) s)"
else
    tail -n 60 "$build/deb.log"
    fail "make deb (log above: $build/deb.log)"
    finish
fi
deb_dir=$build/deb
debs=("$deb_dir"/spicegate_*.deb)
changes=("$deb_dir"/spicegate_*.changes)
if [ ! -f "${debs[0]}" ] || [ ! -f "${changes[0]}" ]; then
    fail "make deb left no spicegate_*.deb and .changes in $deb_dir"
    finish
fi
deb=${debs[0]}
note "built $(basename "$deb")"

# --- 2. lintian ----------------------------------------------------------------
# Errors and warnings fail; pedantic and informational tags are shown
# (debian/spicegate.lintian-overrides says why the overridden ones are).
if lintian --fail-on error,warning "${changes[0]}" >"$work/lintian.log" 2>&1; then
    pass "lintian: no errors or warnings"
else
    cat "$work/lintian.log"
    fail "lintian reports errors or warnings (above)"
fi
lintian --pedantic --display-info "${changes[0]}" 2>&1 |
    grep -v '^running with root privileges' | sed 's/^/lintian --pedantic: /'

# Ask dpkg what the package declares: the run-time plugin and web client
# are not library links, so dpkg-shlibdeps cannot find them.
depends=$(dpkg-deb -f "$deb" Depends)
for dep in libwebsockets-evlib-uv spice-html5; do
    if grep -Eq "(^|, )$dep( |,|$)" <<<"$depends"; then
        pass "Depends: $dep"
    else
        fail "Depends lacks $dep: $depends"
    fi
done

# --- 3. a fresh Debian 12 root --------------------------------------------------
cache=${DEB_CACHE:-/var/cache/spicegate-tests}
arch=$(dpkg --print-architecture)
tarball=$cache/bookworm-minbase-$arch.tar
mirror=${DEB_MIRROR:-}
if [ -z "$mirror" ]; then
    mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null |
        sed -n 's|^URIs: *\(https\?://[^ ]*/debian\)/\?$|\1|p' | head -n 1)
fi
if [ -z "$mirror" ]; then
    mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
        sed -n 's|^deb \(\[[^]]*\] \)\?\(https\?://[^ ]*/debian\)/\? .*|\2|p' | head -n 1)
fi
mirror=${mirror:-http://deb.debian.org/debian}

mkdir -p "$cache/archives/partial"
if [ ! -f "$tarball" ]; then
    note "debootstrap --variant=minbase bookworm from $mirror (once; cached in $tarball)"
    start=$SECONDS
    if ! debootstrap --variant=minbase bookworm "$work/bootstrap" "$mirror" \
            >"$work/debootstrap.log" 2>&1; then
        tail -n 30 "$work/debootstrap.log"
        fail "debootstrap (log above)"
        finish
    fi
    tar -C "$work/bootstrap" -cf "$tarball.tmp" . && mv "$tarball.tmp" "$tarball"
    rm -rf --one-file-system "$work/bootstrap"
    note "debootstrap took $((SECONDS - start)) s"
fi
mkdir "$root"
tar -C "$root" -xf "$tarball" || { fail "unpack $tarball"; finish; }
cp -L /etc/resolv.conf "$root/etc/resolv.conf"
# No daemon may start in a chroot (a real machine would start spicegate:
# dh_installsystemd's postinst does that only where systemd runs).
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
mount -t proc proc "$root/proc" && mounts+=("$root/proc")
mount --bind "$cache/archives" "$root/var/cache/apt/archives" &&
    mounts+=("$root/var/cache/apt/archives")

in_root() {
    chroot "$root" /usr/bin/env -i HOME=/root LC_ALL=C.UTF-8 \
        PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive "$@"
}

# --- 4. install ------------------------------------------------------------------
cp "$deb" "$root/tmp/"
# --no-install-recommends: spice-html5 recommends websockify (and so
# Python), which spicegate replaces; it changes nothing for this test.
note "apt-get install ./$(basename "$deb") in the fresh root"
start=$SECONDS
if in_root apt-get update -q >"$work/apt.log" 2>&1 &&
   in_root apt-get install -y -q --no-install-recommends "/tmp/$(basename "$deb")" \
        >>"$work/apt.log" 2>&1; then
    pass "apt-get install ./$(basename "$deb") on a fresh bookworm root ($((SECONDS - start)) s)"
else
    tail -n 40 "$work/apt.log"
    fail "apt-get install (log above)"
    finish
fi

status=$(in_root dpkg-query -W -f='${db:Status-Status}' spicegate 2>/dev/null)
[ "$status" = installed ] && pass "dpkg: spicegate installed" ||
    fail "dpkg status of spicegate is '$status', not installed"

unit=/lib/systemd/system/spicegate.service
if [ -f "$root$unit" ] && grep -q '^ExecStart=/usr/bin/spicegate ' "$root$unit"; then
    pass "unit $unit installed, ExecStart=/usr/bin/spicegate"
else
    fail "unit $unit missing or without ExecStart=/usr/bin/spicegate"
fi
wants=/etc/systemd/system/multi-user.target.wants/spicegate.service
# systemd is not in a minbase root (nor a dependency): the host's
# systemctl reads the root's unit files with --root.
enabled=$(systemctl --root="$root" is-enabled spicegate.service 2>&1)
if [ "$(readlink "$root$wants")" = "$unit" ] && [ "$enabled" = enabled ]; then
    pass "unit enabled ($wants -> $unit; systemctl --root: $enabled)"
else
    fail "unit not enabled: $wants is '$(readlink "$root$wants")', systemctl --root says '$enabled'"
fi

conffiles=$(in_root dpkg-query -W -f='${Conffiles}\n' spicegate | awk 'NF { print $1 }' | sort | tr '\n' ' ')
if [ "$conffiles" = "/etc/spicegate/spicegate.conf /etc/spicegate/tokens " ]; then
    pass "conffiles: $conffiles"
else
    fail "conffiles are '$conffiles', not /etc/spicegate/spicegate.conf and /etc/spicegate/tokens"
fi
conf=$root/etc/spicegate/spicegate.conf
# Only comments, blank lines and group headers: every key commented out.
if [ -f "$conf" ] && grep -q '^#listen = ' "$conf" &&
   ! grep -v '^[[:space:]]*\(#.*\|\[[a-z_]*\]\)\?$' "$conf"; then
    pass "spicegate.conf: the commented sample, every key commented out"
else
    fail "/etc/spicegate/spicegate.conf is missing or sets a key (above)"
fi
if [ -f "$root/etc/spicegate/tokens" ] && ! grep -qv '^[[:space:]]*\(#.*\)\?$' "$root/etc/spicegate/tokens"; then
    pass "tokens: shipped with no token"
else
    fail "/etc/spicegate/tokens is missing or holds a token"
fi

version=$(in_root spicegate --version 2>&1)
want="spicegate $(dpkg-deb -f "$deb" Version)"
[ "$version" = "$want" ] && pass "spicegate --version: $version" ||
    fail "spicegate --version printed '$version', not '$want'"

# The operator's first step: one token in the packaged token file.
token=$(cat /proc/sys/kernel/random/uuid)
echo "$token: 127.0.0.1:5900" >>"$root/etc/spicegate/tokens"

# Acceptance: --check-config with the packaged defaults plus a token file,
# as the unit runs it.
if in_root spicegate --config /etc/spicegate/spicegate.conf --check-config \
        >"$work/check-config.log" 2>&1; then
    pass "spicegate --check-config with the packaged configuration and a token"
else
    sed 's/^/    /' "$work/check-config.log"
    fail "spicegate --check-config exited non-zero (above)"
fi

# The daemon itself, as the unit starts it, on a free loopback port: it
# must load lws' libuv plugin, read the packaged files and serve
# spice-html5's page from Debian's package.
# chroot and env exec, so $! is spicegate's own pid (not so through the
# in_root function, which would run in a subshell).
port_file=/tmp/spicegate.port
chroot "$root" /usr/bin/env -i LC_ALL=C.UTF-8 PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    spicegate --config /etc/spicegate/spicegate.conf --listen 127.0.0.1:0 \
    --port-file "$port_file" >"$work/daemon.log" 2>&1 &
daemon=$!
port=
for _ in $(seq 100); do
    port=$(cat "$root$port_file" 2>/dev/null)
    [ -n "$port" ] && break
    kill -0 "$daemon" 2>/dev/null || break
    sleep 0.1
done
if [ -n "$port" ]; then
    reply=$(in_root timeout 10 bash -c '
        exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf "GET /spice_auto.html HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n" >&3
        cat <&3' sh "$port" | tr -d '\r')
    if grep -q '^HTTP/1.1 200' <<<"$reply" && grep -qi '<html' <<<"$reply"; then
        pass "spicegate starts with the packaged configuration and serves /spice_auto.html"
    else
        printf '%s\n' "$reply" | head -n 10
        fail "GET /spice_auto.html did not answer 200 with a page"
    fi
else
    fail "spicegate did not start with the packaged configuration"
fi
kill -TERM "$daemon" 2>/dev/null
wait "$daemon"
rc=$?
daemon=
# spicegate closes its sessions on SIGTERM and exits 0.
[ "$rc" -eq 0 ] && pass "spicegate exits 0 on SIGTERM" ||
    fail "spicegate exited $rc after SIGTERM"
grep -q "$token" "$work/daemon.log" "$work/check-config.log" &&
    fail "the token appears in spicegate's output"
sed 's/^/    spicegate: /' "$work/daemon.log"

# --- 5. purge -------------------------------------------------------------------
rm -f "$root$port_file"
if in_root apt-get purge -y -q spicegate >>"$work/apt.log" 2>&1; then
    pass "apt-get purge spicegate"
else
    tail -n 20 "$work/apt.log"
    fail "apt-get purge spicegate (log above)"
fi
status=$(in_root dpkg-query -W -f='${db:Status-Status}' spicegate 2>/dev/null)
[ "$status" = not-installed ] || [ -z "$status" ] && pass "dpkg: spicegate gone after purge" ||
    fail "dpkg status after purge is '$status'"
[ ! -e "$root/etc/spicegate" ] && pass "/etc/spicegate removed by purge" ||
    fail "/etc/spicegate left after purge: $(ls -A "$root/etc/spicegate")"
[ ! -e "$root$wants" ] && [ ! -e "$root$unit" ] && pass "unit and its enablement removed" ||
    fail "unit files left after purge"
left=$(find "$root" -xdev -name '*spicegate*' \
    ! -path "$root/tmp/*" ! -path "$root/var/cache/apt/*" ! -path "$root/var/lib/apt/*" 2>/dev/null |
    sed "s|^$root||")
[ -z "$left" ] && pass "nothing named spicegate left in the root" ||
    fail "left after purge: $(echo $left)"

finish
