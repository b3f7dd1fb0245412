package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// counters are shared by all clients.
type counters struct {
	got      atomic.Int64 // events received by the clients that keep up
	slowGot  atomic.Int64 // events received by the slow ones
	lastAt   atomic.Int64 // when the last of them came, in Unix ns
	messages int
	keys     int // events are keyed by sequence mod keys (0: not)
	size     int // bytes of each event's data
}

// client is one SSE connection and what it received.
type client struct {
	conn    io.Closer // the connection, or the HTTP/2 stream's body
	err     error
	ended   atomic.Bool  // its stream ended
	endedAt atomic.Int64 // when, in Unix ns
	*counters

	mu         sync.Mutex
	seen       []uint64 // a bit per sequence number
	highest    int64    // the highest sequence seen, -1 before any
	distinct   int64    // sequences seen at least once
	dups       int64
	outOfOrder int64 // came after a higher one
	latency    []time.Duration

	newest []int64 // with keys, the newest sequence of each key it got
	gaps   int64   // ssegate-gap events

	// A slow client reads an event per pace at most.
	slow bool
	pace time.Duration
	due  time.Time
}

// newClient makes a client for the run o; slow ones read at a tenth of
// its rate.
func newClient(o options, shared *counters, slow bool) *client {
	c := &client{counters: shared, seen: make([]uint64, (o.messages+63)/64), highest: -1, slow: slow, newest: make([]int64, o.keys)}
	for k := range c.newest {
		c.newest[k] = -1
	}
	if slow {
		c.pace = 10 * time.Second / time.Duration(o.rate)
	}
	return c
}

// caughtUp reports whether c has what every slow_consumer policy
// promises once publishing has ended: the newest event of every key
// (with keys) or the last event, unless its stream ended. (On a route
// that conflates, a client a moment behind may miss an event that a
// newer one of its key replaced.)
func (c *client) caughtUp() bool {
	if c.ended.Load() {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.staleKeys() == 0
}

// staleKeys counts the keys whose newest event c has not got (the last
// event, without keys), with c.mu held.
func (c *client) staleKeys() int64 {
	if c.keys == 0 {
		if c.highest == int64(c.messages)-1 {
			return 0
		}
		return 1
	}
	var n int64
	for k, got := range c.newest {
		if got != lastOfKey(c.messages, c.keys, k) {
			n++
		}
	}
	return n
}

// lastOfKey is the last of messages events keyed k of keys, or -1.
func lastOfKey(messages, keys, k int) int64 {
	if k > messages-1 {
		return -1
	}
	return int64(k + (messages-1-k)/keys*keys)
}

// connectAll opens the connections at the bounded rate; each then reads
// in a goroutine of its own until ctx ends.
func connectAll(ctx context.Context, o options, shared *counters) ([]*client, time.Duration) {
	clients := make([]*client, o.clients)
	var h2 *http.Client
	if o.h2c {
		var protos http.Protocols
		protos.SetUnencryptedHTTP2(true)
		h2 = &http.Client{Transport: &http.Transport{Protocols: &protos}}
	}
	start := time.Now()
	interval := time.Second / time.Duration(o.connectRate)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 256) // handshakes in flight
	for i := range clients {
		// The slow clients are spread among the others.
		c := newClient(o, shared, o.slow > 0 && i%(o.clients/o.slow) == 0 && i/(o.clients/o.slow) < o.slow)
		clients[i] = c
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			stream := i
			if o.streams > 0 {
				stream = i % o.streams
			}
			c.err = c.connect(ctx, o, h2, i, stream)
		})
	}
	wg.Wait()
	return clients, time.Since(start)
}

// connect opens client i's stream: on the replica of its turn, with the
// stream number stream added to the URL (-distinct, -streams) or its
// topics (-topics), over HTTP/2 when h2 is set.
func (c *client) connect(ctx context.Context, o options, h2 *http.Client, i, stream int) error {
	base := o.urls[i%len(o.urls)] // replicas in turn
	u, _ := url.Parse(base)
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "80")
	}
	target, p := base, u.RequestURI()
	if o.distinct || o.streams > 0 {
		target, p = fmt.Sprintf("%s/%d", target, stream), fmt.Sprintf("%s/%d", p, stream)
	}
	if o.topics > 0 {
		q := topicsQuery(i, o.topics)
		target, p = target+q, p+q
	}
	if h2 != nil {
		return c.openHTTP2(ctx, h2, target)
	}
	var src net.Addr // the system's choice
	if o.sources > 1 {
		src = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i%o.sources))}
	}
	return c.open(ctx, src, host, u.Host, p)
}

// churn replaces clients at rate a second for d: each time the next one,
// in turn, leaves and a new client opens a stream picked at random of
// o.streams (or of the clients, with -distinct). It returns how many
// joined.
func churn(ctx context.Context, o options, shared *counters, clients []*client, rate int, d time.Duration) int {
	streams := o.streams
	if streams == 0 {
		streams = len(clients)
	}
	start := time.Now()
	interval := time.Second / time.Duration(rate)
	joined := 0
	for k := 0; time.Since(start) < d && ctx.Err() == nil; k++ {
		if wait := time.Until(start.Add(time.Duration(k) * interval)); wait > 0 {
			time.Sleep(wait)
		}
		i := k % len(clients)
		if old := clients[i]; old.conn != nil {
			old.conn.Close()
		}
		c := newClient(o, shared, false)
		if c.err = c.connect(ctx, o, nil, i, rand.N(streams)); c.err == nil {
			joined++
		}
		clients[i] = c
	}
	return joined
}

// open connects and reads the response head; the events are read in a
// goroutine of its own.
func (c *client) open(ctx context.Context, src net.Addr, addr, host, path string) error {
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: src}
	bufSize := max(4096, 2*maxEventSize)
	if c.slow {
		// As on a slow link, so that ssegate's queue for it fills rather
		// than the kernel's buffers.
		d.Control = slowLink
		bufSize = 4096 + 2*c.size
	}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n\r\n", path, host); err != nil {
		conn.Close()
		return err
	}
	br := bufio.NewReaderSize(conn, 4096)
	status, err := br.ReadString('\n')
	if err != nil {
		conn.Close()
		return err
	}
	if !strings.Contains(status, " 200 ") {
		conn.Close()
		return fmt.Errorf("answer %q", strings.TrimSpace(status))
	}
	chunked := false
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			conn.Close()
			return err
		}
		if line == "\r\n" {
			break
		}
		if k, v, _ := strings.Cut(line, ":"); strings.EqualFold(k, "Transfer-Encoding") && strings.Contains(strings.ToLower(v), "chunked") {
			chunked = true
		}
	}
	_ = conn.SetDeadline(time.Time{})
	c.conn = conn
	var body io.Reader = br
	if chunked {
		body = httputil.NewChunkedReader(br)
	}
	go c.read(bufio.NewReaderSize(body, bufSize))
	return nil
}

// openHTTP2 opens the stream as a request on hc, whose transport puts
// many streams on one connection.
func (c *client) openHTTP2(ctx context.Context, hc *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || resp.ProtoMajor != 2 {
		resp.Body.Close()
		return fmt.Errorf("answer %s %s", resp.Proto, resp.Status)
	}
	c.conn = resp.Body
	go c.read(bufio.NewReaderSize(resp.Body, max(4096, 2*maxEventSize)))
	return nil
}

// maxEventSize is the longest data line the tool reads: its own events,
// at most -size bytes, and some room.
const maxEventSize = 64 << 10

// read parses the events' data lines: "<seq> <unix nanoseconds> <padding>".
// It allocates nothing per event: the tool shares the CPU with ssegate.
func (c *client) read(br *bufio.Reader) {
	defer func() {
		c.endedAt.Store(time.Now().UnixNano())
		c.ended.Store(true)
	}()
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return // the end, or a line longer than the buffer: counted as ended
		}
		if bytes.Equal(line, gapLine) {
			c.mu.Lock()
			c.gaps++
			c.mu.Unlock()
			continue
		}
		rest, ok := bytes.CutPrefix(line, []byte("data: "))
		if !ok {
			continue
		}
		seq, rest, ok1 := leadingInt(rest)
		sent, _, ok2 := leadingInt(rest)
		if !ok1 || !ok2 {
			continue
		}
		now := time.Now()
		if seq < 0 || seq >= int64(c.messages) {
			continue // not one of this run's
		}
		c.count(seq, now, now.Sub(time.Unix(0, sent)))
		if c.slow {
			c.due = c.due.Add(c.pace)
			if c.due.Before(now) {
				c.due = now.Add(c.pace)
			}
			time.Sleep(time.Until(c.due))
		}
	}
}

// gapLine starts the event ssegate sends a client whose oldest queued
// events it dropped.
var gapLine = []byte("event: ssegate-gap\n")

// count records event seq, received at now after lat.
func (c *client) count(seq int64, now time.Time, lat time.Duration) {
	word, bit := seq/64, uint64(1)<<(seq%64)
	c.mu.Lock()
	switch {
	case c.seen[word]&bit != 0:
		c.dups++
	case seq < c.highest:
		c.outOfOrder++
	}
	if c.seen[word]&bit == 0 {
		c.seen[word] |= bit
		c.distinct++
	}
	c.highest = max(c.highest, seq)
	if c.keys > 0 {
		k := seq % int64(c.keys)
		c.newest[k] = max(c.newest[k], seq)
	}
	if !c.slow {
		// A slow client's latency is its own pace.
		c.latency = append(c.latency, lat)
	}
	c.mu.Unlock()
	if c.slow {
		c.slowGot.Add(1)
	} else {
		c.got.Add(1)
	}
	c.lastAt.Store(now.UnixNano())
}

// leadingInt parses the decimal number b starts with, and returns what
// follows it and one space.
func leadingInt(b []byte) (int64, []byte, bool) {
	var n int64
	i := 0
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		n = n*10 + int64(b[i]-'0')
	}
	if i == 0 {
		return 0, b, false
	}
	if i < len(b) && b[i] == ' ' {
		i++
	}
	return n, b[i:], true
}

// topicsQuery asks for n topics of client i's own.
func topicsQuery(i, n int) string {
	var b strings.Builder
	for k := range n {
		b.WriteString("&topic=")
		b.WriteString(strconv.Itoa(i) + "-" + strconv.Itoa(k))
	}
	return "?" + b.String()[1:]
}
