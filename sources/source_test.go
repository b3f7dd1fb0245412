package sources

import (
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

func TestRegisterRefusesEmptyAndDuplicateKinds(t *testing.T) {
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
	if got := strings.Join(Kinds(), ","); got != "nats,poll,stream,webhook" {
		t.Errorf("Kinds() = %s", got)
	}
}

func TestDecodeUnknownKindNamesTheKinds(t *testing.T) {
	f, diags := hclsyntax.ParseConfig([]byte(`source "kafka" {}`), "x.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	content, _ := f.Body.Content(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "source", LabelNames: []string{"kind"}}}})
	_, diags = Decode(content.Blocks[0], &hcl.EvalContext{}, Route{Path: "/x"})
	if !diags.HasErrors() || !strings.Contains(diags.Error(), `There is no source kind "kafka"; the kinds are: "nats", "poll", "stream", "webhook"`) {
		t.Errorf("diagnostics: %v", diags)
	}
}
