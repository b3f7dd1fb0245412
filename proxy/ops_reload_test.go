package proxy_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ssegate/ssegate/proxy/config"
)

const reloadBefore = `
auth "bearer" "ops" { tokens = ["t1"] }
route "/keep" {
  history = 10
  source "nats" { subject = "keep" }
}
route "/change" {
  source "nats" { subject = "change.old" }
}
route "/drop" {
  source "nats" { subject = "drop" }
}
route "/private" {
  auth = "ops"
  source "nats" { subject = "private" }
}
`

func parse(t *testing.T, hcl string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(hcl), "reload.hcl")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// A reload keeps the clients of a route that did not change (no
// disconnect, same history), ends those of changed and removed routes
// with a retry hint, and starts added ones.
func TestReload(t *testing.T) {
	t.Parallel()
	h := start(t, reloadBefore)
	keep := h.open("/keep", nil)
	change := h.open("/change", nil)
	drop := h.open("/drop", nil)
	h.publish("keep", "before")
	before := keep.ExpectData("before")[0]

	after := strings.NewReplacer(
		`subject = "change.old"`, `subject = "change.new"`,
		"route \"/drop\" {\n  source \"nats\" { subject = \"drop\" }\n}\n", `route "/add" {
  source "nats" { subject = "add" }
}
`,
		`tokens = ["t1"]`, `tokens = ["t2"]`,
	).Replace(reloadBefore)
	if err := h.srv.Reload(parse(t, after)); err != nil {
		t.Fatal(err)
	}

	for _, c := range []*client{change, drop} {
		c.WaitEnd()
		if raw := c.Raw(); !strings.Contains(raw, "retry: ") || !strings.HasSuffix(raw, ": route changed; reconnect\n") {
			t.Errorf("a changed route's stream ended with %q", raw)
		}
	}
	// Their streams are let go with their last clients.
	eventually(t, "the ended streams to be let go", func() bool { return h.srv.EndedStreams() == 0 })
	h.publish("keep", "after")
	keep.ExpectData("after")
	if raw := keep.Raw(); strings.Contains(raw, "reconnect") {
		t.Errorf("the unchanged route's client was told to reconnect: %q", raw)
	}
	// Same stream, same history: a resume from before the reload works.
	resumed := h.open("/keep", http.Header{"Last-Event-Id": {before.LastEventID}})
	resumed.ExpectData("after")

	changed := h.open("/change", nil)
	h.publish("change.old", "old subject")
	h.publish("change.new", "new subject")
	changed.ExpectData("new subject")
	added := h.open("/add", nil)
	h.publish("add", "added")
	added.ExpectData("added")

	resp, err := http.Get(h.ts.URL + "/drop")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("removed route answers %d", resp.StatusCode)
	}
	// The auth block changed: the new token opens, the old one does not.
	for token, want := range map[string]int{"t1": http.StatusUnauthorized, "t2": http.StatusOK} {
		req, _ := http.NewRequest(http.MethodHead, h.ts.URL+"/private", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("token %s after reload: %d, want %d", token, resp.StatusCode, want)
		}
	}
	keep.ExpectQuiet(50 * time.Millisecond)
}

// A config that cannot be applied is refused and the old one goes on: a
// JetStream history on a NATS without JetStream cannot be made.
func TestReloadRefused(t *testing.T) {
	t.Parallel()
	h := start(t, reloadBefore)
	keep := h.open("/keep", nil)
	bad := reloadBefore + `
route "/durable" {
  history { store = "jetstream" }
  source "nats" { subject = "durable" }
}`
	if err := h.srv.Reload(parse(t, bad)); err == nil {
		t.Fatal("reload with a JetStream history on a NATS without JetStream accepted")
	}
	h.publish("keep", "still here")
	keep.ExpectData("still here")
	resp, err := http.Get(h.ts.URL + "/durable")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("the refused config's route answers %d", resp.StatusCode)
	}
}

// A reload leaves a poll that did not change running (a restarted one
// would emit its items again) and starts one that was added. The polls
// run per stream, so each starts with its first client.
func TestReloadKeepsAndStartsPolls(t *testing.T) {
	t.Parallel()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprint(w, `{"items":[{"id":"a"}]}`)
	}))
	defer up.Close()
	poll := func(path string) string {
		return fmt.Sprintf(`
route "%s/{x}" {
  source "poll" {
    url      = "%s?x=${path.x}"
    interval = "20ms"
    items    = msg.json.items
    key      = msg.json.id
    data     = msg.json.id
  }
}`, path, up.URL)
	}
	h := start(t, poll("/feed"))
	feed := h.open("/feed/1", nil)
	feed.ExpectData("a")
	if err := h.srv.Reload(parse(t, poll("/feed")+poll("/feed2"))); err != nil {
		t.Fatal(err)
	}
	added := h.open("/feed2/1", nil)
	added.ExpectData("a")
	feed.ExpectQuiet(300 * time.Millisecond)
}

// A request held in its route's auth while a reload removes the route is
// sent back with a short retry hint when auth lets it through, rather
// than given a stream of the removed route.
func TestReloadRemovesARouteMidRequest(t *testing.T) {
	t.Parallel()
	gate := make(chan struct{})
	var asked atomic.Int32
	fwd := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		asked.Add(1)
		<-gate
	}))
	defer fwd.Close()
	h := start(t, fmt.Sprintf(`
auth "forward" "fwd" { url = %q }
route "/secret/{x}" {
  auth = "fwd"
  source "nats" { subject = "secret.${path.x}" }
}
route "/other" {
  source "nats" { subject = "other" }
}`, fwd.URL))
	got := make(chan *client, 1)
	go func() { got <- h.open("/secret/a", nil) }()
	eventually(t, "the forward auth to be asked", func() bool { return asked.Load() == 1 })
	if err := h.srv.Reload(parse(t, `
route "/other" {
  source "nats" { subject = "other" }
}`)); err != nil {
		t.Fatal(err)
	}
	close(gate)
	c := <-got
	c.WaitEnd()
	if raw := c.Raw(); !strings.Contains(raw, "retry: ") || !strings.Contains(raw, "route reloaded") {
		t.Fatalf("a request for a route removed meanwhile got %q", raw)
	}
}

// The admin block applies until a restart: a reload that changes its auth
// leaves the old one in force, and the admin listener keeps working.
func TestReloadLeavesTheAdminBlock(t *testing.T) {
	t.Parallel()
	const cfg = `
auth "bearer" "ops" { tokens = ["t1"] }
auth "bearer" "ops2" { tokens = ["t2"] }
admin {
  listen = "127.0.0.1:0"
  auth   = "%s"
}
route "/sse" {
  source "nats" { subject = "events" }
}`
	h := start(t, fmt.Sprintf(cfg, "ops"))
	admin := httptest.NewServer(h.srv.Admin())
	t.Cleanup(admin.Close)
	if err := h.srv.Reload(parse(t, fmt.Sprintf(cfg, "ops2"))); err != nil {
		t.Fatal(err)
	}
	for token, want := range map[string]int{"t1": http.StatusNotFound, "t2": http.StatusUnauthorized} {
		req, _ := http.NewRequest(http.MethodGet, admin.URL+"/nothing-here", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := admin.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("admin with %s after reload: %d, want %d", token, resp.StatusCode, want)
		}
	}
}
