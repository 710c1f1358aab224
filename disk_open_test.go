// SPDX-License-Identifier: MIT

//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd

package memstore_test

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golangcollege/memstore"
)

// refused opens dir and fails t unless Open fails with an error wrapping
// want that says every one of says, and returns no store.
func refused(t *testing.T, dir string, want error, says ...string) {
	t.Helper()
	m, err := memstore.Open(dir, 0)
	if m != nil {
		m.Close()
	}
	if !errors.Is(err, want) || m != nil {
		t.Fatalf("Open = %v, %v; want nil and an error wrapping %v", m, err, want)
	}
	for _, s := range says {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("Open: %v; want the error to say %q", err, s)
		}
	}
}

func TestOpenRefusesADirectoryOthersCanReach(t *testing.T) {
	t.Parallel()
	for _, mode := range []os.FileMode{0o755, 0o750, 0o710, 0o701, 0o702, 0o777} {
		t.Run(fmt.Sprintf("%04o", mode), func(t *testing.T) {
			dir := storeDir(t)
			if err := os.Chmod(dir, mode); err != nil { // Chmod, not Mkdir: the umask does not apply
				t.Fatal(err)
			}
			refused(t, dir, memstore.ErrDirPermissions, fmt.Sprintf("%04o", mode), "chmod 0700 "+dir)
			if names := dirNames(t, dir); len(names) > 0 {
				t.Errorf("a refused Open left %q in the directory", names)
			}
			if err := os.Chmod(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			openFree(t, dir)
		})
	}
}

// TestOpenNamesPastWhatIsInTheDirectory puts entries by the names of a
// store's files, which the store did not write, in its directory: those it
// could still name past are left alone, and the store names its files past
// them, restart after restart; one too near the last generation a store
// names is refused at the first Open, with a message saying so.
func TestOpenNamesPastWhatIsInTheDirectory(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		isDir bool
		next  string // the log the first Open starts
	}{
		{"log.fffffffffffffffe", false, "log.0000000000000001"}, // beyond the store's names: not its own
		{"log.fffffffffffffffe", true, "log.0000000000000001"},
		{"log.8000000000000000", true, "log.0000000000000001"},
		{"log.0000000000000100", true, "log.0000000000000101"}, // a directory by a store's name
		{"base.7ffffffeffffffff", true, "log.7fffffff00000000"},
	} {
		t.Run(fmt.Sprintf("%s-dir=%v", tc.name, tc.isDir), func(t *testing.T) {
			dir := storeDir(t)
			stray := filepath.Join(dir, tc.name)
			if tc.isDir {
				if err := os.Mkdir(stray, 0o700); err != nil {
					t.Fatal(err)
				}
			} else if err := os.WriteFile(stray, []byte("stray"), 0o600); err != nil {
				t.Fatal(err)
			}
			m := openStore(t, dir, memstore.WithRewriteSlack(0))
			if _, err := os.Stat(filepath.Join(dir, tc.next)); err != nil {
				t.Errorf("the first Open did not start %s: %v", tc.next, err)
			}
			for i := range 3 {
				mustCommit(t, m, fmt.Sprint("tok", i), []byte("data"), inAnHour())
				m = reopen(t, m, dir, memstore.WithRewriteSlack(0))
			}
			mustHoldExactly(t, m, map[string][]byte{"tok0": []byte("data"), "tok1": []byte("data"), "tok2": []byte("data")})
			if info, err := os.Lstat(stray); err != nil || info.IsDir() != tc.isDir {
				t.Errorf("the stray %s was changed or removed: %v", tc.name, err)
			}
		})
	}

	dir := storeDir(t)
	if err := os.Mkdir(filepath.Join(dir, "log.7fffffffffffffff"), 0o700); err != nil {
		t.Fatal(err)
	}
	refused(t, dir, memstore.ErrBadSnapshot, "log.7fffffffffffffff", "move it out")
}

func TestOpenRemovesOnlyItsOwnFiles(t *testing.T) {
	t.Parallel()
	dir := storeDir(t)
	theirs := map[string]string{
		"base.tmp":                        "a user's",
		"base.notes.tmp":                  "a user's",
		"base.0000000000000001.42.tmp":    "not a base",
		"base.0000000000000001.43.tmp.gz": "",
	}
	for name, content := range theirs {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// What a crash while a base was being written leaves: a temporary file
	// created, nothing written in it yet.
	left := filepath.Join(dir, "base.0000000000000001.44.tmp")
	if err := os.WriteFile(left, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	m := openStore(t, dir, memstore.WithRewriteSlack(0))
	mustCommit(t, m, "tok", []byte("data"), inAnHour())
	m = reopen(t, m, dir) // a rewrite: the old files go
	m.Close()
	files := dirContents(t, dir)
	for name, content := range theirs {
		if got, ok := files[name]; !ok || got != content {
			t.Errorf("%s holds %q (present: %v); want it untouched", name, got, ok)
		}
	}
	if _, ok := files[filepath.Base(left)]; ok {
		t.Errorf("the empty temporary file a crash left is still there")
	}
}

// TestOpenFollowsNoLink puts symbolic links by the names of a store's files
// in its directory, and LOCK, the lock file of earlier versions, pointing
// out of it: Open reads none, creates no file where they point, and leaves
// them in place.
func TestOpenFollowsNoLink(t *testing.T) {
	t.Parallel()
	outside := t.TempDir()
	otherLog := logs(t, committedStore(t, "theirs"))[0]
	dir := storeDir(t)
	links := map[string]string{
		"LOCK":                  filepath.Join(outside, "lock"),
		"log.0000000000000001":  otherLog,
		"base.0000000000000002": filepath.Join(outside, "base"),
	}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	before := readAll(t, otherLog)
	m := openStore(t, dir, memstore.WithRewriteSlack(0))
	mustCommit(t, m, "ours", []byte("data"), inAnHour())
	m = reopen(t, m, dir)
	mustHoldExactly(t, m, map[string][]byte{"ours": []byte("data")})
	m.Close()
	for name, target := range links {
		if got, err := os.Readlink(filepath.Join(dir, name)); err != nil || got != target {
			t.Errorf("the link %s now reads %q, %v; want it untouched, to %s", name, got, err, target)
		}
	}
	if names := dirNames(t, outside); len(names) > 0 {
		t.Errorf("Open created %q where the links point", names)
	}
	if !bytes.Equal(readAll(t, otherLog), before) {
		t.Errorf("the other store's log, linked to, was changed")
	}
}

// TestLockHeldWhateverHappensToLOCK removes and replaces the LOCK file, by
// which earlier versions locked the directory, while a store holds it: a
// second Open is still refused.
func TestLockHeldWhateverHappensToLOCK(t *testing.T) {
	t.Parallel()
	dir := storeDir(t)
	m := openStore(t, dir)
	lock := filepath.Join(dir, "LOCK")
	if err := os.WriteFile(lock, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	openLocked(t, dir)
	if err := os.Remove(lock); err != nil {
		t.Fatal(err)
	}
	openLocked(t, dir)
	if err := os.Symlink(filepath.Join(t.TempDir(), "elsewhere"), lock); err != nil {
		t.Fatal(err)
	}
	openLocked(t, dir)
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	openFree(t, dir)
}

// committedStore returns a new directory holding a store's log of token.
func committedStore(t *testing.T, token string) string {
	t.Helper()
	dir := storeDir(t)
	m := openStore(t, dir)
	mustCommit(t, m, token, []byte(token+"'s"), inAnHour())
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestOpenRefusesAFileOfAnotherStore(t *testing.T) {
	t.Parallel()
	ours, theirs := committedStore(t, "ours"), committedStore(t, "theirs")
	// A snapshot from a store of New's.
	saved := filepath.Join(t.TempDir(), "saved")
	src := newStore(t)
	mustCommit(t, src, "saved", []byte("x"), inAnHour())
	if err := src.WriteFile(saved); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string][]byte{
		"log.0000000000000009":  readAll(t, logs(t, theirs)[0]),
		"base.0000000000000009": readAll(t, saved),
		"log.0000000000000000":  readAll(t, logs(t, theirs)[0]), // before this store's files
	} {
		t.Run(name, func(t *testing.T) {
			copied := filepath.Join(ours, name)
			if err := os.WriteFile(copied, content, 0o600); err != nil {
				t.Fatal(err)
			}
			before := storeContents(t, ours)
			refused(t, ours, memstore.ErrBadSnapshot, name, "move")
			if !maps.Equal(storeContents(t, ours), before) {
				t.Errorf("a refused Open changed the directory")
			}
			if err := os.Remove(copied); err != nil {
				t.Fatal(err)
			}
			m := openStore(t, ours)
			mustHoldExactly(t, m, map[string][]byte{"ours": []byte("ours's")})
			m.Close()
		})
	}
}

// version1Log is a log of version 1, as earlier versions wrote it: a put of
// token "tok", data "hi", expiring in 2200.
var version1Log = []byte{
	0x89, 0x4D, 0x45, 0x4D, 0x53, 0x4C, 0x4F, 0x47, 0x01,
	0x00, 0x00, 0x00, 0x0F, 0x16, 0x74, 0x77, 0xE3, 0x30, 0x46, 0x84, 0xDB,
	0x01, 0x03, 0x74, 0x6F, 0x6B, 0x64, 0xBA, 0x04, 0x3A, 0xC9, 0xBA, 0x00, 0x00, 0x68, 0x69,
}

// TestOpenUpgradesADirectoryOfVersion1 opens a directory that earlier
// versions wrote: its sessions are restored, and its files rewritten in
// the current version, all of one store.
func TestOpenUpgradesADirectoryOfVersion1(t *testing.T) {
	t.Parallel()
	dir := storeDir(t)
	if err := os.WriteFile(filepath.Join(dir, "log.0000000000000003"), version1Log, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "LOCK"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{"tok": []byte("hi")}
	m := openStore(t, dir)
	mustHoldExactly(t, m, want)
	if err := m.Close(); err != nil { // writes the base the upgrade is due
		t.Fatal(err)
	}
	var store []byte
	for name, content := range storeContents(t, dir) {
		if !strings.HasPrefix(name, "base.") && !strings.HasPrefix(name, "log.") {
			continue
		}
		if len(content) < 25 || content[8] != 2 {
			t.Fatalf("after Close, %s is not of version 2: % X", name, content)
		}
		if store == nil {
			store = []byte(content[9:25])
		} else if !bytes.Equal(store, []byte(content[9:25])) {
			t.Errorf("%s is of store %x; want %x, as the other files", name, content[9:25], store)
		}
	}
	m = openStore(t, dir)
	mustHoldExactly(t, m, want)
	m.Close()

	// A log of version 1 after one of version 2 is not this store's.
	if err := os.WriteFile(filepath.Join(dir, "log.0000000000000100"), version1Log, 0o600); err != nil {
		t.Fatal(err)
	}
	refused(t, dir, memstore.ErrBadSnapshot, "log.0000000000000100", "version 1")
}

func TestStatsKeepTheLastDiskError(t *testing.T) {
	t.Parallel()
	dir := storeDir(t)
	m := openStore(t, dir, memstore.WithSyncInterval(0), memstore.WithRewriteSlack(0))
	if st := m.Stats(); st.LastDiskError != nil || !st.LastDiskErrorAt.IsZero() {
		t.Fatalf("before any disk error, Stats = %v at %v; want nil at the zero time", st.LastDiskError, st.LastDiskErrorAt)
	}
	// A directory by the name of the next base: renaming the base onto it
	// fails, as a full disk would fail writing it.
	blocked := filepath.Join(dir, "base.0000000000000002")
	if err := os.MkdirAll(filepath.Join(blocked, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for i := 0; m.Stats().DiskErrors == 0; i++ {
		mustCommit(t, m, fmt.Sprint("t", i%10), []byte("data"), inAnHour())
		time.Sleep(time.Millisecond)
		if i > 100_000 {
			t.Fatalf("no failed rewrite: %+v", m.Stats())
		}
	}
	end := time.Now()
	st := m.Stats()
	if st.LastDiskError == nil || !strings.Contains(st.LastDiskError.Error(), blocked) {
		t.Errorf("Stats().LastDiskError = %v; want the error naming %s", st.LastDiskError, blocked)
	}
	if st.LastDiskErrorAt.Before(start) || st.LastDiskErrorAt.After(end) {
		t.Errorf("Stats().LastDiskErrorAt = %v; want between %v and %v", st.LastDiskErrorAt, start, end)
	}
}

func TestOpenIgnoresANilOption(t *testing.T) {
	t.Parallel()
	dir := storeDir(t)
	m, err := memstore.Open(dir, 0, nil, memstore.WithSyncInterval(0), nil)
	if err != nil {
		t.Fatal(err)
	}
	mustCommit(t, m, "tok", []byte("data"), inAnHour())
	m = reopen(t, m, dir, nil)
	mustHoldExactly(t, m, map[string][]byte{"tok": []byte("data")})
}

// dirState describes dir and every entry in it, as ls -l would and more:
// name, mode, owner, size, modification time to the nanosecond, and the
// bytes of each file. The directory's own line changes if an entry is
// created, renamed or removed, even one removed again.
func dirState(t testing.TB, dir string) map[string]string {
	t.Helper()
	describe := func(name string) string {
		info, err := os.Lstat(name)
		if err != nil {
			t.Fatal(err)
		}
		st := info.Sys().(*syscall.Stat_t)
		line := fmt.Sprintf("%v uid=%d gid=%d size=%d mtime=%d", info.Mode(), st.Uid, st.Gid, info.Size(), info.ModTime().UnixNano())
		if info.Mode().IsRegular() {
			line += fmt.Sprintf(" %q", readAll(t, name))
		}
		return line
	}
	state := map[string]string{".": describe(dir)}
	for _, name := range dirNames(t, dir) {
		state[name] = describe(filepath.Join(dir, name))
	}
	return state
}

// checkUnchanged fails t unless dir's state is before.
func checkUnchanged(t testing.TB, dir string, before map[string]string) {
	t.Helper()
	after := dirState(t, dir)
	for name := range maps.Keys(before) {
		if before[name] != after[name] {
			t.Errorf("%s changed:\nbefore %s\nafter  %s", name, before[name], after[name])
		}
	}
	for name := range maps.Keys(after) {
		if _, ok := before[name]; !ok {
			t.Errorf("%s was created: %s", name, after[name])
		}
	}
}

// storeToRead returns a directory holding what Open restores from and
// would change: a base and two logs after it holding records, a log of an
// earlier generation and an empty temporary base, both of which Open
// removes, and the sessions the directory holds. Run as root, every file
// belongs to another user, as an application's directory does to the
// root-run copy program.
func storeToRead(t *testing.T) (dir string, want map[string][]byte) {
	t.Helper()
	dir = storeDir(t)
	want = map[string][]byte{}
	m := openStore(t, dir)
	for i := range 5 {
		token := fmt.Sprintf("first-%d", i)
		mustCommit(t, m, token, []byte("data of "+token), inAnHour())
		want[token] = []byte("data of " + token)
	}
	m.Close()
	older := readAll(t, filepath.Join(dir, "log.0000000000000001"))
	m = openStore(t, dir) // replays log.1: Close folds it into base.3
	m = reopen(t, m, dir)
	mustCommit(t, m, "later", []byte("committed after the base"), inAnHour())
	want["later"] = []byte("committed after the base")
	if err := m.Delete("first-0"); err != nil {
		t.Fatal(err)
	}
	delete(want, "first-0")
	m.Close()
	if got := storeFiles(t, dir); !slices.Equal(got, []string{"base.0000000000000003", "log.0000000000000004"}) {
		t.Fatalf("the directory holds %q; want base.3 and log.4", got)
	}
	// A crash right after a store started log.5 and wrote log.4's records
	// again: replaying both gives the same sessions.
	extra := map[string][]byte{
		"log.0000000000000005":         readAll(t, filepath.Join(dir, "log.0000000000000004")),
		"log.0000000000000001":         older,
		"base.0000000000000001.42.tmp": nil,
	}
	for name, b := range extra {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if os.Geteuid() == 0 {
		for _, name := range append(dirNames(t, dir), ".") {
			if err := os.Lchown(filepath.Join(dir, name), 65534, 65534); err != nil {
				t.Fatal(err)
			}
		}
	}
	return dir, want
}

// TestOpenReadOnlyChangesNothing opens a store's directory read-only, reads
// it, writes to the store and closes it: every file and the directory
// itself are as they were, byte for byte, mode, owner and mtime. Open of
// the same directory replays the logs into a new base and log, and removes
// the files it no longer needs.
func TestOpenReadOnlyChangesNothing(t *testing.T) {
	t.Parallel()
	dir, want := storeToRead(t)
	before := dirState(t, dir)

	m, err := memstore.OpenReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	mustHoldExactly(t, m, want)
	if err := m.Commit("new", []byte("x"), inAnHour()); !errors.Is(err, memstore.ErrNotDurable) || !strings.Contains(err.Error(), "read-only") {
		t.Errorf("Commit to a read-only store = %v; want an error wrapping ErrNotDurable that says read-only", err)
	}
	if err := m.Delete("later"); !errors.Is(err, memstore.ErrNotDurable) {
		t.Errorf("Delete from a read-only store = %v; want an error wrapping ErrNotDurable", err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	checkUnchanged(t, dir, before)
	if _, found, _ := m.Find("new"); !found {
		t.Errorf("the Commit refused on disk is not in memory")
	}

	// The directory is still the application's to open, and holds what
	// it did before.
	m = openStore(t, dir)
	mustHoldExactly(t, m, want)
}

// TestOpenReadOnlyRefusesWhereNoStoreIs opens read-only a directory that
// does not exist, one that is empty, and one holding no file of a store:
// each is refused with an error wrapping ErrNoStore that names it, and
// nothing is created.
func TestOpenReadOnlyRefusesWhereNoStoreIs(t *testing.T) {
	t.Parallel()
	parent := t.TempDir()
	missing := filepath.Join(parent, "sesions", "store")
	empty := storeDir(t)
	other := storeDir(t)
	if err := os.WriteFile(filepath.Join(other, "notes.txt"), []byte("not a store's"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, dir := range []string{missing, empty, other} {
		var before map[string]string
		if dir != missing {
			before = dirState(t, dir)
		}
		m, err := memstore.OpenReadOnly(dir)
		if m != nil {
			m.Close()
		}
		if !errors.Is(err, memstore.ErrNoStore) || m != nil || !strings.Contains(err.Error(), dir) {
			t.Errorf("OpenReadOnly(%s) = %v, %v; want nil and an error wrapping ErrNoStore that names the directory", dir, m, err)
		} else {
			t.Logf("OpenReadOnly: %v", err)
		}
		if dir == missing {
			if names := dirNames(t, parent); len(names) > 0 {
				t.Errorf("OpenReadOnly of a missing directory created %q", names)
			}
		} else {
			checkUnchanged(t, dir, before)
		}
	}
}
