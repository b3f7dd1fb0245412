package proxy

// history is a fixed-size ring of a stream's latest frames with their ids,
// for resuming clients. It is guarded by the stream's lock.
type history struct {
	entries []historyEntry
	next    int // where the next entry goes once the ring is full
	size    int
}

type historyEntry struct {
	id    string
	frame []byte
}

func newHistory(size int) history { return history{size: size} }

func (h *history) add(id string, frame []byte) {
	if h.size == 0 {
		return
	}
	if len(h.entries) < h.size {
		h.entries = append(h.entries, historyEntry{id, frame})
		return
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
		frames := make([][]byte, 0, len(h.entries)-1-i)
		for j := i + 1; j < len(h.entries); j++ {
			frames = append(frames, h.at(j).frame)
		}
		return frames, true
	}
	return nil, false
}

// lastID is the id of the newest event, or "" when there is none.
func (h *history) lastID() string {
	if len(h.entries) == 0 {
		return ""
	}
	return h.at(len(h.entries) - 1).id
}
