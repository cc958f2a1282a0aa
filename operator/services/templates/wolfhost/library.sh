#!/usr/bin/env bash
# The game library, read-only, through rclone (S3 or an HTTP index) as a systemd mount.
set -euo pipefail

systemctl daemon-reload
systemctl enable --now gamevm-games.service
# shellcheck source=/dev/null
. /etc/gamevm/library.conf
for _ in $(seq 1 30); do
  if mountpoint -q "$GAMEVM_LIBRARY_MOUNT"; then
    echo "library mounted at $GAMEVM_LIBRARY_MOUNT"
    exit 0
  fi
  sleep 2
done
echo "library not mounted at $GAMEVM_LIBRARY_MOUNT" >&2
exit 1
