package bench

import (
	"os/exec"
	"syscall"
)

// setDeathSignal makes the kernel stop Caddy if the load driver dies without
// cleaning up (SIGKILL, a test timeout), so an aborted run leaves no server
// holding the ports and the bbolt file.
func setDeathSignal(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
