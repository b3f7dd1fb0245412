package sseparse

import (
	"bytes"
	"fmt"
	"io"
)

var bom = []byte("\uFEFF")

// readLine returns the next line without its terminator, valid until the
// next call. A CR ends a line at once rather than waiting to see whether a
// LF follows, so an upstream that ends lines with lone CRs is not held back
// by one read; the LF, if it comes, is dropped then.
func (r *Reader) readLine() ([]byte, error) {
	r.line = r.line[:0]
	for {
		buf, err := r.buffered()
		if err != nil {
			return nil, err
		}
		if r.afterCR {
			r.afterCR = false
			if buf[0] == '\n' {
				r.discard(1)
				continue
			}
		}
		i := r.indexEOL(buf)
		end := i
		if i < 0 {
			end = len(buf)
		}
		if len(r.line)+end > r.max {
			return nil, fmt.Errorf("sseparse: line longer than %d bytes: %w", r.max, ErrTooLong)
		}
		r.line = append(r.line, buf[:end]...)
		if i < 0 {
			r.discard(len(buf))
			continue
		}
		r.afterCR = buf[i] == '\r'
		r.discard(i + 1)
		break
	}
	if r.atStart {
		// The BOM has no CR or LF in it, so it can only be in the first line.
		r.atStart = false
		return bytes.TrimPrefix(r.line, bom), nil
	}
	return r.line, nil
}

// buffered returns all unread buffered bytes, reading once if there are none.
// io.EOF is returned as is, so callers can compare against it.
func (r *Reader) buffered() ([]byte, error) {
	if r.br.Buffered() == 0 {
		if _, err := r.br.Peek(1); err == io.EOF {
			return nil, err
		} else if err != nil {
			return nil, fmt.Errorf("sseparse: reading stream: %w", err)
		}
	}
	buf, _ := r.br.Peek(r.br.Buffered()) // cannot fail: the bytes are buffered
	return buf, nil
}

// indexEOL returns the index of the first CR or LF in buf, or -1. It leans
// on the vectorised IndexByte: LF first, then CR only before that LF. lfFree
// remembers how far a LF search got, so a stream of lone-CR lines does not
// rescan the whole buffer for a LF at every line.
func (r *Reader) indexEOL(buf []byte) int {
	lf := bytes.IndexByte(buf[r.lfFree:], '\n')
	if lf < 0 {
		r.lfFree = len(buf)
	} else {
		lf += r.lfFree
		r.lfFree = lf
		buf = buf[:lf]
	}
	if cr := bytes.IndexByte(buf, '\r'); cr >= 0 {
		return cr
	}
	return lf
}

// discard consumes n buffered bytes, keeping lfFree relative to the next
// unread byte.
func (r *Reader) discard(n int) {
	r.br.Discard(n) // cannot fail: the bytes are buffered
	r.lfFree = max(r.lfFree-n, 0)
}
