package proxy_test

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/ssegate/ssegate/internal/loopback"
	"github.com/ssegate/ssegate/internal/pgtest"
)

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

// outboxSchema is the outbox table of docs/postgres.md, statement by
// statement.
func outboxSchema(t *testing.T) []string {
	sql := docBlocks(t, "postgres.md", "sql")[0]
	// The function's body is one statement, semicolons and all.
	stmts := regexp.MustCompile(`;\nCREATE`).Split(sql, -1)
	for i := 1; i < len(stmts); i++ {
		stmts[i] = "CREATE" + stmts[i]
	}
	return stmts
}

// outboxRoute is the outbox route of docs/postgres.md, reading the
// database at dsn; history replaces its history block.
func outboxRoute(t *testing.T, dsn, history string) string {
	return docRoute(t, "postgres.md", 1, history, map[string]string{"dsn": strconv.Quote(dsn)})
}

// A transaction that wrote elsewhere first, then to the outbox, commits
// before one that wrote to the outbox earlier: the recipe of the docs
// sends both rows (with ids alone, the cursor would pass the earlier row
// before it committed, and lose it).
func TestPostgresOutboxKeepsLateCommits(t *testing.T) {
	t.Parallel()
	dsn := pgtest.Start(t).NewDatabase(t, append(outboxSchema(t), "CREATE TABLE orders (id int)")...)
	h := start(t, outboxRoute(t, dsn, "history = 10"))
	c := h.open("/outbox", nil)
	sourcesRunning(t, h.srv)
	ctx := context.Background()
	begin := func() pgx.Tx {
		conn, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close(ctx) })
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return tx
	}
	exec := func(tx pgx.Tx, sql string) {
		t.Helper()
		if _, err := tx.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	early, late := begin(), begin()
	exec(early, "INSERT INTO orders VALUES (1)") // takes its transaction id now
	exec(late, `INSERT INTO outbox (topic, payload) VALUES ('tick', '{"n": 1}')`)
	exec(early, `INSERT INTO outbox (topic, payload) VALUES ('tick', '{"n": 2}')`)
	if err := early.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	c.ExpectData("2")
	if err := late.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	c.ExpectData("1")
}

// insertRows writes rows 1 to n into the outbox, a batch per
// transaction. A batch the database refused is retried once up returns
// (the database is back); with up nil, a refusal fails the test.
func insertRows(ctx context.Context, t *testing.T, dsn string, n, batch int, written func(int), up func()) {
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
			if up == nil {
				t.Errorf("insert rows %d to %d: %v", from, to, err)
				return
			}
			up()
			continue
		}
		written(to)
		from = to + 1
	}
}

// 10,000 rows are written to the outbox while the ssegate reading it is
// killed (cut off from NATS, then stopped) and another starts: the
// browser, resuming on the new one, gets every row once, in order.
func TestPostgresOutboxExactlyOnceAcrossRestart(t *testing.T) {
	t.Parallel()
	const rows = 10_000
	dsn := pgtest.Start(t).NewDatabase(t, outboxSchema(t)...)
	got := handover{
		hcl:    outboxRoute(t, dsn, `history { store = "jetstream" }`),
		path:   "/outbox",
		events: rows,
		write:  func(ctx context.Context) { insertRows(ctx, t, dsn, rows, 50, func(int) {}, nil) },
		killed: true,
	}.run(t)
	inOrderOnce(t, got, rows)
}

// The database restarts while rows are written and notifications sent:
// the outbox source catches up with every row once, in order, and the
// listener listens again.
func TestPostgresRestartUnderLoad(t *testing.T) {
	t.Parallel()
	const rows = 3000
	pg := pgtest.Start(t)
	dsn := pg.NewDatabase(t, outboxSchema(t)...)
	h := start(t, outboxRoute(t, dsn, "history = 10000")+fmt.Sprintf(`
route "/pings" {
  source "postgres" {
    dsn     = %q
    channel = "pings"
  }
}`, dsn))
	serverRestart{
		path:   "/outbox",
		events: rows,
		write: func(ctx context.Context, progress func(int), up func()) {
			insertRows(ctx, t, dsn, rows, 10, progress, up)
		},
		restart: func() { pg.Stop(); pg.Start() },
		ping:    func(_ context.Context, i int) { pgExec(t, dsn, fmt.Sprintf("SELECT pg_notify('pings', 'ping %d')", i)) },
		pings:   "/pings",
	}.run(t, h)
}

// A listener whose connection goes silent checks it after keepalive,
// and reconnects when the check goes unanswered.
func TestPostgresKeepaliveFindsSilence(t *testing.T) {
	t.Parallel()
	pg := pgtest.Start(t)
	dsn := pg.NewDatabase(t)
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	link := loopback.NewLink(t, u.Host)
	u.Host = link.Addr()
	h := start(t, fmt.Sprintf(`
route "/pings" {
  source "postgres" {
    dsn       = %q
    channel   = "pings"
    keepalive = "100ms"
  }
}`, u.String()))
	pings := h.open("/pings", nil)
	silenceIsFound(t, h, link, pings, func(i int) {
		pgExec(t, dsn, fmt.Sprintf("SELECT pg_notify('pings', 'ping %d')", i))
	})
}
