//go:build !linux

package main

import (
	"errors"
	"os/exec"
)

// cpuPinning needs Linux's CPU affinity; elsewhere -server-cpus is refused.
type cpuPinning struct{}

func newPinning(string) (*cpuPinning, error) {
	return nil, errors.New("-server-cpus needs Linux")
}

func (*cpuPinning) serverCPUs() int                   { return 0 }
func (*cpuPinning) moveHere() error                   { return nil }
func (*cpuPinning) onServerCPUs(f func() error) error { return f() }
func (*cpuPinning) start(cmd *exec.Cmd) error         { return cmd.Start() }
