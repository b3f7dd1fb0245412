package config

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Abuse: a config is text from outside too. None may crash, hang or
// exhaust the process that reads it, which on a reload is the running
// proxy, and no diagnostic may print what file() read.
func TestHostileConfigs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secret := filepath.Join(dir, "secret.txt")
	if err := os.WriteFile(secret, []byte("root:s3cr3t-hash:19000:0:99999:7:::"), 0o600); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.txt")
	if err := os.WriteFile(big, make([]byte, MaxFileSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	route := "\nroute \"/x\" {\n  source \"nats\" { subject = \"x\" }\n}\n"
	tests := []struct {
		name, src string
		want      []string
		never     string
	}{
		{"nested brackets", "x = " + strings.Repeat("[", 100_000) + strings.Repeat("]", 100_000),
			[]string{"c.hcl:1:105: error: Nested too deep", "more than 100 levels"}, ""},
		{"nested objects", "x = " + strings.Repeat("{a=", 200) + "1" + strings.Repeat("}", 200),
			[]string{"error: Nested too deep"}, ""},
		{"device", `listen = file("/dev/zero")` + route, []string{"/dev/zero is not a regular file"}, ""},
		{"fifo", `listen = file("fifo")` + route, []string{"fifo is not a regular file"}, ""},
		{"large file", `listen = file("big.txt")` + route, []string{"larger than 1048576 bytes"}, ""},
		{"secret in a diagnostic", `listen = file("secret.txt")` + route, []string{"c.hcl:1:10: error: Invalid listen address", "not shown"}, "s3cr3t"},
		{"secret in a template", `listen = "${file("secret.txt")}:80"` + route, []string{"error: Invalid listen address", "not shown"}, "s3cr3t"},
		{"empty", "", []string{"c.hcl:1:1: error: No routes", "allow_no_routes = true"}, ""},
		{"half written", "listen = \"127.0.0.1:8080\"\n", []string{"error: No routes"}, ""},
		{"admin open to the network", `admin { listen = "0.0.0.0:9090" }` + route, []string{"c.hcl:1:18: error: Admin open to the network", "/debug/pprof"}, ""},
		{"admin on every address", `admin { listen = ":9090" }` + route, []string{"error: Admin open to the network"}, ""},
		{"missing certificate", "tls {\n  cert_file = \"nope.pem\"\n  key_file  = \"nope.key\"\n}" + route, []string{"c.hcl:2:15: error: Unusable certificate", "nope.pem"}, ""},
		{"certificate that is not one", "tls {\n  cert_file = \"secret.txt\"\n  key_file  = \"secret.txt\"\n}" + route, []string{"c.hcl:2:15: error: Unusable certificate"}, "s3cr3t"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			done := make(chan error, 1)
			go func() {
				_, err := Parse([]byte(tt.src), filepath.Join(dir, "c.hcl"))
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("Parse did not return") // a FIFO would block it forever
			}
			if err == nil {
				t.Fatal("config accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
			if tt.never != "" && strings.Contains(err.Error(), tt.never) {
				t.Errorf("error prints the file's contents:\n%v", err)
			}
		})
	}
	for _, ok := range []string{
		"allow_no_routes = true\n",
		`admin { listen = "127.0.0.1:9090" }` + route,
		`admin { listen = "[::1]:9090" }` + route,
		// Nested as deep as allowed: the route's and the source's braces,
		// jsonencode's parenthesis, and lists for the rest.
		"route \"/x\" {\n  source \"nats\" {\n    subject = \"x\"\n    data = jsonencode(" +
			strings.Repeat("[", MaxNestingLevels-3) + strings.Repeat("]", MaxNestingLevels-3) + ")\n  }\n}\n",
	} {
		if _, err := Parse([]byte(ok), filepath.Join(dir, "c.hcl")); err != nil {
			t.Errorf("%.60q refused: %v", ok, err)
		}
	}
}
