package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// procStats reads a process's resident memory and CPU time from /proc;
// with pid 0 it reads nothing and returns zeros.
type procStats struct{ pid int }

// clockTick is the kernel's USER_HZ, the unit of CPU times in /proc: 100
// on every Linux this runs on.
const clockTick = 100

// rss returns the resident set size in KiB.
func (p procStats) rss() int64 {
	if p.pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.pid))
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kib, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kib
		}
	}
	return 0
}

// sample reads the RSS every interval until ctx ends or the returned
// function is called, which stops it and gives the highest reading.
func (p procStats) sample(ctx context.Context, interval time.Duration) (peak func() int64) {
	if p.pid == 0 {
		return func() int64 { return 0 }
	}
	ctx, cancel := context.WithCancel(ctx)
	result := make(chan int64, 1)
	go func() {
		high := p.rss()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				high = max(high, p.rss())
			case <-ctx.Done():
				result <- max(high, p.rss())
				return
			}
		}
	}()
	return func() int64 {
		cancel()
		return <-result
	}
}

// cpu returns the user and system CPU time used so far.
func (p procStats) cpu() time.Duration {
	if p.pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.pid))
	if err != nil {
		return 0
	}
	return parseCPU(b)
}

// parseCPU reads utime and stime (fields 14 and 15) from a /proc stat
// line. The command name, field 2, is in parentheses and may hold spaces,
// so fields are counted from its closing parenthesis.
func parseCPU(stat []byte) time.Duration {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / clockTick
}
