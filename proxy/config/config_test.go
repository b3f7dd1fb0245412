package config

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"
)

// Each fixture holds one mistake; the error must name the file, line and
// column of the mistake and say what is wrong.
func TestDiagnosticsPointAtTheMistake(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file string
		want []string
	}{
		{"unknown_attribute.hcl", []string{`unknown_attribute.hcl:4:3: error: Unsupported argument`, `"keeplive" is not expected`}},
		{"unknown_block.hcl", []string{`unknown_block.hcl:4:1: error: Unsupported block type`, `"metrics"`}},
		{"bad_duration.hcl", []string{`bad_duration.hcl:2:12: error: Invalid duration`, `"5 minutes" is not a duration`}},
		{"duplicate_route.hcl", []string{`duplicate_route.hcl:5:1: error: Duplicate route`, `already defined at testdata/duplicate_route.hcl:1:1`}},
		{"missing_subject.hcl", []string{`missing_subject.hcl:2:17: error: Missing required argument`, `"subject" is required`}},
		{"out_of_scope.hcl", []string{
			`out_of_scope.hcl:3:25: error: Unsupported attribute`, `path has no attribute "sym"; it has: "symbol"`,
			`out_of_scope.hcl:4:15: error: Unsupported attribute`, `msg has no attribute "payload"`,
			`out_of_scope.hcl:5:15: error: Unknown variable`, `no variable named "request"`,
		}},
		{"unset_env.hcl", []string{`unset_env.hcl:1:15: error: Invalid function argument`, `SSEGATE_TEST_SURELY_UNSET is not set`}},
		{"bad_subject.hcl", []string{`bad_subject.hcl:2:29: error: Invalid subject`, `empty token`}},
		{"bad_path.hcl", []string{`bad_path.hcl:1:7: error: Invalid route path`}},
		{"conflicting_routes.hcl", []string{`conflicting_routes.hcl:4:1: error: Conflicting paths`, `route "/a/{x}" at testdata/conflicting_routes.hcl:1:1`}},
		{"unknown_function.hcl", []string{`unknown_function.hcl:4:15: error: Call to unknown function`, `"json_encode". Did you mean "jsonencode"?`}},
		// The typo, not the missing source it leaves, is what is reported.
		{"misspelt_source.hcl", []string{`misspelt_source.hcl:2:3: error: Unsupported block type`, `Did you mean "source"?`}},
		{"bad_listen.hcl", []string{
			`bad_listen.hcl:1:10: error: Invalid listen address`, `port "http" is not a number`,
			`bad_listen.hcl:4:23: error: Invalid listen address`, `port "70000" is not a number from 0 to 65535`,
		}},
		{"no_source.hcl", []string{`no_source.hcl:1:1: error: Route without a source`}},
		{"admin_mistakes.hcl", []string{
			`admin_mistakes.hcl:4:12: error: Admin on the public listener`,
			`admin_mistakes.hcl:5:12: error: Unknown auth`, `no auth block named "ops"`,
		}},
		{"short_durations.hcl", []string{
			`short_durations.hcl:1:20: error: Duration too short`, `shutdown_timeout = "0s" is too short; use at least "1s"`,
			`short_durations.hcl:4:19: error: Duration too short`, `use "0s" to turn it off, or at least "1s"`,
			`short_durations.hcl:5:19: error: Duration too short`, `retry = "500us"`,
			`short_durations.hcl:6:19: error: Duration too short`, `write_timeout = "0s" is too short; use at least "1ms"`,
		}},
		{"database_mistakes.hcl", []string{
			`database_mistakes.hcl:4:13: error: Missing cursor`,
			`database_mistakes.hcl:9:11: error: Invalid dsn`,
			`database_mistakes.hcl:18:14: error: Unsupported attribute`, `msg has no attribute "fields"`,
			`database_mistakes.hcl:22:3: error: Nothing to read`,
			`database_mistakes.hcl:29:3: error: Missing subject`, `a redis source needs a subject`,
			`database_mistakes.hcl:38:22: error: Missing credentials`,
			`database_mistakes.hcl:39:22: error: Unsupported attribute`, `msg has no attribute "row"`,
			`database_mistakes.hcl:44:15: error: Invalid url`,
			`database_mistakes.hcl:53:3: error: Ids that can collide`, `the one at testdata/database_mistakes.hcl:49`,
			`database_mistakes.hcl:61:14: error: Query without a LIMIT`,
			`database_mistakes.hcl:70:3: error: Two sources read one place`, `both read topics as consumer group "ssegate:/j:a"`,
			`database_mistakes.hcl:88:3: error: Two sources read one place`, `both read stream "s" from one saved position`,
			`database_mistakes.hcl:80:15: error: Unreadable ca_file`, `testdata/missing-ca.pem: no such file`,
		}},
		{"webhook_mistakes.hcl", []string{
			`webhook_mistakes.hcl:2:3: error: Missing subject`, `says which stream a message feeds`,
			`webhook_mistakes.hcl:11:15: error: Subject does not match the route`, `has 2 parameter(s) and this subject reads the message in 1 part(s)`,
			`webhook_mistakes.hcl:19:22: error: Unknown variable`, `when no stream is known`,
			`webhook_mistakes.hcl:25:3: error: Missing verify block`, `verify "none" {}`,
			`webhook_mistakes.hcl:28:3: error: Conflicting paths`, `the webhook of route "/repos/{repo}" at testdata/webhook_mistakes.hcl:2:3`,
			`webhook_mistakes.hcl:30:32: error: Empty token`,
			`webhook_mistakes.hcl:34:30: error: Empty secret`,
			`webhook_mistakes.hcl:40:21: error: Invalid webhook path`, `clean absolute path without a trailing slash`,
			`webhook_mistakes.hcl:41:21: error: Duplicate method`, `POST is listed twice`,
			`webhook_mistakes.hcl:42:21: error: Invalid content type`,
			`webhook_mistakes.hcl:45:16: error: Empty header`,
		}},
		{"poll_mistakes.hcl", []string{
			`poll_mistakes.hcl:4:16: error: Subject shared by streams`, `does not use path.city`,
			`poll_mistakes.hcl:5:16: error: Duration too short`, `interval = "1ms"`,
			`poll_mistakes.hcl:6:16: error: Invalid emit`, `"sometimes"`,
			`poll_mistakes.hcl:8:16: error: Unsupported attribute`, `msg has no attribute "jsn"`,
		}},
		{"edge_mistakes.hcl", []string{
			`edge_mistakes.hcl:2:19: error: Invalid address`, `"proxy.internal" is neither an IP address nor a CIDR range`,
			`edge_mistakes.hcl:4:1: error: TLS with h2c`,
			`edge_mistakes.hcl:10:23: error: Any origin with credentials`,
			`edge_mistakes.hcl:15:17: error: Invalid max_clients`,
			`edge_mistakes.hcl:17:21: error: Invalid origin`, `without a path`, `browsers send origins in lower case`,
		}},
		{"auth_mistakes.hcl", []string{
			`auth_mistakes.hcl:2:17: error: Short secret`,
			`auth_mistakes.hcl:3:17: error: Unknown algorithm`, `"none" is not an algorithm ssegate verifies`,
			`auth_mistakes.hcl:3:17: error: Algorithm does not fit the key`, `RS256 needs an RSA key, and this block has a shared secret`,
			`auth_mistakes.hcl:6:1: error: JWT key`, `exactly one of hmac_secret, public_key_file and jwks_url`,
			`auth_mistakes.hcl:12:10: error: Unknown auth`, `no auth block named "admins"`,
			`auth_mistakes.hcl:15:15: error: Unknown variable`, `cannot read auth; use auth.claims in the subject`,
			`auth_mistakes.hcl:20:11: error: Unknown variable`, `no variable named "auth"`,
			`auth_mistakes.hcl:24:12: error: Invalid auth name`,
			`auth_mistakes.hcl:29:14: error: Invalid JWKS URL`, `fetch keys over https`,
			`auth_mistakes.hcl:34:11: error: Invalid allow`, `allow must be true or false`,
		}},
		{"history_mistakes.hcl", []string{
			`history_mistakes.hcl:2:3: error: History set twice`,
			`history_mistakes.hcl:4:17: error: Invalid store`,
			`history_mistakes.hcl:13:5: error: Limits of a stream ssegate does not own`, `stream = "ORDERS"`,
			`history_mistakes.hcl:20:5: error: Not for memory history`, `max_age applies to store = "jetstream"`,
		}},
		{"bad_numbers.hcl", []string{`bad_numbers.hcl:2:13: error: Invalid history`, `bad_numbers.hcl:3:13: error: Invalid buffer`}},
		{"control_mistakes.hcl", []string{
			`control_mistakes.hcl:2:3: error: Subject under the control subject`, `(ssegate.control.revoke) can fall under ssegate.control.>`,
			`control_mistakes.hcl:5:3: error: Subject under the control subject`, `(*.control.*)`,
			`control_mistakes.hcl:8:3: error: Subject under the control subject`, `(ssegate.>)`,
		}},
		{"presence_mistakes.hcl", []string{
			`presence_mistakes.hcl:7:15: error: Presence subject shared by streams`, `path.room`,
			`presence_mistakes.hcl:13:14: error: Claims without auth`,
			`presence_mistakes.hcl:15:3: error: Duplicate presence`,
			`presence_mistakes.hcl:20:15: error: Subject under the control subject`,
			`presence_mistakes.hcl:26:27: error: Unknown variable`,
		}},
		{"bad_control_subject.hcl", []string{`bad_control_subject.hcl:2:21: error: Invalid control_subject`}},
		{"topics_mistakes.hcl", []string{
			`topics_mistakes.hcl:3:15: error: Invalid query parameter`,
			`topics_mistakes.hcl:4:15: error: Invalid max`,
			`topics_mistakes.hcl:5:15: error: Invalid refused`,
			`topics_mistakes.hcl:7:3: error: Duplicate topics`,
			`topics_mistakes.hcl:10:15: error: Topic of a subject shared by topics`,
			`topics_mistakes.hcl:15:3: error: Source for a whole route on a route with topics`,
			`topics_mistakes.hcl:24:15: error: Subject shared by topics`,
			`topics_mistakes.hcl:28:19: error: Invalid slow_consumer`, `use one of ["disconnect" "drop" "latest"]`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			_, err := Load(filepath.Join("testdata", tt.file))
			var de *DiagnosticsError
			if !errors.As(err, &de) {
				t.Fatalf("Load: err = %v, want a *DiagnosticsError", err)
			}
			msg := err.Error()
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error does not contain %q:\n%s", w, msg)
				}
			}
		})
	}
}

// A misspelt source block is reported alone, not after the "Route without
// a source" it would also make.
func TestMisspeltSourceReportedAlone(t *testing.T) {
	t.Parallel()
	_, err := Load("testdata/misspelt_source.hcl")
	if err == nil || strings.Contains(err.Error(), "Route without a source") {
		t.Errorf("misspelt source: %v", err)
	}
}

func TestLoadFullConfig(t *testing.T) {
	t.Parallel()
	cfg, err := Load("testdata/full.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ShutdownDelay != 2*time.Second {
		t.Errorf("shutdown_delay = %v", cfg.ShutdownDelay)
	}
	if cfg.Admin == nil || cfg.Admin.Listen != "127.0.0.1:9100" || cfg.Admin.Auth != nil {
		t.Errorf("admin = %+v", cfg.Admin)
	}
	type route struct {
		Path                                   string
		Params                                 []string
		Keepalive, Retry, Linger, WriteTimeout time.Duration
		History, Buffer, Sources               int
	}
	var routes []route
	for _, r := range cfg.Routes {
		routes = append(routes, route{r.Path, r.Params, r.Keepalive, r.Retry, r.Linger, r.WriteTimeout, r.History, r.Buffer, len(r.Sources)})
	}
	got := struct {
		Listen          string
		ShutdownTimeout time.Duration
		Log             Log
		NATS            NATS
		Routes          []route
	}{cfg.Listen, cfg.ShutdownTimeout, cfg.Log, cfg.NATS, routes}
	want := got
	want.Listen = "0.0.0.0:9000"
	want.ShutdownTimeout = 3 * time.Second
	want.Log = Log{Level: zerolog.DebugLevel, Format: "json"}
	want.NATS = NATS{Name: "edge-1", Embedded: Embedded{Listen: "127.0.0.1:4333", StoreDir: "/tmp/ssegate-js"}, ControlSubject: DefaultControlSubject}
	want.Routes = []route{
		{"/stocks/{symbol}", []string{"symbol"}, 0, 2500 * time.Millisecond, time.Minute, 2 * time.Second, 10, 8, 2},
		{"/files/{rest...}", []string{"rest"}, DefaultKeepalive, 0, DefaultLinger, DefaultWriteTimeout, DefaultHistory, DefaultBuffer, 1},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("config mismatch (-want +got):\n%s", diff)
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	cfg, err := Parse([]byte(`route "/sse" {
  source "nats" { subject = "events" }
}`), "inline.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != DefaultListen || cfg.ShutdownTimeout != DefaultShutdownTimeout || cfg.NATS.URL != "" {
		t.Errorf("top-level defaults: %+v", cfg)
	}
	rt := cfg.Routes[0]
	if rt.Keepalive != DefaultKeepalive || rt.Retry != 0 || rt.History != DefaultHistory || rt.Linger != DefaultLinger || rt.Buffer != DefaultBuffer {
		t.Errorf("route defaults: %+v", rt)
	}
}

func TestFunctions(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "addr.txt"), []byte("127.0.0.1:7000"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("SSEGATE_TEST_TIMEOUT", "7s")
	src := `
listen           = trimspace(file("addr.txt"))
shutdown_timeout = env("SSEGATE_TEST_TIMEOUT")
log { level = env("SSEGATE_TEST_UNSET_LEVEL", "warn") }
nats { name = base64decode(base64encode(upper("a"))) }
allow_no_routes = true
`
	cfg, err := Parse([]byte(src), filepath.Join(dir, "ssegate.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:7000" || cfg.ShutdownTimeout != 7*time.Second || cfg.Log.Level != zerolog.WarnLevel || cfg.NATS.Name != "A" {
		t.Errorf("got listen %q, timeout %v, level %v, name %q", cfg.Listen, cfg.ShutdownTimeout, cfg.Log.Level, cfg.NATS.Name)
	}
}

// config.example.hcl says it shows every option: every attribute and
// block a schema of the config or of a source accepts appears in it, set
// or commented out.
func TestExampleConfigShowsEveryOption(t *testing.T) {
	t.Parallel()
	example, err := os.ReadFile("../../config.example.hcl")
	if err != nil {
		t.Fatal(err)
	}
	var code []byte
	for _, pattern := range []string{"*.go", "../../sources/*.go"} {
		files, _ := filepath.Glob(pattern)
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			code = append(code, b...)
		}
	}
	// A schema's entries, not a struct literal's Name field.
	attrs := regexp.MustCompile(`(?:^|[^A-Za-z0-9_.])\{Name: "([a-z_]+)"(, Required: true)?\}`).FindAllSubmatch(code, -1)
	blocks := regexp.MustCompile(`\{Type: "([a-z_]+)"`).FindAllSubmatch(code, -1)
	if len(attrs) < 50 || len(blocks) < 5 {
		t.Fatalf("found %d attributes and %d blocks in the schemas: the patterns no longer match the code", len(attrs), len(blocks))
	}
	for _, m := range attrs {
		if !regexp.MustCompile(`(^|[^a-z_])` + string(m[1]) + `\s*=`).Match(example) {
			t.Errorf("config.example.hcl does not show the attribute %s", m[1])
		}
	}
	for _, m := range blocks {
		if !regexp.MustCompile(`(^|[\s#])` + string(m[1]) + `\s*[{"]`).Match(example) {
			t.Errorf("config.example.hcl does not show the block %s", m[1])
		}
	}
}

// The shipped example must always load: README's quick start runs it.
func TestExampleConfigLoads(t *testing.T) {
	t.Parallel()
	if _, err := Load("../../config.example.hcl"); err != nil {
		t.Fatal(err)
	}
}

func TestEmbeddedWithURLIsRefused(t *testing.T) {
	t.Parallel()
	_, err := Parse([]byte(`nats {
  url = "nats://127.0.0.1:4222"
  embedded { listen = "127.0.0.1:4223" }
}`), "x.hcl")
	if err == nil || !strings.Contains(err.Error(), "x.hcl:3:3: error: Embedded server with a URL") {
		t.Fatalf("err = %v", err)
	}
}

// A route's fingerprint changes with its block, the auth blocks it names
// and the cors block it inherits, and with nothing else.
func TestRouteFingerprints(t *testing.T) {
	t.Parallel()
	parse := func(src string) map[string]string {
		t.Helper()
		cfg, err := Parse([]byte(src), "f.hcl")
		if err != nil {
			t.Fatal(err)
		}
		fp := map[string]string{}
		for _, rt := range cfg.Routes {
			fp[rt.Path] = rt.Fingerprint
		}
		return fp
	}
	const base = `
auth "bearer" "ops" { tokens = ["a"] }
cors { allow_origins = ["https://a.example"] }
route "/plain" {
  source "nats" { subject = "p" }
}
route "/authed" {
  auth = "ops"
  source "nats" { subject = "a" }
}
route "/own-cors" {
  cors { allow_origins = ["https://b.example"] }
  source "nats" { subject = "o" }
}
`
	old := parse(base)
	same := parse("# a comment first\n" + base + "\nlisten = \"127.0.0.1:9999\"\n")
	for path, fp := range old {
		if same[path] != fp {
			t.Errorf("%s changed with text outside its blocks", path)
		}
	}
	newToken := parse(strings.Replace(base, `tokens = ["a"]`, `tokens = ["b"]`, 1))
	newCORS := parse(strings.Replace(base, `"https://a.example"`, `"https://c.example"`, 1))
	newSubject := parse(strings.Replace(base, `subject = "p"`, `subject = "q"`, 1))
	for _, tc := range []struct {
		name    string
		got     map[string]string
		changed []string
	}{
		{"token", newToken, []string{"/authed"}},
		{"top-level cors", newCORS, []string{"/plain", "/authed"}},
		{"subject", newSubject, []string{"/plain"}},
	} {
		for path, fp := range old {
			if changed := tc.got[path] != fp; changed != slices.Contains(tc.changed, path) {
				t.Errorf("after a new %s, %s changed = %v", tc.name, path, changed)
			}
		}
	}
}

func TestPages(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte("<p>hi</p>"), 0o600); err != nil {
		t.Fatal(err)
	}
	route := "\nroute \"/sse\" {\n  source \"nats\" { subject = \"events\" }\n}\n"
	cfg, err := Parse([]byte(`page "/" { file = "index.html" }`+route), filepath.Join(dir, "c.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	if p := cfg.Pages[0]; p.Pattern() != "GET /{$}" || string(p.Body) != "<p>hi</p>" || p.ContentType != "text/html; charset=utf-8" {
		t.Errorf("page %+v", p)
	}
	for src, want := range map[string]string{
		`page "/a/{b}" { file = "index.html" }`: "c.hcl:1:6: error: Invalid page path",
		`page "/sse" { file = "index.html" }`:   "error: Conflicting paths",
		`page "/x" { file = "missing.html" }`:   "c.hcl:1:20: error: Unreadable page",
	} {
		if _, err := Parse([]byte(src+route), filepath.Join(dir, "c.hcl")); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", src, err, want)
		}
	}
}

// Every HCL example in the README and docs/ is a config ssegate takes:
// as it is when it has routes, with a route added when it shows only
// other blocks, and with the environment variables it reads set.
func TestDocsHCLExamples(t *testing.T) {
	pages, _ := filepath.Glob("../../docs/*.md")
	pages = append(pages, "../../README.md")
	block := regexp.MustCompile("(?s)```hcl\n(.*?)```")
	envs := regexp.MustCompile(`env\("([A-Z0-9_]+)"`)
	n := 0
	for _, page := range pages {
		text, err := os.ReadFile(page)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range block.FindAllSubmatch(text, -1) {
			n++
			src := string(m[1])
			for _, e := range envs.FindAllStringSubmatch(src, -1) {
				t.Setenv(e[1], "an-example-value-of-32-bytes-or-more")
			}
			if !strings.Contains(src, "route \"") {
				src += "\nroute \"/docs-example\" {\n  source \"nats\" { subject = \"docs.example\" }\n}\n"
			}
			if _, err := Parse([]byte(src), filepath.Join(filepath.Dir(page), "example.hcl")); err != nil {
				t.Errorf("%s, example %q:\n%v", page, firstLine(src), err)
			}
		}
	}
	if n < 3 {
		t.Fatalf("found %d HCL examples: the pattern no longer matches the docs", n)
	}
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
