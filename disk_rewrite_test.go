// SPDX-License-Identifier: MIT

package memstore_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golangcollege/memstore"
)

func TestRewriteKeepsTheSessionsAndDropsOldFiles(t *testing.T) {
	t.Parallel()
	dir := storeDir(t)
	m := openStore(t, dir, memstore.WithSyncInterval(0), memstore.WithRewriteSlack(4<<10))
	want := map[string][]byte{}
	for i := 0; m.Stats().Rewrites < 3; i++ {
		if i > 100_000 {
			t.Fatalf("no third rewrite after %d Commits: %+v", i, m.Stats())
		}
		token, data := fmt.Sprint("t", i%50), []byte(fmt.Sprint("data ", i))
		mustCommit(t, m, token, data, inAnHour())
		want[token] = data
	}
	mustHoldExactly(t, m, want)
	m = reopen(t, m, dir)
	mustHoldExactly(t, m, want)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	var bases []string
	for name := range dirContents(t, dir) {
		if strings.HasPrefix(name, "base.") {
			bases = append(bases, name)
		}
	}
	if len(bases) != 1 {
		t.Errorf("after rewrites, %s holds bases %q; want one", dir, bases)
	}
	if got := logs(t, dir); len(got) > 2 {
		t.Errorf("after rewrites, %s holds logs %q; want the base's and the one Open started", dir, got)
	}
}

// TestIdleRestartsLeaveOneLog opens and closes a store that records nothing,
// again and again: each Open starts a new log, and the one before, which
// holds no record, must go, so that restarts do not pile up files.
func TestIdleRestartsLeaveOneLog(t *testing.T) {
	t.Parallel()
	dir := storeDir(t)
	for i := range 5 {
		m, err := memstore.Open(dir, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		if files := storeFiles(t, dir); len(files) != 1 || !strings.HasPrefix(files[0], "log.") {
			t.Errorf("after restart %d the directory holds %q; want one log", i+1, files)
		}
	}
}

// TestCloseRightAfterOpenRewrites opens directories whose logs hold a record
// and closes them at once: the rewrite that Open owes them must be done by
// Close, which leaves a base and a log, and the session.
func TestCloseRightAfterOpenRewrites(t *testing.T) {
	t.Parallel()
	for i := range 20 {
		dir := storeDir(t)
		m, err := memstore.Open(dir, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Commit("token", []byte("data"), time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		if m, err = memstore.Open(dir, 0); err != nil {
			t.Fatal(err)
		}
		if err := m.Close(); err != nil {
			t.Fatal(err)
		}
		if st := m.Stats(); st.Rewrites != 1 {
			t.Errorf("directory %d: Stats().Rewrites = %d after Close; want 1", i, st.Rewrites)
		}
		files := storeFiles(t, dir)
		if len(files) != 2 || !strings.HasPrefix(files[0], "base.") || !strings.HasPrefix(files[1], "log.") {
			t.Errorf("directory %d holds %q; want a base and a log", i, files)
		}
		if m, err = memstore.Open(dir, 0); err != nil {
			t.Fatal(err)
		}
		if b, found, _ := m.Find("token"); string(b) != "data" {
			t.Errorf("directory %d: Find after the rewrite = %q, %v; want \"data\", true", i, b, found)
		}
		m.Close()
	}
}

func TestFailedBasesAddNoLogs(t *testing.T) {
	t.Parallel()
	dir := storeDir(t)
	m := openStore(t, dir, memstore.WithSyncInterval(0), memstore.WithRewriteSlack(0))
	// Directories by the names of the next bases: renaming a base onto one
	// fails, as a full disk would fail writing it.
	for gen := 2; gen < 10; gen++ {
		if err := os.MkdirAll(filepath.Join(dir, fmt.Sprintf("base.%016x", gen), "x"), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string][]byte{}
	for i := 0; m.Stats().DiskErrors < 3; i++ {
		token, data := fmt.Sprint("t", i%10), []byte(fmt.Sprint("data ", i))
		mustCommit(t, m, token, data, inAnHour()) // on disk in the log, every one
		want[token] = data
		time.Sleep(time.Millisecond)
		if i > 100_000 {
			t.Fatalf("no third failed rewrite: %+v", m.Stats())
		}
	}
	if got := logs(t, dir); len(got) > 2 {
		t.Fatalf("after %d failed rewrites the directory holds logs %q; want no more than the failed base's and the one before", m.Stats().DiskErrors, got)
	}
	for gen := 2; gen < 10; gen++ {
		if err := os.RemoveAll(filepath.Join(dir, fmt.Sprintf("base.%016x", gen))); err != nil {
			t.Fatal(err)
		}
	}
	eventually(t, "a rewrite once bases can be written", func() bool { return m.Stats().Rewrites > 0 })
	m = reopen(t, m, dir)
	mustHoldExactly(t, m, want)
}
