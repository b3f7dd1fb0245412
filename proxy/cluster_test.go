package proxy_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/ssegate/ssegate/internal/loopback"
	"github.com/ssegate/ssegate/internal/ssetest"
)

// Two ssegate instances on a 3-node NATS cluster with JetStream: a webhook
// posted to one reaches a client of the other, and a client that drops
// from one resumes on the other with exactly the events it missed.
func TestTwoInstancesOnACluster(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a 3-node NATS cluster")
	}
	nodes := loopback.Cluster(t, 3)
	const cfg = `
route "/deploys" {
  history {
    store    = "jetstream"
    replicas = 3
  }
  source "webhook" {
    path = "/hooks/deploy"
    verify "none" {}
  }
}`
	a, b := startOn(t, nodes[0], cfg), startOn(t, nodes[1], cfg)
	post := func(h *harness, body string) {
		t.Helper()
		if code, answer := postBody(t, h.ts.URL+"/hooks/deploy", body); code != http.StatusAccepted {
			t.Fatalf("delivery %q: %d %q", body, code, answer)
		}
	}

	onB := b.open("/deploys", nil)
	onA := a.open("/deploys", nil)
	post(a, "from A")
	onB.ExpectData("from A")
	seen := onA.ExpectData("from A")
	onA.Close()

	for i := range 3 {
		post(a, fmt.Sprint("missed ", i))
	}
	onB.ExpectData("missed 0", "missed 1", "missed 2")
	moved := b.open("/deploys", http.Header{"Last-Event-Id": {seen[0].LastEventID}})
	moved.ExpectData("missed 0", "missed 1", "missed 2")
	post(b, "live")
	moved.ExpectData("live")
	moved.ExpectQuiet(50 * time.Millisecond)
}

// Two replicas whose embedded servers form one NATS cluster, with no NATS
// of their own: a webhook received by one reaches a browser on the other.
func TestEmbeddedCluster(t *testing.T) {
	t.Parallel()
	routeA, routeB := loopback.FreeAddr(t), loopback.FreeAddr(t)
	replica := func(name, listen, peer string) *httptest.Server {
		_, ts := serveConfig(t, fmt.Sprintf(`
nats {
  embedded {
    server_name = %q
    cluster {
      listen = %q
      routes = ["nats://%s"]
    }
  }
}
route "/deploys" {
  source "webhook" {
    path = "/hooks/deploy"
    verify "none" {}
  }
}`, name, listen, peer))
		return ts
	}
	tsA := replica("edge-a", routeA, routeB)
	tsB := replica("edge-b", routeB, routeA)

	c := ssetest.Open(t, tsB.Client(), tsB.URL+"/deploys", nil)
	// Until the two servers have found each other and exchanged interest,
	// a delivery to A may reach nobody on B: post until one does.
	eventually(t, "a delivery to A to reach B", func() bool {
		if code, answer := postBody(t, tsA.URL+"/hooks/deploy", "across"); code != http.StatusAccepted {
			t.Fatalf("delivery: %d %q", code, answer)
		}
		select {
		case ev := <-c.Events():
			return ev.Data == "across"
		case <-time.After(100 * time.Millisecond):
			return false
		}
	})
}

// An instance shut down in the middle of a publish burst: its client moves
// to the other instance with its Last-Event-ID and ends with every event
// exactly once, in order.
func TestInstanceRestartDuringBurst(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a 3-node NATS cluster")
	}
	nodes := loopback.Cluster(t, 3)
	a, b := startOn(t, nodes[0], ticksOnCluster), startOn(t, nodes[2], ticksOnCluster)
	js, err := jetstreamFor(t, nodes[1])
	if err != nil {
		t.Fatal(err)
	}
	const n = 600
	c := a.open("/ticks", nil)
	done := make(chan error, 1)
	go func() {
		for i := range n {
			if _, err := js.Publish(context.Background(), "ticks", []byte(fmt.Sprint(i))); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()

	next, lastID := 0, ""
	for next < n/3 {
		ev := c.Next()
		if ev.Data != fmt.Sprint(next) {
			t.Fatalf("event %d: got %q", next, ev.Data)
		}
		next, lastID = next+1, ev.LastEventID
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := a.srv.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	// Whatever A wrote before its goodbye was read; go on from there.
	for ev := range c.Drain() {
		if ev.Data != fmt.Sprint(next) {
			t.Fatalf("event %d before the goodbye: got %q", next, ev.Data)
		}
		next, lastID = next+1, ev.LastEventID
	}
	moved := b.open("/ticks", http.Header{"Last-Event-Id": {lastID}})
	for next < n {
		ev := moved.Next()
		if ev.Data != fmt.Sprint(next) {
			t.Fatalf("after moving, event %d: got %q (%+v)", next, ev.Data, ev)
		}
		next++
	}
	moved.ExpectQuiet(50 * time.Millisecond)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A resume that meets a JetStream leader election gets exactly the
// events it missed, never a reset: the election only delays the answers
// it needs. Resumes leave no consumer behind on the server.
func TestResumeDuringLeaderElection(t *testing.T) {
	t.Parallel()
	_, a, js := onCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*wait)
	defer cancel()
	stream := onlyStream(ctx, t, js)
	name := stream.CachedInfo().Config.Name
	live := a.open("/ticks", nil)
	publish := func(data string) {
		t.Helper()
		if _, err := js.Publish(ctx, "ticks", []byte(data)); err != nil {
			t.Fatal(err)
		}
	}
	publish("first")
	seen := live.ExpectData("first")[0].LastEventID
	for round := range 3 {
		missed := []string{fmt.Sprint(round, "a"), fmt.Sprint(round, "b")}
		publish(missed[0])
		publish(missed[1])
		live.ExpectData(missed...)
		// The resume's requests go out while the stream's leader steps
		// down and the others elect a new one.
		if _, err := js.Conn().Request("$JS.API.STREAM.LEADER.STEPDOWN."+name, nil, wait); err != nil {
			t.Fatal(err)
		}
		moved := a.open("/ticks", http.Header{"Last-Event-Id": {seen}})
		got := moved.ExpectData(missed...)
		seen = got[len(got)-1].LastEventID
		moved.Close()
	}
	// One ordered consumer reads the stream live; the resumes added none.
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Consumers != 1 {
		t.Errorf("%d consumers on the stream after 3 resumes, want the live one", info.State.Consumers)
	}
}
