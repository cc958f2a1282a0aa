#!/usr/bin/env bash
# Makes this VM a Wolf host, then tells the operator what happened (runs once, from
# cloud-init's runcmd). Each step is its own script; a failed step is reported, never
# hidden: the operator keeps the VM `configuring` and shows the message.
set -uo pipefail

LOG=/var/log/gamevm-configure.log
exec >>"$LOG" 2>&1

ready=true
games=false
failed=""

run_step() {
  local script=$1
  echo "== $script ($(date -u +%FT%TZ))"
  if ! "$script"; then
    ready=false
    failed="${failed:+$failed, }$(basename "$script" .sh)"
  fi
}

# The library comes first: the emulator app mounts it.
if [ -s /etc/gamevm/library.conf ]; then
  if /usr/local/lib/gamevm/library.sh; then
    games=true
  else
    failed="${failed:+$failed, }library"
  fi
fi
run_step /usr/local/lib/gamevm/gpu.sh
run_step /usr/local/lib/gamevm/wolf.sh
run_step /usr/local/lib/gamevm/emulator.sh

message="configured"
if [ -n "$failed" ]; then
  message="failed steps: $failed (see $LOG)"
fi
/usr/local/lib/gamevm/report.sh "$ready" "$games" "$message"
