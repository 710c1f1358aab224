// SPDX-License-Identifier: MIT

package memstore_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"testing/synctest"
	"time"

	"github.com/golangcollege/memstore"
	"github.com/golangcollege/memstore/internal/findwaits"
)

// The helpers below encode and decode snapshots from FORMAT.md alone, not
// from the package's code: the tests check the format as documented, and can
// craft inputs that are wrong in exactly one way.

// snapEntry is one entry of a snapshot.
type snapEntry struct {
	token  string
	expiry int64 // Unix nanoseconds
	data   []byte
}

const snapMagic = "\x89MEMSNAP"

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// snapshotOf builds a snapshot around entries already encoded: header, body,
// and a correct checksum. From version 2 on the header holds a store, zero
// here, as a store from New writes.
func snapshotOf(version byte, count uint64, body []byte) []byte {
	b := append([]byte(snapMagic), version)
	if version >= 2 {
		b = append(b, make([]byte, snapStoreLen)...)
	}
	b = binary.BigEndian.AppendUint64(b, count)
	b = append(b, body...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crc32c))
}

// snapStoreLen is the length of the store in a header of version 2.
const snapStoreLen = 16

// badStart reports whether the first 9 bytes of input, the magic number and
// version, are not those of a snapshot of version 1 or 2: ReadFrom then
// reads those 9 bytes and no more.
func badStart(input []byte) bool {
	return len(input) >= 9 && (string(input[:8]) != snapMagic || input[8] < 1 || input[8] > 2)
}

// checkReadLen fails t unless ReadFrom, having returned n and err for
// input, read what it must: the 9 bytes of a bad start, the whole input
// when it accepts it, and otherwise no more than the input.
func checkReadLen(t testing.TB, name string, input []byte, n int64, err error) {
	t.Helper()
	switch {
	case badStart(input) && n != 9:
		t.Errorf("%s: ReadFrom read %d bytes of a bad start; want 9", name, n)
	case err == nil && n != int64(len(input)):
		t.Errorf("%s: ReadFrom accepted the input having read %d bytes; want all %d", name, n, len(input))
	case n > int64(len(input)):
		t.Errorf("%s: ReadFrom read %d bytes of %d", name, n, len(input))
	}
}

// entryBytes encodes one entry.
func entryBytes(e snapEntry) []byte {
	b := binary.AppendUvarint(nil, uint64(len(e.token)))
	b = append(b, e.token...)
	b = binary.BigEndian.AppendUint64(b, uint64(e.expiry))
	b = binary.AppendUvarint(b, uint64(len(e.data)))
	return append(b, e.data...)
}

// validSnapshot builds a version 1 snapshot of entries.
func validSnapshot(entries ...snapEntry) []byte {
	var body []byte
	for _, e := range entries {
		body = append(body, entryBytes(e)...)
	}
	return snapshotOf(1, uint64(len(entries)), body)
}

// withChecksum returns a copy of b whose last four bytes are the checksum of
// the others.
func withChecksum(b []byte) []byte {
	b = bytes.Clone(b)
	body := b[:len(b)-4]
	binary.BigEndian.PutUint32(b[len(b)-4:], crc32.Checksum(body, crc32c))
	return b
}

// parseSnapshot decodes snap, of version 1 or 2, or says why it is not a
// snapshot.
func parseSnapshot(snap []byte) ([]snapEntry, error) {
	if len(snap) < 9 || string(snap[:8]) != snapMagic || snap[8] < 1 || snap[8] > 2 {
		return nil, errors.New("no header of version 1 or 2")
	}
	headerLen := 8 + 1 + 8
	if snap[8] == 2 {
		headerLen += snapStoreLen
	}
	if len(snap) < headerLen+4 {
		return nil, errors.New("shorter than a header and a checksum")
	}
	body := snap[:len(snap)-4]
	if crc32.Checksum(body, crc32c) != binary.BigEndian.Uint32(snap[len(snap)-4:]) {
		return nil, errors.New("checksum mismatch")
	}
	count, rest := binary.BigEndian.Uint64(snap[headerLen-8:headerLen]), body[headerLen:]
	lengthPrefixed := func() ([]byte, bool) {
		n, size := binary.Uvarint(rest)
		if size <= 0 || n > uint64(len(rest)-size) {
			return nil, false
		}
		b := rest[size : size+int(n)]
		rest = rest[size+int(n):]
		return b, true
	}
	var entries []snapEntry
	for i := uint64(0); i < count; i++ {
		token, ok := lengthPrefixed()
		if !ok || len(rest) < 8 {
			return nil, fmt.Errorf("entry %d: bad token or expiry", i)
		}
		expiry := int64(binary.BigEndian.Uint64(rest))
		rest = rest[8:]
		data, ok := lengthPrefixed()
		if !ok {
			return nil, fmt.Errorf("entry %d: bad data", i)
		}
		entries = append(entries, snapEntry{string(token), expiry, data})
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%d bytes after the last entry", len(rest))
	}
	return entries, nil
}

// decodeSnapshot decodes snap, failing the test if it is not a snapshot.
func decodeSnapshot(t testing.TB, snap []byte) []snapEntry {
	t.Helper()
	entries, err := parseSnapshot(snap)
	if err != nil {
		t.Fatalf("decoding a snapshot: %v", err)
	}
	return entries
}

// snapshot returns what m.WriteTo writes.
func snapshot(t testing.TB, m *memstore.MemStore) []byte {
	t.Helper()
	var buf bytes.Buffer
	n, err := m.WriteTo(&buf)
	if err != nil || n != int64(buf.Len()) {
		t.Fatalf("WriteTo = %d, %v; want %d, nil", n, err, buf.Len())
	}
	return buf.Bytes()
}

// restore reads snap into m, failing the test on an error.
func restore(t testing.TB, m *memstore.MemStore, snap []byte) {
	t.Helper()
	n, err := m.ReadFrom(bytes.NewReader(snap))
	if err != nil || n != int64(len(snap)) {
		t.Fatalf("ReadFrom = %d, %v; want %d, nil", n, err, len(snap))
	}
}

// expiries returns the expiry of each session as a snapshot of m records it.
func expiries(t testing.TB, m *memstore.MemStore) map[string]time.Time {
	t.Helper()
	got := map[string]time.Time{}
	for _, e := range decodeSnapshot(t, snapshot(t, m)) {
		got[e.token] = time.Unix(0, e.expiry)
	}
	return got
}

// mustHoldExactly fails the test unless All, Find and Len all show that m
// holds want and nothing else.
func mustHoldExactly(t testing.TB, m *memstore.MemStore, want map[string][]byte) {
	t.Helper()
	all, _ := m.All()
	if !maps.EqualFunc(all, want, bytes.Equal) {
		t.Fatalf("All holds %d sessions, not the %d wanted", len(all), len(want))
	}
	if n := m.Len(); n != len(want) {
		t.Fatalf("Len = %d; want %d", n, len(want))
	}
	for token, data := range want {
		mustFind(t, m, token, data)
		if got, _, _ := m.Find(token); cap(got) != len(got) {
			t.Fatalf("Find(%q) has len %d, cap %d; want cap == len", token, len(got), cap(got))
		}
	}
}

// storeState is what the public API shows of a store's content.
type storeState struct {
	all map[string][]byte
	len int
}

func stateOf(m *memstore.MemStore) storeState {
	all, _ := m.All()
	return storeState{all, m.Len()}
}

// mustBeUnchanged fails the test unless m shows what it did in before.
func mustBeUnchanged(t testing.TB, m *memstore.MemStore, before storeState, after string) {
	t.Helper()
	now := stateOf(m)
	if now.len != before.len || !maps.EqualFunc(now.all, before.all, bytes.Equal) {
		t.Fatalf("after %s: the store holds %d sessions (%d unexpired); want it unchanged at %d (%d)",
			after, now.len, len(now.all), before.len, len(before.all))
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	t.Parallel()
	src := newStore(t)
	allBytes := make([]byte, 256)
	for i := range allBytes {
		allBytes[i] = byte(i)
	}
	committed := map[string]time.Time{} // the expiries to check to within a microsecond, or the clocks' slew
	committedAt := time.Now()
	for i, s := range []struct {
		token string
		data  []byte
	}{
		{"", []byte("an empty token")},
		{"empty data", []byte{}},
		{"every byte", allBytes},
		{"unicode ☃", []byte("snow")},
		{"1 MiB", bytes.Repeat([]byte("0123456789abcdef"), 1<<16)}, // many times the write buffer
	} {
		expiry := time.Now().Add(time.Duration(i+1)*time.Hour + time.Duration(i)*123*time.Nanosecond)
		mustCommit(t, src, s.token, s.data, expiry)
		committed[s.token] = expiry
	}
	for i := range 3000 { // several batches of the walk
		mustCommit(t, src, fmt.Sprint("session", i), []byte(fmt.Sprint(i)), inAnHour())
	}
	mustCommit(t, src, "forever", []byte("x"), time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC))

	snap := snapshot(t, src)
	dst := newStore(t)
	restore(t, dst, snap)
	clear(snap) // the store must have copied what it kept

	want, _ := src.All()
	mustHoldExactly(t, dst, want)

	// The first snapshot holds the expiries committed; the restored store,
	// which counts them down on its own monotonic clock, gives them back.
	for name, m := range map[string]*memstore.MemStore{"the original": src, "the restored store": dst} {
		got := expiries(t, m)
		// The store counts a lifetime down on the monotonic clock and gives
		// the expiry back on the wall clock, which NTP may slew against it
		// by up to 500 ppm of the time between.
		slack := time.Microsecond + time.Since(committedAt)/2000
		for token, expiry := range committed {
			if d := got[token].Sub(expiry).Abs(); d > slack {
				t.Errorf("%s: expiry of %q is %v off; want within %v", name, token, d, slack)
			}
		}
		// Clamped to the latest Unix nanosecond time, which the restored
		// store counts down on its clock like any other.
		if d := time.Unix(0, math.MaxInt64).Sub(got["forever"]); d < 0 || d > time.Microsecond {
			t.Errorf("%s: year 9999 saved as %v; want the latest Unix nanosecond time", name, got["forever"])
		}
	}
}

// TestFormatExample checks the example at the end of FORMAT.md, byte for
// byte, against WriteTo and ReadFrom, and that the same snapshot in version
// 1 is read too.
func TestFormatExample(t *testing.T) {
	t.Parallel()
	example := []byte{
		0x89, 0x4D, 0x45, 0x4D, 0x53, 0x4E, 0x41, 0x50, // magic
		0x02,                                           // version 2
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // store: none, from New
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, // count: 1 entry
		0x03, 0x74, 0x6F, 0x6B, // token length 3, "tok"
		0x64, 0xBA, 0x04, 0x3A, 0xC9, 0xBA, 0x00, 0x00, // expiry: 7258118400000000000
		0x02, 0x68, 0x69, // data length 2, "hi"
		0x25, 0xF8, 0xFA, 0x73, // checksum
	}
	version1 := []byte{
		0x89, 0x4D, 0x45, 0x4D, 0x53, 0x4E, 0x41, 0x50, // magic
		0x01,                                           // version 1: no store
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, // count: 1 entry
		0x03, 0x74, 0x6F, 0x6B, // token length 3, "tok"
		0x64, 0xBA, 0x04, 0x3A, 0xC9, 0xBA, 0x00, 0x00, // expiry: 7258118400000000000
		0x02, 0x68, 0x69, // data length 2, "hi"
		0xFD, 0x56, 0x42, 0x88, // checksum
	}
	expiry := time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, snap := range [][]byte{example, version1} {
		m := newStore(t)
		restore(t, m, snap)
		mustHoldExactly(t, m, map[string][]byte{"tok": []byte("hi")})
	}

	// The store gives the expiry back to within its clocks' precision, so
	// WriteTo's bytes may differ from the example's in the expiry and
	// checksum only.
	m2 := newStore(t)
	mustCommit(t, m2, "tok", []byte("hi"), expiry)
	written := snapshot(t, m2)
	if len(written) != len(example) || !bytes.Equal(written[:37], example[:37]) || !bytes.Equal(written[45:48], example[45:48]) {
		t.Fatalf("WriteTo wrote\n% X\nwant, but for the expiry and checksum,\n% X", written, example)
	}
}

func TestReadFromRejectsBadSnapshots(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		live := time.Now().Add(time.Hour).UnixNano()
		alice := entryBytes(snapEntry{"alice", live, []byte("the snapshot's")})
		bob := entryBytes(snapEntry{"bob", live, []byte("b")})
		body := append(bytes.Clone(alice), bob...)
		good := snapshotOf(1, 2, body)
		if _, err := parseSnapshot(good); err != nil {
			t.Fatalf("the valid snapshot the cases start from: %v", err)
		}
		tokenLength := func(n uint64) []byte { return append(binary.AppendUvarint(nil, n), "alice"...) }
		dataLength := func(n uint64) []byte {
			b := binary.BigEndian.AppendUint64(append([]byte{5}, "alice"...), uint64(live))
			return append(binary.AppendUvarint(b, n), "data"...)
		}
		changed := func(i int, bit byte) []byte {
			b := bytes.Clone(good)
			b[i] ^= bit
			return b
		}

		// Those built by snapshotOf have a correct checksum: each is wrong only
		// in the way its name says.
		bad := map[string][]byte{
			"empty input":                       {},
			"a text file":                       []byte("alice=the snapshot's\nbob=b\n"),
			"bad magic":                         changed(1, 0x20),
			"version 0":                         snapshotOf(0, 2, body),
			"version 3":                         snapshotOf(3, 2, body),
			"checksum mismatch in data":         changed(len(good)-5, 0xff),
			"checksum mismatch in the checksum": changed(len(good)-1, 0x01),
			"one entry more than held":          snapshotOf(1, 3, body),
			"one entry fewer than held":         snapshotOf(1, 1, body),
			"2^64-1 entries":                    snapshotOf(1, math.MaxUint64, body),
			"a byte after the checksum":         append(bytes.Clone(good), 0),
			"two snapshots end to end":          append(bytes.Clone(good), good...),
			"impossible token length":           snapshotOf(1, 1, tokenLength(1<<32)),
			"data one byte longer than held":    snapshotOf(1, 1, dataLength(5)),
			"impossible data length":            snapshotOf(1, 1, dataLength(1<<40)),
			"data length of 2^64-1":             snapshotOf(1, 1, dataLength(math.MaxUint64)),
			"length over 64 bits":               snapshotOf(1, 1, append(bytes.Repeat([]byte{0xff}, 10), 1)),
			"length cut short":                  append(append([]byte(snapMagic), 1, 0, 0, 0, 0, 0, 0, 0, 1), 0x80),
		}
		for n := range len(good) {
			bad[fmt.Sprintf("truncated to %d bytes", n)] = good[:n]
		}
		for i := range len(good) {
			for bit := range 8 {
				bad[fmt.Sprintf("bit %d of byte %d flipped", bit, i)] = changed(i, 1<<bit)
			}
		}

		// A store already holding sessions, one of them also in the snapshot and
		// one expired but not yet removed.
		m := newStore(t)
		mustCommit(t, m, "alice", []byte("the store's"), inAnHour())
		mustCommit(t, m, "carol", []byte("c"), inAnHour())
		mustCommit(t, m, "lapsed", []byte("l"), time.Now().Add(shortLife))
		eventually(t, "expired", func() bool { _, found, _ := m.Find("lapsed"); return !found })
		before := stateOf(m)

		for name, input := range bad {
			n, err := m.ReadFrom(bytes.NewReader(input))
			if !errors.Is(err, memstore.ErrBadSnapshot) {
				t.Errorf("%s: ReadFrom error = %v; want one wrapping ErrBadSnapshot", name, err)
			}
			checkReadLen(t, name, input, n, err)
			mustBeUnchanged(t, m, before, name)
		}

		// The snapshot the corruptions started from is accepted.
		restore(t, m, good)
		mustFind(t, m, "alice", []byte("the store's"))
		mustFind(t, m, "bob", []byte("b"))
	})
}

func TestReadFromReportsReadErrors(t *testing.T) {
	t.Parallel()
	m := newStore(t)
	mustCommit(t, m, "tok", []byte("the store's"), inAnHour())
	before := stateOf(m)
	good := validSnapshot(snapEntry{"new", time.Now().Add(time.Hour).UnixNano(), []byte("x")})

	// A whole snapshot, then an error instead of EOF: the input may go on.
	n, err := m.ReadFrom(io.MultiReader(bytes.NewReader(good), iotest.ErrReader(errDiskFull)))
	if !errors.Is(err, errDiskFull) || errors.Is(err, memstore.ErrBadSnapshot) || n != int64(len(good)) {
		t.Fatalf("ReadFrom = %d, %v; want %d, the reader's error, not ErrBadSnapshot", n, err, len(good))
	}
	mustBeUnchanged(t, m, before, "a failed read")
}

func TestReadFromHugeClaimsFailAtOnceWithLittleMemory(t *testing.T) {
	header := snapshotOf(1, 1, nil)[:17]
	claims := map[string][]byte{
		"a 4 GiB token": binary.AppendUvarint(bytes.Clone(header), 4<<30),
		"4 GiB of data": binary.AppendUvarint(append(bytes.Clone(header), 0, 0, 0, 0, 0, 0, 0, 0, 0), 4<<30),
		"2^63 entries":  binary.BigEndian.AppendUint64([]byte(snapMagic+"\x01"), 1<<63),
	}
	for name, input := range claims {
		input = append(input, bytes.Repeat([]byte{'x'}, 40-len(input))...) // 40 bytes in all
		m := newStore(t)
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := m.ReadFrom(bytes.NewReader(input))
		runtime.ReadMemStats(&after)
		if !errors.Is(err, memstore.ErrBadSnapshot) {
			t.Errorf("%s: ReadFrom error = %v; want one wrapping ErrBadSnapshot", name, err)
		}
		if allocated := after.TotalAlloc - before.TotalAlloc; allocated > 64<<10 {
			t.Errorf("%s: ReadFrom of 40 bytes allocated %d bytes; want at most 64 KiB", name, allocated)
		}
	}
}

func TestSnapshotsSkipExpiredSessions(t *testing.T) {
	t.Parallel()
	t.Run("WriteTo", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			m := newStore(t)
			mustCommit(t, m, "live", []byte("x"), inAnHour())
			mustCommit(t, m, "lapsed", []byte("x"), time.Now().Add(shortLife))
			eventually(t, "expired", func() bool { _, found, _ := m.Find("lapsed"); return !found })
			entries := decodeSnapshot(t, snapshot(t, m))
			if len(entries) != 1 || entries[0].token != "live" {
				t.Fatalf("the snapshot holds %d entries; want only the live one", len(entries))
			}
		})
	})
	t.Run("ReadFrom", func(t *testing.T) {
		now := time.Now()
		m := newStore(t)
		restore(t, m, validSnapshot(
			snapEntry{"an hour ago", now.Add(-time.Hour).UnixNano(), []byte("x")},
			snapEntry{"live", now.Add(time.Hour).UnixNano(), []byte("x")},
			snapEntry{"1970", 0, []byte("x")},
			snapEntry{"before 1678", math.MinInt64, []byte("x")},
		))
		mustHoldExactly(t, m, map[string][]byte{"live": []byte("x")}) // Len too: skipped, not merely hidden
	})
}

func TestReadFromKeepsTheStoresSessions(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		m := newStore(t)
		storeExpiry := time.Now().Add(2 * time.Hour)
		mustCommit(t, m, "both", []byte("the store's"), storeExpiry)
		mustCommit(t, m, "lapsed", []byte("the store's"), time.Now().Add(shortLife))
		eventually(t, "expired", func() bool { _, found, _ := m.Find("lapsed"); return !found })

		later := time.Now().Add(time.Hour).UnixNano()
		restore(t, m, validSnapshot(
			snapEntry{"both", later, []byte("the snapshot's")},
			snapEntry{"lapsed", later, []byte("the snapshot's")},
			snapEntry{"new", later, []byte("the snapshot's")},
			snapEntry{"twice", later, []byte("first")},
			snapEntry{"twice", later, []byte("second")},
		))

		mustFind(t, m, "both", []byte("the store's"))
		if d := expiries(t, m)["both"].Sub(storeExpiry).Abs(); d > time.Millisecond {
			t.Errorf("the expiry of a session the store held moved by %v; want the store's kept", d)
		}
		mustMiss(t, m, "lapsed") // the store's entry, though expired, is the more recent
		mustFind(t, m, "new", []byte("the snapshot's"))
		mustFind(t, m, "twice", []byte("first"))
		if n := m.Len(); n != 4 {
			t.Fatalf("Len = %d; want 4", n)
		}
	})
}

func TestReadFromUnderACap(t *testing.T) {
	t.Parallel()
	const maxBytes = 64 << 10
	m := memstore.New(0, memstore.WithMaxBytes(maxBytes))
	defer m.Close()
	later := time.Now().Add(time.Hour).UnixNano()
	entries := []snapEntry{{"too large", later, make([]byte, maxBytes)}}
	for i := range 1000 { // over four times the cap
		entries = append(entries, snapEntry{fmt.Sprint("tok", i), later, payload})
	}
	restore(t, m, validSnapshot(entries...)) // the session larger than the cap is no error

	mustMiss(t, m, "too large")
	stats := m.Stats()
	if stats.Bytes > maxBytes || stats.Sessions == 0 || stats.Evicted == 0 {
		t.Fatalf("Stats = %+v; want some sessions restored, others evicted, within the cap", stats)
	}
	all, _ := m.All()
	for token, data := range all {
		if !strings.HasPrefix(token, "tok") || !bytes.Equal(data, payload) {
			t.Fatalf("All[%q] = %d bytes; want only restored sessions, whole", token, len(data))
		}
	}
}

func TestReadFromKeepsSessionsCommittedMeanwhile(t *testing.T) {
	t.Parallel()
	const n = 5000 // several batches
	entries := make([]snapEntry, n)
	later := time.Now().Add(time.Hour).UnixNano()
	for i := range entries {
		entries[i] = snapEntry{fmt.Sprint("tok", i), later, []byte("the snapshot's")}
	}
	snap := validSnapshot(entries...)

	m := newStore(t)
	committed := make(chan struct{})
	go func() {
		defer close(committed)
		for i := range n {
			m.Commit(fmt.Sprint("tok", i), []byte("committed"), inAnHour())
		}
	}()
	restore(t, m, snap)
	<-committed
	for i := range n {
		mustFind(t, m, fmt.Sprint("tok", i), []byte("committed"))
	}
}

// writerFunc is a function that is an io.Writer.
type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestWriteToHoldsNoLockWhileWriting(t *testing.T) {
	t.Parallel()
	m := newStore(t)
	mustCommit(t, m, "tok", []byte("data"), inAnHour())
	var once sync.Once
	w := writerFunc(func(p []byte) (int, error) {
		once.Do(func() { // inside WriteTo's first write, Commit and Delete go through
			done := make(chan struct{})
			go func() {
				defer close(done)
				m.Commit("during", []byte("x"), inAnHour())
				m.Delete("tok")
			}()
			select {
			case <-done:
			case <-time.After(patience):
				t.Error("Commit and Delete waited for WriteTo's write to return")
			}
		})
		return len(p), nil
	})
	if _, err := m.WriteTo(w); err != nil {
		t.Fatal(err)
	}
	mustFind(t, m, "during", []byte("x"))
	mustMiss(t, m, "tok")
}

// failingWriter accepts limit bytes, then fails.
type failingWriter struct {
	limit, written int
}

var errDiskFull = errors.New("disk full")

func (w *failingWriter) Write(p []byte) (int, error) {
	n := min(len(p), w.limit-w.written)
	w.written += n
	if n < len(p) {
		return n, errDiskFull
	}
	return n, nil
}

func TestWriteToReportsWriteErrors(t *testing.T) {
	t.Parallel()
	m := newStore(t)
	for i := range 1000 { // about 160 kB: several buffers
		mustCommit(t, m, fmt.Sprint("session", i), payload, inAnHour())
	}
	for _, limit := range []int{0, 10, 100_000} {
		w := &failingWriter{limit: limit}
		n, err := m.WriteTo(w)
		if !errors.Is(err, errDiskFull) || n != int64(w.written) {
			t.Errorf("WriteTo to a writer failing after %d bytes = %d, %v; want %d, %v", limit, n, err, w.written, errDiskFull)
		}
	}
}

func TestSnapshotsWorkAfterClose(t *testing.T) {
	t.Parallel()
	src := memstore.New(time.Millisecond)
	mustCommit(t, src, "tok", []byte("data"), inAnHour())
	src.Close()
	name := filepath.Join(t.TempDir(), "sessions")
	if err := src.WriteFile(name); err != nil {
		t.Fatal(err)
	}

	dst := memstore.New(time.Millisecond)
	dst.Close()
	restore(t, dst, snapshot(t, src))
	mustFind(t, dst, "tok", []byte("data"))

	fromFile := memstore.New(time.Millisecond)
	fromFile.Close()
	if err := fromFile.ReadFile(name); err != nil {
		t.Fatal(err)
	}
	mustFind(t, fromFile, "tok", []byte("data"))
}

// mustHoldOnly fails the test unless dir holds only the named entries: no
// temporary file is left behind.
func mustHoldOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if strings.Join(got, "\n") != strings.Join(names, "\n") {
		t.Fatalf("%s holds %q; want only %q", dir, got, names)
	}
}

func TestWriteFileAndReadFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	name := filepath.Join(dir, "sessions.snapshot")
	// A file is there already, more widely readable and not a snapshot.
	if err := os.WriteFile(name, []byte("an old file"), 0o644); err != nil {
		t.Fatal(err)
	}

	m := newStore(t)
	mustCommit(t, m, "alice", []byte("a"), inAnHour())
	mustCommit(t, m, "bob", []byte("b"), inAnHour())
	for _, change := range []func(){
		func() {},
		func() { // a second save replaces the first
			m.Delete("alice")
			mustCommit(t, m, "carol", []byte("c"), inAnHour())
		},
	} {
		change()
		if err := m.WriteFile(name); err != nil {
			t.Fatal(err)
		}
		mustHoldOnly(t, dir, "sessions.snapshot")
		info, err := os.Stat(name)
		if err != nil {
			t.Fatal(err)
		}
		if runtime.GOOS != "windows" && info.Mode().Perm() != 0o600 {
			t.Fatalf("the snapshot has mode %v; want 0600", info.Mode().Perm())
		}
		restored := newStore(t)
		if err := restored.ReadFile(name); err != nil {
			t.Fatal(err)
		}
		want, _ := m.All()
		mustHoldExactly(t, restored, want)
	}
}

func TestReadFileErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	m := newStore(t)
	mustCommit(t, m, "tok", []byte("data"), inAnHour())
	before := stateOf(m)

	err := m.ReadFile(filepath.Join(dir, "never saved"))
	if !errors.Is(err, fs.ErrNotExist) || errors.Is(err, memstore.ErrBadSnapshot) {
		t.Errorf("ReadFile of a missing file = %v; want fs.ErrNotExist, not ErrBadSnapshot", err)
	}
	mustBeUnchanged(t, m, before, "reading a missing file")

	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, withChecksum(snapshot(t, m)[:30]), 0o600); err != nil {
		t.Fatal(err)
	}
	err = m.ReadFile(bad)
	if !errors.Is(err, memstore.ErrBadSnapshot) || errors.Is(err, fs.ErrNotExist) || !strings.Contains(fmt.Sprint(err), bad) {
		t.Errorf("ReadFile of a bad file = %v; want ErrBadSnapshot, not fs.ErrNotExist, naming the file", err)
	}
	mustBeUnchanged(t, m, before, "reading a bad file")
}

func TestWriteFileLeavesNothingBehindOnFailure(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	m := newStore(t)
	mustCommit(t, m, "tok", []byte("data"), inAnHour())

	// The rename fails, the temporary file written: name is a directory.
	if err := os.Mkdir(filepath.Join(dir, "taken"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := m.WriteFile(filepath.Join(dir, "taken")); err == nil {
		t.Error("WriteFile over a directory succeeded")
	}
	// No temporary file can even be created.
	if err := m.WriteFile(filepath.Join(dir, "missing", "sessions")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("WriteFile into a missing directory = %v; want fs.ErrNotExist", err)
	}
	mustHoldOnly(t, dir, "taken")
	mustHoldOnly(t, filepath.Join(dir, "taken"))
}

func TestWriteToDuringCommitAndDelete(t *testing.T) {
	t.Parallel()
	m := memstore.New(time.Millisecond) // the janitor sweeps meanwhile too
	defer m.Close()
	const stable = 3000 // never touched while snapshots are taken; several batches
	for i := range stable {
		token := fmt.Sprint("stable", i)
		mustCommit(t, m, token, []byte(token), inAnHour())
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 4))
			for {
				select {
				case <-stop:
					return
				default:
				}
				token := fmt.Sprint("churn", rng.IntN(500))
				switch rng.IntN(3) {
				case 0:
					m.Delete(token)
				case 1:
					m.Commit(token, []byte(token), time.Now().Add(time.Duration(rng.IntN(3))*time.Millisecond))
				default:
					m.Commit(token, []byte(token), inAnHour())
				}
			}
		}()
	}
	defer wg.Wait()
	defer close(stop)

	for range sized(4, 10) {
		seen := map[string]bool{}
		for _, e := range decodeSnapshot(t, snapshot(t, m)) { // the count and checksum agree
			if string(e.data) != e.token || seen[e.token] {
				t.Fatalf("snapshot entry %q = %q, seen before: %v; want it holding its token, once", e.token, e.data, seen[e.token])
			}
			seen[e.token] = true
		}
		for i := range stable {
			if !seen[fmt.Sprint("stable", i)] {
				t.Fatalf("a snapshot taken during commits lacks stable%d", i)
			}
		}
	}
}

// FuzzReadFrom checks that ReadFrom never panics, changes nothing when it
// returns an error, and that whatever it accepts is a snapshot as FORMAT.md
// describes, restored as documented, that round-trips through WriteTo.
//
// When fixChecksum is set, the input's last four bytes are replaced by its
// checksum, which a fuzzer could hardly guess: it can then explore how every
// other byte is decoded.
func FuzzReadFrom(f *testing.F) {
	later := time.Now().Add(time.Hour).UnixNano()
	src := newStore(f)
	mustCommit(f, src, "", []byte("an empty token"), inAnHour())
	mustCommit(f, src, "tok", nil, inAnHour())
	mustCommit(f, src, "forever", []byte("x"), time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC))
	f.Add(snapshot(f, src), false)
	f.Add(validSnapshot(), false)
	f.Add(validSnapshot(snapEntry{"held", later, []byte("the snapshot's")}, snapEntry{"tok", later, []byte("data")}), false)
	f.Add(validSnapshot(snapEntry{"twice", later, []byte("1")}, snapEntry{"twice", later, []byte("2")}), true)
	f.Add(validSnapshot(snapEntry{"past", 0, []byte("x")}, snapEntry{"tok", later, []byte("data")}), true)
	f.Add([]byte("not a snapshot"), true)

	f.Fuzz(func(t *testing.T, input []byte, fixChecksum bool) {
		if fixChecksum && len(input) >= 4 {
			input = withChecksum(input)
		}
		m := newStore(t)
		mustCommit(t, m, "held", []byte("the store's"), inAnHour())
		before := stateOf(m)

		start := time.Now()
		n, err := m.ReadFrom(bytes.NewReader(input))
		end := time.Now()
		checkReadLen(t, "the input", input, n, err)
		if err != nil {
			if !errors.Is(err, memstore.ErrBadSnapshot) {
				t.Fatalf("ReadFrom error = %v; want one wrapping ErrBadSnapshot", err)
			}
			mustBeUnchanged(t, m, before, "a failed ReadFrom")
			return
		}

		entries, err := parseSnapshot(input)
		if err != nil {
			t.Fatalf("ReadFrom accepted what FORMAT.md rejects: %v", err)
		}
		// Sessions expiring about now may or may not be held: leave them out.
		// Only the first entry of a token counts, whatever becomes of it.
		want, unsure, met := maps.Clone(before.all), map[string]bool{}, map[string]bool{}
		for _, e := range entries {
			first := !met[e.token]
			met[e.token] = true
			switch _, held := want[e.token]; {
			case held || !first: // the store's session, or an older copy of one met earlier
			case e.expiry <= start.UnixNano(): // expired: skipped
			case e.expiry <= end.Add(time.Minute).UnixNano():
				unsure[e.token] = true
			default:
				want[e.token] = e.data
			}
		}
		mustHoldIgnoring(t, m, want, unsure)

		again := newStore(t)
		restore(t, again, snapshot(t, m))
		mustHoldIgnoring(t, again, want, unsure)
	})
}

// mustHoldIgnoring is mustHoldExactly, ignoring the tokens in unsure.
func mustHoldIgnoring(t *testing.T, m *memstore.MemStore, want map[string][]byte, unsure map[string]bool) {
	t.Helper()
	all, _ := m.All()
	maps.DeleteFunc(all, func(token string, _ []byte) bool { return unsure[token] })
	if !maps.EqualFunc(all, want, bytes.Equal) {
		t.Fatalf("the store holds %d sessions, not the %d wanted", len(all), len(want))
	}
	if n := m.Len(); len(unsure) == 0 && n != len(want) {
		t.Fatalf("Len = %d; want %d", n, len(want))
	}
}

// snapshotSessions is the store size the snapshot benchmarks use.
const snapshotSessions = 1_000_000

// fullStore returns a store of snapshotSessions sessions shaped like scs's
// (see tokens and payload), all live for an hour, and their tokens.
func fullStore(b *testing.B) (*memstore.MemStore, []string) {
	toks := tokens(snapshotSessions)
	m := memstore.New(0)
	fill(b, m, toks, time.Now().Add(time.Hour))
	runtime.GC()
	return m, toks
}

func BenchmarkWriteTo(b *testing.B) {
	m, _ := fullStore(b)
	defer m.Close()
	size, err := m.WriteTo(io.Discard)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		m.WriteTo(io.Discard)
	}
}

// fullSnapshot returns a snapshot of a store made by fullStore, which it lets
// go: a benchmark restoring it builds a store as large.
func fullSnapshot(b *testing.B) []byte {
	m, _ := fullStore(b)
	defer m.Close()
	var snap bytes.Buffer
	if _, err := m.WriteTo(&snap); err != nil {
		b.Fatal(err)
	}
	return snap.Bytes()
}

func BenchmarkReadFrom(b *testing.B) {
	snap := fullSnapshot(b)
	runtime.GC()
	b.SetBytes(int64(len(snap)))
	b.ReportAllocs()
	for b.Loop() {
		restored := memstore.New(0)
		if _, err := restored.ReadFrom(bytes.NewReader(snap)); err != nil || restored.Len() != snapshotSessions {
			b.Fatalf("ReadFrom: %v; restored %d sessions of %d", err, restored.Len(), snapshotSessions)
		}
	}
}

// slowWriter accepts everything, taking as long as a disk writing
// bytesPerSecond would.
type slowWriter struct{ bytesPerSecond int }

func (w slowWriter) Write(p []byte) (int, error) {
	time.Sleep(time.Duration(len(p)) * time.Second / time.Duration(w.bytesPerSecond))
	return len(p), nil
}

// BenchmarkWriteToFindWait measures how long a Find waits while WriteTo
// streams snapshotSessions sessions to a 100 MB/s writer, beside the same
// figures with no snapshot being written.
func BenchmarkWriteToFindWait(b *testing.B) {
	m, toks := fullStore(b)
	defer m.Close()
	live := toks[:1000] // what a Find asks for
	for range b.N {
		start := time.Now()
		writing := findwaits.Measure(m, live, func() {
			if _, err := m.WriteTo(slowWriter{100e6}); err != nil {
				b.Error(err)
			}
		})
		window := time.Since(start)
		runtime.GC()
		idle := findwaits.Measure(m, live, func() { time.Sleep(window) })

		writing.Report(b, "writeto")
		idle.Report(b, "idle")
		b.ReportMetric(float64(writing.Longest)/float64(idle.Longest), "max-ratio")
		b.ReportMetric(float64(writing.P9999)/float64(idle.P9999), "p99.99-ratio")
	}
}

// capForOne returns the smallest cap under which a store takes a session of
// a 1-byte token and 3 bytes of data: such a store holds one, never two.
func capForOne(t *testing.T) int64 {
	for maxBytes := int64(1); maxBytes < 1<<20; maxBytes++ {
		if memstore.New(0, memstore.WithMaxBytes(maxBytes)).Commit("A", []byte("new"), inAnHour()) == nil {
			return maxBytes
		}
	}
	t.Fatal("no cap up to 1 MiB takes a 4-byte session")
	return 0
}

// TestReadFromTakesOnlyTheFirstCopyOfAToken restores snapshots in which a
// token's newer copy comes first, as WriteTo writes them, into a store that
// holds one session: whatever becomes of the newer copy, evicted to make
// room, expired or too large to be restored at all, the older never comes
// back.
func TestReadFromTakesOnlyTheFirstCopyOfAToken(t *testing.T) {
	t.Parallel()
	maxBytes := capForOne(t)
	later := time.Now().Add(time.Hour).UnixNano()
	for name, snap := range map[string][]byte{
		"newer evicted": validSnapshot(
			snapEntry{"A", later, []byte("new")},
			snapEntry{"B", later, []byte("bbb")},
			snapEntry{"A", later, []byte("old")},
		),
		"newer expired": validSnapshot(
			snapEntry{"A", time.Now().Add(-time.Hour).UnixNano(), []byte("new")},
			snapEntry{"A", later, []byte("old")},
		),
		"newer too large": validSnapshot(
			snapEntry{"A", later, make([]byte, maxBytes)},
			snapEntry{"A", later, []byte("old")},
		),
	} {
		t.Run(name, func(t *testing.T) {
			m := memstore.New(0, memstore.WithMaxBytes(maxBytes))
			defer m.Close()
			restore(t, m, snap)
			if got, found, _ := m.Find("A"); found && string(got) == "old" {
				t.Fatalf("A = %q after the restore; want the older copy never restored", got)
			}
			if n := m.Len(); n > 1 {
				t.Fatalf("Len = %d under a cap for one session", n)
			}
		})
	}
}

// TestWriteFileTakesAnyNameLength saves under names of 1 to 255 bytes, the
// most most file systems allow, ASCII and multi-byte: the temporary file
// beside it must fit too, whatever the target's length.
func TestWriteFileTakesAnyNameLength(t *testing.T) {
	t.Parallel()
	m := newStore(t)
	mustCommit(t, m, "tok", []byte("data"), inAnHour())
	want, _ := m.All()
	for _, base := range []string{
		"s",
		strings.Repeat("a", 240),
		strings.Repeat("b", 241),
		strings.Repeat("c", 254),
		strings.Repeat("d", 255),
		strings.Repeat("é", 127), // 254 bytes, two a rune
	} {
		dir := t.TempDir()
		name := filepath.Join(dir, base)
		for range 3 { // the random part of the temporary name varies in length
			if err := m.WriteFile(name); err != nil {
				t.Fatalf("WriteFile of a %d-byte name: %v", len(base), err)
			}
		}
		mustHoldOnly(t, dir, base)
		restored := newStore(t)
		if err := restored.ReadFile(name); err != nil {
			t.Fatal(err)
		}
		mustHoldExactly(t, restored, want)
	}
}

// zeros is an endless reader of zero bytes that counts what it gives.
type zeros struct{ read int64 }

func (z *zeros) Read(p []byte) (int, error) {
	clear(p)
	z.read += int64(len(p))
	return len(p), nil
}

// TestReadFromRejectsAWrongStartAtOnce feeds ReadFrom an endless stream of
// zeros: it must stop after the first 9 bytes, the magic number and version,
// with an error, rather than read until memory runs out.
func TestReadFromRejectsAWrongStartAtOnce(t *testing.T) {
	t.Parallel()
	m := newStore(t)
	var z zeros
	n, err := m.ReadFrom(&z)
	if !errors.Is(err, memstore.ErrBadSnapshot) || n != 9 || z.read > 9 {
		t.Fatalf("ReadFrom of endless zeros = %d, %v after %d bytes given; want 9, ErrBadSnapshot", n, err, z.read)
	}
}

// TestReadFileReadsNoMoreThanTheFile: a device that never ends, /dev/zero,
// is rejected at once, and a regular file is still read whole.
func TestReadFileReadsNoMoreThanTheFile(t *testing.T) {
	t.Parallel()
	m := newStore(t)
	if runtime.GOOS != "windows" {
		if err := m.ReadFile("/dev/zero"); !errors.Is(err, memstore.ErrBadSnapshot) {
			t.Fatalf("ReadFile(/dev/zero) = %v; want ErrBadSnapshot", err)
		}
	}
	name := filepath.Join(t.TempDir(), "snapshot")
	snap := validSnapshot(snapEntry{"tok", time.Now().Add(time.Hour).UnixNano(), []byte("data")})
	if err := os.WriteFile(name, snap, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := m.ReadFile(name); err != nil {
		t.Fatal(err)
	}
	mustFind(t, m, "tok", []byte("data"))
}

// TestReadFromUnderACapNeverRestoresAHeldTokensOlderCopy restores, under a
// cap, a snapshot whose first sessions push out a token the store held when
// the restore began, evicted (the nearest its expiry) or removed (expired),
// and whose last entry is that token's older copy: the token must stay gone,
// never take the snapshot's copy.
func TestReadFromUnderACapNeverRestoresAHeldTokensOlderCopy(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		for name, life := range map[string]time.Duration{"evicted": time.Minute, "expired": shortLife} {
			m := memstore.New(0, memstore.WithMaxBytes(16<<10))
			defer m.Close()
			mustCommit(t, m, "held", []byte("the store's"), time.Now().Add(life))
			time.Sleep(2 * shortLife)

			later := time.Now().Add(time.Hour).UnixNano()
			var entries []snapEntry
			for i := range 400 { // many times the cap
				entries = append(entries, snapEntry{fmt.Sprint("filler", i), later, payload})
			}
			restore(t, m, validSnapshot(append(entries, snapEntry{"held", later, []byte("the snapshot's")})...))

			if got, found, _ := m.Find("held"); found && string(got) != "the store's" {
				t.Errorf("%s: Find(held) = %q after the restore; want the store's session or none", name, got)
			}
			if st := m.Stats(); st.Evicted+st.Expired == 0 {
				t.Errorf("%s: Stats = %+v; want sessions pushed out, for the test to mean anything", name, st)
			}
		}
	})
}
