#!/usr/bin/env bash
# Builds FerretDB 1.24.2 (a MongoDB-wire server on PostgreSQL) from the pinned Go module
# (hack/ferretdb: a wrapper around FerretDB's embeddable package; `go install` of FerretDB's
# own cmd builds a binary that panics at start) with the machine's Go.
#
# usage: build-ferretdb.sh OUTPUT_DIR
set -euo pipefail
outdir="${1:?usage: build-ferretdb.sh OUTPUT_DIR}"
command -v go >/dev/null || { echo "go not found: install Go 1.24+ (https://go.dev/dl/)" >&2; exit 2; }
here="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$outdir"
outdir="$(cd "$outdir" && pwd)"
start=$(date +%s)
cd "$here/ferretdb"
# Build to a temporary name and rename: a cancelled build never leaves a half-written binary.
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$outdir/.ferretdb.tmp" .
mv -f "$outdir/.ferretdb.tmp" "$outdir/ferretdb"
echo "built $("$outdir/ferretdb" --version) -> $outdir/ferretdb in $(( $(date +%s) - start ))s"
