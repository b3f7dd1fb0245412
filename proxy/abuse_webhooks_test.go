package proxy_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/ssegate/ssegate/sources"
)

// Abuse: webhook deliveries. Nothing is acknowledged that is not
// delivered, a delivery that cannot become an event is told so, and a
// sender cannot hold the replica by sending slowly.

// A delivery whose mapping makes an event no browser may be sent (a name
// or id that would end its field and inject another), or a subject NATS
// would refuse, gets 422: answered 202, it would be dropped everywhere.
func TestWebhookRefusesEventsThatCannotBeSent(t *testing.T) {
	t.Parallel()
	h := start(t, `
route "/feed" {
  source "webhook" {
    path  = "/hooks/feed"
    event = try(msg.json.event, null)
    id    = try(msg.json.id, null)
    data  = msg.json.data
    verify "none" {}
  }
}
route "/repos/{repo}" {
  source "webhook" {
    path    = "/hooks/repo"
    subject = "gh.${msg.json.repo}"
    verify "none" {}
  }
}`)
	c := h.open("/feed", nil)
	repo := h.open("/repos/web", nil)
	for _, tc := range []struct{ name, body string }{
		{"event name with a line end", `{"event":"a\ndata: injected","data":"x"}`},
		{"id with a line end", `{"id":"1\nevent: injected","data":"x"}`},
		{"id with NUL", `{"id":"1\u0000","data":"x"}`},
	} {
		if code, answer := post(t, h.ts.URL+"/hooks/feed", "application/json", nil, tc.body); code != http.StatusUnprocessableEntity || !strings.Contains(answer, "cannot be sent") {
			t.Errorf("%s: %d %q, want 422", tc.name, code, answer)
		}
	}
	long := fmt.Sprintf(`{"repo":%q}`, strings.Repeat("r", sources.MaxSubjectLength))
	if code, answer := post(t, h.ts.URL+"/hooks/repo", "application/json", nil, long); code != http.StatusUnprocessableEntity {
		t.Errorf("subject too long: %d %q, want 422", code, answer)
	}

	// What can be sent arrives byte for byte, white space and all.
	if code, answer := post(t, h.ts.URL+"/hooks/feed", "application/json", nil, `{"event":" spaced ","id":"\tid ","data":"ok"}`); code != http.StatusAccepted {
		t.Fatalf("valid delivery: %d %q", code, answer)
	}
	ev := c.Next()
	if ev.Type != " spaced " || ev.LastEventID != "\tid " || ev.Data != "ok" {
		t.Errorf("event %+v, want name %q and id %q kept as sent", ev, " spaced ", "\tid ")
	}
	c.ExpectQuiet(50 * time.Millisecond)
	repo.ExpectQuiet(0)
	if !h.srv.Conn().IsConnected() {
		t.Fatal("NATS connection lost")
	}
}

// An id expression that gives "" means no id of its own: ssegate assigns
// one. An empty id line would make the browser forget where it was, and
// its next reconnect would start from nothing without a reset.
func TestEmptyMappedIDIsNoID(t *testing.T) {
	t.Parallel()
	h := start(t, `
route "/feed" {
  source "webhook" {
    path = "/hooks/feed"
    id   = lookup(msg.headers, "X-Id", "")
    verify "none" {}
  }
}`)
	c := h.open("/feed", nil)
	if code, answer := post(t, h.ts.URL+"/hooks/feed", "text/plain", http.Header{"X-Id": {""}}, "no id"); code != http.StatusAccepted {
		t.Fatalf("delivery: %d %q", code, answer)
	}
	if ev := c.Next(); ev.Data != "no id" || ev.LastEventID == "" {
		t.Errorf("event %+v, want an id assigned by ssegate", ev)
	}
}

// A sender that trickles its body gets 408 once body_timeout has passed,
// and the replica goes on taking deliveries meanwhile.
func TestWebhookBodyTimeout(t *testing.T) {
	t.Parallel()
	h := start(t, `
route "/feed" {
  source "webhook" {
    path         = "/hooks/feed"
    body_timeout = "300ms"
    verify "none" {}
  }
}`)
	c := h.open("/feed", nil)
	conn, err := net.Dial("tcp", h.ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := fmt.Fprint(conn, "POST /hooks/feed HTTP/1.1\r\nHost: test\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n"); err != nil {
		t.Fatal(err)
	}
	// The rest of the body never comes; meanwhile others are served.
	if code, answer := postBody(t, h.ts.URL+"/hooks/feed", "prompt"); code != http.StatusAccepted {
		t.Fatalf("delivery beside the slow one: %d %q", code, answer)
	}
	c.ExpectData("prompt")
	if err := conn.SetReadDeadline(time.Now().Add(wait)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer to the slow body: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("slow body: %d, want 408", resp.StatusCode)
	}
	c.ExpectQuiet(50 * time.Millisecond)
}
