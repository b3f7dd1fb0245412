package proxy_test

import (
	"bufio"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ssegate/ssegate/proxy"
)

// startNode runs a script of dir with node until ctx ends, and returns
// its standard output, to read to the end before Wait.
func startNode(ctx context.Context, t *testing.T, node, dir string, args ...string) (*exec.Cmd, io.Reader) {
	t.Helper()
	cmd := exec.CommandContext(ctx, node, args...)
	cmd.Dir = dir
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, out
}

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
	cmd, out := startNode(ctx, t, node, dir, "limit.mjs", h.ts.URL+"/ticks")
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

// A real EventSource follows several topics on one stream, each event
// dispatched to its topic's listener; when ssegate ends the stream it
// comes back with its last id and gets what was published meanwhile,
// once.
func TestEventSourceFollowsTopics(t *testing.T) {
	t.Parallel()
	dir := filepath.Join("testdata", "eventsource")
	node := nodeWith(t, dir, "eventsource")
	clients := make(chan *proxy.Client, 2)
	h := start(t, `
route "/live" {
  topics {}
  source "nats" { subject = "stocks.${topic.name}" }
}`, proxy.OnConnect(func(c *proxy.Client) { clients <- c }))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd, out := startNode(ctx, t, node, dir, "topics.mjs", h.ts.URL+"/live"+topicsOf("A", "B"), "4", "A", "B")
	var lines []string
	var back *proxy.Client
	for sc := bufio.NewScanner(out); sc.Scan(); {
		lines = append(lines, sc.Text())
		switch {
		case len(lines) == 1: // open
			h.publish("stocks.A", "a1")
			h.publish("stocks.B", "b1")
		case len(lines) == 3: // both events are in
			first := <-clients
			first.Close(100 * time.Millisecond)
			<-first.Done()
			h.publish("stocks.B", "b2")
			h.publish("stocks.A", "a2")
			select {
			case back = <-clients:
			case <-ctx.Done():
				t.Fatal("the client did not come back")
			}
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("EventSource client: %v; it saw:\n%s", err, strings.Join(lines, "\n"))
	}
	want := []string{"open", "event A a1", "event B b1", "open", "event B b2", "event A a2"}
	if !slices.Equal(lines, want) {
		t.Errorf("the client saw %q, want %q", lines, want)
	}
	if back.Request().Header.Get("Last-Event-ID") == "" {
		t.Error("the client came back without its Last-Event-ID")
	}
}
