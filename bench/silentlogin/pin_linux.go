package main

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// cpuPinning gives the server CPUs of its own: the server process runs on server, and this
// process (the load generator) on others, except while it measures the signing ceiling,
// which it does on the server's CPUs. Then the ceiling and the server's logins are figures
// of the same cores, and the load generator no longer takes its share of them. A nil
// *cpuPinning pins nothing: everything runs on every CPU.
type cpuPinning struct {
	server, others unix.CPUSet
	list           string
}

// newPinning splits the CPUs this process may use into list (such as "0" or "0-1,4") for the
// server and the rest for everything else.
func newPinning(list string) (*cpuPinning, error) {
	var all unix.CPUSet
	if err := unix.SchedGetaffinity(0, &all); err != nil {
		return nil, fmt.Errorf("read this process's CPUs: %w", err)
	}
	p := &cpuPinning{others: all, list: list}
	for part := range strings.SplitSeq(list, ",") {
		lo, hi, isRange := strings.Cut(strings.TrimSpace(part), "-")
		first, err := strconv.Atoi(lo)
		last := first
		if err == nil && isRange {
			last, err = strconv.Atoi(hi)
		}
		if err != nil || first < 0 || last < first {
			return nil, fmt.Errorf("-server-cpus %q: want CPU numbers and ranges such as 0 or 0-1,4", list)
		}
		for cpu := first; cpu <= last; cpu++ {
			if !all.IsSet(cpu) {
				return nil, fmt.Errorf("-server-cpus %q: CPU %d is not one this process may use", list, cpu)
			}
			p.server.Set(cpu)
			p.others.Clear(cpu)
		}
	}
	if p.others.Count() == 0 {
		return nil, fmt.Errorf("-server-cpus %q leaves no CPU for the load generator", list)
	}
	return p, nil
}

// serverCPUs is how many CPUs the server has, and so how many goroutines sign for the
// ceiling.
func (p *cpuPinning) serverCPUs() int {
	if p == nil {
		return runtime.NumCPU()
	}
	return p.server.Count()
}

// moveHere puts every thread of this process on the others' CPUs; threads started later
// inherit that from the thread that starts them.
func (p *cpuPinning) moveHere() error {
	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		return fmt.Errorf("list this process's threads: %w", err)
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		// A thread may have ended since the listing.
		if err := unix.SchedSetaffinity(tid, &p.others); err != nil && err != unix.ESRCH {
			return fmt.Errorf("move thread %d to CPUs other than %s: %w", tid, p.list, err)
		}
	}
	return nil
}

// onServerCPUs runs f on a thread that runs on the server's CPUs only.
func (p *cpuPinning) onServerCPUs(f func() error) error {
	if p == nil {
		return f()
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if err := unix.SchedSetaffinity(0, &p.server); err != nil {
		return fmt.Errorf("move to CPUs %s: %w", p.list, err)
	}
	ferr := f()
	if err := unix.SchedSetaffinity(0, &p.others); err != nil {
		return fmt.Errorf("move back from CPUs %s: %w", p.list, err)
	}
	return ferr
}

// start starts cmd on the server's CPUs: a child inherits the CPUs of the thread that
// forks it, and Go forks from the calling goroutine's thread.
func (p *cpuPinning) start(cmd *exec.Cmd) error {
	return p.onServerCPUs(cmd.Start)
}
