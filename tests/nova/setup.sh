#!/bin/sh
# Install what tests/nova/openstack_env.py needs to run a real Keystone and a real
# Nova API on loopback: the Debian 12 *library* packages only. The service packages
# (keystone, nova-api, nova-common) are deliberately not installed: their maintainer
# scripts create databases, users and start daemons.
#
# Idempotent: does nothing (and touches no network) when everything is present.
# Needs root (or sudo) only when something is missing. Prints how long it took.
set -eu

# curl: only for smoke.sh
PKGS="python3-keystone python3-nova python3-keystonemiddleware curl"

missing=""
for p in $PKGS; do
    st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
    case "$st" in
        ii*) ;;
        *) missing="$missing $p" ;;
    esac
done

if [ -z "$missing" ]; then
    echo "tests/nova/setup.sh: all present ($PKGS)"
    exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    else
        echo "tests/nova/setup.sh: need root to install:$missing" >&2
        exit 1
    fi
fi

start=$(date +%s)
echo "tests/nova/setup.sh: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# About 240 packages (52 MB download, ~450 MiB installed; mostly CPU-bound
# byte-compiling: 14.5 min seen on a 2-core machine at load average ~15).
# Dependencies pull in systemd, udev, open-iscsi and sudo, whose maintainer
# scripts may try to start services; in a container /usr/sbin/policy-rc.d
# usually forbids that, on a booted host it is harmless for these tests.
$SUDO apt-get install -y -q --no-install-recommends $missing
end=$(date +%s)

/usr/bin/python3 -c 'import keystone, nova, keystonemiddleware' || {
    echo "tests/nova/setup.sh: packages installed but /usr/bin/python3 cannot import them" >&2
    exit 1
}
echo "tests/nova/setup.sh: installed in $((end - start)) s"
