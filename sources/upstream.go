package sources

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/ssegate/ssegate/sse/sseparse"

	"github.com/ssegate/ssegate/internal/hclattr"
)

// Defaults of a stream block.
const (
	// defaultMaxEvent bounds one upstream event or NDJSON line.
	defaultMaxEvent = 1 << 20
	// defaultIdleTimeout is how long an upstream may send nothing at all,
	// not even a comment, before the connection is taken for dead.
	defaultIdleTimeout = 5 * time.Minute
)

// upstreamSource is a `source "stream"` block: a long-lived GET to an upstream that
// streams SSE or NDJSON, each upstream event re-emitted.
type upstreamSource struct {
	feed
	NDJSON      bool
	MaxEvent    int
	IdleTimeout time.Duration
}

var (
	_ Feeder = (*upstreamSource)(nil)
	_ OwnIDs = (*upstreamSource)(nil)
)

var streamSchema = &hcl.BodySchema{Attributes: append([]hcl.AttributeSchema{
	{Name: "format"}, {Name: "max_event"}, {Name: "idle_timeout"},
}, feedAttrs...)}

func init() { Register("stream", decodeStream) }

func decodeStream(block *hcl.Block, ctx *hcl.EvalContext, rt RouteInfo) (Spec, hcl.Diagnostics) {
	content, diags := block.Body.Content(streamSchema)
	s := &upstreamSource{MaxEvent: defaultMaxEvent, IdleTimeout: defaultIdleTimeout}
	var d hcl.Diagnostics
	s.feed, d = decodeFeed(content, block, ctx, rt)
	diags = append(diags, d...)
	format := "sse"
	diags = append(diags, hclattr.OneOf(content.Attributes, "format", ctx, &format, "sse", "ndjson")...)
	s.NDJSON = format == "ndjson"
	diags = append(diags, hclattr.Int(content.Attributes, "max_event", ctx, &s.MaxEvent, 1)...)
	diags = append(diags, hclattr.Duration(content.Attributes, "idle_timeout", ctx, &s.IdleTimeout, time.Second, false)...)
	return s, diags
}

// OwnIDs reports whether events keep the upstream's SSE ids.
func (s *upstreamSource) OwnIDs() bool { return !s.NDJSON && s.Mapping.ID == nil }

// Feed holds the upstream stream open until ctx ends, reconnecting as
// Run decides.
func (s *upstreamSource) Feed(ctx context.Context, env FeedEnv) {
	s.run(ctx, env, func(url string, h http.Header) Reader {
		return &upstreamReader{s: s, env: env, url: url, header: h}
	})
}

// upstreamReader is one upstream stream, across its reconnects: it keeps
// the id to resume from and the upstream's retry time.
type upstreamReader struct {
	s      *upstreamSource
	env    FeedEnv
	url    string
	header http.Header

	resp   *http.Response
	events *sseparse.Reader
	lines  *bufio.Reader

	resumeID string        // the last id handed on
	prevID   string        // the last id read, to tell new ids from carried ones
	retry    time.Duration // the upstream's retry field, 0 until it sends one
	changed  bool          // resumeID, since progress was last taken
}

var _ progressor = (*upstreamReader)(nil)

// progress is the last id handed on: the next replica to run the stream
// resumes the upstream from it.
func (r *upstreamReader) progress() []byte {
	if !r.changed {
		return nil
	}
	r.changed = false
	return []byte(r.resumeID)
}

func (r *upstreamReader) resume(b []byte) error {
	r.resumeID = string(b)
	return nil
}

func (r *upstreamReader) Connect(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url, nil)
	if err != nil {
		return errors.New("url is not a valid URL") // the parse error would show it
	}
	req.Header = r.header.Clone()
	req.Header.Set("Cache-Control", "no-cache")
	if r.s.NDJSON {
		req.Header.Set("Accept", "application/x-ndjson")
	} else {
		req.Header.Set("Accept", "text/event-stream")
		if r.resumeID != "" {
			req.Header.Set("Last-Event-ID", r.resumeID)
		}
	}
	resp, err := fetch(r.env.HTTP, req)
	if err != nil {
		return r.withRetry(err)
	}
	fail := func(err error) error {
		resp.Body.Close()
		return err
	}
	if resp.StatusCode == http.StatusNoContent {
		// The SSE standard's way for a server to say: do not reconnect.
		return fail(fmt.Errorf("GET: 204 No Content: %w", ErrStop))
	}
	if err := statusError(resp); err != nil {
		return fail(err)
	}
	body := newIdleBody(resp.Body, r.s.IdleTimeout)
	resp.Body = body
	if !r.s.NDJSON {
		if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != "text/event-stream" {
			return fail(fmt.Errorf("GET: Content-Type %q, not text/event-stream", resp.Header.Get("Content-Type")))
		}
		r.events = sseparse.NewReader(body, r.s.MaxEvent)
		r.events.Resume(r.resumeID)
		r.prevID = r.resumeID
	} else {
		r.lines = bufio.NewReaderSize(body, 32<<10)
	}
	r.resp = resp
	r.env.Log.Debug().Str("resume_from", r.resumeID).Msg("upstream stream connected")
	return nil
}

func (r *upstreamReader) Close() error {
	if r.resp == nil {
		return nil
	}
	err := r.resp.Body.Close()
	r.resp, r.events, r.lines = nil, nil, nil
	return err
}

// Read returns the next upstream event, alone: each is committed (its id
// becomes the resume point) as soon as NATS has it.
func (r *upstreamReader) Read(context.Context) (Batch, error) {
	if r.s.NDJSON {
		return r.readLine()
	}
	ev, err := r.events.Next()
	if d, ok := r.events.Retry(); ok {
		r.retry = d
	}
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = errors.New("upstream closed the stream")
		}
		return Batch{}, r.withRetry(err)
	}
	m := Message{Body: []byte(ev.Data)}
	if ev.Type != "message" {
		m.Event = ev.Type
	}
	// An event without an id field carries the previous one's; only a new
	// id names this event, or two events would share it in the history.
	if ev.LastEventID != r.prevID {
		m.ID = ev.LastEventID
	}
	r.prevID = ev.LastEventID
	id := ev.LastEventID
	return Batch{Messages: []Message{m}, Commit: func() { r.resumeID, r.changed = id, r.changed || id != r.resumeID }}, nil
}

func (r *upstreamReader) readLine() (Batch, error) {
	var line []byte
	for {
		chunk, err := r.lines.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > r.s.MaxEvent {
			return Batch{}, fmt.Errorf("NDJSON line longer than max_event (%d bytes)", r.s.MaxEvent)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				// A last line without its newline may be cut short: dropped.
				err = errors.New("upstream closed the stream")
			}
			return Batch{}, r.withRetry(err)
		}
		if trimmed := bytes.TrimSpace(line); len(trimmed) > 0 {
			return Batch{Messages: []Message{{Body: trimmed}}}, nil
		}
		line = line[:0]
	}
}

// withRetry makes the upstream's retry time the least wait before the
// next attempt.
func (r *upstreamReader) withRetry(err error) error {
	if r.retry > 0 {
		return &RetryAfter{Err: err, After: r.retry}
	}
	return err
}

// idleBody closes a response body that has sent nothing for a while, so a
// silent upstream (a dead peer TCP has not noticed, a stuck proxy) ends in
// an error the runner retries, instead of a read that never returns.
type idleBody struct {
	io.ReadCloser
	idle  time.Duration
	timer *time.Timer
	fired atomic.Bool
}

func newIdleBody(rc io.ReadCloser, idle time.Duration) *idleBody {
	b := &idleBody{ReadCloser: rc, idle: idle}
	b.timer = time.AfterFunc(idle, func() {
		b.fired.Store(true)
		rc.Close()
	})
	return b
}

func (b *idleBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 {
		b.timer.Reset(b.idle)
	}
	if err != nil && b.fired.Load() {
		err = fmt.Errorf("upstream sent nothing for %v (idle_timeout)", b.idle)
	}
	return n, err
}

func (b *idleBody) Close() error {
	b.timer.Stop()
	return b.ReadCloser.Close()
}
