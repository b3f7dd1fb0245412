package proxy

// history is a fixed-size ring of a stream's latest frames with their ids,
// for resuming clients. It is guarded by the stream's lock.
type history struct {
	entries []historyEntry
	next    int // where the next entry goes once the ring is full
	size    int
	evicted bool           // an event has been lost to the ring's size
	ids     map[string]int // how many entries hold each id
}

type historyEntry struct {
	id    string
	frame []byte
}

// newHistory makes a history of up to size frames; it takes memory only as
// events come, as most streams of a per-user route have few or none.
func newHistory(size int) history { return history{size: size} }

func (h *history) add(id string, frame []byte) {
	if h.size == 0 {
		h.evicted = true
		return
	}
	if h.ids == nil {
		h.ids = map[string]int{}
	}
	h.ids[id]++
	if len(h.entries) < h.size {
		h.entries = append(h.entries, historyEntry{id, frame})
		return
	}
	h.evicted = true
	if old := h.entries[h.next].id; h.ids[old] > 1 {
		h.ids[old]--
	} else {
		delete(h.ids, old)
	}
	h.entries[h.next] = historyEntry{id, frame}
	h.next = (h.next + 1) % h.size
}

// at returns the i-th oldest entry.
func (h *history) at(i int) historyEntry {
	return h.entries[(h.next+i)%len(h.entries)]
}

// after returns the frames that followed the newest event with id, oldest
// first, and whether that event is still in the history.
func (h *history) after(id string) ([][]byte, bool) {
	for i := len(h.entries) - 1; i >= 0; i-- {
		if h.at(i).id != id {
			continue
		}
		return h.frames(i + 1), true
	}
	return nil, false
}

// all returns every frame since the first event, oldest first, and
// whether that is still possible.
func (h *history) all() ([][]byte, bool) {
	if h.evicted {
		return nil, false
	}
	return h.frames(0), true
}

// frames returns the frames from the i-th oldest on.
func (h *history) frames(i int) [][]byte {
	out := make([][]byte, 0, len(h.entries)-i)
	for ; i < len(h.entries); i++ {
		out = append(out, h.at(i).frame)
	}
	return out
}

// has reports whether an event with id is in the history.
func (h *history) has(id string) bool { return h.ids[id] > 0 }

// lastID is the id of the newest event, or "" when there is none.
func (h *history) lastID() string {
	if len(h.entries) == 0 {
		return ""
	}
	return h.at(len(h.entries) - 1).id
}
