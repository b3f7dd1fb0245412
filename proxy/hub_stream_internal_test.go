package proxy

import (
	"context"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/zclconf/go-cty/cty"

	"github.com/ssegate/ssegate/internal/loopback"
	"github.com/ssegate/ssegate/proxy/config"
)

// natsAndConfig is a NATS connection to a server of the test's own, and
// the config of one route /r/{x} on subjects r.X.
func natsAndConfig(t *testing.T) (*nats.Conn, *config.Config) {
	t.Helper()
	ns := loopback.NATS(t, "")
	cfg, err := config.Parse([]byte(`
route "/r/{x}" {
  linger = "1h"
  source "nats" { subject = "r.${path.x}" }
}`), "test.hcl")
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc, cfg
}

// A linger timer that fires while Shutdown runs must not unsubscribe what
// Shutdown is draining; -race checks the rest.
func TestReleaseRacingShutdown(t *testing.T) {
	t.Parallel()
	nc, cfg := natsAndConfig(t)
	for i := range 300 {
		s, err := New(cfg, WithNATS(nc))
		if err != nil {
			t.Fatal(err)
		}
		c := newClient(nil, 1)
		vals := []string{strconv.Itoa(i)}
		id, err := s.identify(s.snapshot(), cfg.Routes[0], vals, nil, streamVars(s.snapshot(), cfg.Routes[0], vals, cty.NilVal))
		if err != nil {
			t.Fatal(err)
		}
		st, _, _, err := s.join(id, c, netip.Addr{}, "", false)
		if err != nil {
			t.Fatal(err)
		}
		s.handlers.Done()
		st.leave(c, func(uint64) {})
		st.mu.Lock()
		gen := st.gen
		st.mu.Unlock()
		st.stopLinger()

		var wg sync.WaitGroup
		wg.Go(func() { s.freeAfterLinger(st, gen) })
		wg.Go(func() {
			if err := s.Shutdown(context.Background()); err != nil {
				t.Error(err)
			}
		})
		wg.Wait()
		if n := nc.NumSubscriptions(); n != 0 {
			t.Fatalf("round %d: %d subscriptions left", i, n)
		}
	}
}

func TestSubjectMatches(t *testing.T) {
	for _, tc := range []struct {
		pattern, subject string
		want             bool
	}{
		{"a", "a", true},
		{"a", "b", false},
		{"a", "a.b", false},
		{"a.b", "a", false},
		{"a.*", "a.b", true},
		{"a.*", "a.b.c", false},
		{"*.b", "a.b", true},
		{"a.>", "a.b.c", true},
		{"a.>", "a", false},
		{">", "a.b", true},
		{"a.*.c", "a.b.c", true},
		{"a.*.c", "a.b.d", false},
	} {
		if got := subjectMatches(tc.pattern, tc.subject); got != tc.want {
			t.Errorf("subjectMatches(%q, %q) = %v", tc.pattern, tc.subject, got)
		}
	}
	if n := testing.AllocsPerRun(100, func() { subjectMatches("a.*.>", "a.b.c.d") }); n != 0 {
		t.Errorf("%v allocations per call", n)
	}
}

// Auth blocks are looked up in the config snapshot a request started in; one a
// reload removed lets nobody in, and nothing panics.
func TestAuthOfARemovedBlock(t *testing.T) {
	t.Parallel()
	ns := loopback.NATS(t, "")
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	parse := func(src string) *config.Config {
		cfg, err := config.Parse([]byte(src), "t.hcl")
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	s, err := New(parse(`
auth "bearer" "ops" { tokens = ["t"] }
route "/p" {
  auth = "ops"
  source "nats" { subject = "p" }
}`), WithNATS(nc))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Shutdown(context.Background()) }()
	old := s.snapshot()
	if err := s.Reload(parse(`
route "/q" {
  source "nats" { subject = "q" }
}`)); err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/p", nil)
	r.Header.Set("Authorization", "Bearer t")
	if _, denied := s.tryAuth(old, r, []string{"ops"}); denied != nil {
		t.Errorf("the request's own snapshot refused its token: %+v", denied)
	}
	if _, denied := s.tryAuth(s.snapshot(), r, []string{"ops"}); denied == nil {
		t.Error("a removed auth block let a request in")
	}
}

// subjectMatchesBySplit is the plain reading of NATS wildcards that
// subjectMatches must agree with.
func subjectMatchesBySplit(pattern, subject string) bool {
	p, s := strings.Split(pattern, "."), strings.Split(subject, ".")
	for i, tok := range p {
		switch {
		case tok == ">":
			return len(s) > i
		case i >= len(s):
			return false
		case tok != "*" && tok != s[i]:
			return false
		}
	}
	return len(p) == len(s)
}

// The allocation-free matcher agrees with the plain one on valid
// patterns and subjects.
func FuzzSubjectMatches(f *testing.F) {
	for _, seed := range [][2]string{{"a.*", "a.b"}, {"a.>", "a.b.c"}, {">", "x"}, {"a.*.c", "a.b.c"}, {"a", "a.b"}} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, pattern, subject string) {
		if !validSubject(pattern, true) || !validSubject(subject, false) {
			t.Skip()
		}
		if got, want := subjectMatches(pattern, subject), subjectMatchesBySplit(pattern, subject); got != want {
			t.Fatalf("subjectMatches(%q, %q) = %v, want %v", pattern, subject, got, want)
		}
	})
}

// validSubject: non-empty tokens without white space; wildcards only in
// patterns, ">" only last.
func validSubject(s string, pattern bool) bool {
	toks := strings.Split(s, ".")
	for i, tok := range toks {
		switch {
		case tok == "" || strings.ContainsAny(tok, " \t\r\n"):
			return false
		case tok == ">" && (!pattern || i != len(toks)-1):
			return false
		case tok == "*" && !pattern:
			return false
		case tok != "*" && tok != ">" && strings.ContainsAny(tok, "*>"):
			return false
		}
	}
	return true
}

// Making a stream's subscriptions again after a gap replaces them, on a
// live connection too (a stream opened after the replacement, or a second
// replacement): never one more subscription per gap.
func TestResubscribeReplacesSubscriptions(t *testing.T) {
	t.Parallel()
	nc, cfg := natsAndConfig(t)
	s, err := New(cfg, WithNATS(nc))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = s.Shutdown(context.Background()) }()
	id, err := s.identify(s.snapshot(), cfg.Routes[0], []string{"a"}, nil, streamVars(s.snapshot(), cfg.Routes[0], []string{"a"}, cty.NilVal))
	if err != nil {
		t.Fatal(err)
	}
	c := newClient(nil, 16)
	if _, _, _, err := s.join(id, c, netip.Addr{}, "", false); err != nil {
		t.Fatal(err)
	}
	defer s.handlers.Done()
	before := nc.NumSubscriptions()
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() { s.afterGap(true) })
	}
	wg.Wait()
	if after := nc.NumSubscriptions(); after != before {
		t.Errorf("%d subscriptions after three gaps, %d before", after, before)
	}
}
