#!/bin/bash
# The main job, on an embedded default: chat at once with a peer that answers.
#
#   tools/demo.sh
#
# Installs missing Debian packages, builds, then starts (all private, on
# loopback, stopped again when you leave):
#   - a D-Bus session bus of its own (tests/dbus-session.conf),
#   - a local Prosody with the accounts alice (password alice-demo) and bob,
#   - tools/echo-peer.py logged in as bob, answering "echo: <text>",
#   - imd, with its history under .demo/, logged in as alice over WebSocket,
# and runs `imctl chat bob@localhost` in the foreground: type a line and press
# Enter to send it; Ctrl-D (or Ctrl-C) ends the demo.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
DEMO="$ROOT/.demo"
PY=/usr/bin/python3

say() { printf 'demo: %s\n' "$*" >&2; }

tools/install-deps.sh >&2
if [ ! -f build/build.ninja ]; then
  meson setup build >&2
fi
meson compile -C build >&2

find_exe() {   # find_exe NAME PREFERRED_PATH
  if [ -x "$2" ]; then echo "$2"; return; fi
  find build -type f -name "$1" -perm -u+x -not -path '*/meson-*' | head -n1
}
IMD=$(find_exe imd build/service/imd)
IMCTL=$(find_exe imctl build/clients/imctl/imctl)
[ -n "$IMD" ] && [ -n "$IMCTL" ] || { say "imd/imctl not built"; exit 1; }
IMD="$ROOT/$IMD"; IMCTL="$ROOT/$IMCTL"

mkdir -p "$DEMO/data" "$DEMO/cache"
PROSODY_DIR=$(mktemp -d /tmp/imd-demo-prosody.XXXXXX)
chmod 755 "$PROSODY_DIR"

# -- everything started here is stopped by pid on the way out ------------------
BUS_PID="" PROSODY_PID="" PEER_PID="" IMD_PID=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  say "stopping"
  if [ -n "$IMD_PID" ]; then kill -TERM "$IMD_PID" 2>/dev/null || true; fi
  if [ -n "$PEER_PID" ]; then kill -TERM "$PEER_PID" 2>/dev/null || true; fi
  if [ -n "$PROSODY_PID" ]; then
    # runuser forks: signal prosody itself (pidfile), then reap runuser
    if [ -s "$PROSODY_DIR/prosody.pid" ]; then
      kill -TERM "$(cat "$PROSODY_DIR/prosody.pid")" 2>/dev/null || true
    fi
    kill -TERM "$PROSODY_PID" 2>/dev/null || true
  fi
  for p in $IMD_PID $PEER_PID $PROSODY_PID; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  if [ -n "$BUS_PID" ]; then
    kill -TERM "$BUS_PID" 2>/dev/null || true
    wait "$BUS_PID" 2>/dev/null || true
  fi
  rm -rf "$PROSODY_DIR"
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM HUP

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {   # wait_port PORT PID
  for _ in $(seq 150); do
    if "$PY" -c 'import socket,sys; socket.create_connection(("127.0.0.1",int(sys.argv[1])),0.3)' "$1" 2>/dev/null; then
      return 0
    fi
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}

# -- D-Bus -----------------------------------------------------------------------------
coproc BUS { exec dbus-daemon --config-file="$ROOT/tests/dbus-session.conf" --nofork --print-address=1 2>"$DEMO/dbus-daemon.log"; }
BUS_PID=$BUS_PID
read -r -t 10 ADDRESS <&"${BUS[0]}" || { say "dbus-daemon did not start"; exit 1; }
export DBUS_SESSION_BUS_ADDRESS="$ADDRESS"
echo "$ADDRESS" > "$DEMO/bus-address"

# -- Prosody -----------------------------------------------------------------------------
C2S_PORT=$(free_port)
HTTP_PORT=$(free_port)
while [ "$HTTP_PORT" = "$C2S_PORT" ]; do HTTP_PORT=$(free_port); done
CFG="$PROSODY_DIR/prosody.cfg.lua"
mkdir -p "$PROSODY_DIR/data"
cat > "$CFG" <<EOF
pidfile = "$PROSODY_DIR/prosody.pid"
data_path = "$PROSODY_DIR/data"
log = { info = "$PROSODY_DIR/prosody.log" }
interfaces = { "127.0.0.1" }
local_interfaces = { "127.0.0.1" }
http_interfaces = { "127.0.0.1" }
c2s_ports = { $C2S_PORT }
http_ports = { $HTTP_PORT }
https_ports = { }
c2s_direct_tls_ports = { }
s2s_ports = { }
component_ports = { }
c2s_require_encryption = false
consider_websocket_secure = true
authentication = "internal_hashed"
allow_registration = false
archive_expires_after = "never"
modules_enabled = {
    "roster"; "saslauth"; "tls"; "disco"; "carbons"; "pep"; "private";
    "blocklist"; "vcard4"; "vcard_legacy"; "ping"; "register"; "mam";
    "smacks"; "websocket"; "http"; "bookmarks"; "csi_simple"; "offline"; "posix";
}
modules_disabled = { "s2s" }
VirtualHost "localhost"
Component "upload.localhost" "http_file_share"
    http_external_url = "http://127.0.0.1:$HTTP_PORT/"
Component "conference.localhost" "muc"
    modules_enabled = { "muc_mam" }
EOF
chown -R prosody:prosody "$PROSODY_DIR"
prosodyctl --config "$CFG" register alice localhost alice-demo >/dev/null
prosodyctl --config "$CFG" register bob localhost bob-demo >/dev/null
(cd "$PROSODY_DIR" && exec runuser -u prosody -- prosody --config "$CFG" -F \
   </dev/null >"$DEMO/prosody.out" 2>&1) &
PROSODY_PID=$!
wait_port "$C2S_PORT" "$PROSODY_PID" && wait_port "$HTTP_PORT" "$PROSODY_PID" \
  || { say "prosody did not start:"; tail -n 20 "$PROSODY_DIR/prosody.log" >&2; exit 1; }
WS_URL="ws://127.0.0.1:$HTTP_PORT/xmpp-websocket"

# -- bob, the echo peer ---------------------------------------------------------------------
rm -f "$DEMO/echo-peer.ready"
"$PY" tools/echo-peer.py --jid bob@localhost --password bob-demo --port "$C2S_PORT" \
  --ready-file "$DEMO/echo-peer.ready" </dev/null >"$DEMO/echo-peer.log" 2>&1 &
PEER_PID=$!
for _ in $(seq 150); do [ -s "$DEMO/echo-peer.ready" ] && break; sleep 0.1; done
[ -s "$DEMO/echo-peer.ready" ] || { say "echo peer did not log in:"; cat "$DEMO/echo-peer.log" >&2; exit 1; }

# -- imd, logged in as alice -------------------------------------------------------------------
# The demo's Prosody takes uploads over plain http on 127.0.0.1, which imd
# refuses unless told (see README, FetchMedia): this local playground says so.
IMD_TEST_LOOPBACK_HTTP=1 "$IMD" --data-dir "$DEMO/data" --cache-dir "$DEMO/cache" </dev/null 2>"$DEMO/imd.log" >&2 &
IMD_PID=$!
for _ in $(seq 100); do
  "$IMCTL" status >/dev/null 2>&1 && break
  kill -0 "$IMD_PID" 2>/dev/null || { say "imd exited:"; cat "$DEMO/imd.log" >&2; exit 1; }
  sleep 0.1
done
echo alice-demo | "$IMCTL" login alice@localhost --url "$WS_URL"

cat >&2 <<EOF

  imd is logged in as alice@localhost; bob@localhost answers "echo: <text>".
  Type a message and press Enter. Ctrl-D or Ctrl-C ends the demo and stops
  everything it started (history stays in .demo/).

  From another terminal:
    export DBUS_SESSION_BUS_ADDRESS='$ADDRESS'
    $IMCTL status
    $IMCTL --json monitor
    $IMCTL send bob@localhost 'hello from another terminal'

EOF

set +e
"$IMCTL" chat bob@localhost
rc=$?
set -e
exit $rc
