#!/usr/bin/env bash
# A local stand-in for the Dockerfile's digest-pinned python base, for machines that cannot
# pull from Docker Hub: a Debian bookworm root (debootstrap, minbase) with Python 3.11, venv,
# pip and `python`, imported into buildah's vfs storage as $LOCAL_BASE. Needs root (debootstrap,
# chroot), debootstrap and buildah from Debian. About 60-90 s; reused while the image exists.
#
# Like the official image it has no PEP 668 marker (the Dockerfile runs pip as root).
# Package downloads in a build may go through a TLS-inspecting proxy: the machine's CA bundle
# is copied in, and PIP_CERT / SSL_CERT_FILE point at it (only in this stand-in; the real
# Dockerfile and base stay as users need them).
set -euo pipefail
name=${LOCAL_BASE:-localhost/gamevm-local-python:3.11-bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
storage=(--storage-driver vfs)
if buildah "${storage[@]}" inspect --type image "$name" >/dev/null 2>&1 && [ -z "${REBUILD:-}" ]; then
  echo "$name"
  exit 0
fi
for tool in debootstrap buildah; do
  command -v "$tool" >/dev/null || {
    echo "hack/image/local-base.sh needs $tool (Debian: apt-get install debootstrap buildah)" >&2
    exit 1
  }
done
[ "$(id -u)" = 0 ] || { echo "hack/image/local-base.sh needs root (debootstrap)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
started=$(date +%s)
echo "[image] debootstrap bookworm (minbase + python3) into $work: about 60-90 s" >&2
debootstrap --variant=minbase \
  --include=python3,python3-venv,python3-pip,python-is-python3,ca-certificates \
  bookworm "$work/root" "$mirror" >"$work/debootstrap.log" 2>&1 \
  || { tail -20 "$work/debootstrap.log" >&2; exit 1; }
rm -f "$work"/root/usr/lib/python3.*/EXTERNALLY-MANAGED
ca=/etc/ssl/certs/ca-certificates.crt
[ -f "$ca" ] && cp "$ca" "$work/root$ca"
rm -rf "$work"/root/var/cache/apt/archives/*.deb "$work"/root/var/lib/apt/lists/*
container=$(buildah "${storage[@]}" from scratch)
mount=$(buildah "${storage[@]}" mount "$container")
cp -a "$work/root/." "$mount/"
buildah "${storage[@]}" unmount "$container" >/dev/null
buildah "${storage[@]}" config \
  --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --env LANG=C.UTF-8 \
  --env PIP_CERT="$ca" --env SSL_CERT_FILE="$ca" --env REQUESTS_CA_BUNDLE="$ca" \
  --cmd python3 \
  --label org.opencontainers.image.description="local stand-in for python:3.11-slim-bookworm" \
  "$container"
buildah "${storage[@]}" commit --quiet "$container" "$name" >/dev/null
buildah "${storage[@]}" rm "$container" >/dev/null
echo "[image] $name made in $(( $(date +%s) - started ))s" >&2
echo "$name"
