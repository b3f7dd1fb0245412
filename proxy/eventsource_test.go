package proxy_test

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A real EventSource client (the eventsource npm package, which follows
// the standard) over a route's max_clients: the first two stream on, the
// third is turned away with a retry hint and comes back by itself once a
// slot is free.
func TestEventSourceComesBackAfterLimit(t *testing.T) {
	t.Parallel()
	dir := filepath.Join("testdata", "eventsource")
	node := nodeWith(t, dir, "eventsource")
	h := start(t, `
route "/ticks" {
  max_clients = 2
  retry       = "300ms"
  source "nats" { subject = "ticks" }
}`)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "limit.mjs", h.ts.URL+"/ticks")
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
				_ = h.pub.Publish("ticks", []byte("tick"))
			}
		}
	}()
	var lines []string
	for sc := bufio.NewScanner(out); sc.Scan(); {
		lines = append(lines, sc.Text())
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("EventSource client: %v; it saw:\n%s", err, strings.Join(lines, "\n"))
	}
	log := strings.Join(lines, "\n")
	for _, want := range []string{"error 3", "closed 1", "done"} {
		if !strings.Contains(log, want) {
			t.Errorf("no %q in:\n%s", want, log)
		}
	}
	if strings.Contains(log, "error 2") {
		t.Errorf("client 2 was interrupted:\n%s", log)
	}
	if strings.Count(log, "open 3") != 2 {
		t.Errorf("client 3 did not come back exactly once:\n%s", log)
	}
}
