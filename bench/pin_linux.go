package bench

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"
)

// allowedCPUs is the set of CPUs this process may run on (its affinity
// mask: a container's cpuset, taskset, …), ascending.
func allowedCPUs() ([]int, error) {
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(0, &set); err != nil {
		return nil, fmt.Errorf("sched_getaffinity: %w", err)
	}
	return cpuList(&set), nil
}

func cpuList(set *unix.CPUSet) []int {
	var out []int
	for i := range len(set) * 64 {
		if set.IsSet(i) {
			out = append(out, i)
		}
	}
	return out
}

// pinProcess restricts every thread of pid to cpus and checks that it took.
// Affinity is per thread in Linux, and a new thread inherits the mask of
// the thread that creates it: once a pass over /proc/<pid>/task finds no
// thread it has not pinned, the whole process stays pinned.
func pinProcess(pid int, cpus []int) error {
	var set unix.CPUSet
	for _, c := range cpus {
		set.Set(c)
	}
	pinned := map[int]bool{}
	for range 20 {
		tids, err := threads(pid)
		if err != nil {
			return err
		}
		fresh := false
		for _, tid := range tids {
			if pinned[tid] {
				continue
			}
			fresh = true
			if err := unix.SchedSetaffinity(tid, &set); err != nil {
				if errors.Is(err, unix.ESRCH) {
					continue // the thread exited meanwhile
				}
				return fmt.Errorf("sched_setaffinity(%d, %v): %w", tid, cpus, err)
			}
			var got unix.CPUSet
			if err := unix.SchedGetaffinity(tid, &got); err == nil && !slices.Equal(cpuList(&got), cpus) {
				return fmt.Errorf("thread %d runs on CPUs %v after asking for %v", tid, cpuList(&got), cpus)
			}
			pinned[tid] = true
		}
		if !fresh {
			return nil
		}
	}
	return fmt.Errorf("process %d kept starting threads while being pinned", pid)
}

// threads lists the thread ids of pid.
func threads(pid int) ([]int, error) {
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return nil, err
	}
	out := make([]int, 0, len(ents))
	for _, e := range ents {
		if tid, err := strconv.Atoi(e.Name()); err == nil {
			out = append(out, tid)
		}
	}
	return out, nil
}
