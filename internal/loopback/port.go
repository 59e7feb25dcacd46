// Package loopback hands out loopback TCP ports to processes that are about to listen on them.
package loopback

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// lowestPort is the lowest port FreePort offers: well above the ports system services use.
const lowestPort = 20000

// attempts bounds the search for a free port.
const attempts = 200

var (
	mu     sync.Mutex
	handed = map[int]bool{}
)

// FreePort returns a loopback port that is free now and that this process has not handed
// out before. A port found by listening on port 0 is a poor choice for a process that
// listens later: the kernel offers a released port again to the next caller, and it lends
// ports of its ephemeral range to outgoing connections, so a port handed to one process
// could be taken by another before it listens. FreePort therefore picks below the kernel's
// ephemeral range (at random, so that test processes running side by side rarely meet) and
// remembers what it gave.
func FreePort() (int, error) {
	mu.Lock()
	defer mu.Unlock()
	highest := ephemeralRangeStart() - 1
	if highest <= lowestPort {
		// No room below the ephemeral range (a host that lends nearly every port): the
		// kernel's choice, never handed out twice, is the best left.
		return kernelPort()
	}
	for range attempts {
		port := lowestPort + rand.IntN(highest-lowestPort+1) //nolint:gosec // G404: spreads test ports, guards nothing
		if handed[port] {
			continue
		}
		l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		if err := l.Close(); err != nil {
			return 0, fmt.Errorf("find a free loopback port: release %d: %w", port, err)
		}
		handed[port] = true
		return port, nil
	}
	return 0, fmt.Errorf("find a free loopback port: none of %d tries between %d and %d was free", attempts, lowestPort, highest)
}

// kernelPort is a port the kernel picks, not one handed out before.
func kernelPort() (int, error) {
	for range attempts {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("find a free loopback port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		if err := l.Close(); err != nil {
			return 0, fmt.Errorf("find a free loopback port: release %d: %w", port, err)
		}
		if !handed[port] {
			handed[port] = true
			return port, nil
		}
	}
	return 0, fmt.Errorf("find a free loopback port: the kernel offered only ports handed out before in %d tries", attempts)
}

// ephemeralRangeStart is the first port the kernel lends to outgoing connections; 32768
// (Linux's default) where the system does not say.
func ephemeralRangeStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	fields := strings.Fields(string(b))
	if len(fields) != 2 {
		return 32768
	}
	start, err := strconv.Atoi(fields[0])
	if err != nil {
		return 32768
	}
	return start
}
