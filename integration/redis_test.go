// SPDX-License-Identifier: MIT

package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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
// started by the tests on a free loopback port, in its own temporary
// directory, and stopped when they end. The store redis runs it without
// persistence; the store redis-aof with an append-only file synced every
// second, the crash-safe setting a user would pick.

// skipRedisEnv names the environment variable that, set to 1, turns the
// failure of the redis stores' cases on a machine without redis-server into a
// skip.
const skipRedisEnv = "MEMSTORE_SKIP_REDIS"

// redisNeeded is redis-server, which the redis stores' cases need.
var redisNeeded = &requirement{
	skipEnv: skipRedisEnv,
	find:    func(tb testing.TB) { redisServerPath(tb) },
	hide:    func(dir string) []string { return []string{"PATH=" + dir} },
	advice:  []string{"redis-server is not installed", "apt-get install -y redis-server"},
}

// redisPersistence is how a redis-server started by the tests keeps its
// data on disk.
type redisPersistence struct {
	name string // as messages say it

	// config are the server's persistence settings, each passed as
	// --KEY VALUE and checked with CONFIG GET once the server answers.
	config [][2]string

	// leftBehind checks what a clean stop left in the server's directory,
	// dir, returning what is wrong.
	leftBehind func(dir string) error
}

// redisInMemory keeps nothing on disk: no RDB snapshot, no append-only file.
var redisInMemory = redisPersistence{
	name:   "no persistence",
	config: [][2]string{{"save", ""}, {"appendonly", "no"}},
	leftBehind: func(dir string) error {
		if names, err := dirNames(dir); err != nil || len(names) > 0 {
			return fmt.Errorf("left %q in its directory (%v); want nothing", names, err)
		}
		return nil
	},
}

// redisAppendOnly logs every write to an append-only file that it fsyncs
// every second (appendfsync everysec, Redis's default for the AOF), and takes
// no RDB snapshot: Redis's advice for a store that must survive a crash
// losing at most a second of writes.
var redisAppendOnly = redisPersistence{
	name: "appendonly yes, appendfsync everysec",
	config: [][2]string{
		{"save", ""},
		{"appendonly", "yes"},
		{"appendfsync", "everysec"},
		{"appenddirname", redisAOFDir},
	},
	leftBehind: checkAppendOnlyDir,
}

// redisAOFDir is the directory, in the server's, of its append-only files
// (Redis 7 and later).
const redisAOFDir = "appendonlydir"

// checkAppendOnlyDir checks that dir, the directory of a redis-server that
// ran with redisAppendOnly, holds the append-only files and nothing else: a
// manifest and an incremental file that logged the writes (the kit commits
// and deletes sessions, so it is never empty).
func checkAppendOnlyDir(dir string) error {
	if names, err := dirNames(dir); err != nil || !slices.Equal(names, []string{redisAOFDir}) {
		return fmt.Errorf("left %q in its directory (%v); want only %s", names, err, redisAOFDir)
	}
	aofDir := filepath.Join(dir, redisAOFDir)
	manifests, _ := filepath.Glob(filepath.Join(aofDir, "*.manifest"))
	incrs, _ := filepath.Glob(filepath.Join(aofDir, "*.incr.aof"))
	if len(manifests) != 1 || len(incrs) == 0 {
		names, err := dirNames(aofDir)
		return fmt.Errorf("left %q in %s (%v); want a manifest and an incremental append-only file", names, redisAOFDir, err)
	}
	for _, incr := range incrs {
		if info, err := os.Stat(incr); err == nil && info.Size() > 0 {
			return nil
		}
	}
	return fmt.Errorf("its incremental append-only files %q are empty: it logged no write", incrs)
}

// dirNames returns the names of the entries of dir, sorted.
func dirNames(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return names, err
}

// redisOpener returns the open of a redis store whose server keeps its data
// as persistence says: it starts a redis-server for the tests or benchmarks
// of tb, and returns a constructor of redisstores over connection pools to
// it. Once they are released, it checks that the server holds no key.
func redisOpener(persistence redisPersistence) func(testing.TB) storetest.MakeStore {
	return func(tb testing.TB) storetest.MakeStore {
		srv := startRedis(tb, persistence)
		expectEmptyWhenReleased(tb, "Redis keys", func() (int, error) { return redisDBSize(srv.addr) })
		return func(tb testing.TB) storetest.Store {
			pool := newRedisPool(srv.addr)
			tb.Cleanup(func() { pool.Close() })
			return redisstore.New(pool)
		}
	}
}

// newRedisPool returns a redigo pool of connections to the Redis server at
// addr, with no bound on active connections (see dialRedis for their
// timeouts); it keeps idleConns idle connections.
func newRedisPool(addr string) *redis.Pool {
	return &redis.Pool{
		MaxIdle: idleConns(),
		Dial:    func() (redis.Conn, error) { return dialRedis(addr, redisTimeout) },
	}
}

// redisTimeout bounds the connections of the stores and checks to a Redis
// server: generous, for a loaded machine. (pingRedis's are short: see
// serverSpec.ping.)
const redisTimeout = 30 * time.Second

// dialRedis connects to the Redis server at addr, giving up on a connection,
// a read or a write that takes longer than timeout, so that a server that
// stops answering fails a test instead of hanging it.
func dialRedis(addr string, timeout time.Duration) (redis.Conn, error) {
	return redis.Dial("tcp", addr,
		redis.DialConnectTimeout(timeout),
		redis.DialReadTimeout(timeout),
		redis.DialWriteTimeout(timeout))
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
	conn, err := dialRedis(addr, redisTimeout)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	return redis.Int(conn.Do("DBSIZE"))
}

// startRedis starts a redis-server on a free port of 127.0.0.1, with a
// temporary directory of its own as working directory and persistence as its
// persistence settings, waits until it answers PING, checks that it reports
// those settings, and stops it when tb ends, failing tb if it left in its
// directory what persistence does not expect. Where redis-server is not
// installed it fails or skips tb: see redisServerPath.
func startRedis(tb testing.TB, persistence redisPersistence) *serverProcess {
	tb.Helper()
	bin := redisServerPath(tb)
	dir := tb.TempDir()
	srv := launchServer(tb, serverSpec{
		name: "redis-server (" + persistence.name + ")",
		command: func(port int) *exec.Cmd {
			args := []string{
				"--port", strconv.Itoa(port),
				"--bind", "127.0.0.1",
				"--dir", dir,
				"--daemonize", "no",
				"--logfile", "", // to stdout, kept for failure messages
			}
			for _, kv := range persistence.config {
				args = append(args, "--"+kv[0], kv[1])
			}
			cmd := exec.Command(bin, args...)
			cmd.Dir = dir
			return cmd
		},
		ping:       pingRedis,
		portTaken:  "Address already in use",
		stopSignal: syscall.SIGTERM,
		afterStop: func(tb testing.TB) {
			if err := persistence.leftBehind(dir); err != nil {
				tb.Errorf("redis-server, run with %s: %v", persistence.name, err)
			}
		},
	})
	if err := checkRedisConfig(srv.addr, persistence.config); err != nil {
		tb.Fatalf("redis-server on %s, started with %s: %v", srv.addr, persistence.name, err)
	}
	return srv
}

// checkRedisConfig checks that the Redis server at addr reports each
// setting of config (KEY, VALUE pairs) with CONFIG GET.
func checkRedisConfig(addr string, config [][2]string) error {
	conn, err := dialRedis(addr, redisTimeout)
	if err != nil {
		return err
	}
	defer conn.Close()
	for _, kv := range config {
		got, err := redis.StringMap(conn.Do("CONFIG", "GET", kv[0]))
		if err != nil || got[kv[0]] != kv[1] {
			return fmt.Errorf("CONFIG GET %s = %q, %v; want %q", kv[0], got[kv[0]], err, kv[1])
		}
	}
	return nil
}

// pingRedis checks that s answers PING and is the process started.
func pingRedis(s *serverProcess) error {
	conn, err := dialRedis(s.addr, time.Second)
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
