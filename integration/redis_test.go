// SPDX-License-Identifier: MIT

package integration

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alexedwards/scs/redisstore"
	"github.com/golangcollege/memstore/storetest"
	"github.com/gomodule/redigo/redis"
)

// The Redis launcher: scs's redisstore runs against a real redis-server,
// started by the tests on a free loopback port, without persistence, and
// stopped when they end.

// skipRedisEnv names the environment variable that, set to 1, turns the
// failure of a Redis case on a machine without redis-server into a skip.
const skipRedisEnv = "MEMSTORE_SKIP_REDIS"

// openRedis is the open of the redis store: it starts a redis-server for the
// tests or benchmarks of tb, and returns a constructor of redisstores over
// connection pools to it. Once they are released, it checks that the server
// holds no key: the kit deletes every session it commits.
func openRedis(tb testing.TB) newStore {
	srv := startRedis(tb)
	tb.Cleanup(func() {
		if tb.Failed() {
			return
		}
		if n := srv.dbSize(tb); n != 0 {
			tb.Errorf("the Redis server holds %d keys once its stores are released; want 0: the kit deletes every session it commits", n)
		}
	})
	return func(tb testing.TB) storetest.Store {
		pool := newRedisPool(srv.addr)
		tb.Cleanup(func() { pool.Close() })
		return redisstore.New(pool)
	}
}

// newRedisPool returns a redigo pool of connections to the Redis server at
// addr, with no bound on active connections. Its timeouts make a server that
// stops answering fail a test instead of hanging it; it keeps more idle
// connections than the goroutines of the parallel benchmark and of the
// concurrency rule, so that every operation reuses a connection.
func newRedisPool(addr string) *redis.Pool {
	return &redis.Pool{
		MaxIdle: max(16, 2*runtime.GOMAXPROCS(0)),
		Dial: func() (redis.Conn, error) {
			return redis.Dial("tcp", addr,
				redis.DialConnectTimeout(10*time.Second),
				redis.DialReadTimeout(30*time.Second),
				redis.DialWriteTimeout(30*time.Second))
		},
	}
}

// TestRedisMissing checks, in child processes whose PATH holds no
// redis-server, that the Redis cases fail with a message saying how to
// install it, and are skipped instead when MEMSTORE_SKIP_REDIS=1.
func TestRedisMissing(t *testing.T) {
	emptyPath := "PATH=" + t.TempDir()
	// The child's only rule never runs: the test fails or skips before it.
	const pattern = "^unknown-token-not-found$"

	t.Run("fails", func(t *testing.T) {
		t.Parallel()
		c := runStoresChild("redis", pattern, emptyPath)
		if got := c.Of("TestStoresChild"); got != "FAIL" || !c.ExitedNonZero() {
			t.Fatalf("without redis-server: result %q, exit %v; want FAIL and a non-zero exit\n%s", got, c.Err, c.Output)
		}
		for _, want := range []string{"redis-server is not installed", "apt-get install -y redis-server", skipRedisEnv + "=1"} {
			if !strings.Contains(c.Output, want) {
				t.Errorf("without redis-server, the failure does not say %q:\n%s", want, c.Output)
			}
		}
	})
	t.Run("skipped-when-asked", func(t *testing.T) {
		t.Parallel()
		c := runStoresChild("redis", pattern, emptyPath, skipRedisEnv+"=1")
		if got := c.Of("TestStoresChild"); got != "SKIP" || c.Err != nil {
			t.Fatalf("without redis-server and with %s=1: result %q, exit %v; want SKIP and a zero exit\n%s", skipRedisEnv, got, c.Err, c.Output)
		}
		if !strings.Contains(c.Output, skipRedisEnv+"=1") {
			t.Errorf("the skip does not give %s=1 as its reason:\n%s", skipRedisEnv, c.Output)
		}
	})
}

// redisServerPath returns the path of redis-server. Where it is not
// installed, it fails tb with a message saying how to install it, or, when
// $MEMSTORE_SKIP_REDIS is 1, skips tb.
func redisServerPath(tb testing.TB) string {
	tb.Helper()
	path, err := exec.LookPath("redis-server")
	if err == nil {
		return path
	}
	if os.Getenv(skipRedisEnv) == "1" {
		tb.Skipf("redis-server is not installed (%v) and %s=1: skipping the cases that run scs's redisstore against a real Redis server", err, skipRedisEnv)
	}
	tb.Fatalf("redis-server is not installed (%v), and the cases that run scs's redisstore need a real Redis server.\n"+
		"Install it (the tests start and stop their own server on a free loopback port):\n"+
		"\tapt-get install -y redis-server   # Debian, Ubuntu\n"+
		"\tbrew install redis                # macOS\n"+
		"or set %s=1 to skip these cases.", err, skipRedisEnv)
	return ""
}

// redisServer is a redis-server process started by startRedis.
type redisServer struct {
	addr   string        // host:port, on 127.0.0.1
	dir    string        // its working directory
	cmd    *exec.Cmd     // the process
	exited chan struct{} // closed once cmd.Wait has returned
	log    *syncBuffer   // what it has written to stdout and stderr
	ready  bool          // it answered PING: tryStartRedis returned it
}

// dbSize returns how many keys the server holds.
func (s *redisServer) dbSize(tb testing.TB) int {
	tb.Helper()
	conn, err := redis.Dial("tcp", s.addr, redis.DialConnectTimeout(10*time.Second), redis.DialReadTimeout(30*time.Second))
	if err != nil {
		tb.Fatalf("connecting to redis-server at %s: %v", s.addr, err)
	}
	defer conn.Close()
	n, err := redis.Int(conn.Do("DBSIZE"))
	if err != nil {
		tb.Fatalf("DBSIZE: %v", err)
	}
	return n
}

// errPortTaken says that redis-server could not listen on the port it was
// given, taken by another process since freePort found it free.
var errPortTaken = errors.New("port taken")

// startRedis starts a redis-server on a free port of 127.0.0.1, with a
// temporary directory of its own as working directory and no persistence,
// waits until it answers PING, and stops it when tb ends. Where redis-server
// is not installed it fails or skips tb: see redisServerPath.
func startRedis(tb testing.TB) *redisServer {
	tb.Helper()
	bin := redisServerPath(tb)
	for attempt := 1; ; attempt++ {
		s, err := tryStartRedis(tb, bin, freePort(tb))
		if err == nil {
			return s
		}
		if !errors.Is(err, errPortTaken) || attempt == 5 {
			tb.Fatalf("starting redis-server: %v", err)
		}
		tb.Logf("starting redis-server, attempt %d: %v; trying another port", attempt, err)
	}
}

// redisStartTimeout bounds how long a redis-server may take to answer PING,
// and redisStopTimeout how long it may take to exit once told to: generous,
// for a loaded machine.
const (
	redisStartTimeout = 30 * time.Second
	redisStopTimeout  = 30 * time.Second
)

// tryStartRedis starts bin listening on port and waits until it answers
// PING. It returns errPortTaken, wrapped, when the port was taken.
func tryStartRedis(tb testing.TB, bin string, port int) (*redisServer, error) {
	s := &redisServer{
		addr:   net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		dir:    tb.TempDir(),
		exited: make(chan struct{}),
		log:    new(syncBuffer),
	}
	s.cmd = exec.Command(bin,
		"--port", strconv.Itoa(port),
		"--bind", "127.0.0.1",
		"--save", "", // no RDB snapshots
		"--appendonly", "no", // no append-only file
		"--dir", s.dir,
		"--daemonize", "no",
		"--logfile", "", // to stdout, kept for failure messages
	)
	s.cmd.Dir = s.dir
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

	deadline := time.Now().Add(redisStartTimeout)
	for {
		late := time.Now().After(deadline)
		select {
		case <-s.exited:
			err := fmt.Errorf("redis-server on %s exited with %v before answering PING; its log:\n%s", s.addr, s.cmd.ProcessState, s.log)
			if strings.Contains(s.log.String(), "Address already in use") {
				err = fmt.Errorf("%w: %w", errPortTaken, err)
			}
			return nil, err
		default:
		}
		err := s.ping()
		if err == nil {
			s.ready = true
			return s, nil
		}
		if late {
			return nil, fmt.Errorf("redis-server on %s did not answer PING within %v: %v; its log:\n%s", s.addr, redisStartTimeout, err, s.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ping checks that the server answers PING and is the process s started,
// not another that took its port first. Its timeouts are short, since
// tryStartRedis calls it again: a listener that never answers must not keep
// tryStartRedis from seeing that the server exited.
func (s *redisServer) ping() error {
	conn, err := redis.Dial("tcp", s.addr,
		redis.DialConnectTimeout(time.Second),
		redis.DialReadTimeout(time.Second),
		redis.DialWriteTimeout(time.Second))
	if err != nil {
		return err
	}
	defer conn.Close()
	if pong, err := redis.String(conn.Do("PING")); err != nil || pong != "PONG" {
		return fmt.Errorf("PING = %q, %v; want PONG", pong, err)
	}
	info, err := redis.String(conn.Do("INFO", "server"))
	if err != nil {
		return fmt.Errorf("INFO server: %v", err)
	}
	if want := fmt.Sprintf("process_id:%d\r\n", s.cmd.Process.Pid); !strings.Contains(info, want) {
		return fmt.Errorf("the server answering on %s is not the one started (no %q in its INFO)", s.addr, strings.TrimSpace(want))
	}
	return nil
}

// stop stops the server with SIGTERM (a kill where signals are not
// supported), kills it if it has not exited within redisStopTimeout, and
// fails tb if it exited before, did not exit cleanly, or left files in its
// directory. A server that never became ready is only killed: tryStartRedis
// reported why.
func (s *redisServer) stop(tb testing.TB) {
	select {
	case <-s.exited:
		if s.ready {
			tb.Errorf("redis-server on %s exited with %v before the test stopped it; its log:\n%s", s.addr, s.cmd.ProcessState, s.log)
		}
		return
	default:
	}
	if !s.ready {
		s.cmd.Process.Kill()
		<-s.exited
		return
	}
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		s.cmd.Process.Kill()
	}
	select {
	case <-s.exited:
	case <-time.After(redisStopTimeout):
		s.cmd.Process.Kill()
		<-s.exited
		tb.Errorf("redis-server on %s still running %v after SIGTERM: killed; its log:\n%s", s.addr, redisStopTimeout, s.log)
		return
	}
	if !s.cmd.ProcessState.Success() {
		tb.Errorf("redis-server on %s exited with %v after SIGTERM; want status 0; its log:\n%s", s.addr, s.cmd.ProcessState, s.log)
	}
	if files, err := os.ReadDir(s.dir); err != nil || len(files) > 0 {
		var names []string
		for _, f := range files {
			names = append(names, f.Name())
		}
		tb.Errorf("redis-server, run with no persistence, left %q in its directory (%v); want nothing", names, err)
	}
}
