package sources

import (
	"context"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/rs/zerolog"
)

// A poll's progress carries its validators, digest and keys, oldest
// first even once the key ring has wrapped, to a fresh reader.
func TestPollProgressRoundTrip(t *testing.T) {
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

// progressReader commits a batch per Read and reports its count as
// progress.
type progressReader struct {
	n, saved int
	resumed  string
}

func (r *progressReader) Connect(context.Context) error { return nil }
func (r *progressReader) Close() error                  { return nil }
func (r *progressReader) Read(ctx context.Context) (Batch, error) {
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

// Progress is saved at most every checkpointEvery while batches flow, and
// once more when the feed stops.
func TestRunCheckpointedSavesThrottledAndAtStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := &progressReader{}
		var saves []byte
		save := func(_ context.Context, b []byte) error { saves = append(saves, b...); return nil }
		ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond+time.Millisecond)
		defer cancel()
		handle := func(context.Context, Batch) error { return nil }
		runCheckpointed(ctx, r, []byte("from before"), save, handle, zerolog.Nop(), nil)
		if r.resumed != "from before" {
			t.Errorf("resumed from %q", r.resumed)
		}
		// Batches at 0.1 s, 0.2 s, ... 2.5 s: saves at the 1st, the first
		// a second later (11th), the 21st, and the 25th at the stop.
		if !slices.Equal(saves, []byte{1, 11, 21, 25}) {
			t.Errorf("saves %v", saves)
		}
	})
}
