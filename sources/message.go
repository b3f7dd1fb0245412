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
	// Record is what a database or log source knows of the message
	// besides its body; nil for the other sources.
	Record *Record
}

// Record is the part of a message that only some sources have: the
// columns of an outbox row (postgres), the fields of a stream entry
// (redis), the key and place of a record (kafka). What a source does not
// have is null in msg.
type Record struct {
	Row       []byte            // a JSON object: msg.row
	Fields    map[string]string // msg.fields
	Key       []byte            // msg.key; nil is null
	Partition int32             // msg.partition, with Positioned
	Offset    int64             // msg.offset, with Positioned
	// Positioned says that Partition and Offset are set.
	Positioned bool
}

// msgField is one attribute of the msg object; a mapping builds only the
// attributes its expressions reference, so an unused msg.json never costs a
// JSON decode.
type msgField uint16

const (
	fieldSubject msgField = 1 << iota
	fieldSubjectTokens
	fieldHeaders
	fieldBody
	fieldBodyBase64
	fieldJSON
	fieldEvent
	fieldID
	fieldRow
	fieldFields
	fieldKey
	fieldPartition
	fieldOffset

	allFields = fieldOffset<<1 - 1
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
	{"row", fieldRow},
	{"fields", fieldFields},
	{"key", fieldKey},
	{"partition", fieldPartition},
	{"offset", fieldOffset},
}

// commonFields are the attributes msg has for every source; a source
// that brings more names them to msgAttrNames.
const commonFields = fieldSubject | fieldSubjectTokens | fieldHeaders | fieldBody | fieldBodyBase64 | fieldJSON | fieldEvent | fieldID

// msgAttrNames lists the attribute names of msg for a source that has
// the common ones and extra, for scope checks: msg.row on a kafka source
// is a typo found at load.
func msgAttrNames(extra ...msgField) []string {
	have := commonFields
	for _, f := range extra {
		have |= f
	}
	var names []string
	for _, f := range msgFields {
		if have&f.field != 0 {
			names = append(names, f.name)
		}
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
		default:
			attrs[f.name] = m.Record.value(f.field)
		}
	}
	return cty.ObjectVal(attrs)
}

// context is parent with msg in scope, built with the attributes in need;
// parent itself when need is empty (nothing evaluated there reads msg).
func (m *Message) context(parent *hcl.EvalContext, need msgField) *hcl.EvalContext {
	if need == 0 {
		return parent
	}
	ctx := parent.NewChild()
	ctx.Variables = map[string]cty.Value{"msg": m.value(need)}
	return ctx
}

// value is the msg attribute field of a record, null when the record does
// not have it.
func (r *Record) value(field msgField) cty.Value {
	null := cty.NullVal(cty.DynamicPseudoType)
	if r == nil {
		return null
	}
	switch field {
	case fieldRow:
		if r.Row != nil {
			return jsonValue(r.Row)
		}
	case fieldFields:
		if r.Fields != nil {
			return stringMap(r.Fields)
		}
	case fieldKey:
		if r.Key != nil {
			return cty.StringVal(strings.ToValidUTF8(string(r.Key), "\uFFFD"))
		}
	case fieldPartition:
		if r.Positioned {
			return cty.NumberIntVal(int64(r.Partition))
		}
	case fieldOffset:
		if r.Positioned {
			return cty.NumberIntVal(r.Offset)
		}
	}
	return null
}

// headersValue is a map from header name to its values joined with ", ",
// as HTTP folds repeated headers; names are canonical, as in HTTP, except
// a record's (Kafka header names are case-sensitive).
func (m *Message) headersValue() cty.Value {
	if len(m.Headers) == 0 {
		return cty.MapValEmpty(cty.String)
	}
	joined := make(map[string]string, len(m.Headers))
	for k, v := range m.Headers {
		if m.Record == nil {
			k = textproto.CanonicalMIMEHeaderKey(k)
		}
		if prev, ok := joined[k]; ok {
			v = append([]string{prev}, v...)
		}
		joined[k] = strings.Join(v, ", ")
	}
	return stringMap(joined)
}

// stringMap is m as a map of strings, invalid UTF-8 replaced.
func stringMap(m map[string]string) cty.Value {
	if len(m) == 0 {
		return cty.MapValEmpty(cty.String)
	}
	vals := make(map[string]cty.Value, len(m))
	for k, v := range m {
		vals[strings.ToValidUTF8(k, "\uFFFD")] = cty.StringVal(strings.ToValidUTF8(v, "\uFFFD"))
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
