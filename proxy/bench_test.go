package proxy

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/ssegate/ssegate/proxy/config"
	"github.com/ssegate/ssegate/sources"
)

// BenchmarkFanout delivers one 100-byte event to every client of a stream
// and drains each client's queue as its writer would: the hub's cost per
// event, without sockets. ns/delivery is ns/op divided by the clients.
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("clients=%d", n), func(b *testing.B) {
			rt := &config.Route{History: 100, Buffer: 16}
			st := &stream{
				route:   rt,
				m:       newMetrics(&Server{}).route(rt),
				log:     zerolog.Nop(),
				warn:    zerolog.Nop(),
				history: newHistory(100),
				epoch:   newEpoch(),
			}
			req := httptest.NewRequest("GET", "/sse", nil)
			clients := make([]*Client, n)
			for i := range clients {
				clients[i] = newClient(req, 16)
				st.join(clients[i], "", false)
			}
			ev := sources.Event{Name: "quote", Data: strings.Repeat("x", 100)}
			var spare [][]byte
			b.ReportAllocs()
			for b.Loop() {
				st.deliver(ev)
				for _, c := range clients {
					<-c.wake
					batch := c.take(spare)
					clear(batch)
					spare = batch
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/delivery")
		})
	}
}
