package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	gosse "github.com/tmaxmax/go-sse"

	"github.com/ssegate/ssegate/internal/loopback"
	"github.com/ssegate/ssegate/proxy"
	"github.com/ssegate/ssegate/proxy/config"
)

// selfSigned writes a certificate for 127.0.0.1 and its key into dir.
func selfSigned(t *testing.T, dir string) *x509.CertPool {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "ssegate test"},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for name, block := range map[string]*pem.Block{
		"cert.pem": {Type: "CERTIFICATE", Bytes: der},
		"key.pem":  {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return pool
}

// Streams are served over HTTP/2, with TLS and in cleartext (h2c).
func TestHTTP2OverTLSAndH2C(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pool := selfSigned(t, dir)
	var h2c http.Protocols
	h2c.SetUnencryptedHTTP2(true)
	tests := []struct {
		name, block, scheme string
		client              *http.Transport
	}{
		{"tls", "tls {\n  cert_file = \"cert.pem\"\n  key_file  = \"key.pem\"\n}\n", "https",
			&http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, ForceAttemptHTTP2: true}},
		{"h2c", "h2c = true\n", "http", &http.Transport{Protocols: &h2c}},
	}
	ns := loopback.NATS(t, "")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(dir, tt.name+".hcl")
			hcl := tt.block + "route \"/sse\" {\n  source \"nats\" { subject = \"" + tt.name + "\" }\n}\n"
			if err := os.WriteFile(path, []byte(hcl), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			nc, err := nats.Connect(ns.ClientURL())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			srv, err := proxy.New(cfg, proxy.WithNATS(nc))
			if err != nil {
				t.Fatal(err)
			}
			hs, err := newHTTPServer(cfg, srv)
			if err != nil {
				t.Fatal(err)
			}
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go func() { _ = serve(hs, ln) }()
			defer shutdown(srv, hs, wait, newLogger(cfg.Log, io.Discard))

			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, tt.scheme+"://"+ln.Addr().String()+"/sse", nil)
			req.Header.Set("Accept", "text/event-stream")
			resp, err := (&http.Client{Transport: tt.client}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusOK {
				t.Fatalf("%s %s, want HTTP/2 200", resp.Proto, resp.Status)
			}
			if err := nc.Publish(tt.name, []byte("over h2")); err != nil {
				t.Fatal(err)
			}
			for ev, err := range gosse.Read(resp.Body, nil) {
				if err != nil {
					t.Fatal(err)
				}
				if ev.Data != "over h2" {
					t.Fatalf("event %+v", ev)
				}
				break
			}
		})
	}
}
