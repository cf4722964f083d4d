//go:build !linux

package bench

import "os/exec"

// setDeathSignal is a no-op where the kernel has no parent-death signal;
// the Caddy of an aborted run must then be stopped by hand.
func setDeathSignal(*exec.Cmd) {}
