// Package memlimit aims the Go heap below the memory limit of the container a process runs
// in, so that a burst (ten thousand SSOClients applied at once) makes the garbage collector
// work harder instead of doubling the heap past the limit and having the pod killed.
package memlimit

import (
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// cgroupFiles hold the memory limit of the container: cgroup v2, then v1.
var cgroupFiles = []string{"/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"}

// share is the part of the container's memory limit the Go heap may aim for; the rest is
// for the runtime's own memory, goroutine stacks and the binary.
const share = 0.85

// FromContainer sets the Go memory limit from the container's cgroup and returns it, or 0
// when there is none to follow. GOMEMLIMIT, when set, wins.
func FromContainer() int64 {
	if _, set := os.LookupEnv("GOMEMLIMIT"); set {
		return 0
	}
	for _, f := range cgroupFiles {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if limit := ForCgroupLimit(string(b)); limit > 0 {
			debug.SetMemoryLimit(limit)
			return limit
		}
	}
	return 0
}

// ForCgroupLimit is the Go memory limit for a cgroup memory limit file's content, or 0 for
// none ("max", or v1's near-2^63 "unlimited").
func ForCgroupLimit(content string) int64 {
	bytes, err := strconv.ParseInt(strings.TrimSpace(content), 10, 64)
	if err != nil || bytes <= 0 || bytes >= 1<<62 {
		return 0
	}
	return For(bytes)
}

// For is the Go memory limit for a container memory limit of limitBytes.
func For(limitBytes int64) int64 { return int64(float64(limitBytes) * share) }
