// SPDX-License-Identifier: MIT

package integration

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/alexedwards/scs/redisstore"
	scsmemstore "github.com/alexedwards/scs/v2/memstore"
	"github.com/golangcollege/memstore"
	"github.com/golangcollege/memstore/storetest"
	"github.com/gomodule/redigo/redis"
)

// TestStores and BenchmarkStores run the storetest kit over four stores:
// this module's memstore, scs v2's own memstore, the original engine's
// go-cache design (cacheStore, in compare_test.go), and scs's redisstore
// against a real redis-server that the test starts on a free loopback port. The
// benchmarks are sub-benchmarks named store=NAME, so that benchstat lines the
// stores up from one run:
//
//	go test -run '^$' -bench BenchmarkStores -benchtime 200ms -count 5 > stores.txt
//	benchstat -col /store stores.txt
//
// Where redis-server is not installed, the Redis cases fail with a message
// saying how to install it, unless MEMSTORE_SKIP_REDIS=1 is set: then they
// are skipped. Where it is installed they always run.

// The store types satisfy the kit's Store interface.
var (
	_ storetest.Store = (*memstore.MemStore)(nil)
	_ storetest.Store = (*scsmemstore.MemStore)(nil)
	_ storetest.Store = (*redisstore.RedisStore)(nil)
)

// skipRedisEnv names the environment variable that, set to 1, turns the
// failure of a Redis case on a machine without redis-server into a skip.
const skipRedisEnv = "MEMSTORE_SKIP_REDIS"

// peer is one of the stores run through the storetest kit.
type peer struct {
	name string // as in store=NAME

	// redis says that the store needs a Redis server.
	redis bool

	// open returns a fresh store for one subtest or sub-benchmark, and
	// registers with tb.Cleanup whatever releases it. redisAddr is the
	// address of the Redis server, for a store that needs one.
	open func(tb testing.TB, redisAddr string) storetest.Store

	// skips maps each storetest rule that storetest.Run skips for the store,
	// for want of the optional methods it needs, to why. TestStores checks
	// that exactly these are skipped, so that a store gaining the methods
	// shows.
	skips map[string]string

	// breaks maps each storetest rule the store is known to break to why.
	// TestStores skips those rules; TestPeerStoresBreakRules asserts that
	// each still fails, so that a fix in the peer store shows.
	breaks map[string]string
}

// noCtxMethods is why storetest.Run skips a rule for a store without the
// methods of scs's CtxStore and IterableCtxStore.
const noCtxMethods = "no FindCtx, CommitCtx, DeleteCtx or AllCtx"

// storeRules are the rules storetest.Run checks, by subtest name, as its
// package documentation lists them. TestStores fails if Run checks any other,
// so that a new rule gets a row in the README's comparison table.
var storeRules = []string{
	"unknown-token-not-found",
	"malformed-token-not-found",
	"round-trip",
	"overwrite-replaces-data-and-expiry",
	"delete-removes-session",
	"delete-unknown-token-is-nil-no-op",
	"not-found-after-expiry",
	"past-expiry-never-found",
	"all-returns-non-nil-map-of-live-sessions",
	"ctx-methods-behave-like-plain-ones",
	"concurrent-clients-read-own-writes",
}

// peers are the stores compared, in the order benchstat shows them.
var peers = []peer{
	{
		name: "memstore",
		open: func(tb testing.TB, _ string) storetest.Store {
			// A janitor that sweeps every minute, as in the README's usage.
			m := memstore.New(time.Minute)
			tb.Cleanup(func() { m.Close() })
			return m
		},
	},
	{
		name: "scs-memstore",
		open: func(testing.TB, string) storetest.Store {
			// No janitor: scs's StopCleanup races with the janitor's start
			// (see scsHeld), and its Find and All check the expiry anyway.
			return scsmemstore.NewWithCleanupInterval(0)
		},
		skips: map[string]string{"ctx-methods-behave-like-plain-ones": noCtxMethods},
	},
	{
		name: "go-cache",
		open: func(testing.TB, string) storetest.Store {
			return newCacheStore(0) // no janitor: go-cache's Get checks the expiry anyway
		},
		skips: map[string]string{
			"all-returns-non-nil-map-of-live-sessions": "no All",
			"ctx-methods-behave-like-plain-ones":       noCtxMethods,
		},
		breaks: map[string]string{
			"past-expiry-never-found": "go-cache stores a lifetime of zero or less as one that never ends",
		},
	},
	{
		name:  "redis",
		redis: true,
		open: func(tb testing.TB, redisAddr string) storetest.Store {
			pool := newRedisPool(redisAddr)
			tb.Cleanup(func() { pool.Close() })
			return redisstore.New(pool)
		},
		skips: map[string]string{"ctx-methods-behave-like-plain-ones": noCtxMethods},
	},
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

// TestStores runs storetest.Run over every peer store, each in a subtest
// named store=NAME, skipping only the rules a store is known to break (which
// TestPeerStoresBreakRules checks). It then checks that Run checked the rules
// of storeRules and no other, and skipped exactly the rules the peer's skips
// name; and, for Redis, that the kit left the server as it found it: empty.
func TestStores(t *testing.T) {
	for _, p := range peers {
		t.Run("store="+p.name, func(t *testing.T) {
			t.Parallel() // the rules spend most of their time waiting for sessions to expire
			var srv *redisServer
			if p.redis {
				srv = startRedis(t)
			}
			var (
				mu      sync.Mutex
				results = make(map[string]string) // by rule: PASS, FAIL or SKIP
			)
			storetest.Run(t, func(t testing.TB) storetest.Store {
				rule := t.Name()[strings.LastIndexByte(t.Name(), '/')+1:]
				t.Cleanup(func() {
					mu.Lock()
					defer mu.Unlock()
					results[rule] = testResult(t)
				})
				if why, ok := p.breaks[rule]; ok {
					t.Skipf("store %s breaks this rule (%s); TestPeerStoresBreakRules asserts that it still does", p.name, why)
				}
				return p.open(t, srv.address())
			})
			checkResults(t, p, results)
			if srv != nil && !t.Failed() {
				if n := srv.dbSize(t); n != 0 {
					t.Errorf("the Redis server holds %d keys after storetest.Run; want 0: the kit deletes every session it commits", n)
				}
			}
		})
	}
}

// testResult returns how t, whose test function has returned, ended: PASS,
// FAIL or SKIP.
func testResult(t testing.TB) string {
	switch {
	case t.Failed():
		return "FAIL"
	case t.Skipped():
		return "SKIP"
	default:
		return "PASS"
	}
}

// checkResults fails t unless results, the result of each rule storetest.Run
// checked p against, has every rule of storeRules and no other, and a rule
// was skipped exactly when p's skips or breaks name it. A rule that failed is
// not reported again: its subtest was.
func checkResults(t *testing.T, p peer, results map[string]string) {
	t.Helper()
	for _, rule := range storeRules {
		got, ran := results[rule]
		want := "PASS"
		if _, ok := p.skips[rule]; ok {
			want = "SKIP"
		}
		if _, ok := p.breaks[rule]; ok {
			want = "SKIP"
		}
		switch {
		case !ran:
			t.Errorf("storetest.Run did not check rule %s; want every rule of storeRules (update it, and the README's comparison table)", rule)
		case got == "SKIP" && want == "PASS":
			t.Errorf("storetest.Run skipped rule %s for store %s; want it checked", rule, p.name)
		case got == "PASS" && want == "SKIP":
			t.Errorf("storetest.Run checked rule %s for store %s, which it used to skip (%s), and it passed: the store has changed; update its skips and the README's comparison table",
				rule, p.name, p.skips[rule])
		}
	}
	for rule := range results {
		if !slices.Contains(storeRules, rule) {
			t.Errorf("storetest.Run checked rule %s, not in storeRules; add it there and to the README's comparison table", rule)
		}
	}
}

// BenchmarkStores runs storetest.Bench over every peer store, each in a
// sub-benchmark named store=NAME, for benchstat -col /store. The Redis server
// is started once per run of store=redis and stopped when it ends.
func BenchmarkStores(b *testing.B) {
	for _, p := range peers {
		b.Run("store="+p.name, func(b *testing.B) {
			var srv *redisServer
			if p.redis {
				srv = startRedis(b)
			}
			storetest.Bench(b, func(b testing.TB) storetest.Store { return p.open(b, srv.address()) })
		})
	}
}

// childEnv names, in a child process, the peer store TestStoresChild runs
// storetest.Run over.
const childEnv = "MEMSTORE_STORES_CHILD"

// TestStoresChild runs storetest.Run over the peer store named by
// $MEMSTORE_STORES_CHILD, every rule included. It runs only in the child
// processes of TestPeerStoresBreakRules and TestRedisMissing, which choose
// the rules with -test.run.
func TestStoresChild(t *testing.T) {
	name := os.Getenv(childEnv)
	if name == "" {
		t.Skip("runs only as a child process of TestPeerStoresBreakRules and TestRedisMissing")
	}
	p, ok := peerNamed(name)
	if !ok {
		t.Fatalf("no peer store named %q", name)
	}
	var srv *redisServer
	if p.redis {
		srv = startRedis(t)
	}
	storetest.Run(t, func(t testing.TB) storetest.Store { return p.open(t, srv.address()) })
}

// peerNamed returns the peer store called name.
func peerNamed(name string) (peer, bool) {
	for _, p := range peers {
		if p.name == name {
			return p, true
		}
	}
	return peer{}, false
}

// child is what one run of TestStoresChild in a child process did.
type child struct {
	err    error  // from exec: nil when the child exited with status 0
	output string // its -test.v output
}

// result returns how the child reports the test or subtest called name
// (as in "TestStoresChild/round-trip"): "PASS", "FAIL", "SKIP", or "" when
// its output has no result line for it.
func (c child) result(name string) string {
	re := regexp.MustCompile(`(?m)^\s*--- (PASS|FAIL|SKIP): ` + regexp.QuoteMeta(name) + ` \(`)
	if m := re.FindStringSubmatch(c.output); m != nil {
		return m[1]
	}
	return ""
}

// runChild runs TestStoresChild over the peer store called store in a child
// process, with only the subtests that runPattern (the part of -test.run
// after "^TestStoresChild$/") selects, and with env added to this process's
// environment, less $MEMSTORE_SKIP_REDIS and whatever env sets.
func runChild(t *testing.T, store, runPattern string, env ...string) child {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatalf("finding the test binary: %v", err)
	}
	run := "^TestStoresChild$"
	if runPattern != "" {
		run += "/" + runPattern
	}
	cmd := exec.Command(exe, "-test.run="+run, "-test.v", "-test.count=1", "-test.timeout=5m")
	cmd.Env = []string{childEnv + "=" + store}
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == childEnv || k == skipRedisEnv || envSets(env, k) {
			continue
		}
		cmd.Env = append(cmd.Env, kv)
	}
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	return child{err: err, output: string(out)}
}

// envSets reports whether env, a list of KEY=value, sets key.
func envSets(env []string, key string) bool {
	for _, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == key {
			return true
		}
	}
	return false
}

// exitedNonZero reports whether err, from exec, says that the process ran and
// exited with a non-zero status.
func exitedNonZero(err error) bool {
	var exit *exec.ExitError
	return errors.As(err, &exit) && exit.ExitCode() > 0
}

// TestPeerStoresBreakRules runs, in a child process, each rule a peer store is
// known to break, and asserts that the store still fails it. When one of
// these fails, the peer has fixed its store: remove the rule from the peer's
// breaks, and the failure from the README's comparison table.
func TestPeerStoresBreakRules(t *testing.T) {
	if !slices.ContainsFunc(peers, func(p peer) bool { return len(p.breaks) > 0 }) {
		t.Skip("no peer store is known to break a storetest rule: TestStores checks every rule of each")
	}
	for _, p := range peers {
		for rule, why := range p.breaks {
			t.Run("store="+p.name+"/"+rule, func(t *testing.T) {
				t.Parallel()
				if p.redis {
					redisServerPath(t) // fails, or skips, here rather than in the child
				}
				c := runChild(t, p.name, "^"+regexp.QuoteMeta(rule)+"$")
				if got := c.result("TestStoresChild/" + rule); got != "FAIL" || !exitedNonZero(c.err) {
					t.Fatalf("storetest.Run over store %s, rule %s: result %q, exit %v; want FAIL and a non-zero exit (known breakage: %s). "+
						"Has the store been fixed? Then remove the rule from its breaks, and the failure from the README's comparison table.\n%s",
						p.name, rule, got, c.err, why, c.output)
				}
				t.Logf("store %s still breaks rule %s (%s)", p.name, rule, why)
			})
		}
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
		c := runChild(t, "redis", pattern, emptyPath)
		if got := c.result("TestStoresChild"); got != "FAIL" || !exitedNonZero(c.err) {
			t.Fatalf("without redis-server: result %q, exit %v; want FAIL and a non-zero exit\n%s", got, c.err, c.output)
		}
		for _, want := range []string{"redis-server is not installed", "apt-get install -y redis-server", skipRedisEnv + "=1"} {
			if !strings.Contains(c.output, want) {
				t.Errorf("without redis-server, the failure does not say %q:\n%s", want, c.output)
			}
		}
	})
	t.Run("skipped-when-asked", func(t *testing.T) {
		t.Parallel()
		c := runChild(t, "redis", pattern, emptyPath, skipRedisEnv+"=1")
		if got := c.result("TestStoresChild"); got != "SKIP" || c.err != nil {
			t.Fatalf("without redis-server and with %s=1: result %q, exit %v; want SKIP and a zero exit\n%s", skipRedisEnv, got, c.err, c.output)
		}
		if !strings.Contains(c.output, skipRedisEnv+"=1") {
			t.Errorf("the skip does not give %s=1 as its reason:\n%s", skipRedisEnv, c.output)
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

// address returns the server's address, or "" for a nil server: the
// stores that need no Redis server ignore it.
func (s *redisServer) address() string {
	if s == nil {
		return ""
	}
	return s.addr
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
// panic, which runs no cleanup). stores_linux_test.go sets it on Linux;
// elsewhere such a redis-server is left running.
var stopWithTestBinary = func(*exec.Cmd) {}

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
