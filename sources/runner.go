package sources

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/rs/zerolog"
)

// Reader is a source ssegate reads from, driven by Run, which owns every
// retry: a Reader only reports what went wrong.
type Reader interface {
	// Connect prepares to read: opens the upstream connection, if any.
	Connect(ctx context.Context) error
	// Read blocks until it has messages, or fails. A batch may be empty
	// (a poll that found nothing new).
	Read(ctx context.Context) (Batch, error)
	// Close releases what Connect opened, even when Connect failed.
	Close() error
}

// Batch is what one Read returns.
type Batch struct {
	Messages []Message
	// Commit, when set, is called once every message has been handed on:
	// only then may the reader forget them (advance a resume id, remember
	// keys as seen), so a failure to hand them on fetches them again.
	Commit func()
}

// ErrStop, from Connect or Read, ends Run for good: the upstream said there
// is nothing more to read (an SSE upstream's 204).
var ErrStop = errors.New("upstream asked to stop")

// RetryAfter wraps a failure with the delay the upstream asked for (a
// Retry-After header, an SSE retry field); Run waits at least that long.
type RetryAfter struct {
	Err   error
	After time.Duration
}

func (e *RetryAfter) Error() string { return e.Err.Error() }
func (e *RetryAfter) Unwrap() error { return e.Err }

// Backoff computes the delays between attempts: doubling from Min up to
// Max, each with up to half of it taken off at random, so that sources
// failing together do not retry in lockstep.
type Backoff struct {
	Min, Max time.Duration
	next     time.Duration
}

// DefaultBackoff is the backoff of every source.
func DefaultBackoff() Backoff { return Backoff{Min: 500 * time.Millisecond, Max: time.Minute} }

// Next returns the delay before the next attempt.
func (b *Backoff) Next() time.Duration {
	if b.next < b.Min {
		b.next = b.Min
	}
	d := b.next
	b.next = min(2*b.next, b.Max)
	return d - rand.N(d/2+1)
}

// Reset starts again from Min, after a success.
func (b *Backoff) Reset() { b.next = 0 }

// Run reads r until ctx ends or r stops, handing every batch to handle.
// Failures of Connect, Read or handle close r and retry after a backoff
// that resets on the next successful Read. It logs a change of state once
// (failing, recovered, stopped) and each retry at debug, and reports the
// state to st (which may be nil).
func Run(ctx context.Context, r Reader, handle func(context.Context, Batch) error, log zerolog.Logger, st *Status) {
	bo := DefaultBackoff()
	failing := false
	fail := func(err error) {
		st.set(StateFailing, err)
		if !failing {
			log.Warn().Err(err).Msg("source failing; retrying with backoff")
			failing = true
		} else {
			log.Debug().Err(err).Msg("source still failing")
		}
	}
	for ctx.Err() == nil {
		connected := func() {
			// A connect alone is no recovery: a failing source stays
			// failing, since when it first failed, until a batch works.
			if !failing {
				st.set(StateRunning, nil)
			}
		}
		err := session(ctx, r, handle, log, connected, func() {
			bo.Reset()
			// Called per batch, which for an upstream stream is per
			// event: the state changes only on recovery, connected set
			// it otherwise.
			if failing {
				st.set(StateRunning, nil)
				log.Info().Msg("source recovered")
				failing = false
			}
		})
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, ErrStop) {
			st.set(StateStopped, err)
			log.Info().Err(err).Msg("source stopped by its upstream; it starts again when its stream reopens or ssegate restarts")
			return
		}
		fail(err)
		delay := bo.Next()
		var ra *RetryAfter
		if errors.As(err, &ra) {
			delay = max(delay, ra.After)
		}
		if !sleep(ctx, delay) {
			return
		}
	}
}

// session connects r and reads it until something fails; connected is
// called once it is connected, ok after each batch handed on.
func session(ctx context.Context, r Reader, handle func(context.Context, Batch) error, log zerolog.Logger, connected, ok func()) error {
	if err := r.Connect(ctx); err != nil {
		// What a failed Connect opened (a client, a connection) goes
		// too, or each retry would leave one behind.
		if cerr := r.Close(); cerr != nil {
			log.Debug().Err(cerr).Msg("source close")
		}
		return fmt.Errorf("connect: %w", err)
	}
	connected()
	defer func() {
		if err := r.Close(); err != nil {
			log.Debug().Err(err).Msg("source close")
		}
	}()
	for {
		b, err := r.Read(ctx)
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		if err := handle(ctx, b); err != nil {
			return fmt.Errorf("hand on: %w", err)
		}
		if b.Commit != nil {
			b.Commit()
		}
		ok()
	}
}

// sampled limits a logger to a burst of 10 lines a minute, for what can
// repeat per message.
func sampled(l zerolog.Logger) zerolog.Logger {
	return l.Sample(&zerolog.BurstSampler{Burst: 10, Period: time.Minute})
}

// sleep waits d, and reports false if ctx ended first.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
