package proxy

import (
	"context"
	"errors"
	"hash/maphash"
	"runtime"
	"slices"
	"sync"

	"github.com/nats-io/nats.go"
)

// fanInQueue is how many messages each shard of a fanIn holds before NATS
// counts a subscription on it as a slow consumer and drops its messages.
// Handlers never block (a full client queue drops that client), so it
// only fills when publishers outrun the whole process for a while.
const fanInQueue = 1 << 17

// fanIn reads the messages of every core NATS subscription of a Server
// from a few shared channels, each read by one goroutine. A subscription
// made by nats.go's Subscribe parks a goroutine of its own for its whole
// life; through a fanIn an idle or lingering stream costs none. Streams
// that read the same subject with the same key share one NATS
// subscription (streams of overlapping topic sets, say): each has its
// reading of it. A key's subscriptions all go through one shard, so that
// the streams of a key see their messages in the order they came.
type fanIn struct {
	seed   maphash.Seed
	shards []*shard
	done   chan struct{}

	mu   sync.Mutex // guards subs; taken before a shard's
	subs map[subKey]*shared
}

// subKey names a shared subscription: a subject read under a key on one
// connection (a replaced connection's subscriptions are made again on
// the new one).
type subKey struct {
	nc      *nats.Conn
	key     string
	subject string
}

// shared is one NATS subscription and the readings of every stream that
// reads its subject.
type shared struct {
	key      subKey
	sub      *nats.Subscription
	sh       *shard
	readings []*reading // copied on write, under the shard's mu
}

// reading is one stream's reading of a shared subscription: what its
// messages are for, and what to do when NATS dropped some of them.
type reading struct {
	s    *shared
	msg  nats.MsgHandler
	lost func()
}

type shard struct {
	ch chan *nats.Msg

	mu       sync.RWMutex
	subs     map[*nats.Subscription]*shared
	barriers []chan struct{} // closed as their markers come out, in order
}

// maxShards bounds the shards, each a goroutine and fanInQueue pointers.
const maxShards = 8

// newFanIn makes a fanIn whose shards hold queue messages each.
func newFanIn(queue int) *fanIn {
	f := &fanIn{seed: maphash.MakeSeed(), done: make(chan struct{}), subs: map[subKey]*shared{}}
	for range min(runtime.GOMAXPROCS(0), maxShards) {
		sh := &shard{ch: make(chan *nats.Msg, queue), subs: map[*nats.Subscription]*shared{}}
		f.shards = append(f.shards, sh)
		go sh.run(f.done)
	}
	return f
}

// subscribe has msg called with each message on subject, read through the
// subscription to subject on nc that every stream reading it with key
// shares (made now, on key's shard, if it is the first); lost is called
// when NATS drops some of them (see lost).
func (f *fanIn) subscribe(nc *nats.Conn, key, subject string, msg nats.MsgHandler, lost func()) (*reading, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	k := subKey{nc, key, subject}
	s := f.subs[k]
	if s == nil {
		sh := f.shards[maphash.String(f.seed, key)%uint64(len(f.shards))]
		// Held across the subscribe: a message that comes at once waits
		// for its reading instead of finding none.
		sh.mu.Lock()
		defer sh.mu.Unlock()
		sub, err := nc.ChanSubscribe(subject, sh.ch)
		if err != nil {
			return nil, err
		}
		s = &shared{key: k, sub: sub, sh: sh}
		sh.subs[sub] = s
		f.subs[k] = s
	} else {
		s.sh.mu.Lock()
		defer s.sh.mu.Unlock()
	}
	r := &reading{s: s, msg: msg, lost: lost}
	s.readings = append(slices.Clip(s.readings), r)
	return r, nil
}

// lost is told that NATS dropped messages of sub: its shard was full (a
// slow consumer, in NATS's words). The streams reading it are told, to
// say so to their clients rather than lose events in silence.
func (f *fanIn) lost(sub *nats.Subscription) {
	for _, sh := range f.shards {
		sh.mu.RLock()
		s, ok := sh.subs[sub]
		var readings []*reading
		if ok {
			readings = s.readings
		}
		sh.mu.RUnlock()
		for _, r := range readings {
			if r.lost != nil {
				r.lost()
			}
		}
		if ok {
			return
		}
	}
}

// forget stops handing r its messages (those still queued are dropped);
// the last reading of a subscription unsubscribes it.
func (f *fanIn) forget(r *reading) error {
	f.mu.Lock()
	s := r.s
	s.sh.mu.Lock()
	i := slices.Index(s.readings, r)
	if i < 0 {
		s.sh.mu.Unlock()
		f.mu.Unlock()
		return nil
	}
	s.readings = slices.Delete(slices.Clone(s.readings), i, i+1)
	last := len(s.readings) == 0
	if last {
		delete(s.sh.subs, s.sub)
		delete(f.subs, s.key)
	}
	s.sh.mu.Unlock()
	f.mu.Unlock()
	if !last {
		return nil
	}
	// A drained subscription is already gone, and so is everything on a
	// closed connection.
	err := s.sub.Unsubscribe()
	if errors.Is(err, nats.ErrBadSubscription) || errors.Is(err, nats.ErrConnectionClosed) {
		return nil
	}
	return err
}

// drain drains every subscription, so that what NATS already sent is
// still handed on, and returns what tells each is done.
func (f *fanIn) drain() []<-chan nats.SubStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	var closed []<-chan nats.SubStatus
	for _, s := range f.subs {
		ch := s.sub.StatusChanged(nats.SubscriptionClosed)
		if err := s.sub.Drain(); err != nil {
			continue
		}
		closed = append(closed, ch)
	}
	return closed
}

// settle waits until every message queued when it was called has been
// handled, or ctx ends. After a subscription's drain it means every
// message NATS sent it has reached its handler.
func (f *fanIn) settle(ctx context.Context) {
	var waits []chan struct{}
	for _, sh := range f.shards {
		w := make(chan struct{})
		sh.mu.Lock()
		sh.barriers = append(sh.barriers, w)
		sh.mu.Unlock()
		select {
		case sh.ch <- &nats.Msg{}: // a marker: no subscription
		case <-ctx.Done():
			return
		}
		waits = append(waits, w)
	}
	for _, w := range waits {
		select {
		case <-w:
		case <-ctx.Done():
			return
		}
	}
}

// close stops the shards' goroutines.
func (f *fanIn) close() { close(f.done) }

func (sh *shard) run(done <-chan struct{}) {
	for {
		select {
		case <-done:
			return
		case m := <-sh.ch:
			sh.mu.RLock()
			if m.Sub == nil {
				sh.mu.RUnlock()
				sh.mu.Lock()
				close(sh.barriers[0])
				sh.barriers = sh.barriers[1:]
				sh.mu.Unlock()
				continue
			}
			var readings []*reading
			if s := sh.subs[m.Sub]; s != nil {
				readings = s.readings
			}
			sh.mu.RUnlock()
			for _, r := range readings {
				r.msg(m)
			}
		}
	}
}
