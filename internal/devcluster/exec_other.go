//go:build !linux

package devcluster

import (
	"fmt"
	"syscall"
)

func sysProcAttr(bool) *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

func mountNamespacesAvailable() bool { return false }

// ExecPod needs Linux mount namespaces.
func ExecPod([]string) error {
	return fmt.Errorf("exec-pod: volume mounts: %w", errUnsupported)
}
