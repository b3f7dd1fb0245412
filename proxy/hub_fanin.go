package proxy

import (
	"context"
	"hash/maphash"
	"runtime"
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
// life; through a fanIn an idle or lingering stream costs none. Messages
// for one key (one stream) all go through one shard, in order.
type fanIn struct {
	seed   maphash.Seed
	shards []*shard
	done   chan struct{}
}

type shard struct {
	ch chan *nats.Msg

	mu       sync.RWMutex
	handlers map[*nats.Subscription]handler
	barriers []chan struct{} // closed as their markers come out, in order
}

// handler is what a subscription's messages are for, and what to do when
// NATS dropped some of them.
type handler struct {
	msg  nats.MsgHandler
	lost func()
}

// maxShards bounds the shards, each a goroutine and fanInQueue pointers.
const maxShards = 8

// newFanIn makes a fanIn whose shards hold queue messages each.
func newFanIn(queue int) *fanIn {
	f := &fanIn{seed: maphash.MakeSeed(), done: make(chan struct{})}
	for range min(runtime.GOMAXPROCS(0), maxShards) {
		sh := &shard{ch: make(chan *nats.Msg, queue), handlers: map[*nats.Subscription]handler{}}
		f.shards = append(f.shards, sh)
		go sh.run(f.done)
	}
	return f
}

// subscribe subscribes to subject on nc and has h called with each of its
// messages, on the shard of key; lost is called when NATS drops some of
// them (see lost).
func (f *fanIn) subscribe(nc *nats.Conn, key, subject string, h nats.MsgHandler, lost func()) (*nats.Subscription, error) {
	sh := f.shards[maphash.String(f.seed, key)%uint64(len(f.shards))]
	// Held across the subscribe: a message that comes at once waits for
	// its handler instead of finding none.
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sub, err := nc.ChanSubscribe(subject, sh.ch)
	if err != nil {
		return nil, err
	}
	sh.handlers[sub] = handler{h, lost}
	return sub, nil
}

// lost is told that NATS dropped messages of sub: its shard was full (a
// slow consumer, in NATS's words). The subscription's owner is told, to
// say so to its clients rather than lose events in silence.
func (f *fanIn) lost(sub *nats.Subscription) {
	for _, sh := range f.shards {
		sh.mu.RLock()
		h, ok := sh.handlers[sub]
		sh.mu.RUnlock()
		if ok && h.lost != nil {
			h.lost()
			return
		}
	}
}

// forget stops handing sub's messages on; those still queued are dropped.
func (f *fanIn) forget(sub *nats.Subscription) {
	for _, sh := range f.shards {
		sh.mu.Lock()
		delete(sh.handlers, sub)
		sh.mu.Unlock()
	}
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
			h := sh.handlers[m.Sub]
			sh.mu.RUnlock()
			if h.msg != nil {
				h.msg(m)
			}
		}
	}
}
