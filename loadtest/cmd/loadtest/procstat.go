package main

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat.
// The kernel reports these fields in USER_HZ whatever its own tick rate,
// and USER_HZ is 100 on every Linux architecture Go supports; reading it
// with sysconf(_SC_CLK_TCK) would need cgo.
const clockTicks = 100

// procSample is what /proc says about one process at one moment.
type procSample struct {
	// CPU is user plus system time since the process started, all threads.
	CPU time.Duration
	// PeakRSS is VmHWM, the most resident memory the process has had.
	PeakRSS int64
	// RSS is VmRSS, resident memory now.
	RSS int64
	At  time.Time
}

// readProc samples /proc/<pid>; pid 0 means this process.
func readProc(pid int) (procSample, error) {
	dir := "/proc/self"
	if pid != 0 {
		dir = "/proc/" + strconv.Itoa(pid)
	}
	at := time.Now()
	stat, err := os.ReadFile(dir + "/stat")
	if err != nil {
		return procSample{}, err
	}
	cpu, err := parseStatCPU(string(stat))
	if err != nil {
		return procSample{}, fmt.Errorf("%s/stat: %w", dir, err)
	}
	status, err := os.ReadFile(dir + "/status")
	if err != nil {
		return procSample{}, err
	}
	peak, rss, err := parseStatusMemory(string(status))
	if err != nil {
		return procSample{}, fmt.Errorf("%s/status: %w", dir, err)
	}
	return procSample{CPU: cpu, PeakRSS: peak, RSS: rss, At: at}, nil
}

// parseStatCPU returns utime+stime from the text of /proc/<pid>/stat. The
// second field, the command name in parentheses, may itself contain spaces
// and parentheses, so fields are counted from the last ')'.
func parseStatCPU(stat string) (time.Duration, error) {
	end := strings.LastIndexByte(stat, ')')
	if end < 0 {
		return 0, fmt.Errorf("no command name in %q", truncate(stat, 80))
	}
	// After ")": field 3 (state) onwards; utime and stime are fields 14 and 15.
	fields := strings.Fields(stat[end+1:])
	const utime, stime = 14 - 3, 15 - 3
	if len(fields) <= stime {
		return 0, fmt.Errorf("%d fields after the command name, want at least %d", len(fields), stime+1)
	}
	u, err := strconv.ParseInt(fields[utime], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("utime: %w", err)
	}
	s, err := strconv.ParseInt(fields[stime], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stime: %w", err)
	}
	return time.Duration(u+s) * time.Second / clockTicks, nil
}

// parseStatusMemory returns VmHWM and VmRSS in bytes from the text of
// /proc/<pid>/status.
func parseStatusMemory(status string) (peak, rss int64, err error) {
	var havePeak, haveRSS bool
	sc := bufio.NewScanner(strings.NewReader(status))
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), ":")
		if !ok || (name != "VmHWM" && name != "VmRSS") {
			continue
		}
		f := strings.Fields(value)
		if len(f) != 2 || f[1] != "kB" {
			return 0, 0, fmt.Errorf("%s: %q is not \"<n> kB\"", name, strings.TrimSpace(value))
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %w", name, err)
		}
		if name == "VmHWM" {
			peak, havePeak = n<<10, true
		} else {
			rss, haveRSS = n<<10, true
		}
	}
	if !havePeak || !haveRSS {
		// A zombie has no memory lines: the process has already exited.
		return 0, 0, fmt.Errorf("no VmHWM/VmRSS (has the process exited?)")
	}
	return peak, rss, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
