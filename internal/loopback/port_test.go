package loopback

import (
	"net"
	"strconv"
	"testing"
)

func TestFreePortNeverHandsOutTheSamePortTwice(t *testing.T) {
	seen := map[int]bool{}
	for range 500 {
		port, err := FreePort()
		if err != nil {
			t.Fatal(err)
		}
		if seen[port] {
			t.Fatalf("port %d was handed out twice", port)
		}
		seen[port] = true
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

func TestWithoutRoomBelowTheEphemeralRangeTheKernelsPortsAreNotHandedOutTwice(t *testing.T) {
	seen := map[int]bool{}
	for range 50 {
		port, err := kernelPort()
		if err != nil {
			t.Fatal(err)
		}
		if seen[port] {
			t.Fatalf("port %d was handed out twice", port)
		}
		seen[port] = true
	}
}
