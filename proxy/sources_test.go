package proxy_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	gosse "github.com/tmaxmax/go-sse"

	"github.com/ssegate/ssegate/internal/loopback"
	"github.com/ssegate/ssegate/proxy"
)

// What the tests of the sources that read a database or log share.

// sourcesRunning waits until every source srv runs reports itself
// running: connected, listening.
func sourcesRunning(t testing.TB, srv *proxy.Server) {
	t.Helper()
	admin := httptest.NewServer(srv.Admin())
	defer admin.Close()
	eventually(t, "the sources to run", func() bool {
		_, r := readyz(t, admin, nil)
		for _, s := range r.Sources {
			if s.State != "running" {
				return false
			}
		}
		return len(r.Sources) > 0
	})
}

// docBlocks are the code blocks of lang on a page of docs/.
func docBlocks(t *testing.T, page, lang string) []string {
	t.Helper()
	text, err := os.ReadFile(filepath.Join("..", "docs", page))
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	for _, m := range regexp.MustCompile("(?s)```"+lang+"\n(.*?)```").FindAllStringSubmatch(string(text), -1) {
		blocks = append(blocks, m[1])
	}
	return blocks
}

// docRoute is the index-th HCL example of a page of docs/, as a test
// runs it: each attribute named in set takes the value there (its line
// replaced; "" drops the line), and history replaces its history block.
func docRoute(t *testing.T, page string, index int, history string, set map[string]string) string {
	t.Helper()
	route := docBlocks(t, page, "hcl")[index]
	for name, value := range set {
		line := regexp.MustCompile(`(?m)^(\s*)` + name + `\s*=.*\n`)
		if !line.MatchString(route) {
			t.Fatalf("docs/%s, example %d, has no %s", page, index, name)
		}
		if value != "" {
			value = "${1}" + name + " = " + strings.ReplaceAll(value, "$", "$$") + "\n"
		}
		route = line.ReplaceAllString(route, value)
	}
	return strings.Replace(route, `history { store = "jetstream" }`, history, 1)
}

// follower reads a stream as a browser does: when the stream ends (a
// client dropped for falling behind a burst, a server gone), it opens it
// again with the id of the last event it got.
type follower struct {
	t    *testing.T
	path string
	got  []gosse.Event
	c    *client
}

func follow(t *testing.T, path string) *follower { return &follower{t: t, path: path} }

// open connects to h, resuming after the last event got.
func (f *follower) open(h *harness) {
	f.t.Helper()
	var header http.Header
	if len(f.got) > 0 {
		header = http.Header{"Last-Event-ID": {f.got[len(f.got)-1].LastEventID}}
	}
	f.c = h.open(f.path, header)
}

// readUntil reads events from h until it holds n, reconnecting when the
// stream ends, and fails when none comes for within.
func (f *follower) readUntil(h *harness, n int, within time.Duration) {
	f.t.Helper()
	if f.c == nil {
		f.open(h)
	}
	for len(f.got) < n {
		select {
		case ev := <-f.c.Events():
			f.got = append(f.got, ev)
		case <-f.c.Done():
			// What it read before the end is still to be taken.
			for len(f.c.Events()) > 0 {
				f.got = append(f.got, <-f.c.Events())
			}
			f.open(h)
		case <-time.After(within):
			f.t.Fatalf("%d events of %d, then none for %v", len(f.got), n, within)
		}
	}
}

// drain takes what the stream still sends until it ends (its server
// stopped); the next readUntil opens it again.
func (f *follower) drain() {
	f.t.Helper()
	for ev := range f.c.Drain() {
		f.got = append(f.got, ev)
	}
	f.c = nil
}

// handover is the scenario of the tests that no event is lost or
// doubled when the ssegate reading a backend goes away: a browser reads
// path from replica a (on a JetStream NATS, so its history outlives a)
// while write adds events 1 to events; midway a stops, and the browser
// resumes on replica b. The events it got are returned.
type handover struct {
	hcl, path string
	events    int
	write     func(ctx context.Context)
	// joinEarly starts b while a still runs, before a leaves (a group
	// rebalancing); otherwise b starts once a has stopped.
	joinEarly bool
	// killed cuts a off from NATS before it stops: it saves nothing
	// more and lets no lease go.
	killed bool
}

func (s handover) run(t *testing.T) []gosse.Event {
	t.Helper()
	ns := loopback.JetStream(t, t.TempDir())
	replica := func() (*harness, *nats.Conn) {
		nc := connect(t, ns)
		return startOn(t, ns, s.hcl, proxy.WithNATS(nc), proxy.WithLeaseTTL(500*time.Millisecond)), nc
	}
	a, ncA := replica()
	f := follow(t, s.path)
	f.open(a)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var writer sync.WaitGroup
	writer.Go(func() { s.write(ctx) })

	var b *harness
	if s.joinEarly {
		f.readUntil(a, s.events/5, wait)
		b, _ = replica()
	}
	f.readUntil(a, s.events*3/10, wait)
	if s.killed {
		ncA.Close()
	}
	shut, done := context.WithTimeout(context.Background(), wait)
	defer done()
	_ = a.srv.Shutdown(shut)
	f.drain()
	if b == nil {
		b, _ = replica()
	}
	f.readUntil(b, s.events, wait)
	writer.Wait()
	f.c.ExpectQuiet(200 * time.Millisecond)
	return f.got
}

// serverRestart is the scenario of the tests that a source comes back
// after its server restarts: write adds events 1 to events to what the
// browser reads on path of h, telling how far it got, and retrying a
// refused write once up returns; a third of the way, restart restarts
// the server. The browser must get every event
// once, in order. Then ping sends its i-th message to a source that
// keeps nothing (LISTEN, pub/sub) until the browser on pings gets one:
// it listens again.
type serverRestart struct {
	path    string
	events  int
	write   func(ctx context.Context, progress func(n int), up func())
	restart func()
	ping    func(ctx context.Context, i int)
	pings   string
}

func (s serverRestart) run(t *testing.T, h *harness) {
	t.Helper()
	f, pings := follow(t, s.path), h.open(s.pings, nil)
	f.open(h)
	sourcesRunning(t, h.srv)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var writer sync.WaitGroup
	var written atomic.Int64
	// Held while the server restarts: a write refused meanwhile waits
	// for the server, not for a clock.
	var restarting sync.RWMutex
	up := func() { restarting.RLock(); restarting.RUnlock() }
	writer.Go(func() { s.write(ctx, func(n int) { written.Store(int64(n)) }, up) })
	eventually(t, "a third written", func() bool { return written.Load() >= int64(s.events/3) })
	restarting.Lock()
	s.restart()
	restarting.Unlock()
	f.readUntil(h, s.events, afterRestart)
	writer.Wait()
	inOrderOnce(t, f.got, s.events)

	pingUntilHeard(t, pings, func(i int) { s.ping(ctx, i) })
}

// pingUntilHeard sends pings to a source that keeps nothing (LISTEN,
// pub/sub) until the browser on pings gets one: what is sent before the
// source listens again is lost, as its server loses it.
func pingUntilHeard(t *testing.T, pings *client, ping func(i int)) {
	t.Helper()
	deadline := time.Now().Add(afterRestart)
	for i := 0; ; i++ {
		ping(i)
		select {
		case <-pings.Events():
			return
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the source did not listen again")
		}
	}
}

// silenceIsFound checks the keepalive of the one source of h, which
// reads its server through link: when the link holds every byte (as a
// NAT that dropped the flow in silence), the source finds out and fails;
// once bytes pass again, it listens again.
func silenceIsFound(t *testing.T, h *harness, link *loopback.Link, pings *client, ping func(i int)) {
	t.Helper()
	sourcesRunning(t, h.srv)
	admin := httptest.NewServer(h.srv.Admin())
	defer admin.Close()
	link.Pause()
	eventually(t, "the silent connection found out", func() bool {
		_, r := readyz(t, admin, nil)
		return len(r.Sources) == 1 && r.Sources[0].State == "failing"
	})
	link.Resume()
	pingUntilHeard(t, pings, ping)
}

// afterRestart bounds the wait for a source to come back after its
// server restarted: its backoff may have grown to 8 s meanwhile.
const afterRestart = time.Minute

// inOrderOnce checks that events carry 1, 2, ... n, each once.
func inOrderOnce(t *testing.T, got []gosse.Event, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("%d events, want %d", len(got), n)
	}
	for i, ev := range got {
		if ev.Data != strconv.Itoa(i+1) {
			t.Fatalf("event %d is %q, want %d (the one before: %q)", i, ev.Data, i+1, got[max(i-1, 0)].Data)
		}
	}
}
