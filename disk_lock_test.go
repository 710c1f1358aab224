// SPDX-License-Identifier: MIT

//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package memstore_test

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/golangcollege/memstore"
)

// lockDirEnv names the directory TestChildHoldingLock opens; it is unset in
// the parent.
const lockDirEnv = "MEMSTORE_LOCK_DIR"

// openLocked opens dir, which another store holds, and fails t unless Open
// refuses with an error wrapping ErrLocked and no store.
func openLocked(t *testing.T, dir string) {
	t.Helper()
	m, err := memstore.Open(dir, 0)
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
