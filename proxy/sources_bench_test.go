package proxy_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/ssegate/ssegate/internal/kafkatest"
	"github.com/ssegate/ssegate/internal/loopback"
	"github.com/ssegate/ssegate/internal/pgtest"
	"github.com/ssegate/ssegate/internal/redistest"
)

// backend is a database or log a source reads, as the benchmark drives
// it: the source block reading it, a bulk write of events 1 to n before
// ssegate starts (nil where what is written before is lost: LISTEN,
// pub/sub), and one write of an event.
type backend struct {
	source string
	fill   func(ctx context.Context, n int) error
	write  func(ctx context.Context, data string) error
}

func postgresBackend(b *testing.B, outbox bool) backend {
	dsn := pgtest.Start(b).NewDatabase(b, `CREATE TABLE outbox (id bigserial PRIMARY KEY, payload text NOT NULL)`,
		`CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_notify('outbox', ''); RETURN NULL; END $$`,
		`CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify()`)
	conn, err := pgx.Connect(b.Context(), dsn)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close(context.Background()) })
	if !outbox {
		return backend{
			source: fmt.Sprintf(`source "postgres" {
    dsn = %q
    channel = "bench"
    subject = "bench.out"
  }`, dsn),
			write: func(ctx context.Context, data string) error {
				_, err := conn.Exec(ctx, "SELECT pg_notify('bench', $1)", data)
				return err
			},
		}
	}
	return backend{
		source: fmt.Sprintf(`source "postgres" {
    dsn = %q
    channel = "outbox"
    query = "SELECT id, payload FROM outbox WHERE id > $1 ORDER BY id LIMIT 500"
    cursor = "id"
    data = msg.row.payload
    subject = "bench.out"
  }`, dsn),
		fill: func(ctx context.Context, n int) error {
			_, err := conn.Exec(ctx, "INSERT INTO outbox (payload) SELECT i::text FROM generate_series(1, $1::int) AS i", n)
			return err
		},
		write: func(ctx context.Context, data string) error {
			_, err := conn.Exec(ctx, "INSERT INTO outbox (payload) VALUES ($1)", data)
			return err
		},
	}
}

func redisBackend(b *testing.B, stream bool) backend {
	rs := redistest.Start(b)
	rc := rs.Client(b)
	if !stream {
		return backend{
			source: fmt.Sprintf(`source "redis" {
    url = %q
    channel = "bench"
    subject = "bench.out"
  }`, rs.URL()),
			write: func(ctx context.Context, data string) error { return rc.Publish(ctx, "bench", data).Err() },
		}
	}
	return backend{
		source: fmt.Sprintf(`source "redis" {
    url = %q
    stream = "bench"
    data = msg.fields.d
    subject = "bench.out"
  }`, rs.URL()),
		fill: func(ctx context.Context, n int) error {
			for from := 1; from <= n; from += 1000 {
				_, err := rc.Pipelined(ctx, func(p redis.Pipeliner) error {
					for i := from; i < from+1000 && i <= n; i++ {
						p.XAdd(ctx, &redis.XAddArgs{Stream: "bench", Values: []string{"d", strconv.Itoa(i)}})
					}
					return nil
				})
				if err != nil {
					return err
				}
			}
			return nil
		},
		write: func(ctx context.Context, data string) error {
			return rc.XAdd(ctx, &redis.XAddArgs{Stream: "bench", Values: []string{"d", data}}).Err()
		},
	}
}

func kafkaBackend(b *testing.B) backend {
	k := kafkatest.Start(b)
	topic := k.Topic(b, 3)
	cl := k.Client(b, kgo.ProducerLinger(0))
	return backend{
		source: fmt.Sprintf(`source "kafka" {
    brokers = %q
    topic = %q
    subject = "bench.out"
  }`, k.Brokers, topic),
		fill: func(ctx context.Context, n int) error {
			for from := 1; from <= n; from += 1000 {
				var recs []*kgo.Record
				for i := from; i < from+1000 && i <= n; i++ {
					recs = append(recs, &kgo.Record{Topic: topic, Value: []byte(strconv.Itoa(i))})
				}
				if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
					return err
				}
			}
			return nil
		},
		write: func(ctx context.Context, data string) error {
			return cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(data)}).FirstErr()
		},
	}
}

// BenchmarkSources measures each database and log source: how fast
// b.N events written to the backend reach NATS (events/s, from the
// first on NATS to the last: for a backlog written before ssegate
// starts, its reading alone; for LISTEN and pub/sub, which keep
// nothing, with one writer sending them as fast as it can; ns/op
// includes ssegate's start), the process's CPU time per event meanwhile
// (cpu-µs/event:
// ssegate with its embedded NATS, the writer's client, and, for kafka,
// the in-process kfake broker too), and the latency from the write of an
// event to a browser at 500 events a second (p50-ms, p99-ms). Run with a
// fixed count, on one core:
//
//	go test -run '^$' -bench Sources -benchtime 20000x -cpu 1 ./proxy
func BenchmarkSources(b *testing.B) {
	for _, k := range []struct {
		name string
		make func(*testing.B) backend
	}{
		{"postgres-outbox", func(b *testing.B) backend { return postgresBackend(b, true) }},
		{"postgres-notify", func(b *testing.B) backend { return postgresBackend(b, false) }},
		{"redis-stream", func(b *testing.B) backend { return redisBackend(b, true) }},
		{"redis-pubsub", func(b *testing.B) backend { return redisBackend(b, false) }},
		{"kafka", kafkaBackend},
	} {
		b.Run(k.name, func(b *testing.B) {
			be := k.make(b)
			ctx := b.Context()
			ns := loopback.NATS(b, "")
			hcl := fmt.Sprintf("route \"/b\" {\n  %s\n}\n", be.source)
			all := make(chan struct{})
			got := 0
			var first, last time.Time
			sub, err := connect(b, ns).Subscribe("bench.out", func(*nats.Msg) {
				if got++; got == 1 {
					first = time.Now()
				}
				if got == b.N {
					last = time.Now()
					close(all)
				}
			})
			if err != nil {
				b.Fatal(err)
			}
			var h *harness
			var before time.Duration
			if be.fill != nil {
				if err := be.fill(ctx, b.N); err != nil {
					b.Fatal(err)
				}
				before = cpuTime()
				b.ResetTimer()
				h = startOn(b, ns, hcl)
			} else {
				h = startOn(b, ns, hcl)
				sourcesRunning(b, h.srv)
				before = cpuTime()
				b.ResetTimer()
				for i := range b.N {
					if err := be.write(ctx, strconv.Itoa(i)); err != nil {
						b.Fatal(err)
					}
				}
			}
			select {
			case <-all:
			case <-time.After(5 * time.Minute):
				b.Fatalf("%d of %d events on NATS", got, b.N)
			}
			b.StopTimer()
			b.ReportMetric(float64((cpuTime()-before).Microseconds())/float64(b.N), "cpu-µs/event")
			if b.N > 1 {
				b.ReportMetric(float64(b.N-1)/last.Sub(first).Seconds(), "events/s")
			}
			_ = sub.Unsubscribe()
			p50, p99 := latency(b, h, be.write)
			b.ReportMetric(p50, "p50-ms")
			b.ReportMetric(p99, "p99-ms")
		})
	}
}

// latency writes 1,000 events at 500 a second, each carrying the time it
// was written, and returns the 50th and 99th percentiles, in ms, of the
// time each took to reach a browser on h.
func latency(b *testing.B, h *harness, write func(context.Context, string) error) (p50, p99 float64) {
	b.Helper()
	const n = 1000
	c := h.open("/b", nil)
	lat := make([]float64, 0, n)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for len(lat) < n {
			select {
			case ev := <-c.Events():
				sent, err := strconv.ParseInt(ev.Data, 10, 64)
				if err == nil {
					lat = append(lat, float64(time.Now().UnixNano()-sent)/1e6)
				}
			case <-time.After(wait):
				return
			}
		}
	}()
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for range n {
		<-tick.C
		if err := write(b.Context(), strconv.FormatInt(time.Now().UnixNano(), 10)); err != nil {
			b.Fatal(err)
		}
	}
	<-done
	if len(lat) < n {
		b.Fatalf("%d of %d events reached the browser", len(lat), n)
	}
	slices.Sort(lat)
	return lat[n/2], lat[n*99/100]
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
