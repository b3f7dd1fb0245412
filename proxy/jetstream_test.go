package proxy_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/ssegate/ssegate/internal/loopback"
	"github.com/ssegate/ssegate/internal/ssetest"
	"github.com/ssegate/ssegate/proxy"
	"github.com/ssegate/ssegate/proxy/config"
)

const jsRoute = `
route "/sse" {
  history { store = "jetstream" }
  source "nats" { subject = "events" }
}`

// With the history in JetStream, event ids are stream sequences, and a
// client resumes with an id from before a restart.
func TestJetStreamHistorySurvivesRestart(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	hcl := fmt.Sprintf("nats {\n  embedded { store_dir = %q }\n}\n%s", dir, jsRoute)
	serve := func() (*proxy.Server, *httptest.Server) {
		cfg, err := config.Parse([]byte(hcl), "test.hcl")
		if err != nil {
			t.Fatal(err)
		}
		srv, err := proxy.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return srv, httptest.NewServer(srv)
	}
	stop := func(srv *proxy.Server, ts *httptest.Server) {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Error(err)
		}
		ts.Close()
	}
	publish := func(srv *proxy.Server, data string) {
		if err := srv.Conn().Publish("events", []byte(data)); err != nil {
			t.Fatal(err)
		}
		if err := srv.Conn().Flush(); err != nil {
			t.Fatal(err)
		}
	}

	a, tsA := serve()
	c := ssetest.Open(t, tsA.Client(), tsA.URL+"/sse", nil)
	publish(a, "one")
	publish(a, "two")
	got := c.ExpectData("one", "two")
	if got[0].LastEventID != "1" || got[1].LastEventID != "2" {
		t.Errorf("ids %q %q, want the stream sequences 1 and 2", got[0].LastEventID, got[1].LastEventID)
	}
	c.Close()
	publish(a, "three") // missed by the client, kept by JetStream
	stop(a, tsA)

	b, tsB := serve()
	defer stop(b, tsB)
	r := ssetest.Open(t, tsB.Client(), tsB.URL+"/sse", http.Header{"Last-Event-Id": {"2"}})
	publish(b, "four")
	got = r.ExpectData("three", "four")
	if got[0].LastEventID != "3" || got[1].LastEventID != "4" {
		t.Errorf("ids %q %q after the restart, want 3 and 4", got[0].LastEventID, got[1].LastEventID)
	}
	stale := ssetest.Open(t, tsB.Client(), tsB.URL+"/sse", http.Header{"Last-Event-Id": {"not-a-sequence"}})
	if ev := stale.Next(); ev.Type != proxy.ResetEvent || ev.LastEventID != "4" {
		t.Errorf("unknown id: got %+v, want a reset to 4", ev)
	}
}

// The seam between a JetStream replay and live events has no gap and no
// duplicate, under continuous publishing.
func TestJetStreamResumeSeam(t *testing.T) {
	t.Parallel()
	h := startOn(t, loopback.JetStream(t, t.TempDir()), jsRoute)
	resumeSeam(t, h, "/sse", "events")
}

// On a route whose history is in JetStream, a webhook is answered 202 once
// JetStream has stored it, and a retried delivery is stored once (by its
// Nats-Msg-Id, with the in-process window off).
func TestWebhookOnJetStreamRoute(t *testing.T) {
	t.Parallel()
	h := startOn(t, loopback.JetStream(t, t.TempDir()), `
route "/deploys" {
  history { store = "jetstream" }
  source "webhook" {
    path         = "/hooks/deploy"
    dedup_window = "0s"
    verify "none" {}
  }
}`)
	hook := h.ts.URL + "/hooks/deploy"
	for _, d := range []struct{ id, body string }{{"msg_1", "once"}, {"msg_1", "once"}, {"msg_2", "twice"}} {
		if code, answer := post(t, hook, "text/plain", http.Header{"Webhook-Id": {d.id}}, d.body); code != http.StatusAccepted {
			t.Fatalf("delivery %s: %d %q", d.id, code, answer)
		}
	}
	// From the start of the history: both deliveries, the retry not again.
	c := h.open("/deploys", http.Header{"Last-Event-Id": {"0"}})
	got := c.ExpectData("once", "twice")
	if got[0].LastEventID != "1" || got[1].LastEventID != "2" {
		t.Errorf("ids %q %q, want 1 and 2", got[0].LastEventID, got[1].LastEventID)
	}
	c.ExpectQuiet(50 * time.Millisecond)
}

// A browser moves to a replica whose NATS link lags, with the id of an
// event that replica has not delivered yet: it is a real id, so no reset;
// the lagging events up to it are skipped and the next ones delivered.
func TestResumeOnALaggingReplica(t *testing.T) {
	t.Parallel()
	ns := loopback.JetStream(t, t.TempDir())
	link := loopback.NewLink(t, ns.Addr().String())
	a := startOn(t, ns, jsRoute)
	b := startOn(t, ns, jsRoute, proxy.WithNATS(connectTo(t, "nats://"+link.Addr())))

	onA := a.open("/sse", nil)
	link.Pause()
	for i := range 3 {
		a.publish("events", fmt.Sprint("e", i))
	}
	seen := onA.ExpectData("e0", "e1", "e2")
	moved := b.open("/sse", http.Header{"Last-Event-Id": {seen[2].LastEventID}})
	link.Resume()
	a.publish("events", "e3")
	if ev := moved.Next(); ev.Data != "e3" || ev.Type != "" {
		t.Fatalf("after moving: %+v", ev)
	}
	moved.ExpectQuiet(50 * time.Millisecond)

	// An id beyond the stream is no id of it: reset, then live events.
	bogus := b.open("/sse", http.Header{"Last-Event-Id": {"999"}})
	if ev := bogus.Next(); ev.Type != proxy.ResetEvent {
		t.Fatalf("resume from a future id: %+v", ev)
	}
	a.publish("events", "e4")
	bogus.ExpectData("e4")
	moved.ExpectData("e4")
}

// jsRouteKeeping10 is jsRoute with a stream that keeps 10 events.
const jsRouteKeeping10 = `
route "/sse" {
  history {
    store    = "jetstream"
    max_msgs = 10
  }
  source "nats" { subject = "events" }
}`

// On a lagging replica, an id whose followers the stream's limits have
// dropped gets a reset, as on any replica: events were missed.
func TestResumeOnALaggingReplicaPastTheLimits(t *testing.T) {
	t.Parallel()
	ns := loopback.JetStream(t, t.TempDir())
	link := loopback.NewLink(t, ns.Addr().String())
	nc := connectTo(t, "nats://"+link.Addr())
	b := startOn(t, ns, jsRouteKeeping10, proxy.WithNATS(nc))
	link.Pause()
	for i := 1; i <= 100; i++ {
		b.publish("events", fmt.Sprint("e", i))
	}
	// Only once the stream has stored the last of them are 61..90 gone;
	// before, a resume from 60 rightly gets them.
	keepsOnly(t, ns, 91, 100)
	moved := b.open("/sse", http.Header{"Last-Event-Id": {"60"}})
	link.Resume()
	if ev := moved.Next(); ev.Type != proxy.ResetEvent {
		t.Fatalf("events 61..90 are gone, yet no reset: got %+v", ev)
	}
}

// A replica cut off from NATS while the stream's limits discard events it
// had not read: when it is back, its clients get a reset, never a silent
// gap, and then the events after it.
func TestLiveGapPastTheLimits(t *testing.T) {
	t.Parallel()
	ns := loopback.JetStream(t, t.TempDir())
	link := loopback.NewLink(t, ns.Addr().String())
	nc, err := nats.Connect("nats://"+link.Addr(), nats.ReconnectWait(20*time.Millisecond), nats.MaxReconnects(-1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	h := startOn(t, ns, jsRouteKeeping10, proxy.WithNATS(nc))
	live := h.open("/sse", nil)
	h.publish("events", "e0")
	live.ExpectData("e0")

	link.Down()
	eventually(t, "the replica to lose NATS", func() bool { return !nc.IsConnected() })
	for i := 1; i <= 100; i++ {
		h.publish("events", fmt.Sprint("e", i))
	}
	keepsOnly(t, ns, 92, 101) // e91..e100
	link.Up()
	if ev := live.Next(); ev.Type != proxy.ResetEvent || ev.LastEventID != "91" {
		t.Fatalf("e1..e90 are gone, yet no reset: got %+v", ev)
	}
	if ev := live.Next(); ev.Data != "e91" || ev.LastEventID != "92" {
		t.Fatalf("after the reset: %+v, want e91 with id 92", ev)
	}
}

// keepsOnly waits for the one JetStream stream on ns to hold sequences
// first through last alone.
func keepsOnly(t *testing.T, ns *server.Server, first, last uint64) {
	t.Helper()
	js, err := jetstreamFor(t, ns)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	stream := onlyStream(ctx, t, js)
	eventually(t, fmt.Sprintf("the stream to keep only %d..%d", first, last), func() bool {
		info, err := stream.Info(ctx)
		return err == nil && info.State.FirstSeq == first && info.State.LastSeq == last
	})
}

// During a rolling deploy that adds a source to a JetStream route, the
// new replicas widen the stream to the new subject; on an old replica,
// the sequences its reader gets jump over the new subject's messages.
// Those are not lost events: no reset.
func TestWidenedStreamIsNoGap(t *testing.T) {
	t.Parallel()
	ns := loopback.JetStream(t, t.TempDir())
	old := startOn(t, ns, jsRoute)
	c := old.open("/sse", nil)
	old.publish("events", "e0")
	c.ExpectData("e0")
	startOn(t, ns, `
route "/sse" {
  history { store = "jetstream" }
  source "nats" { subject = "events" }
  source "nats" { subject = "alerts" }
}`)
	old.publish("alerts", "a1")
	old.publish("events", "e1")
	old.publish("alerts", "a2")
	old.publish("events", "e2")
	for _, want := range []string{"e1", "e2"} {
		if ev := c.Next(); ev.Type == proxy.ResetEvent || ev.Data != want {
			t.Fatalf("got %+v, want %s", ev, want)
		}
	}
}
