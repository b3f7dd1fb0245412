// Package logbuf is a log sink for tests: it takes lines from any
// goroutine (a server's, say) and lets the test read what was written.
package logbuf

import (
	"strings"
	"sync"
)

// Buffer collects what is written to it, safe for concurrent use.
type Buffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String is everything written so far.
func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
