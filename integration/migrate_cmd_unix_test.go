// SPDX-License-Identifier: MIT

//go:build unix

package integration

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golangcollege/memstore"
	"github.com/gomodule/redigo/redis"
)

// The copy command of docs/migrating.md, cmd/memstore-to-redis, run as the
// runbook runs it: built, started as a process, against a real
// redis-server; then the runbook's way back, the application opening its
// directory again.

// appUID is the user that owns the application's directory when the tests
// run as root: nobody, as an application's user is not root.
const appUID = 65534

// rollbackDirEnv names the directory TestRollbackApp opens; it is unset
// but in the process TestMemstoreToRedis starts.
const rollbackDirEnv = "MEMSTORE_ROLLBACK_DIR"

// TestRollbackApp is the application of the runbook's way back, run by
// TestMemstoreToRedis in a process of its own, as the application's user:
// it opens the directory in $MEMSTORE_ROLLBACK_DIR with memstore.Open,
// prints every session's token, one a line, and closes the store.
func TestRollbackApp(t *testing.T) {
	dir := os.Getenv(rollbackDirEnv)
	if dir == "" {
		t.Skip("runs only as a child process of TestMemstoreToRedis")
	}
	m, err := memstore.Open(dir, 0)
	if err != nil {
		t.Fatalf("the application's Open: %v", err)
	}
	for s := range m.Sessions() {
		fmt.Println(s.Token)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("the application's Close: %v", err)
	}
}

// commandRun is what a run of a command gave.
type commandRun struct {
	stdout, stderr string
	code           int
}

// runCommand runs bin with args and env added to this process's, and
// returns what it printed and its exit code.
func runCommand(t *testing.T, bin string, env []string, args ...string) commandRun {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("running %s: %v", bin, err)
	}
	r := commandRun{stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()}
	t.Logf("%s %s: exit %d\nstdout: %sstderr: %s", filepath.Base(bin), strings.Join(args, " "), r.code, r.stdout, r.stderr)
	return r
}

// buildCommand builds cmd/memstore-to-redis into dir and returns its path.
func buildCommand(t *testing.T, dir string) string {
	t.Helper()
	goBin, err := exec.LookPath("go") // go test found it on the PATH too
	if err != nil {
		t.Fatalf("go, to build the command: %v", err)
	}
	bin := filepath.Join(dir, "memstore-to-redis")
	if out, err := exec.Command(goBin, "build", "-o", bin, "./cmd/memstore-to-redis").CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/memstore-to-redis: %v\n%s", err, out)
	}
	return bin
}

// appDir returns a directory that the application's user, appUID when the
// test runs as root, may enter, for the application's files and binaries.
func appDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	// t.TempDir's directories let their owner alone in.
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if strings.HasPrefix(filepath.Base(d), "Test") || d == dir {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir
}

// storeDirFor returns the directory of an application's store, holding
// live sessions, which it returns, and sessions expired since: what the
// application leaves when it stops. Run as root, the directory and its files
// belong to appUID.
func storeDirFor(t *testing.T, parent string, live int) (dir string, want map[string]sourceSession) {
	t.Helper()
	dir = filepath.Join(parent, "sessions")
	m, err := memstore.Open(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	soon := time.Now().Add(time.Second)
	for i := range 10 {
		if err := m.Commit(fmt.Sprintf("expired-%d", i), []byte("gone"), soon); err != nil {
			t.Fatal(err)
		}
	}
	want = map[string]sourceSession{}
	now := time.Now()
	for i := range live {
		token := fmt.Sprintf("live-%05d", i)
		s := sourceSession{data: bytes.Repeat([]byte{'a' + byte(i%26)}, i%300), expiry: now.Add(time.Hour + time.Duration(i)*time.Second)}
		if err := m.Commit(token, s.data, s.expiry); err != nil {
			t.Fatal(err)
		}
		want[token] = s
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Until(soon) + 10*time.Millisecond) // the expired ones are past their expiry
	chownApp(t, dir)
	return dir, want
}

// chownApp gives dir and its files to appUID when the test runs as root.
func chownApp(t *testing.T, dir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		return
	}
	names, err := dirNames(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range append(names, ".") {
		if err := os.Lchown(filepath.Join(dir, name), appUID, appUID); err != nil {
			t.Fatal(err)
		}
	}
}

// dirState describes dir and every entry in it: name, mode, owner, size,
// modification time to the nanosecond, and the bytes of each file.
func dirState(t *testing.T, dir string) map[string]string {
	t.Helper()
	names, err := dirNames(dir)
	if err != nil {
		t.Fatal(err)
	}
	state := map[string]string{}
	for _, name := range append(names, ".") {
		path := filepath.Join(dir, name)
		info, err := os.Lstat(path)
		if err != nil {
			t.Fatal(err)
		}
		st := info.Sys().(*syscall.Stat_t)
		line := fmt.Sprintf("%v uid=%d gid=%d size=%d mtime=%d", info.Mode(), st.Uid, st.Gid, info.Size(), info.ModTime().UnixNano())
		if info.Mode().IsRegular() {
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			line += fmt.Sprintf(" %x", b)
		}
		state[name] = line
	}
	return state
}

// mustSay fails t unless s holds every one of says.
func mustSay(t *testing.T, what, s string, says ...string) {
	t.Helper()
	for _, want := range says {
		if !strings.Contains(s, want) {
			t.Errorf("%s %q does not say %q", what, s, want)
		}
	}
}

// TestMemstoreToRedis runs the runbook's copy command against a real
// redis-server: a mistyped directory, an empty store, a running
// application, a server that is down and a bad command line fail with a
// message that says what to do, and copy nothing; a real directory is
// copied, sessions and TTLs, and left as it was, so that the way back, the
// application opening it again as its own user, finds every session.
func TestMemstoreToRedis(t *testing.T) {
	t.Parallel()
	srv := startRedis(t, redisInMemory)
	pool := newRedisPool(srv.addr)
	t.Cleanup(func() { pool.Close() })
	conn := pool.Get()
	defer conn.Close()
	dbSize := func(t *testing.T) int {
		t.Helper()
		n, err := redis.Int(conn.Do("DBSIZE"))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	flush := func(t *testing.T) {
		if _, err := conn.Do("FLUSHDB"); err != nil {
			t.Fatal(err)
		}
	}
	defer flush(t) // the test leaves an empty server: see redisInMemory
	bin := buildCommand(t, t.TempDir())
	app := appDir(t)
	dir, want := storeDirFor(t, app, 500)

	t.Run("mistyped directory", func(t *testing.T) {
		typo := filepath.Join(app, "sesions")
		r := runCommand(t, bin, nil, "-dir", typo, "-redis", srv.addr)
		if r.code == 0 {
			t.Errorf("the command exited 0 on a directory that does not exist")
		}
		mustSay(t, "its error", r.stderr, typo, "no store", "give the directory the application gives memstore.Open")
		if _, err := os.Lstat(typo); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the command created %s (Lstat: %v)", typo, err)
		}
		if n := dbSize(t); n != 0 {
			t.Errorf("Redis holds %d keys; want none", n)
		}
	})

	t.Run("empty store", func(t *testing.T) {
		empty := filepath.Join(t.TempDir(), "empty")
		m, err := memstore.Open(empty, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		r := runCommand(t, bin, nil, "-dir", empty, "-redis", srv.addr)
		if r.code == 0 {
			t.Errorf("the command exited 0 on a store with no session, without -allow-empty")
		}
		mustSay(t, "its output", r.stdout, "read 0 live sessions from directory "+empty)
		mustSay(t, "its error", r.stderr, empty, "no live session", "-allow-empty")
		r = runCommand(t, bin, nil, "-dir", empty, "-redis", srv.addr, "-allow-empty")
		if r.code != 0 {
			t.Errorf("the command exited %d on a store with no session, with -allow-empty; want 0", r.code)
		}
		mustSay(t, "its output", r.stdout, "read 0 live sessions", "wrote 0 sessions to Redis at "+srv.addr)
		if n := dbSize(t); n != 0 {
			t.Errorf("Redis holds %d keys; want none", n)
		}
	})

	t.Run("application still running", func(t *testing.T) {
		m, err := memstore.Open(dir, 0)
		if err != nil {
			t.Fatal(err)
		}
		r := runCommand(t, bin, nil, "-dir", dir, "-redis", srv.addr)
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		chownApp(t, dir) // Open and Close rewrote the files as this user
		if r.code == 0 {
			t.Errorf("the command exited 0 on a directory the application holds")
		}
		mustSay(t, "its error", r.stderr, dir, "stop the application first")
		if n := dbSize(t); n != 0 {
			t.Errorf("Redis holds %d keys; want none", n)
		}
	})

	t.Run("Redis down", func(t *testing.T) {
		down := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		r := runCommand(t, bin, nil, "-dir", dir, "-redis", down)
		if r.code == 0 {
			t.Errorf("the command exited 0 with Redis down")
		}
		mustSay(t, "its error", r.stderr, "cannot reach Redis at "+down, "nothing copied")
	})

	t.Run("command line", func(t *testing.T) {
		for _, args := range [][]string{
			{"-redis", srv.addr},
			{"-dir", dir, "-snapshot", "x", "-redis", srv.addr},
			{"-dir", dir},
			{"-dir", dir, "-redis", srv.addr, "extra"},
			{"-dri", dir, "-redis", srv.addr},
			{"-dir", dir, "-redis", "http://user:secret@" + srv.addr},
		} {
			r := runCommand(t, bin, nil, args...)
			if r.code != 2 {
				t.Errorf("%q: exit %d; want 2, a usage error", args, r.code)
			}
			mustSay(t, "its error", r.stderr, "memstore-to-redis")
			if strings.Contains(r.stderr, "secret") {
				t.Errorf("%q: the error shows the password: %s", args, r.stderr)
			}
		}
		if n := dbSize(t); n != 0 {
			t.Errorf("Redis holds %d keys; want none", n)
		}
	})

	t.Run("copy and roll back", func(t *testing.T) {
		before := dirState(t, dir)
		r := runCommand(t, bin, nil, "-dir", dir, "-redis", srv.addr)
		if r.code != 0 {
			t.Fatalf("the command exited %d; want 0", r.code)
		}
		mustSay(t, "its output", r.stdout,
			fmt.Sprintf("read %d live sessions from directory %s\n", len(want), dir),
			fmt.Sprintf("wrote %d sessions to Redis at %s", len(want), srv.addr))
		checkCopied(t, want, dbSize(t), redisSession(conn))
		after := dirState(t, dir)
		if !maps.Equal(before, after) {
			t.Errorf("the command changed the directory:\nbefore %q\nafter  %q", before, after)
		}

		// The way back: the application starts on its directory again.
		exe, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		appBin := filepath.Join(app, "app.test")
		b, err := os.ReadFile(exe)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(appBin, b, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(appBin, "-test.run=^TestRollbackApp$", "-test.count=1")
		cmd.Env = append(os.Environ(), rollbackDirEnv+"="+dir)
		if os.Geteuid() == 0 {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: appUID, Gid: appUID}}
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("the application, started again on %s: %v\n%s", dir, err, out)
		}
		found := map[string]bool{}
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, "live-") {
				found[line] = true
			}
		}
		if len(found) != len(want) {
			t.Errorf("the application found %d sessions in its directory; want the %d it left", len(found), len(want))
		}
		for token := range want {
			if !found[token] {
				t.Errorf("the application did not find %s", token)
				break
			}
		}
	})

	t.Run("snapshot", func(t *testing.T) {
		flush(t)
		src, snapWant, _ := fillSource(t, 100, 0)
		snap := filepath.Join(t.TempDir(), "sessions.snap")
		if err := src.WriteFile(snap); err != nil {
			t.Fatal(err)
		}
		r := runCommand(t, bin, nil, "-snapshot", snap, "-redis", "redis://"+srv.addr+"/0")
		if r.code != 0 {
			t.Fatalf("the command exited %d; want 0", r.code)
		}
		mustSay(t, "its output", r.stdout, "read 100 live sessions from snapshot "+snap, "wrote 100 sessions")
		checkCopied(t, snapWant, dbSize(t), redisSession(conn))
	})
}
