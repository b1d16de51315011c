#!/bin/bash
# Install every Debian 12 package that building, testing and the demo need.
# Idempotent: does nothing (not even apt-get update) when all are installed.
# Runs apt through sudo when not root. Works without a terminal (CI).
#
#   tools/install-deps.sh            install what is missing
#   tools/install-deps.sh --check    only list what is missing (exit 1 if any)
set -euo pipefail

BUILD_PKGS=(
  meson ninja-build pkg-config gcc clang
  libclang-rt-14-dev        # libFuzzer and clang's sanitizer runtimes (tests/fuzz/)
  libsystemd-dev libwebsockets-dev libwebsockets-evlib-glib
  libjson-c-dev libglib2.0-dev libsqlite3-dev libexpat1-dev libssl-dev
  libpipewire-0.3-dev libspa-0.2-dev    # voice messages: capture from PipeWire
  libopusenc-dev libopus-dev            # voice messages: Ogg Opus encoding
)
RUN_PKGS=(
  dbus                      # dbus-daemon for the private test/demo bus
  prosody lua-bitop         # the local XMPP server (tests, demo)
  python3 python3-slixmpp python3-dbus python3-gi gir1.2-glib-2.0
  python3-pytest python3-pytest-timeout
  jq util-linux procps
  unicode-data              # emoji names for imctl's :shortcodes:
  shared-mime-info          # media types of received files, guessed from their names
  pipewire pipewire-bin wireplumber   # the tests' private audio graph (virtual microphone)
  espeak-ng                 # real speech played into it
  opus-tools sox            # opusinfo/opusdec and sox check the recorded voice messages
  xvfb dunst                # a real notification server (im-notify's tests)
  python3-dbusmock          # a notification server with inline-reply (im-notify's tests)
  ayatana-indicator-application libdbusmenu-tools   # a real tray watcher/host (im-tray's tests)
  groff-base man-db         # the man pages are checked with groff
  gdb                       # kills imd at an exact point (test_files' crash-window tests)
)

check_only=0
[ "${1:-}" = "--check" ] && check_only=1

missing=()
for p in "${BUILD_PKGS[@]}" "${RUN_PKGS[@]}"; do
  st=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$st" = installed ] || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#BUILD_PKGS[@]}+${#RUN_PKGS[@]} packages present"
  exit 0
fi
echo "install-deps: missing: ${missing[*]}"
[ $check_only = 1 ] && exit 1

SUDO=()
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: not root and no sudo" >&2; exit 1; }
  SUDO=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive

# Keep package scripts from starting services (a system-wide prosody listening
# on 5222/5269/5280 is not wanted: tests and the demo start their own). Only
# when there is no policy-rc.d already, and removed again afterwards.
policy=/usr/sbin/policy-rc.d
added_policy=0
prosody_was_installed=0
[ "$(dpkg-query -W -f='${db:Status-Status}' prosody 2>/dev/null || true)" = installed ] \
  && prosody_was_installed=1
if [ ! -e $policy ]; then
  printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee $policy >/dev/null
  "${SUDO[@]}" chmod 755 $policy
  added_policy=1
fi
cleanup() { [ $added_policy = 1 ] && "${SUDO[@]}" rm -f $policy; return 0; }
trap cleanup EXIT

"${SUDO[@]}" apt-get update -q
"${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" </dev/null

# If we just installed prosody and its system service got started anyway
# (a pre-existing policy-rc.d allowing it), stop it and keep it from booting:
# it is only here for tests and the demo, which run their own instances.
if [ $prosody_was_installed = 0 ]; then
  if [ -d /run/systemd/system ]; then
    "${SUDO[@]}" systemctl disable --now prosody.service >/dev/null 2>&1 || true
  elif [ -f /run/prosody/prosody.pid ] && [ -x /etc/init.d/prosody ]; then
    "${SUDO[@]}" /etc/init.d/prosody stop >/dev/null 2>&1 || true
  fi
fi
echo "install-deps: done"
