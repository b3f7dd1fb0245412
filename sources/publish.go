package sources

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// publishTimeout bounds how long a source waits for NATS to take what it
// publishes.
const publishTimeout = 5 * time.Second

// errTooLarge is a message bigger than the NATS server takes: sending it
// again would fail again.
var errTooLarge = errors.New("larger than the NATS server's max_payload")

// ErrReserved is a subject a Publisher does not publish to: ssegate's
// own control subjects.
var ErrReserved = errors.New("reserved for ssegate's control")

// Publisher hands events to NATS and returns once they are safe: flushed
// to the server, or, for a route whose history is in JetStream, stored and
// acknowledged.
type Publisher interface {
	// Publish sends msgs in order and returns, for a route whose history
	// is in JetStream, the sequence each got (the id its event has on
	// every replica), or nil. The wait does not end with ctx (a sender
	// hanging up must not turn a sent event into one reported lost), only
	// after publishTimeout (for each message, in JetStream, where a
	// batch's later messages are not sent once ctx has ended).
	Publish(ctx context.Context, msgs ...*nats.Msg) ([]uint64, error)
	// Fits checks m against the server's payload limit.
	Fits(m *nats.Msg) error
}

// Conns gives the NATS connection in use and its JetStream context: a
// connection NATS closed for good is replaced, so a publisher asks for
// it each time.
type Conns interface {
	Conn() *nats.Conn
	JS() jetstream.JetStream
}

// CorePublisher publishes with core NATS and waits for the server to have
// the messages.
func CorePublisher(c Conns) Publisher { return corePublisher{c} }

// JetStreamPublisher publishes to JetStream and waits for each ack; a
// message whose Nats-Msg-Id JetStream has seen within its duplicate
// window is acknowledged without being stored twice.
func JetStreamPublisher(c Conns) Publisher {
	return jsPublisher{corePublisher{c}}
}

type corePublisher struct{ conns Conns }

var _ Publisher = corePublisher{}

func (p corePublisher) Fits(m *nats.Msg) error {
	size := len(m.Data)
	if len(m.Header) > 0 {
		size += len("NATS/1.0\r\n\r\n")
		for k, vs := range m.Header {
			for _, v := range vs {
				size += len(k) + len(": \r\n") + len(v)
			}
		}
	}
	if limit := p.conns.Conn().MaxPayload(); limit > 0 && int64(size) > limit {
		return fmt.Errorf("event of %d bytes: %w (%d)", size, errTooLarge, limit)
	}
	return nil
}

func (p corePublisher) Publish(ctx context.Context, msgs ...*nats.Msg) ([]uint64, error) {
	nc := p.conns.Conn()
	if !nc.IsConnected() {
		return nil, errors.New("NATS is not connected")
	}
	for _, m := range msgs {
		if err := nc.PublishMsg(m); err != nil {
			return nil, fmt.Errorf("publish to %q: %w", m.Subject, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	defer cancel()
	if err := nc.FlushWithContext(ctx); err != nil {
		return nil, fmt.Errorf("wait for NATS to take the events: %w", err)
	}
	return nil, nil
}

type jsPublisher struct{ corePublisher }

var _ Publisher = jsPublisher{}

func (p jsPublisher) Publish(ctx context.Context, msgs ...*nats.Msg) ([]uint64, error) {
	seqs := make([]uint64, 0, len(msgs))
	for i, m := range msgs {
		if i > 0 && ctx.Err() != nil {
			// The source is stopping (or lost its lease): the rest is
			// not committed, so it is read again, with the same ids.
			return seqs, fmt.Errorf("publish to JetStream: %w", ctx.Err())
		}
		// One at a time, so they are stored in order; each has
		// publishTimeout, so a large batch on a slow store still goes.
		// A message JetStream has seen (its Nats-Msg-Id, in the
		// duplicate window) is acknowledged with the sequence it was
		// stored at.
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
		ack, err := p.conns.JS().PublishMsg(ctx, m)
		cancel()
		if err != nil {
			return seqs, fmt.Errorf("publish to %q in JetStream: %w", m.Subject, err)
		}
		seqs = append(seqs, ack.Sequence)
	}
	return seqs, nil
}
