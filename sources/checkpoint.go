package sources

import (
	"context"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// checkpointEvery bounds how often a reader's progress is saved for the
// next replica to run it: at most about this much is emitted again after a
// replica dies. A clean stop saves the last progress too.
const checkpointEvery = time.Second

// finalSaveTimeout bounds the save made when a feed stops.
const finalSaveTimeout = 2 * time.Second

// progressor is a Reader whose progress (what it has emitted) can be
// handed to another replica, so the feed goes on there without emitting
// anything twice.
type progressor interface {
	Reader
	// progress encodes what the reader has handed on, or returns nil when
	// that did not change since the last call.
	progress() []byte
	// resume carries on from an encoded progress.
	resume([]byte) error
}

// runCheckpointed runs r like Run, after resuming it from saved, and saves
// its progress with save: soon after a batch is handed on, at most every
// checkpointEvery, and when ctx ends.
func runCheckpointed(ctx context.Context, r Reader, saved []byte, save func(context.Context, []byte) error, handle func(context.Context, Batch) error, log zerolog.Logger, st *Status) {
	p, ok := r.(progressor)
	if !ok {
		Run(ctx, r, handle, log, st)
		return
	}
	if saved != nil {
		if err := p.resume(saved); err != nil {
			log.Warn().Err(err).Msg("progress of the previous replica unreadable; starting afresh")
		} else {
			log.Debug().Msg("resumed from the previous replica's progress")
		}
	}
	c := &checkpointer{progressor: p, save: save, warn: sampled(log), kick: make(chan struct{}, 1)}
	var saver sync.WaitGroup
	saver.Go(func() { c.saveLoop(ctx) })
	Run(ctx, c, handle, log, st)
	saver.Wait()
	// ctx has ended: the last save gets a context of its own, short so
	// that a NATS outage does not hold up a shutdown.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalSaveTimeout)
	defer cancel()
	if err := c.flush(sctx); err != nil {
		log.Warn().Err(err).Msg("last progress not saved; the next replica may emit some of it again")
	}
}

// checkpointer takes its reader's progress as batches are committed and
// saves it from a goroutine of its own, so a save neither slows the feed
// nor waits for the next batch (a quiet feed's last progress is saved
// too).
type checkpointer struct {
	progressor
	save func(context.Context, []byte) error
	warn zerolog.Logger
	kick chan struct{} // a token when pending was set

	mu      sync.Mutex
	pending []byte // progress not saved yet
}

var _ Reader = (*checkpointer)(nil)

func (c *checkpointer) Read(ctx context.Context) (Batch, error) {
	b, err := c.progressor.Read(ctx)
	if err != nil || b.Commit == nil {
		return b, err
	}
	commit := b.Commit
	b.Commit = func() {
		commit()
		// progress reads the reader, so it is taken here, on the feed's
		// goroutine; the bytes go to the saver.
		if state := c.progress(); state != nil {
			c.mu.Lock()
			c.pending = state
			c.mu.Unlock()
			select {
			case c.kick <- struct{}{}:
			default:
			}
		}
	}
	return b, nil
}

// saveLoop saves pending progress when there is some, then rests
// checkpointEvery, until ctx ends.
func (c *checkpointer) saveLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.kick:
		}
		if err := c.flush(ctx); err != nil && ctx.Err() == nil {
			c.warn.Warn().Err(err).Msg("progress not saved for the next replica; retrying")
			select {
			case c.kick <- struct{}{}:
			default:
			}
		}
		if !sleep(ctx, checkpointEvery) {
			return
		}
	}
}

// flush saves the pending progress. What fails to save stays pending,
// unless newer progress came meanwhile.
func (c *checkpointer) flush(ctx context.Context) error {
	c.mu.Lock()
	state := c.pending
	c.pending = nil
	c.mu.Unlock()
	if state == nil {
		return nil
	}
	err := c.save(ctx, state)
	if err != nil {
		c.mu.Lock()
		if c.pending == nil {
			c.pending = state
		}
		c.mu.Unlock()
	}
	return err
}
