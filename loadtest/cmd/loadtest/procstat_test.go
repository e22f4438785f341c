package main

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	t.Parallel()
	// A command name with spaces and parentheses, as a process may choose.
	stat := "4242 (my (odd) proc) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 70 0 0 20 0 8 0 100 1000000 500 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
	got, err := parseStatCPU(stat)
	if err != nil {
		t.Fatal(err)
	}
	if want := 3200 * time.Millisecond; got != want { // (250+70) ticks of 10 ms
		t.Errorf("cpu = %s, want %s", got, want)
	}
	for _, bad := range []string{"", "4242 (x) S 1 2", "4242 (x) S 1 2 3 4 5 6 7 8 9 10 u s"} {
		if _, err := parseStatCPU(bad); err == nil {
			t.Errorf("parseStatCPU(%q): no error", bad)
		}
	}
}

func TestParseStatusMemory(t *testing.T) {
	t.Parallel()
	status := "Name:\tworker\nVmPeak:\t 2000000 kB\nVmHWM:\t  812345 kB\nVmRSS:\t  700000 kB\nThreads:\t12\n"
	peak, rss, err := parseStatusMemory(status)
	if err != nil {
		t.Fatal(err)
	}
	if peak != 812345<<10 || rss != 700000<<10 {
		t.Errorf("peak %d rss %d", peak, rss)
	}
	// A zombie's status has no memory lines.
	if _, _, err := parseStatusMemory("Name:\tworker\nState:\tZ (zombie)\n"); err == nil || !strings.Contains(err.Error(), "exited") {
		t.Errorf("zombie: %v", err)
	}
}

func TestReadProcSelf(t *testing.T) {
	t.Parallel()
	before, err := readProc(0)
	if err != nil {
		t.Fatal(err)
	}
	// Burn ~50 ms of CPU so the tick-granular counter must move.
	x := 0
	for start := time.Now(); time.Since(start) < 50*time.Millisecond; {
		x++
	}
	_ = x
	after, err := readProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if after.CPU <= before.CPU {
		t.Errorf("CPU did not grow: %s then %s", before.CPU, after.CPU)
	}
	if after.RSS <= 0 || after.PeakRSS < after.RSS {
		t.Errorf("rss %d peak %d", after.RSS, after.PeakRSS)
	}
	if !after.At.After(before.At) {
		t.Errorf("sample times %s, %s", before.At, after.At)
	}
}

func TestMemTotal(t *testing.T) {
	t.Parallel()
	if got := memTotal("MemFree: 1 kB\nMemTotal:       24680000 kB\n"); got != 24680000<<10 {
		t.Errorf("memTotal = %d", got)
	}
	if got := memTotal("nothing"); got != 0 {
		t.Errorf("memTotal = %d", got)
	}
}
