package sources

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/redis/go-redis/v9"

	"github.com/ssegate/ssegate/internal/hclattr"
)

// Defaults of a redis block.
const (
	defaultRedisCount     = 500
	defaultRedisBlock     = 10 * time.Second
	defaultRedisClaimIdle = time.Minute
	defaultRedisStart     = "0"
	// defaultRedisKeepalive is how long a subscription may hear nothing
	// before it pings: a connection a NAT or load balancer dropped in
	// silence would otherwise look alive for as long as TCP's keepalive
	// takes to notice.
	defaultRedisKeepalive = 30 * time.Second
)

// redisSource is a `source "redis" { ... }` block: the messages of a
// pub/sub channel or pattern, or the entries of a stream, read from the
// last id handed on or as a member of a consumer group.
type redisSource struct {
	relayed
	routing
	Mapping        Mapping
	options        *redis.Options
	server         string // address and database: what names the lease
	Channel        string
	ChannelPattern string
	Stream         string
	// With a group, the entries are shared among its consumers (one per
	// replica) and acknowledged once NATS has them; without, one replica
	// at a time reads the stream from the last id handed on, or Start.
	Group     string
	Consumer  string
	Start     string
	Count     int
	ClaimIdle time.Duration
	Keepalive time.Duration // pub/sub: silence before a ping
}

var (
	_ Feeder     = (*redisSource)(nil)
	_ OwnIDs     = (*redisSource)(nil)
	_ Positioned = (*redisSource)(nil)
)

var redisSchema = &hcl.BodySchema{Attributes: append([]hcl.AttributeSchema{
	{Name: "url", Required: true}, {Name: "channel"}, {Name: "pattern"}, {Name: "stream"},
	{Name: "group"}, {Name: "consumer"}, {Name: "start"}, {Name: "count"}, {Name: "claim_idle"}, {Name: "keepalive"},
	{Name: "subject"},
}, mappingAttrs...)}

func init() { Register("redis", decodeRedis) }

func decodeRedis(block *hcl.Block, ctx *hcl.EvalContext, rt RouteInfo) (Spec, hcl.Diagnostics) {
	content, diags := block.Body.Content(redisSchema)
	a := content.Attributes
	r := &redisSource{relayed: relayed{block.DefRange}, Start: defaultRedisStart, Count: defaultRedisCount, ClaimIdle: defaultRedisClaimIdle, Keepalive: defaultRedisKeepalive}
	r.Consumer, _ = os.Hostname()
	var url string
	diags = append(diags, hclattr.String(a, "url", ctx, &url)...)
	for _, x := range []struct {
		name string
		dst  *string
	}{{"channel", &r.Channel}, {"pattern", &r.ChannelPattern}, {"stream", &r.Stream}, {"group", &r.Group}, {"consumer", &r.Consumer}, {"start", &r.Start}} {
		diags = append(diags, hclattr.String(a, x.name, ctx, x.dst)...)
	}
	diags = append(diags, hclattr.Int(a, "count", ctx, &r.Count, 1)...)
	diags = append(diags, hclattr.Duration(a, "claim_idle", ctx, &r.ClaimIdle, time.Second, false)...)
	diags = append(diags, hclattr.Duration(a, "keepalive", ctx, &r.Keepalive, 10*time.Millisecond, false)...)
	if diags.HasErrors() {
		return r, diags
	}
	opts, err := redis.ParseURL(url)
	if err != nil {
		// The error may quote the URL, password and all.
		return r, hclattr.Errorf(a["url"].Expr.Range(), "Invalid url", "url is not a Redis URL, like \"redis://:password@host:6379/0\" (rediss:// for TLS).")
	}
	r.options = opts
	r.server = fmt.Sprintf("%s/%d", opts.Addr, opts.DB)
	set := 0
	for _, v := range []string{r.Channel, r.ChannelPattern, r.Stream} {
		if v != "" {
			set++
		}
	}
	switch {
	case set != 1:
		diags = append(diags, hclattr.Errorf(block.DefRange, "Nothing to read", "A redis source reads one of: channel = \"news\" (pub/sub), pattern = \"news.*\" (pub/sub by pattern), stream = \"events\" (a stream).")...)
	case r.Stream != "" && a["keepalive"] != nil:
		diags = append(diags, hclattr.Errorf(a["keepalive"].Expr.Range(), "Keepalive on a stream", "keepalive belongs to pub/sub; a stream's reads come back at least every 10 s.")...)
	case r.Stream == "" && (a["group"] != nil || a["consumer"] != nil || a["start"] != nil || a["count"] != nil || a["claim_idle"] != nil):
		diags = append(diags, hclattr.Errorf(block.DefRange, "Stream settings without a stream", "group, consumer, start, count and claim_idle belong to a stream; pub/sub emits each message as it comes.")...)
	case r.Group == "" && (a["consumer"] != nil || a["claim_idle"] != nil):
		diags = append(diags, hclattr.Errorf(block.DefRange, "Group settings without a group", "consumer and claim_idle belong to a consumer group (group = \"ssegate\").")...)
	case r.Group != "" && r.Consumer == "":
		diags = append(diags, hclattr.Errorf(block.DefRange, "Missing consumer", "This machine has no host name to name its consumer in group %q: set consumer, one name per replica that stays the same across its restarts.", r.Group)...)
	}
	var extra []msgField
	if r.Stream != "" {
		extra = []msgField{fieldFields}
	}
	var d hcl.Diagnostics
	r.routing, d = decodeRouting(a, block, ctx, rt, "redis", msgAttrNames(extra...), "news.${msg.fields.topic}")
	diags = append(diags, d...)
	r.Mapping, d = decodeMapping(a, ctx, Scope{"msg": msgAttrNames(extra...)})
	return r, append(diags, d...)
}

// OwnIDs reports whether events keep the ids the source gives them.
func (r *redisSource) OwnIDs() bool { return r.Stream != "" && r.Mapping.ID == nil }

// ReadPlace is a stream's saved position, or its group.
func (r *redisSource) ReadPlace() (key, what string) {
	switch {
	case r.Stream == "":
		return "", ""
	case r.Group != "":
		return "redis\x00" + r.server + "\x00" + r.Stream + "\x00" + r.Group, fmt.Sprintf("stream %q as group %q", r.Stream, r.Group)
	}
	return "redis\x00" + r.server + "\x00" + r.Stream, fmt.Sprintf("stream %q from one saved position", r.Stream)
}

// PerStream is false: one connection serves the whole route.
func (r *redisSource) PerStream() bool { return false }

// Feed reads until ctx ends: a group's consumer on every replica, the
// others on one replica at a time.
func (r *redisSource) Feed(ctx context.Context, env FeedEnv) {
	env.Log = env.Log.With().Str("redis", r.server).Logger()
	handle := publishMapped(env, &r.Mapping, &r.routing)
	if r.Group != "" {
		// The group shares the entries out: every replica reads its part.
		env.Lease = nil
	}
	hold(ctx, env, leaseKey(env.Route, "redis", r.server, r.Channel, r.ChannelPattern, r.Stream), func() Reader {
		switch {
		case r.Group != "":
			return &redisGroupReader{r: r}
		case r.Stream != "":
			return &redisStreamReader{r: r, last: r.Start}
		}
		return &redisPubSubReader{r: r}
	}, handle)
}

// redisConn is the client of a reader.
type redisConn struct {
	client *redis.Client
}

func (c *redisConn) open(ctx context.Context, opts *redis.Options) error {
	o := *opts
	o.MaxRetries = -1 // Run retries, with backoff
	c.client = redis.NewClient(&o)
	return c.client.Ping(ctx).Err()
}

// blocking runs fn, a command that may wait in the server, so that it
// ends with ctx: go-redis does not interrupt such a command when its
// context ends, closing the client does (the feed is stopping).
func (c *redisConn) blocking(ctx context.Context, fn func() error) error {
	client := c.client
	stop := context.AfterFunc(ctx, func() { client.Close() })
	defer stop()
	return fn()
}

func (c *redisConn) Close() error {
	if c.client == nil {
		return nil
	}
	err := c.client.Close()
	c.client = nil
	if errors.Is(err, redis.ErrClosed) {
		err = nil
	}
	return err
}

// redisPubSubReader emits the messages of a channel or pattern. Redis
// keeps nothing for a subscriber that is not there: what is published
// while it reconnects is lost (a stream is the exact alternative).
type redisPubSubReader struct {
	redisConn
	r  *redisSource
	ps *redis.PubSub
}

func (p *redisPubSubReader) Connect(ctx context.Context) error {
	if err := p.open(ctx, p.r.options); err != nil {
		return err
	}
	if p.r.ChannelPattern != "" {
		p.ps = p.client.PSubscribe(ctx, p.r.ChannelPattern)
	} else {
		p.ps = p.client.Subscribe(ctx, p.r.Channel)
	}
	// The subscription stands once Redis confirms it.
	return p.blocking(ctx, func() error {
		_, err := p.ps.Receive(ctx)
		return err
	})
}

// Read waits for the next message; after keepalive of silence it pings,
// and a ping unanswered for as long fails the connection.
func (p *redisPubSubReader) Read(ctx context.Context) (Batch, error) {
	pinged := false
	for {
		var m any
		err := p.blocking(ctx, func() (err error) {
			m, err = p.ps.ReceiveTimeout(ctx, p.r.Keepalive)
			return err
		})
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil {
			if pinged {
				return Batch{}, fmt.Errorf("no answer to a ping within %v (keepalive)", p.r.Keepalive)
			}
			if err := p.ps.Ping(ctx); err != nil {
				return Batch{}, fmt.Errorf("ping: %w", err)
			}
			pinged = true
			continue
		}
		if err != nil {
			return Batch{}, err
		}
		pinged = false
		if msg, ok := m.(*redis.Message); ok {
			return Batch{Messages: []Message{{Subject: msg.Channel, Body: []byte(msg.Payload)}}}, nil
		}
	}
}

func (p *redisPubSubReader) Close() error {
	if p.ps != nil {
		p.ps.Close()
		p.ps = nil
	}
	return p.redisConn.Close()
}

// redisStreamReader reads a stream from the last id handed on.
type redisStreamReader struct {
	redisConn
	r       *redisSource
	last    string
	changed bool
}

var _ progressor = (*redisStreamReader)(nil)

func (s *redisStreamReader) progress() []byte {
	if !s.changed {
		return nil
	}
	s.changed = false
	return []byte(s.last)
}

func (s *redisStreamReader) resume(b []byte) error {
	s.last = string(b)
	return nil
}

func (s *redisStreamReader) Connect(ctx context.Context) error { return s.open(ctx, s.r.options) }

// Read waits up to defaultRedisBlock for entries after the last one; an
// empty batch when none came.
func (s *redisStreamReader) Read(ctx context.Context) (Batch, error) {
	var res []redis.XStream
	err := s.blocking(ctx, func() (err error) {
		res, err = s.client.XRead(ctx, &redis.XReadArgs{Streams: []string{s.r.Stream, s.last}, Count: int64(s.r.Count), Block: defaultRedisBlock}).Result()
		return err
	})
	if errors.Is(err, redis.Nil) {
		return Batch{}, nil
	}
	if err != nil {
		return Batch{}, fmt.Errorf("XREAD: %w", err)
	}
	msgs, ids := s.r.entries(res)
	if len(ids) == 0 {
		return Batch{}, nil
	}
	last := ids[len(ids)-1]
	return Batch{Messages: msgs, Commit: func() { s.last, s.changed = last, true }}, nil
}

// entries are the messages of what XREAD or XREADGROUP returned, and the
// ids of every entry read: the entry id is the event's id, its fields
// are msg.fields and, as a JSON object, the body. An entry deleted or
// trimmed since it was read into a group's pending list comes back
// without fields: it has nothing to send, only to acknowledge.
func (r *redisSource) entries(res []redis.XStream) (msgs []Message, ids []string) {
	for _, st := range res {
		for _, e := range st.Messages {
			ids = append(ids, e.ID)
			if e.Values != nil {
				msgs = append(msgs, r.entry(e))
			}
		}
	}
	return msgs, ids
}

func (r *redisSource) entry(e redis.XMessage) Message {
	fields := make(map[string]string, len(e.Values))
	for k, v := range e.Values {
		fields[k] = fmt.Sprint(v)
	}
	body, err := json.Marshal(fields)
	if err != nil {
		panic(err) // strings always encode
	}
	return Message{Subject: r.Stream, ID: e.ID, Body: body, Record: &Record{Fields: fields}}
}

// redisGroupReader reads a stream as a consumer of a group, and
// acknowledges each entry once NATS has it. It starts with the entries
// it read and did not acknowledge before (a restart), and takes over
// those another consumer left pending longer than claim_idle (a replica
// that is gone).
type redisGroupReader struct {
	redisConn
	r         *redisSource
	ownNext   string    // after which its own pending entries are read; "" once done
	claimNext string    // where the next XAUTOCLAIM starts
	claimAt   time.Time // when it is due
	ackErr    error     // the last XACK's failure, told by the next Read
}

func (g *redisGroupReader) Connect(ctx context.Context) error {
	if err := g.open(ctx, g.r.options); err != nil {
		return err
	}
	err := g.client.XGroupCreateMkStream(ctx, g.r.Stream, g.r.Group, g.r.Start).Err()
	if err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		return fmt.Errorf("XGROUP CREATE: %w", err)
	}
	g.ownNext, g.claimNext, g.claimAt, g.ackErr = "0", "0-0", time.Time{}, nil
	return nil
}

func (g *redisGroupReader) Read(ctx context.Context) (Batch, error) {
	if err := g.ackErr; err != nil {
		// Reconnected, it reads its pending entries again: none is lost,
		// and their ids make the repeats one event.
		return Batch{}, fmt.Errorf("XACK: %w", err)
	}
	r := g.r
	var msgs []Message
	var ids []string
	switch {
	case g.ownNext != "":
		// Block -1 sends no BLOCK: Redis answers at once for an explicit
		// id, and the client's read timeout applies.
		var res []redis.XStream
		err := g.blocking(ctx, func() (err error) {
			res, err = g.client.XReadGroup(ctx, &redis.XReadGroupArgs{Group: r.Group, Consumer: r.Consumer, Streams: []string{r.Stream, g.ownNext}, Count: int64(r.Count), Block: -1}).Result()
			return err
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return Batch{}, fmt.Errorf("XREADGROUP: %w", err)
		}
		msgs, ids = r.entries(res)
		g.ownNext = ""
		if len(ids) > 0 {
			g.ownNext = ids[len(ids)-1]
		}
	case time.Now().After(g.claimAt):
		var entries []redis.XMessage
		var next string
		err := g.blocking(ctx, func() (err error) {
			entries, next, err = g.client.XAutoClaim(ctx, &redis.XAutoClaimArgs{Stream: r.Stream, Group: r.Group, Consumer: r.Consumer, MinIdle: r.ClaimIdle, Start: g.claimNext, Count: int64(r.Count)}).Result()
			return err
		})
		if err != nil {
			return Batch{}, fmt.Errorf("XAUTOCLAIM: %w", err)
		}
		msgs, ids = r.entries([]redis.XStream{{Messages: entries}})
		g.claimNext = next
		if next == "0-0" {
			g.claimAt = time.Now().Add(r.ClaimIdle)
		}
	default:
		var res []redis.XStream
		err := g.blocking(ctx, func() (err error) {
			res, err = g.client.XReadGroup(ctx, &redis.XReadGroupArgs{Group: r.Group, Consumer: r.Consumer, Streams: []string{r.Stream, ">"}, Count: int64(r.Count), Block: min(defaultRedisBlock, max(time.Until(g.claimAt), time.Millisecond))}).Result()
			return err
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return Batch{}, fmt.Errorf("XREADGROUP: %w", err)
		}
		msgs, ids = r.entries(res)
	}
	if len(ids) == 0 {
		return Batch{}, nil
	}
	return Batch{Messages: msgs, Commit: func() {
		// Unacknowledged, the entries stay pending: read again by this
		// consumer after a reconnect, or claimed by another.
		actx, cancel := context.WithTimeout(context.Background(), publishTimeout)
		defer cancel()
		g.ackErr = g.client.XAck(actx, r.Stream, r.Group, ids...).Err()
	}}, nil
}
