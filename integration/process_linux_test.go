// SPDX-License-Identifier: MIT

package integration

import (
	"os/exec"
	"syscall"
)

func init() {
	// The kernel sends SIGKILL to the child when the thread that started it
	// exits. The Go runtime ends a thread only when a goroutine locked to it
	// exits, which no test here does, so in practice the child is killed when
	// the test binary dies.
	stopWithTestBinary = func(cmd *exec.Cmd) {
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	}
}
