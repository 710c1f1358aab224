// SPDX-License-Identifier: MIT

package integration

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// What the launchers of the database servers that the tests start share:
// each server is a child process listening on a free port of 127.0.0.1,
// started for a test or benchmark and stopped, cleanly, when it ends.

// requirement is a program that a store needs and that may not be
// installed.
type requirement struct {
	// skipEnv names the environment variable that, set to 1, turns the
	// failure of the store's cases for want of the program into a skip.
	skipEnv string
	// find fails tb with a message saying how to install the program
	// (naming skipEnv), or skips tb when $skipEnv is 1, where the program
	// cannot be found.
	find func(tb testing.TB)
	// hide returns the environment (KEY=value entries) under which a child
	// process cannot find the program, using dir, an empty directory.
	hide func(dir string) []string
	// advice is what the failure for want of the program must say.
	advice []string
}

// skipEnvs returns the skipEnv of every store's requirement.
func skipEnvs() []string {
	var envs []string
	for _, k := range stores {
		if k.requires != nil && !slices.Contains(envs, k.requires.skipEnv) {
			envs = append(envs, k.requires.skipEnv)
		}
	}
	return envs
}

// skipOrFailMissing fails tb, or skips it when $skipEnv is 1, because the
// program that the cases of store need cannot be found (why), saying how to
// install it (install, one way per line).
func skipOrFailMissing(tb testing.TB, program, store, skipEnv string, why error, install ...string) {
	tb.Helper()
	if os.Getenv(skipEnv) == "1" {
		tb.Skipf("%s is not installed (%v) and %s=1: skipping the cases that run %s against a real server", program, why, skipEnv, store)
	}
	tb.Fatalf("%s is not installed (%v), and the cases that run %s need a real server.\n"+
		"Install it (the tests start and stop their own server on a free loopback port):\n\t%s\n"+
		"or set %s=1 to skip these cases.", program, why, store, strings.Join(install, "\n\t"), skipEnv)
}

// serverSpec says how to run one kind of server.
type serverSpec struct {
	name string // the program, as messages name it

	// command returns the command that runs the server in the foreground,
	// listening on port of 127.0.0.1 only.
	command func(port int) *exec.Cmd

	// ping checks that the server answers, and that it is the process s
	// started, not another that took its port first. Its timeouts must be
	// short, since launchServer calls it again: a listener that never
	// answers must not keep launchServer from seeing that the server exited.
	ping func(s *serverProcess) error

	// portTaken is what the server logs when its port was taken.
	portTaken string

	// stopSignal makes the server stop at once, cleanly.
	stopSignal os.Signal

	// afterStop, if not nil, checks what the server left behind once it
	// has exited cleanly, failing tb if it is wrong.
	afterStop func(tb testing.TB)
}

// serverProcess is a server started by launchServer.
type serverProcess struct {
	spec   serverSpec
	addr   string        // host:port, on 127.0.0.1
	port   int           // the port of addr
	cmd    *exec.Cmd     // the process
	exited chan struct{} // closed once cmd.Wait has returned
	log    *syncBuffer   // what it has written to stdout and stderr
	ready  bool          // it answered: launchServer returned it
	killed bool          // the test killed it: see kill
}

// serverStartTimeout bounds how long a server may take to answer, and
// serverStopTimeout how long it may take to exit once told to: generous, for
// a loaded machine.
const (
	serverStartTimeout = time.Minute
	serverStopTimeout  = time.Minute
)

// errPortTaken says that a server could not listen on the port it was given,
// taken by another process since freePort found it free.
var errPortTaken = errors.New("port taken")

// launchServer starts the server that spec describes on a free port of
// 127.0.0.1, waits until it answers, and stops it when tb ends.
func launchServer(tb testing.TB, spec serverSpec) *serverProcess {
	tb.Helper()
	for attempt := 1; ; attempt++ {
		s, err := tryLaunchServer(tb, spec, freePort(tb))
		if err == nil {
			return s
		}
		if !errors.Is(err, errPortTaken) || attempt == 5 {
			tb.Fatalf("starting %s: %v", spec.name, err)
		}
		tb.Logf("starting %s, attempt %d: %v; trying another port", spec.name, attempt, err)
	}
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// tryLaunchServer starts the server listening on port and waits until it
// answers. It returns errPortTaken, wrapped, when the port was taken.
func tryLaunchServer(tb testing.TB, spec serverSpec, port int) (*serverProcess, error) {
	s := &serverProcess{
		spec:   spec,
		addr:   net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		port:   port,
		cmd:    spec.command(port),
		exited: make(chan struct{}),
		log:    new(syncBuffer),
	}
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	stopWithTestBinary(s.cmd)
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		s.cmd.Wait()
		close(s.exited)
	}()
	tb.Cleanup(func() { s.stop(tb) })

	deadline := time.Now().Add(serverStartTimeout)
	for {
		late := time.Now().After(deadline)
		select {
		case <-s.exited:
			err := fmt.Errorf("%s on %s exited with %v before answering; its log:\n%s", spec.name, s.addr, s.cmd.ProcessState, s.log)
			if strings.Contains(s.log.String(), spec.portTaken) {
				err = fmt.Errorf("%w: %w", errPortTaken, err)
			}
			return nil, err
		default:
		}
		err := spec.ping(s)
		if err == nil {
			s.ready = true
			return s, nil
		}
		if late {
			return nil, fmt.Errorf("%s on %s did not answer within %v: %v; its log:\n%s", spec.name, s.addr, serverStartTimeout, err, s.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop stops the server with its stop signal (a kill where signals are not
// supported), kills it if it has not exited within serverStopTimeout, and
// fails tb if it exited before, did not exit cleanly, or left behind what
// its afterStop refuses. A server that never became ready is only killed:
// tryLaunchServer reported why.
func (s *serverProcess) stop(tb testing.TB) {
	name := s.spec.name
	select {
	case <-s.exited:
		if s.ready && !s.killed {
			tb.Errorf("%s on %s exited with %v before the test stopped it; its log:\n%s", name, s.addr, s.cmd.ProcessState, s.log)
		}
		return
	default:
	}
	if !s.ready {
		s.cmd.Process.Kill()
		<-s.exited
		return
	}
	if err := s.cmd.Process.Signal(s.spec.stopSignal); err != nil {
		s.cmd.Process.Kill()
	}
	select {
	case <-s.exited:
	case <-time.After(serverStopTimeout):
		s.cmd.Process.Kill()
		<-s.exited
		tb.Errorf("%s on %s still running %v after %v: killed; its log:\n%s", name, s.addr, serverStopTimeout, s.spec.stopSignal, s.log)
		return
	}
	if !s.cmd.ProcessState.Success() {
		tb.Errorf("%s on %s exited with %v after %v; want status 0; its log:\n%s", name, s.addr, s.cmd.ProcessState, s.spec.stopSignal, s.log)
		return
	}
	if s.spec.afterStop != nil {
		s.spec.afterStop(tb)
	}
}

// kill kills the server at once, as a crash would, and waits until it has
// exited, for the tests of what a client sees when its server goes down.
// stop then has nothing to do or check.
func (s *serverProcess) kill() {
	s.killed = true
	s.cmd.Process.Kill()
	<-s.exited
}

// idleConns is how many idle connections a pool of connections to a
// database keeps: more than the goroutines of the parallel benchmark and of
// the concurrency rule, so that every operation reuses a connection instead
// of opening and closing one.
func idleConns() int { return max(16, 2*runtime.GOMAXPROCS(0)) }

// expectEmptyWhenReleased registers with tb.Cleanup a check, made once the
// stores of tb are released, that count, what a database holds, is 0: the
// kit deletes every session it commits. It is not made when tb has failed.
func expectEmptyWhenReleased(tb testing.TB, what string, count func() (int, error)) {
	tb.Cleanup(func() {
		if tb.Failed() {
			return
		}
		n, err := count()
		if err != nil {
			tb.Errorf("counting the %s: %v", what, err)
		} else if n != 0 {
			tb.Errorf("the database holds %d %s once its stores are released; want 0: the kit deletes every session it commits", n, what)
		}
	})
}

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// stopWithTestBinary arranges, where the system allows it, for cmd to be
// killed when the test binary dies without stopping it (as on a -timeout
// panic, which runs no cleanup). process_linux_test.go sets it on Linux;
// elsewhere such a server is left running.
var stopWithTestBinary = func(*exec.Cmd) {}
