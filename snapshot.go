// SPDX-License-Identifier: MIT

package memstore

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"time"
	"unicode/utf8"
)

// The snapshot format, documented byte by byte in FORMAT.md:
//
//	header:  magic (8 bytes) | version (1 byte) | entry count (uint64)
//	entry:   token length (uvarint) | token | expiry (int64 Unix ns) | data length (uvarint) | data
//	trailer: CRC-32C of every byte before it (uint32)
//
// Fixed-width integers are big-endian.
const (
	magic           = "\x89MEMSNAP" // the high first byte marks the file as binary, not text
	version         = 1             // bumped by any change to the format; a reader accepts only its own
	checksumLen     = 4
	writeBufferSize = 64 << 10 // one write to w per 64 KiB, however small the sessions
)

// castagnoli is the CRC-32C table: hardware-accelerated on amd64 and arm64,
// and better at catching errors than the IEEE polynomial.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// latestUnixNano is the latest time whose Unix nanoseconds fit in an int64,
// in 2262. A session committed to live longer is saved as expiring then.
var latestUnixNano = time.Unix(0, math.MaxInt64)

// ErrBadSnapshot is wrapped by every error of ReadFrom and ReadFile that
// comes from the input not being a valid snapshot: a bad magic number, an
// unknown version, a truncation, a checksum mismatch or an impossible length.
// Test for it with errors.Is. When it is returned the store is unchanged.
// Open wraps it too, when a file of its directory is damaged.
var ErrBadSnapshot = errors.New("memstore: bad snapshot")

// WriteTo writes a snapshot of every unexpired session to w, in the format
// described in FORMAT.md, and returns the number of bytes written. It
// implements io.WriterTo. It neither closes nor retains w.
//
// WriteTo collects the sessions under short read-lock holds, as All does, and
// writes to w without holding the lock, so requests never wait on w however
// slow it is. Like All it is not an atomic snapshot: a session committed or
// deleted while WriteTo runs may or may not be in it, and a token deleted and
// committed again meanwhile may be in it twice, the newer entry first, which
// is the one ReadFrom keeps. A
// session committed to live beyond the year 2262 is saved as expiring then.
//
// The snapshot holds session data in the clear. WriteTo works after Close.
func (m *MemStore) WriteTo(w io.Writer) (int64, error) {
	sessions := m.liveSessions()

	counted := &countingWriter{w: w}
	buffered := bufio.NewWriterSize(counted, writeBufferSize)
	checksum := crc32.New(castagnoli)
	out := io.MultiWriter(buffered, checksum) // everything but the checksum itself

	rec := appendHeader(make([]byte, 0, 256), uint64(len(sessions)))
	if _, err := out.Write(rec); err != nil {
		return counted.n, fmt.Errorf("memstore: writing snapshot: %w", err)
	}
	now := time.Now()
	for _, s := range slices.Backward(sessions) { // a token met twice: the newer entry first
		rec = appendEntry(rec[:0], s.token, unixNano(m.expiry(s.deadline, now)), s.data)
		if _, err := out.Write(rec); err != nil {
			return counted.n, fmt.Errorf("memstore: writing snapshot: %w", err)
		}
	}
	buffered.Write(binary.BigEndian.AppendUint32(rec[:0], checksum.Sum32())) // an error sticks until Flush
	if err := buffered.Flush(); err != nil {
		return counted.n, fmt.Errorf("memstore: writing snapshot: %w", err)
	}
	return counted.n, nil
}

// ReadFrom reads a snapshot written by WriteTo from r, up to EOF, and adds
// its sessions to the store. It returns the number of bytes read and
// implements io.ReaderFrom. It does not retain r: the store keeps copies.
// An input whose first 9 bytes are not a snapshot's magic number and version
// is rejected as soon as they are read, without reading on.
//
// It is all or nothing. ReadFrom reads and checks the whole snapshot, its
// checksum included, before it adds anything: if r fails, or what it holds is
// not a valid snapshot (the error then wraps ErrBadSnapshot), the store is
// left exactly as it was.
//
// Sessions that have expired since the snapshot was written are skipped. A
// token the store already holds keeps the store's session, even an expired
// one, as the store's is the more recent. Of a token the snapshot holds
// twice, only the first session counts, whatever becomes of it: WriteTo
// writes the newer first, and the older, a session since deleted, never comes
// back, even when the newer has expired, is too large for the store's cap or
// is evicted by the sessions restored after it. Under a cap set by
// WithMaxBytes, restored sessions take room like committed ones, evicting
// others if need be, and a session larger than the whole cap is skipped.
//
// ReadFrom holds the whole snapshot in memory while it restores it. No length
// read from the input makes it allocate more than the input actually holds.
//
// ReadFrom adds the sessions in short batches, so requests can run while it
// restores a large snapshot; a session committed meanwhile keeps its newer
// data, but one deleted meanwhile may come back from the snapshot: restore
// before serving requests. ReadFrom works after Close.
//
// In a store from Open, the sessions restored are recorded as Commits are:
// under a sync interval of 0, ReadFrom returns once they are on disk, or an
// error wrapping ErrNotDurable, the sessions restored in memory all the
// same.
func (m *MemStore) ReadFrom(r io.Reader) (int64, error) {
	return m.readFrom(r, 0)
}

// readFrom is ReadFrom, with room for sizeHint bytes made at once.
func (m *MemStore) readFrom(r io.Reader, sizeHint int64) (int64, error) {
	var snap bytes.Buffer
	snap.Grow(int(max(sizeHint, int64(startLen))))
	n, err := io.CopyN(&snap, r, int64(startLen))
	if err == nil || err == io.EOF {
		if bad := checkStart(snap.Bytes()); bad != nil {
			return n, bad
		}
		var more int64
		more, err = snap.ReadFrom(r) // grows with the bytes that arrive, whatever the input claims
		n += more
	}
	if err != nil && err != io.EOF {
		return n, fmt.Errorf("memstore: reading snapshot: %w", err)
	}
	return n, m.restore(snap.Bytes())
}

// WriteFile saves a snapshot of the store, as written by WriteTo, to the
// named file, replacing it atomically: WriteFile writes a temporary file in
// the same directory, syncs it, renames it over name and syncs the directory.
// A crash at any moment leaves either the previous file or the new one, never
// a mix. An error before the rename removes the temporary file and leaves any
// previous file as it was; an error syncing the directory comes after it, the
// new file in place. Only a crash can leave a temporary file (named after
// name, cut to 240 bytes if longer, ending in ".tmp") behind, and it is safe
// to delete.
//
// The file gets mode 0600, whatever the mode of the file it replaces: it
// holds session data in the clear. Call WriteFile once the HTTP server has
// shut down, so that no request changes a session after it is saved.
// WriteFile works after Close.
func (m *MemStore) WriteFile(name string) error {
	dir := filepath.Dir(name)
	tmp, err := m.writeTemp(dir, filepath.Base(name))
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, name); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

// ReadFile restores the snapshot in the named file, as ReadFrom does, all or
// nothing. If the file does not exist the error satisfies
// errors.Is(err, fs.ErrNotExist), which at a first start means that nothing
// was saved yet; if it is not a valid snapshot the error wraps
// ErrBadSnapshot. ReadFile reads no more of a regular file than its size when
// opened, and rejects any file, a device included, whose first 9 bytes are
// not a snapshot's. ReadFile works after Close.
func (m *MemStore) ReadFile(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return err
	}
	var r io.Reader = f
	if info.Mode().IsRegular() {
		r = io.LimitReader(f, info.Size()) // never more than the file held when opened
	}
	if _, err := m.readFrom(r, info.Size()); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// session is a reference to one stored session, taken by liveSessions.
type session struct {
	token, data []byte // the store's own bytes, never modified
	deadline    time.Duration
}

// liveSessions returns a reference to every unexpired session. References
// are enough: records are never modified, so they stay valid after the lock
// is released.
//
// A token deleted and committed again between two batches is a new map
// entry, which the walk may visit as well as the old one: such a token is
// returned twice, the older session first. Removing the duplicates would take
// a set of every token, about doubling the cost of a snapshot, for a case
// that scs, which never reuses a token, does not produce; All and WriteTo
// keep the newer session.
func (m *MemStore) liveSessions() []session {
	sessions := make([]session, 0, m.Len())
	m.walkLiveSlots(func(s slot, token, data []byte) {
		sessions = append(sessions, session{token, data, s.deadline})
	})
	return sessions
}

// appendHeader appends the snapshot header to b.
func appendHeader(b []byte, count uint64) []byte {
	b = append(b, magic...)
	b = append(b, version)
	return binary.BigEndian.AppendUint64(b, count)
}

// appendEntry appends one entry to b.
func appendEntry(b []byte, token []byte, expiry int64, data []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(token)))
	b = append(b, token...)
	b = binary.BigEndian.AppendUint64(b, uint64(expiry))
	b = binary.AppendUvarint(b, uint64(len(data)))
	return append(b, data...)
}

// unixNano is t.UnixNano, clamped: a deadline saturated by addSaturating
// lies centuries beyond 2262, where t.UnixNano would overflow.
func unixNano(t time.Time) int64 {
	if t.After(latestUnixNano) {
		return math.MaxInt64
	}
	return t.UnixNano()
}

// countingWriter passes writes on to w, counting the bytes w accepts.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// restore adds the sessions of snap, a whole snapshot, or nothing at all if
// snap is not valid. It decodes snap twice, first only to check it, rather
// than keep every decoded entry in between: decoding is cheap, and a restore
// of a million sessions took 40% less time without that slice to grow.
//
// The check counts the entries, and the index is made that large at once,
// rather than grown step by step.
func (m *MemStore) restore(snap []byte) error {
	entries := 0
	if err := decode(snap, func(decoded) { entries++ }); err != nil {
		return err
	}
	m.reserveIndex(entries)
	m.startRestore()
	defer m.endRestore()
	mg := merger{m: m, batch: make([]restored, 0, batchSize), taken: make(map[string]struct{}, entries)}
	decode(snap, mg.add) // checked above: no error
	mg.flush()
	return mg.syncErr
}

// startRestore makes the store remember the tokens it removes from now on,
// until endRestore: a session the store held when a restore began keeps the
// store's data, or is gone if evicted or deleted meanwhile, but never takes
// the snapshot's older copy. Restores running together share the set, so
// that one may skip, too, a token removed before it began, during another.
func (m *MemStore) startRestore() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.restores == 0 {
		m.removed = make(map[string]struct{})
	}
	m.restores++
}

// endRestore ends what startRestore began.
func (m *MemStore) endRestore() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.restores--; m.restores == 0 {
		m.removed = nil
	}
}

// reserveIndex makes room in the index for n more sessions, so that a
// restore does not grow it step by step. Under a cap it does nothing: the
// table grows as room is made for it.
func (m *MemStore) reserveIndex(n int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if t := m.table.Load(); m.maxBytes == 0 && sizeFor(t.live+n) > len(t.slots) {
		m.rebuildLocked(t.live + n)
	}
}

// decoded is one entry as read from a snapshot; token and data point into it.
type decoded struct {
	token, data []byte
	expiry      int64 // Unix nanoseconds
}

// decode calls visit for each entry of snap, in order, and then checks its
// checksum. An error means that snap is not a valid snapshot; visit may have
// been called before it was found.
func decode(snap []byte, visit func(decoded)) error {
	d := decoder{rest: snap}
	count, err := d.header()
	if err != nil {
		return err
	}
	for i := uint64(0); i < count; i++ {
		e, err := d.entry()
		if err != nil {
			return fmt.Errorf("%w (entry %d of %d)", err, i+1, count)
		}
		visit(e)
	}
	return d.trailer(snap)
}

// decoder reads a snapshot held whole in memory. Every length is checked
// against the bytes left before it is used, so a corrupt one gives an error,
// never a large allocation nor a slice out of range.
type decoder struct {
	rest []byte // not decoded yet
}

// header reads the magic number, the version and the entry count.
func (d *decoder) header() (count uint64, err error) {
	if err := checkStart(d.rest); err != nil {
		return 0, err
	}
	if _, err := d.take(startLen, "magic number and version"); err != nil {
		return 0, err
	}
	return d.uint64("entry count")
}

// startLen is the length of what begins every snapshot of this version: the
// magic number and the version.
const startLen = len(magic) + 1

// checkStart returns an error wrapping ErrBadSnapshot unless b, the first
// bytes of an input or all of it, could begin a snapshot of this version.
func checkStart(b []byte) error {
	if got := b[:min(len(b), len(magic))]; string(got) != magic[:len(got)] {
		return fmt.Errorf("%w: not a memstore snapshot (starts %q)", ErrBadSnapshot, got)
	}
	if len(b) > len(magic) && b[len(magic)] != version {
		return fmt.Errorf("%w: unknown version %d (this package reads version %d)", ErrBadSnapshot, b[len(magic)], version)
	}
	return nil
}

// entry reads one entry.
func (d *decoder) entry() (e decoded, err error) {
	if e.token, err = d.lengthPrefixed("token"); err != nil {
		return e, err
	}
	expiry, err := d.uint64("expiry")
	if err != nil {
		return e, err
	}
	e.expiry = int64(expiry)
	e.data, err = d.lengthPrefixed("data")
	return e, err
}

// trailer checks that what is left is exactly the checksum of the rest of snap.
func (d *decoder) trailer(snap []byte) error {
	stored, err := d.take(checksumLen, "checksum")
	if err != nil {
		return err
	}
	if len(d.rest) > 0 {
		return fmt.Errorf("%w: %d unexpected bytes after the checksum", ErrBadSnapshot, len(d.rest))
	}
	want := binary.BigEndian.Uint32(stored)
	if got := crc32.Checksum(snap[:len(snap)-checksumLen], castagnoli); got != want {
		return fmt.Errorf("%w: checksum mismatch: computed %08x, stored %08x", ErrBadSnapshot, got, want)
	}
	return nil
}

// take returns the next n bytes of the snapshot.
func (d *decoder) take(n int, what string) ([]byte, error) {
	if n > len(d.rest) {
		return nil, fmt.Errorf("%w: truncated in the %s", ErrBadSnapshot, what)
	}
	b := d.rest[:n]
	d.rest = d.rest[n:]
	return b, nil
}

// uint64 reads a big-endian uint64.
func (d *decoder) uint64(what string) (uint64, error) {
	b, err := d.take(8, what)
	if err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint64(b), nil
}

// lengthPrefixed reads a uvarint length and the bytes it counts.
func (d *decoder) lengthPrefixed(what string) ([]byte, error) {
	n, size := binary.Uvarint(d.rest)
	switch {
	case size == 0:
		return nil, fmt.Errorf("%w: truncated in the %s length", ErrBadSnapshot, what)
	case size < 0:
		return nil, fmt.Errorf("%w: impossible %s length: over 64 bits", ErrBadSnapshot, what)
	}
	d.rest = d.rest[size:]
	if n > uint64(len(d.rest)) {
		return nil, fmt.Errorf("%w: impossible %s length %d: only %d bytes left", ErrBadSnapshot, what, n, len(d.rest))
	}
	return d.take(int(n), what)
}

// merger adds decoded sessions to its store a batch at a time: it copies a
// batch into the store's chunks outside the lock, then publishes it under one
// short write-lock hold, so that requests run between batches however large
// the snapshot.
type merger struct {
	m       *MemStore
	batch   []restored
	taken   map[string]struct{} // every token met so far in the snapshot
	synced  []*syncBatch        // in a store from Open, the syncs the batch waits for
	syncErr error               // the first error of those syncs
}

// restored is one session of a snapshot on its way into the store.
type restored struct {
	token    string
	data     []byte // points into the snapshot
	expiry   time.Time
	deadline time.Duration
	r        reservation
}

// add queues d, unless an earlier session of the snapshot had its token, it
// has expired or it is too large for the store. The first session of a
// token counts, whatever becomes of it: a later one is an older copy that
// WriteTo wrote too.
func (mg *merger) add(d decoded) {
	if _, taken := mg.taken[string(d.token)]; taken {
		return
	}
	token := string(d.token)
	mg.taken[token] = struct{}{}
	expiry := time.Unix(0, d.expiry)
	deadline, live := mg.m.deadline(expiry)
	// Under a cap, a session larger than the whole cap is skipped, like an
	// expired one: the snapshot is valid and every other session can still
	// be restored.
	if !live || mg.m.checkSize(recordSize(len(token), len(d.data))) != nil {
		return
	}
	mg.batch = append(mg.batch, restored{token: token, data: d.data, expiry: expiry, deadline: deadline})
	if len(mg.batch) == cap(mg.batch) {
		mg.flush()
	}
}

// flush stores every queued session whose token the store does not hold:
// the store's session is the more recent. Under a cap, storing one may evict
// others to make room.
func (mg *merger) flush() {
	m := mg.m
	for i := range mg.batch {
		s := &mg.batch[i]
		s.r = m.reserve(recordSize(len(s.token), len(s.data)))
		writeRecord(s.r.buf, s.token, s.data)
	}
	defer mg.awaitSyncs()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range mg.batch {
		h := m.hash(s.token)
		_, held := m.lookupLocked(h, s.token)
		if _, gone := m.removed[s.token]; held || gone {
			m.discardLocked(s.r)
			continue
		}
		m.putLocked(h, s.token, slotHint{}, s.r, s.deadline)
		if m.log == nil {
			continue
		}
		if b := m.log.putLocked(s.r, s.expiry); b != nil && (len(mg.synced) == 0 || mg.synced[len(mg.synced)-1] != b) {
			mg.synced = append(mg.synced, b)
		}
	}
	mg.batch = mg.batch[:0]
}

// awaitSyncs waits for the syncs of the batch just stored, if its store is
// from Open and they are to be waited for, keeping the first error.
func (mg *merger) awaitSyncs() {
	for _, b := range mg.synced {
		if err := awaitSync(b); err != nil && mg.syncErr == nil {
			mg.syncErr = err
		}
	}
	mg.synced = mg.synced[:0]
}

// writeTemp writes a snapshot to a new file in dir, named after base, synced
// and closed, and returns its name. On an error it removes the file.
func (m *MemStore) writeTemp(dir, base string) (name string, err error) {
	f, err := os.CreateTemp(dir, tempPrefix(base)+".*.tmp") // mode 0600
	if err != nil {
		return "", err
	}
	defer func() {
		if err != nil {
			f.Close() // harmless if it is the second: it only returns an error
			os.Remove(f.Name())
		}
	}()
	if _, err = m.WriteTo(f); err != nil {
		return "", err
	}
	if err = f.Sync(); err != nil {
		return "", err
	}
	if err = f.Close(); err != nil {
		return "", err
	}
	return f.Name(), nil
}

// maxTempPrefix is the longest prefix a temporary file's name takes from
// the file it replaces: os.CreateTemp adds a dot and up to ten digits, and
// ".tmp" follows, so that the name stays within the 255 bytes most file
// systems allow, however long the target's.
const maxTempPrefix = 255 - len(".4294967295.tmp")

// tempPrefix returns base, cut to at most maxTempPrefix bytes, at the start
// of a UTF-8 sequence.
func tempPrefix(base string) string {
	if len(base) <= maxTempPrefix {
		return base
	}
	cut := maxTempPrefix
	for cut > 0 && !utf8.RuneStart(base[cut]) {
		cut--
	}
	return base[:cut]
}

// syncDir makes a rename in dir durable: until the directory itself is
// synced, a crash can undo the rename even though the file's data is on disk.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil // Windows offers no way to sync a directory
	}
	return syncOpened(dir, os.O_RDONLY)
}

// syncOpened opens name with flag, syncs it and closes it.
func syncOpened(name string, flag int) error {
	f, err := os.OpenFile(name, flag, 0)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
