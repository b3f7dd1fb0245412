package sources

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"time"

	"github.com/hashicorp/hcl/v2"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/ssegate/ssegate/internal/hclattr"
)

// Defaults of a poll block.
const (
	defaultPollInterval = 30 * time.Second
	defaultPollTimeout  = 10 * time.Second
	defaultPollMaxBody  = 10 << 20
	defaultPollMaxKeys  = 10000
)

// pollSource is a `source "poll"` block: an upstream URL fetched every interval,
// each response (or each new item of it) becoming an event.
type pollSource struct {
	feed
	Method   string
	Body     hcl.Expression // request body, or nil
	Interval time.Duration
	Timeout  time.Duration
	Always   bool           // emit = "always": every response, changed or not
	Items    hcl.Expression // selects the array whose elements are events
	Key      hcl.Expression // an item's identity, to emit each item once
	MaxBody  int
	MaxKeys  int
}

var _ Feeder = (*pollSource)(nil)

var pollSchema = &hcl.BodySchema{Attributes: append([]hcl.AttributeSchema{
	{Name: "method"}, {Name: "body"}, {Name: "interval"}, {Name: "timeout"},
	{Name: "emit"}, {Name: "items"}, {Name: "key"}, {Name: "max_body"}, {Name: "max_keys"},
}, feedAttrs...)}

func init() { Register("poll", decodePoll) }

func decodePoll(block *hcl.Block, ctx *hcl.EvalContext, rt RouteInfo) (Spec, hcl.Diagnostics) {
	content, diags := block.Body.Content(pollSchema)
	a := content.Attributes
	p := &pollSource{Method: http.MethodGet, Interval: defaultPollInterval, Timeout: defaultPollTimeout, MaxBody: defaultPollMaxBody, MaxKeys: defaultPollMaxKeys}
	msgScope := Scope{"msg": msgAttrNames(), "path": rt.Params}
	for _, x := range []struct {
		name  string
		dst   *hcl.Expression
		scope Scope
	}{{"body", &p.Body, rt.Scope()}, {"items", &p.Items, msgScope}, {"key", &p.Key, msgScope}} {
		if attr, ok := a[x.name]; ok {
			*x.dst = attr.Expr
			diags = append(diags, x.scope.Check(attr.Expr, ctx)...)
		}
	}
	var d hcl.Diagnostics
	p.feed, d = decodeFeed(content, block, ctx, rt, p.Body, p.Items, p.Key)
	diags = append(diags, d...)
	diags = append(diags, hclattr.String(a, "method", ctx, &p.Method)...)
	diags = append(diags, hclattr.Duration(a, "interval", ctx, &p.Interval, 10*time.Millisecond, false)...)
	diags = append(diags, hclattr.Duration(a, "timeout", ctx, &p.Timeout, time.Millisecond, false)...)
	diags = append(diags, hclattr.Int(a, "max_body", ctx, &p.MaxBody, 1)...)
	diags = append(diags, hclattr.Int(a, "max_keys", ctx, &p.MaxKeys, 1)...)
	emit := "changes"
	diags = append(diags, hclattr.OneOf(a, "emit", ctx, &emit, "changes", "always")...)
	p.Always = emit == "always"
	return p, diags
}

// Feed polls until ctx ends.
func (p *pollSource) Feed(ctx context.Context, env FeedEnv) {
	p.run(ctx, env, func(url string, h http.Header) Reader {
		return &pollReader{p: p, env: env, url: url, header: h, seen: newKeySet(p.MaxKeys)}
	})
}

// pollReader keeps what one poll loop remembers between requests: the
// validators and digest of the last response, and the keys already
// emitted.
type pollReader struct {
	p      *pollSource
	env    FeedEnv
	url    string
	header http.Header
	body   []byte
	due    time.Time

	etag, lastModified string
	digest             [sha256.Size]byte
	seen               *keySet
	changed            bool   // since progress was last taken
	outcome            string // of the poll being made, for FeedEnv.Polled
}

var _ progressor = (*pollReader)(nil)

// maxProgressKeyBytes bounds the keys a poll's progress carries.
const maxProgressKeyBytes = 256 << 10

// pollProgress is what a poll hands to the next replica to run it: enough
// to emit nothing it has emitted already.
type pollProgress struct {
	ETag         string   `json:"etag,omitempty"`
	LastModified string   `json:"last_modified,omitempty"`
	Digest       []byte   `json:"digest,omitempty"`
	Keys         []string `json:"keys,omitempty"` // oldest first
}

func (r *pollReader) progress() []byte {
	if !r.changed {
		return nil
	}
	r.changed = false
	keys := r.seen.list()
	// The newest keys that fit, so the progress stays well within a NATS
	// message; older ones are the least likely to come back.
	size, first := 0, len(keys)
	for first > 0 && size+len(keys[first-1]) <= maxProgressKeyBytes {
		first--
		size += len(keys[first])
	}
	b, err := json.Marshal(pollProgress{ETag: r.etag, LastModified: r.lastModified, Digest: r.digest[:], Keys: keys[first:]})
	if err != nil {
		panic(err) // strings and bytes always encode
	}
	return b
}

func (r *pollReader) resume(b []byte) error {
	var p pollProgress
	if err := json.Unmarshal(b, &p); err != nil {
		return fmt.Errorf("poll progress: %w", err)
	}
	if len(p.Digest) != 0 && len(p.Digest) != sha256.Size {
		return fmt.Errorf("poll progress: digest of %d bytes", len(p.Digest))
	}
	r.etag, r.lastModified = p.ETag, p.LastModified
	copy(r.digest[:], p.Digest)
	for _, k := range p.Keys {
		r.seen.add(k)
	}
	return nil
}

func (r *pollReader) Connect(context.Context) error { return nil }
func (r *pollReader) Close() error                  { return nil }

// Read waits for the next poll and makes it.
func (r *pollReader) Read(ctx context.Context) (Batch, error) {
	if wait := time.Until(r.due); wait > 0 {
		if !sleep(ctx, wait) {
			return Batch{}, ctx.Err()
		}
	}
	// A tenth of jitter keeps routes polling on one interval out of
	// lockstep.
	iv := r.p.Interval
	r.due = time.Now().Add(iv - iv/10 + rand.N(iv/5+1))
	r.outcome = "changed"
	b, err := r.poll(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return b, err // stopped, not failed
		}
		r.outcome = "error"
	}
	if r.env.Polled != nil {
		r.env.Polled(r.outcome)
	}
	return b, err
}

func (r *pollReader) poll(ctx context.Context) (Batch, error) {
	ctx, cancel := context.WithTimeout(ctx, r.p.Timeout)
	defer cancel()
	req, err := r.request(ctx)
	if err != nil {
		return Batch{}, err
	}
	resp, err := fetch(r.env.HTTP, req)
	if err != nil {
		return Batch{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotModified {
		r.outcome = "not_modified"
		return Batch{}, nil
	}
	if err := statusError(resp); err != nil {
		return Batch{}, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, int64(r.p.MaxBody)+1))
	if err != nil {
		return Batch{}, fmt.Errorf("%s: read body: %w", req.Method, err)
	}
	if len(body) > r.p.MaxBody {
		return Batch{}, fmt.Errorf("%s: body larger than max_body (%d bytes)", req.Method, r.p.MaxBody)
	}
	etag, lastModified, digest := resp.Header.Get("ETag"), resp.Header.Get("Last-Modified"), sha256.Sum256(body)
	commit := func(keys []string) func() {
		return func() {
			if r.etag != etag || r.lastModified != lastModified || r.digest != digest || len(keys) > 0 {
				r.changed = true
			}
			r.etag, r.lastModified, r.digest = etag, lastModified, digest
			for _, k := range keys {
				r.seen.add(k)
			}
		}
	}
	if !r.p.Always && digest == r.digest {
		r.outcome = "unchanged"
		return Batch{Commit: commit(nil)}, nil
	}
	msg := Message{Headers: resp.Header, Body: body}
	if r.p.Items == nil {
		return Batch{Messages: []Message{msg}, Commit: commit(nil)}, nil
	}
	msgs, keys, err := r.items(&msg)
	if err != nil {
		return Batch{}, fmt.Errorf("%s: %w", req.Method, err)
	}
	return Batch{Messages: msgs, Commit: commit(keys)}, nil
}

func (r *pollReader) request(ctx context.Context) (*http.Request, error) {
	var body io.Reader
	if r.p.Body != nil {
		if r.body == nil {
			text, _, err := evalText(r.p.Body, r.env.StreamCtx, "body")
			if err != nil {
				return nil, err
			}
			r.body = []byte(text)
		}
		body = bytes.NewReader(r.body)
	}
	req, err := http.NewRequestWithContext(ctx, r.p.Method, r.url, body)
	if err != nil {
		return nil, errors.New("url is not a valid URL") // the parse error would show it
	}
	req.Header = r.header.Clone()
	// Validators only help when an unchanged response emits nothing.
	if !r.p.Always {
		if r.etag != "" {
			req.Header.Set("If-None-Match", r.etag)
		}
		if r.lastModified != "" {
			req.Header.Set("If-Modified-Since", r.lastModified)
		}
	}
	return req, nil
}

// items splits a response into one message per element of the items
// expression, in upstream order, leaving out those whose key was seen.
func (r *pollReader) items(resp *Message) ([]Message, []string, error) {
	ctx := resp.context(r.env.StreamCtx, msgFieldsUsed(r.p.Items))
	list, diags := r.p.Items.Value(ctx)
	if diags.HasErrors() {
		return nil, nil, fmt.Errorf("items expression: %w", diags)
	}
	if list.IsNull() {
		return nil, nil, nil
	}
	if !list.CanIterateElements() || list.Type().IsMapType() || list.Type().IsObjectType() {
		return nil, nil, fmt.Errorf("items expression gave %s, not a list", list.Type().FriendlyName())
	}
	var msgs []Message
	var keys []string
	batch := map[string]bool{}
	for it := list.ElementIterator(); it.Next(); {
		_, item := it.Element()
		body, err := ctyjson.Marshal(item, item.Type())
		if err != nil {
			return nil, nil, fmt.Errorf("items: encode an item as JSON: %w", err)
		}
		m := Message{Headers: resp.Headers, Body: body}
		if r.p.Key != nil {
			key, err := r.key(&m)
			if err != nil {
				return nil, nil, err
			}
			if r.seen.has(key) || batch[key] {
				continue
			}
			batch[key] = true
			keys = append(keys, key)
		}
		msgs = append(msgs, m)
	}
	return msgs, keys, nil
}

func (r *pollReader) key(m *Message) (string, error) {
	ctx := m.context(r.env.StreamCtx, msgFieldsUsed(r.p.Key))
	k, ok, err := evalText(r.p.Key, ctx, "key")
	if err == nil && !ok {
		err = errors.New("key expression is null for an item")
	}
	return k, err
}

// retryAfter reads a Retry-After header, in seconds or as a date; 0 when
// absent or unreadable.
func retryAfter(h http.Header) time.Duration {
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// keySet remembers the latest keys, up to a limit, forgetting the oldest.
type keySet struct {
	set   map[string]struct{}
	order []string // a ring once full
	next  int
	limit int
}

func newKeySet(limit int) *keySet {
	return &keySet{set: make(map[string]struct{}), limit: limit}
}

func (s *keySet) has(k string) bool {
	_, ok := s.set[k]
	return ok
}

// list returns the keys, oldest first.
func (s *keySet) list() []string {
	return append(slices.Clone(s.order[s.next:]), s.order[:s.next]...)
}

func (s *keySet) add(k string) {
	if s.has(k) {
		return
	}
	if len(s.order) < s.limit {
		s.order = append(s.order, k)
	} else {
		delete(s.set, s.order[s.next])
		s.order[s.next] = k
		s.next = (s.next + 1) % len(s.order)
	}
	s.set[k] = struct{}{}
}
