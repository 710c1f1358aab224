// SPDX-License-Identifier: MIT

package integration

import (
	"fmt"
	"os"
	"os/exec"
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
// failure of the redis store's cases on a machine without redis-server into a
// skip.
const skipRedisEnv = "MEMSTORE_SKIP_REDIS"

// redisNeeded is redis-server, which the redis store's cases need.
var redisNeeded = &requirement{
	skipEnv: skipRedisEnv,
	find:    func(tb testing.TB) { redisServerPath(tb) },
	hide:    func(dir string) []string { return []string{"PATH=" + dir} },
	advice:  []string{"redis-server is not installed", "apt-get install -y redis-server"},
}

// openRedis is the open of the redis store: it starts a redis-server for the
// tests or benchmarks of tb, and returns a constructor of redisstores over
// connection pools to it. Once they are released, it checks that the server
// holds no key.
func openRedis(tb testing.TB) storetest.MakeStore {
	srv := startRedis(tb)
	expectEmptyWhenReleased(tb, "Redis keys", func() (int, error) { return redisDBSize(srv.addr) })
	return func(tb testing.TB) storetest.Store {
		pool := newRedisPool(srv.addr)
		tb.Cleanup(func() { pool.Close() })
		return redisstore.New(pool)
	}
}

// newRedisPool returns a redigo pool of connections to the Redis server at
// addr, with no bound on active connections. Its timeouts make a server that
// stops answering fail a test instead of hanging it; it keeps idleConns idle
// connections.
func newRedisPool(addr string) *redis.Pool {
	return &redis.Pool{
		MaxIdle: idleConns(),
		Dial: func() (redis.Conn, error) {
			return redis.Dial("tcp", addr,
				redis.DialConnectTimeout(10*time.Second),
				redis.DialReadTimeout(30*time.Second),
				redis.DialWriteTimeout(30*time.Second))
		},
	}
}

// redisServerPath returns the path of redis-server. Where it is not
// installed, it fails tb with a message saying how to install it, or, when
// $MEMSTORE_SKIP_REDIS is 1, skips tb.
func redisServerPath(tb testing.TB) string {
	tb.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		skipOrFailMissing(tb, "redis-server", "scs's redisstore", skipRedisEnv, err,
			"apt-get install -y redis-server   # Debian, Ubuntu",
			"brew install redis                # macOS")
	}
	return path
}

// redisDBSize returns how many keys the Redis server at addr holds.
func redisDBSize(addr string) (int, error) {
	conn, err := redis.Dial("tcp", addr, redis.DialConnectTimeout(10*time.Second), redis.DialReadTimeout(30*time.Second))
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	return redis.Int(conn.Do("DBSIZE"))
}

// startRedis starts a redis-server on a free port of 127.0.0.1, with a
// temporary directory of its own as working directory and no persistence,
// waits until it answers PING, and stops it when tb ends, failing tb if it
// left files in its directory. Where redis-server is not installed it fails
// or skips tb: see redisServerPath.
func startRedis(tb testing.TB) *serverProcess {
	tb.Helper()
	bin := redisServerPath(tb)
	dir := tb.TempDir()
	return launchServer(tb, serverSpec{
		name: "redis-server",
		command: func(port int) *exec.Cmd {
			cmd := exec.Command(bin,
				"--port", strconv.Itoa(port),
				"--bind", "127.0.0.1",
				"--save", "", // no RDB snapshots
				"--appendonly", "no", // no append-only file
				"--dir", dir,
				"--daemonize", "no",
				"--logfile", "", // to stdout, kept for failure messages
			)
			cmd.Dir = dir
			return cmd
		},
		ping:       pingRedis,
		portTaken:  "Address already in use",
		stopSignal: syscall.SIGTERM,
		afterStop: func(tb testing.TB) {
			if files, err := os.ReadDir(dir); err != nil || len(files) > 0 {
				var names []string
				for _, f := range files {
					names = append(names, f.Name())
				}
				tb.Errorf("redis-server, run with no persistence, left %q in its directory (%v); want nothing", names, err)
			}
		},
	})
}

// pingRedis checks that s answers PING and is the process started.
func pingRedis(s *serverProcess) error {
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
