package sources

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/ssegate/ssegate/internal/hclattr"
)

// Defaults of a postgres block.
const (
	defaultOutboxInterval       = time.Second // without a channel to wake it
	defaultOutboxNotifyInterval = time.Minute // with one: a safety net
	defaultPostgresConnect      = 10 * time.Second
	// defaultPostgresKeepalive is how long a listener may hear nothing
	// before it checks its connection: one a NAT or load balancer
	// dropped in silence would otherwise look alive for as long as TCP's
	// keepalive takes to notice.
	defaultPostgresKeepalive = 30 * time.Second
	// queryTimeout bounds a query or a check: the connection is taken
	// for dead after that long.
	queryTimeout = 30 * time.Second
	// maxChannel is PostgreSQL's longest identifier (NAMEDATALEN - 1).
	maxChannel = 63
)

// postgresSource is a `source "postgres"` block: the notifications of a
// LISTEN channel, or the rows of an outbox query read from a cursor.
type postgresSource struct {
	relayed
	routing
	Mapping Mapping
	config  *pgx.ConnConfig
	db      string // host, port and database: what names the lease
	Channel string
	// The outbox: Query selects the rows after the Cursor columns' values
	// in the last row emitted ($1, $2, ...), in Cursor order, with a
	// LIMIT; Start are those values before any row.
	Query     string
	Cursor    []string
	Start     []string
	Interval  time.Duration
	Keepalive time.Duration // LISTEN alone: silence before a check
}

var (
	_ Feeder     = (*postgresSource)(nil)
	_ OwnIDs     = (*postgresSource)(nil)
	_ Positioned = (*postgresSource)(nil)
)

var postgresSchema = &hcl.BodySchema{Attributes: append([]hcl.AttributeSchema{
	{Name: "dsn", Required: true}, {Name: "channel"}, {Name: "query"}, {Name: "cursor"},
	{Name: "start"}, {Name: "interval"}, {Name: "keepalive"}, {Name: "subject"},
}, mappingAttrs...)}

func init() { Register("postgres", decodePostgres) }

func decodePostgres(block *hcl.Block, ctx *hcl.EvalContext, rt RouteInfo) (Spec, hcl.Diagnostics) {
	content, diags := block.Body.Content(postgresSchema)
	a := content.Attributes
	p := &postgresSource{relayed: relayed{block.DefRange}, Keepalive: defaultPostgresKeepalive}
	var dsn string
	diags = append(diags, hclattr.String(a, "dsn", ctx, &dsn)...)
	diags = append(diags, hclattr.String(a, "channel", ctx, &p.Channel)...)
	diags = append(diags, hclattr.String(a, "query", ctx, &p.Query)...)
	diags = append(diags, stringOrList(a, "cursor", ctx, &p.Cursor)...)
	diags = append(diags, stringOrList(a, "start", ctx, &p.Start)...)
	p.Interval = defaultOutboxInterval
	if p.Channel != "" {
		p.Interval = defaultOutboxNotifyInterval
	}
	diags = append(diags, hclattr.Duration(a, "interval", ctx, &p.Interval, 10*time.Millisecond, false)...)
	diags = append(diags, hclattr.Duration(a, "keepalive", ctx, &p.Keepalive, 10*time.Millisecond, false)...)
	if diags.HasErrors() {
		return p, diags
	}
	if attr, ok := a["dsn"]; ok {
		cfg, err := pgx.ParseConfig(dsn)
		if err != nil {
			// The error may quote the DSN, password and all.
			return p, hclattr.Errorf(attr.Expr.Range(), "Invalid dsn", "dsn is not a PostgreSQL connection string or URL, like \"postgres://user:password@host:5432/db\".")
		}
		if !strings.Contains(dsn, "connect_timeout") {
			cfg.ConnectTimeout = defaultPostgresConnect
		}
		p.config = cfg
		p.db = fmt.Sprintf("%s:%d/%s", cfg.Host, cfg.Port, cfg.Database)
	}
	if attr, ok := a["channel"]; ok && (p.Channel == "" || len(p.Channel) > maxChannel) {
		diags = append(diags, hclattr.Errorf(attr.Expr.Range(), "Invalid channel", "channel must be a name of 1 to %d bytes.", maxChannel)...)
	}
	switch {
	case p.Query == "" && p.Channel == "":
		diags = append(diags, hclattr.Errorf(block.DefRange, "Nothing to read", "A postgres source reads a LISTEN channel (channel = \"orders\") or an outbox table (query = \"SELECT ... WHERE id > $1 ORDER BY id LIMIT 500\" with cursor = \"id\").")...)
	case p.Query != "" && a["keepalive"] != nil:
		diags = append(diags, hclattr.Errorf(a["keepalive"].Expr.Range(), "Keepalive on an outbox", "keepalive belongs to a channel without a query; an outbox's query runs at least every interval, which checks its connection.")...)
	case p.Query == "" && a["interval"] != nil:
		diags = append(diags, hclattr.Errorf(a["interval"].Expr.Range(), "Interval without a query", "interval is how often an outbox query runs; a channel alone is checked after keepalive of silence.")...)
	case p.Query == "" && (a["cursor"] != nil || a["start"] != nil):
		diags = append(diags, hclattr.Errorf(block.DefRange, "Cursor without a query", "cursor and start belong to an outbox query; a source with only a channel emits each notification as it comes.")...)
	case p.Query != "":
		diags = append(diags, p.checkOutbox(a)...)
	}
	extra := []msgField{fieldRow}
	if p.Query == "" {
		extra = nil
	}
	var d hcl.Diagnostics
	p.routing, d = decodeRouting(a, block, ctx, rt, "postgres", msgAttrNames(extra...), "orders.${msg.row.order_id}")
	diags = append(diags, d...)
	p.Mapping, d = decodeMapping(a, ctx, Scope{"msg": msgAttrNames(extra...)})
	return p, append(diags, d...)
}

// checkOutbox checks what an outbox query needs: a cursor, one $N per
// cursor column, a LIMIT, and as many start values as columns.
func (p *postgresSource) checkOutbox(a hcl.Attributes) hcl.Diagnostics {
	q := a["query"].Expr.Range()
	if len(p.Cursor) == 0 || slices.Contains(p.Cursor, "") {
		return hclattr.Errorf(q, "Missing cursor", "An outbox query needs cursor, the column (or columns) its rows are ordered by and $1 (, $2 ...) are compared with, like cursor = \"id\": their values in the last row emitted are where the next query starts. They must be unique and only ever grow.")
	}
	for i := range p.Cursor {
		if !strings.Contains(p.Query, "$"+strconv.Itoa(i+1)) {
			return hclattr.Errorf(q, "Query without its parameters", "An outbox query selects the rows after the cursor's last values, $1 for %q and so on, in cursor order, like WHERE id > $1 ORDER BY id LIMIT 500; this one has no $%d.", p.Cursor[0], i+1)
		}
	}
	// A textual check: it catches the query that forgot, not one that
	// hides its bound.
	if !regexp.MustCompile(`(?i)\b(limit\s+[0-9$]|fetch\s+(first|next)\b)`).MatchString(p.Query) {
		return hclattr.Errorf(q, "Query without a LIMIT", "An outbox query takes a LIMIT, like LIMIT 500 (or FETCH FIRST 500 ROWS ONLY): without one, a backlog of a million rows would be read in one go.")
	}
	switch {
	case a["start"] == nil:
		p.Start = make([]string, len(p.Cursor))
		for i := range p.Start {
			p.Start[i] = "0"
		}
	case len(p.Start) != len(p.Cursor):
		return hclattr.Errorf(a["start"].Expr.Range(), "Start does not match the cursor", "start gives %d value(s) for a cursor of %d column(s).", len(p.Start), len(p.Cursor))
	}
	return nil
}

// stringOrList reads attribute name, a string or a list of strings, into
// dst.
func stringOrList(attrs hcl.Attributes, name string, ctx *hcl.EvalContext, dst *[]string) hcl.Diagnostics {
	attr, ok := attrs[name]
	if !ok {
		return nil
	}
	if v, diags := attr.Expr.Value(ctx); !diags.HasErrors() && v.Type().IsPrimitiveType() {
		var s string
		diags = hclattr.String(attrs, name, ctx, &s)
		*dst = []string{s}
		return diags
	}
	return hclattr.Strings(attrs, name, ctx, dst)
}

// OwnIDs reports whether events keep the ids the source gives them.
func (p *postgresSource) OwnIDs() bool { return p.Query != "" && p.Mapping.ID == nil }

// ReadPlace is the outbox's saved cursor: its lease's key.
func (p *postgresSource) ReadPlace() (key, what string) {
	if p.Query == "" {
		return "", ""
	}
	return p.leaseKey(""), "the same outbox, from one saved cursor"
}

// leaseKey names the source's lease on route.
func (p *postgresSource) leaseKey(route string) string {
	what := "channel " + p.Channel
	if p.Query != "" {
		what = "query " + p.Query + "\x00" + strings.Join(p.Cursor, "\x00")
	}
	return leaseKey(route, "postgres", p.db, what)
}

// PerStream is false: one connection serves the whole route, each
// message finding its stream by its subject.
func (p *postgresSource) PerStream() bool { return false }

// Feed reads until ctx ends, on one replica at a time.
func (p *postgresSource) Feed(ctx context.Context, env FeedEnv) {
	env.Log = env.Log.With().Str("database", p.db).Str("channel", p.Channel).Logger()
	handle := publishMapped(env, &p.Mapping, &p.routing)
	hold(ctx, env, p.leaseKey(env.Route), func() Reader {
		if p.Query != "" {
			return &outboxReader{p: p, cursor: p.Start}
		}
		return &listenReader{p: p}
	}, handle)
}

// connect connects and listens on the source's channel, if it has one.
func (p *postgresSource) connect(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, p.config)
	if err != nil {
		return nil, redactPG(err)
	}
	if p.Channel != "" {
		if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{p.Channel}.Sanitize()); err != nil {
			closePG(conn)
			return nil, fmt.Errorf("LISTEN: %w", err)
		}
	}
	return conn, nil
}

// redactPG keeps the password out of a connect error.
func redactPG(err error) error {
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return fmt.Errorf("connect to %s:%d: %w", ce.Config.Host, ce.Config.Port, ce.Unwrap())
	}
	return err
}

func closePG(conn *pgx.Conn) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return conn.Close(ctx)
}

// listenReader emits each notification of a channel. What is notified
// while it is not connected is lost: PostgreSQL keeps nothing for a
// listener that is not there (the outbox is the exact alternative).
type listenReader struct {
	p    *postgresSource
	conn *pgx.Conn
}

func (r *listenReader) Connect(ctx context.Context) (err error) {
	r.conn, err = r.p.connect(ctx)
	return err
}

// Read waits for the next notification; after keepalive of silence it
// checks the connection with a ping.
func (r *listenReader) Read(ctx context.Context) (Batch, error) {
	for {
		wctx, cancel := context.WithTimeout(ctx, r.p.Keepalive)
		n, err := r.conn.WaitForNotification(wctx)
		cancel()
		if err == nil {
			return Batch{Messages: []Message{{Subject: n.Channel, Body: []byte(n.Payload)}}}, nil
		}
		if ctx.Err() != nil || !errors.Is(wctx.Err(), context.DeadlineExceeded) || r.conn.IsClosed() {
			return Batch{}, err
		}
		pctx, cancel := context.WithTimeout(ctx, min(r.p.Keepalive, queryTimeout))
		err = r.conn.Ping(pctx)
		cancel()
		if err != nil {
			return Batch{}, fmt.Errorf("check the connection after %v of silence (keepalive): %w", r.p.Keepalive, err)
		}
	}
}

func (r *listenReader) Close() error {
	if r.conn == nil {
		return nil
	}
	err := closePG(r.conn)
	r.conn = nil
	return err
}

// outboxReader emits the rows of an outbox query after its cursor, in
// cursor order: it runs the query until it finds nothing new, then waits
// for a notification or the interval.
type outboxReader struct {
	p       *postgresSource
	conn    *pgx.Conn
	cursor  []string // the last row handed on, or Start
	changed bool     // cursor, since progress was last taken
	more    bool     // run the query again at once
}

var _ progressor = (*outboxReader)(nil)

func (r *outboxReader) progress() []byte {
	if !r.changed {
		return nil
	}
	r.changed = false
	b, err := json.Marshal(r.cursor)
	if err != nil {
		panic(err) // strings always encode
	}
	return b
}

func (r *outboxReader) resume(b []byte) error {
	var cursor []string
	if err := json.Unmarshal(b, &cursor); err != nil {
		return fmt.Errorf("outbox progress: %w", err)
	}
	if len(cursor) != len(r.p.Cursor) {
		return fmt.Errorf("outbox progress has %d cursor values, the cursor %d columns", len(cursor), len(r.p.Cursor))
	}
	r.cursor = cursor
	return nil
}

func (r *outboxReader) Connect(ctx context.Context) (err error) {
	r.conn, err = r.p.connect(ctx)
	// Whatever was written while nobody listened is caught up first.
	r.more = true
	return err
}

func (r *outboxReader) Close() error {
	if r.conn == nil {
		return nil
	}
	err := closePG(r.conn)
	r.conn = nil
	return err
}

// Read returns the next rows; an empty batch when the wait ended without
// a notification and the query found nothing.
func (r *outboxReader) Read(ctx context.Context) (Batch, error) {
	if !r.more {
		if err := r.wait(ctx); err != nil {
			return Batch{}, err
		}
	}
	msgs, last, err := r.query(ctx)
	if err != nil {
		return Batch{}, err
	}
	r.more = len(msgs) > 0
	if len(msgs) == 0 {
		return Batch{}, nil
	}
	if r.p.Channel != "" {
		r.dropNotifications()
	}
	return Batch{Messages: msgs, Commit: func() { r.cursor, r.changed = last, true }}, nil
}

// wait returns on a notification of the channel or after the interval.
func (r *outboxReader) wait(ctx context.Context) error {
	if r.p.Channel == "" {
		if !sleep(ctx, r.p.Interval) {
			return ctx.Err()
		}
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, r.p.Interval)
	defer cancel()
	_, err := r.conn.WaitForNotification(wctx)
	if err != nil && ctx.Err() == nil && errors.Is(wctx.Err(), context.DeadlineExceeded) && !r.conn.IsClosed() {
		err = nil // the interval is up: query anyway
	}
	if err == nil {
		r.dropNotifications()
	}
	return err
}

// dropNotifications forgets the notifications the connection holds: the
// query about to run reads what they announce, and pgx would keep every
// one that arrives during a query, without bound, while a busy outbox
// never waits.
func (r *outboxReader) dropNotifications() {
	done, cancel := context.WithCancel(context.Background())
	cancel()
	// Held ones come first; then a context already done returns at once
	// and leaves the connection as it is.
	for {
		if _, err := r.conn.WaitForNotification(done); err != nil {
			return
		}
	}
}

// query runs the outbox query from the cursor and returns its rows as
// messages, with the cursor's values in the last of them.
func (r *outboxReader) query(ctx context.Context) ([]Message, []string, error) {
	args := make([]any, 0, 1+len(r.cursor))
	// Text results: each value as PostgreSQL writes it, so a numeric or
	// a timestamp reaches msg.row without a detour through Go types. The
	// cursor goes as text too, which the server reads as the type it
	// compares with.
	args = append(args, pgx.QueryResultFormats{pgx.TextFormatCode})
	for _, v := range r.cursor {
		args = append(args, v)
	}
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	rows, err := r.conn.Query(ctx, r.p.Query, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("outbox query: %w", err)
	}
	defer rows.Close()
	fields := rows.FieldDescriptions()
	cols := make([]int, len(r.p.Cursor))
	for i, name := range r.p.Cursor {
		cols[i] = slices.IndexFunc(fields, func(f pgconn.FieldDescription) bool { return f.Name == name })
		if cols[i] < 0 {
			rows.Close()
			if err := rows.Err(); err != nil {
				// It failed before it described its rows.
				return nil, nil, fmt.Errorf("outbox query: %w", err)
			}
			return nil, nil, fmt.Errorf("outbox query returns no column %q, of its cursor", name)
		}
	}
	var msgs []Message
	last := r.cursor
	for rows.Next() {
		raw := rows.RawValues()
		vals := make([]string, len(cols))
		for i, c := range cols {
			if raw[c] == nil {
				return nil, nil, fmt.Errorf("outbox query returned a row whose cursor column %q is NULL", r.p.Cursor[i])
			}
			vals[i] = string(raw[c])
		}
		row := rowJSON(fields, raw)
		last = vals
		msgs = append(msgs, Message{ID: strings.Join(vals, "-"), Body: row, Record: &Record{Row: row}})
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("outbox query: %w", err)
	}
	return msgs, last, nil
}

// rowJSON encodes a row of text values as a JSON object: numbers and
// booleans as JSON's, json and jsonb as they are, NULL as null, anything
// else as a string. A name repeated keeps its first column.
func rowJSON(fields []pgconn.FieldDescription, raw [][]byte) []byte {
	b := []byte{'{'}
	seen := make(map[string]bool, len(fields))
	for i, f := range fields {
		name := strings.ToValidUTF8(f.Name, "\uFFFD")
		if seen[name] {
			continue
		}
		seen[name] = true
		if len(seen) > 1 {
			b = append(b, ',')
		}
		b, _ = appendJSON(b, name)
		b = append(b, ':')
		v := raw[i]
		switch {
		case v == nil:
			b = append(b, "null"...)
		case f.DataTypeOID == pgtype.BoolOID:
			b = append(b, map[bool]string{true: "true", false: "false"}[string(v) == "t"]...)
		case numericOID(f.DataTypeOID) && json.Valid(v) && v[0] != '"':
			b = append(b, v...)
		case (f.DataTypeOID == pgtype.JSONOID || f.DataTypeOID == pgtype.JSONBOID) && json.Valid(v):
			b = append(b, v...)
		default:
			b, _ = appendJSON(b, strings.ToValidUTF8(string(v), "\uFFFD"))
		}
	}
	return append(b, '}')
}

func numericOID(oid uint32) bool {
	switch oid {
	case pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID, pgtype.Float4OID, pgtype.Float8OID, pgtype.NumericOID, pgtype.OIDOID:
		return true
	}
	return false
}

func appendJSON(b []byte, s string) ([]byte, error) {
	q, err := json.Marshal(s)
	return append(b, q...), err
}
