#!/usr/bin/env bash
# The prerequisites of the README's two commands, checked before anything slow starts.
# Each missing one is named in one line with what to install; everything else (the
# virtualenv, etcd, kube-apiserver, kube-controller-manager, kubectl, the test MongoDB,
# the CloudyPad CLI) is set up by `make` itself, without root.
#
#   hack/prereqs.sh python    # only Python (what `make install`, `make lint` need)
#   hack/prereqs.sh           # Python, Go and Node (what `make test` and `make dev` need)
set -uo pipefail
what=${1:-all}
missing=0
need() { echo "missing prerequisite: $*" >&2; missing=1; }

# Python 3.11+ with a working venv module (Debian and Ubuntu split it into python3-venv).
python=${PYTHON:-python3}
if ! command -v "$python" >/dev/null; then
  need "Python 3.11+ (\`$python\` is not on PATH): install it from your OS (Debian 12: apt-get install python3 python3-venv), https://www.python.org/downloads/ or pyenv (no root)"
elif ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  need "Python 3.11+ (\`$python\` is $("$python" -c 'import platform; print(platform.python_version())')): install a newer one (pyenv needs no root) and put it first on PATH or run make PYTHON=/path/to/python3.11"
elif ! "$python" -c 'import ensurepip, venv' 2>/dev/null; then
  need "Python's venv module (\`$python -m venv\` cannot bootstrap pip): on Debian/Ubuntu apt-get install python3-venv, or use a python.org/pyenv build"
fi

if [ "$what" = all ]; then
  # Go 1.24+ builds etcd and the Kubernetes binaries from pinned modules (hack/build-*.sh).
  if ! command -v go >/dev/null; then
    need "Go 1.24+ (\`go\` is not on PATH), which builds etcd and the Kubernetes binaries once: unpack https://go.dev/dl/ into your home (no root) and add its bin/ to PATH"
  else
    go_minor=$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')
    if ! [ "${go_minor:-0}" -ge 24 ] 2>/dev/null; then
      need "Go 1.24+ (found $(go env GOVERSION)): install a newer one from https://go.dev/dl/ (no root)"
    fi
  fi
  # Node.js 20+ runs the real CloudyPad CLI (built from its pinned source on first use).
  if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    need "Node.js 20+ with npm (\`node\`/\`npm\` not on PATH), which runs the real CloudyPad CLI: https://nodejs.org/en/download (a tarball in your home needs no root) or nvm"
  else
    node_major=$(node -p 'process.versions.node.split(".")[0]')
    if [ "$node_major" -lt 20 ]; then
      need "Node.js 20+ (found $(node --version)): install a newer one from https://nodejs.org/en/download or nvm (no root)"
    fi
  fi
fi

if [ "$missing" -ne 0 ]; then
  echo "install the above and run the command again (README.md, \"The two commands\")" >&2
  exit 1
fi
