#!/usr/bin/env bash
# Installs what WebGPU (and, with --browser, the browser tests) need on a bare
# Debian/Ubuntu machine: Mesa's lavapipe Vulkan driver from bookworm-backports
# (bookworm's own Mesa is too old for Dawn) and, optionally, Debian's chromium.
# Idempotent: does nothing for what is already there.
set -euo pipefail
want_browser=0
[ "${1:-}" = "--browser" ] && want_browser=1

if [ "$(id -u)" != 0 ]; then
  echo "setup-system: not root; run as root or see README 'Setting up WebGPU on Linux'." >&2
  exit 1
fi

have_lavapipe() {
  ls /usr/share/vulkan/icd.d/lvp_icd*.json >/dev/null 2>&1 &&
    dpkg-query -W -f='${Version}' mesa-vulkan-drivers 2>/dev/null | grep -qvE '^22\.'
}

need_update=1
apt_update() { if [ $need_update = 1 ]; then apt-get update -qq; need_update=0; fi; }

if ! have_lavapipe; then
  . /etc/os-release
  codename="${VERSION_CODENAME:-bookworm}"
  if [ "$ID" = debian ] && [ "$codename" = bookworm ]; then
    src=/etc/apt/sources.list.d/bookworm-backports.sources
    if [ ! -f "$src" ]; then
      cat >"$src" <<SRC
Types: deb
URIs: http://deb.debian.org/debian
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    fi
    apt_update
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers libvulkan1 >/dev/null
  else
    apt_update
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mesa-vulkan-drivers libvulkan1 >/dev/null
  fi
  echo "setup-system: installed Mesa lavapipe ($(dpkg-query -W -f='${Version}' mesa-vulkan-drivers))" >&2
fi

if [ $want_browser = 1 ] && ! command -v chromium >/dev/null 2>&1; then
  apt_update
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  echo "setup-system: installed $(chromium --version 2>/dev/null)" >&2
fi
