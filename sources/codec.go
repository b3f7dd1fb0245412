package sources

import (
	"encoding/base64"

	"github.com/hashicorp/hcl/v2"
	"github.com/nats-io/nats.go"

	"github.com/ssegate/ssegate/sse"
)

// Headers that carry an event's name and id through NATS, between the
// replica that received or fetched it and the ones that deliver it.
const (
	headerEvent = "Ssegate-Event"
	headerID    = "Ssegate-Id"
)

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

func (r relayed) DefRange() hcl.Range { return r.rng }
