// SPDX-License-Identifier: MIT

//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package memstore_test

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/golangcollege/memstore"
	"github.com/golangcollege/memstore/internal/testchild"
)

// hugeChildEnv, set, makes TestChildHugeFiles run: it is set only in the
// child process of TestHugeFilesTakeLittleMemory.
const hugeChildEnv = "MEMSTORE_HUGE_CHILD"

// hugeSize is the size of the sparse files the tests read: a terabyte,
// which no buffer sized by the file could be allocated for.
const hugeSize = 1 << 40

// hugeAllocLimit is the most the reads of a huge file may allocate: the
// stream's buffer and a store's first chunks, with room to spare.
const hugeAllocLimit = 16 << 20

// TestHugeFilesTakeLittleMemory runs TestChildHugeFiles in a child process,
// so that a read sized by a huge file, which dies with the runtime's
// uncatchable "out of memory", fails this test instead of killing the test
// binary; every one of its subtests must pass.
func TestHugeFilesTakeLittleMemory(t *testing.T) {
	t.Parallel()
	c := testchild.Run("^TestChildHugeFiles$", hugeChildEnv+"=1")
	passed := c.Subtests("TestChildHugeFiles", "PASS")
	want := []string{"ReadFile-of-a-sparse-file", "ReadFile-of-a-header-then-a-sparse-file", "Open-of-a-base-that-is-a-sparse-file",
		"Open-of-a-log-extended-by-truncate", "Open-of-a-log-extended-and-written-at-its-end"}
	slices.Sort(passed)
	slices.Sort(want)
	if c.Err != nil || c.Of("TestChildHugeFiles") != "PASS" || !slices.Equal(passed, want) {
		t.Fatalf("the child (%v) passed %q; want %q:\n%s", c.Err, passed, want, c.Output)
	}
}

// sparse creates the named file, holding start and then zeros up to
// hugeSize bytes, or end at its very end, without writing them: a sparse
// file, as truncate -s leaves one.
func sparse(t *testing.T, name string, start, end []byte) {
	t.Helper()
	if err := os.WriteFile(name, start, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(name, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Truncate(hugeSize - int64(len(end))); err != nil {
		t.Fatalf("making a sparse file of %d bytes: %v", int64(hugeSize), err)
	}
	if _, err := f.WriteAt(end, hugeSize-int64(len(end))); err != nil {
		t.Fatal(err)
	}
}

// allocated returns how many bytes call allocated.
func allocated(call func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	call()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// refusedNaming fails t unless err wraps ErrBadSnapshot and names name.
func refusedNaming(t *testing.T, err error, name string) {
	t.Helper()
	if !errors.Is(err, memstore.ErrBadSnapshot) || !strings.Contains(err.Error(), name) {
		t.Errorf("got error %v; want one wrapping ErrBadSnapshot naming %s", err, name)
	}
}

// TestChildHugeFiles reads files of a terabyte, sparse, that are not what
// they should be: each is refused with an error naming it, or read as far
// as it is what it should be, allocating little. It runs only as the child
// process of TestHugeFilesTakeLittleMemory.
func TestChildHugeFiles(t *testing.T) {
	if os.Getenv(hugeChildEnv) == "" {
		t.Skip("runs only as the child process of TestHugeFilesTakeLittleMemory")
	}
	check := func(t *testing.T, call func()) {
		t.Helper()
		if n := allocated(call); n > hugeAllocLimit {
			t.Errorf("allocated %d bytes reading a sparse file of %d; want at most %d", n, int64(hugeSize), hugeAllocLimit)
		}
	}

	t.Run("ReadFile-of-a-sparse-file", func(t *testing.T) {
		name := filepath.Join(t.TempDir(), "sessions.snap")
		sparse(t, name, nil, nil)
		check(t, func() { refusedNaming(t, newStore(t).ReadFile(name), name) })
	})

	t.Run("ReadFile-of-a-header-then-a-sparse-file", func(t *testing.T) {
		// A snapshot's header claiming one entry, then zeros: an empty
		// session, expired in 1970, a checksum, and then bytes that no
		// snapshot has.
		name := filepath.Join(t.TempDir(), "sessions.snap")
		sparse(t, name, binary.BigEndian.AppendUint64([]byte("\x89MEMSNAP\x01"), 1), nil)
		check(t, func() { refusedNaming(t, newStore(t).ReadFile(name), name) })
	})

	t.Run("Open-of-a-base-that-is-a-sparse-file", func(t *testing.T) {
		dir := storeDir(t)
		sparse(t, filepath.Join(dir, "base.0000000000000001"), nil, nil)
		check(t, func() {
			m, err := memstore.Open(dir, 0)
			if m != nil {
				m.Close()
			}
			refusedNaming(t, err, "base.0000000000000001")
		})
	})

	// A log of a store, holding a session, that a mistyped truncate -s
	// extended to a terabyte: zeros after the last record, a torn record,
	// as a crash may leave one, which Open drops.
	t.Run("Open-of-a-log-extended-by-truncate", func(t *testing.T) {
		dir := committedStore(t, "tok")
		log := logs(t, dir)[0]
		sparse(t, log, readAll(t, log), nil)
		check(t, func() {
			m := openStore(t, dir)
			mustHoldExactly(t, m, map[string][]byte{"tok": []byte("tok's")})
			if torn := m.Stats().TornRecords; torn != 1 {
				t.Errorf("Stats().TornRecords = %d; want 1, the zeros", torn)
			}
			m.Close()
		})
	})

	// The same log, with a byte written at its end: damage, not a crash.
	t.Run("Open-of-a-log-extended-and-written-at-its-end", func(t *testing.T) {
		dir := committedStore(t, "tok")
		log := logs(t, dir)[0]
		sparse(t, log, readAll(t, log), []byte{1})
		check(t, func() {
			m, err := memstore.Open(dir, 0)
			if m != nil {
				m.Close()
			}
			refusedNaming(t, err, filepath.Base(log))
		})
	})
}
