"""The embedded local stack: a real Kubernetes control plane and its neighbours on
127.0.0.1, for `make dev` and the end-to-end tests. No Docker.

`gamevm-dev up|down|status [--state-dir DIR] [--no-operator]` (cli.py):
etcd, kube-apiserver (RBAC, client-cert admin, service-account token signing),
kube-controller-manager (garbage collector, namespace, service accounts), the CRDs
(waited until Established), the Mongo-compatible server (mongo.py), the provider
simulators and their credentials Secret, the operator, the samples. Progress on
stderr; stdout is `export NAME=value` lines: `eval "$(gamevm-dev up)"`.

Modules: processes (start with log + pidfile, health waits, stop by pid),
binaries (find or build kube binaries, cached in ~/.cache/gamevm/bin), certs,
state (the state folder, ports), stack (ordered pluggable steps), kube and extras
(the steps), steps (default order). `python -m gamevm_dev.devstack prefetch` finds or
builds every binary up front.

Environment: GAMEVM_DEV_STATE_DIR (default `.dev/` in the repo), GAMEVM_BIN_DIR,
GAMEVM_KUBE_APISERVER, GAMEVM_KUBE_CONTROLLER_MANAGER, GAMEVM_KUBECTL, GAMEVM_ETCD,
KUBEBUILDER_ASSETS, GAMEVM_DEV_<COMPONENT>_PORT (pin a port, e.g.
GAMEVM_DEV_KUBE_APISERVER_PORT=6443).
"""
