#!/usr/bin/env bash
# Builds etcd from the pinned Go module (hack/etcd: a wrapper whose main calls
# etcdmain.Main) with the machine's Go, so the local stack needs no system etcd.
#
# usage: build-etcd.sh OUTPUT_DIR
set -euo pipefail
outdir="${1:?usage: build-etcd.sh OUTPUT_DIR}"
command -v go >/dev/null || { echo "go not found: install Go 1.24+ (https://go.dev/dl/)" >&2; exit 2; }
here="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$outdir"
outdir="$(cd "$outdir" && pwd)"
start=$(date +%s)
cd "$here/etcd"
# Build to a temporary name and rename: a cancelled build never leaves a half-written binary.
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$outdir/.etcd.tmp" .
mv -f "$outdir/.etcd.tmp" "$outdir/etcd"
echo "built etcd $("$outdir/etcd" --version | head -1) -> $outdir/etcd in $(( $(date +%s) - start ))s"
