package proxy

import (
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/nats-io/nats.go"
	"github.com/zclconf/go-cty/cty"

	"github.com/ssegate/ssegate/proxy/config"
	"github.com/ssegate/ssegate/sources"
	"github.com/ssegate/ssegate/sse"
)

// part is what one source of a stream's route reads for one of the
// stream's topics: a stream has one part per source and topic (per
// source, on a route without topics).
type part struct {
	source  int    // index in the route's sources
	topic   int    // index in the stream's topics; -1: none (or shared by all)
	subject string // what it subscribes to
}

// withTopic is vars with topic.name set to name.
func withTopic(vars *hcl.EvalContext, name string) *hcl.EvalContext {
	child := vars.NewChild()
	child.Variables = map[string]cty.Value{"topic": cty.ObjectVal(map[string]cty.Value{"name": cty.StringVal(name)})}
	return child
}

// eventOf maps message m, received by part p, into its event. On a topic
// route an event the mapping leaves unnamed is named after its topic, so
// that one EventSource can dispatch a stream's topics by listener.
func (st *stream) eventOf(p part, m *nats.Msg) (sse.Event, error) {
	e, err := st.route.Sources[p.source].Event(st.mapVars(p.topic), m)
	if err == nil && p.topic >= 0 && e.Name() == "" {
		e, err = e.WithName(st.topics[p.topic])
	}
	return e, err
}

// conflationKey is what a client that conflates (slow_consumer =
// "latest") keeps one queued event of: the source's key for m, when it
// has one, or m's subject. Only such routes evaluate a key expression.
func (st *stream) conflationKey(p part, m *nats.Msg) string {
	if st.route.SlowConsumer != config.Latest {
		return m.Subject
	}
	if kd, ok := st.route.Sources[p.source].(sources.Keyed); ok {
		key, err := kd.Key(st.mapVars(p.topic), m)
		if err != nil {
			st.sampledWarn().Err(err).Msg("no conflation key; the subject stands for it")
		}
		if key != "" {
			return key
		}
	}
	return m.Subject
}

// partOf is the index of the part whose subject matches subject, or -1.
func (st *stream) partOf(subject string) int {
	for k, p := range st.parts {
		if subjectMatches(p.subject, subject) {
			return k
		}
	}
	return -1
}

// subjectList is every subject the stream reads, once each.
func (st *stream) subjectList() []string {
	subjects := make([]string, 0, len(st.parts))
	for _, p := range st.parts {
		if !slices.Contains(subjects, p.subject) {
			subjects = append(subjects, p.subject)
		}
	}
	return subjects
}

// plainSubjects are the stream's subjects, when none has a wildcard: such
// a stream is found by a map lookup on each.
func plainSubjects(st *stream) ([]string, bool) {
	subjects := st.subjectList()
	for _, s := range subjects {
		if strings.ContainsAny(s, "*>") {
			return nil, false
		}
	}
	return subjects, true
}
