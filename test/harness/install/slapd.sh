#!/usr/bin/env bash
# Install OpenLDAP slapd + ldap-utils (+ openssl) for the test harness.
# Idempotent: a fast no-op when everything is already present.
# The packaged slapd service is never left running; the harness starts its own
# private instances (test/harness/servers/slapd.ts).
set -euo pipefail

need_pkgs=()
for bin in slapd slapadd ldapsearch; do
  if ! command -v "$bin" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$bin" ]; then
    need_pkgs=(slapd ldap-utils)
    break
  fi
done
if ! command -v openssl >/dev/null 2>&1; then
  need_pkgs+=(openssl)
fi

if [ "${#need_pkgs[@]}" -eq 0 ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO="sudo"
fi

# Prevent maintainer scripts from starting the packaged service.
created_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod 0755 /usr/sbin/policy-rc.d
  created_policy=1
fi
cleanup() {
  if [ "$created_policy" -eq 1 ]; then
    $SUDO rm -f /usr/sbin/policy-rc.d
  fi
}
trap cleanup EXIT

export DEBIAN_FRONTEND=noninteractive
apt_install() {
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need_pkgs[@]}"
}

# Only refresh the package lists when they are missing or the install fails.
if ! ls /var/lib/apt/lists/*_Packages >/dev/null 2>&1 || ! apt-cache show "${need_pkgs[0]}" >/dev/null 2>&1; then
  $SUDO apt-get update
fi
if ! apt_install; then
  $SUDO apt-get update
  apt_install
fi

# Belt and braces: make sure no packaged slapd is left running.
if command -v service >/dev/null 2>&1; then
  $SUDO service slapd stop >/dev/null 2>&1 || true
fi
if [ -r /run/slapd/slapd.pid ]; then
  pid="$(cat /run/slapd/slapd.pid 2>/dev/null || true)"
  if [ -n "$pid" ] && [ "$(cat "/proc/$pid/comm" 2>/dev/null || true)" = "slapd" ]; then
    $SUDO kill "$pid" 2>/dev/null || true
  fi
fi

for bin in slapd slapadd ldapsearch openssl; do
  if ! command -v "$bin" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$bin" ]; then
    echo "install/slapd.sh: $bin still missing after install" >&2
    exit 1
  fi
done
