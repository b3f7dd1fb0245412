package proxy

import (
	"bytes"
	"strings"
	"testing"
)

// batchOf is the names of a batch's frames (their text before the
// padding).
func batchOf(batch [][]byte) string {
	names := make([]string, len(batch))
	for i, f := range batch {
		names[i], _, _ = strings.Cut(string(f), ".")
	}
	return strings.Join(names, " ")
}

// A client that drops or conflates takes its queue about unsentLimit at
// a time; what it leaves stays queued, replay first and live keys in
// order, and conflation still replaces it. Other clients take it whole.
func TestSlowPolicyTakesBoundedBatches(t *testing.T) {
	t.Parallel()
	frame := func(name string) []byte { return append([]byte(name), bytes.Repeat([]byte{'.'}, 3<<10)...) }
	c := newClient(nil, 100)
	c.dropOldest, c.conflate = true, true
	c.preload(frame("r0"), frame("r1"), frame("r2"))
	for _, k := range []string{"a", "b", "c"} {
		c.pushKeyed(frame(k+"1"), k)
	}
	take := func(want string, wantAll bool) {
		t.Helper()
		c.mu.Lock()
		batch, all := c.takeBatch()
		c.mu.Unlock()
		if got := batchOf(batch); got != want || all != wantAll {
			t.Fatalf("took %q (all: %v), want %q (all: %v)", got, all, want, wantAll)
		}
	}
	take("r0 r1", false)
	if c.backlog != 1 || strings.Join(c.keys, " ") != "a b c" {
		t.Fatalf("left backlog %d, keys %q", c.backlog, c.keys)
	}
	take("r2 a1", false)
	if c.backlog != 0 || strings.Join(c.keys, " ") != "b c" {
		t.Fatalf("left backlog %d, keys %q", c.backlog, c.keys)
	}
	c.pushKeyed(frame("b2"), "b") // replaces b1, still queued
	take("c1 b2", true)

	whole := newClient(nil, 100)
	for range 5 {
		whole.push(frame("x"))
	}
	whole.mu.Lock()
	batch, all := whole.takeBatch()
	whole.mu.Unlock()
	if len(batch) != 5 || !all {
		t.Errorf("a client that disconnects when slow took %d of 5 frames", len(batch))
	}
}

// A client that drops events and is being ended takes its whole queue,
// so that its end comes even while events keep its queue full.
func TestEndingClientTakesItsWholeQueue(t *testing.T) {
	t.Parallel()
	c := newClient(nil, 100)
	c.dropOldest = true
	for range 10 {
		c.push(bytes.Repeat([]byte{'x'}, 3<<10))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.moveTo(closing) {
		t.Fatal("an open client cannot be ended")
	}
	if batch, all := c.takeBatch(); len(batch) != 10 || !all {
		t.Fatalf("took %d of 10 frames (all: %v)", len(batch), all)
	}
}
