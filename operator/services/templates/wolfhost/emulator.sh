#!/usr/bin/env bash
# The console's emulator as a Moonlight app of Wolf's default profile: the frontend
# (RetroArch with the console's core, or ES-DE) with the game library read-only at /ROMs.
# Wolf writes its default config.toml on first start; the app is appended once, then
# Wolf restarts to load it.
set -euo pipefail
# shellcheck source=/dev/null
. /etc/gamevm/gamevm.env

config=/etc/wolf/cfg/config.toml
roms=${GAMEVM_LIBRARY_MOUNT:-/srv/games}
mkdir -p "$roms"
for _ in $(seq 1 30); do
  [ -s "$config" ] && break
  sleep 2
done
if [ ! -s "$config" ]; then
  echo "Wolf wrote no $config" >&2
  exit 1
fi
if ! grep -q "name = \"GameVM-$GAMEVM_CONSOLE\"" "$config"; then
  cat >>"$config" <<TOML

[[profiles.apps]]
title = "$GAMEVM_EMULATOR_TITLE"
start_virtual_compositor = true

[profiles.apps.runner]
type = "docker"
name = "GameVM-$GAMEVM_CONSOLE"
image = "$GAMEVM_EMULATOR_IMAGE"
mounts = ["$roms:/ROMs:ro"]
env = ["RUN_SWAY=1", "GAMEVM_SYSTEM=$GAMEVM_EMULATOR_SYSTEM", "GAMEVM_CORE=$GAMEVM_EMULATOR_CORE"]
devices = []
ports = []
TOML
  systemctl restart wolf.service
fi
echo "emulator app for $GAMEVM_CONSOLE: $GAMEVM_EMULATOR_TITLE ($GAMEVM_EMULATOR_IMAGE)"
