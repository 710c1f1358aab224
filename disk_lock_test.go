// SPDX-License-Identifier: MIT

//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package memstore_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/golangcollege/memstore"
)

// lockDirEnv names the directory TestChildHoldingLock opens; it is unset in
// the parent.
const lockDirEnv = "MEMSTORE_LOCK_DIR"

// openLocked opens dir, which another store holds, and fails t unless Open
// refuses with an error wrapping ErrLocked and no store. It waits for no
// lock: see TestOpenWaitsForTheLock.
func openLocked(t *testing.T, dir string) {
	t.Helper()
	m, err := memstore.Open(dir, 0, memstore.WithLockTimeout(0))
	if !errors.Is(err, memstore.ErrLocked) || m != nil {
		t.Errorf("Open of a directory another store holds = %v, %v; want nil and an error wrapping ErrLocked", m, err)
		if m != nil {
			m.Close()
		}
	}
}

// openFree opens dir, which no store holds, failing t if it cannot, and
// closes the store.
func openFree(t *testing.T, dir string) {
	t.Helper()
	m, err := memstore.Open(dir, 0)
	if err != nil {
		t.Fatalf("Open of a directory no store holds: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// TestLockInOneProcess opens one directory twice in this process: the
// second Open fails while the first store is open, and succeeds once it is
// closed.
func TestLockInOneProcess(t *testing.T) {
	t.Parallel()
	dir := storeDir(t)
	m, err := memstore.Open(dir, 0)
	if err != nil {
		t.Fatal(err)
	}
	openLocked(t, dir)
	// The refused Open must not have released the lock the first holds.
	openLocked(t, dir)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	openFree(t, dir)
}

// TestChildHoldingLock is the child of TestLockAcrossProcesses: it opens
// the store in $MEMSTORE_LOCK_DIR, writes "open" to its stdout, and waits to
// be killed. It runs only as a child process of TestLockAcrossProcesses.
func TestChildHoldingLock(t *testing.T) {
	dir := os.Getenv(lockDirEnv)
	if dir == "" {
		t.Skip("runs only as a child process of TestLockAcrossProcesses")
	}
	exitWithParent()
	if _, err := memstore.Open(dir, 0); err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("open\n")
	time.Sleep(time.Minute)
	t.Error("not killed within a minute")
}

// TestLockAcrossProcesses opens a directory that a child process holds:
// Open fails until the child is killed with SIGKILL, and then succeeds at
// once: the kernel released the lock with the process.
func TestLockAcrossProcesses(t *testing.T) {
	t.Parallel()
	dir := storeDir(t)
	open := make(chan struct{})
	var unexpected []string
	child := startChild(t, "^TestChildHoldingLock$", []string{lockDirEnv + "=" + dir}, func(line string, _ time.Time) {
		if line == "open" {
			close(open)
		} else {
			unexpected = append(unexpected, line)
		}
	})
	select {
	case <-open:
		openLocked(t, dir)
	case <-child.eof:
		t.Error("the child ended before it opened the store")
	}
	child.kill(t)
	if len(unexpected) > 0 {
		t.Fatalf("the child wrote:\n%s", strings.Join(unexpected, "\n"))
	}
	openFree(t, dir)
}

// openReadOnly opens dir read-only, failing t if it cannot, and returns the
// store, closed when t ends unless closed before. It waits for the lock as
// by default: a child process that a parallel test is starting may hold,
// until it execs, the lock of a store just closed.
func openReadOnly(t *testing.T, dir string) *memstore.MemStore {
	t.Helper()
	m, err := memstore.OpenReadOnly(dir)
	if err != nil {
		t.Fatalf("OpenReadOnly: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// TestReadOnlySharesTheLock opens one directory read-only twice at once,
// which succeeds, and checks that Open and OpenReadOnly keep each other
// out, either way round, until the other is closed.
func TestReadOnlySharesTheLock(t *testing.T) {
	t.Parallel()
	dir := storeDir(t)
	openFree(t, dir) // a store's files for OpenReadOnly to read
	r1 := openReadOnly(t, dir)
	r2 := openReadOnly(t, dir)
	openLocked(t, dir)
	if err := r1.Close(); err != nil {
		t.Fatal(err)
	}
	openLocked(t, dir) // r2 still holds it
	if err := r2.Close(); err != nil {
		t.Fatal(err)
	}

	w := openStore(t, dir)
	m, err := memstore.OpenReadOnly(dir, memstore.WithLockTimeout(0))
	if !errors.Is(err, memstore.ErrLocked) || m != nil {
		t.Errorf("OpenReadOnly of a directory a store from Open holds = %v, %v; want nil and an error wrapping ErrLocked", m, err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	openReadOnly(t, dir)
}

// flockDir takes an exclusive flock on dir through a file description of
// its own, as another process, or a child forked before Close, holds one,
// and returns the function that releases it.
func flockDir(t *testing.T, dir string) (release func()) {
	t.Helper()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	// A child process that a parallel test is starting may hold, until it
	// execs, the lock of a store just closed: wait for it, as Open does.
	eventually(t, "the directory's lock taken", func() bool {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err != nil && !errors.Is(err, syscall.EWOULDBLOCK) {
			t.Fatal(err)
		}
		return err == nil
	})
	return func() { f.Close() }
}

// TestOpenWaitsForTheLock holds a directory's lock through another file
// description, and releases it while Open and OpenReadOnly wait: they get
// it, within their timeout. In a synctest bubble the clock moves only when
// every goroutine waits, so the release comes after the first try failed,
// however loaded the machine, and the wait is measured exactly. It runs
// alone, not in parallel: a child process that a parallel test forks would
// hold the lock released inside the bubble for a moment of the real clock,
// which the bubble's clock does not wait for.
func TestOpenWaitsForTheLock(t *testing.T) {
	for _, readOnly := range []bool{false, true} {
		t.Run(fmt.Sprintf("readOnly=%v", readOnly), func(t *testing.T) {
			dir := storeDir(t)
			openFree(t, dir)
			release := flockDir(t, dir) // on the real clock, which a child holding the lock goes by
			synctest.Test(t, func(t *testing.T) {
				const held = 300 * time.Millisecond
				released := make(chan struct{})
				go func() {
					time.Sleep(held)
					release()
					close(released)
				}()
				defer func() { <-released }() // a bubble ends with its goroutines
				start := time.Now()
				var m *memstore.MemStore
				var err error
				if readOnly {
					m, err = memstore.OpenReadOnly(dir) // the default timeout, a second
				} else {
					m, err = memstore.Open(dir, 0)
				}
				waited := time.Since(start)
				if err != nil {
					t.Fatalf("open, the lock released after %v: %v", held, err)
				}
				if err := m.Close(); err != nil {
					t.Fatal(err)
				}
				if waited < held || waited > time.Second {
					t.Errorf("open returned after %v; want after the release at %v, within the default timeout of 1s", waited, held)
				}
			})
		})
	}
}

// TestOpenGivesUpOnALockHeldForGood holds a directory's lock for good:
// Open and OpenReadOnly fail with an error wrapping ErrLocked that names the
// option, once their timeout has passed; with a timeout of 0, at once.
func TestOpenGivesUpOnALockHeldForGood(t *testing.T) {
	t.Parallel()
	dir := storeDir(t)
	openFree(t, dir)
	release := flockDir(t, dir)
	defer release()
	for _, timeout := range []time.Duration{0, 50 * time.Millisecond, time.Second} {
		for _, readOnly := range []bool{false, true} {
			synctest.Test(t, func(t *testing.T) {
				opts := []memstore.Option{memstore.WithLockTimeout(timeout)}
				if timeout == time.Second {
					opts = nil // the default
				}
				start := time.Now()
				var m *memstore.MemStore
				var err error
				if readOnly {
					m, err = memstore.OpenReadOnly(dir, opts...)
				} else {
					m, err = memstore.Open(dir, 0, opts...)
				}
				waited := time.Since(start)
				if m != nil {
					m.Close()
				}
				if !errors.Is(err, memstore.ErrLocked) || m != nil {
					t.Fatalf("open (read-only %v, timeout %v) = %v, %v; want nil and an error wrapping ErrLocked", readOnly, timeout, m, err)
				}
				if timeout > 0 && !strings.Contains(err.Error(), "WithLockTimeout") {
					t.Errorf("open: %v; want the error to name WithLockTimeout", err)
				}
				if waited != timeout {
					t.Errorf("open (read-only %v) gave up after %v; want after its timeout, %v", readOnly, waited, timeout)
				}
			})
		}
	}
}

// TestOpenAfterCloseWhileChildrenStart closes and opens a store again and
// again while other goroutines start child processes, as a server that runs
// commands does: each child forked while the store was open holds a copy of
// its lock's file until it execs, past Close, so an Open that did not wait
// met ErrLocked on most rounds (474 of 500 on a 2-core VM). Waiting for the
// lock, Open succeeds every time.
func TestOpenAfterCloseWhileChildrenStart(t *testing.T) {
	t.Parallel()
	dir := storeDir(t)
	stop := make(chan struct{})
	var children sync.WaitGroup
	for range 2 {
		children.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				if err := exec.Command("true").Run(); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	defer children.Wait()
	defer close(stop)
	for range 100 {
		// Generous, so that a loaded machine's slow exec does not fail
		// the test: the default is tested in TestOpenWaitsForTheLock.
		m, err := memstore.Open(dir, 0, memstore.WithLockTimeout(time.Minute))
		if err != nil {
			t.Fatalf("Open right after Close, children starting: %v", err)
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
	}
}
