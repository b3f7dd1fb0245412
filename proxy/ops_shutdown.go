package proxy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Shutdown stops taking streams; drains the subscriptions, so that what
// NATS has already sent reaches the clients; ends every open stream with
// what is queued for it and a final comment (EventSource then reconnects,
// to another replica or to this one once it is back); waits for every
// stream to end and for half-closed connections to be closed by their
// clients (or their linger); and closes the NATS connection if New opened
// it.
//
// Clients that do not read could hold it up for their write_timeout: once
// half of the time left is gone, writes to them fail at once. Without a
// deadline on ctx, the config's shutdown_timeout bounds the whole.
// http.Server.Shutdown alone would wait forever for HTTP/2 streams, which
// are never idle, and does not see HTTP/1.1 streams, which are taken from
// it; call both.
func (s *Server) Shutdown(ctx context.Context) error {
	// A reload under way finishes first, so that what it starts is
	// stopped here too; later ones are refused.
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		return errors.New("shutdown already called")
	}
	s.stopping = true
	streams := maps.Clone(s.streams)
	for _, st := range streams {
		s.drop(st)
	}
	s.mu.Unlock()

	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.config().ShutdownTimeout)
		defer cancel()
	}
	// The streams' steps end early enough to leave closing NATS (and
	// stopping the embedded server, which takes a moment) inside the
	// deadline too: a tenth of the time, at most a second.
	natsCtx := ctx
	ctx, cancelStreams := reserveEnd(ctx, 10, time.Second)
	defer cancelStreams()
	// Sources first, so that what they fetched last still reaches clients.
	s.stopControl()
	s.stopFeeding()
	drainCtx, cancel := shareOf(ctx, 3)
	s.drainStreams(drainCtx, streams)
	cancel()
	close(s.closing)
	// The subscriptions are drained: what is queued is all there is, and
	// goes out before the goodbye.
	for _, st := range streams {
		st.end(shutdownLine, "stream ended: ssegate is shutting down")
	}

	done := make(chan struct{})
	go func() {
		s.handlers.Wait()
		close(done)
	}()
	hurryCtx, cancel := shareOf(ctx, 2)
	defer cancel()
	var err error
	select {
	case <-done:
	case <-hurryCtx.Done():
		s.hurryStop()
		s.mu.Lock()
		ended := slices.Collect(maps.Keys(s.ended))
		s.mu.Unlock()
		for _, st := range streams {
			st.hurry()
		}
		for _, st := range ended {
			st.hurry()
		}
		select {
		case <-done:
		case <-ctx.Done():
			err = fmt.Errorf("wait for streams to close: %w", ctx.Err())
		}
	}
	s.hurryStop()
	// Streams that ended with their last frame wait for their clients to
	// close their side (or for the linger to pass): exiting now would
	// reset them, and that can destroy frames not read yet.
	waitGroup(ctx, &s.lingering)
	s.mu.Lock()
	if s.peers != nil {
		_ = s.peers.Close()
	}
	s.mu.Unlock()
	// A stream freed just before Shutdown may still be stopping its
	// sources; NATS stays until they are done, or the time is up.
	waitGroup(ctx, &s.freeing)
	s.http.CloseIdleConnections()
	err = errors.Join(err, s.conns.Close(natsCtx))
	s.fanIn.close()
	return err
}

// drainStreams drains every subscription of streams at once and waits,
// until ctx ends, for the messages NATS sent before the unsubscribe to be
// delivered; then the streams take no more.
func (s *Server) drainStreams(ctx context.Context, streams map[string]*stream) {
	var consumers []jetstream.ConsumeContext
	readers := map[*jsReader]bool{}
	// Every stream's sources are told to stop before any is waited for:
	// each may spend a moment saving its progress and releasing its lease.
	for _, st := range streams {
		st.stopLinger()
		st.feeds.cancel()
	}
	for _, st := range streams {
		st.feeds.halt()
		if r := st.reader; r != nil && !readers[r] {
			readers[r] = true
			if cc := r.drain(); cc != nil {
				consumers = append(consumers, cc)
			}
		}
	}
	for _, ch := range s.fanIn.drain() {
		select {
		case <-ch:
		case <-ctx.Done():
		}
	}
	// Drained, the subscriptions' last messages are in the fan-in.
	s.fanIn.settle(ctx)
	for _, cc := range consumers {
		select {
		case <-cc.Closed():
		case <-ctx.Done():
		}
	}
	for _, st := range streams {
		st.mu.Lock()
		st.closed = true
		st.mu.Unlock()
		// Those not drained in time.
		st.unsubscribe()
	}
}

// waitGroup waits for wg, or until ctx ends.
func waitGroup(ctx context.Context, wg *sync.WaitGroup) {
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// reserveEnd returns a context that ends before ctx does, by 1/n of the
// time ctx has left, and by no more than most.
func reserveEnd(ctx context.Context, n int, most time.Duration) (context.Context, context.CancelFunc) {
	deadline, _ := ctx.Deadline()
	return context.WithDeadline(ctx, deadline.Add(-min(time.Until(deadline)/time.Duration(n), most)))
}

// shareOf returns a context that ends after 1/n of the time ctx has left.
func shareOf(ctx context.Context, n int) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, time.Until(deadline)/time.Duration(n))
}
