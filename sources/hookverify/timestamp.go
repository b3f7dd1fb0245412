package hookverify

import (
	"math"
	"strconv"
	"time"
)

// defaultTolerance is what senders that sign a timestamp recommend (Stripe,
// Standard Webhooks): wide enough for clock skew and retries in flight,
// narrow enough to make replaying a captured request useless.
const defaultTolerance = 5 * time.Minute

// maxUnix is the last second a Duration since the epoch can hold (year
// 2262). Nothing genuine is signed later, and refusing such values keeps the
// age arithmetic from overflowing.
const maxUnix = math.MaxInt64 / int64(time.Second)

func orDefault(tolerance time.Duration) time.Duration {
	if tolerance <= 0 {
		return defaultTolerance
	}
	return tolerance
}

// parseUnix reads a signed timestamp in unix seconds.
func parseUnix(raw string) (int64, error) {
	ts, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || ts < 0 || ts > maxUnix {
		return 0, reject("timestamp is not unix seconds")
	}
	return ts, nil
}

// checkAge refuses a timestamp too far from now in either direction: old
// ones are replays, future ones would stay replayable for longer than the
// tolerance. Ages are whole seconds because that is all the sender signs, so
// a request exactly at the tolerance passes.
func checkAge(ts int64, now time.Time, tolerance time.Duration) error {
	age := now.Truncate(time.Second).Sub(time.Unix(ts, 0))
	switch {
	case age > tolerance:
		return reject("timestamp is %v old, tolerance is %v", age, tolerance)
	case -age > tolerance:
		return reject("timestamp is in the future by %v, tolerance is %v", -age, tolerance)
	}
	return nil
}
