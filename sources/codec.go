package sources

import (
	"github.com/hashicorp/hcl/v2"
	"github.com/nats-io/nats.go"
)

// Headers that carry an event's name and id through NATS, between the
// replica that received or fetched it and the ones that deliver it.
const (
	headerEvent = "Ssegate-Event"
	headerID    = "Ssegate-Id"
)

// EncodeEvent makes the NATS message that carries ev to subject. The
// id also goes in Nats-Msg-Id, so a JetStream stream capturing the subject
// drops a retried webhook delivery.
func EncodeEvent(subject string, ev Event) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Data = []byte(ev.Data)
	if ev.Name != "" {
		m.Header.Set(headerEvent, ev.Name)
	}
	if ev.HasID {
		m.Header.Set(headerID, ev.ID)
		m.Header.Set(nats.MsgIdHdr, ev.ID)
	}
	return m
}

// DecodeEvent reads an event that EncodeEvent made; a body that is not
// UTF-8 (someone else published there) becomes base64, as everywhere.
func DecodeEvent(m *nats.Msg) Event {
	ev := Event{Name: m.Header.Get(headerEvent), Data: defaultData(m.Data)}
	if ids := m.Header.Values(headerID); len(ids) > 0 {
		ev.ID, ev.HasID = ids[0], true
	}
	return ev
}

// relayed is the Spec half shared by the kinds that publish their own
// events: a stream decodes what EncodeEvent made.
type relayed struct{ rng hcl.Range }

func (r relayed) Event(_ *hcl.EvalContext, m *nats.Msg) (Event, error) { return DecodeEvent(m), nil }
func (r relayed) DefRange() hcl.Range                                  { return r.rng }
