package sources

import (
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
)

func TestRegisterRefusesEmptyAndDuplicateKinds(t *testing.T) {
	t.Parallel()
	for _, kind := range []string{"", "nats"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%q) did not panic", kind)
				}
			}()
			Register(kind, decodePoll)
		}()
	}
	if got := strings.Join(Kinds(), ","); got != "kafka,nats,poll,postgres,redis,stream,webhook" {
		t.Errorf("Kinds() = %s", got)
	}
}

func TestDecodeUnknownKindNamesTheKinds(t *testing.T) {
	t.Parallel()
	_, diags := Decode(parseSource(t, `source "rabbitmq" {}`), &hcl.EvalContext{}, RouteInfo{Path: "/x"})
	if !diags.HasErrors() || !strings.Contains(diags.Error(), `There is no source kind "rabbitmq"; the kinds are: "kafka", "nats", "poll", "postgres", "redis", "stream", "webhook"`) {
		t.Errorf("diagnostics: %v", diags)
	}
}

// A fetching source whose mapping reads path must run per stream, where
// path has values; run once per route, every message would fail.
func TestFeedReadingPathInMappingRunsPerStream(t *testing.T) {
	t.Parallel()
	spec, diags := Decode(parseSource(t, `source "poll" {
  url  = "http://127.0.0.1:1/weather"
  data = "${path.city}: ${msg.body}"
}`), &hcl.EvalContext{}, RouteInfo{Path: "/w/{city}", Params: []string{"city"}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	if !spec.(Feeder).PerStream() {
		t.Error("poll whose data reads path runs once per route")
	}
}
