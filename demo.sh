#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# demo.sh - a SPICE console in your browser through spicegate, in one command.
#
# On a fresh Debian 12 machine, as root or with sudo, from the source tree:
#
#   sudo ./demo.sh            build, start a throwaway QEMU guest and spicegate,
#                             print the console URL, run until Ctrl-C
#   sudo ./demo.sh --check    the same, but fetch the console page and open
#                             one SPICE channel through spicegate, then stop;
#                             exit 0 when everything answered, 1 otherwise
#
# Environment:
#   DEMO_PORT      port spicegate listens on (default 6082; --check: a free
#                  port picked by the kernel)
#   DEMO_BUILDDIR  build directory (default ./build-demo)
#
# apt-get runs only when a package below is missing. When started through
# sudo, everything after apt-get (build, QEMU, spicegate) runs as the user
# who called sudo, so the tree stays theirs. The guest has no disk: it
# shows the BIOS boot menu, which is enough to see the console work.

set -euo pipefail

readonly PACKAGES=(
    build-essential autoconf automake pkg-config
    libwebsockets-dev libwebsockets-evlib-uv libuv1-dev libglib2.0-dev libjson-glib-dev
    libcurl4-openssl-dev libssl-dev libspice-protocol-dev check
    spice-html5 qemu-system-x86 curl
)

usage() {
    sed -n '3,/^$/s/^# \{0,1\}//p' "$0"
}

say() {
    printf 'demo: %s\n' "$*"
}

die() {
    printf 'demo: error: %s\n' "$*" >&2
    exit 1
}

check_mode=0
case "${1:-}" in
    "") ;;
    --check) check_mode=1 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
esac
[ $# -le 1 ] || { usage >&2; exit 2; }

srcdir=$(cd "$(dirname "$(readlink -f "$0")")" && pwd)
cd "$srcdir"

if [ -n "${DEMO_PORT:-}" ]; then
    if ! [[ $DEMO_PORT =~ ^[0-9]{1,5}$ ]] || [ "$DEMO_PORT" -gt 65535 ]; then
        die "DEMO_PORT must be a port number, not '$DEMO_PORT'"
    fi
    listen_port=$DEMO_PORT
elif [ "$check_mode" -eq 1 ]; then
    listen_port=0
else
    listen_port=6082
fi

# --- who runs what -------------------------------------------------------------
# Through sudo, drop back to the calling user after apt-get. setpriv and env
# exec the command in place (no extra process, no pty), so $! is the
# command's own PID and signals reach it directly.
run_as=()
if [ "$(id -u)" -eq 0 ] && [ -n "${SUDO_UID:-}" ] && [ "${SUDO_UID}" != 0 ]; then
    user_home=$(getent passwd "$SUDO_UID" | cut -d: -f6)
    run_as=(setpriv --reuid="$SUDO_UID" --regid="$SUDO_GID" --init-groups
            env HOME="${user_home:-/}" USER="${SUDO_USER:-}" LOGNAME="${SUDO_USER:-}")
fi

# --- 1. packages ----------------------------------------------------------------
missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)
    [[ $status == ii* ]] || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
    [ "$(id -u)" -eq 0 ] || die "missing packages (${missing[*]}): run 'sudo ./demo.sh'"
    say "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update
    apt-get install -y --no-install-recommends "${PACKAGES[@]}"
else
    say "all packages already installed"
fi

# --- 2. build -------------------------------------------------------------------
# Out of tree, so the source tree stays clean for tests/run-all.sh, unless
# someone already configured in the tree itself (automake forbids both).
if [ -f "$srcdir/config.status" ]; then
    builddir=$srcdir
else
    builddir=${DEMO_BUILDDIR:-$srcdir/build-demo}
fi
if [ ! -x "$srcdir/configure" ]; then
    say "autoreconf -fi"
    "${run_as[@]}" autoreconf -fi
fi
"${run_as[@]}" mkdir -p "$builddir"
cd "$builddir"
if [ ! -f Makefile ]; then
    say "configure"
    "${run_as[@]}" "$srcdir/configure" -q
fi
say "make"
"${run_as[@]}" make -j"$(nproc)" >/dev/null
spicegate=$builddir/spicegate
[ -x "$spicegate" ] || die "the build did not produce $spicegate"

# --- 3. processes ---------------------------------------------------------------
tmp=$("${run_as[@]}" mktemp -d "${TMPDIR:-/tmp}/spicegate-demo.XXXXXX")
qemu_pid=
sg_pid=

stop_pid() {
    local pid=$1 i
    [ -n "$pid" ] || return 0
    kill "$pid" 2>/dev/null || return 0
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() {
    trap - EXIT INT TERM
    stop_pid "$sg_pid"
    stop_pid "$qemu_pid"
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo; say "stopping"; exit 130' INT
trap 'exit 143' TERM

show_log() {
    if [ -s "$2" ]; then
        echo "----- $1 -----"
        tail -n 40 "$2"
    fi
}

# True once something accepts TCP connections on 127.0.0.1:$1.
port_open() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# A QEMU guest with a SPICE server on a free loopback port. The port is
# probed first, and QEMU itself is the final judge: if it cannot bind, it
# exits and we try another port.
start_qemu() {
    local attempt port deadline
    for ((attempt = 0; attempt < 10; attempt++)); do
        port=$((20000 + RANDOM % 20000))
        port_open "$port" && continue
        # splash-time: QEMU 7.2 caps it at 65535 ms; the guest then finds
        # no disk and SeaBIOS keeps retrying, which is still a live screen.
        "${run_as[@]}" qemu-system-x86_64 -name spicegate-demo \
            -machine pc,accel=tcg -m 128 -vga qxl -display none -nodefaults \
            -spice "port=$port,addr=127.0.0.1,disable-ticketing=on" \
            -boot menu=on,splash-time=65535 >"$tmp/qemu.log" 2>&1 &
        qemu_pid=$!
        deadline=$((SECONDS + 30))
        while [ $SECONDS -lt $deadline ]; do
            if ! kill -0 "$qemu_pid" 2>/dev/null; then
                break
            fi
            if port_open "$port"; then
                spice_port=$port
                return 0
            fi
            sleep 0.1
        done
        stop_pid "$qemu_pid"
        qemu_pid=
    done
    show_log qemu "$tmp/qemu.log"
    die "QEMU did not start a SPICE server"
}

start_qemu
say "QEMU guest (pid $qemu_pid) serves SPICE on 127.0.0.1:$spice_port"

token=$(cat /proc/sys/kernel/random/uuid)
# Written by the user spicegate runs as, readable by nobody else.
# shellcheck disable=SC2016 # $1 belongs to the inner sh
printf '# written by demo.sh; removed when it stops\n%s: 127.0.0.1:%s\n' \
    "$token" "$spice_port" | "${run_as[@]}" sh -c 'umask 077 && cat >"$1"' sh "$tmp/tokens"
# An empty configuration file, so that an installed one is not picked up.
"${run_as[@]}" touch "$tmp/spicegate.conf"

if [ "$check_mode" -eq 1 ]; then
    listen_addr=127.0.0.1
else
    listen_addr=0.0.0.0
fi
sg_log=$tmp/spicegate.log
if [ "$check_mode" -eq 1 ]; then
    "${run_as[@]}" "$spicegate" --config "$tmp/spicegate.conf" \
        --listen "$listen_addr:$listen_port" --port-file "$tmp/port" \
        --token-file "$tmp/tokens" --web /usr/share/spice-html5 \
        --pages "$srcdir/web" >"$sg_log" 2>&1 &
else
    # Interactive: spicegate logs to this terminal.
    "${run_as[@]}" "$spicegate" --config "$tmp/spicegate.conf" \
        --listen "$listen_addr:$listen_port" --port-file "$tmp/port" \
        --token-file "$tmp/tokens" --web /usr/share/spice-html5 \
        --pages "$srcdir/web" &
fi
sg_pid=$!

deadline=$((SECONDS + 30))
until [ -s "$tmp/port" ]; do
    if ! kill -0 "$sg_pid" 2>/dev/null; then
        show_log spicegate "$sg_log"
        die "spicegate exited before listening (is port $listen_port in use?)"
    fi
    [ $SECONDS -lt $deadline ] || die "spicegate did not start listening within 30 s"
    sleep 0.1
done
port=$(tr -dc 0-9 <"$tmp/port")

# --- 4a. --check: one page and one SPICE channel through spicegate -------------
# Opens a websocket like spice-html5 does (subprotocol "binary", token in the
# query), sends a SPICE link message for the main channel in one masked
# binary frame, and expects the SPICE server's link reply (magic REDQ) back.
# The mask key is zero, which RFC 6455 allows, so the payload goes as is.
spice_channel_check() {
    local line status='' proto=0 reply
    exec 3<>"/dev/tcp/127.0.0.1/$port" || return 1
    printf '%s\r\n' \
        "GET /websockify?token=$token HTTP/1.1" \
        "Host: 127.0.0.1:$port" \
        "Upgrade: websocket" \
        "Connection: Upgrade" \
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==" \
        "Sec-WebSocket-Version: 13" \
        "Sec-WebSocket-Protocol: binary" \
        "" >&3
    # bash's read takes one byte at a time from a socket, so nothing past
    # the headers is consumed here.
    while IFS= read -r -t 10 line <&3; do
        line=${line%$'\r'}
        [ -n "$line" ] || break
        [ -n "$status" ] || status=$line
        shopt -s nocasematch
        [[ $line == "sec-websocket-protocol: binary" ]] && proto=1
        shopt -u nocasematch
    done
    if [[ $status != "HTTP/1.1 101"* ]]; then
        say "FAIL: websocket upgrade answered '${status:-nothing}'"
        exec 3>&-
        return 1
    fi
    [ "$proto" -eq 1 ] || say "FAIL: the 101 lacks 'Sec-WebSocket-Protocol: binary'"
    # FIN+binary, MASK|38, mask key 0, then SpiceLinkHeader (REDQ, 2.2,
    # size 22) and SpiceLinkMess (connection 0, main channel 1, id 0, one
    # common caps word at offset 18: AUTH_SELECTION|AUTH_SPICE, as
    # spice-html5 sends), all little-endian.
    # One write, as a browser sends one frame.
    printf '%b' '\x82\xa6\x00\x00\x00\x00' \
        'REDQ' '\x02\x00\x00\x00' '\x02\x00\x00\x00' '\x16\x00\x00\x00' \
        '\x00\x00\x00\x00' '\x01' '\x00' '\x01\x00\x00\x00' '\x00\x00\x00\x00' \
        '\x12\x00\x00\x00' '\x03\x00\x00\x00' >&3
    reply=$(timeout 10 dd bs=1 count=64 <&3 2>/dev/null | od -An -c | tr -d ' \n')
    exec 3>&-
    if [[ $reply != *REDQ* ]]; then
        say "FAIL: no SPICE link reply through spicegate (got: ${reply:-nothing})"
        return 1
    fi
    [ "$proto" -eq 1 ]
}

if [ "$check_mode" -eq 1 ]; then
    base=http://127.0.0.1:$port
    ok=1
    if curl -fsS --max-time 10 "$base/spice_auto.html?token=$token" -o "$tmp/page" &&
        grep -q 'spice' "$tmp/page"; then
        say "ok: GET /spice_auto.html ($(wc -c <"$tmp/page") bytes)"
    else
        say "FAIL: GET /spice_auto.html"
        ok=0
    fi
    if [ "$(curl -fsS --max-time 10 "$base/healthz" 2>/dev/null)" = ok ]; then
        say "ok: GET /healthz"
    else
        say "FAIL: GET /healthz"
        ok=0
    fi
    if curl -fsS --max-time 10 "$base/" 2>/dev/null | grep -q spicegate; then
        say "ok: GET / (landing page)"
    else
        say "FAIL: GET /"
        ok=0
    fi
    if spice_channel_check; then
        say "ok: SPICE main channel linked through spicegate"
    else
        ok=0
    fi
    if [ "$ok" -eq 1 ]; then
        say "check passed"
        exit 0
    fi
    show_log spicegate "$sg_log"
    show_log qemu "$tmp/qemu.log"
    say "check FAILED"
    exit 1
fi

# --- 4b. interactive: print the URL and wait ---------------------------------
url_path="/spice_auto.html?token=$token"
echo
say "spicegate (pid $sg_pid) listens on $listen_addr:$port"
say "open the console in a browser:"
echo
echo "    http://127.0.0.1:$port$url_path"
for ip in $(hostname -I 2>/dev/null); do
    case "$ip" in
        fe80:*) ;;
        *:*) echo "    http://[$ip]:$port$url_path" ;;
        *) echo "    http://$ip:$port$url_path" ;;
    esac
done
echo
say "the guest has no disk: expect the SeaBIOS boot screen. Ctrl-C stops the demo."

# Until Ctrl-C, or until either process dies on its own.
set +e
wait -n "$qemu_pid" "$sg_pid"
set -e
if kill -0 "$sg_pid" 2>/dev/null; then
    say "QEMU exited"
    show_log qemu "$tmp/qemu.log"
else
    say "spicegate exited"
fi
exit 1
