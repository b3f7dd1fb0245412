package sseparse

import "unicode/utf8"

// appendUTF8 appends src to dst with every maximal invalid subpart replaced
// by one U+FFFD, which is what the WHATWG UTF-8 decoder does. Go's own
// conversions replace each bad byte (range, []rune) or each bad run
// (strings.ToValidUTF8) instead, so they would hand subscribers a different
// number of U+FFFD than a browser reading the same upstream.
func appendUTF8(dst, src []byte) []byte {
	for len(src) > 0 {
		r, n := utf8.DecodeRune(src)
		if r == utf8.RuneError && n == 1 {
			dst = append(dst, "\uFFFD"...)
			n = invalidLen(src)
		} else {
			dst = append(dst, src[:n]...)
		}
		src = src[n:]
	}
	return dst
}

// invalidLen is the length of the maximal subpart at the start of p, which
// must not begin with a valid sequence: a lead byte plus the continuation
// bytes that could still have completed it. The byte that breaks the
// sequence is not part of it; the decoder reads it afresh.
func invalidLen(p []byte) int {
	lo, hi, need := byte(0x80), byte(0xBF), 0
	switch b := p[0]; {
	case 0xC2 <= b && b <= 0xDF:
		need = 1
	case b == 0xE0:
		lo, need = 0xA0, 2 // no overlong forms
	case b == 0xED:
		hi, need = 0x9F, 2 // no surrogates
	case 0xE1 <= b && b <= 0xEF:
		need = 2
	case b == 0xF0:
		lo, need = 0x90, 3 // no overlong forms
	case b == 0xF4:
		hi, need = 0x8F, 3 // nothing above U+10FFFF
	case 0xF1 <= b && b <= 0xF3:
		need = 3
	default:
		return 1
	}
	n := 1
	for n <= need && n < len(p) && lo <= p[n] && p[n] <= hi {
		lo, hi = 0x80, 0xBF
		n++
	}
	return n
}
