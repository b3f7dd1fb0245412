package sources

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
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
	defaultOutboxMaxRows        = 1000
	defaultPostgresConnect      = 10 * time.Second
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
	// The outbox: Query selects the rows after $1, the Cursor column of
	// the last row emitted, in Cursor order; Start is $1 before any row.
	Query    string
	Cursor   string
	Start    string
	Interval time.Duration
	MaxRows  int
}

var _ Feeder = (*postgresSource)(nil)

var postgresSchema = &hcl.BodySchema{Attributes: append([]hcl.AttributeSchema{
	{Name: "dsn", Required: true}, {Name: "channel"}, {Name: "query"}, {Name: "cursor"},
	{Name: "start"}, {Name: "interval"}, {Name: "max_rows"}, {Name: "subject"},
}, mappingAttrs...)}

func init() { Register("postgres", decodePostgres) }

func decodePostgres(block *hcl.Block, ctx *hcl.EvalContext, rt RouteInfo) (Spec, hcl.Diagnostics) {
	content, diags := block.Body.Content(postgresSchema)
	a := content.Attributes
	p := &postgresSource{relayed: relayed{block.DefRange}, Start: "0", MaxRows: defaultOutboxMaxRows}
	var dsn string
	diags = append(diags, hclattr.String(a, "dsn", ctx, &dsn)...)
	diags = append(diags, hclattr.String(a, "channel", ctx, &p.Channel)...)
	diags = append(diags, hclattr.String(a, "query", ctx, &p.Query)...)
	diags = append(diags, hclattr.String(a, "cursor", ctx, &p.Cursor)...)
	diags = append(diags, hclattr.String(a, "start", ctx, &p.Start)...)
	diags = append(diags, hclattr.Int(a, "max_rows", ctx, &p.MaxRows, 1)...)
	p.Interval = defaultOutboxInterval
	if p.Channel != "" {
		p.Interval = defaultOutboxNotifyInterval
	}
	diags = append(diags, hclattr.Duration(a, "interval", ctx, &p.Interval, 10*time.Millisecond, false)...)
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
	case p.Query != "" && p.Cursor == "":
		diags = append(diags, hclattr.Errorf(a["query"].Expr.Range(), "Missing cursor", "An outbox query needs cursor, the column its rows are ordered by and $1 is compared with, like cursor = \"id\": its value in the last row emitted is where the next query starts.")...)
	case p.Query != "" && !strings.Contains(p.Query, "$1"):
		diags = append(diags, hclattr.Errorf(a["query"].Expr.Range(), "Query without $1", "An outbox query selects the rows after the cursor's last value, $1, in cursor order: WHERE id > $1 ORDER BY id LIMIT 500.")...)
	case p.Query == "" && (a["cursor"] != nil || a["start"] != nil || a["max_rows"] != nil):
		diags = append(diags, hclattr.Errorf(block.DefRange, "Cursor without a query", "cursor, start and max_rows belong to an outbox query; a source with only a channel emits each notification as it comes.")...)
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

// PerStream is false: one connection serves the whole route, each
// message finding its stream by its subject.
func (p *postgresSource) PerStream() bool { return false }

// Feed reads until ctx ends, on one replica at a time.
func (p *postgresSource) Feed(ctx context.Context, env FeedEnv) {
	what := "channel " + p.Channel
	if p.Query != "" {
		what = "query " + p.Query + "\x00" + p.Cursor
	}
	env.Log = env.Log.With().Str("database", p.db).Str("channel", p.Channel).Logger()
	handle := publishMapped(env, &p.Mapping, func(m *Message) (string, error) { return p.subjectOf(env.StreamCtx, m) })
	hold(ctx, env, durableKey(env.Route, "postgres", p.db, what), func() Reader {
		if p.Query != "" {
			return &outboxReader{p: p, cursor: p.Start}
		}
		return &listenReader{p: p}
	}, handle)
}

// durableKey names the lease of a source whose progress outlives its
// route's text: an outbox cursor or a stream id stays valid when the
// mapping changes, and starting over would send a table again.
func durableKey(route string, parts ...string) string {
	sum := sha256.Sum256([]byte(route + "\x00" + strings.Join(parts, "\x00")))
	return "feed." + hex.EncodeToString(sum[:16])
}

// pgConnect connects and listens on the source's channel, if it has one.
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

func (r *listenReader) Read(ctx context.Context) (Batch, error) {
	n, err := r.conn.WaitForNotification(ctx)
	if err != nil {
		return Batch{}, err
	}
	return Batch{Messages: []Message{{Subject: n.Channel, Body: []byte(n.Payload)}}}, nil
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
	cursor  string // the last row handed on, or Start
	changed bool   // cursor, since progress was last taken
	more    bool   // run the query again at once
}

var _ progressor = (*outboxReader)(nil)

func (r *outboxReader) progress() []byte {
	if !r.changed {
		return nil
	}
	r.changed = false
	return []byte(r.cursor)
}

func (r *outboxReader) resume(b []byte) error {
	r.cursor = string(b)
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
		return nil // the interval is up: query anyway
	}
	return err
}

// query runs the outbox query from the cursor and returns its rows as
// messages, with the cursor's value in the last of them.
func (r *outboxReader) query(ctx context.Context) ([]Message, string, error) {
	// Text results: each value as PostgreSQL writes it, so a numeric or
	// a timestamp reaches msg.row without a detour through Go types.
	rows, err := r.conn.Query(ctx, r.p.Query, pgx.QueryResultFormats{pgx.TextFormatCode}, r.cursor)
	if err != nil {
		return nil, "", fmt.Errorf("outbox query: %w", err)
	}
	defer rows.Close()
	fields := rows.FieldDescriptions()
	if fields == nil {
		// The query failed before it described its rows.
		rows.Close()
		return nil, "", fmt.Errorf("outbox query: %w", rows.Err())
	}
	col := -1
	for i, f := range fields {
		if f.Name == r.p.Cursor {
			col = i
			break
		}
	}
	if col < 0 {
		return nil, "", fmt.Errorf("outbox query returns no column %q, its cursor", r.p.Cursor)
	}
	var msgs []Message
	last := r.cursor
	// max_rows bounds the memory of one query, whatever its LIMIT: the
	// rest comes with the next one, from the cursor.
	for len(msgs) < r.p.MaxRows && rows.Next() {
		raw := rows.RawValues()
		if raw[col] == nil {
			return nil, "", fmt.Errorf("outbox query returned a row whose cursor %q is NULL", r.p.Cursor)
		}
		row := rowJSON(fields, raw)
		last = string(raw[col])
		msgs = append(msgs, Message{ID: last, Body: row, Record: &Record{Row: row}})
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("outbox query: %w", err)
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
