#!/usr/bin/env bash
# Wolf as a systemd service around `docker run --network host` (its ports are fixed:
# TCP 47984, 47989, 48010; UDP 47999, 48100-48110, 48200-48210).
set -euo pipefail
# shellcheck source=/dev/null
. /etc/gamevm/gamevm.env

mkdir -p /etc/wolf/cfg /tmp/sockets
gpu_args="--device /dev/dri"
if [ "${GAMEVM_GPU:-none}" = "nvidia" ]; then
  gpu_args="--gpus all --env NVIDIA_DRIVER_CAPABILITIES=all --env NVIDIA_VISIBLE_DEVICES=all"
fi
{
  echo "WOLF_IMAGE=$GAMEVM_WOLF_IMAGE"
  echo "WOLF_GPU_ARGS=$gpu_args"
} >/etc/gamevm/wolf.env
docker pull "$GAMEVM_WOLF_IMAGE"
systemctl daemon-reload
systemctl enable --now wolf.service
for _ in $(seq 1 60); do
  if curl -fsS -o /dev/null http://127.0.0.1:47989/serverinfo; then
    echo "Wolf answers on 47989"
    exit 0
  fi
  sleep 5
done
echo "Wolf did not answer on 47989 within 5 minutes" >&2
exit 1
