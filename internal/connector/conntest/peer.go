package conntest

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"sync"
	"testing"
)

// startPeer starts a peer process that cancel stops. It ends with the test, which shows
// the peer's output when it failed.
func startPeer(t testing.TB, name string, cmd *exec.Cmd, cancel context.CancelFunc) {
	t.Helper()
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if t.Failed() {
			t.Logf("%s output:\n%s", name, strings.TrimSpace(logs.String()))
		}
	})
}

// syncBuffer collects a child's output while the test may read it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
