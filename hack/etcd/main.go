// Command etcd is the upstream etcd server entry point, built from pinned Go modules
// (go.etcd.io/etcd/server/v3 has replace directives, so `go install` of it is refused;
// a wrapper module is the supported way to build it outside its own repository).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
