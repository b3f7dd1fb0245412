package sources

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/ssegate/ssegate/internal/hclattr"
)

// Defaults of a kafka block.
const (
	defaultKafkaCount    = 500
	defaultKafkaMaxBytes = 16 << 20
	kafkaLeaveTimeout    = 3 * time.Second
)

// kafkaSource is a `source "kafka" { ... }` block: the records of a topic,
// read as a member of a consumer group whose offsets are committed once
// NATS has the events.
type kafkaSource struct {
	relayed
	routing
	Mapping Mapping
	Brokers []string
	Topic   string
	Group   string
	Start   string // "earliest" or "latest": where a group without offsets starts
	Count   int
	opts    []kgo.Opt // TLS and SASL
}

var (
	_ Feeder     = (*kafkaSource)(nil)
	_ OwnIDs     = (*kafkaSource)(nil)
	_ Positioned = (*kafkaSource)(nil)
)

var kafkaSchema = &hcl.BodySchema{Attributes: append([]hcl.AttributeSchema{
	{Name: "brokers", Required: true}, {Name: "topic", Required: true}, {Name: "group"},
	{Name: "start"}, {Name: "count"}, {Name: "tls"}, {Name: "ca_file"},
	{Name: "sasl_mechanism"}, {Name: "sasl_username"}, {Name: "sasl_password"}, {Name: "subject"},
}, mappingAttrs...)}

func init() { Register("kafka", decodeKafka) }

func decodeKafka(block *hcl.Block, ctx *hcl.EvalContext, rt RouteInfo) (Spec, hcl.Diagnostics) {
	content, diags := block.Body.Content(kafkaSchema)
	a := content.Attributes
	k := &kafkaSource{relayed: relayed{block.DefRange}, Start: "earliest", Count: defaultKafkaCount}
	var useTLS bool
	var caFile, mechanism, user, password string
	diags = append(diags, hclattr.Strings(a, "brokers", ctx, &k.Brokers)...)
	diags = append(diags, hclattr.String(a, "topic", ctx, &k.Topic)...)
	diags = append(diags, hclattr.String(a, "group", ctx, &k.Group)...)
	diags = append(diags, hclattr.OneOf(a, "start", ctx, &k.Start, "earliest", "latest")...)
	diags = append(diags, hclattr.Int(a, "count", ctx, &k.Count, 1)...)
	diags = append(diags, hclattr.Bool(a, "tls", ctx, &useTLS)...)
	diags = append(diags, hclattr.String(a, "ca_file", ctx, &caFile)...)
	diags = append(diags, hclattr.OneOf(a, "sasl_mechanism", ctx, &mechanism, "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")...)
	diags = append(diags, hclattr.String(a, "sasl_username", ctx, &user)...)
	diags = append(diags, hclattr.String(a, "sasl_password", ctx, &password)...)
	if diags.HasErrors() {
		return k, diags
	}
	if a["group"] == nil {
		// A group of its own per route and topic: two routes reading one
		// topic each get every record.
		k.Group = "ssegate:" + rt.Path + ":" + k.Topic
	}
	if len(k.Brokers) == 0 || k.Topic == "" || k.Group == "" {
		diags = append(diags, hclattr.Errorf(block.DefRange, "Nothing to read", "A kafka source needs brokers (like [\"kafka-1:9092\"]), a topic and, when set, a group that are not empty.")...)
	}
	if caFile != "" || useTLS {
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if caFile != "" {
			// Relative to the config file, as every file a config names.
			if !filepath.IsAbs(caFile) {
				caFile = filepath.Join(filepath.Dir(block.DefRange.Filename), caFile)
			}
			pem, err := os.ReadFile(caFile)
			pool := x509.NewCertPool()
			switch {
			case err != nil:
				diags = append(diags, hclattr.Errorf(a["ca_file"].Expr.Range(), "Unreadable ca_file", "%v", err)...)
			case !pool.AppendCertsFromPEM(pem):
				diags = append(diags, hclattr.Errorf(a["ca_file"].Expr.Range(), "Invalid ca_file", "%s holds no PEM certificate.", caFile)...)
			}
			cfg.RootCAs = pool
		}
		k.opts = append(k.opts, kgo.DialTLSConfig(cfg))
	}
	if mechanism != "" {
		if user == "" || password == "" {
			diags = append(diags, hclattr.Errorf(a["sasl_mechanism"].Expr.Range(), "Missing credentials", "sasl_mechanism needs sasl_username and sasl_password.")...)
		}
		var m sasl.Mechanism
		switch mechanism {
		case "PLAIN":
			m = plain.Auth{User: user, Pass: password}.AsMechanism()
		case "SCRAM-SHA-256":
			m = scram.Auth{User: user, Pass: password}.AsSha256Mechanism()
		default:
			m = scram.Auth{User: user, Pass: password}.AsSha512Mechanism()
		}
		k.opts = append(k.opts, kgo.SASL(m))
	} else if a["sasl_username"] != nil || a["sasl_password"] != nil {
		diags = append(diags, hclattr.Errorf(block.DefRange, "Credentials without a mechanism", "Set sasl_mechanism (\"PLAIN\", \"SCRAM-SHA-256\" or \"SCRAM-SHA-512\") to send sasl_username and sasl_password.")...)
	}
	names := msgAttrNames(fieldKey, fieldPartition, fieldOffset)
	var d hcl.Diagnostics
	k.routing, d = decodeRouting(a, block, ctx, rt, "kafka", names, "orders.${msg.key}")
	diags = append(diags, d...)
	k.Mapping, d = decodeMapping(a, ctx, Scope{"msg": names})
	return k, append(diags, d...)
}

// OwnIDs reports whether events keep the ids the source gives them.
func (k *kafkaSource) OwnIDs() bool { return k.Mapping.ID == nil }

// ReadPlace is the group, on its cluster.
func (k *kafkaSource) ReadPlace() (key, what string) {
	brokers := slices.Sorted(slices.Values(k.Brokers))
	return "kafka\x00" + strings.Join(brokers, ",") + "\x00" + k.Group, fmt.Sprintf("topics as consumer group %q", k.Group)
}

// PerStream is false: one group member per replica serves the route.
func (k *kafkaSource) PerStream() bool { return false }

// Feed reads until ctx ends. Every replica is a member of the group,
// which shares the partitions out among them: no lease is needed.
func (k *kafkaSource) Feed(ctx context.Context, env FeedEnv) {
	env.Log = env.Log.With().Str("topic", k.Topic).Str("group", k.Group).Logger()
	handle := publishMapped(env, &k.Mapping, &k.routing)
	Run(ctx, &kafkaReader{k: k}, handle, env.Log, env.Status)
}

// kafkaReader is one group membership, across reconnects. A rebalance
// waits while a batch is being handed on, so the partitions move only
// once its offsets are committed: a record is handed on again only when
// its replica failed before committing, and then it has the same id.
type kafkaReader struct {
	k         *kafkaSource
	client    *kgo.Client
	commitErr error // the last commit's failure, told by the next Read
}

func (r *kafkaReader) Connect(ctx context.Context) error {
	k := r.k
	start := kgo.NewOffset().AtStart()
	if k.Start == "latest" {
		start = kgo.NewOffset().AtEnd()
	}
	opts := append([]kgo.Opt{
		kgo.SeedBrokers(k.Brokers...),
		kgo.ConsumerGroup(k.Group),
		kgo.ConsumeTopics(k.Topic),
		kgo.ConsumeResetOffset(start),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.FetchMaxBytes(defaultKafkaMaxBytes),
	}, k.opts...)
	client, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	if err := client.Ping(ctx); err != nil {
		client.Close()
		return err
	}
	r.client, r.commitErr = client, nil
	return nil
}

// Read returns the next records; an empty batch when a poll found none.
func (r *kafkaReader) Read(ctx context.Context) (Batch, error) {
	if err := r.commitErr; err != nil {
		// Reconnected, the member reads on from the last offsets
		// committed: nothing is lost, and the repeats have the same ids.
		return Batch{}, fmt.Errorf("commit offsets: %w", err)
	}
	// The last batch is committed (or this reader is being closed): the
	// group may rebalance now.
	r.client.AllowRebalance()
	fetches := r.client.PollRecords(ctx, r.k.Count)
	if fetches.IsClientClosed() {
		return Batch{}, errors.New("client closed")
	}
	if err := ctx.Err(); err != nil {
		return Batch{}, err
	}
	recs := fetches.Records()
	if len(recs) == 0 {
		var errs []error
		fetches.EachError(func(topic string, p int32, err error) {
			errs = append(errs, fmt.Errorf("%s[%d]: %w", topic, p, err))
		})
		if len(errs) > 0 {
			return Batch{}, fmt.Errorf("fetch: %w", errors.Join(errs...))
		}
		return Batch{}, nil
	}
	msgs := make([]Message, len(recs))
	for i, rec := range recs {
		msgs[i] = record(rec)
	}
	return Batch{Messages: msgs, Commit: func() {
		cctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
		defer cancel()
		// Not committed, the records are read again by whoever holds
		// their partition next, with the same ids.
		r.commitErr = r.client.CommitRecords(cctx, recs...)
	}}, nil
}

// record is a Kafka record as a message: its topic is msg.subject, its
// id partition-offset, unique in the topic.
func record(rec *kgo.Record) Message {
	var headers map[string][]string
	if len(rec.Headers) > 0 {
		headers = make(map[string][]string, len(rec.Headers))
		for _, h := range rec.Headers {
			headers[h.Key] = append(headers[h.Key], string(h.Value))
		}
	}
	return Message{
		Subject: rec.Topic,
		Headers: headers,
		Body:    rec.Value,
		ID:      strconv.Itoa(int(rec.Partition)) + "-" + strconv.FormatInt(rec.Offset, 10),
		Record:  &Record{Key: rec.Key, Partition: rec.Partition, Offset: rec.Offset, Positioned: true},
	}
}

func (r *kafkaReader) Close() error {
	if r.client != nil {
		// Leaving the group hands its partitions to the others at once;
		// what was read and not committed is read again there. A broker
		// out of reach must not hold up a shutdown: the group finds the
		// member gone after its session timeout instead.
		ctx, cancel := context.WithTimeout(context.Background(), kafkaLeaveTimeout)
		defer cancel()
		r.client.AllowRebalance()
		_ = r.client.LeaveGroupContext(ctx)
		r.client.CloseAllowingRebalance()
		r.client = nil
	}
	return nil
}
