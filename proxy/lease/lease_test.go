package lease_test

import (
	"context"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/ssegate/ssegate/internal/logbuf"
	"github.com/ssegate/ssegate/internal/loopback"
	"github.com/ssegate/ssegate/proxy/lease"
)

const ttl = 400 * time.Millisecond

// replica is one process's leases, on its own NATS connection.
type replica struct {
	nc     *nats.Conn
	leases *lease.Leases
	logs   logbuf.Buffer // what its leases logged
}

func newReplica(t *testing.T, ns *server.Server) *replica {
	t.Helper()
	return replicaAt(t, ns.ClientURL(), ttl)
}

// replicaAt is a replica connected to the NATS at url, with leases of the
// given TTL.
func replicaAt(t *testing.T, url string, ttl time.Duration) *replica {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	r := &replica{nc: nc}
	r.leases = lease.New(func() jetstream.JetStream { return js }, ttl, zerolog.New(io.MultiWriter(zerolog.NewTestWriter(t), &r.logs)))
	return r
}

// job counts how many holders run at once, and which ran.
type job struct {
	running, most atomic.Int32
	waits         atomic.Int32 // times a replica found the lease held by another
	saves         atomic.Int32 // runs whose first save has landed
	mu            sync.Mutex
	ran           []string
	saved         []string // what each run found saved
	finalErrs     []error  // what the save each run makes as it stops gave
}

func (j *job) as(name string) lease.Job {
	return func(ctx context.Context, saved []byte, save func(context.Context, []byte) error) {
		n := j.running.Add(1)
		for {
			m := j.most.Load()
			if n <= m || j.most.CompareAndSwap(m, n) {
				break
			}
		}
		j.mu.Lock()
		j.ran = append(j.ran, name)
		j.saved = append(j.saved, string(saved))
		j.mu.Unlock()
		if err := save(ctx, []byte("left by "+name)); err != nil && ctx.Err() == nil {
			panic(err)
		}
		j.saves.Add(1)
		<-ctx.Done()
		// As a feed saves its last progress on its way out.
		err := save(context.Background(), []byte("stopped "+name))
		j.mu.Lock()
		j.finalErrs = append(j.finalErrs, err)
		j.mu.Unlock()
		j.running.Add(-1)
	}
}

func (j *job) runs() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]string(nil), j.ran...)
}

// hold runs r's lease on key for j until the returned stop is called.
func hold(r *replica, key string, j *job, name string) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.leases.Hold(ctx, key, j.as(name), func() { j.waits.Add(1) })
	}()
	return func() {
		cancel()
		<-done
	}
}

func waitFor(t *testing.T, what string, within time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > within {
			t.Fatalf("%s: not within %v", what, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

// watchRevisions counts the writes to lease key that r sees, from now on.
func watchRevisions(t *testing.T, r *replica, key string) func() int {
	t.Helper()
	js, err := jetstream.New(r.nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	kv, err := js.KeyValue(ctx, lease.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	w, err := kv.Watch(ctx, key, jetstream.UpdatesOnly())
	if err != nil {
		t.Fatal(err)
	}
	var n atomic.Int32
	go func() {
		for e := range w.Updates() {
			if e != nil {
				n.Add(1)
			}
		}
	}()
	return func() int { return int(n.Load()) }
}

func TestOneHolderAndCleanHandOver(t *testing.T) {
	t.Parallel()
	ns := loopback.JetStream(t, t.TempDir())
	a, b := newReplica(t, ns), newReplica(t, ns)
	var j job
	stopA := hold(a, "poll.x", &j, "a")
	waitFor(t, "a runs", 5*time.Second, func() bool { return len(j.runs()) == 1 })
	renewals := watchRevisions(t, a, "poll.x")
	stopB := hold(b, "poll.x", &j, "b")
	defer stopB()
	// b waits: a whole TTL of renewals goes by without it running.
	waitFor(t, "b finds the lease held", 5*time.Second, func() bool { return j.waits.Load() > 0 })
	from := renewals()
	waitFor(t, "a renews for a TTL", 10*time.Second, func() bool { return renewals() >= from+5 })
	if got := j.runs(); len(got) != 1 {
		t.Fatalf("runs %v while a holds the lease", got)
	}
	stopA()
	// A released lease is taken at once, not after a TTL of silence as a
	// silent holder's is (which way it went is logged, whatever the time).
	took := waitFor(t, "b takes over", 5*time.Second, func() bool { return len(j.runs()) == 2 })
	t.Logf("taken over %v after release", took)
	if strings.Contains(b.logs.String(), "from a silent holder") {
		t.Error("b waited out a TTL for a lease that was released")
	}
	if got := j.runs(); got[1] != "b" {
		t.Fatalf("runs %v", got)
	}
	if j.most.Load() != 1 {
		t.Fatalf("%d holders ran at once", j.most.Load())
	}
	// A clean stop saves last; the next holder starts from there.
	if j.saved[0] != "" || j.saved[1] != "stopped a" || j.finalErrs[0] != nil {
		t.Fatalf("saved state seen: %q; a's last save: %v", j.saved, j.finalErrs[0])
	}
}

// A holder cut off from NATS stops its job within half a TTL; the other
// replica takes over once the lease has been silent for a TTL, so the two
// never run at once.
func TestSilentHolderIsTakenOver(t *testing.T) {
	t.Parallel()
	ns := loopback.JetStream(t, t.TempDir())
	a, b := newReplica(t, ns), newReplica(t, ns)
	var j job
	stopA := hold(a, "poll.y", &j, "a")
	defer stopA()
	// Cut off before its save lands, a would leave nothing to take over.
	waitFor(t, "a runs and saves", 5*time.Second, func() bool { return j.saves.Load() == 1 })
	stopB := hold(b, "poll.y", &j, "b")
	defer stopB()
	waitFor(t, "b finds the lease held", 5*time.Second, func() bool { return j.waits.Load() > 0 })
	a.nc.Close()
	// That they never overlap is checked below; how soon each step comes
	// is not the test's to time on a busy machine.
	waitFor(t, "a stops", 5*time.Second, func() bool { return j.running.Load() == 0 })
	took := waitFor(t, "b takes over", 5*time.Second, func() bool { return len(j.runs()) == 2 })
	t.Logf("taken over %v after a stopped", took)
	if j.most.Load() != 1 {
		t.Fatalf("%d holders ran at once", j.most.Load())
	}
	if got := j.runs(); got[1] != "b" || j.saved[1] != "left by a" {
		t.Fatalf("runs %v, saved %q", got, j.saved)
	}
}

// A holder whose NATS link stalls (renewals hang rather than fail) stops
// its job half a TTL after its last renewal, and its saves are refused
// from then on; the other replica takes over after a TTL of silence.
func TestStalledHolderStopsBeforeTakeover(t *testing.T) {
	t.Parallel()
	ns := loopback.JetStream(t, t.TempDir())
	link := loopback.NewLink(t, ns.Addr().String())
	a := replicaAt(t, "nats://"+link.Addr(), ttl)
	b := newReplica(t, ns)
	var j job
	defer hold(a, "poll.s", &j, "a")()
	waitFor(t, "a runs and saves", 5*time.Second, func() bool { return j.saves.Load() == 1 })
	defer hold(b, "poll.s", &j, "b")()
	waitFor(t, "b finds the lease held", 5*time.Second, func() bool { return j.waits.Load() > 0 })
	link.Pause()
	defer link.Resume()
	// What matters is that they never overlap (checked below), not how
	// soon each step comes on a busy machine.
	waitFor(t, "a stops", 5*time.Second, func() bool { return j.running.Load() == 0 })
	waitFor(t, "b takes over", 5*time.Second, func() bool { return len(j.runs()) == 2 })
	if j.most.Load() != 1 {
		t.Fatalf("%d holders ran at once", j.most.Load())
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.finalErrs[0] == nil || j.saved[1] != "left by a" {
		t.Fatalf("a's save after losing the lease: %v; b found %q", j.finalErrs[0], j.saved[1])
	}
}

// A save stuck on the stalled link when the fence goes off does not keep
// the job running: it is cancelled, and the job stops before the other
// replica, which has seen a TTL of silence, starts its own.
func TestStalledSaveDoesNotDelayTheFence(t *testing.T) {
	t.Parallel()
	ns := loopback.JetStream(t, t.TempDir())
	link := loopback.NewLink(t, ns.Addr().String())
	a := replicaAt(t, "nats://"+link.Addr(), ttl)
	b := newReplica(t, ns)
	var j job
	saving := make(chan struct{})
	var once sync.Once
	saver := func(ctx context.Context, saved []byte, save func(context.Context, []byte) error) {
		j.as("a")(ctx, saved, func(ctx context.Context, state []byte) error {
			if err := save(ctx, state); err != nil {
				return err
			}
			// Then a save that the paused link holds back.
			once.Do(func() { link.Pause(); close(saving) })
			return save(ctx, []byte("stuck"))
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	held := make(chan struct{})
	go func() {
		defer close(held)
		a.leases.Hold(ctx, "poll.f", saver, nil)
	}()
	defer func() { cancel(); <-held }()
	<-saving
	defer link.Resume()
	defer hold(b, "poll.f", &j, "b")()
	waitFor(t, "b takes over", 10*time.Second, func() bool { return len(j.runs()) == 2 })
	if j.most.Load() != 1 {
		t.Fatalf("%d holders ran at once", j.most.Load())
	}
}

// On a cluster the bucket is kept by three nodes: losing one must not stop
// every poll.
func TestBucketIsReplicatedOnACluster(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts a 3-node NATS cluster")
	}
	nodes := loopback.Cluster(t, 3)
	a := newReplica(t, nodes[0])
	var j job
	defer hold(a, "poll.r", &j, "a")()
	waitFor(t, "a runs", 10*time.Second, func() bool { return len(j.runs()) == 1 })
	js, err := jetstream.New(a.nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(context.Background(), lease.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	st, err := kv.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if r := st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.Replicas; r != 3 {
		t.Fatalf("bucket replicas = %d", r)
	}
}

// Without JetStream there is nothing to coordinate on: every replica runs
// its jobs.
func TestWithoutJetStreamJobsRunHere(t *testing.T) {
	t.Parallel()
	ns := loopback.NATS(t, "")
	a, b := newReplica(t, ns), newReplica(t, ns)
	var j job
	defer hold(a, "poll.z", &j, "a")()
	defer hold(b, "poll.z", &j, "b")()
	waitFor(t, "both run", 5*time.Second, func() bool { return j.running.Load() == 2 })
}

// Leases with different keys are independent.
func TestKeysAreIndependent(t *testing.T) {
	t.Parallel()
	ns := loopback.JetStream(t, t.TempDir())
	a, b := newReplica(t, ns), newReplica(t, ns)
	var j job
	defer hold(a, "poll.one", &j, "a")()
	defer hold(b, "poll.two", &j, "b")()
	waitFor(t, "both run", 5*time.Second, func() bool { return j.running.Load() == 2 })
}

// A holder that stopped its job because NATS stalled takes its lease back
// as soon as NATS answers again, if nobody took it meanwhile, rather than
// after a TTL of its own silence.
func TestStalledHolderTakesItsLeaseBack(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("waits out a stall of seconds")
	}
	const long = 3 * time.Second
	ns := loopback.JetStream(t, t.TempDir())
	link := loopback.NewLink(t, ns.Addr().String())
	a := replicaAt(t, "nats://"+link.Addr(), long)
	var j job
	defer hold(a, "poll.back", &j, "a")()
	waitFor(t, "a runs", 5*time.Second, func() bool { return len(j.runs()) == 1 })
	link.Pause()
	waitFor(t, "a stops its job", 5*time.Second, func() bool { return j.running.Load() == 0 })
	link.Resume()
	took := waitFor(t, "a runs again", 5*time.Second, func() bool { return len(j.runs()) == 2 })
	t.Logf("running again %v after NATS answered", took)
	// Taken back as its own, not after waiting out a TTL of silence as
	// any replica would (which way it went is logged, whatever the time).
	if strings.Contains(a.logs.String(), "from a silent holder") {
		t.Error("a waited out its own lease's TTL instead of taking it back")
	}
}

// A replica waiting for a lease whose NATS connection is replaced (NATS
// closed the old one for good) waits on through the new one, and takes
// the lease when its holder lets it go.
func TestWaiterMovesToANewConnection(t *testing.T) {
	t.Parallel()
	ns := loopback.JetStream(t, t.TempDir())
	a := newReplica(t, ns)
	jsFor := func() (*nats.Conn, jetstream.JetStream) {
		nc, err := nats.Connect(ns.ClientURL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(nc.Close)
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		return nc, js
	}
	oldNC, oldJS := jsFor()
	newNC, newJS := jsFor()
	var current atomic.Pointer[jetstream.JetStream]
	current.Store(&oldJS)
	b := &replica{nc: newNC}
	b.leases = lease.New(func() jetstream.JetStream { return *current.Load() }, ttl, zerolog.New(zerolog.NewTestWriter(t)))

	var j job
	stopA := hold(a, "poll.moved", &j, "a")
	waitFor(t, "a runs", 5*time.Second, func() bool { return len(j.runs()) == 1 })
	ctx, cancel := context.WithCancel(context.Background())
	waiting := make(chan struct{}, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.leases.Hold(ctx, "poll.moved", j.as("b"), func() {
			select {
			case waiting <- struct{}{}:
			default:
			}
		})
	}()
	defer func() { cancel(); <-done }()
	select {
	case <-waiting: // b watches the lease through its first connection
	case <-time.After(10 * time.Second):
		t.Fatal("b never found the lease held")
	}
	current.Store(&newJS)
	oldNC.Close()
	stopA()
	waitFor(t, "b to take the lease on its new connection", 10*time.Second, func() bool { return len(j.runs()) == 2 })
	if got := j.runs(); got[1] != "b" {
		t.Fatalf("runs %v", got)
	}
}

// A holder that took over saved state and has nothing new to save still
// rewrites it, so the bucket, which forgets what nobody touches for a
// day, keeps a quiet outbox's cursor while its source runs.
func TestTakenOverStateIsRefreshed(t *testing.T) {
	t.Parallel()
	ns := loopback.JetStream(t, t.TempDir())
	a, b := newReplica(t, ns), newReplica(t, ns)
	lease.SetRefresh(b.leases, 50*time.Millisecond)
	var j job
	stopA := hold(a, "poll.quiet", &j, "a")
	waitFor(t, "a runs and saves", 5*time.Second, func() bool { return j.saves.Load() == 1 })
	stopA()
	writes := watchRevisions(t, b, "poll.quiet.state")
	var taken atomic.Bool
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		b.leases.Hold(ctx, "poll.quiet", func(ctx context.Context, saved []byte, _ func(context.Context, []byte) error) {
			if string(saved) == "stopped a" {
				taken.Store(true)
			}
			<-ctx.Done() // saves nothing
		}, nil)
	}()
	defer func() { cancel(); <-done }()
	waitFor(t, "b takes the lease with a's state", 5*time.Second, taken.Load)
	waitFor(t, "b rewrites the state it took over", 5*time.Second, func() bool { return writes() >= 2 })
}
