package proxy_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ssegate/ssegate/internal/loopback"
	"github.com/ssegate/ssegate/proxy"
	"github.com/ssegate/ssegate/proxy/lease"
)

// replicaHeader names the replica in each request it sends.
type replicaHeader struct{ name string }

func (r replicaHeader) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("X-Replica", r.name)
	return http.DefaultTransport.RoundTrip(req)
}

// feedUpstream serves a list the test grows, and counts the polls of each
// replica (named in a header).
type feedUpstream struct {
	mu    sync.Mutex
	items []string
	polls map[string]int
}

func (u *feedUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.polls[r.Header.Get("X-Replica")]++
	quoted := make([]string, len(u.items))
	for i, it := range u.items {
		quoted[i] = fmt.Sprintf(`{"id":%q}`, it)
	}
	fmt.Fprintf(w, `{"items":[%s]}`, strings.Join(quoted, ","))
}

func (u *feedUpstream) add(items ...string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.items = append(u.items, items...)
}

func (u *feedUpstream) pollsBy(replica string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.polls[replica]
}

// Two replicas watch the same polled stream: one polls, the other waits.
// When the poller stops (cleanly, or cut off from NATS), the other takes
// the poll over, carrying on from the items already emitted and saved:
// the browser on it gets every item once, with no id mapping to
// de-duplicate on.
func TestPollLeaseFailover(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		stop func(h *harness, nc *nats.Conn)
	}{
		{"shutdown", func(h *harness, _ *nats.Conn) {
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			if err := h.srv.Shutdown(ctx); err != nil {
				t.Error(err)
			}
		}},
		{"cut off", func(_ *harness, nc *nats.Conn) { nc.Close() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := &feedUpstream{polls: map[string]int{}}
			ts := httptest.NewServer(up)
			defer ts.Close()
			ns := loopback.JetStream(t, t.TempDir())
			const ttl = 500 * time.Millisecond
			replica := func(name string) (*harness, *nats.Conn) {
				nc := connect(t, ns)
				// The same config on both, as replicas run; each says who
				// it is through its HTTP client.
				hc := &http.Client{Transport: replicaHeader{name}}
				return startOn(t, ns, fmt.Sprintf(`
route "/news/{topic}" {
  source "poll" {
    url      = "%s?topic=${path.topic}"
    interval = "20ms"
    items    = msg.json.items
    key      = msg.json.id
    data     = msg.json.id
  }
}`, ts.URL), proxy.WithNATS(nc), proxy.WithLeaseTTL(ttl), proxy.WithHTTPClient(hc)), nc
			}
			a, ncA := replica("a")
			b, ncB := replica("b")
			onA, onB := a.open("/news/x", nil), b.open("/news/x", nil)
			up.add("1", "2")
			onA.ExpectData("1", "2")
			onB.ExpectData("1", "2")

			// A crash loses what was emitted after the last save (at most
			// a second's worth): wait for the save, so that the cut-off
			// case tests the hand-over and not that window.
			eventually(t, "the poll's progress to be saved", func() bool {
				return strings.Contains(savedStates(t, ncA), `"2"`)
			})
			polling, survivor, nc := a, onB, ncA
			name, other := "a", "b"
			if up.pollsBy("b") > 0 {
				polling, survivor, nc = b, onA, ncB
				name, other = "b", "a"
			}
			if up.pollsBy(other) != 0 {
				t.Fatalf("both replicas poll: a %d, b %d", up.pollsBy("a"), up.pollsBy("b"))
			}
			tc.stop(polling, nc)
			start := time.Now()
			eventually(t, "the other replica polls", func() bool { return up.pollsBy(other) > 0 })
			t.Logf("%s polls %v after %s stopped", other, time.Since(start), name)
			// A replica cut off polls on until it gives up its lease, half
			// a TTL on, before the other may take it: never both at once.
			stoppedAt := up.pollsBy(name)
			up.add("3")
			survivor.ExpectData("3")
			survivor.ExpectQuiet(100 * time.Millisecond)
			// The stopped poller may finish the poll it was making.
			if n := up.pollsBy(name); n > stoppedAt+1 {
				t.Errorf("%s polled %d times after the other took over", name, n-stoppedAt)
			}
		})
	}
}

// savedStates is every state saved in the lease bucket, concatenated.
func savedStates(t *testing.T, nc *nats.Conn) string {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	kv, err := js.KeyValue(ctx, lease.Bucket)
	if err != nil {
		return ""
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var all strings.Builder
	for k := range keys.Keys() {
		if e, err := kv.Get(ctx, k); err == nil && strings.HasSuffix(k, ".state") {
			all.Write(e.Value())
		}
	}
	return all.String()
}
