package sources

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/ssegate/ssegate/sse"
)

// publishTimeout bounds how long a source waits for NATS to take what it
// publishes.
const publishTimeout = 5 * time.Second

// errTooLarge is a message bigger than the NATS server takes: sending it
// again would fail again.
var errTooLarge = errors.New("larger than the NATS server's max_payload")

// Headers that carry an event's name and id through NATS, between the
// replica that received or fetched it and the ones that deliver it.
const (
	headerEvent = "Ssegate-Event"
	headerID    = "Ssegate-Id"
)

// Publisher hands events to NATS and returns once they are safe: flushed
// to the server, or, for a route whose history is in JetStream, stored and
// acknowledged.
type Publisher interface {
	// Publish sends msgs in order. The wait does not end with ctx (a
	// sender hanging up must not turn a sent event into one reported
	// lost), only after publishTimeout.
	Publish(ctx context.Context, msgs ...*nats.Msg) error
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

func (p corePublisher) Publish(ctx context.Context, msgs ...*nats.Msg) error {
	nc := p.conns.Conn()
	if !nc.IsConnected() {
		return errors.New("NATS is not connected")
	}
	for _, m := range msgs {
		if err := nc.PublishMsg(m); err != nil {
			return fmt.Errorf("publish to %q: %w", m.Subject, err)
		}
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	defer cancel()
	if err := nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("wait for NATS to take the events: %w", err)
	}
	return nil
}

type jsPublisher struct{ corePublisher }

func (p jsPublisher) Publish(ctx context.Context, msgs ...*nats.Msg) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), publishTimeout)
	defer cancel()
	for _, m := range msgs {
		if _, err := p.conns.JS().PublishMsg(ctx, m); err != nil {
			return fmt.Errorf("publish to %q in JetStream: %w", m.Subject, err)
		}
	}
	return nil
}

// EncodeEvent makes the NATS message that carries e to subject. The id
// also goes in Nats-Msg-Id, so a JetStream stream capturing the subject
// drops a retried webhook delivery.
func EncodeEvent(subject string, e sse.Event) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Data = []byte(e.Data())
	if name := e.Name(); name != "" {
		setExact(m.Header, headerEvent, name)
	}
	if id, ok := e.ID(); ok {
		m.Header.Set(nats.MsgIdHdr, setExact(m.Header, headerID, id))
	}
	return m
}

// DecodeEvent reads an event that EncodeEvent made. Anyone may publish
// on NATS, so it is checked again: a body that is not UTF-8 becomes
// base64, as everywhere, and a name or id that cannot go on the wire is
// refused (the error wraps sse.ErrInvalidField).
func DecodeEvent(m *nats.Msg) (sse.Event, error) {
	name, _ := getExact(m.Header, headerEvent)
	id, _ := getExact(m.Header, headerID)
	return newEvent(name, id, defaultData(m.Data))
}

// exactSuffix marks a header holding its value in base64: NATS headers
// lose a value's leading white space, and control characters do not
// survive them either, but an id or a name must reach the browser byte
// for byte.
const exactSuffix = "-B64"

// setExact sets key to v, or key+exactSuffix to v in base64 when NATS
// would change v; it returns the value it set.
func setExact(h nats.Header, key, v string) string {
	if !headerSafe(v) {
		key, v = key+exactSuffix, base64.StdEncoding.EncodeToString([]byte(v))
	}
	h.Set(key, v)
	return v
}

// getExact reads what setExact set.
func getExact(h nats.Header, key string) (string, bool) {
	if vs := h.Values(key + exactSuffix); len(vs) > 0 {
		b, err := base64.StdEncoding.DecodeString(vs[0])
		return string(b), err == nil
	}
	if vs := h.Values(key); len(vs) > 0 {
		return vs[0], true
	}
	return "", false
}

// headerSafe reports whether a NATS header carries v unchanged.
func headerSafe(v string) bool {
	if v == "" || v[0] == ' ' || v[0] == '\t' || v[len(v)-1] == ' ' || v[len(v)-1] == '\t' {
		return false
	}
	for i := range len(v) {
		if v[i] < ' ' || v[i] == 0x7f {
			return false
		}
	}
	return true
}

// relayed is the Spec half shared by the kinds that publish their own
// events: a stream decodes what EncodeEvent made.
type relayed struct{ rng hcl.Range }

func (r relayed) Event(_ *hcl.EvalContext, m *nats.Msg) (sse.Event, error) { return DecodeEvent(m) }
func (r relayed) DefRange() hcl.Range                                      { return r.rng }
