package proxy_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	gosse "github.com/tmaxmax/go-sse"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/ssegate/ssegate/internal/kafkatest"
)

// Records reach the browsers of the stream their key picks, with their
// headers in reach of the mapping and their partition and offset as ids.
func TestKafkaRecordsReachBrowser(t *testing.T) {
	t.Parallel()
	k := kafkatest.Start(t)
	topic := k.Topic(t, 1)
	// The route of docs/kafka.md, without its credentials; its ids are
	// the records' partitions and offsets.
	h := start(t, docRoute(t, "kafka.md", 0, "history = 10", map[string]string{
		"brokers": fmt.Sprintf("%q", k.Brokers), "topic": strconv.Quote(topic),
		"sasl_mechanism": "", "sasl_username": "", "sasl_password": "", "tls": "",
	}))
	seven, eight := h.open("/orders/7", nil), h.open("/orders/8", nil)
	produce(t, k.Client(t), topic,
		&kgo.Record{Key: []byte("7"), Value: []byte("paid"), Headers: []kgo.RecordHeader{{Key: "kind", Value: []byte("payment")}}},
		&kgo.Record{Key: []byte("8"), Value: []byte("paid")},
		&kgo.Record{Key: []byte("7"), Value: []byte("shipped")})
	got := seven.ExpectData("paid", "shipped")
	if got[0].Type != "payment" || got[1].Type != "" {
		t.Errorf("event names %q, %q; want payment, then none", got[0].Type, got[1].Type)
	}
	if got[0].LastEventID != "0-0" || got[1].LastEventID != "0-2" {
		t.Errorf("ids %q, %q; want 0-0, 0-2", got[0].LastEventID, got[1].LastEventID)
	}
	eight.ExpectData("paid")
}

func produce(t *testing.T, cl *kgo.Client, topic string, recs ...*kgo.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	for _, r := range recs {
		r.Topic = topic
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// produceCount sends records n = 1 to count, keyed n%7, batch at a time.
func produceCount(ctx context.Context, t *testing.T, cl *kgo.Client, topic string, count, batch int) {
	for from := 1; from <= count && ctx.Err() == nil; from += batch {
		var recs []*kgo.Record
		for n := from; n < from+batch && n <= count; n++ {
			recs = append(recs, &kgo.Record{Topic: topic, Key: []byte(strconv.Itoa(n % 7)), Value: []byte(strconv.Itoa(n))})
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil && ctx.Err() == nil {
			t.Error(err)
			return
		}
	}
}

// eachOnceInKeyOrder checks that events carry 1 to n each once, and the
// records of a key (of a partition) in the order they were produced.
func eachOnceInKeyOrder(t *testing.T, got []gosse.Event, n int) {
	t.Helper()
	seen := make(map[int]bool, n)
	last := map[int]int{}
	for _, ev := range got {
		v, err := strconv.Atoi(ev.Data)
		if err != nil || v < 1 || v > n {
			t.Fatalf("unexpected event %q", ev.Data)
		}
		if seen[v] {
			t.Fatalf("record %d twice", v)
		}
		seen[v] = true
		if v < last[v%7] {
			t.Fatalf("record %d after %d, of the same key", v, last[v%7])
		}
		last[v%7] = v
	}
	if len(seen) != n {
		t.Fatalf("%d records of %d", len(seen), n)
	}
}

// 10,000 records are produced to a topic of 3 partitions while the group
// changes under them: a second instance joins, then the first leaves
// (cleanly, or killed: cut off from NATS first). The browser, on the
// first and then resuming on the second, gets every record once.
func TestKafkaRebalanceAndRestartLoseNothing(t *testing.T) {
	t.Parallel()
	for _, killed := range []bool{false, true} {
		t.Run(map[bool]string{false: "rebalance", true: "killed"}[killed], func(t *testing.T) {
			t.Parallel()
			const records = 10_000
			k := kafkatest.Start(t)
			topic := k.Topic(t, 3)
			hcl := fmt.Sprintf(`
route "/orders" {
  history { store = "jetstream" }
  source "kafka" {
    brokers = %q
    topic   = %q
  }
}`, k.Brokers, topic)
			got := handover{
				hcl:       hcl,
				path:      "/orders",
				events:    records,
				write:     func(ctx context.Context) { produceCount(ctx, t, k.Client(t), topic, records, 100) },
				joinEarly: true,
				killed:    killed,
			}.run(t)
			eachOnceInKeyOrder(t, got, records)
		})
	}
}

// The route of docs/kafka.md as it is, credentials and TLS included,
// against a cluster that asks for both: a wrong password is refused and
// retried, the right one reads.
func TestKafkaSASLAndTLS(t *testing.T) {
	t.Parallel()
	// httptest's certificate, for 127.0.0.1, stands for the cluster's.
	certs := httptest.NewUnstartedServer(nil)
	certs.StartTLS()
	certs.Close()
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certs.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	k := kafkatest.Fake(t, kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "ssegate", "s3cret"),
		kfake.TLS(&tls.Config{Certificates: certs.TLS.Certificates}))
	pool := x509.NewCertPool()
	pool.AddCert(certs.Certificate())
	k.Opts = []kgo.Opt{
		kgo.SASL(scram.Auth{User: "ssegate", Pass: "s3cret"}.AsSha512Mechanism()),
		kgo.DialTLSConfig(&tls.Config{RootCAs: pool}),
	}
	topic := k.Topic(t, 1)
	route := func(password string) string {
		return docRoute(t, "kafka.md", 0, "history = 10", map[string]string{
			"brokers": fmt.Sprintf("%q", k.Brokers), "topic": strconv.Quote(topic),
			"sasl_password": strconv.Quote(password), "tls": "true\n    ca_file = " + strconv.Quote(ca),
		})
	}
	wrong := start(t, route("wrong"))
	h := start(t, route("s3cret"))
	c := h.open("/orders/7", nil)
	produce(t, k.Client(t), topic, &kgo.Record{Key: []byte("7"), Value: []byte("paid")})
	c.ExpectData("paid")
	admin := httptest.NewServer(wrong.srv.Admin())
	defer admin.Close()
	eventually(t, "the wrong password to fail the source", func() bool {
		_, r := readyz(t, admin, nil)
		if len(r.Sources) == 1 && strings.Contains(r.Sources[0].Error, "wrong") {
			t.Errorf("the source's error shows its password: %s", r.Sources[0].Error)
		}
		return len(r.Sources) == 1 && r.Sources[0].State == "failing"
	})
}
