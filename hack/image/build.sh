#!/usr/bin/env bash
# `make image [IMAGE=...] [IMAGE_TARGET=operator|cloudypad] [BASE_IMAGE=local|<ref>]`: the
# Dockerfile built with buildah (no daemon): vfs storage, chroot isolation. The image lands
# in buildah's local storage (`buildah --storage-driver vfs images`); push it with
# `buildah --storage-driver vfs push IMAGE docker://REGISTRY/...`.
#
# BASE_IMAGE=local builds on a locally made Debian bookworm root with Python 3.11
# (hack/image/local-base.sh, needs root and debootstrap) passed as the PYTHON_IMAGE build
# argument, for machines that cannot pull from Docker Hub; the Dockerfile's default stays
# the digest-pinned python image. CLOUDYPAD_BASE=<ref> does the same for the cloudypad
# target's CLOUDYPAD_IMAGE.
set -euo pipefail
image=${1:-gamevm-operator:0.1.0}
target=${2:-operator}
base=${3:-}
cd "$(dirname "$0")/../.."
command -v buildah >/dev/null || {
  echo "make image needs buildah (Debian/Ubuntu: apt-get install buildah; or build with" \
    "\`docker build --target $target -t $image .\`)" >&2
  exit 1
}
args=(--isolation chroot --target "$target" --tag "$image" --file Dockerfile --layers=false)
if [ "$base" = local ]; then
  base=$(hack/image/local-base.sh)
fi
if [ -n "$base" ]; then
  args+=(--build-arg "PYTHON_IMAGE=$base")
fi
if [ -n "${CLOUDYPAD_BASE:-}" ]; then
  args+=(--build-arg "CLOUDYPAD_IMAGE=$CLOUDYPAD_BASE")
fi
started=$(date +%s)
echo "[image] buildah bud ${args[*]} . (about 1 min for the operator target)" >&2
buildah --storage-driver vfs bud "${args[@]}" . >&2
echo "[image] built $image (target $target) in $(( $(date +%s) - started ))s" >&2
config=$(buildah --storage-driver vfs inspect --type image --format \
  'user {{.OCIv1.Config.User}}, entrypoint {{.OCIv1.Config.Entrypoint}}, workdir {{.OCIv1.Config.WorkingDir}}' \
  "$image")
echo "[image] $config" >&2
buildah --storage-driver vfs images --format '[image] {{.Name}}:{{.Tag}} {{.Size}}' "$image" >&2
