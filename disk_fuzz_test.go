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
	"slices"
	"testing"
	"time"

	"github.com/golangcollege/memstore"
)

// damage is what FuzzOpen does to the files of a store before it opens
// them again.
type damage uint8

const (
	intact       damage = iota // the log as written
	truncate                   // the log cut at an offset, as a crash leaves it
	flip                       // one byte of the log changed
	overwrite                  // bytes of the log, from an offset, replaced
	appendJunk                 // bytes added at the end of the log
	zeroRange                  // bytes of the log, from an offset, zeroed
	rawLog                     // no store: the input's bytes are a log, alone in the directory
	rawBase                    // no store: the input's bytes are a base, alone in the directory
	rawAfterBase               // the input's bytes are a log, after a store's base: of another store unless its start is the store's
	damages
)

// storeField is where a log's start holds the directory's identity.
const (
	storeFrom = 9
	storeTo   = 25
)

// afterBase is the bit of FuzzOpen's kind that asks for the log damaged to
// follow a base.
const afterBase = 0x80

// maxFuzzOps bounds the operations FuzzOpen runs: each waits for an fsync.
const maxFuzzOps = 64

// Open may allocate, whatever its files hold, no more than allocPerFileByte
// times their size, plus allocSlack: it reads each file whole, copies the
// sessions into the store's chunks, which grow by doubling, and indexes
// them, and the record of a Commit can be as short as 22 bytes (see
// FORMAT.md). A log of many short Commits takes 4 to 6 times its size.
const (
	allocPerFileByte = 16
	allocSlack       = 1 << 20
)

// FuzzOpen damages the log of a store in the ways a crash or a bad disk
// might, and opens it again. A failed Open must fail with an error wrapping
// ErrBadSnapshot and change no file. A log that a crash could leave, cut
// short or ending in zeros from some offset on (a file system may extend a
// file before its data reaches the disk), must restore exactly the changes
// whose records lie wholly before, and count a torn record if any bytes
// follow them. A record damaged in place (a byte flipped, a range zeroed),
// followed by the intact records after it, must fail Open; so damaged
// anywhere, Open must fail or restore the sessions as they were after some
// of the changes, in order, at least those before the damage. Where the
// input's bytes are written into the log, or are the only file (the raw
// modes), they may hold valid records: then Open must fail or restore
// something that a Close and an Open keep. Whatever the files, Open must
// not allocate more than a small multiple of their size, nor panic.
//
// The ops are read three bytes at a time, as in FuzzOps: an operation (a
// Commit, a Delete or a Commit of an expiry in the past), a token out of
// eight, and a size of data. The bit afterBase of kind puts a base, of the
// changes of the first half of the ops, before the log damaged.
func FuzzOpen(f *testing.F) {
	someOps := []byte{0, 1, 5, 0, 2, 200, 2, 1, 0, 3, 2, 0, 1, 1, 7, 2, 9, 0, 0, 3, 0}
	for kind := range damages {
		f.Add(someOps, uint8(kind), uint16(60), []byte("\x00\x01junk"))
	}
	f.Add(someOps, uint8(truncate), uint16(9), []byte(nil))
	f.Add(someOps, uint8(truncate)|afterBase, uint16(40), []byte(nil))
	f.Add(someOps, uint8(flip)|afterBase, uint16(15), []byte(nil))
	f.Add(someOps, uint8(zeroRange), uint16(40), bytes.Repeat([]byte{1}, 400))
	f.Add(someOps, uint8(zeroRange), uint16(45), bytes.Repeat([]byte{1}, 400))  // zeros from a length's checksum on
	f.Add(someOps, uint8(zeroRange), uint16(300), bytes.Repeat([]byte{1}, 400)) // zeros from a payload on
	f.Add([]byte(nil), uint8(zeroRange), uint16(0), []byte("123456789"))        // a start of zeros
	f.Add([]byte(nil), uint8(intact), uint16(0), []byte(nil))
	realLog, realBase := realFiles(f, someOps)
	f.Add([]byte(nil), uint8(rawLog), uint16(0), realLog)
	f.Add([]byte(nil), uint8(rawBase), uint16(0), realBase)
	f.Add([]byte(nil), uint8(rawAfterBase), uint16(0), realLog)                                    // another store's log
	f.Add([]byte(nil), uint8(rawAfterBase), uint16(0), append(bytes.Clone(realBase[:storeTo]), 0)) // the base's store: a log cut short
	f.Add([]byte(nil), uint8(rawLog), uint16(0), []byte("\x89MEMSLOG\x01"))                        // a log of version 1, empty
	f.Add([]byte(nil), uint8(rawLog), uint16(0), realLog[:storeTo-3])                              // a start cut short in its store
	f.Fuzz(func(t *testing.T, ops []byte, kind uint8, at uint16, junk []byte) {
		switch d := damage(kind % uint8(damages)); d {
		case rawLog, rawBase:
			openRaw(t, d, junk)
		case rawAfterBase:
			openAfterBase(t, realBase, junk)
		default:
			openDamaged(t, ops, d, kind&afterBase != 0, int(at), junk)
		}
	})
}

// realFiles returns a log written by a store running ops, and a base that a
// rewrite of it wrote.
func realFiles(f *testing.F, ops []byte) (log, base []byte) {
	dir := storeDir(f)
	log = runAndRewrite(f, dir, ops, map[string]string{})
	return log, readAll(f, onlyFile(f, dir, "base.*"))
}

// runAndRewrite runs ops, which must hold one change at least, on a store
// on dir, as runOps does, closes it and opens dir again, which rewrites the
// log as a base. It returns the log as the first store left it.
func runAndRewrite(t testing.TB, dir string, ops []byte, model map[string]string) (log []byte) {
	t.Helper()
	m := openStore(t, dir, memstore.WithSyncInterval(0), memstore.WithReusableDeletedTokens()) // ops re-commit deleted tokens
	runOps(t, m, ops, model, func(map[string]string) {})
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	log = readAll(t, onlyFile(t, dir, "log.*"))
	m = openStore(t, dir, memstore.WithSyncInterval(0)) // replays the log, so rewrites it at once
	eventually(t, "a rewrite after Open replayed a log", func() bool { return m.Stats().Rewrites > 0 })
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	return log
}

// openDamaged runs ops on a store with a sync interval of 0, so that each
// change is in the log when it returns, damages the log as d says, and
// checks what Open makes of it. If afterBase is set, a rewrite of the first
// half of ops comes first, so that the log damaged follows a base.
func openDamaged(t *testing.T, ops []byte, d damage, afterBase bool, at int, junk []byte) {
	dir := storeDir(t)
	model := map[string]string{}
	if first := len(ops) / 6 * 3; afterBase && first > 0 {
		runAndRewrite(t, dir, ops[:first], model)
		ops = ops[first:]
	}
	m := openStore(t, dir, memstore.WithSyncInterval(0), memstore.WithReusableDeletedTokens()) // ops re-commit deleted tokens
	log := newestLog(t, dir)
	// states[k] is what the store holds after k changes, ends[k] where the
	// log of the first k ends.
	states := []map[string]string{maps.Clone(model)}
	ends := []int{len(readAll(t, log))}
	runOps(t, m, ops, model, func(state map[string]string) {
		states = append(states, state)
		ends = append(ends, len(readAll(t, log)))
	})
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}

	written := readAll(t, log)
	damaged := d.apply(written, at, junk)
	if err := os.WriteFile(log, damaged, 0o600); err != nil {
		t.Fatal(err)
	}
	m = openChecked(t, dir)
	n := len(states) - 1
	from := firstDifference(written, damaged)
	whole := 0 // the changes whose records lie wholly before from
	for whole < n && ends[whole+1] <= from {
		whole++
	}
	switch {
	case allZeros(damaged[from:]):
		// What a crash leaves: the log cut short, or ending in zeros where a
		// file system extended it before the data reached the disk.
		if m == nil {
			t.Fatalf("Open of a log that a crash could leave (whole up to %d, zeros to %d) failed; want the %d changes before restored",
				from, len(damaged), whole)
		}
		if got := allOf(t, m); !maps.Equal(got, states[whole]) {
			t.Fatalf("Open of a log whole up to %d restored %d sessions; want the state after the %d changes before", from, len(got), whole)
		}
		torn := uint64(0) // one if anything but whole records, or nothing, is left
		if len(damaged) > 0 && (from < ends[whole] || len(damaged) > ends[whole]) {
			torn = 1
		}
		if got := m.Stats().TornRecords; got != torn {
			t.Fatalf("Open of a log whole up to %d of %d bytes: Stats().TornRecords = %d; want %d", from, len(damaged), got, torn)
		}
	case !afterBase && from >= storeFrom && from < storeTo && len(damaged) == len(written) && bytes.Equal(damaged[storeTo:], written[storeTo:]):
		// The store of the only file is the directory's, whatever it is:
		// there is nothing to tell it from. But an identity never holds a
		// zero byte, so a start with one is taken as cut short as it was
		// created, and the records after it refused (openChecked has
		// checked the error and that no file changed).
		if m == nil && bytes.IndexByte(damaged[storeFrom:storeTo], 0) >= 0 {
			break
		}
		if m == nil || !maps.Equal(allOf(t, m), states[n]) {
			t.Fatalf("Open of a log whose store alone is changed failed or lost changes; want it read whole")
		}
	case d == overwrite || d == appendJunk:
		// The input's bytes may hold valid records, which Open rightly
		// applies: it is held to what the raw modes are.
	case whole < n-1 && len(damaged) == len(written) && bytes.Equal(damaged[ends[whole+1]:], written[ends[whole+1]:]):
		// A bad record, the damage within it, followed by the intact
		// records after it: damage, not a crash.
		if m != nil {
			t.Fatalf("Open of a log whose record %d of %d is damaged (at %d) succeeded; want an error wrapping ErrBadSnapshot", whole+1, n, from)
		}
	case m != nil:
		if k := prefixOf(allOf(t, m), states, whole); k < 0 {
			t.Fatalf("Open of a log %s at %d restored what the store never held after %d changes or more", d, from, whole)
		}
	}
	if m != nil {
		mustRestoreAgain(t, m, dir, allOf(t, m))
	}
}

// apply returns log damaged as d says, at an offset picked by at, with
// junk as the bytes it adds. A log from a store is never empty: it starts
// with its magic number.
func (d damage) apply(log []byte, at int, junk []byte) []byte {
	b := bytes.Clone(log)
	switch off := at % len(b); d {
	case truncate:
		return b[:at%(len(b)+1)]
	case flip:
		x := byte(0xff)
		if len(junk) > 0 && junk[0] != 0 {
			x = junk[0]
		}
		b[off] ^= x
	case overwrite:
		n := copy(b[off:], junk)
		return append(b, junk[n:]...)
	case appendJunk:
		return append(b, junk...)
	case zeroRange:
		clear(b[off:min(off+max(len(junk), 1), len(b))])
	}
	return b
}

// firstDifference returns the offset of the first byte that differs
// between a and b, or where the shorter ends.
func firstDifference(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func allZeros(b []byte) bool {
	return !slices.ContainsFunc(b, func(c byte) bool { return c != 0 })
}

func (d damage) String() string {
	return [...]string{"intact", "cut", "with a byte flipped", "overwritten", "with junk appended", "zeroed in part", "raw", "raw base", "raw after a base"}[d]
}

// openRaw opens a directory whose only file is a log or a base holding
// content.
func openRaw(t *testing.T, d damage, content []byte) {
	dir := storeDir(t)
	name := "log.0000000000000001"
	if d == rawBase {
		name = "base.0000000000000001"
	}
	if err := os.WriteFile(filepath.Join(dir, name), content, 0o600); err != nil {
		t.Fatal(err)
	}
	if m := openChecked(t, dir); m != nil {
		mustRestoreAgain(t, m, dir, allOf(t, m))
	}
}

// openAfterBase opens a directory holding base, the base of a store, and
// content as the log of the generation after it: Open must fail, if the
// log is of another store, or restore something that a Close and an Open
// keep, as in openRaw.
func openAfterBase(t *testing.T, base, content []byte) {
	dir := storeDir(t)
	for name, b := range map[string][]byte{"base.0000000000000002": base, "log.0000000000000003": content} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	m := openChecked(t, dir)
	if m == nil {
		return
	}
	if len(content) >= storeTo && bytes.HasPrefix(content, []byte("\x89MEMSLOG\x02")) && !bytes.Equal(content[storeFrom:storeTo], base[storeFrom:storeTo]) {
		t.Fatalf("Open took a log of store %x after a base of store %x", content[storeFrom:storeTo], base[storeFrom:storeTo])
	}
	mustRestoreAgain(t, m, dir, allOf(t, m))
}

// openChecked opens dir, and checks what Open must do whatever the files
// hold: allocate no more than allocPerFileByte times their size, plus
// allocSlack, and either restore something or fail with an error wrapping
// ErrBadSnapshot, changing no file. It returns the store, or nil if Open
// failed.
func openChecked(t *testing.T, dir string) *memstore.MemStore {
	t.Helper()
	before := storeContents(t, dir)
	size := 0
	for _, content := range before {
		size += len(content)
	}
	var start, end runtime.MemStats
	runtime.ReadMemStats(&start)
	m, err := memstore.Open(dir, 0)
	runtime.ReadMemStats(&end)
	if alloc := end.TotalAlloc - start.TotalAlloc; alloc > uint64(allocPerFileByte*size+allocSlack) {
		t.Errorf("Open of %d bytes of files allocated %d bytes; want at most %d", size, alloc, allocPerFileByte*size+allocSlack)
	}
	if err != nil {
		if !errors.Is(err, memstore.ErrBadSnapshot) {
			t.Fatalf("Open: %v; want an error wrapping ErrBadSnapshot", err)
		}
		if !maps.Equal(storeContents(t, dir), before) {
			t.Fatal("a failed Open changed the files")
		}
		return nil
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// mustRestoreAgain closes m, which must succeed, having written a base of
// its sessions if its rewrite ran, and checks that a store opened on dir
// again holds want.
func mustRestoreAgain(t *testing.T, m *memstore.MemStore, dir string, want map[string]string) {
	t.Helper()
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	again, err := memstore.Open(dir, 0)
	if err != nil {
		t.Fatalf("Open after a Close: %v", err)
	}
	defer again.Close()
	if got := allOf(t, again); !maps.Equal(got, want) {
		t.Fatalf("Open after a Close restored %d sessions; want the %d restored before", len(got), len(want))
	}
}

// runOps runs the changes that ops encodes on m, each of which must succeed,
// and makes them to model, the sessions m holds, too. It calls after with a
// copy of model after each.
func runOps(t testing.TB, m *memstore.MemStore, ops []byte, model map[string]string, after func(map[string]string)) {
	t.Helper()
	expired := time.Now().Add(-time.Hour)
	for i := 0; len(ops) >= 3 && i < maxFuzzOps; i++ {
		op, token, size := ops[0]%3, fmt.Sprint("tok", ops[1]%8), int(ops[2])
		ops = ops[3:]
		data := bytes.Repeat([]byte{byte(i)}, size)
		var err error
		switch op {
		case 0:
			err = m.Commit(token, data, inAnHour())
			model[token] = string(data)
		case 1:
			err = m.Delete(token)
			delete(model, token)
		case 2:
			err = m.Commit(token, data, expired)
			delete(model, token)
		}
		if err != nil {
			t.Fatalf("change %d, of %s: %v", i, token, err)
		}
		after(maps.Clone(model))
	}
}

// prefixOf returns the first k, from least on, for which states[k] is got,
// or -1.
func prefixOf(got map[string]string, states []map[string]string, least int) int {
	for k := least; k < len(states); k++ {
		if maps.Equal(got, states[k]) {
			return k
		}
	}
	return -1
}

// allOf returns the sessions of m, their data as strings.
func allOf(t testing.TB, m *memstore.MemStore) map[string]string {
	t.Helper()
	all, err := m.All()
	if err != nil {
		t.Fatal(err)
	}
	got := make(map[string]string, len(all))
	for token, data := range all {
		got[token] = string(data)
	}
	return got
}

// newestLog returns the name of the log of dir of the latest generation.
func newestLog(t testing.TB, dir string) string {
	t.Helper()
	names := logs(t, dir)
	if len(names) == 0 {
		t.Fatalf("%s holds no log", dir)
	}
	return names[len(names)-1] // the names sort as the generations
}

// onlyFile returns the name of the one file of dir that matches pattern.
func onlyFile(t testing.TB, dir, pattern string) string {
	t.Helper()
	names, err := filepath.Glob(filepath.Join(dir, pattern))
	if err != nil || len(names) != 1 {
		t.Fatalf("%s holds %q matching %s; want one", dir, names, pattern)
	}
	return names[0]
}
