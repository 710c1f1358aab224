// SPDX-License-Identifier: MIT

package memstore_test

// The helpers that test files share, and TestMain with the flags: one place,
// as bbolt's internal/btesting, so that a test file holds its own tests and
// the helpers only it uses. The child processes that the crash and lock
// tests run are in childproc_test.go, which builds only where they run.

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/golangcollege/memstore"
)

// Generous margins: these tests must not flake on a loaded 2-core machine.
const (
	shortLife = 50 * time.Millisecond // a lifetime meant to run out during a test
	patience  = 10 * time.Second      // how long a poll waits before the test fails
)

// long makes the tests that measure the store under load run at full size:
// floods of half a million sessions, twenty-two kills. Without it they run
// the same checks on a tenth or so of the work, so that the README's test
// command takes seconds under -race; .ci/run runs both.
var long = flag.Bool("long", false, "run the load tests at full size (about 4 minutes under -race)")

// TestMain lets four tests run at once for each processor, unless -parallel
// says otherwise: many of them wait on child processes, disks and the real
// clock more than they compute. Tests that measure the heap or count
// goroutines do not call t.Parallel, and so run alone.
func TestMain(m *testing.M) {
	flag.Parse()
	parallelSet := false
	flag.Visit(func(f *flag.Flag) { parallelSet = parallelSet || f.Name == "test.parallel" })
	if !parallelSet {
		flag.Set("test.parallel", strconv.Itoa(4*runtime.GOMAXPROCS(0)))
	}
	os.Exit(m.Run())
}

// sized returns full under -long, and short otherwise.
func sized[T any](short, full T) T {
	if *long {
		return full
	}
	return short
}

// newStore returns a store without a janitor, closed when the test ends.
func newStore(t testing.TB, opts ...memstore.Option) *memstore.MemStore {
	m := memstore.New(0, opts...)
	t.Cleanup(func() { m.Close() })
	return m
}

// eventually polls cond until it holds, failing the test after patience. In
// a synctest bubble, where the tests that wait for sessions to expire or for
// the janitor run, it polls on the bubble's fake clock and takes no real
// time.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: still not %s", patience, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// mustFind fails the test unless token holds want.
func mustFind(t testing.TB, m *memstore.MemStore, token string, want []byte) {
	t.Helper()
	got, found, err := m.Find(token)
	if err != nil || !found || !bytes.Equal(got, want) {
		t.Fatalf("Find(%q) = %q, %v, %v; want %q, true, nil", token, got, found, err, want)
	}
}

// mustMiss fails the test unless token is absent.
func mustMiss(t testing.TB, m *memstore.MemStore, token string) {
	t.Helper()
	got, found, err := m.Find(token)
	if got != nil || found || err != nil {
		t.Fatalf("Find(%q) = %q, %v, %v; want nil, false, nil", token, got, found, err)
	}
}

func mustCommit(t testing.TB, m *memstore.MemStore, token string, b []byte, expiry time.Time) {
	t.Helper()
	if err := m.Commit(token, b, expiry); err != nil {
		t.Fatalf("Commit(%q): %v", token, err)
	}
}

func inAnHour() time.Time { return time.Now().Add(time.Hour) }

// newCappedStore returns a store without a janitor capped at maxBytes,
// closed when the test ends.
func newCappedStore(t testing.TB, maxBytes int64, opts ...memstore.Option) *memstore.MemStore {
	m := memstore.New(0, append([]memstore.Option{memstore.WithMaxBytes(maxBytes)}, opts...)...)
	t.Cleanup(func() { m.Close() })
	return m
}

// capWhileCommitting returns the most Stats().Bytes may show under a cap of
// maxBytes while up to inFlight Commits, of sessions smaller than a shared
// chunk, run at once: WithMaxBytes lets each Commit in flight take the store
// past the cap by up to one chunk, which is at most 1/64 of the cap. With no
// Commit in flight, the bound is the cap itself.
func capWhileCommitting(maxBytes int64, inFlight int) int64 {
	return maxBytes + int64(inFlight)*(maxBytes/64)
}

func heapAfterGC() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// scsToken returns the i-th of a set of distinct 43-byte tokens, the length
// of scs's.
func scsToken(i int) string { return fmt.Sprintf("%043d", i) }

// scannableHeap returns the bytes of heap the garbage collector must scan
// for pointers, after a collection.
func scannableHeap() uint64 {
	runtime.GC()
	sample := []metrics.Sample{{Name: "/gc/scan/heap:bytes"}}
	metrics.Read(sample)
	return sample[0].Value.Uint64()
}

// heapObjects returns the bytes of the heap's objects, live or not yet
// collected.
func heapObjects() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// openStore opens a durable store in dir, closed when the test ends unless
// the test closes it first.
func openStore(t testing.TB, dir string, opts ...memstore.Option) *memstore.MemStore {
	t.Helper()
	m, err := memstore.Open(dir, 0, opts...)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// reopen closes m, which must succeed, and opens dir again.
func reopen(t testing.TB, m *memstore.MemStore, dir string, opts ...memstore.Option) *memstore.MemStore {
	t.Helper()
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	return openStore(t, dir, opts...)
}

// logs returns the names of the logs in dir, oldest first.
func logs(t testing.TB, dir string) []string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, "log.*"))
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// readAll returns the bytes of the named file.
func readAll(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// storeDir returns a new directory for a store, which only its owner may
// reach, as Open requires: t.TempDir's lets others in.
func storeDir(t testing.TB) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "store")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return dir
}

// dirContents returns every file of dir and its bytes.
func dirContents(t testing.TB, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	for _, name := range dirNames(t, dir) {
		files[name] = string(readAll(t, filepath.Join(dir, name)))
	}
	return files
}

// storeContents is dirContents without LOCK, which an Open on Windows
// creates, empty.
func storeContents(t testing.TB, dir string) map[string]string {
	t.Helper()
	files := dirContents(t, dir)
	delete(files, "LOCK")
	return files
}

// dirNames returns the names of the files in dir.
func dirNames(t testing.TB, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, len(entries))
	for i, e := range entries {
		names[i] = e.Name()
	}
	return names
}

// storeFiles returns the names of the files of a durable store's directory,
// but LOCK, which an Open on Windows creates and leaves.
func storeFiles(t testing.TB, dir string) []string {
	t.Helper()
	return slices.DeleteFunc(dirNames(t, dir), func(name string) bool { return name == "LOCK" })
}
