package proxy_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/ssegate/ssegate/internal/loopback"
	"github.com/ssegate/ssegate/internal/redistest"
)

// Messages published on a channel, or on one a pattern matches, reach
// the browsers of the stream their subject picks.
func TestRedisPubSubReachesBrowser(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	// The pattern route is the docs' (docs/redis.md).
	h := start(t, fmt.Sprintf(`
route "/news" {
  source "redis" {
    url     = %q
    channel = "news"
  }
}
`, rs.URL())+docRoute(t, "redis.md", 0, "", map[string]string{"url": strconv.Quote(rs.URL())}))
	news, chess := h.open("/news", nil), h.open("/scores/chess", nil)
	sourcesRunning(t, h.srv)
	rc := rs.Client(t)
	ctx := context.Background()
	for _, p := range [][2]string{{"news", "hello"}, {"scores.go", "1-0"}, {"scores.chess", "½-½"}, {"other", "no"}, {"news", "again"}} {
		if err := rc.Publish(ctx, p[0], p[1]).Err(); err != nil {
			t.Fatal(err)
		}
	}
	news.ExpectData("hello", "again")
	if ev := chess.ExpectData("½-½")[0]; ev.Type != "score" {
		t.Errorf("event name %q, want score", ev.Type)
	}
}

// xadd appends entries n = 1 to count to stream, a pipeline of batch at
// a time: each entry once, since its id is given. A batch refused is
// retried once up returns (the server is back); with up nil, a refusal
// fails the test.
func xadd(ctx context.Context, t *testing.T, rc *redis.Client, stream string, count, batch int, added func(int), up func()) {
	for from := 1; from <= count; {
		if ctx.Err() != nil {
			return
		}
		to := min(from+batch-1, count)
		_, err := rc.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := from; i <= to; i++ {
				p.XAdd(ctx, &redis.XAddArgs{Stream: stream, ID: strconv.Itoa(i) + "-1", Values: []string{"n", strconv.Itoa(i), "kind", "tick"}})
			}
			return nil
		})
		if err != nil && !isDuplicateID(err) {
			if up == nil {
				t.Errorf("add entries %d to %d: %v", from, to, err)
				return
			}
			up()
			continue
		}
		added(to)
		from = to + 1
	}
}

// isDuplicateID is Redis refusing an id not above the stream's last: a
// retried batch that had been written.
func isDuplicateID(err error) bool {
	return err != nil && strings.Contains(err.Error(), "equal or smaller")
}

// streamRoute is the stream route of docs/redis.md, reading the server
// at url, with history for its history block and extra attributes (a
// group).
func streamRoute(t *testing.T, url, history, extra string) string {
	return docRoute(t, "redis.md", 1, history, map[string]string{"url": strconv.Quote(url), "stream": `"events"` + "\n" + extra})
}

// 10,000 entries are added to a stream while the ssegate reading it is
// killed and another starts: the browser, resuming on the new one, gets
// every entry once, in order.
func TestRedisStreamExactlyOnceAcrossRestart(t *testing.T) {
	t.Parallel()
	const entries = 10_000
	rs := redistest.Start(t)
	got := handover{
		hcl:    streamRoute(t, rs.URL(), `history { store = "jetstream" }`, ""),
		path:   "/events",
		events: entries,
		write:  func(ctx context.Context) { xadd(ctx, t, rs.Client(t), "events", entries, 50, func(int) {}, nil) },
		killed: true,
	}.run(t)
	inOrderOnce(t, got, entries)
}

// redis-server restarts while entries are added and messages published:
// the stream is read on from where it was, every entry once, and the
// subscriber subscribes again.
func TestRedisRestartUnderLoad(t *testing.T) {
	t.Parallel()
	const entries = 3000
	rs := redistest.Start(t)
	h := start(t, streamRoute(t, rs.URL(), "history = 10000", "")+fmt.Sprintf(`
route "/pings" {
  source "redis" {
    url     = %q
    channel = "pings"
  }
}`, rs.URL()))
	rc := rs.Client(t)
	serverRestart{
		path:   "/events",
		events: entries,
		write: func(ctx context.Context, progress func(int), up func()) {
			xadd(ctx, t, rc, "events", entries, 10, progress, up)
		},
		restart: func() { rs.Stop(); rs.Start() },
		ping: func(ctx context.Context, i int) {
			if err := rc.Publish(ctx, "pings", fmt.Sprint("ping ", i)).Err(); err != nil {
				t.Error(err)
			}
		},
		pings: "/pings",
	}.run(t, h)
}

// Two replicas consume a stream as one group: each entry reaches the
// browser once, and is acknowledged once NATS has it.
func TestRedisGroupSharesAndAcknowledges(t *testing.T) {
	t.Parallel()
	const entries = 1000
	rs := redistest.Start(t)
	ns := loopback.JetStream(t, t.TempDir())
	a := startOn(t, ns, streamRoute(t, rs.URL(), `history { store = "jetstream" }`, `group = "ssegate"
    consumer = "a"`))
	b := startOn(t, ns, streamRoute(t, rs.URL(), `history { store = "jetstream" }`, `group = "ssegate"
    consumer = "b"`))
	c := a.open("/events", nil)
	sourcesRunning(t, a.srv)
	sourcesRunning(t, b.srv)
	rc := rs.Client(t)
	ctx := context.Background()
	xadd(ctx, t, rc, "events", entries, 100, func(int) {}, nil)
	seen := map[string]bool{}
	for len(seen) < entries {
		ev := c.Next()
		if seen[ev.Data] {
			t.Fatalf("entry %s twice", ev.Data)
		}
		seen[ev.Data] = true
	}
	c.ExpectQuiet(200 * time.Millisecond)
	eventually(t, "every entry acknowledged", func() bool {
		p, err := rc.XPending(ctx, "events", "ssegate").Result()
		return err == nil && p.Count == 0
	})
	groups, err := rc.XInfoConsumers(ctx, "events", "ssegate").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(groups) != 2 {
		t.Errorf("%d consumers in the group, want 2 (a and b)", len(groups))
	}
}

// A subscription whose connection goes silent pings after keepalive,
// and reconnects when the ping goes unanswered.
func TestRedisKeepaliveFindsSilence(t *testing.T) {
	t.Parallel()
	rs := redistest.Start(t)
	link := loopback.NewLink(t, strings.TrimSuffix(strings.TrimPrefix(rs.URL(), "redis://"), "/0"))
	h := start(t, fmt.Sprintf(`
route "/pings" {
  source "redis" {
    url       = "redis://%s/0"
    channel   = "pings"
    keepalive = "100ms"
  }
}`, link.Addr()))
	pings, rc := h.open("/pings", nil), rs.Client(t)
	silenceIsFound(t, h, link, pings, func(i int) {
		if err := rc.Publish(context.Background(), "pings", fmt.Sprint("ping ", i)).Err(); err != nil {
			t.Error(err)
		}
	})
}
