// Package proc reads what the benchmarks measure of a process from Linux's /proc: its CPU
// time and its memory, and the peak of a figure the kernel keeps no high-water mark of.
package proc

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Stat is what /proc/<pid>/stat says of a process.
type Stat struct {
	Command string
	Parent  int
	// CPU is its user and system time so far.
	CPU time.Duration
}

// clockTicks is USER_HZ, the unit of /proc's CPU times: 100 on every Linux architecture Go
// supports.
const clockTicks = 100

// ReadStat reads /proc/<pid>/stat.
func ReadStat(pid int) (Stat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Stat{}, err
	}
	// pid (command) state ppid ... utime stime: the command may hold spaces and parentheses,
	// so fields are counted after its last ")".
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return Stat{}, fmt.Errorf("/proc/%d/stat: no command", pid)
	}
	f := strings.Fields(string(b[end+1:]))
	if len(f) < 13 {
		return Stat{}, fmt.Errorf("/proc/%d/stat: short", pid)
	}
	parent, _ := strconv.Atoi(f[1])
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return Stat{Command: string(b[open+1 : end]), Parent: parent, CPU: time.Duration(utime+stime) * time.Second / clockTicks}, nil
}

// Children reads the Stat of each running child of process parent, by PID.
func Children(parent int) map[int]Stat {
	out := map[int]Stat{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		if st, err := ReadStat(pid); err == nil && st.Parent == parent {
			out[pid] = st
		}
	}
	return out
}

// CPUByName returns the CPU time used so far by process self and each of its children, by
// name: names gives those of particular processes, the others go by their command name
// (processes of one name add up).
func CPUByName(self int, names map[int]string) map[string]time.Duration {
	processes := Children(self)
	if st, err := ReadStat(self); err == nil {
		processes[self] = st
	}
	out := map[string]time.Duration{}
	for pid, st := range processes {
		name, ok := names[pid]
		if !ok {
			name = st.Command
		}
		out[name] += st.CPU
	}
	return out
}

// Memory is what /proc/<pid>/status says of a process's memory, in bytes.
type Memory struct {
	// Peak is the highest resident set size so far, Resident the current one.
	Peak, Resident int64
	// Anonymous is the current resident memory that is not a file's pages (the binary's
	// and libraries'), which the kernel can drop under a container's limit instead of
	// killing it.
	Anonymous int64
}

// ReadMemory reads /proc/<pid>/status.
func ReadMemory(pid int) (Memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Memory{}, err
	}
	var m Memory
	for line := range strings.SplitSeq(string(b), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(fields[1], 10, 64)
		switch fields[0] {
		case "VmHWM:":
			m.Peak = kb << 10
		case "VmRSS:":
			m.Resident = kb << 10
		case "RssAnon:":
			m.Anonymous = kb << 10
		}
	}
	if m.Resident == 0 {
		return Memory{}, errors.New("/proc/<pid>/status: no VmRSS")
	}
	return m, nil
}

// SamplePeak calls read every interval until the returned function is called, which stops
// it and returns the highest value read (failed reads count as nothing). It may be called
// again, and returns the same.
func SamplePeak(interval time.Duration, read func() (int64, error)) (stop func() int64) {
	var mu sync.Mutex
	var highest int64
	quit, done := make(chan struct{}), make(chan struct{})
	var once sync.Once
	go func() {
		defer close(done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for {
			if v, err := read(); err == nil {
				mu.Lock()
				highest = max(highest, v)
				mu.Unlock()
			}
			select {
			case <-quit:
				return
			case <-tick.C:
			}
		}
	}()
	return func() int64 {
		once.Do(func() { close(quit) })
		<-done
		mu.Lock()
		defer mu.Unlock()
		return highest
	}
}
