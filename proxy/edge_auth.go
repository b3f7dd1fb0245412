package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	ctyjson "github.com/zclconf/go-cty/cty/json"
	"golang.org/x/text/unicode/norm"

	"github.com/ssegate/ssegate/proxy/auth"
	"github.com/ssegate/ssegate/proxy/config"
)

// AuthExpiredEvent is the event a stream gets when the token that opened
// it expires, just before it is closed: the page fetches a fresh token (or
// ticket) and opens the stream again with its last event id.
const AuthExpiredEvent = "ssegate-auth-expired"

// authenticate lets the request in if one of the route's auth blocks
// accepts it, and answers 401 otherwise (EventSource does not retry a 401,
// and must not: its credentials will not get better by themselves).
func (s *Server) authenticate(g *snapshot, w http.ResponseWriter, r *http.Request, rt *config.Route) (*auth.Identity, bool) {
	if len(rt.Auth) == 0 {
		return &auth.Identity{}, true
	}
	id, denied := s.tryAuth(g, r, rt.Auth)
	if denied != nil {
		s.metrics.connections.WithLabelValues(rt.Path, denied.result()).Inc()
	}
	switch {
	case denied == nil:
		return id, true
	case denied.unavailable:
		s.warn.Warn().Str("route", rt.Path).Msg("auth service unavailable")
		s.comeBackLater(w, r, rt, http.StatusServiceUnavailable, "authentication unavailable; retry later")
	default:
		s.log.Debug().Str("route", rt.Path).Str("remote", r.RemoteAddr).Str("reason", denied.reason).Msg("stream unauthorized")
		denied.write(w)
	}
	return nil, false
}

// denial is why none of a set of auth blocks let a request in.
type denial struct {
	status     int // 401, or 403 for valid credentials not allowed
	reason     string
	challenges []string
	// unavailable: an auth service could not answer and none refused.
	unavailable bool
}

// tryAuth returns the identity from the first of the named auth blocks of
// snapshot g that accepts r, or why none did.
func (s *Server) tryAuth(g *snapshot, r *http.Request, names []string) (*auth.Identity, *denial) {
	d := &denial{status: http.StatusUnauthorized, reason: "credentials required"}
	unavailable, refusedOnce := false, false
	for _, name := range names {
		st := g.auths[name]
		if st == nil {
			continue // not in this snapshot: lets nobody in
		}
		a := st.au
		id, err := a.Authenticate(r)
		if err == nil {
			return id, nil
		}
		var refused *auth.Error
		switch {
		case errors.As(err, &refused):
			d.reason, d.status, refusedOnce = refused.Reason, refused.Status, true
		case errors.Is(err, auth.ErrUnavailable):
			unavailable = true
		}
		if c := a.Challenge(); !slices.Contains(d.challenges, c) {
			d.challenges = append(d.challenges, c)
		}
	}
	// Nobody said no, and one could not say: come back later.
	d.unavailable = unavailable && !refusedOnce
	return nil, d
}

// result is the denial as a result of ssegate_connections_total.
func (d *denial) result() string {
	switch {
	case d.unavailable:
		return connAuthUnavailable
	case d.status == http.StatusForbidden:
		return connForbidden
	}
	return connUnauthorized
}

// write answers 401 with the challenges, or 403, with the reason.
func (d *denial) write(w http.ResponseWriter) {
	if d.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", strings.Join(d.challenges, ", "))
	}
	http.Error(w, http.StatusText(d.status)+": "+d.reason, d.status)
}

// claimsValue turns verified claims into the value of auth.claims.
// HCL holds strings in Unicode NFC form, so a claim that NFC changes would
// be read as another claim's bytes (one user's "e" and combining accent
// as another's precomposed "é"): such claims are refused, not converted.
func claimsValue(claims map[string]any) (cty.Value, error) {
	if len(claims) == 0 {
		return cty.EmptyObjectVal, nil
	}
	if err := checkNFC(claims); err != nil {
		return cty.NilVal, err
	}
	raw, err := json.Marshal(claims)
	if err != nil {
		return cty.NilVal, err
	}
	ty, err := ctyjson.ImpliedType(raw)
	if err != nil {
		return cty.NilVal, err
	}
	return ctyjson.Unmarshal(raw, ty)
}

// checkNFC refuses a claim, or a key, that is not in NFC form.
func checkNFC(v any) error {
	switch v := v.(type) {
	case string:
		if !norm.NFC.IsNormalString(v) {
			return fmt.Errorf("claim value %.64q is not in Unicode NFC form", v)
		}
	case map[string]any:
		for k, e := range v {
			if !norm.NFC.IsNormalString(k) {
				return fmt.Errorf("claim name %.64q is not in Unicode NFC form", k)
			}
			if err := checkNFC(e); err != nil {
				return err
			}
		}
	case []any:
		for _, e := range v {
			if err := checkNFC(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// errNotAllowed is a client the route's allow expression turns away.
var errNotAllowed = errors.New("not allowed")

// allowed evaluates the route's allow expression for a client.
func allowed(rt *config.Route, vars *hcl.EvalContext) error {
	if rt.Allow == nil {
		return nil
	}
	v, diags := rt.Allow.Value(vars)
	if diags.HasErrors() {
		return fmt.Errorf("allow: %s", diags.Error())
	}
	b, err := convert.Convert(v, cty.Bool)
	if err != nil || b.IsNull() || !b.IsKnown() {
		return fmt.Errorf("allow gave %s, not true or false", v.Type().FriendlyName())
	}
	if b.False() {
		return errNotAllowed
	}
	return nil
}
