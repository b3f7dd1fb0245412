package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
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
	got      atomic.Int64 // events received by all clients
	lastAt   atomic.Int64 // when the last of them came, in Unix ns
	messages int
}

// client is one SSE connection and what it received.
type client struct {
	conn  io.Closer // the connection, or the HTTP/2 stream's body
	err   error
	ended atomic.Bool // its stream ended
	*counters

	mu         sync.Mutex
	seen       []uint64 // a bit per sequence number
	highest    int64    // the highest sequence seen, -1 before any
	distinct   int64    // sequences seen at least once
	dups       int64
	outOfOrder int64 // came after a higher one
	latency    []time.Duration
}

// connectAll opens the connections at the bounded rate; each then reads
// in a goroutine of its own until ctx ends.
func connectAll(ctx context.Context, o options, shared *counters) ([]*client, time.Duration) {
	u, _ := url.Parse(o.url)
	host := u.Host
	if u.Port() == "" {
		host = net.JoinHostPort(u.Hostname(), "80")
	}
	path := u.RequestURI()
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
		c := &client{counters: shared, seen: make([]uint64, (o.messages+63)/64), highest: -1}
		clients[i] = c
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d)
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			target, p := o.url, path
			if o.distinct {
				target, p = fmt.Sprintf("%s/%d", o.url, i), fmt.Sprintf("%s/%d", path, i)
			}
			if o.topics > 0 {
				q := topicsQuery(i, o.topics)
				target, p = o.url+q, path+q
			}
			if h2 != nil {
				c.err = c.openHTTP2(ctx, h2, target)
			} else {
				var src net.Addr // the system's choice
				if o.sources > 1 {
					src = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i%o.sources))}
				}
				c.err = c.open(ctx, src, host, u.Host, p)
			}
		})
	}
	wg.Wait()
	return clients, time.Since(start)
}

// open connects and reads the response head; the events are read in a
// goroutine of its own.
func (c *client) open(ctx context.Context, src net.Addr, addr, host, path string) error {
	d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: src}
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
	go c.read(bufio.NewReaderSize(body, max(4096, 2*maxEventSize)))
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
	defer c.ended.Store(true)
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return // the end, or a line longer than the buffer: counted as ended
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
		lat := now.Sub(time.Unix(0, sent))
		if seq < 0 || seq >= int64(c.messages) {
			continue // not one of this run's
		}
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
		c.latency = append(c.latency, lat)
		c.mu.Unlock()
		c.got.Add(1)
		c.lastAt.Store(now.UnixNano())
	}
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
