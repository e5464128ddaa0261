#!/usr/bin/env bash
# Install the shells and systemd-analyze that some tests run for real (Debian packages):
# systemd-analyze verifies the unit templates, zsh and fish load the completion scripts, tmux
# gives the init wizard a real terminal.
# Idempotent: a fast no-op when everything is present. Serialised with flock, since two test
# files may ask at once and dpkg takes one lock.
set -euo pipefail

missing=()
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
command -v zsh >/dev/null 2>&1 || missing+=(zsh)
command -v fish >/dev/null 2>&1 || missing+=(fish)
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
[ "${#missing[@]}" -eq 0 ] && exit 0

SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
exec 9>"${TMPDIR:-/tmp}/provkey-test-tools.lock"
flock 9
# Another run may have installed them while this one waited.
still=()
for pkg in "${missing[@]}"; do
  case "$pkg" in systemd) bin=systemd-analyze ;; *) bin=$pkg ;; esac
  command -v "$bin" >/dev/null 2>&1 || still+=("$pkg")
done
[ "${#still[@]}" -eq 0 ] && exit 0
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get -o DPkg::Lock::Timeout=300 update -qq
$SUDO apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${still[@]}"
