#!/usr/bin/env bash
# A partial local stand-in for crafteo/cloudypad:0.45.1 (the `cloudypad` image target's
# base), for machines that cannot pull from Docker Hub: the local python base
# (local-base.sh) plus this machine's node and the CloudyPad CLI 0.45.1 built from its
# source by $CLOUDYPAD_BUILD (default ../shared/vendor/build-cloudypad.sh), with `cloudypad`
# on PATH. Unlike the official image it has no Pulumi and no Ansible, so it proves the image
# layout, the user, the state volume and the CLI's own commands, not a real cloud create.
# Needs root and buildah; prints the image name.
set -euo pipefail
name=${LOCAL_CLOUDYPAD_BASE:-localhost/gamevm-local-cloudypad:0.45.1-partial}
storage=(--storage-driver vfs)
cd "$(dirname "$0")/../.."
if buildah "${storage[@]}" inspect --type image "$name" >/dev/null 2>&1 && [ -z "${REBUILD:-}" ]; then
  echo "$name"
  exit 0
fi
base=$(hack/image/local-base.sh)
launcher=$("${CLOUDYPAD_BUILD:-../shared/vendor/build-cloudypad.sh}")
app=$(dirname "$(dirname "$launcher")")/app
node=$(command -v node)
[ -f "$app/dist/src/cli/main.js" ] || { echo "no CloudyPad build in $app" >&2; exit 1; }
started=$(date +%s)
container=$(buildah "${storage[@]}" from --pull-never "$base")
mount=$(buildah "${storage[@]}" mount "$container")
install -m 0755 "$node" "$mount/usr/local/bin/node"
mkdir -p "$mount/opt/cloudypad"
cp -a "$app/." "$mount/opt/cloudypad/"
chmod -R a+rX "$mount/opt/cloudypad"
cat >"$mount/usr/local/bin/cloudypad" <<'SH'
#!/bin/sh
exec node /opt/cloudypad/dist/src/cli/main.js "$@"
SH
chmod 0755 "$mount/usr/local/bin/cloudypad"
buildah "${storage[@]}" unmount "$container" >/dev/null
buildah "${storage[@]}" config --entrypoint '["cloudypad"]' \
  --label org.opencontainers.image.description="partial local stand-in for crafteo/cloudypad:0.45.1 (no pulumi, no ansible)" \
  "$container"
buildah "${storage[@]}" commit --quiet "$container" "$name" >/dev/null
buildah "${storage[@]}" rm "$container" >/dev/null
echo "[image] $name made in $(( $(date +%s) - started ))s" >&2
echo "$name"
