//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package memstore_test

import (
	"os"
	"slices"
	"strings"
	"testing"

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
