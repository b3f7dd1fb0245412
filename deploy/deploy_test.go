// Package deploy_test checks the docker-compose example: its configs
// parse, and the nginx config in front of two ssegate replicas on a 3-node
// NATS cluster delivers events unbuffered, passes webhooks on, and lets a
// browser resume on the other replica. No Docker engine is needed: the
// NATS nodes run in-process and nginx is the one on the machine.
package deploy_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"

	"github.com/ssegate/ssegate/internal/loopback"
	"github.com/ssegate/ssegate/internal/needs"
	"github.com/ssegate/ssegate/internal/ssetest"
	"github.com/ssegate/ssegate/proxy"
	"github.com/ssegate/ssegate/proxy/config"
)

const wait = 10 * time.Second

func TestNATSConfigParses(t *testing.T) {
	t.Setenv("NATS_SERVER_NAME", "nats-2")
	opts, err := server.ProcessConfigFile("nats.conf")
	if err != nil {
		t.Fatal(err)
	}
	if opts.ServerName != "nats-2" || !opts.JetStream || opts.StoreDir != "/data" || opts.Cluster.Name != "ssegate" || len(opts.Routes) != 3 {
		t.Fatalf("nats.conf: name %q, JetStream %v in %q, cluster %q with %d routes", opts.ServerName, opts.JetStream, opts.StoreDir, opts.Cluster.Name, len(opts.Routes))
	}
}

// loadConfig reads ssegate.hcl with the environment a test sets.
func loadConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg, err := config.Load("ssegate.hcl")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func TestSSEGateConfigNeedsTheTokens(t *testing.T) {
	for _, name := range []string{"SSEGATE_DEPLOY_TOKEN", "SSEGATE_ADMIN_TOKEN"} {
		if _, err := config.Load("ssegate.hcl"); err == nil || !strings.Contains(err.Error(), name) {
			t.Fatalf("without %s: %v", name, err)
		}
		t.Setenv(name, "x")
	}
	cfg := loadConfig(t)
	if cfg.Admin == nil || len(cfg.Admin.Auth) == 0 || len(cfg.Routes) != 2 || cfg.NATS.URL == "" {
		t.Fatalf("config: admin %+v, %d routes, NATS %q", cfg.Admin, len(cfg.Routes), cfg.NATS.URL)
	}
}

// replica serves ssegate.hcl on 127.0.0.1 with the cluster's URLs.
func replica(t *testing.T) (*proxy.Server, *httptest.Server) {
	t.Helper()
	srv, err := proxy.New(loadConfig(t))
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		_ = srv.Shutdown(ctx)
		ts.Close()
	})
	return srv, ts
}

// startNginx runs the machine's nginx with nginx.conf, its upstreams
// pointed at the replicas, and returns its address.
func startNginx(t *testing.T, replicas ...string) string {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		needs.Skip(t, "nginx", "apt-get install nginx-light (.ci/run does)")
	}
	site, err := os.ReadFile("nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	addr := loopback.FreeAddr(t)
	conf := strings.Replace(string(site), "listen 80;", "listen "+addr+";", 1)
	// Docker's resolver and re-resolving names are for the compose
	// network; here the replicas are addresses (and nginx may predate
	// `resolve`).
	var lines []string
	for line := range strings.Lines(conf) {
		if !strings.HasPrefix(strings.TrimSpace(line), "resolver ") {
			lines = append(lines, strings.Replace(line, " resolve ", " ", 1))
		}
	}
	conf = strings.Join(lines, "")
	for i, r := range replicas {
		conf = strings.Replace(conf, fmt.Sprintf("ssegate-%d:8080", i+1), r, 1)
	}
	dir := t.TempDir()
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;" // workers write their temp files in dir
	}
	main := fmt.Sprintf(`%s
daemon off;
worker_processes 1;
pid %[2]s/nginx.pid;
error_log stderr warn;
events {}
http {
  access_log off;
  client_body_temp_path %[2]s/body;
  proxy_temp_path %[2]s/proxy;
  fastcgi_temp_path %[2]s/fastcgi;
  uwsgi_temp_path %[2]s/uwsgi;
  scgi_temp_path %[2]s/scgi;
  include %[2]s/site.conf;
}
`, user, dir)
	for name, text := range map[string]string{"site.conf": conf, "nginx.conf": main} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	logPath := filepath.Join(dir, "nginx.log")
	logs, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	cmd := exec.Command(bin, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-e", "stderr")
	cmd.Stdout, cmd.Stderr = logs, logs
	// Its own process group, so that its workers go with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	showLogs := func() string {
		b, _ := os.ReadFile(logPath)
		return string(b)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("nginx:\n%s", showLogs())
		}
	})
	deadline := time.Now().Add(wait)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx not listening on %s: %v\n%s", addr, err, showLogs())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestThroughNginx(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node NATS cluster and nginx")
	}
	nodes := loopback.Cluster(t, 3)
	urls := make([]string, len(nodes))
	for i, n := range nodes {
		urls[i] = n.ClientURL()
	}
	t.Setenv("SSEGATE_NATS_URL", strings.Join(urls, ","))
	t.Setenv("SSEGATE_DEPLOY_TOKEN", "change-me")
	t.Setenv("SSEGATE_ADMIN_TOKEN", "ops-token")
	t.Setenv("SSEGATE_TRUSTED_PROXIES", "127.0.0.1/32")
	srv1, ts1 := replica(t)
	_, ts2 := replica(t)
	lb := "http://" + startNginx(t, ts1.Listener.Addr().String(), ts2.Listener.Addr().String())

	nc, err := nats.Connect(urls[2])
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := nc.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	publish := func(data string) {
		t.Helper()
		if _, err := js.Publish("events", []byte(data)); err != nil {
			t.Fatal(err)
		}
	}

	// Each event comes through as it is published: nothing buffers it.
	events := ssetest.Open(t, http.DefaultClient, lb+"/events", nil)
	publish("one")
	first := events.Next()
	if first.Data != "one" || first.LastEventID == "" {
		t.Fatalf("event %+v", first)
	}

	deploys := ssetest.Open(t, http.DefaultClient, lb+"/deploys", nil)
	req, _ := http.NewRequest(http.MethodPost, lb+"/hooks/deploy", strings.NewReader(`{"service":"web"}`))
	req.Header.Set("Authorization", "Bearer change-me")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("webhook through nginx: %s", resp.Status)
	}
	if ev := deploys.Next(); ev.Type != "deploy" || ev.Data != `{"service":"web"}` {
		t.Fatalf("deploy event %+v", ev)
	}

	// One replica goes; the browser comes back through nginx, lands on
	// the other, and gets what it missed, once.
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := srv1.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	ts1.Close()
	publish("two")
	publish("three")
	resumed := ssetest.Open(t, http.DefaultClient, lb+"/events", http.Header{"Last-Event-Id": {first.LastEventID}})
	for _, want := range []string{"two", "three"} {
		if ev := resumed.Next(); ev.Data != want {
			t.Fatalf("after resuming: %+v, want %q", ev, want)
		}
	}
	publish("four")
	if ev := resumed.Next(); ev.Data != "four" {
		t.Fatalf("live after resuming: %+v", ev)
	}
}

// The image runs deploy/image.hcl, which holds no secret, refuses to
// start without its NATS, listens where a container can be reached and
// keeps the admin listener its HEALTHCHECK asks; and the compose file runs
// the nats-server version the tests run.
func TestImageConfig(t *testing.T) {
	dockerfile, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"COPY deploy/image.hcl /etc/ssegate/ssegate.hcl", `CMD ["/usr/local/bin/ssegate", "health"]`} {
		if !strings.Contains(string(dockerfile), want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	if strings.Contains(string(dockerfile), "COPY config.example.hcl") {
		t.Error("the image ships the example config, with its demo secrets")
	}
	if _, err := config.Load("image.hcl"); err == nil || !strings.Contains(err.Error(), "SSEGATE_NATS_URL") {
		t.Fatalf("without SSEGATE_NATS_URL: %v", err)
	}
	t.Setenv("SSEGATE_NATS_URL", "nats://nats:4222")
	cfg, err := config.Load("image.hcl")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "0.0.0.0:8080" || cfg.Admin == nil || cfg.Admin.Listen != "127.0.0.1:9090" || len(cfg.Auths) != 0 {
		t.Errorf("image config: listen %q, admin %+v, %d auth blocks", cfg.Listen, cfg.Admin, len(cfg.Auths))
	}

	gomod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, _ := strings.Cut(string(gomod), "github.com/nats-io/nats-server/v2 v")
	tested, _, _ := strings.Cut(rest, "\n")
	compose, err := os.ReadFile("docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(compose), "image: nats:"+tested+"-alpine") {
		t.Errorf("docker-compose.yml does not run nats:%s-alpine, the version go.mod tests", tested)
	}
}
