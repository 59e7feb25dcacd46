package devcluster

import "syscall"

// sysProcAttr puts each pod in its own process group, so that stopping it reaches every
// process it started, and kills it when the runner dies without stopping it (a killed
// `hallpass dev` leaves no server behind).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
