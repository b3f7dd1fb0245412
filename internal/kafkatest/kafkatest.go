// Package kafkatest gives the tests of the kafka source a Kafka to talk
// to: franz-go's in-process cluster (kfake), which speaks the Kafka wire
// protocol, or a real broker when SSEGATE_TEST_KAFKA_BROKERS names one
// (comma-separated host:port), so the same tests run against both.
package kafkatest

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// BrokersEnv names a real Kafka's brokers to test against instead of kfake.
const BrokersEnv = "SSEGATE_TEST_KAFKA_BROKERS"

var topics atomic.Int64

// Kafka is a cluster a test uses.
type Kafka struct {
	Brokers []string
	// Opts are what its clients need beyond the brokers (SASL, TLS).
	Opts []kgo.Opt
}

// Start returns a cluster until the test ends: a kfake cluster of its
// own, or the real brokers BrokersEnv names.
func Start(t testing.TB) *Kafka {
	t.Helper()
	if env := os.Getenv(BrokersEnv); env != "" {
		return &Kafka{Brokers: strings.Split(env, ",")}
	}
	return Fake(t)
}

// Fake returns a kfake cluster of the test's own, with opts (SASL, TLS),
// whatever BrokersEnv says; the caller sets Opts for its clients.
func Fake(t testing.TB, opts ...kfake.Opt) *Kafka {
	t.Helper()
	c, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(1)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return &Kafka{Brokers: c.ListenAddrs()}
}

// Topic creates a topic with a name of its own and the given partitions.
func (k *Kafka) Topic(t testing.TB, partitions int32) string {
	t.Helper()
	name := fmt.Sprintf("ssegate-test-%d-%d", time.Now().UnixNano(), topics.Add(1))
	cl := k.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := kadm.NewClient(cl).CreateTopic(ctx, partitions, 1, nil, name)
	if err == nil {
		err = res.Err
	}
	if err != nil {
		t.Fatalf("create topic %s: %v", name, err)
	}
	return name
}

// Client is a producer and admin client, closed when the test ends.
func (k *Kafka) Client(t testing.TB, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append(append([]kgo.Opt{kgo.SeedBrokers(k.Brokers...)}, k.Opts...), opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}
