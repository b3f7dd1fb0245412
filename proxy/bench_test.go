package proxy

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/ssegate/ssegate/proxy/config"
	"github.com/ssegate/ssegate/sse"
)

// BenchmarkFanout delivers one 100-byte event to every client of a stream
// and waits for each client's writer to hand it to its sink, which
// discards it: the hub's cost per event, without sockets. ns/delivery is
// ns/op divided by the clients.
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) {
			rt := &config.Route{History: 100, Buffer: 16, WriteTimeout: time.Minute}
			m := newMetrics(&Server{}).route(rt)
			st := &stream{
				route:   rt,
				m:       m,
				logs:    &streamLogs{log: zerolog.Nop(), warn: zerolog.Nop()},
				history: newHistory(100),
				epoch:   newEpoch(),
				idle:    new(idleStreams),
			}
			var written sync.WaitGroup
			req := httptest.NewRequest("GET", "/sse", nil)
			for range n {
				c := newClient(req, 16)
				st.join(c, "", false)
				c.start(&writer{sink: discard{&written}, hurry: b.Context(), rt: rt, m: m, end: func(string) {}}, 0, time.Time{})
			}
			ev, err := sse.NewEvent("quote", strings.Repeat("x", 100))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				written.Add(n)
				st.deliver(ev, 0, "events")
				written.Wait()
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/delivery")
		})
	}
}

// discard is a sink that counts the frames it is given and drops them.
type discard struct{ written *sync.WaitGroup }

func (d discard) write(frames [][]byte) (int64, error) {
	var n int64
	for _, f := range frames {
		n += int64(len(f))
		d.written.Done()
	}
	return n, nil
}
func (discard) setDeadline(time.Time) error { return nil }
func (discard) abort()                      {}
func (discard) close(bool)                  {}
