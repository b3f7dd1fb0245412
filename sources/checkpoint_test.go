package sources

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"
)

// A poll's progress carries its validators, digest and keys, oldest
// first even once the key ring has wrapped, to a fresh reader.
func TestPollProgressRoundTrip(t *testing.T) {
	t.Parallel()
	r := &pollReader{seen: newKeySet(3), etag: `"v7"`, lastModified: "Tue, 01 Dec 2026 10:00:00 GMT"}
	r.digest[0] = 42
	for _, k := range []string{"a", "b", "c", "d"} {
		r.seen.add(k)
	}
	if r.progress() != nil {
		t.Fatal("progress reported with no commit since the last")
	}
	r.changed = true
	saved := r.progress()
	if saved == nil || r.progress() != nil {
		t.Fatal("progress given once per change")
	}
	next := &pollReader{seen: newKeySet(3)}
	if err := next.resume(saved); err != nil {
		t.Fatal(err)
	}
	if next.etag != r.etag || next.lastModified != r.lastModified || next.digest != r.digest {
		t.Fatalf("resumed %q %q %x", next.etag, next.lastModified, next.digest[:2])
	}
	if got := next.seen.list(); !slices.Equal(got, []string{"b", "c", "d"}) {
		t.Fatalf("keys %q", got)
	}
	for _, bad := range []string{`{`, `{"digest":"AAEC"}`} {
		if err := (&pollReader{seen: newKeySet(3)}).resume([]byte(bad)); err == nil {
			t.Errorf("resume(%s) accepted", bad)
		}
	}
}

// progressReader commits a batch per Read, every 100 ms for its first
// burst reads, then waits for ctx; its progress is its count.
type progressReader struct {
	burst    int
	n, saved int
	resumed  string
}

func (r *progressReader) Connect(context.Context) error { return nil }
func (r *progressReader) Close() error                  { return nil }
func (r *progressReader) Read(ctx context.Context) (Batch, error) {
	if r.n >= r.burst {
		<-ctx.Done()
		return Batch{}, ctx.Err()
	}
	select {
	case <-ctx.Done():
		return Batch{}, ctx.Err()
	case <-time.After(100 * time.Millisecond):
	}
	return Batch{Messages: []Message{{}}, Commit: func() { r.n++ }}, nil
}
func (r *progressReader) progress() []byte {
	if r.n == r.saved {
		return nil
	}
	r.saved = r.n
	return []byte{byte(r.n)}
}
func (r *progressReader) resume(b []byte) error { r.resumed = string(b); return nil }

// saves records what was saved, failing the first fail saves.
type saves struct {
	mu   sync.Mutex
	got  []byte
	fail int
}

func (s *saves) save(_ context.Context, b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail > 0 {
		s.fail--
		return errors.New("NATS unavailable")
	}
	s.got = append(s.got, b...)
	return nil
}

func (s *saves) list() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.got)
}

func runBurst(t *testing.T, burst int, s *saves, runFor time.Duration) *progressReader {
	t.Helper()
	r := &progressReader{burst: burst}
	ctx, cancel := context.WithTimeout(t.Context(), runFor)
	defer cancel()
	handle := func(context.Context, Batch) error { return nil }
	runCheckpointed(ctx, r, []byte("from before"), s.save, handle, zerolog.Nop(), nil)
	return r
}

// Progress is saved at once, then at most every checkpointEvery while
// batches flow, and the latest once more when the feed stops.
func TestCheckpointsThrottledAndAtStop(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s := &saves{}
		r := runBurst(t, 100, s, 2550*time.Millisecond)
		if r.resumed != "from before" {
			t.Errorf("resumed from %q", r.resumed)
		}
		got := s.list()
		if len(got) < 3 || len(got) > 4 || got[0] != 1 || got[len(got)-1] != 25 || !slices.IsSorted(got) {
			t.Errorf("saves %v: want the 1st batch, about one a second, and the 25th at the stop", got)
		}
	})
}

// A burst followed by quiet has its last progress saved during the quiet,
// not only at the next batch or the stop.
func TestCheckpointAfterBurstWhileQuiet(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s := &saves{}
		done := make(chan struct{})
		go func() { defer close(done); runBurst(t, 5, s, 10*time.Second) }()
		time.Sleep(9 * time.Second)
		synctest.Wait()
		got := s.list()
		<-done
		if len(got) == 0 || got[len(got)-1] != 5 {
			t.Errorf("saves %v after the quiet began: want the 5th batch's progress", got)
		}
	})
}

// A failed save is tried again: the progress is not lost.
func TestCheckpointRetriesAFailedSave(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		s := &saves{fail: 2}
		done := make(chan struct{})
		go func() { defer close(done); runBurst(t, 1, s, 10*time.Second) }()
		time.Sleep(9 * time.Second)
		synctest.Wait()
		got := s.list()
		<-done
		if !slices.Equal(got, []byte{1}) {
			t.Errorf("saves %v: want the progress saved once NATS takes it", got)
		}
	})
}

// A poll's progress keeps the newest keys that fit its bound.
func TestPollProgressKeepsTheNewestKeysThatFit(t *testing.T) {
	t.Parallel()
	r := &pollReader{seen: newKeySet(10), changed: true}
	big := maxProgressKeyBytes/2 - 1
	for _, c := range "abcd" {
		r.seen.add(strings.Repeat(string(c), big))
	}
	next := &pollReader{seen: newKeySet(10)}
	if err := next.resume(r.progress()); err != nil {
		t.Fatal(err)
	}
	got := next.seen.list()
	if len(got) != 2 || got[0][0] != 'c' || got[1][0] != 'd' {
		t.Fatalf("kept %d keys", len(got))
	}
}

// Whatever a lease bucket holds, resuming from it does not panic, and
// progress taken after a resume resumes to the same state.
func FuzzPollProgress(f *testing.F) {
	f.Add([]byte(`{"etag":"\"v1\"","digest":"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=","keys":["a","b"]}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"keys":null}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r := &pollReader{seen: newKeySet(16)}
		if err := r.resume(b); err != nil {
			return
		}
		r.changed = true
		again := &pollReader{seen: newKeySet(16)}
		if err := again.resume(r.progress()); err != nil {
			t.Fatalf("progress of a resumed reader does not resume: %v", err)
		}
		if again.etag != r.etag || again.lastModified != r.lastModified || again.digest != r.digest || !slices.Equal(again.seen.list(), r.seen.list()) {
			t.Fatal("a second resume differs from the first")
		}
	})
}
