package sources

import (
	"context"

	"github.com/nats-io/nats.go"
)

// hold runs the reader newReader makes, handing its batches to handle,
// until ctx ends: when env has a lease, on one replica at a time (the one
// holding the lease named key), each holder carrying on from the
// progress the last one saved; without one, here and now.
func hold(ctx context.Context, env FeedEnv, key string, newReader func() Reader, handle func(context.Context, Batch) error) {
	if env.Lease == nil {
		Run(ctx, newReader(), handle, env.Log, env.Status)
		return
	}
	env.Lease.Hold(ctx, key, func(ctx context.Context, saved []byte, save func(context.Context, []byte) error) {
		env.Log.Info().Msg("source runs on this replica")
		env.Status.set(StateStarting, nil)
		runCheckpointed(ctx, newReader(), saved, save, handle, env.Log, env.Status)
	}, func() { env.Status.set(StateStandby, nil) })
}

// publishMapped maps each message of a batch with m and publishes it to
// the subject r gives it, and returns once NATS has taken them all. A
// message that can never be sent (its mapping or subject fails, it is
// too large for NATS) is dropped with a warning; NATS being unavailable
// fails the batch, so the reader reads it again.
func publishMapped(env FeedEnv, m *Mapping, r *routing) func(context.Context, Batch) error {
	warn := sampled(env.Log)
	// The mapping and the subject read the message in one context.
	need := m.need | r.need
	return func(ctx context.Context, b Batch) error {
		msgs := make([]*nats.Msg, 0, len(b.Messages))
		for i := range b.Messages {
			msg := &b.Messages[i]
			msgCtx := msg.context(env.StreamCtx, need)
			ev, err := m.applyIn(msgCtx, msg)
			var subject string
			if err == nil {
				subject, err = r.subjectIn(msgCtx)
			}
			if err == nil {
				nm := EncodeEvent(subject, ev)
				if err = env.Publish.Fits(nm); err == nil {
					msgs = append(msgs, nm)
					continue
				}
			}
			warn.Warn().Err(err).Msg("message dropped")
		}
		if len(msgs) == 0 {
			return nil
		}
		_, err := env.Publish.Publish(ctx, msgs...)
		return err
	}
}
