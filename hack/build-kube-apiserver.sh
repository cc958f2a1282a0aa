#!/usr/bin/env bash
# Kept for compatibility: builds kube-apiserver only (see build-kube.sh).
set -euo pipefail
out="${1:?usage: build-kube-apiserver.sh OUTPUT_BINARY}"
here="$(cd "$(dirname "$0")" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
"$here/build-kube.sh" "$tmp" kube-apiserver
mv -f "$tmp/kube-apiserver" "$out"
