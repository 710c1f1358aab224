// SPDX-License-Identifier: MIT

//go:build linux

package memstore_test

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/golangcollege/memstore"
)

// diskSize is the size of the tmpfs the disk-full tests fill: room for the
// sessions they commit before, and little more, so that filling it is quick.
const diskSize = 1 << 20

// mountSmallDisk mounts a tmpfs of diskSize bytes on a new directory, and
// unmounts it when the test ends, after the stores opened on it are closed.
// Where mounting is not allowed (not root, no CAP_SYS_ADMIN, a container
// that forbids it) the test is skipped.
func mountSmallDisk(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, fmt.Sprintf("size=%d,mode=0700", diskSize))
	if err != nil {
		t.Skipf("cannot mount a tmpfs to fill (this test needs root or CAP_SYS_ADMIN, and a kernel that allows it here): %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmounting the test's tmpfs %s: %v", dir, err)
		}
	})
	return dir
}

// fillDisk writes a file in dir until the file system has no byte left, and
// returns its name: removing it frees the space.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	f, err := os.CreateTemp(dir, "filler")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Ever smaller writes, so that the last page of the filler is full too.
	for size := 64 << 10; size > 0; size /= 2 {
		chunk := make([]byte, size)
		for {
			_, err := f.Write(chunk)
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			if err != nil {
				t.Fatalf("filling the disk: %v", err)
			}
		}
	}
	return f.Name()
}

// commitOnDisk commits tokens s0 to s(n-1) and deletes s0, each acknowledged
// as on disk (under a sync interval of 0), and returns the sessions.
func commitOnDisk(t *testing.T, m *memstore.MemStore, n int) map[string][]byte {
	t.Helper()
	want := map[string][]byte{}
	for i := range n {
		token, data := fmt.Sprint("s", i), []byte(fmt.Sprint("data of s", i))
		mustCommit(t, m, token, data, inAnHour())
		want[token] = data
	}
	if err := m.Delete("s0"); err != nil {
		t.Fatalf("Delete(s0): %v", err)
	}
	delete(want, "s0")
	return want
}

// changeWhileFull makes changes to m, whose disk is full: a Commit too large
// for what the log's last page has free, a Delete and two more Commits. Each
// must change the store in memory and, Delete always and Commit under a
// sync interval of 0, return an error wrapping ErrNotDurable; a Commit under
// an interval returns nil, promising nothing yet. The disk's failure must
// show in Stats.
func changeWhileFull(t *testing.T, m *memstore.MemStore, interval time.Duration) {
	t.Helper()
	mustBeRefused := func(what string, err error) {
		t.Helper()
		if interval > 0 && what != "Delete" {
			if err != nil {
				t.Fatalf("%s on a full disk under a sync interval: %v; want nil", what, err)
			}
			return
		}
		if !errors.Is(err, memstore.ErrNotDurable) {
			t.Fatalf("%s on a full disk: %v; want an error wrapping ErrNotDurable", what, err)
		}
	}
	big := bytes.Repeat([]byte("b"), 2*os.Getpagesize())
	mustBeRefused("Commit", m.Commit("big", big, inAnHour()))
	mustFind(t, m, "big", big)
	mustBeRefused("Delete", m.Delete("s1"))
	mustMiss(t, m, "s1")
	mustBeRefused("Commit", m.Commit("s2", []byte("changed while full"), inAnHour()))
	mustFind(t, m, "s2", []byte("changed while full"))
	mustBeRefused("Commit", m.Commit("new", []byte("committed while full"), inAnHour()))
	mustFind(t, m, "new", []byte("committed while full"))
	if m.Stats().DiskErrors == 0 {
		t.Fatal("Stats().DiskErrors = 0 on a full disk; want the failed writes counted")
	}
}

func TestDiskFullKeepsServingAndCatchesUp(t *testing.T) {
	t.Parallel()
	for _, interval := range []time.Duration{0, time.Second} {
		t.Run(fmt.Sprint("sync-interval-", interval), func(t *testing.T) {
			dir := filepath.Join(mountSmallDisk(t), "sessions")
			m := openStore(t, dir, memstore.WithSyncInterval(interval))
			commitOnDisk(t, m, 20)
			filler := fillDisk(t, filepath.Dir(dir))
			changeWhileFull(t, m, interval)
			catchUp(t, m, filler)
			closeAndReopen(t, m, dir)
		})
	}
}

func TestDiskFullCloseReportsAndOpenRestoresWhatWasOnDisk(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(mountSmallDisk(t), "sessions")
	m := openStore(t, dir, memstore.WithSyncInterval(0))
	onDisk := commitOnDisk(t, m, 20)
	filler := fillDisk(t, filepath.Dir(dir))
	changeWhileFull(t, m, 0)
	held, _ := m.All()

	err := m.Close()
	if !errors.Is(err, memstore.ErrNotDurable) {
		t.Fatalf("Close on a full disk: %v; want an error wrapping ErrNotDurable", err)
	}
	if again := m.Close(); again == nil || again.Error() != err.Error() {
		t.Errorf("Close again: %v; want the first Close's error, %v", again, err)
	}

	// A restart on the full disk: Open restores what the disk holds, and the
	// store serves it from memory until the disk has room.
	again := openStore(t, dir, memstore.WithSyncInterval(0))
	mustHoldWhatWasOnDiskOrHeld(t, again, onDisk, held)
	changeWhileFull(t, again, 0)
	catchUp(t, again, filler)
	closeAndReopen(t, again, dir)
}

// mustHoldWhatWasOnDiskOrHeld fails the test unless every session of m is
// as it was on disk, acknowledged, when the disk filled, or as changed in
// memory while the disk was full (held): a change refused as not durable
// may or may not have reached the disk, but nothing else may differ. Nor
// may a failed write have left a part of a record at the end of a log.
func mustHoldWhatWasOnDiskOrHeld(t *testing.T, m *memstore.MemStore, onDisk, held map[string][]byte) {
	t.Helper()
	restored, _ := m.All()
	for token := range joinKeys(onDisk, held, restored) {
		diskData, wasOnDisk := onDisk[token]
		heldData, wasHeld := held[token]
		data, found := restored[token]
		if !(found == wasOnDisk && bytes.Equal(data, diskData)) && !(found == wasHeld && bytes.Equal(data, heldData)) {
			t.Errorf("after a reopen %q holds %q (%v): neither what was on disk, %q (%v), nor what was held at Close, %q (%v)",
				token, data, found, diskData, wasOnDisk, heldData, wasHeld)
		}
	}
	if n := m.Stats().TornRecords; n != 0 {
		t.Errorf("Stats().TornRecords = %d after the reopen; want 0", n)
	}
}

// catchUp removes filler, to give the disk room again, and waits for m to
// catch up: for a Delete to be on disk, and for a rewrite to have written
// what the store holds.
func catchUp(t *testing.T, m *memstore.MemStore, filler string) {
	t.Helper()
	before := m.Stats()
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	eventually(t, "Delete on disk once the disk has room", func() bool { return m.Delete("probe") == nil })
	eventually(t, "a rewrite once the disk has room", func() bool { return m.Stats().Rewrites > before.Rewrites })
	mustCommit(t, m, "after", []byte("committed once the disk had room"), inAnHour())
	if err := m.Delete("s3"); err != nil {
		t.Fatalf("Delete once the disk had room: %v", err)
	}
}

// closeAndReopen closes m, which must succeed, and checks that a store
// opened on dir again holds what m held at Close.
func closeAndReopen(t *testing.T, m *memstore.MemStore, dir string) {
	t.Helper()
	held, _ := m.All()
	if err := m.Close(); err != nil {
		t.Fatalf("Close after the store caught up: %v", err)
	}
	mustHoldExactly(t, openStore(t, dir, memstore.WithSyncInterval(0)), held)
}

// joinKeys returns the set of the keys of the maps.
func joinKeys(ms ...map[string][]byte) map[string]bool {
	keys := map[string]bool{}
	for _, m := range ms {
		for k := range maps.Keys(m) {
			keys[k] = true
		}
	}
	return keys
}
