package main

import (
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// cgroupMemoryFiles hold the memory limit of the container the process runs in: cgroup v2,
// then v1.
var cgroupMemoryFiles = []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}

// memoryLimitShare is the part of the container's memory limit the Go heap may aim for; the
// rest is for the runtime's own memory, goroutine stacks and the binary.
const memoryLimitShare = 0.85

// limitMemoryToContainer makes the garbage collector work harder as the heap nears the
// container's memory limit, instead of letting a burst (ten thousand SSOClients applied at
// once) double the heap past it and have the pod killed. GOMEMLIMIT, when set, wins. It
// returns the limit set, or 0 when there is none to follow.
func limitMemoryToContainer() int64 {
	if _, set := os.LookupEnv("GOMEMLIMIT"); set {
		return 0
	}
	for _, f := range cgroupMemoryFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if limit := goMemoryLimit(string(b)); limit > 0 {
			debug.SetMemoryLimit(limit)
			return limit
		}
	}
	return 0
}

// goMemoryLimit is the Go memory limit for a cgroup's memory limit file content, or 0 for
// none ("max", or v1's near-2^63 "unlimited").
func goMemoryLimit(cgroupLimit string) int64 {
	bytes, err := strconv.ParseInt(strings.TrimSpace(cgroupLimit), 10, 64)
	if err != nil || bytes <= 0 || bytes >= 1<<62 {
		return 0
	}
	return int64(float64(bytes) * memoryLimitShare)
}
