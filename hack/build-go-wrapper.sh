#!/usr/bin/env bash
# Builds one of our pinned Go wrapper modules with the machine's Go, so the local stack
# needs no system install of it:
#   etcd      hack/etcd: a wrapper whose main calls etcdmain.Main (etcd 3.6.16)
#   ferretdb  hack/ferretdb: a wrapper around FerretDB 1.24.2's embeddable package (a
#             MongoDB-wire server on PostgreSQL; `go install` of FerretDB's own cmd
#             builds a binary that panics at start)
#
# usage: build-go-wrapper.sh NAME OUTPUT_DIR   (writes OUTPUT_DIR/NAME)
set -euo pipefail
usage="usage: build-go-wrapper.sh etcd|ferretdb OUTPUT_DIR"
name="${1:?$usage}"
outdir="${2:?$usage}"
here="$(cd "$(dirname "$0")" && pwd)"
case "$name" in
  etcd|ferretdb) ;;
  *) echo "unknown wrapper module: $name ($usage)" >&2; exit 2 ;;
esac
[ -f "$here/$name/go.mod" ] || { echo "$here/$name/go.mod is missing" >&2; exit 2; }
command -v go >/dev/null || { echo "go not found: install Go 1.24+ (https://go.dev/dl/)" >&2; exit 2; }
mkdir -p "$outdir"
outdir="$(cd "$outdir" && pwd)"
start=$(date +%s)
cd "$here/$name"
# Build to a temporary name and rename: a cancelled build never leaves a half-written binary.
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$outdir/.$name.tmp" .
mv -f "$outdir/.$name.tmp" "$outdir/$name"
echo "built $name ($("$outdir/$name" --version | head -1)) -> $outdir/$name in $(( $(date +%s) - start ))s"
