#!/bin/sh
# Debian packages the tests and the demo need. Installs only what is missing, and only
# where apt-get exists and we are root (or have sudo); elsewhere it says what to install.
set -e
PKGS="rabbitmq-server chromium socat"
missing=""
for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-system: no apt-get here; please install:$missing" >&2
    exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-system: installing$missing"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
# The Debian package starts a system-wide node; Perch runs its own private ones.
if command -v systemctl >/dev/null 2>&1; then $SUDO systemctl stop rabbitmq-server 2>/dev/null || true; fi
$SUDO service rabbitmq-server stop >/dev/null 2>&1 || true
