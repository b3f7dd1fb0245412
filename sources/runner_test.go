package sources

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"
)

// scriptReader fails its first reads, then succeeds, recording when each
// attempt was made.
type scriptReader struct {
	mu       sync.Mutex
	fails    []error // returned by successive Reads, then nil
	attempts []time.Time
	closes   int
}

func (r *scriptReader) Connect(context.Context) error { return nil }

func (r *scriptReader) Read(ctx context.Context) (Batch, error) {
	r.mu.Lock()
	r.attempts = append(r.attempts, time.Now())
	var err error
	if len(r.fails) > 0 {
		err, r.fails = r.fails[0], r.fails[1:]
	}
	r.mu.Unlock()
	if err != nil {
		return Batch{}, err
	}
	// Healthy: one batch a second.
	select {
	case <-ctx.Done():
		return Batch{}, ctx.Err()
	case <-time.After(time.Second):
	}
	return Batch{Messages: []Message{{Body: []byte("x")}}}, nil
}

func (r *scriptReader) Close() error {
	r.mu.Lock()
	r.closes++
	r.mu.Unlock()
	return nil
}

func TestRunBacksOffThenRecovers(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		boom := errors.New("upstream down")
		r := &scriptReader{fails: []error{boom, boom, boom, boom, boom}}
		var logs bytes.Buffer
		ctx, cancel := context.WithCancel(t.Context())
		handled := 0
		done := make(chan struct{})
		go func() {
			defer close(done)
			Run(ctx, r, func(context.Context, Batch) error { handled++; return nil }, zerolog.New(&logs), nil)
		}()
		time.Sleep(time.Minute)
		cancel()
		<-done

		// Each wait is at least half of, and at most, the doubling delay.
		for i, want := 0, DefaultBackoff().Min; i < 5; i, want = i+1, 2*want {
			gap := r.attempts[i+1].Sub(r.attempts[i])
			if gap < want/2 || gap > want {
				t.Errorf("wait after failure %d = %v, want within [%v, %v]", i+1, gap, want/2, want)
			}
		}
		if r.closes != 6 { // once per failed session, and the last one
			t.Errorf("Close called %d times, want 6", r.closes)
		}
		if handled == 0 {
			t.Error("no batch handed on after recovery")
		}
		out := logs.String()
		if n := strings.Count(out, "source failing"); n != 1 {
			t.Errorf("%d 'failing' lines at warn, want 1:\n%s", n, out)
		}
		if n := strings.Count(out, "source recovered"); n != 1 {
			t.Errorf("%d 'recovered' lines, want 1:\n%s", n, out)
		}
	})
}

func TestRunHonoursRetryAfterAndStop(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		r := &scriptReader{fails: []error{
			&RetryAfter{Err: errors.New("429"), After: 30 * time.Second},
			ErrStop,
		}}
		start := time.Now()
		Run(t.Context(), r, func(context.Context, Batch) error { return nil }, zerolog.Nop(), nil)
		if len(r.attempts) != 2 {
			t.Fatalf("%d attempts, want 2: Run must end at ErrStop", len(r.attempts))
		}
		if gap := r.attempts[1].Sub(start); gap < 30*time.Second {
			t.Errorf("retried after %v, before the upstream's Retry-After of 30s", gap)
		}
	})
}

// A batch that cannot be handed on is not committed, and is read again.
func TestRunCommitsOnlyWhatWasHandedOn(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		r := &scriptReader{}
		committed := 0
		calls := 0
		ctx, cancel := context.WithCancel(t.Context())
		reader := readerFunc(func(ctx context.Context) (Batch, error) {
			b, err := r.Read(ctx)
			b.Commit = func() { committed++ }
			return b, err
		})
		go Run(ctx, reader, func(context.Context, Batch) error {
			calls++
			if calls == 1 {
				return errors.New("NATS is not connected")
			}
			return nil
		}, zerolog.Nop(), nil)
		time.Sleep(10 * time.Second)
		cancel()
		synctest.Wait()
		if calls < 2 || committed != calls-1 {
			t.Errorf("handed on %d times, committed %d: the failed batch must not commit", calls, committed)
		}
	})
}

type readerFunc func(context.Context) (Batch, error)

func (f readerFunc) Connect(context.Context) error           { return nil }
func (f readerFunc) Read(ctx context.Context) (Batch, error) { return f(ctx) }
func (f readerFunc) Close() error                            { return nil }
