#!/usr/bin/env bash
# Builds kube-apiserver from the pinned k8s.io/kubernetes release with the
# machine's Go. k8s.io/kubernetes points its staging modules at local folders,
# so each replace is regenerated from the release's own go.mod to the matching
# published v0.x.y version.
set -euo pipefail
version="${KUBE_VERSION:-v1.34.4}"
out="${1:?usage: build-kube-apiserver.sh OUTPUT_BINARY}"
here="$(cd "$(dirname "$0")" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
staging="v0.${version#v1.}"
cp "$here/kube-apiserver/main.go" "$work/"
cd "$work"
gomod="$(go mod download -json "k8s.io/kubernetes@${version}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
{
  echo "module gamevm.dev/hack/kube-apiserver"
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
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X k8s.io/component-base/version.gitVersion=${version}" -o "$out" .
echo "built kube-apiserver ${version} -> ${out}"
