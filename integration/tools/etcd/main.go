// Command etcd runs etcd v3.6.16 from its Go module, for the integration
// harness. It is a separate module because k8s.io/kubernetes v1.37.2 requires
// etcd server v3.7, and the harness pins the 3.6 line that Kubernetes supports.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
