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
	// the test binary dies. The setting survives a change of user
	// (runAsUnprivileged), which the runtime makes before it.
	stopWithTestBinary = func(cmd *exec.Cmd) {
		if cmd.SysProcAttr == nil {
			cmd.SysProcAttr = new(syscall.SysProcAttr)
		}
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
}
