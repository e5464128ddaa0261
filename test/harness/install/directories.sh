#!/usr/bin/env bash
# Install Samba AD DC and 389 Directory Server (Debian packages) for the test harness.
# Idempotent: a fast no-op when everything is already present. No packaged service is left
# running; the harness starts its own private instances (test/harness/servers/{samba,dirsrv}.ts).
set -euo pipefail

have_all() {
  for bin in samba samba-tool ns-slapd dscreate dsconf dsctl openssl ldapsearch; do
    if ! command -v "$bin" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$bin" ]; then return 1; fi
  done
  # samba-ad-provision is only a Recommends of samba-ad-dc, yet provisioning needs its files.
  [ -d /usr/share/samba/setup ]
}
if have_all; then exit 0; fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# Keep maintainer scripts from starting the packaged services.
created_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod 0755 /usr/sbin/policy-rc.d
  created_policy=1
fi
cleanup() { if [ "$created_policy" -eq 1 ]; then $SUDO rm -f /usr/sbin/policy-rc.d; fi; }
trap cleanup EXIT

pkgs=(samba samba-ad-dc samba-ad-provision winbind 389-ds-base ldap-utils openssl iproute2 util-linux)
$SUDO apt-get update
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${pkgs[@]}"

if ! have_all; then
  echo "install/directories.sh: samba or 389-ds-base still missing after install" >&2
  exit 1
fi
