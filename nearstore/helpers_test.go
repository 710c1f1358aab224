// SPDX-License-Identifier: MIT

package nearstore

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/rueidis"
)

// The tests run against a real redis-server, started on a free port of
// 127.0.0.1 in a temporary directory, without persistence, and stopped when
// the test ends. Where redis-server is missing they fail, saying how to
// install it: nothing is skipped.

// redisServer is a redis-server started by a test.
type redisServer struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	args []string // extra arguments, as --KEY VALUE pairs

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	log    *bytes.Buffer
}

// addr is the server's address, the same across restarts.
func (r *redisServer) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(r.port)) }

// startRedis starts a redis-server for t with args (--KEY VALUE pairs), and
// stops it when t ends.
func startRedis(t testing.TB, args ...string) *redisServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		t.Fatalf("redis-server is not installed (%v); the tests run the store against a real server, which they start on a free loopback port.\nInstall it:\n\tapt-get install -y redis-server   # Debian, Ubuntu\n\tbrew install redis                # macOS", err)
	}
	r := &redisServer{t: t, bin: bin, dir: t.TempDir(), args: args}
	for attempt := 1; ; attempt++ {
		r.port = freePort(t)
		err := r.start()
		if err == nil {
			break
		}
		if attempt == 5 {
			t.Fatalf("starting redis-server: %v", err)
		}
		t.Logf("starting redis-server on port %d: %v; trying another port", r.port, err)
	}
	t.Cleanup(r.shutdown)
	return r
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// start starts the server on r.port, empty, and waits until it answers
// PING.
func (r *redisServer) start() error {
	args := append([]string{
		"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1", "--dir", r.dir,
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--logfile", "",
	}, r.args...)
	cmd := exec.Command(r.bin, args...)
	log := new(bytes.Buffer)
	cmd.Stdout, cmd.Stderr = &lockedWriter{w: log, mu: &r.mu}, &lockedWriter{w: log, mu: &r.mu}
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	r.mu.Lock()
	r.cmd, r.exited, r.log = cmd, exited, log
	r.mu.Unlock()
	deadline := time.Now().Add(time.Minute)
	for {
		select {
		case <-exited:
			return fmt.Errorf("redis-server exited before answering: %s", r.logText())
		default:
		}
		if err := r.ping(); err == nil {
			return nil
		} else if time.Now().After(deadline) {
			cmd.Process.Kill()
			<-exited
			return fmt.Errorf("redis-server did not answer within a minute: %v; its log:\n%s", err, r.logText())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (r *redisServer) logText() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.log.String()
}

// ping checks that the server answers, with a connection of its own.
func (r *redisServer) ping() error {
	conn, err := net.DialTimeout("tcp", r.addr(), time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	buf := make([]byte, 64)
	n, err := conn.Read(buf)
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(buf[:n], []byte("+PONG")) && !bytes.HasPrefix(buf[:n], []byte("-NOAUTH")) {
		return fmt.Errorf("PING answered %q", buf[:n])
	}
	return nil
}

func (r *redisServer) signal(sig os.Signal) {
	r.t.Helper()
	r.mu.Lock()
	p := r.cmd.Process
	r.mu.Unlock()
	if err := p.Signal(sig); err != nil {
		r.t.Fatalf("signalling redis-server with %v: %v", sig, err)
	}
}

// kill kills the server as a crash would, and waits until it has exited.
func (r *redisServer) kill() {
	r.signal(syscall.SIGKILL)
	<-r.exited
}

// restart starts the server again on the same port, empty.
func (r *redisServer) restart() {
	r.t.Helper()
	if err := r.start(); err != nil {
		r.t.Fatalf("restarting redis-server on %s: %v", r.addr(), err)
	}
}

// shutdown stops the server, resuming it first in case a test left it
// stopped.
func (r *redisServer) shutdown() {
	r.mu.Lock()
	cmd, exited := r.cmd, r.exited
	r.mu.Unlock()
	select {
	case <-exited:
		return
	default:
	}
	cmd.Process.Signal(syscall.SIGCONT)
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(time.Minute):
		cmd.Process.Kill()
		<-exited
		r.t.Errorf("redis-server on %s did not stop within a minute of SIGTERM: killed", r.addr())
	}
}

type lockedWriter struct {
	w  *bytes.Buffer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// clientOption returns the rueidis options for the server.
func (r *redisServer) clientOption() rueidis.ClientOption {
	return rueidis.ClientOption{InitAddress: []string{r.addr()}, DisableRetry: true}
}

// client returns a plain client of the server, closed when the test ends,
// for the tests' own reads and writes.
func (r *redisServer) client(t testing.TB) rueidis.Client {
	t.Helper()
	opt := r.clientOption()
	opt.DisableCache = true
	c, err := rueidis.NewClient(opt)
	if err != nil {
		t.Fatalf("connecting to redis-server on %s: %v", r.addr(), err)
	}
	t.Cleanup(c.Close)
	return c
}

// newStore returns a Store over a client of its own to the server, closed
// when the test ends.
func newStore(t testing.TB, r *redisServer, opts ...Option) *Store {
	t.Helper()
	s, err := Dial(r.clientOption(), opts...)
	if err != nil {
		t.Fatalf("Dial %s: %v", r.addr(), err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// newToken returns a random token shaped like scs's.
func newToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// waitFor polls cond until it holds, failing t after a minute: what the
// tests wait for happens within a second or two, but a loaded machine may
// take longer.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting after a minute for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// mustFind finds token in s, failing t on an error.
func mustFind(t testing.TB, s *Store, token string) (string, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, ok, err := s.FindCtx(ctx, token)
	if err != nil {
		t.Fatalf("Find: %v", err)
	}
	return string(b), ok
}

func mustCommit(t testing.TB, s *Store, token, data string, expiry time.Time) {
	t.Helper()
	if err := s.Commit(token, []byte(data), expiry); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

// holdLocally calls Find of token on s until s holds it in its local copy:
// a fill races with the invalidations of earlier writes, which may still be
// on their way, and is discarded when it loses.
func holdLocally(t testing.TB, s *Store, token string) {
	t.Helper()
	waitFor(t, "the session to be held locally", func() bool {
		mustFind(t, s, token)
		_, ok, _ := s.local.Load().Find(token)
		return ok
	})
}
