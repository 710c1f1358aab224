// SPDX-License-Identifier: MIT

package memstore_test

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/golangcollege/memstore"
)

// committedLog returns a directory whose one log holds the Commits of
// tokens t0 to t(n-1), in order, each on disk, and the sessions.
func committedLog(t *testing.T, n int) (dir string, want map[string][]byte) {
	t.Helper()
	dir = storeDir(t)
	m := openStore(t, dir, memstore.WithSyncInterval(0))
	want = map[string][]byte{}
	for i := range n {
		token, data := fmt.Sprint("t", i), []byte(fmt.Sprint("data of t", i))
		mustCommit(t, m, token, data, inAnHour())
		want[token] = data
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if got := logs(t, dir); len(got) != 1 {
		t.Fatalf("the store left logs %q; want one", got)
	}
	return dir, want
}

func TestOpenRestoresWhatWasCommittedAndDeleted(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opts []memstore.Option
	}{
		{"plain", nil},
		{"colliding-tokens", []memstore.Option{memstore.WithCollisions()}},
		{"sync-interval-0", []memstore.Option{memstore.WithSyncInterval(0)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := storeDir(t)
			m := openStore(t, dir, tc.opts...)
			want := map[string][]byte{}
			for i := range 300 {
				token := fmt.Sprint("token-", i%100) // each token thrice: the last Commit counts
				data := []byte(fmt.Sprint("data ", i))
				mustCommit(t, m, token, data, inAnHour())
				want[token] = data
			}
			for i := range 30 {
				token := fmt.Sprint("token-", 3*i)
				if err := m.Delete(token); err != nil {
					t.Fatal(err)
				}
				delete(want, token)
			}
			mustCommit(t, m, "empty", nil, inAnHour())
			want["empty"] = []byte{}
			mustHoldExactly(t, m, want)

			m = reopen(t, m, dir, tc.opts...)
			mustHoldExactly(t, m, want)
			m = reopen(t, m, dir, tc.opts...) // after the rewrite the first reopen started
			mustHoldExactly(t, m, want)
		})
	}
}

func TestOpenKeepsExpiries(t *testing.T) {
	t.Parallel()
	dir := storeDir(t)
	m := openStore(t, dir)
	soon, later := time.Now().Add(time.Second), inAnHour()
	mustCommit(t, m, "soon", []byte("a"), soon)
	mustCommit(t, m, "later", []byte("b"), later)
	before := expiries(t, m)
	m = reopen(t, m, dir)
	after, reopened := expiries(t, m), time.Now()
	// Every expiry went to disk as wall-clock time: it comes back within
	// the drift between the clocks, unless it has passed meanwhile (a
	// loaded machine may take that long to reopen), and then the session
	// is gone.
	for token, want := range before {
		got, held := after[token]
		if !held && want.Before(reopened) {
			continue
		}
		if got.Sub(want).Abs() > time.Second {
			t.Errorf("expiry of %s after reopen = %v; want %v", token, got, want)
		}
	}

	time.Sleep(time.Until(soon)) // past soon's expiry, on any clock
	m = reopen(t, m, dir)
	mustHoldExactly(t, m, map[string][]byte{"later": []byte("b")})
}

func TestOpenCreatesAPrivateDirectory(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "a", "b")
	openStore(t, dir)
	info, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o700 {
		t.Errorf("Open created %s with mode %v; want 0700", dir, perm)
	}
}

func TestOpenFailsOnAFile(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if m, err := memstore.Open(file, 0); err == nil || m != nil {
		t.Fatalf("Open of a regular file = %v, %v; want nil and an error", m, err)
	}
}

func TestOpenLeavesOtherFilesAlone(t *testing.T) {
	t.Parallel()
	dir := storeDir(t)
	for _, name := range []string{"notes.txt", "log.txt", "base.1", "log.00000000000000zz", "log.ffffffffffffffff"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(name), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	m := openStore(t, dir)
	mustCommit(t, m, "tok", []byte("data"), inAnHour())
	m = reopen(t, m, dir)
	mustHoldExactly(t, m, map[string][]byte{"tok": []byte("data")})
	m.Close()
	files := dirContents(t, dir)
	for _, name := range []string{"notes.txt", "log.txt", "base.1", "log.00000000000000zz", "log.ffffffffffffffff"} {
		if files[name] != name {
			t.Errorf("after Open and Close, %s holds %q; want it untouched", name, files[name])
		}
	}
}

func TestStoreAfterCloseRecordsNothing(t *testing.T) {
	t.Parallel()
	dir := storeDir(t)
	m := openStore(t, dir)
	mustCommit(t, m, "kept", []byte("1"), inAnHour())
	mustCommit(t, m, "deleted-after-close", []byte("2"), inAnHour())
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v; want nil as the first", err)
	}

	// The store keeps working in memory.
	mustCommit(t, m, "after-close", []byte("3"), inAnHour())
	mustFind(t, m, "after-close", []byte("3"))
	if err := m.Delete("deleted-after-close"); !errors.Is(err, memstore.ErrNotDurable) {
		t.Errorf("Delete after Close = %v; want an error wrapping ErrNotDurable", err)
	}
	mustMiss(t, m, "deleted-after-close")

	again := openStore(t, dir) // the directory is free
	mustHoldExactly(t, again, map[string][]byte{"kept": []byte("1"), "deleted-after-close": []byte("2")})
}

func TestCommitUnderSyncIntervalZeroFailsAfterClose(t *testing.T) {
	t.Parallel()
	m := openStore(t, storeDir(t), memstore.WithSyncInterval(0))
	mustCommit(t, m, "before", []byte("1"), inAnHour())
	if got := m.Stats().Syncs; got == 0 {
		t.Errorf("after a Commit under a sync interval of 0, Stats().Syncs = 0; want the Commit synced")
	}
	m.Close()
	if err := m.Commit("after", []byte("2"), inAnHour()); !errors.Is(err, memstore.ErrNotDurable) {
		t.Errorf("Commit after Close = %v; want an error wrapping ErrNotDurable", err)
	}
	mustFind(t, m, "after", []byte("2"))
}

func TestDeleteOfAnUnknownTokenIsRecorded(t *testing.T) {
	t.Parallel()
	// The session may be on disk though not in memory: evicted under a cap.
	dir := storeDir(t)
	m := openStore(t, dir)
	mustCommit(t, m, "tok", []byte("data"), inAnHour())
	m.Close()
	m = openStore(t, dir, memstore.WithMaxBytes(1)) // too small for any session: the restore skips it
	mustMiss(t, m, "tok")
	if err := m.Delete("tok"); err != nil {
		t.Fatal(err)
	}
	m = reopen(t, m, dir)
	mustMiss(t, m, "tok")
}

func TestOpenUnderASmallerCapDropsWhatDoesNotFit(t *testing.T) {
	t.Parallel()
	dir := storeDir(t)
	m := openStore(t, dir)
	mustCommit(t, m, "tok", []byte("small"), inAnHour())
	mustCommit(t, m, "tok", bytes.Repeat([]byte("large"), 1000), inAnHour())
	m = reopen(t, m, dir, memstore.WithMaxBytes(1000))
	// The large session replaced the small one: the small one must not
	// come back because the large one does not fit.
	mustMiss(t, m, "tok")
}

// TestCapBoundsTheHeapOfADurableStore fills a small cap many times over
// with Commits, few enough bytes of log that the writer is not woken by the
// default amount: the records waiting for it keep their chunks alive,
// evicted or not, and the heap must stay within what WithMaxBytes promises,
// 512 KiB more here and the writer's buffer of up to 512 KiB, with as much
// again for what earlier tests leave running. Woken by the default amount,
// the writer would keep the 3.9 MB of chunks alive.
func TestCapBoundsTheHeapOfADurableStore(t *testing.T) {
	const maxBytes = 1 << 20
	before := heapAfterGC()
	m := openStore(t, storeDir(t), memstore.WithMaxBytes(maxBytes))
	for i := range 18_000 { // about 3.9 MB of log
		mustCommit(t, m, scsToken(i), make([]byte, 150), inAnHour())
	}
	grown := int64(heapAfterGC()) - int64(before)
	accounted := m.Stats().Bytes
	if limit := accounted + 2*(512<<10+512<<10); grown > limit {
		t.Errorf("the heap grew by %d bytes under a cap of %d; want at most %d", grown, maxBytes, limit)
	}
	t.Logf("the heap grew by %d bytes beyond Stats.Bytes", grown-accounted)
	runtime.KeepAlive(m)
}

func TestReadFromIntoADurableStoreIsRecorded(t *testing.T) {
	t.Parallel()
	src := newStore(t)
	mustCommit(t, src, "restored", []byte("data"), inAnHour())
	snap := snapshot(t, src)

	dir := storeDir(t)
	m := openStore(t, dir)
	restore(t, m, snap)
	m = reopen(t, m, dir)
	mustHoldExactly(t, m, map[string][]byte{"restored": []byte("data")})
}

func TestOpenDropsATornLastRecord(t *testing.T) {
	t.Parallel()
	dir, want := committedLog(t, 3)
	log := logs(t, dir)[0]
	whole := readAll(t, log)
	// The last record is t2's: 12 bytes of header, an op, a length, the
	// token, 8 bytes of expiry and the data, as FORMAT.md says.
	lastLen := 12 + 1 + 1 + len("t2") + 8 + len(want["t2"])
	delete(want, "t2")
	for _, tc := range []struct {
		name string
		log  []byte
	}{
		{"cut-in-the-header", whole[:len(whole)-lastLen+5]},
		{"cut-in-the-payload", whole[:len(whole)-3]},
		{"payload-cut-and-zeros", append(whole[:len(whole)-10:len(whole)-10], make([]byte, 10)...)},
		{"zeros-after", append(whole[:len(whole)-lastLen:len(whole)-lastLen], make([]byte, 4096)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := storeDir(t)
			if err := os.WriteFile(filepath.Join(d, filepath.Base(log)), tc.log, 0o600); err != nil {
				t.Fatal(err)
			}
			m := openStore(t, d)
			mustHoldExactly(t, m, want)
			if got := m.Stats().TornRecords; got != 1 {
				t.Errorf("Stats().TornRecords = %d; want 1", got)
			}
		})
	}
}

func TestOpenRefusesADamagedDirectoryAndChangesNothing(t *testing.T) {
	t.Parallel()
	dir, _ := committedLog(t, 3)
	log := logs(t, dir)[0]
	whole := readAll(t, log)
	firstRecord := 25 // after the log's magic number, version and store
	damage := func(at int, b byte) []byte {
		d := bytes.Clone(whole)
		d[at] ^= b
		return d
	}
	for _, tc := range []struct {
		name, file string
		content    []byte
		wantOffset int // -1: none
	}{
		{"length-of-the-first-record", filepath.Base(log), damage(firstRecord+2, 0x40), firstRecord},
		{"payload-of-the-first-record", filepath.Base(log), damage(firstRecord+20, 1), firstRecord},
		{"magic-number", filepath.Base(log), damage(1, 1), -1},
		{"version", filepath.Base(log), damage(8, 3), -1},
		{"base", "base.0000000000000001", []byte("\x89MEMSNAP\x01 not a snapshot"), -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := storeDir(t)
			if err := os.WriteFile(filepath.Join(d, tc.file), tc.content, 0o600); err != nil {
				t.Fatal(err)
			}
			before := storeContents(t, d)
			m, err := memstore.Open(d, 0)
			if err == nil || m != nil {
				m.Close()
				t.Fatalf("Open succeeded (error %v); want an error", err)
			}
			if !errors.Is(err, memstore.ErrBadSnapshot) || !strings.Contains(err.Error(), tc.file) {
				t.Errorf("Open: %v; want an error wrapping ErrBadSnapshot naming %s", err, tc.file)
			}
			if want := fmt.Sprint("offset ", tc.wantOffset); tc.wantOffset >= 0 && !strings.Contains(err.Error(), want) {
				t.Errorf("Open: %v; want the error to say %q", err, want)
			}
			if !maps.Equal(storeContents(t, d), before) {
				t.Errorf("a failed Open changed %s", d)
			}
		})
	}
}

// TestLogFormatExample checks the log example at the end of FORMAT.md, byte
// for byte: the log that a Commit and a Delete write, and what Open reads
// from it. The directory's identity is the example's: its first log, empty,
// gives it.
func TestLogFormatExample(t *testing.T) {
	t.Parallel()
	start := []byte{
		0x89, 0x4D, 0x45, 0x4D, 0x53, 0x4C, 0x4F, 0x47, // magic
		0x02,                                           // version 2
		0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, // store
		0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F, 0x10,
	}
	example := append(bytes.Clone(start),
		0x00, 0x00, 0x00, 0x0F, // length: 15
		0x16, 0x74, 0x77, 0xE3, // CRC-32C of the length
		0x30, 0x46, 0x84, 0xDB, // CRC-32C of the payload
		0x01,                   // put
		0x03, 0x74, 0x6F, 0x6B, // token length 3, "tok"
		0x64, 0xBA, 0x04, 0x3A, 0xC9, 0xBA, 0x00, 0x00, // expiry: 7258118400000000000
		0x68, 0x69, // data "hi"
		0x00, 0x00, 0x00, 0x04, // length: 4
		0x8F, 0xFD, 0xDC, 0xD8, // CRC-32C of the length
		0xA0, 0xF7, 0xDD, 0xB9, // CRC-32C of the payload
		0x02,             // delete
		0x74, 0x6F, 0x6B, // token "tok"
	)
	dir := storeDir(t)
	if err := os.WriteFile(filepath.Join(dir, "log.0000000000000001"), start, 0o600); err != nil {
		t.Fatal(err)
	}
	m := openStore(t, dir)
	mustCommit(t, m, "tok", []byte("hi"), time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC))
	if err := m.Delete("tok"); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if got := dirContents(t, dir)["log.0000000000000002"]; got != string(example) {
		t.Fatalf("the log holds\n% X\nwant\n% X", got, example)
	}

	// Without the delete, the put restores the session.
	d := storeDir(t)
	if err := os.WriteFile(filepath.Join(d, "log.0000000000000001"), example[:52], 0o600); err != nil {
		t.Fatal(err)
	}
	mustHoldExactly(t, openStore(t, d), map[string][]byte{"tok": []byte("hi")})
}

func TestForgottenDurableStoreSyncsAndReleasesItsDirectory(t *testing.T) {
	t.Parallel()
	dir := storeDir(t)
	func() {
		m, err := memstore.Open(dir, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		mustCommit(t, m, "tok", []byte("data"), inAnHour())
	}()
	var m *memstore.MemStore
	eventually(t, "released by the forgotten store", func() bool {
		runtime.GC()
		var err error
		m, err = memstore.Open(dir, 0)
		return err == nil
	})
	t.Cleanup(func() { m.Close() })
	mustHoldExactly(t, m, map[string][]byte{"tok": []byte("data")})
}

func TestOpenSkipsWhatIsNotARegularFile(t *testing.T) {
	t.Parallel()
	dir := storeDir(t)
	if err := os.Mkdir(filepath.Join(dir, "log.0000000000000001"), 0o700); err != nil {
		t.Fatal(err)
	}
	m := openStore(t, dir)
	mustCommit(t, m, "tok", []byte("data"), inAnHour())
	m = reopen(t, m, dir)
	mustHoldExactly(t, m, map[string][]byte{"tok": []byte("data")})
}

func TestReadFromUnderSyncIntervalZeroReportsWhatIsNotOnDisk(t *testing.T) {
	t.Parallel()
	src := newStore(t)
	for i := range 3000 { // more than one of ReadFrom's batches
		mustCommit(t, src, fmt.Sprint("t", i), []byte("data"), inAnHour())
	}
	snap := snapshot(t, src)

	dir := storeDir(t)
	m := openStore(t, dir, memstore.WithSyncInterval(0))
	restore(t, m, snap)
	syncs := m.Stats().Syncs
	if syncs == 0 {
		t.Errorf("ReadFrom under a sync interval of 0 returned without a sync")
	}
	m = reopen(t, m, dir)
	if n := m.Len(); n != 3000 {
		t.Fatalf("after ReadFrom and a reopen the store holds %d sessions; want 3000", n)
	}

	m.Close()
	closed := openStore(t, storeDir(t), memstore.WithSyncInterval(0))
	closed.Close()
	if _, err := closed.ReadFrom(bytes.NewReader(snap)); !errors.Is(err, memstore.ErrNotDurable) {
		t.Errorf("ReadFrom into a closed store from Open, interval 0 = %v; want an error wrapping ErrNotDurable", err)
	}
	if n := closed.Len(); n != 3000 {
		t.Errorf("after ReadFrom into a closed store, Len = %d; want the 3000 sessions in memory", n)
	}
}
