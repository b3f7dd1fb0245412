package proxy

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/ssegate/ssegate/proxy/config"
	"github.com/ssegate/ssegate/proxy/natsconn"
	"github.com/ssegate/ssegate/sse"
)

// stream is a route with its path parameters filled in: one history, one
// set of clients and one NATS subscription per source, however many
// clients watch it. Each event is encoded once and the same bytes go to
// every client.
type stream struct {
	key    string
	route  *config.Route
	params []string // the values of the route's path parameters
	m      *routeMetrics
	// parts are what each source reads for each topic of this stream;
	// funcs has the config's functions, for the per-message expressions,
	// whose contexts (one per topic, and one without) mapVars makes with
	// the first message.
	parts  []part
	topics []string
	funcs  *hcl.EvalContext
	mapCtx []atomic.Pointer[hcl.EvalContext]
	logs   *streamLogs
	pinned bool   // never freed: a route without parameters
	fanIn  *fanIn // where subs are read
	subs   []*reading
	ready  chan struct{} // closed once NATS has confirmed subs

	feeds streamFeeds // the runs of the sources fetching for it, shared

	presence       string            // where its joins and leaves are published, or ""
	presenceParams map[string]string // its path values by name, for those

	conns *natsconn.Conns // the NATS connection in use
	// With a JetStream history, the route's reader, which replaces subs
	// and names the JetStream stream.
	reader *jsReader

	mu      sync.Mutex
	clients []*Client
	history history
	epoch   string
	seq     uint64
	gen     uint64 // bumped on every join and leave, to void stale linger timers
	lastSeq uint64 // JetStream history: the last sequence handed out
	linger  *time.Timer
	closed  bool
	dropped bool // out of the Server's streams: never listed idle again

	// On the Server's list of idle streams while it has no client; the
	// fields are the list's, guarded by its lock.
	idle               *idleStreams
	idlePrev, idleNext *stream
	idleListed         bool
}

// streamLogs are the Server's loggers, shared by its streams, which add
// their route and parameters to each line: made once per stream, a
// logger with that context cost more than the rest of a lingering stream.
type streamLogs struct {
	log  zerolog.Logger
	warn zerolog.Logger // sampled: bad messages can come by the thousand
}

// about adds the stream to a log event (nil, at no cost, when its level
// or sampler drops it).
func (st *stream) about(e *zerolog.Event) *zerolog.Event {
	return e.Str("route", st.route.Path).Strs("params", st.params)
}

func (st *stream) debug() *zerolog.Event { return st.about(st.logs.log.Debug()) }

func (st *stream) warn() *zerolog.Event { return st.about(st.logs.log.Warn()) }

// sampledWarn is for what can repeat per message.
func (st *stream) sampledWarn() *zerolog.Event { return st.about(st.logs.warn.Warn()) }

// subscribe reads the route's sources, through the route's JetStream
// reader when its history is there, else with one subscription per
// source.
func (st *stream) subscribe(conns *natsconn.Conns, reader *jsReader) error {
	st.conns = conns
	var err error
	if reader != nil {
		err = st.subscribeJetStream(reader)
	} else {
		err = st.subscribeCore(conns.Conn())
	}
	if err != nil {
		st.unsubscribe()
		return err
	}
	return nil
}

// end closes the stream: each client gets what is queued for it and then
// frame, and the stream takes no more clients or events; why is for the
// log. The caller has taken it out of the Server's streams, and
// unsubscribes it.
func (st *stream) end(frame []byte, why string) {
	st.stopLinger()
	st.mu.Lock()
	st.closed = true
	// Nobody joins or resumes here any more; the clients still writing
	// their last frames need no history.
	st.history = newHistory(0)
	clients := slices.Clone(st.clients)
	st.mu.Unlock()
	for _, c := range clients {
		c.finish(frame, 0, why)
	}
}

// empty reports whether the stream has no client.
func (st *stream) empty() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.clients) == 0
}

// hurry makes the writes to every client of the stream fail at once.
func (st *stream) hurry() {
	st.mu.Lock()
	clients := slices.Clone(st.clients)
	st.mu.Unlock()
	for _, c := range clients {
		c.hurry()
	}
}

// subscribeCore subscribes to each source's subject.
func (st *stream) subscribeCore(nc *nats.Conn) error {
	var subs []*reading
	defer func() {
		st.mu.Lock()
		st.subs = append(st.subs, subs...)
		st.mu.Unlock()
	}()
	for _, p := range st.parts {
		subject := p.subject
		received := st.m.received[p.source]
		sub, err := st.fanIn.subscribe(nc, st.shardKey(), subject, func(m *nats.Msg) {
			received.Inc()
			ev, err := st.eventOf(p, m)
			if err != nil {
				st.reject(err)
				return
			}
			st.deliver(ev, 0, st.conflationKey(p, m))
		}, st.lostMessages)
		if err != nil {
			return fmt.Errorf("subscribe to %q: %w", subject, err)
		}
		subs = append(subs, sub)
	}
	return nil
}

// shardKey is what the stream's subscriptions are made under. The
// streams of one route and path values share it when clients pick
// topics, so that overlapping sets share their subscriptions, and each
// still sees its messages in the order they came, across its topics.
func (st *stream) shardKey() string {
	if st.topics == nil {
		return st.key
	}
	return st.route.Path + "\x00" + strings.Join(st.params, "\x00")
}

// mapVars is the context of the per-message expressions (event, id,
// data) for topic t (-1: none): the functions, path and topic, never
// auth, which they cannot read. It is made with the first message: most
// streams of a per-user route are idle, and it is the largest part of
// one.
func (st *stream) mapVars(t int) *hcl.EvalContext {
	slot := &st.mapCtx[t+1]
	if ctx := slot.Load(); ctx != nil {
		return ctx
	}
	ctx := pathVars(st.funcs, st.route, st.params)
	if t >= 0 {
		ctx = withTopic(ctx, st.topics[t])
	}
	slot.CompareAndSwap(nil, ctx)
	return slot.Load()
}

// resubscribe makes the stream's core subscriptions again on nc, which
// replaced the connection they were made on.
func (st *stream) resubscribe(nc *nats.Conn) error {
	st.mu.Lock()
	old, closed := st.subs, st.closed
	st.subs = nil
	st.mu.Unlock()
	// On the closed connection this does nothing; on a live one (a
	// stream that opened after the replacement) it must not leak.
	st.dropSubs(old)
	if closed {
		return nil
	}
	if err := st.subscribeCore(nc); err != nil {
		return err
	}
	// Freed meanwhile: its unsubscribe may have missed the new ones.
	if st.isClosed() {
		st.unsubscribe()
	}
	return nil
}

func (st *stream) isClosed() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.closed
}

// gap tells the stream's clients that events may have been missed (NATS
// was away, and keeps nothing for a core subscriber), and forgets the
// history: a resume from before the gap cannot be made whole. A client
// that joined at the connection's epoch of the gap, or later, came once
// NATS was back and missed nothing: it is not told.
func (st *stream) gap(epoch uint64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		return
	}
	frame := st.resetFrame(st.history.lastID())
	st.history = newHistory(st.route.History)
	st.history.evicted = true
	for _, c := range st.clients {
		if c.epoch < epoch {
			st.m.reset.Inc()
			c.push(frame)
		}
	}
}

// lostMessages is a gap every client of the stream may have had: NATS
// dropped messages of a subscription that did not keep up.
func (st *stream) lostMessages() { st.gap(math.MaxUint64) }

// unsubscribe stops the sources and the subscriptions.
func (st *stream) unsubscribe() {
	st.feeds.halt()
	st.mu.Lock()
	subs := st.subs
	st.subs = nil
	st.mu.Unlock()
	if st.reader != nil {
		st.reader.remove(st)
	}
	st.dropSubs(subs)
}

// dropSubs stops handing on the messages of subs, unsubscribing those no
// other stream reads.
func (st *stream) dropSubs(subs []*reading) {
	for _, r := range subs {
		if err := st.fanIn.forget(r); err != nil {
			st.warn().Err(err).Str("subject", r.s.key.subject).Msg("unsubscribe")
		}
	}
}

func (st *stream) reject(err error) {
	st.m.rejected.Inc()
	st.sampledWarn().Err(err).Msg("message dropped")
}

// deliver records e and queues it for every client, core NATS and
// JetStream deliveries alike. seq is the JetStream sequence e was stored
// at, 0 for core NATS; key is its conflation key (conflationKey), for
// clients that conflate. It runs on a subscription's goroutine and never blocks
// on a client.
func (st *stream) deliver(e sse.Event, seq uint64, key string) {
	yieldToWriters(st.record(e, seq, key))
}

// record gives e its id, encodes it once and queues the same bytes for
// every client; it reports whether a client's queue is half full. From
// JetStream the id is the sequence, alike on every replica, and the
// history is the JetStream stream; from core NATS it is e's own or one
// the stream assigns, and the history is kept here.
func (st *stream) record(e sse.Event, seq uint64, key string) (pressed bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.closed {
		return false
	}
	var frame []byte
	if seq > 0 {
		if seq <= st.lastSeq {
			return false
		}
		st.lastSeq = seq
		frame = storedFrame(e, seq)
	} else {
		id, has := e.ID()
		// An id names one event: the same one again is a copy (a
		// publisher's retry, or the same poll done by several replicas),
		// and would make resuming from that id ambiguous.
		if has && st.history.has(id) {
			return false
		}
		st.seq++
		if !has {
			id = assignID(st.epoch, st.seq)
			e, _ = e.WithID(id) // assigned ids are plain ASCII
		}
		frame = e.Encode()
		st.history.add(id, frame)
	}
	for _, c := range st.clients {
		if seq > 0 && seq <= c.skipThrough {
			continue // resumed past it: see Client.skipThrough
		}
		// A client that overflows is dropped inside push.
		_, p := c.pushKeyed(frame, key)
		pressed = pressed || p
	}
	return pressed
}

// storedFrame is the frame of e stored in JetStream at seq, its id.
func storedFrame(e sse.Event, seq uint64) []byte {
	e, _ = e.WithID(strconv.FormatUint(seq, 10)) // digits only
	return e.Encode()
}

// join adds a client. A resuming client first gets, in its queue, exactly
// the events after lastID, or a reset event when lastID is unknown; live
// events follow without a gap, as both happen under the stream's lock.
func (st *stream) join(c *Client, lastID string, resume bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.unlinger()
	if st.conns != nil {
		c.epoch = st.conns.Epoch()
	}
	switch {
	case resume && st.reader != nil:
		// The history is in JetStream: live events wait behind the replay.
		c.holdLive()
		if after, err := strconv.ParseUint(lastID, 10, 64); err == nil && after > st.lastSeq {
			// Delivered by another replica, not here yet: this client
			// skips it when it comes (replay checks the id is real).
			c.skipThrough = after
		}
		go st.replay(c, lastID, st.lastSeq)
	case resume:
		if frames, ok := st.replayAfter(lastID); ok {
			st.m.replayed.Inc()
			c.preload(frames...)
		} else {
			st.m.reset.Inc()
			c.preload(st.resetFrame(lastID))
		}
	}
	c.slot = len(st.clients)
	st.clients = append(st.clients, c)
}

// leave removes a client whose end has run (it takes no more frames);
// the last one out starts the linger timer, and release frees the stream
// if nobody has joined by then.
func (st *stream) leave(c *Client, free func(gen uint64)) {
	st.mu.Lock()
	defer st.mu.Unlock()
	last := len(st.clients) - 1
	st.clients[c.slot] = st.clients[last]
	st.clients[c.slot].slot = c.slot
	st.clients[last] = nil
	st.clients = st.clients[:last]
	c.slot = -1
	st.gen++
	st.startLinger(free)
}

// lingerAgain starts the linger of a stream without a client over, as if
// its last client had just left: a client is on its way.
func (st *stream) lingerAgain(free func(gen uint64)) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.clients) > 0 {
		return
	}
	st.unlinger()
	st.startLinger(free)
}

// unlinger stops the linger of a stream about to have a client, with
// st.mu held: the bumped gen voids a timer that may be firing, and the
// stream is no longer listed idle.
func (st *stream) unlinger() {
	st.gen++
	if st.linger != nil {
		st.linger.Stop()
		st.linger = nil
	}
	st.idle.remove(st)
}

// startLinger has a stream without a client freed after the route's
// linger (free is called with the generation it was started in), and
// lists it idle; called with st.mu held. A pinned, closed or dropped
// stream does not linger.
func (st *stream) startLinger(free func(gen uint64)) {
	if len(st.clients) == 0 && !st.pinned && !st.closed && !st.dropped {
		gen := st.gen
		st.linger = time.AfterFunc(st.route.Linger, func() { free(gen) })
		st.idle.push(st)
	}
}

// stopLinger stops the timer that would free the stream.
func (st *stream) stopLinger() {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.linger != nil {
		st.linger.Stop()
		st.linger = nil
	}
}

// origin is the id that stands for the stream's start, before its first
// event: a client that was reset on an empty stream resumes from it.
func (st *stream) origin() string { return assignID(st.epoch, 0) }

// replayAfter returns the frames after the event with id lastID, and
// whether the history holds everything since then.
func (st *stream) replayAfter(lastID string) ([][]byte, bool) {
	if lastID == st.origin() {
		return st.history.all()
	}
	return st.history.after(lastID)
}

func (st *stream) resetFrame(lastID string) []byte {
	id := st.history.lastID()
	if id == "" {
		id = st.origin()
	}
	return resetFrame(lastID, id)
}
