package config

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// streamBudget is the memory the default bound on streams plans for each:
// a stream without a client or history costs 2-3 KiB of the process's
// memory (bench/README.md says how that was measured), and the rest is
// room for its history.
const streamBudget = 16 << 10

// DefaultMaxStreams is the default of max_streams: as many streams, open
// or lingering, as a quarter of the memory this process may use holds at
// streamBudget each, between 1,000 and 1,000,000. The memory is the
// cgroup's limit when there is one (a container), else the machine's.
func DefaultMaxStreams() int {
	return min(max(int(memoryLimit()/4/streamBudget), 1_000), 1_000_000)
}

// memoryLimit is the cgroup v2 memory limit, else the machine's memory,
// else 4 GiB when neither can be read.
func memoryLimit() int64 {
	if b, err := os.ReadFile("/sys/fs/cgroup/memory.max"); err == nil {
		if n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && n > 0 {
			return n
		}
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
				kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
				if err == nil && kb > 0 {
					return kb << 10
				}
			}
		}
	}
	return 4 << 30
}
