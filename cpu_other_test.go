//go:build !unix

package ordersync

import "time"

// processCPU is -1 where the process's CPU time is not read.
func processCPU() time.Duration { return -1 }
