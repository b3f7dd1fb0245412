package proxy_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ssegate/ssegate/internal/loopback"
)

// Abuse: JetStream consumers. nats-server allows 1,000 consumers per
// stream by default; streams opened and closed without end, resumes
// included, must not use them up, on any replica.
func TestConsumersDoNotGrowWithStreams(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a 3-node NATS cluster and opens 3,000 streams")
	}
	nodes := loopback.Cluster(t, 3)
	const cfg = `
new_streams_per_ip = 0
route "/t/{name}" {
  history {
    store    = "jetstream"
    replicas = 3
  }
  source "nats" { subject = "t.${path.name}" }
}`
	a, b := startOn(t, nodes[0], cfg), startOn(t, nodes[1], cfg)
	js, err := jetstreamFor(t, nodes[2])
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*wait)
	defer cancel()
	publish := func(subject, data string) {
		t.Helper()
		if _, err := js.Publish(ctx, subject, []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	stream := onlyStream(ctx, t, js)
	consumers := func() int {
		info, err := stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return info.State.Consumers
	}

	// A client of /t/kept sees an event, leaves, and misses 600.
	kept := a.open("/t/kept", nil)
	publish("t.kept", "seen")
	seen := kept.ExpectData("seen")[0].LastEventID
	kept.Close()
	// More than a replay reads message by message: it reads in batches
	// through a consumer of its own, gone once it is done.
	var missed []string
	for i := range 600 {
		missed = append(missed, fmt.Sprint("missed ", i))
		publish("t.kept", missed[i])
	}

	const n = 3000
	var wg sync.WaitGroup
	sem := make(chan struct{}, 10)
	for i := range n {
		h := a
		if i%2 == 1 {
			h = b
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if status := openAndClose(t, h.ts.Listener.Addr().String(), fmt.Sprintf("/t/s%d", i)); !strings.Contains(status, " 200 ") {
				t.Errorf("stream %d: %q", i, status)
			}
		})
		if i%500 == 0 {
			// One ordered consumer per replica reads the route, however
			// many streams it has.
			if c := consumers(); c > 2 {
				t.Fatalf("%d consumers on the stream after %d streams, want at most 2 (one per replica)", c, i)
			}
		}
	}
	wg.Wait()
	if c := consumers(); c > 2 {
		t.Fatalf("%d consumers on the stream after %d streams, want at most 2", c, n)
	}

	// Resumes on either replica get exactly what was missed.
	onA := a.open("/t/kept", http.Header{"Last-Event-Id": {seen}})
	onA.ExpectData(missed...)
	publish("t.kept", "live")
	onA.ExpectData("live")
	onB := b.open("/t/kept", http.Header{"Last-Event-Id": {seen}})
	onB.ExpectData(append(missed, "live")...)
	onB.ExpectQuiet(50 * time.Millisecond)
	if c := consumers(); c > 2 {
		t.Errorf("%d consumers after the resumes, want at most 2", c)
	}
}
