// Command pause is the sandbox process of the real-node test's pods: it holds the pod's
// namespaces open, reaps orphans when it is PID 1 of a shared PID namespace, and exits on
// SIGINT or SIGTERM. It does what Kubernetes' pause image does, built here because no
// registry is reachable.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
