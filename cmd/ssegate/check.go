package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/ssegate/ssegate/sse/sseparse"
)

// promptly is how soon a probe event must arrive for the path to count as
// unbuffered.
const promptly = time.Second

// checkOptions are the flags of ssegate check.
type checkOptions struct {
	url, natsURL, subject string
	wait                  time.Duration
	headers               []string
}

// runCheck is `ssegate check`: a client-side self-test of a deployed
// route, through whatever sits in front of it. It exits 1 when a check
// fails.
func runCheck(args []string, stdout, stderr io.Writer) int {
	var o checkOptions
	fs := newFlags("check", stdout)
	fs.StringVar(&o.natsURL, "nats", "", "NATS server to publish probe events to (without it, events are waited for)")
	fs.StringVar(&o.subject, "subject", "", "the subject the route reads, for the probes")
	fs.DurationVar(&o.wait, "wait", 40*time.Second, "how long to wait for events and keepalives")
	headerFlag(fs, &o.headers, "a request header, `Name: value` (repeatable), e.g. Authorization")
	if code, done := parseFlags(fs, args, stderr); done {
		return code
	}
	if fs.NArg() != 1 || (o.natsURL == "") != (o.subject == "") {
		fmt.Fprintln(stderr, "ssegate check: give one URL, and -nats with -subject or neither\nsee: ssegate check -h")
		return 2
	}
	o.url = fs.Arg(0)
	c := &checker{o: o, out: stdout}
	if c.run() {
		return 0
	}
	return 1
}

// headerFlag adds a repeatable -header flag collecting "Name: value".
func headerFlag(fs *flag.FlagSet, headers *[]string, usage string) {
	fs.Func("header", usage, func(v string) error {
		if !strings.Contains(v, ":") {
			return errors.New("want Name: value")
		}
		*headers = append(*headers, v)
		return nil
	})
}

// addHeaders sets the "Name: value" headers on req.
func addHeaders(req *http.Request, headers []string) {
	for _, h := range headers {
		k, v, _ := strings.Cut(h, ":")
		req.Header.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
}

// checker runs the checks and prints one line per finding.
type checker struct {
	o      checkOptions
	out    io.Writer
	failed bool
	nc     *nats.Conn
}

func (c *checker) ok(format string, a ...any)   { fmt.Fprintf(c.out, "ok    "+format+"\n", a...) }
func (c *checker) warn(format string, a ...any) { fmt.Fprintf(c.out, "warn  "+format+"\n", a...) }
func (c *checker) fail(format string, a ...any) {
	c.failed = true
	fmt.Fprintf(c.out, "FAIL  "+format+"\n", a...)
}

// item is what a stream yields, an event or a comment, and when it came.
type item struct {
	ev        sseparse.MessageEvent
	comment   string // with its colon
	isComment bool
	at        time.Time
}

// response is an open event-stream response being read, as a browser would.
type response struct {
	resp   *http.Response
	items  chan item
	cancel context.CancelFunc
}

func (c *checker) open(lastID string) (*response, error) {
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.o.url, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("Cache-Control", "no-cache")
	addHeaders(req, c.o.headers)
	if lastID != "" {
		req.Header.Set("Last-Event-ID", lastID)
	}
	// A head held back by something in between counts against the wait
	// too.
	headLate := time.AfterFunc(c.o.wait, cancel)
	resp, err := http.DefaultClient.Do(req)
	if !headLate.Stop() {
		err = fmt.Errorf("no response head within %v: something in between holds the stream back", c.o.wait)
	}
	if err != nil {
		cancel()
		if resp != nil {
			resp.Body.Close()
		}
		return nil, err
	}
	s := &response{resp: resp, items: make(chan item, 1024), cancel: cancel}
	go func() {
		defer close(s.items)
		r := sseparse.NewReader(resp.Body, 1<<20)
		r.OnComment(func(text string) { s.items <- item{comment: ":" + text, isComment: true, at: time.Now()} })
		for {
			ev, err := r.Next()
			if err != nil {
				return
			}
			s.items <- item{ev: ev, at: time.Now()}
		}
	}()
	return s, nil
}

func (s *response) close() {
	s.cancel()
	s.resp.Body.Close()
}

// next returns what the stream yields next, or false when nothing came
// by deadline or the stream ended.
func (s *response) next(deadline time.Time) (item, bool) {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	select {
	case <-timer.C:
		return item{}, false
	case it, open := <-s.items:
		return it, open
	}
}

// nextEvent returns the next event, or false when none came by deadline;
// it calls comment for each comment before it.
func (s *response) nextEvent(deadline time.Time, comment func(item)) (item, bool) {
	for {
		it, ok := s.next(deadline)
		if !ok || !it.isComment {
			return it, ok
		}
		comment(it)
	}
}

// comments reads until have holds n comments, the stream ends or
// deadline passes.
func (s *response) comments(have []item, n int, deadline time.Time) []item {
	for len(have) < n {
		it, ok := s.next(deadline)
		if !ok {
			return have
		}
		if it.isComment {
			have = append(have, it)
		}
	}
	return have
}

func (c *checker) run() bool {
	if c.o.natsURL != "" {
		nc, err := nats.Connect(c.o.natsURL, nats.Name("ssegate check"), nats.Timeout(5*time.Second))
		if err != nil {
			c.fail("connect to NATS at %s: %v", c.o.natsURL, err)
			return false
		}
		defer nc.Close()
		c.nc = nc
	}
	start := time.Now()
	s, err := c.open("")
	if err != nil {
		c.fail("GET %s: %v", c.o.url, err)
		return false
	}
	defer s.close()
	if !c.checkHead(s.resp, time.Since(start)) {
		return false
	}

	var comments []item
	onComment := func(it item) { comments = append(comments, it) }
	deadline := time.Now().Add(c.o.wait)
	first, ok := c.probe(s, deadline, onComment)
	if ok && c.nc == nil {
		c.ok("an event arrived (id %q); give -nats and -subject to time a probe", first.ev.LastEventID)
	}
	// Keepalives: wait for two comments, to see the interval.
	comments = s.comments(comments, 2, deadline)
	c.checkKeepalive(comments)
	s.close()

	if ok && first.ev.LastEventID != "" && c.nc != nil {
		c.checkResume(first.ev.LastEventID)
	} else if ok && first.ev.LastEventID == "" {
		c.warn("the event had no id: browsers cannot resume this route with Last-Event-ID")
	}
	if c.failed {
		fmt.Fprintln(c.out, "some checks failed")
		return false
	}
	fmt.Fprintln(c.out, "all checks passed")
	return true
}

// checkHead reports the status, protocol and headers.
func (c *checker) checkHead(resp *http.Response, took time.Duration) bool {
	ct := resp.Header.Get("Content-Type")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(ct, "text/event-stream") {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		c.fail("answer %s, Content-Type %q: %s", resp.Status, ct, strings.TrimSpace(string(body)))
		return false
	}
	c.ok("%s %s, Content-Type %q, head in %v", resp.Proto, resp.Status, ct, took.Round(time.Millisecond))
	if resp.ProtoMajor < 2 {
		c.warn("%s: browsers open at most 6 HTTP/1.1 connections per origin, streams included; serve HTTP/2 (tls, or h2c behind a proxy that speaks it to browsers)", resp.Proto)
	}
	if enc := resp.Header.Get("Content-Encoding"); enc != "" && enc != "identity" {
		c.warn("Content-Encoding %q: a compressing proxy may hold events back until its buffer fills", enc)
	}
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "no-cache") && !strings.Contains(cc, "no-store") {
		c.warn("Cache-Control %q: a cache in between may hold the stream", cc)
	}
	return true
}

// probe publishes a probe event (when it can) and waits for the first
// event, timing it.
func (c *checker) probe(s *response, deadline time.Time, onComment func(item)) (item, bool) {
	var nonce string
	var sent time.Time
	if c.nc != nil {
		// Published once the subscription surely exists: the head is in.
		nonce = newNonce()
		sent = time.Now()
		if err := c.publish(nonce); err != nil {
			c.fail("publish a probe to %s: %v", c.o.subject, err)
			return item{}, false
		}
	}
	for {
		it, ok := s.nextEvent(deadline, onComment)
		if !ok {
			if c.nc != nil {
				c.fail("the probe event did not arrive within %v: events are held back (a buffering proxy?) or the route does not read %s", c.o.wait, c.o.subject)
			} else {
				c.warn("no event within %v: nothing published, or events are held back", c.o.wait)
			}
			return it, false
		}
		if nonce == "" {
			return it, true
		}
		if !strings.Contains(it.ev.Data, nonce) {
			continue // someone else's event
		}
		took := it.at.Sub(sent)
		if took > promptly {
			c.fail("the probe took %v to arrive: something between buffers the stream (nginx: proxy_buffering off)", took.Round(time.Millisecond))
		} else {
			c.ok("probe event arrived in %v (id %q)", took.Round(10*time.Microsecond), it.ev.LastEventID)
		}
		return it, true
	}
}

// checkKeepalive reports the comments seen and their interval.
func (c *checker) checkKeepalive(comments []item) {
	switch len(comments) {
	case 0:
		c.warn("no keepalive comment within %v: idle streams may be cut by proxies with shorter read timeouts", c.o.wait)
	case 1:
		c.ok("a keepalive comment came (%q); wait longer to see the interval", comments[0].comment)
	default:
		c.ok("keepalive comments every %v", comments[len(comments)-1].at.Sub(comments[len(comments)-2].at).Round(100*time.Millisecond))
	}
}

// checkResume reconnects with lastID, publishes a second probe and checks
// that it, not a reset or the first probe again, comes first.
func (c *checker) checkResume(lastID string) {
	s, err := c.open(lastID)
	if err != nil {
		c.fail("resume: GET with Last-Event-ID: %v", err)
		return
	}
	defer s.close()
	if s.resp.StatusCode != http.StatusOK {
		c.fail("resume: answer %s", s.resp.Status)
		return
	}
	nonce := newNonce()
	if err := c.publish(nonce); err != nil {
		c.fail("resume: publish a probe: %v", err)
		return
	}
	deadline := time.Now().Add(c.o.wait)
	for {
		it, ok := s.nextEvent(deadline, func(item) {})
		switch {
		case !ok:
			c.fail("resume: the second probe did not arrive")
			return
		case it.ev.Type == "ssegate-reset":
			c.fail("resume: Last-Event-ID %q was not in the history (got ssegate-reset); with several replicas, use history { store = \"jetstream\" }", lastID)
			return
		case strings.Contains(it.ev.Data, nonce):
			c.ok("resume with Last-Event-ID %q works", lastID)
			return
		case it.ev.LastEventID == lastID:
			c.fail("resume: the event with id %q came again", lastID)
			return
		}
	}
}

func (c *checker) publish(nonce string) error {
	if err := c.nc.Publish(c.o.subject, []byte("ssegate check "+nonce)); err != nil {
		return err
	}
	return c.nc.FlushTimeout(5 * time.Second)
}

func newNonce() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
