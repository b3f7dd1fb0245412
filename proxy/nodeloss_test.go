package proxy_test

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// The NATS node an instance is connected to dies in the middle of a
// burst: the instance reconnects to another node, its client's stream
// stays open, and the client ends with every event exactly once.
func TestNATSNodeLossDuringBurst(t *testing.T) {
	t.Parallel()
	nodes, a, js := onCluster(t)
	const n = 300
	c := a.open("/ticks", nil)
	done := make(chan error, 1)
	go func() {
		for i := range n {
			if i == n/3 {
				nodes[0].Shutdown()
			}
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			_, err := js.Publish(ctx, "ticks", []byte(fmt.Sprint(i)))
			cancel()
			if err != nil {
				done <- fmt.Errorf("publish %d: %w", i, err)
				return
			}
		}
		done <- nil
	}()
	var gap time.Duration // the longest wait for an event: the recovery
	for next := range n {
		// The ordered consumer on the lost node is recreated on another
		// once JetStream has elected new leaders; a request sent during
		// the election waits out its 10 s timeout before the retry.
		start := time.Now()
		ev := c.NextWithin(3 * wait)
		gap = max(gap, time.Since(start))
		if ev.Data != fmt.Sprint(next) {
			t.Fatalf("event %d: got %q (%+v)", next, ev.Data, ev)
		}
	}
	t.Logf("delivery paused at most %v", gap)
	c.ExpectQuiet(50 * time.Millisecond)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
