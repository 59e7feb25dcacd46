//go:build !linux

package main

import (
	"errors"
	"os/exec"
	"runtime"
)

// cpuPinning needs Linux's CPU affinity; elsewhere -server-cpus is refused, and the nil
// *cpuPinning of a run without it pins nothing.
type cpuPinning struct{}

func newPinning(string) (*cpuPinning, error) {
	return nil, errors.New("-server-cpus needs Linux")
}

func (*cpuPinning) serverCPUs() int                   { return runtime.NumCPU() }
func (*cpuPinning) moveHere() error                   { return nil }
func (*cpuPinning) onServerCPUs(f func() error) error { return f() }
func (*cpuPinning) start(cmd *exec.Cmd) error         { return cmd.Start() }
