// SPDX-License-Identifier: MIT

//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package memstore_test

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"testing"
	"time"
)

// childProcess is one test of this test binary running in a child process,
// which a parent test talks to through its stdout, line by line, as the
// lines come, and kills with SIGKILL.
type childProcess struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser // held open while the parent lives: see exitWithParent
	stderr bytes.Buffer   // read only once the child has exited
	eof    chan struct{}  // closed when the child's stdout ends, every line handled
}

// startChild runs the test of this binary that the -test.run pattern run
// selects in a child process, with env (KEY=value entries) added to this
// process's environment. It calls onLine, from one goroutine, with each line
// the child writes to its stdout and the time the line was read, which is
// after the child wrote it. The child is killed when t ends, if still alive.
func startChild(t *testing.T, run string, env []string, onLine func(line string, at time.Time)) *childProcess {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// No -test.v: the child's stdout holds only the lines its test writes,
	// and what the testing package prints if that test fails.
	c := &childProcess{cmd: exec.Command(exe, "-test.run="+run, "-test.count=1", "-test.timeout=5m")}
	c.cmd.Env = append(os.Environ(), env...)
	c.cmd.Stderr = &c.stderr
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c.eof = make(chan struct{})
	go func() {
		defer close(c.eof)
		lines := bufio.NewScanner(stdout)
		for lines.Scan() {
			onLine(lines.Text(), time.Now())
		}
	}()
	t.Cleanup(func() {
		if c.cmd.ProcessState == nil {
			c.cmd.Process.Kill()
			<-c.eof
			c.cmd.Wait()
		}
	})
	return c
}

// kill kills the child with SIGKILL, waits for the last of its lines to be
// handled and for it to exit, and fails t unless SIGKILL is what ended it
// and its stderr is empty: a data race the race detector found in the
// child, say, is reported there.
func (c *childProcess) kill(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		t.Fatalf("killing the child: %v", err)
	}
	<-c.eof
	c.cmd.Wait() // its error says what the ProcessState says
	if c.cmd.ProcessState.Exited() {
		t.Errorf("the child exited by itself, %v, before SIGKILL", c.cmd.ProcessState)
	}
	if c.stderr.Len() > 0 {
		t.Errorf("the child wrote to stderr:\n%s", c.stderr.Bytes())
	}
}

// exitWithParent makes a child process exit once its parent is gone, which
// closes the child's stdin, so that a parent that dies before killing its
// child leaves no process behind.
func exitWithParent() {
	go func() {
		io.Copy(io.Discard, os.Stdin)
		os.Exit(2)
	}()
}
