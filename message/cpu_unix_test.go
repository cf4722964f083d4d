//go:build unix

package message_test

import (
	"syscall"
	"testing"
	"time"
)

// reportCPU adds cpu-ns/op: the CPU time the whole process (garbage
// collection included) spent per operation since start. On a busy machine
// wall time per operation mostly measures the wait for a core; CPU time
// stays comparable between runs.
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
