package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The readings below come from /proc (Linux). Elsewhere they fail, and the
// report shows the figures as missing instead of guessing.

// resetPeakRSS starts a new high-water mark for the process's resident set
// (Linux ≥ 4.0), so a window's peak is its own and not the largest since
// the process started.
func resetPeakRSS(pid int) error {
	f, err := os.OpenFile(fmt.Sprintf("/proc/%d/clear_refs", pid), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString("5")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// peakRSS reads VmHWM, the process's peak resident set, in KiB.
func peakRSS(pid int) (int64, error) { return procStatus(pid, "VmHWM:") }

// currentRSS reads VmRSS, the process's resident set now, in KiB.
func currentRSS(pid int) (int64, error) { return procStatus(pid, "VmRSS:") }

// procStatus reads one "<field> <n> kB" line of /proc/<pid>/status.
func procStatus(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), field); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		}
	}
	if err := s.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

// userHZ is the unit of the CPU times in /proc/<pid>/stat: USER_HZ, fixed at
// 100 by the kernel's ABI whatever the kernel's own tick rate.
const userHZ = 100

// statFields returns the fields of /proc/<pid>/stat after the command name,
// so that index 0 is field 3 (state) of proc(5).
func statFields(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	// The command name in parentheses may hold spaces and parentheses.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return nil, errors.New("malformed /proc stat")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return nil, errors.New("malformed /proc stat")
	}
	return f, nil
}

// cpuTime reads the CPU time (user + system, all threads) the process has
// used so far.
func cpuTime(pid int) (time.Duration, error) {
	f, err := statFields(pid)
	if err != nil {
		return 0, err
	}
	var ticks int64
	for _, v := range f[11:13] { // utime, stime
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, err
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}

// busyCPU reads how long all CPUs together have been busy (user, nice,
// system, irq, softirq and steal in the first line of /proc/stat).
// Against the CPU time of the measured processes it shows how much else
// ran during a window.
func busyCPU() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 9 || f[0] != "cpu" {
		return 0, errors.New("malformed /proc/stat")
	}
	var ticks int64
	for i, v := range f[1:9] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, err
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / userHZ, nil
}

// cpuMeter sums the CPU time of a set of processes between two readings.
type cpuMeter struct {
	pids  []int
	start []time.Duration
	err   error
}

func startCPU(pids ...int) *cpuMeter {
	m := &cpuMeter{pids: pids, start: make([]time.Duration, len(pids))}
	for i, pid := range pids {
		if m.start[i], m.err = cpuTime(pid); m.err != nil {
			break
		}
	}
	return m
}

// used returns the CPU time each process used since startCPU, in order.
func (m *cpuMeter) used() ([]time.Duration, error) {
	if m.err != nil {
		return nil, m.err
	}
	out := make([]time.Duration, len(m.pids))
	for i, pid := range m.pids {
		t, err := cpuTime(pid)
		if err != nil {
			return nil, err
		}
		out[i] = t - m.start[i]
	}
	return out, nil
}

// childByName finds a child process of this one by its command name (as in
// /proc/<pid>/comm); with several, the highest pid. It exists for
// redis-server, which the shared test helper starts without handing out
// its pid.
func childByName(name string) (int, error) {
	dirs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return 0, err
	}
	self := os.Getpid()
	best := 0
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil || pid <= best {
			continue
		}
		comm, err := os.ReadFile(filepath.Join(d, "comm"))
		if err != nil || strings.TrimSpace(string(comm)) != name {
			continue
		}
		f, err := statFields(pid)
		if err != nil {
			continue
		}
		if ppid, _ := strconv.Atoi(f[1]); ppid == self {
			best = pid
		}
	}
	if best == 0 {
		return 0, fmt.Errorf("no child process named %s", name)
	}
	return best, nil
}
