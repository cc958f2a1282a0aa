#!/usr/bin/env bash
# Builds Kubernetes control-plane binaries (kube-apiserver,
# kube-controller-manager) from the pinned k8s.io/kubernetes release with the
# machine's Go. k8s.io/kubernetes points its staging modules at local folders,
# so each replace is regenerated from the release's own go.mod to the matching
# published v0.x.y version. All components share one generated module, so the
# second build reuses the module download and most of the Go build cache.
#
# usage: build-kube.sh OUTPUT_DIR [COMPONENT...]
#   COMPONENT: kube-apiserver | kube-controller-manager | kubectl
#              (default: kube-apiserver kube-controller-manager)
#   KUBE_VERSION overrides the pinned release (default below).
set -euo pipefail
version="${KUBE_VERSION:-v1.34.4}"
outdir="${1:?usage: build-kube.sh OUTPUT_DIR [COMPONENT...]}"
shift
components=("$@")
if [ "${#components[@]}" -eq 0 ]; then
  components=(kube-apiserver kube-controller-manager)
fi
command -v go >/dev/null || { echo "go not found: install Go 1.24+ (https://go.dev/dl/)" >&2; exit 2; }
here="$(cd "$(dirname "$0")" && pwd)"
mkdir -p "$outdir"
outdir="$(cd "$outdir" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
staging="v0.${version#v1.}"
for c in "${components[@]}"; do
  [ -f "$here/$c/main.go" ] || { echo "unknown component: $c" >&2; exit 2; }
  mkdir -p "$work/cmd/$c"
  cp "$here/$c/main.go" "$work/cmd/$c/"
done
cd "$work"
gomod="$(go mod download -json "k8s.io/kubernetes@${version}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
{
  echo "module gamevm.dev/hack/kube"
  echo
  grep -E '^go ' "$gomod"
  echo
  echo "require k8s.io/kubernetes ${version}"
  echo
  echo "replace ("
  sed -nE 's#^\s*(k8s\.io/[a-z0-9-]+) => \./staging/src/k8s\.io/[a-z0-9-]+\s*$#\t\1 => \1 '"${staging}"'#p' "$gomod"
  echo ")"
} > go.mod
GOFLAGS=-mod=mod go mod tidy >/dev/null
for c in "${components[@]}"; do
  start=$(date +%s)
  # Build to a temporary name and rename, so a cancelled build never leaves a
  # half-written binary where the cache lookup would find it.
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=${version}" \
    -o "$outdir/.$c.tmp" "./cmd/$c"
  mv -f "$outdir/.$c.tmp" "$outdir/$c"
  echo "built $c ${version} -> $outdir/$c in $(( $(date +%s) - start ))s"
done
