// Command kube-controller-manager is the upstream controller manager entry
// point, built from the same pinned Go modules as kube-apiserver. The local
// stack runs only the controllers it needs (garbage collector, namespace,
// service-account token).
package main

import (
	"os"

	_ "time/tzdata"

	"k8s.io/component-base/cli"
	_ "k8s.io/component-base/logs/json/register"
	_ "k8s.io/component-base/metrics/prometheus/clientgo"
	_ "k8s.io/component-base/metrics/prometheus/version"
	"k8s.io/kubernetes/cmd/kube-controller-manager/app"
)

func main() {
	os.Exit(cli.Run(app.NewControllerManagerCommand()))
}
