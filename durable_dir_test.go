package memstore_test

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/golangcollege/memstore"
)

// dirNames returns the names of the files in dir.
func dirNames(t *testing.T, dir string) []string {
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
// but its LOCK, which stays.
func storeFiles(t *testing.T, dir string) []string {
	t.Helper()
	return slices.DeleteFunc(dirNames(t, dir), func(name string) bool { return name == "LOCK" })
}

// TestIdleRestartsLeaveOneLog opens and closes a store that records nothing,
// again and again: each Open starts a new log, and the one before, which
// holds no record, must go, so that restarts do not pile up files.
func TestIdleRestartsLeaveOneLog(t *testing.T) {
	dir := t.TempDir()
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
	for i := range 20 {
		dir := t.TempDir()
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
