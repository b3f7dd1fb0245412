package sources

import (
	"encoding/base64"
	"encoding/json"
	"net/textproto"
	"strings"
	"unicode/utf8"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

// Message is what a source received, before mapping: the context every
// per-message expression sees as msg.
type Message struct {
	Subject string
	Headers map[string][]string
	Body    []byte
	// Event and ID are an upstream SSE event's name and id, kept by
	// default; empty for other sources.
	Event string
	ID    string
}

// msgField is one attribute of the msg object; a mapping builds only the
// attributes its expressions reference, so an unused msg.json never costs a
// JSON decode.
type msgField uint8

const (
	fieldSubject msgField = 1 << iota
	fieldSubjectTokens
	fieldHeaders
	fieldBody
	fieldBodyBase64
	fieldJSON
	fieldEvent
	fieldID

	allFields = fieldSubject | fieldSubjectTokens | fieldHeaders | fieldBody | fieldBodyBase64 | fieldJSON | fieldEvent | fieldID
)

// msgFields names the attributes of msg, in the order the docs list them.
var msgFields = []struct {
	name  string
	field msgField
}{
	{"subject", fieldSubject},
	{"subject_tokens", fieldSubjectTokens},
	{"headers", fieldHeaders},
	{"body", fieldBody},
	{"body_base64", fieldBodyBase64},
	{"json", fieldJSON},
	{"event", fieldEvent},
	{"id", fieldID},
}

// msgAttrNames lists the attribute names of msg, for scope checks.
func msgAttrNames() []string {
	names := make([]string, len(msgFields))
	for i, f := range msgFields {
		names[i] = f.name
	}
	return names
}

// value builds the msg object with the attributes in need set and the rest
// null.
func (m *Message) value(need msgField) cty.Value {
	attrs := make(map[string]cty.Value, len(msgFields))
	for _, f := range msgFields {
		if need&f.field == 0 {
			attrs[f.name] = cty.NullVal(cty.DynamicPseudoType)
			continue
		}
		switch f.field {
		case fieldSubject:
			attrs[f.name] = cty.StringVal(m.Subject)
		case fieldSubjectTokens:
			attrs[f.name] = stringList(strings.Split(m.Subject, "."))
		case fieldHeaders:
			attrs[f.name] = m.headersValue()
		case fieldBody:
			attrs[f.name] = cty.StringVal(strings.ToValidUTF8(string(m.Body), "\uFFFD"))
		case fieldBodyBase64:
			attrs[f.name] = cty.StringVal(base64.StdEncoding.EncodeToString(m.Body))
		case fieldJSON:
			attrs[f.name] = jsonValue(m.Body)
		case fieldEvent:
			attrs[f.name] = optionalString(m.Event)
		case fieldID:
			attrs[f.name] = optionalString(m.ID)
		}
	}
	return cty.ObjectVal(attrs)
}

// context is parent with msg in scope, built with the attributes in need.
func (m *Message) context(parent *hcl.EvalContext, need msgField) *hcl.EvalContext {
	ctx := parent.NewChild()
	ctx.Variables = map[string]cty.Value{"msg": m.value(need)}
	return ctx
}

// headersValue is a map from canonical header name to its values joined with
// ", ", as HTTP folds repeated headers.
func (m *Message) headersValue() cty.Value {
	if len(m.Headers) == 0 {
		return cty.MapValEmpty(cty.String)
	}
	joined := make(map[string]string, len(m.Headers))
	for k, v := range m.Headers {
		k = textproto.CanonicalMIMEHeaderKey(k)
		if prev, ok := joined[k]; ok {
			v = append([]string{prev}, v...)
		}
		joined[k] = strings.Join(v, ", ")
	}
	vals := make(map[string]cty.Value, len(joined))
	for k, v := range joined {
		vals[k] = cty.StringVal(strings.ToValidUTF8(v, "\uFFFD"))
	}
	return cty.MapVal(vals)
}

// jsonValue decodes body as JSON, or is null when body is not JSON.
func jsonValue(body []byte) cty.Value {
	if !json.Valid(body) {
		return cty.NullVal(cty.DynamicPseudoType)
	}
	ty, err := ctyjson.ImpliedType(body)
	if err != nil {
		return cty.NullVal(cty.DynamicPseudoType)
	}
	v, err := ctyjson.Unmarshal(body, ty)
	if err != nil {
		return cty.NullVal(cty.DynamicPseudoType)
	}
	return v
}

// optionalString is s, or null when it is empty.
func optionalString(s string) cty.Value {
	if s == "" {
		return cty.NullVal(cty.String)
	}
	return cty.StringVal(s)
}

func stringList(ss []string) cty.Value {
	vals := make([]cty.Value, len(ss))
	for i, s := range ss {
		vals[i] = cty.StringVal(s)
	}
	return cty.ListVal(vals)
}

// defaultData is the data of a message with no data expression: the body as
// it is when it is UTF-8 text, otherwise its base64, because SSE is UTF-8
// text and raw binary would be mangled by every client.
func defaultData(body []byte) string {
	if utf8.Valid(body) {
		return string(body)
	}
	return base64.StdEncoding.EncodeToString(body)
}
