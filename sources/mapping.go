package sources

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	ctyjson "github.com/zclconf/go-cty/cty/json"

	"github.com/ssegate/ssegate/sse"
)

// Mapping turns a Message into an sse.Event with the block's event, id and
// data expressions. A missing expression means the default: the message's own
// event name and id when it has them (an upstream SSE event), otherwise no
// name and an id assigned by the stream; and the body as data.
type Mapping struct {
	Event hcl.Expression
	ID    hcl.Expression
	Data  hcl.Expression
	// Key, when set, is a message's conflation key (a nats source's
	// conflation_key): see Keyed.
	Key hcl.Expression

	need msgField
}

// mappingAttrs are the attributes a source block shares for its mapping.
var mappingAttrs = []hcl.AttributeSchema{{Name: "event"}, {Name: "id"}, {Name: "data"}}

// decodeMapping takes the mapping attributes out of content and checks each
// expression against scope (the stream's variables plus msg, with the
// common attributes unless scope names those of its kind).
func decodeMapping(attrs hcl.Attributes, ctx *hcl.EvalContext, scope Scope) (Mapping, hcl.Diagnostics) {
	var m Mapping
	var diags hcl.Diagnostics
	msgScope := Scope{"msg": msgAttrNames()}
	for k, v := range scope {
		msgScope[k] = v
	}
	static := msgScope.placeholders(ctx)
	for _, f := range []struct {
		name string
		dst  *hcl.Expression
	}{{"event", &m.Event}, {"id", &m.ID}, {"data", &m.Data}, {"conflation_key", &m.Key}} {
		attr, ok := attrs[f.name]
		if !ok {
			continue
		}
		d := msgScope.Check(attr.Expr, ctx)
		if references(attr.Expr, "auth") {
			for _, diag := range d {
				if diag.Summary == "Unknown variable" {
					diag.Detail = "event, id and data are shared by every client of a stream, so they cannot read auth; use auth.claims in the subject, which gives each user a stream of their own."
				}
			}
		}
		if !d.HasErrors() {
			_, d = attr.Expr.Value(static)
		}
		diags = append(diags, d...)
		*f.dst = attr.Expr
		m.need |= msgFieldsUsed(attr.Expr)
	}
	return m, diags
}

// msgFieldsUsed is the set of msg attributes expr reads; a reference to msg
// as a whole needs them all.
func msgFieldsUsed(expr hcl.Expression) msgField {
	var need msgField
	for _, tr := range expr.Variables() {
		if tr.RootName() != "msg" {
			continue
		}
		name, ok := "", false
		if len(tr) > 1 {
			name, ok = stepName(tr[1])
		}
		if !ok {
			return allFields
		}
		for _, f := range msgFields {
			if f.name == name {
				need |= f.field
			}
		}
	}
	return need
}

// Apply evaluates the mapping for one message. streamCtx holds the stream's
// variables (path, ...) and the functions. The event is valid for the
// wire, or the error says why not (wrapping sse.ErrInvalidField), before
// anything is published or acknowledged.
func (m *Mapping) Apply(streamCtx *hcl.EvalContext, msg *Message) (sse.Event, error) {
	// What the message brings is the default for what the block leaves out.
	if m.Event == nil && m.ID == nil && m.Data == nil {
		return newEvent(msg.Event, msg.ID, defaultData(msg.Body))
	}
	return m.applyIn(msg.context(streamCtx, m.need), msg)
}

// applyIn is Apply with msg already in ctx (with at least the attributes
// the mapping needs), for a caller that evaluates more of the message
// in the same context.
func (m *Mapping) applyIn(ctx *hcl.EvalContext, msg *Message) (sse.Event, error) {
	// What the message brings is the default for what the block leaves out.
	name, id := msg.Event, msg.ID
	var data string
	var err error
	if m.Data == nil {
		data = defaultData(msg.Body)
	} else if data, _, err = evalText(m.Data, ctx, "data"); err != nil {
		return sse.Event{}, err
	}
	if m.Event != nil {
		if name, _, err = evalText(m.Event, ctx, "event"); err != nil {
			return sse.Event{}, err
		}
	}
	if m.ID != nil {
		if id, _, err = evalText(m.ID, ctx, "id"); err != nil {
			return sse.Event{}, err
		}
	}
	return newEvent(name, id, data)
}

// KeyOf is msg's conflation key: the conflation_key expression's value,
// or "" when the block has none.
func (m *Mapping) KeyOf(streamCtx *hcl.EvalContext, msg *Message) (string, error) {
	if m.Key == nil {
		return "", nil
	}
	key, _, err := evalText(m.Key, msg.context(streamCtx, m.need), "conflation_key")
	return key, err
}

// newEvent is the event named name carrying data, with id unless it is
// empty: an empty id line would make the browser forget its last id and
// resume from nothing, so "" means none of its own (the stream assigns
// one).
func newEvent(name, id, data string) (sse.Event, error) {
	e, err := sse.NewEvent(name, data)
	if err == nil && id != "" {
		e, err = e.WithID(id)
	}
	return e, err
}

// evalText evaluates expr to text: strings as they are, numbers and bools in
// their usual form, anything else as JSON. A nil expression or a null result
// is absent (ok false).
func evalText(expr hcl.Expression, ctx *hcl.EvalContext, what string) (text string, ok bool, err error) {
	if expr == nil {
		return "", false, nil
	}
	v, diags := expr.Value(ctx)
	if diags.HasErrors() {
		return "", false, fmt.Errorf("%s expression: %w", what, diags)
	}
	switch {
	case v.IsNull():
		return "", false, nil
	case !v.IsWhollyKnown():
		return "", false, fmt.Errorf("%s expression: value is not known", what)
	case v.Type() == cty.String || v.Type() == cty.Number || v.Type() == cty.Bool:
		s, err := convert.Convert(v, cty.String)
		if err != nil {
			return "", false, fmt.Errorf("%s expression: %w", what, err)
		}
		return s.AsString(), true, nil
	default:
		b, err := ctyjson.Marshal(v, v.Type())
		if err != nil {
			return "", false, fmt.Errorf("%s expression: encode as JSON: %w", what, err)
		}
		return string(b), true, nil
	}
}
