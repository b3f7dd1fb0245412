package proxy

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ssegate/ssegate/internal/loopback"
)

// When a shard is full NATS drops the subscription's messages; the
// subscription's owner is told (a stream then tells its clients they may
// have missed events), and what was queued is still handed on in order.
func TestFanInTellsOfLostMessages(t *testing.T) {
	t.Parallel()
	ns := loopback.NATS(t, "")
	f := newFanIn(4)
	defer f.close()
	lost := make(chan struct{}, 1)
	nc, err := nats.Connect(ns.ClientURL(), nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
		if sub != nil && errors.Is(err, nats.ErrSlowConsumer) {
			f.lost(sub)
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	release := make(chan struct{})
	got := make(chan string, 100)
	_, err = f.subscribe(nc, "k", "s", func(m *nats.Msg) {
		<-release
		got <- string(m.Data)
	}, func() {
		select {
		case lost <- struct{}{}:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	pub, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	for _, d := range []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"} {
		if err := pub.Publish("s", []byte(d)); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Flush(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("the owner was not told of the dropped messages")
	}
	close(release)
	if first := <-got; first != "a" {
		t.Errorf("first message handed on: %q, want a", first)
	}
}

// Streams that read one subject under one key share one NATS
// subscription: each gets every message, and the subscription goes with
// the last of them.
func TestFanInSharesASubject(t *testing.T) {
	t.Parallel()
	ns := loopback.NATS(t, "")
	f := newFanIn(16)
	defer f.close()
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	a, b := make(chan string, 1), make(chan string, 1)
	ra, err := f.subscribe(nc, "k", "s", func(m *nats.Msg) { a <- string(m.Data) }, nil)
	if err != nil {
		t.Fatal(err)
	}
	rb, err := f.subscribe(nc, "k", "s", func(m *nats.Msg) { b <- string(m.Data) }, nil)
	if err != nil {
		t.Fatal(err)
	}
	if n := nc.NumSubscriptions(); n != 1 {
		t.Fatalf("%d NATS subscriptions for two readings of one subject, want 1", n)
	}
	if err := nc.Publish("s", []byte("x")); err != nil {
		t.Fatal(err)
	}
	for _, ch := range []chan string{a, b} {
		select {
		case got := <-ch:
			if got != "x" {
				t.Fatalf("got %q", got)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("a reading did not get the message")
		}
	}
	if err := f.forget(ra); err != nil {
		t.Fatal(err)
	}
	if n := nc.NumSubscriptions(); n != 1 {
		t.Fatalf("%d NATS subscriptions with one reading left, want 1", n)
	}
	if err := f.forget(rb); err != nil {
		t.Fatal(err)
	}
	if n := nc.NumSubscriptions(); n != 0 {
		t.Fatalf("%d NATS subscriptions once no one reads, want 0", n)
	}
}
