package proxy_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	gosse "github.com/tmaxmax/go-sse"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"

	"github.com/ssegate/ssegate/internal/loopback"
	"github.com/ssegate/ssegate/internal/pgtest"
	"github.com/ssegate/ssegate/proxy"
)

// sourcesRunning waits until every source srv runs reports itself
// running: connected, listening.
func sourcesRunning(t *testing.T, srv *proxy.Server) {
	t.Helper()
	admin := httptest.NewServer(srv.Admin())
	defer admin.Close()
	eventually(t, "the sources to run", func() bool {
		_, r := readyz(t, admin, nil)
		for _, s := range r.Sources {
			if s.State != "running" {
				return false
			}
		}
		return len(r.Sources) > 0
	})
}

// pgExec runs statements on dsn.
func pgExec(t *testing.T, dsn string, stmts ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, s := range stmts {
		if _, err := conn.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// A NOTIFY reaches the browsers of the stream its payload names.
func TestPostgresNotifyReachesBrowser(t *testing.T) {
	t.Parallel()
	dsn := pgtest.Start(t).NewDatabase(t)
	h := start(t, fmt.Sprintf(`
route "/orders/{id}" {
  source "postgres" {
    dsn     = %q
    channel = "orders"
    subject = "orders.${msg.json.order}"
    event   = "order"
    data    = msg.json.status
  }
}`, dsn))
	seven, eight := h.open("/orders/7", nil), h.open("/orders/8", nil)
	sourcesRunning(t, h.srv)
	pgExec(t, dsn,
		`SELECT pg_notify('orders', '{"order": 7, "status": "paid"}')`,
		`SELECT pg_notify('orders', '{"order": 8, "status": "shipped"}')`,
		`SELECT pg_notify('other', '{"order": 7, "status": "lost"}')`,
		`SELECT pg_notify('orders', '{"order": 7, "status": "shipped"}')`)
	got := seven.ExpectData("paid", "shipped")
	if got[0].Type != "order" {
		t.Errorf("event name %q, want order", got[0].Type)
	}
	eight.ExpectData("shipped")
}

// outboxSchema is the outbox of the docs: each row carries the
// transaction that wrote it, so the query leaves out rows whose
// transaction an older, still running one could be followed by.
var outboxSchema = []string{
	`CREATE TABLE outbox (
  id      bigserial PRIMARY KEY,
  txid    xid8 NOT NULL DEFAULT pg_current_xact_id(),
  topic   text NOT NULL,
  payload jsonb NOT NULL
)`,
	`CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('outbox', '');
  RETURN NULL;
END $$`,
	`CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
  FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify()`,
}

const outboxQuery = `SELECT id, topic, payload FROM outbox
  WHERE id > $1 AND txid < pg_snapshot_xmin(pg_current_snapshot())
  ORDER BY id LIMIT 500`

// outboxRoute reads the outbox at dsn; history is the route's history
// block.
func outboxRoute(dsn, history string) string {
	return fmt.Sprintf(`
route "/outbox" {
  %s
  source "postgres" {
    dsn     = %q
    channel = "outbox"
    query   = <<-SQL
      %s
    SQL
    cursor  = "id"
    event   = msg.row.topic
    data    = msg.row.payload.n
  }
}`, history, dsn, outboxQuery)
}

// insertRows writes rows 1 to n into the outbox, a batch per
// transaction, retrying a batch the database refused (while it restarts).
func insertRows(ctx context.Context, t *testing.T, dsn string, n, batch int, written func(int)) {
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	for from := 1; from <= n; {
		if ctx.Err() != nil {
			return
		}
		to := min(from+batch-1, n)
		var err error
		if conn == nil || conn.IsClosed() {
			conn, err = pgx.Connect(ctx, dsn)
		}
		if err == nil {
			_, err = conn.Exec(ctx, `INSERT INTO outbox (topic, payload)
  SELECT 'tick', jsonb_build_object('n', i) FROM generate_series($1::int, $2::int) AS i`, from, to)
		}
		if err != nil {
			if conn != nil {
				conn.Close(context.Background())
				conn = nil
			}
			time.Sleep(20 * time.Millisecond)
			continue
		}
		written(to)
		from = to + 1
	}
}

// readUntil reads c's events into got until it holds n, or c ends.
func readUntil(t *testing.T, c *client, got *[]gosse.Event, n int) {
	t.Helper()
	for len(*got) < n {
		select {
		case ev := <-c.Events():
			*got = append(*got, ev)
		case <-time.After(wait):
			t.Fatalf("%d events of %d, then none for %v", len(*got), n, wait)
		}
	}
}

// inOrderOnce checks that events carry 1, 2, ... n, each once.
func inOrderOnce(t *testing.T, got []gosse.Event, n int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("%d events, want %d", len(got), n)
	}
	for i, ev := range got {
		if ev.Data != strconv.Itoa(i+1) {
			t.Fatalf("event %d is %q, want %d (the one before: %q)", i, ev.Data, i+1, got[max(i-1, 0)].Data)
		}
	}
}

// 10,000 rows are written to the outbox while the ssegate reading it is
// killed (cut off from NATS, then stopped) and another starts: the
// browser, resuming on the new one, gets every row once, in order.
func TestPostgresOutboxExactlyOnceAcrossRestart(t *testing.T) {
	t.Parallel()
	const rows = 10_000
	dsn := pgtest.Start(t).NewDatabase(t, outboxSchema...)
	ns := loopback.JetStream(t, t.TempDir())
	replica := func() (*harness, *nats.Conn) {
		nc := connect(t, ns)
		return startOn(t, ns, outboxRoute(dsn, `history { store = "jetstream" }`), proxy.WithNATS(nc), proxy.WithLeaseTTL(500*time.Millisecond)), nc
	}
	a, ncA := replica()
	onA := a.open("/outbox", nil)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var writer sync.WaitGroup
	writer.Go(func() { insertRows(ctx, t, dsn, rows, 50, func(int) {}) })

	var got []gosse.Event
	readUntil(t, onA, &got, 3000)
	ncA.Close() // killed: its progress is saved no more
	shut, done := context.WithTimeout(context.Background(), wait)
	defer done()
	_ = a.srv.Shutdown(shut)
	for ev := range onA.Drain() {
		got = append(got, ev)
	}
	b, _ := replica()
	onB := b.open("/outbox", http.Header{"Last-Event-ID": {got[len(got)-1].LastEventID}})
	readUntil(t, onB, &got, rows)
	writer.Wait()
	onB.ExpectQuiet(200 * time.Millisecond)
	inOrderOnce(t, got, rows)
}

// The database restarts while rows are written and notifications sent:
// the outbox source catches up with every row once, in order, and the
// listener listens again.
func TestPostgresRestartUnderLoad(t *testing.T) {
	t.Parallel()
	const rows = 3000
	pg := pgtest.Start(t)
	dsn := pg.NewDatabase(t, outboxSchema...)
	h := start(t, outboxRoute(dsn, "history = 100")+fmt.Sprintf(`
route "/pings" {
  source "postgres" {
    dsn     = %q
    channel = "pings"
  }
}`, dsn))
	outbox, pings := h.open("/outbox", nil), h.open("/pings", nil)
	sourcesRunning(t, h.srv)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var writer sync.WaitGroup
	var mu sync.Mutex
	written := 0
	writer.Go(func() {
		insertRows(ctx, t, dsn, rows, 10, func(n int) {
			mu.Lock()
			written = n
			mu.Unlock()
		})
	})
	eventually(t, "a third of the rows written", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return written >= rows/3
	})
	pg.Stop()
	pg.Start()
	var got []gosse.Event
	readUntil(t, outbox, &got, rows)
	writer.Wait()
	inOrderOnce(t, got, rows)

	// A notification sent before the listener is back is lost, as
	// PostgreSQL loses it: ping until one arrives.
	deadline := time.Now().Add(wait)
	for i := 0; ; i++ {
		pgExec(t, dsn, fmt.Sprintf("SELECT pg_notify('pings', 'ping %d')", i))
		select {
		case ev := <-pings.Events():
			if ev.Data == "" {
				t.Fatalf("empty ping")
			}
			return
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("the listener did not come back after the database restarted")
		}
	}
}
