//go:build !linux

package redistest

import "os/exec"

// setDeathSignal is a no-op where the kernel offers no parent-death signal;
// servers of an aborted run must then be stopped by hand.
func setDeathSignal(*exec.Cmd) {}
