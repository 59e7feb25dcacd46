package loopback

import (
	"net"
	"strconv"
	"testing"
)

func TestNoPortIsHandedOutTwice(t *testing.T) {
	for _, tt := range []struct {
		name  string
		pick  func() (int, error)
		times int
	}{
		{"ports below the ephemeral range", FreePort, 500},
		{"the kernel's ports, where there is no room below its range", kernelPort, 50},
	} {
		t.Run(tt.name, func(t *testing.T) {
			seen := map[int]bool{}
			for range tt.times {
				port, err := tt.pick()
				if err != nil {
					t.Fatal(err)
				}
				if seen[port] {
					t.Fatalf("port %d was handed out twice", port)
				}
				seen[port] = true
			}
		})
	}
}

func TestFreePortIsOutsideTheKernelsEphemeralRangeAndListenable(t *testing.T) {
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	if port < lowestPort || port >= ephemeralRangeStart() {
		t.Fatalf("port %d is outside [%d, %d)", port, lowestPort, ephemeralRangeStart())
	}
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatalf("listen on the port handed out: %v", err)
	}
	_ = l.Close()
}
