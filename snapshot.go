// SPDX-License-Identifier: MIT

package memstore

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"time"
	"unicode/utf8"
)

// storeID returns the identity WriteTo writes: the directory's, in a store
// from Open.
func (m *MemStore) storeID() storeID {
	if m.log == nil {
		return storeID{}
	}
	return m.log.id
}

// WriteTo writes a snapshot of every unexpired session to w, in the format
// described in FORMAT.md, and returns the number of bytes written. It
// implements io.WriterTo. It neither closes nor retains w.
//
// WriteTo collects the sessions under short read-lock holds, as All does, and
// writes to w without holding the lock, so requests never wait on w however
// slow it is. Like All it is not an atomic snapshot: a session committed or
// deleted while WriteTo runs may or may not be in it, but no token is in it
// twice. A session committed to live beyond the year 2262 is saved as
// expiring then.
//
// The snapshot holds session data in the clear. WriteTo works after Close.
func (m *MemStore) WriteTo(w io.Writer) (int64, error) {
	sessions := m.liveSessions()

	counted := &countingWriter{w: w}
	buffered := bufio.NewWriterSize(counted, writeBufferSize)
	checksum := crc32.New(castagnoli)
	out := io.MultiWriter(buffered, checksum) // everything but the checksum itself

	rec := appendHeader(make([]byte, 0, 256), m.storeID(), uint64(len(sessions)))
	if _, err := out.Write(rec); err != nil {
		return counted.n, fmt.Errorf("memstore: writing snapshot: %w", err)
	}
	now := time.Now()
	for _, s := range sessions {
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
// implements io.ReaderFrom. It does not retain r: the store keeps copies. It
// reads the snapshots of every earlier format version, whichever store wrote
// them.
//
// It is all or nothing: ReadFrom checks the whole snapshot, its checksum
// included, before it adds anything. If r fails, or its input is not a valid
// snapshot (the error then wraps ErrBadSnapshot), the store is left exactly
// as it was. An input whose first 9 bytes are not a snapshot's is rejected
// without reading on.
//
// Sessions that have expired since the snapshot was written are skipped. A
// token the store holds when ReadFrom begins, or that is committed meanwhile,
// keeps the store's session, or stays gone if the store's session is
// deleted or removed meanwhile. Of a token the snapshot holds twice, only the first session
// counts. A session whose token the store remembers as deleted is skipped
// (see WithReusableDeletedTokens). Under a cap set by WithMaxBytes, restored sessions take room as
// committed ones do, and a session larger than the whole cap is skipped.
//
// ReadFrom reads r in a stream. Until the checksum is checked it holds the
// sessions to restore in the store's memory, outside Stats.Bytes and the cap,
// plus about 100 bytes a session; no length read from the input makes it
// allocate more than the bytes that have arrived.
//
// ReadFrom adds the sessions in short batches, so requests go on while it
// restores a large snapshot. It works after Close. In a store from Open, the
// sessions restored are recorded as Commits are: under a sync interval of 0,
// ReadFrom returns once they are on disk, or an error wrapping
// ErrNotDurable, the sessions restored in memory all the same.
func (m *MemStore) ReadFrom(r io.Reader) (int64, error) {
	return m.readFrom(r, -1)
}

// readFrom is ReadFrom of an input of size bytes, or -1 if not known.
//
// All or nothing over a stream read once: the checksum comes last, so every
// session is copied into the store's chunks as it is decoded (the stream's
// buffer is reused) and published only once the checksum has passed, or
// given up on an error. Reading twice would need an input that can be read
// again, and that does not change meanwhile; holding the input whole would
// cost its size again. What is held meanwhile is what the store would hold
// anyway, and a list of where each session lies.
func (m *MemStore) readFrom(r io.Reader, size int64) (int64, error) {
	m.startRestore()
	defer m.endRestore()
	d := m.snapReader(r, size)
	mg := merger{m: m, taken: make(map[string]struct{}), stage: true}
	if err := decode(d, mg.add); err != nil {
		mg.discard()
		return d.s.read, err
	}
	m.reserveIndex(len(mg.batch)) // checked: the sessions are all there
	mg.flush()
	return d.s.read, mg.syncErr
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
// ErrBadSnapshot and names the file. ReadFile reads no more of a regular
// file than its size when opened, and rejects any file, a device included,
// whose first 9 bytes are not a snapshot's. ReadFile works after Close.
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
	size := int64(-1)
	if info.Mode().IsRegular() {
		size = info.Size()
		r = io.LimitReader(f, size) // never more than the file held when opened
	}
	if _, err := m.readFrom(r, size); err != nil {
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
// is released. No token is returned twice (see walk).
func (m *MemStore) liveSessions() []session {
	sessions := make([]session, 0, m.Len())
	m.walkLiveSlots(func(s slot, token, data []byte) {
		sessions = append(sessions, session{token, data, s.deadline})
	})
	return sessions
}

// appendHeader appends the snapshot header to b.
func appendHeader(b []byte, store storeID, count uint64) []byte {
	b = append(b, magic...)
	b = append(b, version)
	b = append(b, store[:]...)
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

// decoded is one entry as read from a snapshot. token and data point into
// the stream's buffer: they are valid until the next entry is read.
type decoded struct {
	token, data []byte
	expiry      int64 // Unix nanoseconds
	tooLarge    bool  // the session is too large for the store: data was skipped, not read into memory
}

// decode calls visit for each entry that d reads, in order, and then checks
// the checksum. An error means that the input is not a valid snapshot, or
// could not be read; visit may have been called before it was found.
func decode(d *snapReader, visit func(decoded)) error {
	if err := d.header(); err != nil {
		return err
	}
	for i := uint64(0); i < d.count; i++ {
		at := d.at()
		e, held, err := d.entry()
		if bad, ok := err.(*badInput); ok {
			// The entry's start, where a cut would keep those before it.
			bad.off, bad.detail = at, fmt.Sprintf("%s (entry %d of %d)", bad.detail, i+1, d.count)
			return bad
		}
		if err != nil {
			return fmt.Errorf("%w (entry %d of %d)", err, i+1, d.count)
		}
		if held {
			visit(e)
		}
	}
	return d.trailer()
}

// snapReader decodes a snapshot from a stream. Every length is checked
// against the bytes left, where the input's size is known, and otherwise
// read up to: a corrupt one gives an error, never a large allocation.
type snapReader struct {
	s        *stream
	version  byte
	store    storeID
	count    uint64
	holdable func(size int) bool                     // whether the store can hold a record of size bytes
	check    func(version byte, store storeID) error // if set, refuses a header
}

// snapReader returns a decoder of the snapshot in r, of size bytes or -1
// if not known, for m: the data of a session too large for m is skipped,
// not held.
func (m *MemStore) snapReader(r io.Reader, size int64) *snapReader {
	return &snapReader{s: newStream(r, size), holdable: func(size int) bool { return m.checkSize(size) == nil }}
}

// at returns the offset in the input of the next byte not consumed.
func (d *snapReader) at() int64 { return d.s.read - int64(d.s.avail()) }

// bad returns the error of an input found bad at off, detail saying how.
func bad(off int64, detail string, args ...any) error {
	return &badInput{off: off, detail: fmt.Sprintf(detail, args...)}
}

// startLen is the length of what begins every snapshot: the magic number and
// the version.
const startLen = len(magic) + 1

// header reads the magic number, the version, the store and the entry count.
func (d *snapReader) header() error {
	d.s.fillOnly(startLen)
	start := d.s.buf[d.s.pos:d.s.end]
	if err := checkStart(start); err != nil {
		return err
	}
	if len(start) < startLen {
		return d.short("magic number and version")
	}
	d.version = start[len(magic)]
	d.s.take(startLen)
	if d.version >= 2 {
		b, ok := d.s.take(len(d.store))
		if !ok {
			return d.short("store")
		}
		d.store = storeID(b)
	}
	if d.check != nil {
		if err := d.check(d.version, d.store); err != nil {
			return err
		}
	}
	b, ok := d.s.take(8)
	if !ok {
		return d.short("entry count")
	}
	d.count = binary.BigEndian.Uint64(b)
	if left := d.s.remaining(); left >= 0 && d.count > uint64(max(left-checksumLen, 0))/minEntryLen {
		return bad(d.at()-8, "impossible entry count %d: only %d bytes left", d.count, left)
	}
	return nil
}

// checkStart returns an error wrapping ErrBadSnapshot unless b, the first
// bytes of an input or all of it, could begin a snapshot of a version this
// package reads.
func checkStart(b []byte) error {
	if got := b[:min(len(b), len(magic))]; string(got) != magic[:len(got)] {
		return bad(0, "not a memstore snapshot (starts %q)", got)
	}
	if len(b) > len(magic) && (b[len(magic)] < firstVersion || b[len(magic)] > version) {
		return bad(int64(len(magic)), "unknown version %d (this package reads versions %d to %d)", b[len(magic)], firstVersion, version)
	}
	return nil
}

// entry reads one entry. It reports whether the entry is to be visited:
// one whose token alone is too large for the store is not, as none of its
// bytes could be held. An entry whose data is too large for the store has
// its data skipped, and its token copied.
func (d *snapReader) entry() (e decoded, held bool, err error) {
	s := d.s
	tokenLen, n := s.uvarintAt(0)
	if err := d.length(n, tokenLen, 0, "token"); err != nil {
		return e, false, err
	}
	if tokenLen > maxSession {
		return e, false, d.skipEntry(n, tokenLen)
	}
	expiryAt := n + int(tokenLen)
	if !s.fill(expiryAt + 8) {
		if s.avail() < expiryAt {
			return e, false, d.short("token")
		}
		return e, false, d.short("expiry")
	}
	dataLen, dn := s.uvarintAt(expiryAt + 8)
	if err := d.length(dn, dataLen, expiryAt+8, "data"); err != nil {
		return e, false, err
	}
	b := s.buf[s.pos:]
	e.expiry = int64(binary.BigEndian.Uint64(b[expiryAt:]))
	dataAt := expiryAt + 8 + dn
	if dataLen > maxSession || !d.holdable(recordSize(int(tokenLen), int(dataLen))) {
		e.token, e.tooLarge = bytes.Clone(b[n:expiryAt]), true
		s.take(dataAt)
		if !s.skip(dataLen) {
			return e, false, d.short("data")
		}
		return e, true, nil
	}
	end := dataAt + int(dataLen)
	if !s.fill(end) {
		return e, false, d.short("data")
	}
	b, _ = s.take(end)
	e.token, e.data = b[n:expiryAt], b[dataAt:end:end]
	return e, true, nil
}

// skipEntry consumes an entry whose token, of tokenLen bytes after a
// length of n bytes, is too long for any store.
func (d *snapReader) skipEntry(n int, tokenLen uint64) error {
	s := d.s
	if !s.skip(uint64(n)) || !s.skip(tokenLen) {
		return d.short("token")
	}
	if !s.skip(8) {
		return d.short("expiry")
	}
	dataLen, dn := s.uvarintAt(0)
	if err := d.length(dn, dataLen, 0, "data"); err != nil {
		return err
	}
	if !s.skip(uint64(dn)) || !s.skip(dataLen) {
		return d.short("data")
	}
	return nil
}

// length checks a length of n, whose uvarint took size bytes (0 if cut
// short, negative if over 64 bits), at off bytes past the next unconsumed
// byte.
func (d *snapReader) length(size int, n uint64, off int, what string) error {
	switch {
	case size == 0:
		return d.short(what + " length")
	case size < 0:
		return bad(d.at()+int64(off), "impossible %s length: over 64 bits", what)
	}
	if left := d.s.remaining() - int64(off+size); left >= 0 && n > uint64(left) {
		return bad(d.at()+int64(off), "impossible %s length %d: only %d bytes left", what, n, left)
	}
	return nil
}

// short returns the error of an input that ended, or failed, in the midst
// of what.
func (d *snapReader) short(what string) error {
	if err := d.s.err; err != nil && err != io.EOF {
		return fmt.Errorf("memstore: reading snapshot: %w", err)
	}
	return bad(d.s.read, "truncated in the %s", what) // where the input ends
}

// trailer checks that what is left is exactly the checksum of the bytes
// before it.
func (d *snapReader) trailer() error {
	got, at := d.s.checksum(), d.at()
	stored, ok := d.s.take(checksumLen)
	if !ok {
		return d.short("checksum")
	}
	want := binary.BigEndian.Uint32(stored)
	if d.s.fill(1) {
		return bad(d.at(), "unexpected bytes after the checksum")
	}
	if err := d.s.err; err != io.EOF {
		return fmt.Errorf("memstore: reading snapshot: %w", err)
	}
	if got != want {
		return bad(at, "checksum mismatch: computed %08x, stored %08x", got, want)
	}
	return nil
}

// merger adds decoded sessions to its store a batch at a time: it copies
// each session into the store's chunks as it is decoded, then publishes a
// batch under one short write-lock hold, so that requests run between
// batches however large the snapshot.
type merger struct {
	m       *MemStore
	batch   []restored          // copied into the store, not yet published
	taken   map[string]struct{} // every token met so far in the snapshot
	stage   bool                // publish nothing until flush: ReadFrom's all or nothing
	synced  []*syncBatch        // in a store from Open, the syncs the batch waits for
	syncErr error               // the first error of those syncs
}

// restored is one session of a snapshot on its way into the store: 72 bytes
// on 64-bit platforms, a session's cost in a staged ReadFrom.
type restored struct {
	token    string
	expiry   int64 // Unix nanoseconds
	deadline time.Duration
	r        reservation // its record, written
}

// add copies d into the store's chunks and queues it, unless an earlier
// session of the snapshot had its token, it has expired or it is too large
// for the store. The first session of a token counts, whatever becomes of
// it, as FORMAT.md says. WriteTo writes each token once; a snapshot from a
// release whose walks could repeat a token holds the newer copy first.
func (mg *merger) add(d decoded) {
	if _, taken := mg.taken[string(d.token)]; taken {
		return
	}
	token := string(d.token)
	mg.taken[token] = struct{}{}
	deadline, live := mg.m.deadline(time.Unix(0, d.expiry))
	// Under a cap, a session larger than the whole cap is skipped, like an
	// expired one: the snapshot is valid and every other session can still
	// be restored.
	if !live || d.tooLarge || mg.m.checkSize(recordSize(len(token), len(d.data))) != nil {
		return
	}
	r := mg.m.reserve(recordSize(len(token), len(d.data)))
	writeRecord(r.buf, token, d.data) // d's bytes are the stream's, reused by the next read
	mg.batch = append(mg.batch, restored{token: token, expiry: d.expiry, deadline: deadline, r: r})
	if !mg.stage && len(mg.batch) == batchSize {
		mg.flush()
	}
}

// flush publishes every queued session whose token the store does not
// hold, batchSize at a time: the store's session is the more recent.
func (mg *merger) flush() {
	for batch := mg.batch; len(batch) > 0; batch = batch[min(batchSize, len(batch)):] {
		mg.publish(batch[:min(batchSize, len(batch))])
	}
	mg.batch = mg.batch[:0]
}

// publish stores the sessions of batch whose token the store does not hold.
// Under a cap, storing one may evict others to make room.
func (mg *merger) publish(batch []restored) {
	m := mg.m
	defer mg.awaitSyncs()
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range batch {
		h := m.hash(s.token)
		_, held := m.lookupLocked(h, s.token)
		if _, gone := m.removed[s.token]; held || gone || m.refusedLocked(s.token) {
			m.discardLocked(s.r)
			continue
		}
		m.putLocked(h, s.token, slotHint{}, s.r, s.deadline)
		if m.log == nil {
			continue
		}
		if b := m.log.queuePutLocked(s.r, time.Unix(0, s.expiry)); b != nil && (len(mg.synced) == 0 || mg.synced[len(mg.synced)-1] != b) {
			mg.synced = append(mg.synced, b)
		}
	}
}

// discard gives up every queued session, batchSize at a time: their bytes
// stay in their chunks, dead.
func (mg *merger) discard() {
	m := mg.m
	for batch := mg.batch; len(batch) > 0; batch = batch[min(batchSize, len(batch)):] {
		m.mu.Lock()
		for _, s := range batch[:min(batchSize, len(batch))] {
			m.discardLocked(s.r)
		}
		m.mu.Unlock()
	}
	mg.batch = nil
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
