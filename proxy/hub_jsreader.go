package proxy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ssegate/ssegate/proxy/natsconn"
)

// jsReader reads a route's JetStream history live for all the route's
// streams on this replica, with one ordered consumer over the route's
// subjects, and hands each message to the streams whose subjects it is
// on. The consumers on the server do not grow with the streams (nats-server
// allows 1,000 per stream by default), and a stream that closes leaves
// nothing behind there. The consumer runs while the route has a stream
// here.
type jsReader struct {
	conns    *natsconn.Conns
	name     string   // the JetStream stream
	subjects []string // the route's subjects, "*" where a stream's varies
	// owned: the JetStream stream is ssegate's for the route, and holds
	// the route's subjects alone, so the sequences the reader gets follow
	// each other unless messages went before it read them. Guarded by mu:
	// cleared once the stream is found to hold more (see lostBefore).
	owned bool
	warn  zerolog.Logger
	done  <-chan struct{} // the Server's closing

	mu      sync.Mutex
	plain   map[string][]*stream // streams by their one subject without wildcards
	wild    []*stream            // streams with a wildcard among their subjects
	count   int
	consume jetstream.ConsumeContext
	lastSeq uint64 // the last sequence read
	// gen names the consumer whose messages count: one replaced or
	// stopped may still deliver a few.
	gen uint64

	// pending is what JetStream holds beyond what the reader has read,
	// as of the last message read.
	pending atomic.Uint64

	reconsuming atomic.Bool
	// handing is held while a message is handed on: a replaced consumer's
	// last message reaches every stream before the new one's first.
	handing sync.Mutex
}

// jsHeartbeat is how often JetStream must show a reading consumer it is
// alive: a consumer on a node that died is found out after two missed
// heartbeats, and made again on another.
const jsHeartbeat = time.Second

func newJSReader(conns *natsconn.Conns, name string, subjects []string, owned bool, warn zerolog.Logger, done <-chan struct{}) *jsReader {
	return &jsReader{conns: conns, name: name, subjects: subjects, owned: owned, warn: warn, done: done, plain: map[string][]*stream{}}
}

// add starts handing st the messages on its subjects after the last one
// read, which is where st's history starts: what came before is stored,
// replayed to clients that ask. The first stream starts the consumer, from
// the message after the last one stored now.
func (r *jsReader) add(ctx context.Context, st *stream) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.consume == nil {
		info, err := r.conns.JS().Stream(ctx, r.name)
		if err != nil {
			return fmt.Errorf("stream %s: %w", r.name, err)
		}
		last := info.CachedInfo().State.LastSeq
		r.gen++
		cc, err := r.consumeFrom(ctx, last+1, r.gen)
		if err != nil {
			return err
		}
		r.consume, r.lastSeq = cc, last
	}
	st.lastSeq = r.lastSeq
	if subjects, ok := plainSubjects(st); ok {
		for _, subject := range subjects {
			r.plain[subject] = append(r.plain[subject], st)
		}
	} else {
		r.wild = append(r.wild, st)
	}
	r.count++
	return nil
}

// remove stops handing st messages; the last stream stops the consumer.
func (r *jsReader) remove(st *stream) {
	r.mu.Lock()
	found := false
	if subjects, ok := plainSubjects(st); ok {
		for _, subject := range subjects {
			if i := slices.Index(r.plain[subject], st); i >= 0 {
				r.plain[subject] = slices.Delete(r.plain[subject], i, i+1)
				if len(r.plain[subject]) == 0 {
					delete(r.plain, subject)
				}
				found = true
			}
		}
	} else if i := slices.Index(r.wild, st); i >= 0 {
		r.wild = slices.Delete(r.wild, i, i+1)
		found = true
	}
	var stop jetstream.ConsumeContext
	if found {
		if r.count--; r.count == 0 {
			stop, r.consume = r.consume, nil
			r.gen++
		}
	}
	r.mu.Unlock()
	if stop != nil {
		// Stop may wait out a remaking the library has under way; the
		// gen bump above already ignores its messages.
		go stop.Stop()
	}
}

// consumeFrom reads the route's subjects live from sequence start on,
// as consumer gen.
func (r *jsReader) consumeFrom(ctx context.Context, start, gen uint64) (jetstream.ConsumeContext, error) {
	cons, err := r.conns.JS().OrderedConsumer(ctx, r.name, jetstream.OrderedConsumerConfig{
		FilterSubjects: r.subjects,
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    start,
	})
	if err != nil {
		return nil, fmt.Errorf("consumer on %s: %w", r.name, err)
	}
	cc, err := cons.Consume(func(m jetstream.Msg) { r.hand(m, gen) },
		jetstream.PullHeartbeat(jsHeartbeat), jetstream.PullExpiry(5*jsHeartbeat),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			r.mu.Lock()
			current := gen == r.gen
			r.mu.Unlock()
			if !current {
				return // a consumer already replaced or stopped
			}
			r.warn.Warn().Err(err).Str("stream", r.name).Msg("JetStream consumer")
			if errors.Is(err, jetstream.ErrNoHeartbeat) {
				// Its node is likely gone: the library's own remaking
				// can wait out a timeout per request an election
				// swallows; ours tries in short attempts.
				go r.reconsume()
			}
		}))
	if err != nil {
		return nil, fmt.Errorf("consume %s: %w", r.name, err)
	}
	return cc, nil
}

// hand gives message m, read by consumer gen, to the streams it is for,
// each sequence once and in order.
func (r *jsReader) hand(m jetstream.Msg, gen uint64) {
	md, err := m.Metadata()
	if err != nil {
		r.warn.Warn().Err(err).Str("stream", r.name).Msg("JetStream message without metadata")
		return
	}
	seq, subject := md.Sequence.Stream, m.Subject()
	r.handing.Lock()
	defer r.handing.Unlock()
	r.mu.Lock()
	if gen != r.gen || seq <= r.lastSeq {
		r.mu.Unlock()
		return
	}
	// Messages between may have gone before they were read: the
	// stream's limits discarded them while this replica's NATS link was
	// down or slow. Their subjects are gone with them.
	var missed []*stream
	from := r.lastSeq
	if r.owned && seq > from+1 {
		missed = slices.Clone(r.wild)
		for _, sts := range r.plain {
			missed = append(missed, sts...)
		}
	}
	r.lastSeq = seq
	// Each stream the message is for, with the part it is on.
	type target struct {
		st *stream
		k  int
	}
	targets := make([]target, 0, len(r.plain[subject]))
	for _, st := range r.plain[subject] {
		targets = append(targets, target{st, st.partOf(subject)})
	}
	for _, st := range r.wild {
		if k := st.partOf(subject); k >= 0 {
			targets = append(targets, target{st, k})
		}
	}
	r.mu.Unlock()
	if len(missed) > 0 && r.lostBefore(from, seq) {
		r.warn.Warn().Str("stream", r.name).Uint64("after", from).Uint64("through", seq-1).Msg("JetStream dropped events before this replica read them; its clients get a reset")
		told := map[*stream]bool{} // a stream of several subjects is listed for each
		for _, st := range missed {
			if !told[st] {
				told[st] = true
				st.missedLive(from, seq-1)
			}
		}
	}
	r.pending.Store(md.NumPending)
	msg := &nats.Msg{Subject: subject, Header: m.Headers(), Data: m.Data()}
	for _, t := range targets {
		ev, p, err := t.st.jsEventAt(t.k, msg, true)
		if err != nil {
			t.st.reject(err)
			t.st.passOver(seq)
			continue
		}
		t.st.deliver(ev, seq, t.st.conflationKey(p, msg))
	}
}

// lostBefore reports whether messages after sequence from, before seq,
// went from the JetStream stream before the reader read them: its first
// message is past them now. Messages still there were on subjects the
// reader does not read: another replica's config widened the stream (a
// rolling deploy adding a source), or this one's did before a reload
// ended this reader; the reader then judges no more jumps. When the
// stream cannot be asked, it says they went: a reset too many is
// better than a silent gap.
func (r *jsReader) lostBefore(from, seq uint64) bool {
	ctx, cancel := context.WithTimeout(context.Background(), jsAttemptTimeout)
	defer cancel()
	state, err := r.state(ctx)
	if err != nil {
		r.warn.Warn().Err(err).Str("stream", r.name).Msg("JetStream sequences jumped, and the stream cannot tell why")
		return true
	}
	if state.FirstSeq > from+1 {
		return true
	}
	r.mu.Lock()
	r.owned = false
	r.mu.Unlock()
	r.warn.Debug().Str("stream", r.name).Uint64("after", from).Uint64("to", seq).Msg("JetStream stream holds more subjects than this reader reads; its jumps are not losses")
	return false
}

// reconsumeTimeout bounds one attempt of reconsume: short, since a
// request caught by a leader election gets no answer at all.
const reconsumeTimeout = 2 * time.Second

// reconsume replaces the consumer by one that starts after the last
// message read, retrying until it works, the route has no stream here or
// the Server closes. It runs after NATS was away, or a consumer's
// heartbeats stopped: the consumer may have lived on a node that is gone.
func (r *jsReader) reconsume() {
	if !r.reconsuming.CompareAndSwap(false, true) {
		return
	}
	defer r.reconsuming.Store(false)
	for delay := 250 * time.Millisecond; ; delay = min(2*delay, reconsumeTimeout) {
		r.mu.Lock()
		if r.consume == nil {
			r.mu.Unlock()
			return
		}
		// From here the old consumer's messages are ignored; the new one
		// starts after the last message read.
		r.gen++
		gen, start := r.gen, r.lastSeq+1
		r.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), reconsumeTimeout)
		cc, err := r.consumeFrom(ctx, start, gen)
		cancel()
		if err == nil {
			r.mu.Lock()
			old := r.consume
			current := r.gen == gen && old != nil
			if current {
				r.consume = cc
			}
			r.mu.Unlock()
			if !current {
				cc.Stop() // stopped or replaced meanwhile
				return
			}
			// Stop may wait for a remaking of the old one's own.
			go old.Stop()
			r.warn.Debug().Str("stream", r.name).Uint64("from", start).Msg("JetStream consumer made again")
			return
		}
		r.warn.Debug().Err(err).Str("stream", r.name).Msg("JetStream consumer not made again yet")
		t := time.NewTimer(delay)
		select {
		case <-r.done:
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// drain stops the consumer once what it has read is handed on, and
// returns it (nil when it was not running), to wait for its Closed. The
// drain runs on a goroutine: it may wait out a remaking the library has
// under way, and Shutdown waits only as long as its deadline allows.
func (r *jsReader) drain() jetstream.ConsumeContext {
	r.mu.Lock()
	cc := r.consume
	r.mu.Unlock()
	if cc != nil {
		go cc.Drain()
	}
	return cc
}
