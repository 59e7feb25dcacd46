// Package logbuf collects the output of a test's child processes, which write it while the
// test may read it for a failure report.
package logbuf

import (
	"strings"
	"sync"
)

// Buffer is an io.Writer safe for concurrent use; a nil *Buffer reads as empty.
type Buffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	if b == nil {
		return ""
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
