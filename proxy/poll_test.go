package proxy_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ssegate/ssegate/internal/loopback"
)

// upstream answers a poll with the next of its scripted responses, the
// last one forever, and records the requests. Until start is called it
// answers an empty list, so a test can connect its clients first.
type upstream struct {
	mu       sync.Mutex
	started  bool
	script   []func(w http.ResponseWriter, r *http.Request)
	requests []*http.Request
}

var empty = jsonItems(`"empty"`)

func (u *upstream) start() {
	u.mu.Lock()
	u.started = true
	u.mu.Unlock()
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.mu.Lock()
	if !u.started {
		u.mu.Unlock()
		empty(w, r)
		return
	}
	i := min(len(u.requests), len(u.script)-1)
	u.requests = append(u.requests, r)
	step := u.script[i]
	u.mu.Unlock()
	step(w, r)
}

func (u *upstream) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.requests)
}

func (u *upstream) request(i int) *http.Request {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.requests[i]
}

func jsonItems(etag string, ids ...string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("If-None-Match") == etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", etag)
		items := make([]string, len(ids))
		for i, id := range ids {
			items[i] = fmt.Sprintf(`{"id":%q,"title":"item %s"}`, id, id)
		}
		fmt.Fprintf(w, `{"items":[%s]}`, strings.Join(items, ","))
	}
}

func status(code int) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
}

// The poll sees 304s, new items, failures and a recovery; the browser
// gets each item exactly once, in upstream order.
func TestPollEmitsEachItemOnce(t *testing.T) {
	t.Parallel()
	up := &upstream{script: []func(http.ResponseWriter, *http.Request){
		jsonItems(`"v1"`, "a", "b"),
		jsonItems(`"v1"`, "a", "b"), // answered 304: the poll sent the ETag
		jsonItems(`"v2"`, "a", "b", "c"),
		status(http.StatusInternalServerError),
		status(http.StatusBadGateway),
		jsonItems(`"v3"`, "b", "c", "d"),
	}}
	ts := httptest.NewServer(up)
	defer ts.Close()
	h := start(t, fmt.Sprintf(`
route "/news" {
  source "poll" {
    url      = %q
    interval = "20ms"
    items    = msg.json.items
    key      = msg.json.id
    id       = msg.json.id
    event    = "news"
    data     = msg.json.title
  }
}`, ts.URL))
	c := h.open("/news", nil)
	up.start()
	for _, want := range []string{"a", "b", "c", "d"} {
		ev := c.Next()
		if ev.LastEventID != want || ev.Type != "news" || ev.Data != "item "+want {
			t.Fatalf("got %+v, want item %s", ev, want)
		}
	}
	eventually(t, "more polls after the last change", func() bool { return up.count() > len(up.script)+3 })
	c.ExpectQuiet(50 * time.Millisecond)
	if got := up.request(1).Header.Get("If-None-Match"); got != `"v1"` {
		t.Errorf("second poll sent If-None-Match %q, want the first ETag", got)
	}
}

// A poll whose URL reads path runs once per open stream, however many
// browsers watch it, and stops when the stream is freed.
func TestPollPerStream(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	polls := map[string]int{}
	count := func(city string) int {
		mu.Lock()
		defer mu.Unlock()
		return polls[city]
	}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		city := r.URL.Query().Get("q")
		if r.Header.Get("X-City") != city {
			http.Error(w, "X-City header does not match", http.StatusBadRequest)
			return
		}
		mu.Lock()
		polls[city]++
		n := polls[city]
		mu.Unlock()
		fmt.Fprintf(w, `{"city":%q,"n":%d}`, city, n)
	}))
	defer ts.Close()
	h := start(t, fmt.Sprintf(`
route "/w/{city}" {
  linger = "0s"
  source "poll" {
    url      = "%s/?q=${path.city}"
    headers  = { "X-City" = path.city }
    interval = "20ms"
    data     = msg.json.city
  }
}`, ts.URL))
	paris1, paris2, oslo := h.open("/w/paris", nil), h.open("/w/paris", nil), h.open("/w/oslo", nil)
	paris1.ExpectData("paris")
	paris2.ExpectData("paris")
	oslo.ExpectData("oslo")
	eventually(t, "a few polls", func() bool { return count("paris") >= 20 })
	if n := h.srv.OpenStreams(); n != 2 {
		t.Errorf("%d streams open, want 2", n)
	}
	// Started within moments of each other at the same interval, the two
	// cities are polled about as often: two loops for paris would double it.
	if p, o := count("paris"), count("oslo"); p > o*3/2+3 {
		t.Errorf("paris polled %d times, oslo %d: more than one poll loop per stream", p, o)
	}

	for _, c := range []*client{paris1, paris2, oslo} {
		c.Close()
	}
	eventually(t, "the streams to be freed", func() bool { return h.srv.OpenStreams() == 0 })
	// A poll leaves the readiness report when its loop has returned: it
	// polls no more.
	admin := httptest.NewServer(h.srv.Admin())
	defer admin.Close()
	eventually(t, "the polls to stop", func() bool {
		_, r := readyz(t, admin, nil)
		return len(r.Sources) == 0
	})
}

// Two replicas on one NATS both poll for a stream watched on each; events
// with ids reach a browser once, since a stream drops an id it holds.
func TestTwoReplicasPollEventsWithIDsOnce(t *testing.T) {
	t.Parallel()
	ts := httptest.NewServer(http.HandlerFunc(jsonItems(`"v1"`, "a", "b", "c")))
	defer ts.Close()
	cfg := fmt.Sprintf(`
route "/news/{topic}" {
  source "poll" {
    url      = "%s?topic=${path.topic}"
    interval = "20ms"
    items    = msg.json.items
    key      = msg.json.id
    id       = msg.json.id
    data     = msg.json.title
  }
}`, ts.URL)
	ns := loopback.NATS(t, "")
	a, b := startOn(t, ns, cfg), startOn(t, ns, cfg)
	onA, onB := a.open("/news/x", nil), b.open("/news/x", nil)
	// Each once; the order may differ when a replica's stream opens while
	// the other's batch is on the way.
	for _, c := range []*client{onA, onB} {
		var got []string
		for range 3 {
			got = append(got, c.Next().Data)
		}
		slices.Sort(got)
		if strings.Join(got, ",") != "item a,item b,item c" {
			t.Errorf("events %q, want items a, b and c once each", got)
		}
		c.ExpectQuiet(100 * time.Millisecond)
	}
}

// quotes is an upstream with one version per symbol, which a test bumps,
// and a count of the polls of each symbol.
type quotes struct {
	mu       sync.Mutex
	versions map[string]int
}

func (q *quotes) bump(sym string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.versions[sym]++
}

func (q *quotes) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	sym := strings.TrimPrefix(r.URL.Path, "/q/")
	q.mu.Lock()
	v := q.versions[sym]
	q.mu.Unlock()
	fmt.Fprintf(w, `{"sym":%q,"v":%d}`, sym, v)
}

// A poll that reads topic runs once per topic, shared by every stream
// following it: streams of the sets {A,B} and {B,C} run three polls, not
// four, and each change of B reaches both once. A poll stops when its
// last stream is freed.
func TestPollPerTopicSharedByStreams(t *testing.T) {
	t.Parallel()
	q := &quotes{versions: map[string]int{}}
	ts := httptest.NewServer(q)
	defer ts.Close()
	h := start(t, fmt.Sprintf(`
route "/quotes" {
  linger = "0s"
  topics {}
  source "poll" {
    url      = "%s/q/${topic.name}"
    interval = "20ms"
    data     = "${topic.name}:${msg.json.v}"
  }
}`, ts.URL))
	admin := httptest.NewServer(h.srv.Admin())
	defer admin.Close()
	polls := func() string {
		_, r := readyz(t, admin, nil)
		var topics []string
		for _, s := range r.Sources {
			topics = append(topics, s.Topic)
		}
		return strings.Join(topics, ",")
	}
	next := func(c *client, want string) {
		t.Helper()
		name, _, _ := strings.Cut(want, ":")
		if ev := c.Next(); ev.Type != name || ev.Data != want {
			t.Fatalf("got %s %q, want %s %q", ev.Type, ev.Data, name, want)
		}
	}

	ab := h.open("/quotes"+topicsOf("A", "B"), nil)
	got := []string{ab.Next().Data, ab.Next().Data}
	slices.Sort(got)
	if strings.Join(got, ",") != "A:0,B:0" {
		t.Fatalf("first events %q, want A:0 and B:0", got)
	}
	// B's poll runs already: the new stream gets its changes from now on,
	// as a second client of one stream would.
	bc := h.open("/quotes"+topicsOf("B", "C"), nil)
	next(bc, "C:0")
	if p := polls(); p != "A,B,C" {
		t.Errorf("polls for topics %q, want one each for A,B,C", p)
	}
	// Each event once: had B two polls, its change would come twice
	// before the next topic's.
	q.bump("B")
	next(ab, "B:1")
	next(bc, "B:1")
	q.bump("A")
	next(ab, "A:1")
	q.bump("C")
	next(bc, "C:1")

	ab.Close()
	eventually(t, "A's poll to stop, B's to go on for {B,C}", func() bool { return polls() == "B,C" })
	q.bump("B")
	next(bc, "B:2")
	bc.Close()
	eventually(t, "every poll to stop", func() bool { return polls() == "" })
}
