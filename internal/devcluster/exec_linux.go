package devcluster

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"syscall"
)

// sysProcAttr puts each pod in its own process group, so that stopping it reaches every
// process it started, and kills it when the runner dies without stopping it (a killed
// `hallpass dev` leaves no server behind). newNS gives it a private mount namespace.
func sysProcAttr(newNS bool) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if newNS {
		a.Cloneflags = syscall.CLONE_NEWNS
	}
	return a
}

// mountNamespacesAvailable reports whether pods can get private mount namespaces, which
// needs CAP_SYS_ADMIN (root, as in this project's development machines and CI).
func mountNamespacesAvailable() bool { return os.Geteuid() == 0 }

// ExecPod is the `hallpass dev exec-pod` helper. The runner starts it in a new mount
// namespace; it bind-mounts each pod volume at its mountPath, visible to this process
// only, then replaces itself with the container's command. This is how two local pods can
// both use /var/lib/hallpass, as they would in their own containers.
//
// args: [--bind SRC:DST]... -- PATH [ARG]...
func ExecPod(args []string) error {
	var binds [][2]string
	for len(args) > 0 && args[0] != "--" {
		if args[0] != "--bind" || len(args) < 2 {
			return fmt.Errorf("exec-pod: unexpected argument %q (usage: exec-pod [--bind SRC:DST] -- PATH [ARG])", args[0])
		}
		src, dst, ok := strings.Cut(args[1], ":")
		if !ok || src == "" || !strings.HasPrefix(dst, "/") {
			return fmt.Errorf("exec-pod: --bind %q is not SRC:/absolute/DST", args[1])
		}
		binds = append(binds, [2]string{src, dst})
		args = args[2:]
	}
	if len(args) < 2 {
		return errors.New("exec-pod: no command after --")
	}
	path, argv := args[1], args[1:]
	// Mounts made below must not propagate back to the host's namespace.
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("exec-pod: make mounts private (is this process in its own mount namespace?): %w", err)
	}
	for _, b := range binds {
		// A missing mount point is created, as a container runtime does; it stays empty on
		// the host.
		if err := os.MkdirAll(b[1], 0o755); err != nil {
			return fmt.Errorf("exec-pod: create mount point %s: %w", b[1], err)
		}
		if err := syscall.Mount(b[0], b[1], "", syscall.MS_BIND|syscall.MS_REC, ""); err != nil {
			return fmt.Errorf("exec-pod: bind %s at %s: %w", b[0], b[1], err)
		}
	}
	// The parent-death signal the runner asked for belongs to the thread it forked, and
	// execve keeps only the calling thread, which in a Go program may be another one: set
	// it again on this thread, and exec from it.
	runtime.LockOSThread()
	if _, _, errno := syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_PDEATHSIG, uintptr(syscall.SIGKILL), 0); errno != 0 {
		return fmt.Errorf("exec-pod: set parent-death signal: %w", errno)
	}
	if os.Getppid() == 1 {
		return errors.New("exec-pod: the pod runner is gone")
	}
	if err := syscall.Exec(path, argv, os.Environ()); err != nil {
		return fmt.Errorf("exec-pod: exec %s: %w", path, err)
	}
	return nil
}
