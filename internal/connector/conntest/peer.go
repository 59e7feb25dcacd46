package conntest

import (
	"context"
	"os/exec"
	"strings"
	"testing"

	"github.com/hallpass/hallpass/internal/testutil/logbuf"
)

// skipShort skips t under -short (make test-unit), which runs only the tests that need no
// installed service.
func skipShort(t testing.TB, why string) {
	t.Helper()
	if testing.Short() {
		t.Skip(why)
	}
}

// startPeer starts a peer process that cancel stops. It ends with the test, which shows
// the peer's output when it failed.
func startPeer(t testing.TB, name string, cmd *exec.Cmd, cancel context.CancelFunc) {
	t.Helper()
	logs := &logbuf.Buffer{}
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
