package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/hashicorp/hcl/v2"

	"github.com/ssegate/ssegate/proxy/config"
	"github.com/ssegate/ssegate/sources"
	"github.com/ssegate/ssegate/sse"
)

// RefusedTopicsEvent is the first event of a stream whose route leaves
// out the topics its allow refuses (topics { refused = "drop" }); its
// data names them: {"topics":["..."]}.
const RefusedTopicsEvent = "ssegate-refused-topics"

// pickTopics reads the topics a client of a route with topics t asks
// for: each value of t's query parameter, checked as a path value is (it
// cannot add a wildcard or a token to a subject), sorted and each once,
// so that the same set in another order is the same stream.
func pickTopics(r *http.Request, t *config.Topics) ([]string, error) {
	return checkTopics(r.URL.Query()[t.Query], t)
}

// checkTopics checks the topics asked of a route with topics t, and
// returns them sorted, each once.
func checkTopics(asked []string, t *config.Topics) ([]string, error) {
	switch {
	case len(asked) == 0:
		return nil, fmt.Errorf("pick at least one topic: ?%s=NAME, repeated for more", t.Query)
	case len(asked) > t.Max:
		return nil, fmt.Errorf("%d topics asked; this route takes at most %d on one connection", len(asked), t.Max)
	}
	for _, v := range asked {
		if !sources.ValidToken(v) {
			return nil, fmt.Errorf("topic %.64q cannot stand in a NATS subject: at most %d bytes in NFC form, no dots, wildcards, white space or control characters", v, sources.MaxTokenLength)
		}
	}
	return slices.Compact(slices.Sorted(slices.Values(asked))), nil
}

// topicRefused is a topic allow refuses on a route that answers 403 for
// it; unlike other refusals, the client is told which.
type topicRefused struct{ topic string }

func (e *topicRefused) Error() string { return fmt.Sprintf("topic %q is not allowed", e.topic) }

// allowTopics evaluates rt's allow for each topic, with vars and the
// topic in scope, and returns the topics allowed and those refused; on a
// route that does not drop refused topics, the first refused is an
// error. A topic for which allow cannot be evaluated (a client's value
// it cannot take) is refused like one it says no to.
func allowTopics(rt *config.Route, vars *hcl.EvalContext, topics []string) (kept, refused []string, err error) {
	for _, t := range topics {
		err := allowed(rt, withTopic(vars, t))
		switch {
		case err != nil && rt.Topics.Drop:
			refused = append(refused, t)
		case errors.Is(err, errNotAllowed):
			return nil, nil, &topicRefused{t}
		case err != nil:
			return nil, nil, err
		default:
			kept = append(kept, t)
		}
	}
	if len(kept) == 0 {
		return nil, refused, errNotAllowed
	}
	return kept, refused, nil
}

// refusedTopicsEvent tells a client which of its topics were left out.
func refusedTopicsEvent(topics []string) sse.Event {
	data, _ := json.Marshal(struct {
		Topics []string `json:"topics"`
	}{topics})
	e, _ := sse.NewEvent(RefusedTopicsEvent, string(data)) // JSON of valid tokens
	return e
}
