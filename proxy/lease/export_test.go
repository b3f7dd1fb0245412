package lease

import "time"

// SetRefresh makes l's holders rewrite their state every d.
func SetRefresh(l *Leases, d time.Duration) { l.refresh = d }
