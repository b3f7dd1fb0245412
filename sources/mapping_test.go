package sources

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/tryfunc"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/nats-io/nats.go"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"

	"github.com/ssegate/ssegate/sse"
)

var testFuncs = &hcl.EvalContext{Functions: map[string]function.Function{
	"jsonencode": stdlib.JSONEncodeFunc,
	"upper":      stdlib.UpperFunc,
	"try":        tryfunc.TryFunc,
}}

// parseSource parses the one source block in src.
func parseSource(t testing.TB, src string) *hcl.Block {
	t.Helper()
	f, diags := hclsyntax.ParseConfig([]byte(src), "t.hcl", hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	content, diags := f.Body.Content(&hcl.BodySchema{Blocks: []hcl.BlockHeaderSchema{{Type: "source", LabelNames: []string{"kind"}}}})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	return content.Blocks[0]
}

// decodeBlock parses one `source "nats"` block with a route scope of path.symbol.
func decodeBlock(t testing.TB, body string) (*natsSubject, hcl.Diagnostics) {
	t.Helper()
	return decodeNATSSubject(parseSource(t, `source "nats" {`+"\n"+body+"\n}"), testFuncs, RouteInfo{Path: "/s/{symbol}", Params: []string{"symbol"}})
}

func streamVars(symbol string) *hcl.EvalContext {
	ctx := testFuncs.NewChild()
	ctx.Variables = map[string]cty.Value{"path": cty.ObjectVal(map[string]cty.Value{"symbol": cty.StringVal(symbol)})}
	return ctx
}

// event is the valid event with name, id (none when empty) and data.
func event(name, id, data string) sse.Event {
	e, err := newEvent(name, id, data)
	if err != nil {
		panic(err)
	}
	return e
}

func TestMappingApply(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		block string
		msg   Message
		want  sse.Event
	}{
		{
			name:  "default data is the body",
			block: `subject = "s"`,
			msg:   Message{Subject: "s", Body: []byte("héllo\nworld")},
			want:  event("", "", "héllo\nworld"),
		},
		{
			name:  "binary body defaults to base64",
			block: `subject = "s"`,
			msg:   Message{Subject: "s", Body: []byte{0xff, 0x00, 0x01}},
			want:  event("", "", "/wAB"),
		},
		{
			name:  "explicit base64 and subject tokens",
			block: "subject = \"s\"\nevent = msg.subject_tokens[1]\ndata = msg.body_base64",
			msg:   Message{Subject: "stocks.AAPL", Body: []byte("hi")},
			want:  event("AAPL", "", "aGk="),
		},
		{
			name:  "fields from JSON and headers",
			block: "subject = \"s\"\nevent = msg.json.type\nid = msg.headers[\"Nats-Msg-Id\"]\ndata = msg.json.payload",
			msg: Message{Subject: "s", Headers: map[string][]string{"nats-msg-id": {"m-1"}},
				Body: []byte(`{"type":"quote","payload":{"price":1.5,"tags":["a"]}}`)},
			want: event("quote", "m-1", `{"price":1.5,"tags":["a"]}`),
		},
		{
			name:  "numbers and bools become text; path is in scope",
			block: "subject = \"s\"\nid = msg.json.n\nevent = upper(path.symbol)\ndata = msg.json.ok",
			msg:   Message{Subject: "s", Body: []byte(`{"n": 42, "ok": true}`)},
			want:  event("AAPL", "42", "true"),
		},
		{
			name:  "null id means the stream assigns one",
			block: "subject = \"s\"\nid = try(msg.json.id, null)",
			msg:   Message{Subject: "s", Body: []byte(`not json`)},
			want:  event("", "", "not json"),
		},
		{
			name:  "repeated headers are joined",
			block: "subject = \"s\"\ndata = msg.headers[\"X-Tag\"]",
			msg:   Message{Subject: "s", Headers: map[string][]string{"X-Tag": {"a", "b"}}},
			want:  event("", "", "a, b"),
		},
		{
			name:  "whole msg as JSON",
			block: "subject = \"s\"\ndata = jsonencode({subject = msg.subject, body = msg.body})",
			msg:   Message{Subject: "x.y", Body: []byte("b")},
			want:  event("", "", `{"body":"b","subject":"x.y"}`),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src, diags := decodeBlock(t, tt.block)
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			got, err := src.Mapping.Apply(streamVars("aapl"), &tt.msg)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// An event that cannot go on the wire is refused where it is made, before
// a source publishes or acknowledges anything.
func TestMappingRefusesWhatCannotBeSent(t *testing.T) {
	t.Parallel()
	for _, block := range []string{
		"subject = \"s\"\nid = \"a\\nb\"",
		"subject = \"s\"\nevent = \"quote\\rdata: x\"",
		"subject = \"s\"\nid = \"a\\u0000b\"",
	} {
		src, diags := decodeBlock(t, block)
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		if ev, err := src.Mapping.Apply(streamVars("x"), &Message{Body: []byte("ok")}); !errors.Is(err, sse.ErrInvalidField) {
			t.Errorf("%s: got %+v, %v; want an invalid field", block, ev, err)
		}
	}
	// What comes from NATS is checked again: anyone may publish there.
	m := nats.NewMsg("s")
	m.Header.Set(headerID+exactSuffix, base64.StdEncoding.EncodeToString([]byte("a\nb")))
	if ev, err := DecodeEvent(m); !errors.Is(err, sse.ErrInvalidField) {
		t.Errorf("decoded %+v, %v; want an invalid field", ev, err)
	}
}

func TestMappingErrorSaysWhichExpression(t *testing.T) {
	t.Parallel()
	src, diags := decodeBlock(t, "subject = \"s\"\nevent = msg.json.type")
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	_, err := src.Mapping.Apply(streamVars("x"), &Message{Body: []byte("not json")})
	if err == nil || !strings.Contains(err.Error(), "event expression") {
		t.Fatalf("err = %v, want an error naming the event expression", err)
	}
}

func TestOnlyReferencedFieldsAreBuilt(t *testing.T) {
	t.Parallel()
	src, _ := decodeBlock(t, "subject = \"s\"\nevent = msg.subject")
	if src.Mapping.need != fieldSubject {
		t.Errorf("need = %b, want only subject", src.Mapping.need)
	}
	src, _ = decodeBlock(t, "subject = \"s\"\ndata = jsonencode(msg)")
	if src.Mapping.need != allFields {
		t.Errorf("need = %b, want all fields", src.Mapping.need)
	}
}

func TestValidToken(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"AAPL", "a-b_c", "日本", "x/y", "jos\u00e9", strings.Repeat("a", MaxTokenLength)} {
		if !ValidToken(ok) {
			t.Errorf("ValidToken(%q) = false", ok)
		}
	}
	for _, bad := range []string{"", "a.b", "*", ">", "a b", "a\tb", "a\x00", "a\x7f", "\xff", "a\u00a0b", "a\u0085b",
		// Not NFC: HCL would make it "jos\u00e9", another user's token.
		"jose\u0301",
		strings.Repeat("a", MaxTokenLength+1)} {
		if ValidToken(bad) {
			t.Errorf("ValidToken(%q) = true", bad)
		}
	}
}

func TestValidSubject(t *testing.T) {
	t.Parallel()
	long := strings.Repeat(strings.Repeat("a", MaxTokenLength-1)+".", MaxSubjectLength/MaxTokenLength)
	for _, ok := range []string{"a", "a.b", "a.*.c", "a.>", ">", long[:MaxSubjectLength-1] + "b"} {
		if err := validSubject(ok); err != nil {
			t.Errorf("validSubject(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a..b", ".a", "a.", "a b", "a.>.b", "a*", "a.b>", "a.\x01", "a.\xff",
		long[:MaxSubjectLength] + "b", "t." + strings.Repeat("A", MaxTokenLength+1)} {
		if validSubject(bad) == nil {
			t.Errorf("validSubject(%q) = nil", bad)
		}
	}
}

// FuzzMapping holds that no body or header, however malformed, panics the
// mapping or yields data that is not UTF-8.
func FuzzMapping(f *testing.F) {
	f.Add([]byte(`{"type":"a","payload":[1,2]}`), "k", "v")
	f.Add([]byte{0xff, 0xfe}, "X-\xff", "\x00")
	f.Add([]byte(`{"type": {"nested": null}}`), "", "")
	f.Add([]byte(`[1e999999]`), "a", "b")
	src, diags := decodeBlock(f, "subject = \"s\"\nevent = try(msg.json.type, \"none\")\nid = try(msg.headers[\"K\"], null)\ndata = try(jsonencode(msg.json.payload), msg.body)")
	if diags.HasErrors() {
		f.Fatal(diags)
	}
	vars := streamVars("x")
	f.Fuzz(func(t *testing.T, body []byte, hk, hv string) {
		msg := Message{Subject: "a.b", Headers: map[string][]string{hk: {hv}}, Body: body}
		ev, err := src.Mapping.Apply(vars, &msg)
		if err != nil {
			return
		}
		id, _ := ev.ID()
		if !utf8.ValidString(ev.Data()) || !utf8.ValidString(ev.Name()) || !utf8.ValidString(id) {
			t.Fatalf("not UTF-8: %+v", ev)
		}
	})
}
