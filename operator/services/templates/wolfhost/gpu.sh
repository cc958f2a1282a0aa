#!/usr/bin/env bash
# NVIDIA driver and container toolkit, only when the VM has an NVIDIA GPU. Images that
# ship a working driver (nvidia-smi answers) keep it.
set -euo pipefail
# shellcheck source=/dev/null
. /etc/gamevm/gamevm.env

if [ "${GAMEVM_GPU:-none}" != "nvidia" ]; then
  echo "no GPU requested: software encoding"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
if ! nvidia-smi >/dev/null 2>&1; then
  apt-get install -y ubuntu-drivers-common
  ubuntu-drivers install
  modprobe nvidia || true
fi
if ! command -v nvidia-ctk >/dev/null 2>&1; then
  keyring=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg
  curl -fsSL https://nvidia.github.io/libnvidia-container/gpgkey | gpg --dearmor -o "$keyring"
  echo "deb [signed-by=$keyring] https://nvidia.github.io/libnvidia-container/stable/deb/\$(ARCH) /" \
    >/etc/apt/sources.list.d/nvidia-container-toolkit.list
  apt-get update
  apt-get install -y nvidia-container-toolkit
fi
nvidia-ctk runtime configure --runtime=docker
systemctl restart docker
nvidia-smi
