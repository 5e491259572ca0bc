// Command etcd is etcd v3.6 built from the Go module proxy: the same entry point as the released binary
// (etcdmain.Main, which runs the server through the embed package), so it takes etcd's own flags. Debian's
// etcd 3.4 stays installed as the oldest supported server; this one is the current one.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
